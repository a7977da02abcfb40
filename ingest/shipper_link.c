/* shipper_link.c - UNIX socket client to the logshipper on the lws loop (see shipper_link.h). */
#include "shipper_link.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/hash.h"
#include "../common/log.h"
#include "../proto/tlm_proto.h"

#define LINK_CONTROL_MAX (1024 * 1024) /* queued control bytes above which STATS are skipped */
#define LINK_IOV 64                     /* buffers per writev */
#define LINK_READ_CHUNK 65536

static void link_schedule_reconnect(struct shipper_link *l);

static void kick_cb(lws_sorted_usec_list_t *sul)
{
    struct shipper_link *l = lws_container_of(sul, struct shipper_link, kick_sul);
    if (l->wsi)
        lws_callback_on_writable(l->wsi);
}

/* lws 4.1 forgets a writable request made inside a raw file's own WRITEABLE callback:
 * from there, ask again on the next loop pass. */
static void link_want_write(struct shipper_link *l)
{
    if (l->in_writeable)
        lws_sul_schedule(l->ctx, 0, &l->kick_sul, kick_cb, 1);
    else
        lws_callback_on_writable(l->wsi);
}

void shipper_link_init(struct shipper_link *l, struct lws_context *ctx, struct lws_vhost *vh,
                       const char *path, struct pipeline *pipe)
{
    memset(l, 0, sizeof(*l));
    l->ctx = ctx;
    l->vh = vh;
    l->path = path;
    l->pipe = pipe;
    l->fd = -1;
    l->instance_id = hash_random_u64();
    l->backoff_ms = 50;
}

static int link_connect(struct shipper_link *l)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(l->path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, l->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    lws_adopt_desc_t ad;
    memset(&ad, 0, sizeof(ad));
    ad.vh = l->vh;
    ad.type = LWS_ADOPT_RAW_FILE_DESC;
    ad.fd.filefd = fd;
    ad.vh_prot_name = shipper_link_protocol.name;
    ad.opaque = l;
    struct lws *wsi = lws_adopt_descriptor_vhost_via_info(&ad);
    if (!wsi)
        return -1; /* lws closed fd */
    l->wsi = wsi;
    l->fd = fd;
    l->ready = 0;
    l->closing = 0;
    buf_reset(&l->in);
    buf_reset(&l->out);
    l->out_off = 0;
    l->sent_seq = l->pipe->acked_seq;
    l->frame_off = 0;
    l->connects++;
    struct proto_hello h = {PROTO_VERSION, 1, l->instance_id, (uint32_t)getpid()};
    proto_put_hello(&l->out, &h);
    lws_callback_on_writable(wsi);
    return 0;
}

static void reconnect_cb(lws_sorted_usec_list_t *sul)
{
    struct shipper_link *l = lws_container_of(sul, struct shipper_link, reconnect_sul);
    if (l->wsi)
        return;
    if (link_connect(l) == 0)
        return;
    if (l->connects == 0 || l->backoff_ms >= 2000)
        log_app(LOG_DEBUG, "logshipper not reachable at %s: %s", l->path, strerror(errno));
    link_schedule_reconnect(l);
}

static void link_schedule_reconnect(struct shipper_link *l)
{
    lws_sul_schedule(l->ctx, 0, &l->reconnect_sul, reconnect_cb, (lws_usec_t)l->backoff_ms * 1000);
    l->backoff_ms = l->backoff_ms * 2 > 2000 ? 2000 : l->backoff_ms * 2;
}

void shipper_link_start(struct shipper_link *l)
{
    if (link_connect(l) != 0) {
        log_app(LOG_WARN, "logshipper not reachable at %s yet (%s); retrying", l->path, strerror(errno));
        link_schedule_reconnect(l);
    }
}

/* The first closed frame not completely written on this connection. */
static struct pipeline_frame *link_next_frame(const struct shipper_link *l)
{
    struct pipeline_frame *f = l->pipe->head;
    while (f && f->seq <= l->sent_seq)
        f = f->next;
    return f;
}

static void link_frame_done(struct shipper_link *l, const struct pipeline_frame *f)
{
    l->sent_seq = f->seq;
    l->frame_off = 0;
    l->frames_sent++;
    if (f->seq <= l->max_sent_seq)
        l->frames_resent++;
    else
        l->max_sent_seq = f->seq;
}

/* Writes until the socket is full (0), everything is out (1), or on an error or a finished
 * close (-1). On the wire: the rest of a records frame already begun, then the queued control
 * frames (HELLO, PING replies, STATS, BYE), then closed frames, written with writev from the
 * pipeline's own buffers (copying them into one output buffer first was 1-4 % of the ingest,
 * most under WebSocket load, where the frames have left the cache by the time they go). */
static int link_send_all(struct shipper_link *l)
{
    for (;;) {
        struct iovec iov[LINK_IOV];
        struct pipeline_frame *of[LINK_IOV]; /* the frame of each buffer, NULL for control bytes */
        int n = 0;
        struct pipeline_frame *f = l->ready ? link_next_frame(l) : NULL;
        if (f && l->frame_off) { /* never split a frame with anything else */
            of[n] = f;
            iov[n++] = (struct iovec){f->data.p + l->frame_off, f->data.len - l->frame_off};
            f = f->next;
        }
        if (l->out_off < l->out.len) {
            of[n] = NULL;
            iov[n++] = (struct iovec){l->out.p + l->out_off, l->out.len - l->out_off};
        }
        for (; f && !l->closing && n < LINK_IOV; f = f->next) {
            of[n] = f;
            iov[n++] = (struct iovec){f->data.p, f->data.len};
        }
        if (n == 0)
            return l->closing ? -1 : 1; /* closing: the BYE is out */
        ssize_t w = writev(l->fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return 0;
        if (w < 0)
            return -1;
        l->bytes_sent += (uint64_t)w;
        size_t left = (size_t)w;
        for (int i = 0; i < n && left; i++) {
            size_t took = left < iov[i].iov_len ? left : iov[i].iov_len;
            left -= took;
            if (!of[i])
                l->out_off += took;
            else if (took < iov[i].iov_len)
                l->frame_off += took; /* 0 before, unless this is the frame already begun */
            else
                link_frame_done(l, of[i]);
        }
        if (l->out_off == l->out.len) { /* control bytes all out: the buffer starts over */
            buf_reset(&l->out);
            l->out_off = 0;
        }
    }
}

/* Frames go out as soon as they are closed, not at the link's next writable callback: one
 * loop pass over 256 connections uploading 270 KB bodies is long, and frames of at most
 * 256 KiB sent once a pass held the ingest to a tenth of its rate. */
void shipper_link_pump(struct shipper_link *l)
{
    if (!l->wsi || !l->ready || l->closing)
        return;
    if (l->in_writeable) /* the writable callback running now goes on writing */
        return;
    if (link_send_all(l) != 1) /* full, or failed: the writable callback meets the error again and closes */
        link_want_write(l);
}

void shipper_link_send_stats(struct shipper_link *l, int64_t ts_ms, int gauth_up, const char *text, size_t len)
{
    if (!l->wsi || !l->ready || l->closing || l->out.len - l->out_off > LINK_CONTROL_MAX)
        return;
    proto_put_stats(&l->out, ts_ms, gauth_up ? PROTO_STATS_GAUTH_UP : 0, text, len);
    lws_callback_on_writable(l->wsi);
}

void shipper_link_bye(struct shipper_link *l)
{
    if (!l->wsi || l->closing)
        return;
    proto_put_bye(&l->out, 0, "ingest shutting down");
    l->closing = 1;
    lws_callback_on_writable(l->wsi);
}

/* Tells the peer why (BYE, best effort: the socket is non-blocking) and drops the link. */
static int link_fail(struct shipper_link *l, uint16_t reason, const char *why)
{
    struct buf bye;
    buf_init(&bye);
    proto_put_bye(&bye, reason, why);
    if (bye.len && write(l->fd, bye.p, bye.len) < 0)
        log_app(LOG_DEBUG, "could not send BYE: %s", strerror(errno));
    buf_free(&bye);
    l->protocol_errors++;
    log_app(LOG_WARN, "bad frame from logshipper: %s; reconnecting", why);
    return -1;
}

static int link_bad_frame(struct shipper_link *l, int status)
{
    return link_fail(l, 1, proto_strerror(status));
}

static int link_handle_frame(struct shipper_link *l, const struct proto_frame *f)
{
    switch (f->type) {
    case PROTO_HELLO: {
        struct proto_hello h;
        int st = proto_get_hello(f, &h);
        if (st)
            return link_bad_frame(l, st);
        if (h.version != PROTO_VERSION || h.role != 2) {
            log_app(LOG_ERROR, "logshipper speaks protocol version %u (role %u), we speak %u", h.version, h.role, PROTO_VERSION);
            return link_fail(l, 2, "protocol version mismatch");
        }
        l->ready = 1;
        l->backoff_ms = 50;
        l->up_since_us = lws_now_usecs();
        log_app(LOG_INFO, "connected to logshipper at %s; %llu un-acked records to (re)send", l->path,
                (unsigned long long)l->pipe->records);
        shipper_link_pump(l);
        return 0;
    }
    case PROTO_ACK: {
        uint64_t seq;
        int st = proto_get_ack(f, &seq);
        if (st)
            return link_bad_frame(l, st);
        if (seq > l->sent_seq) /* acks cannot cover what was never sent */
            return link_bad_frame(l, PROTO_ERR_VALUE);
        l->acks++;
        pipeline_ack(l->pipe, seq, lws_now_usecs(), l->on_ack_latency, l->cb_ctx);
        if (l->on_ack)
            l->on_ack(l->cb_ctx, seq);
        shipper_link_pump(l);
        return 0;
    }
    case PROTO_PING: {
        uint64_t nonce;
        int st = proto_get_ping(f, &nonce);
        if (st)
            return link_bad_frame(l, st);
        if (!(f->flags & PROTO_PING_REPLY)) {
            proto_put_ping(&l->out, nonce, 1);
            link_want_write(l);
        }
        return 0;
    }
    case PROTO_BYE:
        log_app(LOG_INFO, "logshipper said bye; reconnecting");
        return -1;
    default:
        return link_bad_frame(l, PROTO_ERR_TYPE);
    }
}

static int link_read(struct shipper_link *l)
{
    for (;;) {
        if (buf_reserve(&l->in, LINK_READ_CHUNK))
            return -1;
        ssize_t n = read(l->fd, l->in.p + l->in.len, LINK_READ_CHUNK);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0)
            return -1;
        l->in.len += (size_t)n;
        if ((size_t)n < LINK_READ_CHUNK)
            break;
    }
    size_t off = 0;
    while (off < l->in.len) {
        struct proto_frame f;
        size_t used;
        int st = proto_frame_parse((const uint8_t *)l->in.p + off, l->in.len - off, &f, &used);
        if (st == PROTO_NEED_MORE)
            break;
        if (st != PROTO_OK)
            return link_bad_frame(l, st);
        if (link_handle_frame(l, &f))
            return -1;
        if (!l->wsi)
            return -1;
        off += used;
    }
    buf_consume(&l->in, off);
    return 0;
}

static int link_write(struct shipper_link *l)
{
    int r = link_send_all(l);
    if (r == 0)
        link_want_write(l);
    return r < 0 ? -1 : 0;
}

static int link_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    struct shipper_link *l = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        return l ? link_read(l) : -1;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE: {
        if (!l)
            return -1;
        l->in_writeable = 1;
        int r = link_write(l);
        l->in_writeable = 0;
        return r;
    }
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (!l || l->wsi != wsi)
            return 0;
        l->wsi = NULL;
        l->fd = -1;
        l->ready = 0;
        l->disconnects++;
        buf_reset(&l->out);
        l->out_off = 0;
        l->frame_off = 0;
        if (!l->closing) {
            log_app(LOG_WARN, "link to logshipper closed; %llu un-acked records kept for re-send",
                    (unsigned long long)l->pipe->records);
            l->backoff_ms = 50;
            link_schedule_reconnect(l);
        }
        return 0;
    default:
        return 0;
    }
}

const struct lws_protocols shipper_link_protocol = {"tlm-shipper-link", link_callback, 0, 0, 0, NULL, 0};

void shipper_link_free(struct shipper_link *l)
{
    lws_sul_cancel(&l->reconnect_sul);
    lws_sul_cancel(&l->kick_sul);
    buf_free(&l->in);
    buf_free(&l->out);
}
