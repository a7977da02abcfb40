/* ws_load.c - WebSocket load generator of `make bench`, on the libwebsockets client API.
 *
 * Stream mode (default): N connections to /api/v1/stream; each authenticates with
 * {"type":"auth","token":"bench-token-<i mod K>"}, then keeps up to W batches un-acked: a
 * batch is the payload template (bench/payload.py) with "seq" added and @ID@ replaced by a
 * tag unique in the run. Sending stops after --duration seconds; the outstanding acks are
 * then awaited (up to --grace seconds), so every batch sent is accounted for.
 * Prints records/s, batches/s, ack latency p50/p99/max (send of the batch -> its ack).
 *
 * Idle mode (--idle): N connections authenticate and then send nothing. Once all are
 * authenticated (or failed), "ready" figures go to --ready FILE; the connections stay open
 * until SIGTERM/SIGINT or --hold seconds. The server's pings are answered by lws.
 *
 * Output: key=value lines on stdout and in --summary FILE; tags of acked batches in
 * --acked FILE (one a line) for bench/benchlib.py check.
 */
#include <libwebsockets.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_CONNECTING 256 /* handshakes in progress at once while connections ramp up */

enum cstate { C_NEW, C_CONNECTING, C_AUTHING, C_READY, C_CLOSED, C_FAILED };

struct conn {
    struct lws *wsi;
    int idx;
    enum cstate state;
    uint64_t next_seq;      /* seq of the next batch to send */
    uint64_t acked_seq;     /* answers received (acks or errors) */
    int64_t *sent_us;       /* ring of window send times, indexed by seq % window */
    char *rx;               /* the answer being assembled */
    size_t rx_len, rx_cap;
};

static struct {
    const char *host, *path, *payload, *run, *acked_path, *summary_path, *ready_path, *origin;
    int port, conns, window, tokens, idle, records;
    double duration, grace, hold;
} opt = {"127.0.0.1", "/api/v1/stream", NULL, "0000", NULL, NULL, NULL, NULL, 8107, 1, 8, 1, 0, 0, 10, 15, 600};

static struct lws_context *ctx;
static struct conn *conns;
static int started, connecting, authed, failed, closed_early;
static int sending = 1, destroying;
static lws_sorted_usec_list_t tick_sul;
static volatile sig_atomic_t got_signal;

/* the template, cut at each @ID@ */
static char **parts;
static size_t *part_len;
static int nparts;
static char *msgbuf;
static size_t msgcap;

/* figures */
static uint64_t batches_sent, batches_acked, batch_errors, records_acked;
static int64_t first_send_us, last_ack_us, send_stop_us;
static uint32_t *lat_us;
static size_t lat_n, lat_cap;
static FILE *acked_f;
static int close_codes[16];
static int close_code_n[16];

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what)
{
    fprintf(stderr, "ws_load: %s\n", what);
    exit(2);
}

static void load_payload(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open --payload");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n)
        die("cannot read --payload");
    fclose(f);
    s[n] = '\0';
    if (s[0] != '{')
        die("--payload must be a JSON object");
    /* count the records: one per "ts" key (every template record has one) */
    for (const char *p = s; (p = strstr(p, "{\"ts\":")); p++)
        opt.records++;
    int cap = 16;
    parts = malloc(sizeof(*parts) * (size_t)cap);
    part_len = malloc(sizeof(*part_len) * (size_t)cap);
    char *p = s + 1; /* "{" is written with the seq */
    for (;;) {
        if (nparts == cap) {
            cap *= 2;
            parts = realloc(parts, sizeof(*parts) * (size_t)cap);
            part_len = realloc(part_len, sizeof(*part_len) * (size_t)cap);
            if (!parts || !part_len)
                die("out of memory");
        }
        char *at = strstr(p, "@ID@");
        parts[nparts] = p;
        part_len[nparts] = at ? (size_t)(at - p) : strlen(p);
        nparts++;
        if (!at)
            break;
        p = at + 4;
    }
    msgcap = LWS_PRE + 64 + (size_t)n + (size_t)nparts * 16;
    msgbuf = malloc(msgcap);
    if (!msgbuf)
        die("out of memory");
}

static void tag_of(char out[17], int idx, uint64_t seq)
{
    snprintf(out, 17, "%.4s%04x%08x", opt.run, (unsigned)idx & 0xffff, (unsigned)(seq & 0xffffffffu));
}

static size_t build_batch(struct conn *c, uint64_t seq)
{
    char tag[17];
    tag_of(tag, c->idx, seq);
    char *o = msgbuf + LWS_PRE;
    o += sprintf(o, "{\"seq\":%llu,", (unsigned long long)seq);
    for (int i = 0; i < nparts; i++) {
        if (i) {
            memcpy(o, tag, 16);
            o += 16;
        }
        memcpy(o, parts[i], part_len[i]);
        o += part_len[i];
    }
    return (size_t)(o - (msgbuf + LWS_PRE));
}

static void note_close(int code)
{
    for (int i = 0; i < 16; i++) {
        if (close_code_n[i] && close_codes[i] == code) {
            close_code_n[i]++;
            return;
        }
        if (!close_code_n[i]) {
            close_codes[i] = code;
            close_code_n[i] = 1;
            return;
        }
    }
}

static void lat_add(int64_t us)
{
    if (lat_n == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 65536;
        lat_us = realloc(lat_us, lat_cap * sizeof(*lat_us));
        if (!lat_us)
            die("out of memory");
    }
    lat_us[lat_n++] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static long long json_int_after(const char *s, size_t len, const char *key)
{
    const char *p = memmem(s, len, key, strlen(key));
    if (!p)
        return -1;
    return strtoll(p + strlen(key), NULL, 10);
}

static void on_answer(struct conn *c, const char *m, size_t len)
{
    if (memmem(m, len, "\"type\":\"auth\"", 13)) {
        if (c->state == C_AUTHING && memmem(m, len, "\"ok\":true", 9)) {
            c->state = C_READY;
            authed++;
            if (!opt.idle)
                lws_callback_on_writable(c->wsi);
        }
        return;
    }
    int is_ack = memmem(m, len, "\"type\":\"ack\"", 12) != NULL;
    long long seq = json_int_after(m, len, "\"seq\":");
    int64_t t = now_us();
    if (seq >= 0 && (uint64_t)seq < c->next_seq && (uint64_t)seq + (uint64_t)opt.window >= c->next_seq)
        lat_add(t - c->sent_us[(uint64_t)seq % (uint64_t)opt.window]);
    c->acked_seq++;
    last_ack_us = t;
    if (is_ack) {
        long long acc = json_int_after(m, len, "\"accepted\":");
        batches_acked++;
        records_acked += acc > 0 ? (uint64_t)acc : 0;
        if (acked_f && seq >= 0) {
            char tag[17];
            tag_of(tag, c->idx, (uint64_t)seq);
            fprintf(acked_f, "%s\n", tag);
        }
    } else {
        batch_errors++;
        if (batch_errors <= 3)
            fprintf(stderr, "ws_load: error answer: %.*s\n", (int)(len > 300 ? 300 : len), m);
    }
    if (sending && !opt.idle)
        lws_callback_on_writable(c->wsi);
}

static int send_next(struct conn *c)
{
    if (!sending || c->state != C_READY || c->next_seq - c->acked_seq >= (uint64_t)opt.window)
        return 0;
    uint64_t seq = c->next_seq;
    size_t n = build_batch(c, seq);
    int64_t t = now_us();
    if (!first_send_us)
        first_send_us = t;
    c->sent_us[seq % (uint64_t)opt.window] = t;
    if (lws_write(c->wsi, (unsigned char *)msgbuf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
        return -1;
    c->next_seq++;
    batches_sent++;
    if (c->next_seq - c->acked_seq < (uint64_t)opt.window)
        lws_callback_on_writable(c->wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    struct conn *c = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c) {
            if (c->state == C_CONNECTING)
                connecting--;
            c->state = C_FAILED;
            c->wsi = NULL;
            failed++;
            if (failed <= 3)
                fprintf(stderr, "ws_load: connection %d failed: %s\n", c->idx, in ? (const char *)in : "?");
        }
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED: {
        connecting--;
        c->state = C_AUTHING;
        char m[LWS_PRE + 96];
        int n = snprintf(m + LWS_PRE, sizeof(m) - LWS_PRE, "{\"type\":\"auth\",\"token\":\"bench-token-%d\"}",
                         c->idx % opt.tokens);
        if (lws_write(wsi, (unsigned char *)m + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n)
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c->rx_len + len > c->rx_cap) {
            c->rx_cap = (c->rx_len + len) * 2;
            c->rx = realloc(c->rx, c->rx_cap);
            if (!c->rx)
                die("out of memory");
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            on_answer(c, c->rx, c->rx_len);
            c->rx_len = 0;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return send_next(c);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *b = in;
            note_close(b[0] << 8 | b[1]);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c && c->state != C_CLOSED && c->state != C_FAILED) {
            if (c->state == C_AUTHING)
                failed++;
            if (!destroying)
                closed_early++;
            c->state = C_CLOSED;
        }
        if (c)
            c->wsi = NULL;
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"bench", callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void start_one(void)
{
    struct conn *c = &conns[started];
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof(i));
    i.context = ctx;
    i.address = opt.host;
    i.port = opt.port;
    i.path = opt.path;
    i.host = opt.host;
    i.origin = opt.origin;
    i.ietf_version_or_minus_one = -1;
    i.local_protocol_name = "bench";
    i.opaque_user_data = c;
    i.pwsi = &c->wsi;
    c->idx = started;
    c->state = C_CONNECTING;
    c->next_seq = 1;
    c->acked_seq = 1;
    connecting++;
    started++;
    if (!lws_client_connect_via_info(&i)) {
        if (c->state == C_CONNECTING) { /* the error callback did not run */
            connecting--;
            c->state = C_FAILED;
            failed++;
        }
    }
}

/* lws_service() sleeps until the next event or timer: this timer bounds the sleep, so the
 * duration and hold deadlines are seen on time even on quiet connections */
static void tick(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(ctx, 0, sul, tick, 50 * 1000);
}

static void on_signal(int sig)
{
    got_signal = sig;
    if (ctx)
        lws_cancel_service(ctx);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(double p)
{
    if (!lat_n)
        return 0;
    size_t k = (size_t)(p / 100.0 * (double)lat_n);
    if (k >= lat_n)
        k = lat_n - 1;
    return lat_us[k];
}

static void emit(FILE *f, const char *key, const char *fmt, ...)
{
    va_list ap;
    fprintf(f, "%s=", key);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

static void write_figures(FILE *f, int64_t t_conn0, int64_t t_ready)
{
    emit(f, "conns", "%d", opt.conns);
    emit(f, "authed", "%d", authed);
    emit(f, "failed", "%d", failed);
    emit(f, "connect_s", "%.2f", (double)(t_ready - t_conn0) / 1e6);
    if (opt.idle)
        return;
    double dur = (double)((last_ack_us > send_stop_us ? last_ack_us : send_stop_us) - first_send_us) / 1e6;
    emit(f, "window", "%d", opt.window);
    emit(f, "batch", "%d", opt.records);
    emit(f, "sent", "%llu", (unsigned long long)batches_sent);
    emit(f, "responses", "%llu", (unsigned long long)(batches_acked + batch_errors));
    emit(f, "ok", "%llu", (unsigned long long)batches_acked);
    emit(f, "non_ok", "%llu", (unsigned long long)batch_errors);
    emit(f, "accepted", "%llu", (unsigned long long)records_acked);
    emit(f, "closed_early", "%d", closed_early);
    char codes[256] = "-";
    size_t o = 0;
    for (int i = 0; i < 16 && close_code_n[i]; i++)
        o += (size_t)snprintf(codes + o, sizeof(codes) - o, "%s%d:%d", i ? "," : "", close_codes[i], close_code_n[i]);
    emit(f, "close_codes", "%s", codes);
    emit(f, "duration_us", "%.0f", dur * 1e6);
    emit(f, "p50_us", "%u", pct(50));
    emit(f, "p99_us", "%u", pct(99));
    emit(f, "max_us", "%u", lat_n ? lat_us[lat_n - 1] : 0);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ws_load --port P --payload FILE [--host H] [--conns N] [--window W] [--duration S]\n"
            "               [--grace S] [--tokens K] [--run HEX4] [--acked FILE] [--summary FILE]\n"
            "               [--origin O] | --idle --conns N [--ready FILE] [--hold S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"path", 1, 0, 'P'}, {"payload", 1, 0, 'f'},
        {"conns", 1, 0, 'c'}, {"window", 1, 0, 'w'}, {"duration", 1, 0, 'd'}, {"grace", 1, 0, 'g'},
        {"tokens", 1, 0, 'k'}, {"run", 1, 0, 'r'}, {"acked", 1, 0, 'a'}, {"summary", 1, 0, 's'},
        {"idle", 0, 0, 'i'}, {"ready", 1, 0, 'R'}, {"hold", 1, 0, 'H'}, {"origin", 1, 0, 'o'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'P': opt.path = optarg; break;
        case 'f': opt.payload = optarg; break;
        case 'c': opt.conns = atoi(optarg); break;
        case 'w': opt.window = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'g': opt.grace = atof(optarg); break;
        case 'k': opt.tokens = atoi(optarg); break;
        case 'r': opt.run = optarg; break;
        case 'a': opt.acked_path = optarg; break;
        case 's': opt.summary_path = optarg; break;
        case 'i': opt.idle = 1; break;
        case 'R': opt.ready_path = optarg; break;
        case 'H': opt.hold = atof(optarg); break;
        case 'o': opt.origin = optarg; break;
        default: usage();
        }
    }
    if (opt.conns < 1 || opt.window < 1 || opt.tokens < 1 || (!opt.idle && !opt.payload) || strlen(opt.run) != 4)
        usage();
    if (!opt.idle)
        load_payload(opt.payload);

    /* as many descriptors as the hard limit allows */
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl)) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)opt.conns + 32)
            fprintf(stderr, "ws_load: RLIMIT_NOFILE %llu is too low for %d connections\n",
                    (unsigned long long)rl.rlim_cur, opt.conns);
    }
    conns = calloc((size_t)opt.conns, sizeof(*conns));
    if (!conns)
        die("out of memory");
    if (!opt.idle)
        for (int i = 0; i < opt.conns; i++)
            if (!(conns[i].sent_us = calloc((size_t)opt.window, sizeof(int64_t))))
                die("out of memory");
    if (opt.acked_path && !(acked_f = fopen(opt.acked_path, "w")))
        die("cannot write --acked");

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.fd_limit_per_thread = (unsigned)opt.conns + 64;
    info.timeout_secs = 30;
    ctx = lws_create_context(&info);
    if (!ctx)
        die("cannot create the lws context");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    tick(&tick_sul);
    /* ramp up: at most MAX_CONNECTING handshakes in progress */
    int64_t t_conn0 = now_us(), t_ready = 0;
    while (!got_signal) {
        while (started < opt.conns && connecting < MAX_CONNECTING)
            start_one();
        if (started == opt.conns && authed + failed >= opt.conns)
            break;
        if (now_us() - t_conn0 > 120 * 1000000LL) {
            fprintf(stderr, "ws_load: connections not ready after 120 s (%d authed, %d failed)\n", authed, failed);
            break;
        }
        lws_service(ctx, 0);
    }
    t_ready = now_us();
    if (opt.idle) {
        if (opt.ready_path) {
            FILE *f = fopen(opt.ready_path, "w");
            if (f) {
                write_figures(f, t_conn0, t_ready);
                fclose(f);
            }
        }
        int64_t end = now_us() + (int64_t)(opt.hold * 1e6);
        while (!got_signal && now_us() < end)
            lws_service(ctx, 0);
        emit(stdout, "closed_during_hold", "%d", closed_early);
        write_figures(stdout, t_conn0, t_ready);
        destroying = 1;
        lws_sul_cancel(&tick_sul);
        lws_context_destroy(ctx);
        return authed == opt.conns && !closed_early ? 0 : 1;
    }

    /* stream: the ready connections asked for writable when their auth came back */
    int64_t stop = now_us() + (int64_t)(opt.duration * 1e6);
    while (!got_signal && now_us() < stop)
        lws_service(ctx, 0);
    sending = 0;
    send_stop_us = now_us();
    int64_t grace_end = send_stop_us + (int64_t)(opt.grace * 1e6);
    for (;;) {
        uint64_t out = 0;
        for (int i = 0; i < opt.conns; i++)
            if (conns[i].state == C_READY && conns[i].wsi)
                out += conns[i].next_seq - conns[i].acked_seq;
        if (!out || now_us() > grace_end)
            break;
        lws_service(ctx, 0);
    }
    if (acked_f)
        fclose(acked_f);
    qsort(lat_us, lat_n, sizeof(*lat_us), cmp_u32);
    write_figures(stdout, t_conn0, t_ready);
    if (opt.summary_path) {
        FILE *f = fopen(opt.summary_path, "w");
        if (f) {
            write_figures(f, t_conn0, t_ready);
            fclose(f);
        }
    }
    destroying = 1;
    lws_sul_cancel(&tick_sul);
    lws_context_destroy(ctx);
    return authed == opt.conns && !closed_early ? 0 : 1;
}
