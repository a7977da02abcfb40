/* writer.h - the record sink: stdout JSON lines (non-blocking, batched, back-pressure) or,
 * when built with libsystemd, the journal. The core knows no lws; the glue at the end does. */
#ifndef TLM_WRITER_H
#define TLM_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../common/buf.h"
#include "../proto/tlm_proto.h"

enum writer_sink { WRITER_CONSOLE = 0, WRITER_JOURNAL = 1 };

/* What writer_flush reports. */
enum writer_state {
    WRITER_IDLE = 0,    /* everything queued is written */
    WRITER_BLOCKED = 1, /* the fd said EAGAIN: call writer_flush again once it is writable */
    WRITER_RETRY = 2,   /* a transient error (or the journal refused): retry after a timer */
    WRITER_MORE = 3,    /* stopped after a large batch to keep the loop responsive */
    WRITER_FATAL = -1,  /* the output is gone for good (EPIPE, EBADF) */
};

/* Callbacks into the daemon; every one may be NULL. */
struct writer_hooks {
    /* Every line of frame seq from owner has been written (console) or sent (journal).
     * Called in queue order, so per owner in increasing seq. */
    void (*frame_done)(void *owner, uint64_t seq, void *user);
    /* over = 1: queued bytes passed the limit, stop reading input;
     * over = 0: back under half the limit, read again. */
    void (*pressure)(int over, void *user);
    /* Each record once, when it is queued (the routing fields for contract metrics). */
    void (*observe)(const struct proto_record *r, void *user);
    /* Call writer_flush when the output fd can take bytes (POLLOUT). */
    void (*wait_writable)(void *user);
    /* Call writer_flush after ms milliseconds (0: on the next loop pass). */
    void (*wait_timer)(int ms, void *user);
    /* The output failed for good; the daemon should stop (non-acked frames are re-sent). */
    void (*fatal)(const char *why, void *user);
    void *user;
};

struct writer_config {
    enum writer_sink sink;
    int fd;                /* console: where lines go (1 in the daemon, a pipe in tests) */
    size_t limit_bytes;    /* TELEMETRY_SHIPPER_BUFFER_BYTES */
    size_t chunk_bytes;    /* largest single write(2); 0 = 1 MiB */
    size_t batch_bytes;    /* most bytes one writer_flush writes before WRITER_MORE; 0 = 8 MiB */
};

struct writer_stats {
    uint64_t records[3];      /* written, by kind - 1 (trace, event, metric) */
    uint64_t bytes;           /* bytes written (lines + newlines) */
    uint64_t truncated;       /* written records flagged PROTO_REC_TRUNCATED */
    uint64_t frames;          /* frames completely written */
    uint64_t write_calls;     /* write(2) calls on the output fd */
    uint64_t eagain;          /* of which answered EAGAIN */
    uint64_t write_errors;    /* other write failures */
    uint64_t journal_errors;  /* sd_journal_sendv failures */
    double blocked_seconds;   /* finished intervals spent waiting on a full output */
};

struct writer;

/* Console: sets O_NONBLOCK on cfg->fd. That flag belongs to the open file description,
 * so other processes sharing it (a terminal, a pipe also on fd 2) see it too; writer_free
 * puts the original flags back. NULL with err on failure (bad fd, no journal support). */
struct writer *writer_new(const struct writer_config *cfg, const struct writer_hooks *hooks,
                          char *err, size_t errlen);
void writer_free(struct writer *w);

/* Queues every record of a RECORDS frame that proto_records_validate accepted: one line +
 * '\n' each, copied once. Never refuses for size (the caller stops reading instead when
 * the pressure hook says so). 0 ok, -1 out of memory (nothing of the frame queued). */
int writer_push(struct writer *w, const struct proto_frame *f, void *owner);
/* Writes as much as the output takes now; fires frame_done/pressure hooks as it goes and
 * asks for the next call through wait_writable / wait_timer when it stops early. */
enum writer_state writer_flush(struct writer *w);
/* Console: writer_flush now if lines wait and the output is not known to be blocked or
 * failing (then POLLOUT or the retry timer brings the flush). For whoever just pushed. */
void writer_kick(struct writer *w);
/* The owner went away: its queued frames are still written but nobody is told. */
void writer_forget_owner(struct writer *w, void *owner);

size_t writer_queued_bytes(const struct writer *w); /* lines not yet written */
size_t writer_queued_frames(const struct writer *w);
int writer_over_limit(const struct writer *w);
/* Seconds the output has made no progress with bytes waiting (0 when flowing or idle). */
double writer_stalled_seconds(const struct writer *w);
/* Finished blocked time plus the current blocked interval. */
double writer_blocked_seconds_total(const struct writer *w);
const struct writer_stats *writer_stats(const struct writer *w);
enum writer_sink writer_sink(const struct writer *w);

/* Journal fields of one record (pure; tested without libsystemd): fills iov[0..n) with
 * MESSAGE=<line>, PRIORITY=<level>, SYSLOG_IDENTIFIER=tlm, TLM_KIND, TLM_APP, TLM_TENANT,
 * TLM_CONTACT_CENTER_ID, TLM_NAME (if any), TLM_VALUE (metrics), TLM_RID, TLM_TS (epoch ms),
 * TLM_TRUNCATED=1 (if cut). The iov point into scratch, which is reset first.
 * Returns n, or -1 when max is too small or scratch ran out of memory. */
#define WRITER_JOURNAL_MAX_FIELDS 12
int writer_journal_fields(const struct proto_record *r, struct buf *scratch, struct iovec *iov,
                          size_t max);

/* ---- lws glue (the daemon only) ---- */
struct lws_context;
struct lws_vhost;
struct lws_protocols;
/* Protocol "tlm-stdout": put it in the vhost's protocol list. */
extern const struct lws_protocols writer_lws_protocol;
/* Console: adopts a dup of the fd as a raw file bound to "tlm-stdout" (its POLLIN off) and
 * serves wait_writable with POLLOUT on it; both sinks get wait_timer from an lws timer.
 * Hooks the caller set for those two are replaced. 0 ok, -1 with err. */
int writer_lws_attach(struct writer *w, struct lws_context *ctx, struct lws_vhost *vh, char *err,
                      size_t errlen);
/* Before lws_context_destroy: the stdout wsi closing then is not an error. */
void writer_lws_detach(struct writer *w);

#endif
