/* link_server.c - owns the ingest links: the listening UNIX socket, one struct link per
 * connection (read buffer, outgoing frames, seq bookkeeping), frame dispatch and acks. */
#include "link_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "../common/hash.h"
#include "../common/log.h"

#define LINK_RBUF_MIN (64u * 1024u)     /* read buffer of an idle link */
#define LINK_RBUF_KEEP (1u << 20)       /* a read buffer up to this size is kept for the next frame */
#define LINK_OBUF_MAX (1u << 20)        /* unsent bytes before a link counts as dead */
#define LINK_READS_PER_PASS 16          /* read(2) calls per POLLIN before yielding */
#define LINK_CLOSE_GRACE_S 5            /* seconds a BYE may take to leave */
#define LINK_ACCEPT_PER_PASS 64
#define LINK_HELLO_TIMEOUT_S 10         /* a link must say HELLO this soon */
#define LINK_LISTEN_BACKLOG 64

enum { BYE_SHUTDOWN = 0, BYE_PROTOCOL = 1, BYE_VERSION = 2 };

struct link {
    struct link_server *ls;
    struct lws *wsi;
    int fd;
    struct link *prev, *next;
    uint8_t *rbuf; /* rbuf[0..rlen) read, not yet decoded */
    size_t rlen, rcap;
    struct buf obuf; /* outgoing frames; obuf[osent..len) not yet sent */
    size_t osent;
    int hello;   /* the peer's HELLO arrived */
    int closing; /* a BYE is queued: close once obuf is out */
    uint64_t instance_id;
    uint32_t pid;
    uint64_t last_seq;    /* highest RECORDS seq received */
    uint64_t written_seq; /* highest seq whose lines are all written */
    uint64_t acked_seq;   /* highest seq acked */
    int in_writeable;     /* inside its LWS_CALLBACK_RAW_WRITEABLE_FILE */
    lws_sorted_usec_list_t rearm_sul;
    lws_sorted_usec_list_t ack_sul; /* a frame was written: ack before the next poll */
    char *stats;          /* the latest STATS text */
    lws_usec_t stats_at_us; /* when it came */
    size_t stats_len;
    uint64_t stats_serial;
    int stats_gauth_up;     /* the GAuth bit of that STATS */
};

struct link_server {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct writer *writer;
    char *path;
    dev_t sock_dev;
    ino_t sock_ino;
    int listen_fd;
    struct lws *listen_wsi;
    struct link *links;
    size_t nlinks;
    int paused;
    uint64_t instance_id;
    uint64_t stats_serial;
    struct link_server_stats st;
    lws_sorted_usec_list_t accept_sul; /* re-enables accept after EMFILE */
    lws_sorted_usec_list_t check_sul;  /* is the socket file still ours? */
    int stopped;                       /* stop_listening was called: do not bind again */
};

#define LINK_SOCKET_CHECK_US (1000 * 1000)

/* ---- the listening socket ---- */

/* mkdir -p of path's parent; directories it creates get mode 0770. */
static int make_parent(const char *path, char *err, size_t errlen)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0770) == 0) {
            (void)chmod(dir, 0770); /* whatever the umask took away */
        } else if (errno != EEXIST) {
            snprintf(err, errlen, "TELEMETRY_SOCKET: cannot create directory %s: %s", dir,
                     strerror(errno));
            return -1;
        }
        *p = c;
        if (!c)
            break;
    }
    return 0;
}

/* A socket file left by a dead logshipper is removed; a live one or another file is an error. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "TELEMETRY_SOCKET: %s: %s", path,
                                               strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "TELEMETRY_SOCKET: %s exists and is not a socket", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
        close(fd);
        if (live) {
            snprintf(err, errlen, "TELEMETRY_SOCKET: %s: another process is listening on it", path);
            return -1;
        }
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "TELEMETRY_SOCKET: cannot remove stale %s: %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static int listen_socket(struct link_server *ls, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "TELEMETRY_SOCKET: path must be 1 to %zu bytes",
                 sizeof(sa.sun_path) - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    if (make_parent(path, err, errlen) || clear_stale(path, &sa, err, errlen))
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "TELEMETRY_SOCKET: socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0117); /* the file is born 0660 */
    int rc = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    struct stat st;
    if (rc != 0 || chmod(path, 0660) != 0 || stat(path, &st) != 0 ||
        listen(fd, LINK_LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "TELEMETRY_SOCKET: %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    ls->sock_dev = st.st_dev;
    ls->sock_ino = st.st_ino;
    return fd;
}

/* ---- links: outgoing ---- */

static void link_rearm_cb(lws_sorted_usec_list_t *sul)
{
    struct link *l = lws_container_of(sul, struct link, rearm_sul);
    if (l->wsi)
        lws_callback_on_writable(l->wsi);
}

/* lws 4.1 clears POLLOUT of a raw file after its writeable callback returns: a request
 * made inside that callback is re-made on the next loop pass. */
static void link_want_write(struct link *l)
{
    if (l->wsi && l->in_writeable)
        lws_sul_schedule(l->ls->ctx, 0, &l->rearm_sul, link_rearm_cb, 1);
    else if (l->wsi)
        lws_callback_on_writable(l->wsi);
}

/* Queues BYE and closes the link once it is sent (or after a grace period). */
static void link_bye(struct link *l, uint16_t reason, const char *msg)
{
    if (l->closing)
        return;
    proto_put_bye(&l->obuf, reason, msg);
    l->closing = 1;
    if (l->wsi) {
        lws_rx_flow_control(l->wsi, 0);
        lws_set_timeout(l->wsi, PENDING_TIMEOUT_CLOSE_SEND, LINK_CLOSE_GRACE_S);
    }
    link_want_write(l);
}

/* Sends what obuf holds. 0: all sent or waiting for POLLOUT; -1: the link is dead. */
static int link_send(struct link *l)
{
    while (l->osent < l->obuf.len) {
        ssize_t n = send(l->fd, l->obuf.p + l->osent, l->obuf.len - l->osent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            l->osent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (l->obuf.len - l->osent > LINK_OBUF_MAX)
                return -1; /* the peer stopped reading long ago */
            link_want_write(l);
            return 0;
        }
        return -1;
    }
    buf_reset(&l->obuf);
    l->osent = 0;
    return l->obuf.oom ? -1 : 0;
}

/* The ACK of everything written so far, coalesced: one per link per loop pass. */
static void link_put_ack(struct link *l)
{
    if (l->written_seq > l->acked_seq) {
        proto_put_ack(&l->obuf, l->written_seq);
        l->acked_seq = l->written_seq;
        l->ls->st.acks++;
    }
}

/* Sends the ACK of what is written now, without asking poll first: the socket nearly
 * always has room for 16 bytes, and a POLLOUT round cost two poll(2) calls and a loop pass
 * per frame. An EAGAIN leaves it to the writeable callback. */
static int link_ack_now(struct link *l)
{
    lws_sul_cancel(&l->ack_sul);
    if (l->closing || l->written_seq <= l->acked_seq)
        return 0; /* a closing link's writeable callback sends what is queued, BYE last */
    link_put_ack(l);
    if (link_send(l) == 0)
        return 0;
    /* dead: lws closes it from its callback on the next pass */
    if (l->wsi)
        lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    return -1;
}

static void link_ack_cb(lws_sorted_usec_list_t *sul)
{
    link_ack_now(lws_container_of(sul, struct link, ack_sul));
}

/* The writer finished frame seq. Every frame the writer finishes in one flush shares one
 * ACK: the reader of a link flushes and acks itself (link_cb), and a flush from the
 * writer's own POLLOUT or timer leaves the ACK to this timer, due before the next poll. */
void link_server_frame_done(void *owner, uint64_t seq)
{
    struct link *l = owner;
    if (seq > l->written_seq)
        l->written_seq = seq;
    lws_sul_schedule(l->ls->ctx, 0, &l->ack_sul, link_ack_cb, 0);
}

/* ---- links: incoming frames ---- */

/* 1: BYE queued, stop decoding. */
static int link_fail(struct link *l, uint16_t reason, const char *msg)
{
    l->ls->st.protocol_errors++;
    log_app(LOG_WARN, "ingest link (pid %u): protocol error: %s; sending BYE and closing",
            (unsigned)l->pid, msg);
    link_bye(l, reason, msg);
    return 1;
}

static int link_fail_status(struct link *l, const char *what, int status)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "%s: %s", what, proto_strerror(status));
    return link_fail(l, BYE_PROTOCOL, msg);
}

static int on_hello(struct link *l, const struct proto_frame *f)
{
    struct proto_hello h;
    char msg[160];
    int st = proto_get_hello(f, &h);
    if (st != PROTO_OK)
        return link_fail_status(l, "HELLO", st);
    if (l->hello)
        return link_fail(l, BYE_PROTOCOL, "second HELLO on one link");
    if (h.version != PROTO_VERSION) {
        snprintf(msg, sizeof(msg), "version mismatch: ingest speaks %u, logshipper speaks %u",
                 (unsigned)h.version, (unsigned)PROTO_VERSION);
        return link_fail(l, BYE_VERSION, msg);
    }
    if (h.role != 1) {
        snprintf(msg, sizeof(msg), "HELLO: role %u is not an ingest", (unsigned)h.role);
        return link_fail(l, BYE_PROTOCOL, msg);
    }
    l->hello = 1;
    if (l->wsi)
        lws_set_timeout(l->wsi, NO_PENDING_TIMEOUT, 0);
    l->instance_id = h.instance_id;
    l->pid = h.pid;
    log_app(LOG_INFO, "ingest link up: pid %u, instance %016llx", (unsigned)h.pid,
            (unsigned long long)h.instance_id);
    return 0;
}

static int on_records(struct link *l, const struct proto_frame *f)
{
    struct proto_records_reader rd;
    char msg[160];
    int st = proto_records_validate(f); /* the whole frame, before any record is used */
    if (st == PROTO_OK)
        st = proto_records_open(f, &rd);
    if (st != PROTO_OK)
        return link_fail_status(l, "RECORDS", st);
    if (rd.seq <= l->last_seq) {
        snprintf(msg, sizeof(msg), "RECORDS seq %llu after %llu: not increasing",
                 (unsigned long long)rd.seq, (unsigned long long)l->last_seq);
        return link_fail(l, BYE_PROTOCOL, msg);
    }
    if (writer_push(l->ls->writer, f, l)) {
        log_app(LOG_ERROR, "out of memory queueing %u records; closing the link (they will be "
                           "re-sent)", (unsigned)rd.count);
        return -1;
    }
    l->last_seq = rd.seq;
    l->ls->st.records += rd.count;
    return 0;
}

static int on_stats(struct link *l, const struct proto_frame *f)
{
    int64_t ts;
    uint8_t flags;
    struct proto_str text;
    int st = proto_get_stats(f, &ts, &flags, &text);
    if (st != PROTO_OK)
        return link_fail_status(l, "STATS", st);
    char *p = realloc(l->stats, (size_t)text.len + 1);
    if (!p)
        return 0; /* keep the previous text */
    memcpy(p, text.p, text.len);
    p[text.len] = '\0';
    l->stats = p;
    l->stats_len = text.len;
    l->stats_gauth_up = (flags & PROTO_STATS_GAUTH_UP) != 0;
    l->stats_serial = ++l->ls->stats_serial;
    l->stats_at_us = lws_now_usecs();
    return 0;
}

/* 0: next frame; 1: BYE queued, stop; -1: close now. */
static int link_frame(struct link *l, const struct proto_frame *f)
{
    char msg[96];
    l->ls->st.frames[f->type <= PROTO_BYE ? f->type : 0]++;
    if (!l->hello && f->type != PROTO_HELLO)
        return link_fail(l, BYE_PROTOCOL, "the first frame must be HELLO");
    switch (f->type) {
    case PROTO_HELLO:
        return on_hello(l, f);
    case PROTO_RECORDS:
        return on_records(l, f);
    case PROTO_STATS:
        return on_stats(l, f);
    case PROTO_PING: {
        uint64_t nonce;
        int st = proto_get_ping(f, &nonce);
        if (st != PROTO_OK)
            return link_fail_status(l, "PING", st);
        if (!(f->flags & PROTO_PING_REPLY)) {
            proto_put_ping(&l->obuf, nonce, 1);
            link_want_write(l);
        }
        return 0;
    }
    case PROTO_BYE: {
        struct proto_bye b;
        int st = proto_get_bye(f, &b);
        if (st != PROTO_OK)
            return link_fail_status(l, "BYE", st);
        log_app(LOG_INFO, "ingest link (pid %u) said BYE: reason %u: %.*s", (unsigned)l->pid,
                (unsigned)b.reason, (int)(b.message.len > 200 ? 200 : b.message.len),
                b.message.p ? b.message.p : "");
        return -1;
    }
    default:
        snprintf(msg, sizeof(msg), "unexpected frame type %u from an ingest", (unsigned)f->type);
        return link_fail(l, BYE_PROTOCOL, msg);
    }
}

/* Sizes the read buffer for what comes next: a frame's full size once its header is in
 * (proto_frame_parse has bounded it). A buffer up to LINK_RBUF_KEEP stays as it is for the
 * next frame (shrinking after every large frame and growing again cost the logshipper a page
 * fault per 4 KiB of every frame); a larger one goes back to the idle size. */
static int link_fit_rbuf(struct link *l)
{
    size_t want = LINK_RBUF_MIN;
    if (l->rlen >= PROTO_HEADER_LEN) {
        size_t plen = (size_t)l->rbuf[4] << 24 | (size_t)l->rbuf[5] << 16 |
                      (size_t)l->rbuf[6] << 8 | (size_t)l->rbuf[7];
        if (PROTO_HEADER_LEN + plen > want)
            want = PROTO_HEADER_LEN + plen;
    }
    if (want == l->rcap || (want < l->rcap && l->rcap <= LINK_RBUF_KEEP))
        return 0;
    uint8_t *p = realloc(l->rbuf, want);
    if (!p)
        return want > l->rcap ? -1 : 0;
    l->rbuf = p;
    l->rcap = want;
    return 0;
}

/* Decodes every whole frame in rbuf. 0 ok, 1 closing after BYE, -1 close now. */
static int link_decode(struct link *l)
{
    size_t off = 0;
    int rc = 0;
    while (!l->closing) {
        struct proto_frame f;
        size_t used;
        int st = proto_frame_parse(l->rbuf + off, l->rlen - off, &f, &used);
        if (st == PROTO_NEED_MORE)
            break;
        if (st != PROTO_OK) {
            rc = link_fail_status(l, "frame", st);
            break;
        }
        rc = link_frame(l, &f);
        off += used;
        if (rc)
            break;
    }
    if (off) {
        memmove(l->rbuf, l->rbuf + off, l->rlen - off);
        l->rlen -= off;
    }
    if (rc == 0 && link_fit_rbuf(l)) {
        log_app(LOG_ERROR, "out of memory for a %zu-byte read buffer; closing the link", l->rlen);
        return -1;
    }
    return rc;
}

static int link_read(struct link *l)
{
    for (int i = 0; i < LINK_READS_PER_PASS && !l->closing && !l->ls->paused; i++) {
        size_t room = l->rcap - l->rlen;
        ssize_t n = read(l->fd, l->rbuf + l->rlen, room);
        if (n == 0)
            return -1; /* the ingest closed */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            log_app(LOG_WARN, "ingest link (pid %u): read: %s", (unsigned)l->pid, strerror(errno));
            return -1;
        }
        l->rlen += (size_t)n;
        l->ls->st.bytes += (uint64_t)n;
        int rc = link_decode(l);
        if (rc < 0)
            return -1;
        if ((size_t)n < room) /* drained: poll says when more comes (saves a read per frame that fails) */
            break;
    }
    return 0;
}

/* ---- links: lifecycle ---- */

static void link_free(struct link *l)
{
    struct link_server *ls = l->ls;
    lws_sul_cancel(&l->rearm_sul);
    lws_sul_cancel(&l->ack_sul);
    writer_forget_owner(ls->writer, l);
    if (l->prev)
        l->prev->next = l->next;
    else if (ls->links == l)
        ls->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    ls->nlinks--;
    if (l->last_seq > l->acked_seq)
        log_app(LOG_INFO, "ingest link (pid %u) closed with frames after seq %llu (up to %llu) "
                          "not acked; the ingest re-sends them", (unsigned)l->pid,
                (unsigned long long)l->acked_seq, (unsigned long long)l->last_seq);
    else if (!l->hello && !l->closing)
        log_app(LOG_INFO, "a link closed before saying HELLO (or took over %d s)",
                LINK_HELLO_TIMEOUT_S);
    else
        log_app(LOG_INFO, "ingest link (pid %u) closed", (unsigned)l->pid);
    free(l->rbuf);
    buf_free(&l->obuf);
    free(l->stats);
    free(l);
}

static int link_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct link *l = lws_get_opaque_user_data(wsi);
    (void)user;
    (void)in;
    (void)len;
    if (!l)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_RAW_ADOPT_FILE: {
        struct link_server *ls = l->ls;
        struct proto_hello h = {PROTO_VERSION, 2, ls->instance_id, (uint32_t)getpid()};
        l->wsi = wsi;
        l->next = ls->links;
        if (ls->links)
            ls->links->prev = l;
        ls->links = l;
        ls->nlinks++;
        ls->st.connections++;
        proto_put_hello(&l->obuf, &h);
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LINK_HELLO_TIMEOUT_S);
        if (ls->paused)
            lws_rx_flow_control(wsi, 0);
        link_want_write(l);
        return 0;
    }
    case LWS_CALLBACK_RAW_RX_FILE:
        if (link_read(l) < 0)
            return -1;
        /* the frames just read go to stdout and their ACK back now, in this pass */
        writer_kick(l->ls->writer);
        return link_ack_now(l) < 0 ? -1 : 0;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE: {
        if (!l->closing)
            link_put_ack(l);
        l->in_writeable = 1;
        int rc = link_send(l);
        l->in_writeable = 0;
        if (rc)
            return -1;
        return l->closing && l->osent == l->obuf.len ? -1 : 0;
    }
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        lws_set_opaque_user_data(wsi, NULL);
        link_free(l);
        return 0;
    default:
        return 0;
    }
}

static void accept_again(lws_sorted_usec_list_t *sul)
{
    struct link_server *ls = lws_container_of(sul, struct link_server, accept_sul);
    if (ls->listen_wsi)
        lws_rx_flow_control(ls->listen_wsi, 1);
}

static void link_accept(struct link_server *ls)
{
    for (int i = 0; i < LINK_ACCEPT_PER_PASS; i++) {
        int fd = accept4(ls->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the pending connection stays readable: stop polling it for a second */
                log_app(LOG_WARN, "accept on %s: %s; retrying in 1 s", ls->path, strerror(errno));
                lws_rx_flow_control(ls->listen_wsi, 0);
                lws_sul_schedule(ls->ctx, 0, &ls->accept_sul, accept_again, LWS_US_PER_SEC);
            }
            return;
        }
        struct link *l = calloc(1, sizeof(*l));
        if (l) {
            l->rcap = LINK_RBUF_MIN;
            l->rbuf = malloc(l->rcap);
            buf_init(&l->obuf);
        }
        if (!l || !l->rbuf) {
            log_app(LOG_ERROR, "out of memory for a new ingest link");
            if (l)
                free(l);
            close(fd);
            continue;
        }
        l->ls = ls;
        l->fd = fd;
        lws_adopt_desc_t ad;
        memset(&ad, 0, sizeof(ad));
        ad.vh = ls->vh;
        ad.type = LWS_ADOPT_RAW_FILE_DESC;
        ad.fd.filefd = fd;
        ad.vh_prot_name = link_server_link_protocol.name;
        ad.opaque = l;
        if (!lws_adopt_descriptor_vhost_via_info(&ad)) {
            log_app(LOG_ERROR, "cannot add an ingest link to the event loop");
            if (!l->wsi) { /* not adopted: still ours */
                close(fd);
                free(l->rbuf);
                buf_free(&l->obuf);
                free(l);
            }
        }
    }
}

static int listen_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    struct link_server *ls = lws_get_opaque_user_data(wsi);
    (void)user;
    (void)in;
    (void)len;
    if (!ls)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        link_accept(ls);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (ls->listen_wsi == wsi) {
            ls->listen_wsi = NULL;
            ls->listen_fd = -1;
        }
        return 0;
    default:
        return 0;
    }
}

const struct lws_protocols link_server_listen_protocol = {"tlm-link-listen", listen_cb, 0, 0, 0,
                                                          NULL, 0};
const struct lws_protocols link_server_link_protocol = {"tlm-link", link_cb, 0, 0, 0, NULL, 0};

/* ---- the server ---- */

/* Binds the socket file and adds it to the loop. 0, or -1 with err. */
static int listen_start(struct link_server *ls, char *err, size_t errlen)
{
    ls->listen_fd = listen_socket(ls, ls->path, err, errlen);
    if (ls->listen_fd < 0)
        return -1;
    lws_adopt_desc_t ad;
    memset(&ad, 0, sizeof(ad));
    ad.vh = ls->vh;
    ad.type = LWS_ADOPT_RAW_FILE_DESC;
    ad.fd.filefd = ls->listen_fd;
    ad.vh_prot_name = link_server_listen_protocol.name;
    ad.opaque = ls;
    ls->listen_wsi = lws_adopt_descriptor_vhost_via_info(&ad);
    if (!ls->listen_wsi) {
        snprintf(err, errlen, "TELEMETRY_SOCKET: cannot add %s to the event loop", ls->path);
        ls->listen_fd = -1; /* lws closed it */
        unlink(ls->path);
        return -1;
    }
    return 0;
}

/* The socket file can be removed or replaced under a running logshipper (a cleanup script,
 * an emptyDir mishap): an ingest could then never reach it again. Checked every second,
 * and bound again when it is no longer the file this process listens on. */
static void check_socket_cb(lws_sorted_usec_list_t *sul)
{
    struct link_server *ls = lws_container_of(sul, struct link_server, check_sul);
    struct stat st;
    if (ls->listen_wsi &&
        (stat(ls->path, &st) != 0 || st.st_dev != ls->sock_dev || st.st_ino != ls->sock_ino)) {
        char err[256];
        log_app(LOG_WARN, "the socket file %s was removed or replaced: binding it again", ls->path);
        lws_set_opaque_user_data(ls->listen_wsi, NULL);
        lws_set_timeout(ls->listen_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        ls->listen_wsi = NULL;
        ls->listen_fd = -1;
        if (listen_start(ls, err, sizeof(err)))
            log_app(LOG_ERROR, "%s", err);
        else
            ls->st.socket_rebinds++;
    } else if (!ls->listen_wsi && !ls->stopped) {
        char err[256];
        if (listen_start(ls, err, sizeof(err)) == 0)
            log_app(LOG_INFO, "listening for the ingest on %s again", ls->path);
    }
    lws_sul_schedule(ls->ctx, 0, &ls->check_sul, check_socket_cb, LINK_SOCKET_CHECK_US);
}

struct link_server *link_server_new(struct lws_context *ctx, struct lws_vhost *vh, const char *path,
                                    struct writer *w, char *err, size_t errlen)
{
    struct link_server *ls = calloc(1, sizeof(*ls));
    if (!ls || !(ls->path = strdup(path))) {
        snprintf(err, errlen, "link server: out of memory");
        free(ls);
        return NULL;
    }
    ls->ctx = ctx;
    ls->vh = vh;
    ls->writer = w;
    ls->instance_id = hash_random_u64();
    if (listen_start(ls, err, errlen)) {
        free(ls->path);
        free(ls);
        return NULL;
    }
    lws_sul_schedule(ctx, 0, &ls->check_sul, check_socket_cb, LINK_SOCKET_CHECK_US);
    log_app(LOG_INFO, "listening for the ingest on %s", path);
    return ls;
}

void link_server_free(struct link_server *ls)
{
    if (!ls)
        return;
    lws_sul_cancel(&ls->check_sul);
    free(ls->path);
    free(ls);
}

void link_server_pause(struct link_server *ls, int paused)
{
    if (ls->paused == paused)
        return;
    ls->paused = paused;
    for (struct link *l = ls->links; l; l = l->next)
        if (!l->closing && l->wsi)
            lws_rx_flow_control(l->wsi, !paused);
}

void link_server_stop_listening(struct link_server *ls)
{
    ls->stopped = 1;
    lws_sul_cancel(&ls->accept_sul);
    lws_sul_cancel(&ls->check_sul);
    if (ls->listen_wsi) {
        lws_set_opaque_user_data(ls->listen_wsi, NULL);
        lws_set_timeout(ls->listen_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        ls->listen_wsi = NULL;
        ls->listen_fd = -1;
    }
    /* remove the file only if it is still the one this process bound */
    struct stat st;
    if (stat(ls->path, &st) == 0 && st.st_dev == ls->sock_dev && st.st_ino == ls->sock_ino)
        unlink(ls->path);
}

void link_server_say_bye(struct link_server *ls)
{
    for (struct link *l = ls->links; l; l = l->next) {
        if (l->closing)
            continue;
        link_put_ack(l);
        link_bye(l, BYE_SHUTDOWN, "logshipper shutting down");
    }
}

int link_server_listening(const struct link_server *ls) { return ls->listen_wsi != NULL; }

size_t link_server_links(const struct link_server *ls) { return ls->nlinks; }

int link_server_busy(const struct link_server *ls)
{
    for (const struct link *l = ls->links; l; l = l->next)
        if (l->written_seq > l->acked_seq || l->osent < l->obuf.len)
            return 1;
    return 0;
}

const struct link_server_stats *link_server_stats(const struct link_server *ls) { return &ls->st; }

static const struct link *freshest_stats(const struct link_server *ls)
{
    const struct link *best = NULL;
    lws_usec_t oldest = lws_now_usecs() - LINK_STATS_FRESH_US;
    for (const struct link *l = ls->links; l; l = l->next)
        if (l->stats && l->stats_at_us >= oldest && (!best || l->stats_serial > best->stats_serial))
            best = l;
    return best;
}

const char *link_server_ingest_stats(const struct link_server *ls, size_t *len)
{
    const struct link *best = freshest_stats(ls);
    *len = best ? best->stats_len : 0;
    return best ? best->stats : NULL;
}

int link_server_gauth_up(const struct link_server *ls)
{
    const struct link *best = freshest_stats(ls);
    return best ? best->stats_gauth_up : -1;
}
