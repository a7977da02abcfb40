/* writer.c - queues each record's line, writes them to stdout in large non-blocking writes
 * (or sends them to the journal) and reports each frame once all its lines are out. */
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#ifdef TLM_HAVE_SYSTEMD
#define SD_JOURNAL_SUPPRESS_LOCATION /* no CODE_FILE/CODE_LINE of this file on every record */
#include <systemd/sd-journal.h>
/* <syslog.h> (from sd-journal.h) defines LOG_DEBUG and LOG_INFO, which log.h uses. */
#undef LOG_DEBUG
#undef LOG_INFO
#endif

#include "../common/log.h"

#define WRITER_CHUNK_DEFAULT (1u << 20)
#define WRITER_BATCH_DEFAULT (8u << 20)
#define WRITER_KEEP_CAP (1u << 20)      /* output buffer kept while idle */
#define WRITER_JOURNAL_BATCH 10000      /* records sent per flush before yielding */
#define WRITER_RETRY_MS 1000
#define WRITER_JOURNAL_SOCKET "/run/systemd/journal/socket"

/* One queued frame. Console frames end at an absolute output offset; journal frames keep
 * a copy of their payload and how many of their records were already sent. */
struct wframe {
    void *owner;
    uint64_t seq;
    uint64_t end;
    uint32_t kinds[3];
    uint32_t truncated;
    uint8_t *payload; /* journal only */
    uint32_t payload_len;
    uint8_t flags;
    uint32_t next;
};

struct writer {
    struct writer_config cfg;
    struct writer_hooks hooks;
    int fd_flags; /* fcntl flags before O_NONBLOCK was added, -1 when untouched */
    /* console output: p[start..end) waits; written is the absolute offset of p[start] */
    char *p;
    size_t start, end, cap;
    uint64_t written;
    /* frames in queue order: q[qhead..qlen) */
    struct wframe *q;
    size_t qhead, qlen, qcap;
    size_t journal_bytes;
    int over;    /* pressure hook last said "over" */
    int blocked; /* waiting for POLLOUT */
    int failing; /* waiting for the retry timer */
    int fatal;
    double blocked_since;
    double stall_since; /* first stop without progress since the last progress; 0 = none */
    struct writer_stats st;
    struct buf scratch; /* journal fields */
    /* lws glue */
    struct lws_context *ctx;
    struct lws *wsi;
    int in_writeable;                  /* inside its LWS_CALLBACK_RAW_WRITEABLE_FILE */
    lws_sorted_usec_list_t sul;        /* wait_timer */
    lws_sorted_usec_list_t rearm_sul;  /* POLLOUT asked from inside the writeable callback */
    lws_sorted_usec_list_t flush_sul;  /* lines queued: flush before the next poll */
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct writer *writer_new(const struct writer_config *cfg, const struct writer_hooks *hooks,
                          char *err, size_t errlen)
{
#ifndef TLM_HAVE_SYSTEMD
    if (cfg->sink == WRITER_JOURNAL) {
        snprintf(err, errlen, "TELEMETRY_TRACES_PROVIDER: Journal needs a build with libsystemd; "
                              "this binary was built without it (use Console)");
        return NULL;
    }
#endif
    struct writer *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "writer: out of memory");
        return NULL;
    }
    w->cfg = *cfg;
    if (hooks)
        w->hooks = *hooks;
    if (!w->cfg.chunk_bytes)
        w->cfg.chunk_bytes = WRITER_CHUNK_DEFAULT;
    if (!w->cfg.batch_bytes)
        w->cfg.batch_bytes = WRITER_BATCH_DEFAULT;
    w->fd_flags = -1;
    buf_init(&w->scratch);
    if (cfg->sink == WRITER_CONSOLE) {
        int fl = fcntl(cfg->fd, F_GETFL);
        if (fl < 0) {
            snprintf(err, errlen, "output fd %d: %s", cfg->fd, strerror(errno));
            free(w);
            return NULL;
        }
        if (!(fl & O_NONBLOCK)) {
            if (fcntl(cfg->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
                snprintf(err, errlen, "output fd %d: O_NONBLOCK: %s", cfg->fd, strerror(errno));
                free(w);
                return NULL;
            }
            w->fd_flags = fl;
        }
    }
    return w;
}

void writer_free(struct writer *w)
{
    if (!w)
        return;
    if (w->fd_flags >= 0)
        (void)fcntl(w->cfg.fd, F_SETFL, w->fd_flags);
    for (size_t i = w->qhead; i < w->qlen; i++)
        free(w->q[i].payload);
    free(w->q);
    free(w->p);
    buf_free(&w->scratch);
    free(w);
}

/* ---- asking the loop for the next flush ---- */

static void writer_rearm_cb(lws_sorted_usec_list_t *sul);

static void want_writable(struct writer *w)
{
    if (w->ctx) {
        /* lws 4.1 clears POLLOUT of a raw file after its writeable callback returns, so a
         * request made inside that callback is re-made on the next loop pass. */
        if (w->wsi && w->in_writeable)
            lws_sul_schedule(w->ctx, 0, &w->rearm_sul, writer_rearm_cb, 1);
        else if (w->wsi)
            lws_callback_on_writable(w->wsi);
    } else if (w->hooks.wait_writable) {
        w->hooks.wait_writable(w->hooks.user);
    }
}

static void writer_sul_cb(lws_sorted_usec_list_t *sul);

static void want_timer(struct writer *w, int ms)
{
    if (w->ctx)
        lws_sul_schedule(w->ctx, 0, &w->sul, writer_sul_cb, (lws_usec_t)ms * 1000);
    else if (w->hooks.wait_timer)
        w->hooks.wait_timer(ms, w->hooks.user);
}

/* The output is blocked (POLLOUT armed), failing (the retry timer armed) or gone: the next
 * flush is already due, or never. */
static int flush_waits(const struct writer *w) { return w->blocked || w->failing || w->fatal; }

static void writer_flush_cb(lws_sorted_usec_list_t *sul);

/* Lines were queued. Console output is written without asking poll first: stdout is
 * nearly always writable, and a POLLOUT round cost two poll(2) calls and a loop pass per
 * frame. The owner of the input calls writer_kick after its read; this timer is the net
 * for a push nobody kicks. Only an EAGAIN makes the writer wait for POLLOUT. */
static void want_flush(struct writer *w)
{
    if (flush_waits(w))
        return;
    if (w->cfg.sink != WRITER_CONSOLE)
        want_timer(w, 0);
    else if (w->ctx)
        lws_sul_schedule(w->ctx, 0, &w->flush_sul, writer_flush_cb, 0);
    else
        want_writable(w);
}

/* ---- the frame queue ---- */

/* A zeroed slot at q[qlen], not yet counted: the caller commits it with qlen++. */
static struct wframe *queue_slot(struct writer *w)
{
    if (w->qlen == w->qcap && w->qhead > 0) {
        memmove(w->q, w->q + w->qhead, (w->qlen - w->qhead) * sizeof(*w->q));
        w->qlen -= w->qhead;
        w->qhead = 0;
    }
    if (w->qlen == w->qcap) {
        size_t cap = w->qcap ? w->qcap * 2 : 64;
        struct wframe *q = realloc(w->q, cap * sizeof(*q));
        if (!q)
            return NULL;
        w->q = q;
        w->qcap = cap;
    }
    memset(&w->q[w->qlen], 0, sizeof(w->q[0]));
    return &w->q[w->qlen];
}

/* Pops the head frame, counts it and tells its owner. */
static void frame_finish(struct writer *w)
{
    struct wframe f = w->q[w->qhead++];
    if (w->qhead == w->qlen)
        w->qhead = w->qlen = 0;
    for (int k = 0; k < 3; k++)
        w->st.records[k] += f.kinds[k];
    w->st.truncated += f.truncated;
    w->st.frames++;
    if (f.payload) {
        w->journal_bytes -= f.payload_len;
        free(f.payload);
    }
    if (f.owner && w->hooks.frame_done)
        w->hooks.frame_done(f.owner, f.seq, w->hooks.user);
}

static void check_pressure(struct writer *w)
{
    size_t q = writer_queued_bytes(w);
    if (!w->over && q > w->cfg.limit_bytes) {
        w->over = 1;
        if (w->hooks.pressure)
            w->hooks.pressure(1, w->hooks.user);
    } else if (w->over && q <= w->cfg.limit_bytes / 2) {
        w->over = 0;
        if (w->hooks.pressure)
            w->hooks.pressure(0, w->hooks.user);
    }
}

/* ---- console ---- */

static int out_reserve(struct writer *w, size_t n)
{
    if (w->end + n <= w->cap)
        return 0;
    if (w->start > 0) {
        memmove(w->p, w->p + w->start, w->end - w->start);
        w->end -= w->start;
        w->start = 0;
        if (w->end + n <= w->cap)
            return 0;
    }
    size_t cap = w->cap ? w->cap : 64 * 1024;
    while (cap < w->end + n)
        cap *= 2;
    char *p = realloc(w->p, cap);
    if (!p)
        return -1;
    w->p = p;
    w->cap = cap;
    return 0;
}

static int console_push(struct writer *w, const struct proto_frame *f, void *owner)
{
    struct proto_records_reader rd;
    struct proto_record r;
    if (proto_records_open(f, &rd) != PROTO_OK)
        return -1;
    struct wframe *q = queue_slot(w);
    /* Lines plus their newlines are always shorter than the payload that carries them. */
    if (!q || out_reserve(w, f->payload_len))
        return -1;
    while (proto_records_next(&rd, &r) == PROTO_OK) {
        memcpy(w->p + w->end, r.line.p, r.line.len);
        w->end += r.line.len;
        w->p[w->end++] = '\n';
        q->kinds[r.kind - 1]++;
        if (r.flags & PROTO_REC_TRUNCATED)
            q->truncated++;
        if (w->hooks.observe)
            w->hooks.observe(&r, w->hooks.user);
    }
    q->owner = owner;
    q->seq = rd.seq;
    q->end = w->written + (w->end - w->start);
    w->qlen++;
    return 0;
}

/* Bytes left the buffer: move the write position and finish the frames it passed. */
static void console_progress(struct writer *w, size_t n)
{
    w->start += n;
    w->written += n;
    w->st.bytes += n;
    w->stall_since = 0;
    if (w->start == w->end)
        w->start = w->end = 0;
    while (w->qhead < w->qlen && w->q[w->qhead].end <= w->written)
        frame_finish(w);
}

static enum writer_state console_flush(struct writer *w)
{
    size_t budget = w->cfg.batch_bytes;
    while (w->start < w->end) {
        if (!budget)
            return WRITER_MORE;
        size_t n = w->end - w->start;
        if (n > w->cfg.chunk_bytes)
            n = w->cfg.chunk_bytes;
        if (n > budget)
            n = budget;
        w->st.write_calls++;
        ssize_t k = write(w->cfg.fd, w->p + w->start, n);
        if (k > 0) {
            console_progress(w, (size_t)k);
            budget -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            w->st.eagain++;
            return WRITER_BLOCKED;
        }
        int e = k < 0 ? errno : EIO;
        w->st.write_errors++;
        if (e == EPIPE || e == EBADF || e == EINVAL) {
            char why[128];
            snprintf(why, sizeof(why), "stdout write failed for good: %s", strerror(e));
            w->fatal = 1;
            if (w->hooks.fatal)
                w->hooks.fatal(why, w->hooks.user);
            return WRITER_FATAL;
        }
        if (!w->stall_since)
            log_app(LOG_WARN, "stdout write failed: %s; retrying every %d ms", strerror(e),
                    WRITER_RETRY_MS);
        return WRITER_RETRY;
    }
    return WRITER_IDLE;
}

/* ---- journal ---- */

static int journal_push(struct writer *w, const struct proto_frame *f, void *owner)
{
    struct proto_records_reader rd;
    struct proto_record r;
    if (proto_records_open(f, &rd) != PROTO_OK)
        return -1;
    struct wframe *q = queue_slot(w);
    if (!q || !(q->payload = malloc(f->payload_len ? f->payload_len : 1)))
        return -1;
    memcpy(q->payload, f->payload, f->payload_len);
    q->payload_len = f->payload_len;
    q->flags = f->flags;
    q->owner = owner;
    q->seq = rd.seq;
    while (w->hooks.observe && proto_records_next(&rd, &r) == PROTO_OK)
        w->hooks.observe(&r, w->hooks.user);
    w->journal_bytes += f->payload_len;
    w->qlen++;
    return 0;
}

static enum writer_state journal_flush(struct writer *w)
{
#ifdef TLM_HAVE_SYSTEMD
    struct iovec iov[WRITER_JOURNAL_MAX_FIELDS];
    unsigned budget = WRITER_JOURNAL_BATCH;
    /* sd_journal_sendv() reports success when journald is absent (its socket missing):
     * check first, so no record is acked into nothing. */
    if (w->qhead < w->qlen && access(WRITER_JOURNAL_SOCKET, W_OK) != 0) {
        w->st.journal_errors++;
        if (!w->stall_since)
            log_app(LOG_WARN, "journal socket %s: %s; retrying every %d ms", WRITER_JOURNAL_SOCKET,
                    strerror(errno), WRITER_RETRY_MS);
        return WRITER_RETRY;
    }
    while (w->qhead < w->qlen) {
        struct wframe *q = &w->q[w->qhead];
        struct proto_frame f = {PROTO_RECORDS, q->flags, q->payload_len, q->payload};
        struct proto_records_reader rd;
        struct proto_record r;
        uint32_t i = 0;
        if (proto_records_open(&f, &rd) != PROTO_OK) {
            frame_finish(w); /* cannot happen: it was validated before it was queued */
            continue;
        }
        while (proto_records_next(&rd, &r) == PROTO_OK) {
            if (i++ < q->next)
                continue;
            if (!budget--)
                return WRITER_MORE;
            int n = writer_journal_fields(&r, &w->scratch, iov, WRITER_JOURNAL_MAX_FIELDS);
            int rc = n < 0 ? -ENOMEM : sd_journal_sendv(iov, n);
            w->st.write_calls++;
            if (rc < 0) {
                w->st.journal_errors++;
                if (!w->stall_since)
                    log_app(LOG_WARN, "journal send failed: %s; retrying every %d ms",
                            strerror(-rc), WRITER_RETRY_MS);
                return WRITER_RETRY;
            }
            q->next++;
            q->kinds[r.kind - 1]++;
            if (r.flags & PROTO_REC_TRUNCATED)
                q->truncated++;
            w->st.bytes += r.line.len + 1;
            w->stall_since = 0;
        }
        frame_finish(w);
    }
#endif
    (void)w;
    return WRITER_IDLE;
}

/* ---- public core ---- */

int writer_push(struct writer *w, const struct proto_frame *f, void *owner)
{
    int rc = w->cfg.sink == WRITER_CONSOLE ? console_push(w, f, owner) : journal_push(w, f, owner);
    if (rc)
        return -1;
    check_pressure(w);
    want_flush(w);
    return 0;
}

void writer_kick(struct writer *w)
{
    if (flush_waits(w) || w->cfg.sink != WRITER_CONSOLE || w->start == w->end)
        return;
    writer_flush(w);
}

enum writer_state writer_flush(struct writer *w)
{
    if (w->ctx)
        lws_sul_cancel(&w->flush_sul); /* this is the flush it stood for */
    if (w->fatal)
        return WRITER_FATAL;
    w->failing = 0;
    enum writer_state st = w->cfg.sink == WRITER_CONSOLE ? console_flush(w) : journal_flush(w);
    double now = now_mono();
    if (st == WRITER_BLOCKED) {
        if (!w->blocked) {
            w->blocked = 1;
            w->blocked_since = now;
        }
    } else if (w->blocked) {
        w->st.blocked_seconds += now - w->blocked_since;
        w->blocked = 0;
    }
    if ((st == WRITER_BLOCKED || st == WRITER_RETRY) && !w->stall_since)
        w->stall_since = now;
    switch (st) {
    case WRITER_BLOCKED:
        want_writable(w);
        break;
    case WRITER_RETRY:
        w->failing = 1;
        want_timer(w, WRITER_RETRY_MS);
        break;
    case WRITER_MORE:
        if (w->cfg.sink == WRITER_CONSOLE)
            want_writable(w);
        else
            want_timer(w, 0);
        break;
    case WRITER_IDLE:
        w->stall_since = 0;
        if (w->cap > WRITER_KEEP_CAP) { /* give a burst's memory back */
            free(w->p);
            w->p = NULL;
            w->cap = 0;
        }
        break;
    case WRITER_FATAL:
        break;
    }
    check_pressure(w);
    return st;
}

void writer_forget_owner(struct writer *w, void *owner)
{
    for (size_t i = w->qhead; i < w->qlen; i++)
        if (w->q[i].owner == owner)
            w->q[i].owner = NULL;
}

size_t writer_queued_bytes(const struct writer *w)
{
    return w->cfg.sink == WRITER_CONSOLE ? w->end - w->start : w->journal_bytes;
}

size_t writer_queued_frames(const struct writer *w) { return w->qlen - w->qhead; }

int writer_over_limit(const struct writer *w) { return w->over; }

double writer_stalled_seconds(const struct writer *w)
{
    return w->stall_since ? now_mono() - w->stall_since : 0;
}

double writer_blocked_seconds_total(const struct writer *w)
{
    return w->st.blocked_seconds + (w->blocked ? now_mono() - w->blocked_since : 0);
}

const struct writer_stats *writer_stats(const struct writer *w) { return &w->st; }

enum writer_sink writer_sink(const struct writer *w) { return w->cfg.sink; }

/* ---- journal fields (pure) ---- */

int writer_journal_fields(const struct proto_record *r, struct buf *s, struct iovec *iov,
                          size_t max)
{
    static const char *const kinds[] = {"trace", "event", "metric"};
    size_t off[WRITER_JOURNAL_MAX_FIELDS], len[WRITER_JOURNAL_MAX_FIELDS], n = 0;
    buf_reset(s);
#define FIELD_BEGIN(key)                                                                   \
    do {                                                                                   \
        if (n >= max || n >= WRITER_JOURNAL_MAX_FIELDS)                                    \
            return -1;                                                                     \
        off[n] = s->len;                                                                   \
        buf_puts(s, key "=");                                                              \
    } while (0)
#define FIELD_END() (len[n] = s->len - off[n], n++)
#define FIELD_STR(key, str)                                                                \
    do {                                                                                   \
        FIELD_BEGIN(key);                                                                  \
        if ((str).len)                                                                     \
            buf_append(s, (str).p, (str).len);                                             \
        FIELD_END();                                                                       \
    } while (0)

    FIELD_STR("MESSAGE", r->line);
    FIELD_BEGIN("PRIORITY");
    buf_putc(s, (char)('0' + (r->level <= 7 ? r->level : 6)));
    FIELD_END();
    FIELD_BEGIN("SYSLOG_IDENTIFIER");
    buf_puts(s, "tlm");
    FIELD_END();
    FIELD_BEGIN("TLM_KIND");
    buf_puts(s, r->kind >= 1 && r->kind <= 3 ? kinds[r->kind - 1] : "unknown");
    FIELD_END();
    FIELD_STR("TLM_APP", r->app);
    FIELD_STR("TLM_TENANT", r->tenant);
    FIELD_STR("TLM_CONTACT_CENTER_ID", r->ccid);
    if (r->name.len)
        FIELD_STR("TLM_NAME", r->name);
    if (r->flags & PROTO_REC_HAS_VALUE) {
        FIELD_BEGIN("TLM_VALUE");
        buf_put_double(s, r->value);
        FIELD_END();
    }
    FIELD_STR("TLM_RID", r->rid);
    FIELD_BEGIN("TLM_TS");
    buf_printf(s, "%lld", (long long)r->ts_ms);
    FIELD_END();
    if (r->flags & PROTO_REC_TRUNCATED) {
        FIELD_BEGIN("TLM_TRUNCATED");
        buf_putc(s, '1');
        FIELD_END();
    }
#undef FIELD_STR
#undef FIELD_END
#undef FIELD_BEGIN
    if (s->oom)
        return -1;
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = s->p + off[i];
        iov[i].iov_len = len[i];
    }
    return (int)n;
}

/* ---- lws glue: stdout as a raw file (POLLOUT only) and a timer ---- */

static void writer_sul_cb(lws_sorted_usec_list_t *sul)
{
    struct writer *w = lws_container_of(sul, struct writer, sul);
    writer_flush(w);
}

static void writer_flush_cb(lws_sorted_usec_list_t *sul)
{
    struct writer *w = lws_container_of(sul, struct writer, flush_sul);
    writer_flush(w);
}

static void writer_rearm_cb(lws_sorted_usec_list_t *sul)
{
    struct writer *w = lws_container_of(sul, struct writer, rearm_sul);
    if (w->wsi)
        lws_callback_on_writable(w->wsi);
}

static int writer_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    struct writer *w = lws_get_opaque_user_data(wsi);
    (void)user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (w) {
            w->in_writeable = 1;
            writer_flush(w);
            w->in_writeable = 0;
        }
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        /* lws closes the fd on POLLHUP/POLLERR: the reader of stdout is gone. */
        if (w && w->wsi == wsi) {
            w->wsi = NULL;
            if (!w->fatal) {
                w->fatal = 1;
                if (w->hooks.fatal)
                    w->hooks.fatal("stdout hung up (its reader is gone)", w->hooks.user);
            }
        }
        return 0;
    default:
        return 0;
    }
}

const struct lws_protocols writer_lws_protocol = {"tlm-stdout", writer_lws_cb, 0, 0, 0, NULL, 0};

int writer_lws_attach(struct writer *w, struct lws_context *ctx, struct lws_vhost *vh, char *err,
                      size_t errlen)
{
    w->ctx = ctx;
    if (w->cfg.sink != WRITER_CONSOLE)
        return 0;
    /* lws closes what it adopted: give it a dup so fd 1 itself stays ours. */
    int fd = fcntl(w->cfg.fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        snprintf(err, errlen, "stdout: dup: %s", strerror(errno));
        return -1;
    }
    lws_adopt_desc_t ad;
    memset(&ad, 0, sizeof(ad));
    ad.vh = vh;
    ad.type = LWS_ADOPT_RAW_FILE_DESC;
    ad.fd.filefd = fd;
    ad.vh_prot_name = writer_lws_protocol.name;
    ad.opaque = w;
    w->wsi = lws_adopt_descriptor_vhost_via_info(&ad);
    if (!w->wsi) {
        close(fd);
        snprintf(err, errlen, "stdout: cannot add it to the event loop");
        return -1;
    }
    /* Never POLLIN: a terminal or a regular file would wake the loop for nothing. */
    lws_rx_flow_control(w->wsi, 0);
    return 0;
}

void writer_lws_detach(struct writer *w)
{
    if (w->wsi)
        lws_set_opaque_user_data(w->wsi, NULL);
    w->wsi = NULL;
    if (w->ctx) {
        lws_sul_cancel(&w->sul);
        lws_sul_cancel(&w->rearm_sul);
        lws_sul_cancel(&w->flush_sul);
    }
    w->ctx = NULL;
}
