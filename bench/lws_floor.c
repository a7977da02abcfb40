/* lws_floor.c - the HTTP ceiling of libwebsockets itself on this host, for `make bench`.
 *
 * A bare libwebsockets 4.1 server configured as tlm's ingest is (the same read buffer, the
 * same keep-alive, IPv4 only) that answers every POST with 204 once its body has been read,
 * like bench/nginx.conf does. It parses nothing and forwards nothing, so its requests/s at a
 * load is what the HTTP library tlm is built on allows before tlm does any work of its own:
 * the floor that tells lws's cost apart from tlm's.
 *
 * Two ways of answering, because tlm cannot answer in the body callback (it waits for the
 * logshipper's ack, then asks for a writable callback):
 *   --answer direct    answer from LWS_CALLBACK_HTTP_BODY_COMPLETION (nginx's way)
 *   --answer writable  ask lws_callback_on_writable() there and answer when writable
 *
 * and two loops, as the ingest has run on both:
 *   --loop ev     lws on a libev loop of ours with epoll (the ingest's, ingest/event_loop.c)
 *   --loop poll   lws's own poll(2) loop
 *
 * Usage: lws_floor --port N [--read-buffer BYTES] [--answer direct|writable] [--loop ev|poll]
 * Runs until SIGTERM/SIGINT; prints "requests=N" on the way out.
 */
#include <ev.h>
#include <libwebsockets.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t got_signal;
static struct lws_context *ctx;
static unsigned long long requests;
static int answer_when_writable;
static int use_poll;

static void on_signal(int sig)
{
    got_signal = sig;
    if (ctx)
        lws_cancel_service(ctx);
}

static int answer(struct lws *wsi)
{
    uint8_t buf[LWS_PRE + 256];
    uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_NO_CONTENT, NULL, 0, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    requests++;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (!lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
            return answer(wsi); /* no body to wait for */
        return 0;
    case LWS_CALLBACK_HTTP_BODY:
        return 0; /* read and dropped */
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!answer_when_writable)
            return answer(wsi);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return answer(wsi);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

int main(int argc, char **argv)
{
    int port = 0, read_buffer = 32 * 1024;
    static const struct option longopts[] = {{"port", required_argument, NULL, 'p'},
                                             {"read-buffer", required_argument, NULL, 'r'},
                                             {"answer", required_argument, NULL, 'a'},
                                             {"loop", required_argument, NULL, 'l'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'p')
            port = atoi(optarg);
        else if (c == 'r')
            read_buffer = atoi(optarg);
        else if (c == 'a' && !strcmp(optarg, "writable"))
            answer_when_writable = 1;
        else if (c == 'a' && !strcmp(optarg, "direct"))
            answer_when_writable = 0;
        else if (c == 'l' && (!strcmp(optarg, "ev") || !strcmp(optarg, "poll")))
            use_poll = !strcmp(optarg, "poll");
        else
            port = 0, optind = argc;
    }
    if (port <= 0 || read_buffer < 1024) {
        fprintf(stderr, "usage: lws_floor --port N [--read-buffer BYTES] [--answer direct|writable] [--loop ev|poll]\n");
        return 2;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    static const struct lws_protocols protocols[] = {{"http", http_cb, 0, 0, 0, NULL, 0}, {NULL, NULL, 0, 0, 0, NULL, 0}};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    info.fd_limit_per_thread = 20000;
    info.pt_serv_buf_size = (unsigned)read_buffer;
    info.keepalive_timeout = 60;
    info.timeout_secs = 60;
    struct ev_loop *loop = NULL;
    void *foreign[1];
    if (!use_poll) {
        loop = ev_loop_new(EVBACKEND_EPOLL);
        foreign[0] = loop;
        info.options |= LWS_SERVER_OPTION_LIBEV;
        info.foreign_loops = foreign;
    }
    ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "lws_floor: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!got_signal) {
        if (loop)
            ev_run(loop, EVRUN_ONCE);
        else if (lws_service(ctx, 0) < 0)
            break;
    }
    lws_context_destroy(ctx);
    if (loop)
        ev_loop_destroy(loop);
    printf("requests=%llu\n", requests);
    return 0;
}
