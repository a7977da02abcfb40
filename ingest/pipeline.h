/* pipeline.h - the ingest's bounded buffer of records not yet acknowledged by the logshipper.
 * Accepted records go into the open frame; frames stay until a cumulative ACK covers them,
 * and are re-sent after a reconnect. Waiters (requests) are woken when their frame is acked. */
#ifndef TLM_PIPELINE_H
#define TLM_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"

/* Acked frames kept for reuse: no malloc and no page faults in the steady state. The pool
 * keeps as many as were held at once in the last period of pipeline_trim (at most
 * PIPELINE_FREE_FRAMES): 64 WebSockets with 8 batches each in flight hold 50-60 frames, and
 * a fixed pool of 16 cost the ingest 2.7 page faults per batch; an idle ingest keeps few. */
#define PIPELINE_FREE_FRAMES 64
/* A frame's buffer is reserved at this size once and reused: a frame closes before a record
 * would take it past this (a record larger than it travels alone). Large enough that a
 * frame's round trip is cheap next to its records, small enough that the reused buffers
 * stay resident (no page faults in the steady state) and the pool stays a few MB. */
#define PIPELINE_FRAME_BYTES (256 * 1024)

struct pipeline_frame {
    uint64_t seq;
    uint32_t nrecords;
    int64_t opened_us;       /* when its first record came */
    int64_t closed_us;       /* when it was closed (ack latency) */
    struct buf data;         /* the whole encoded RECORDS frame */
    struct pipeline_frame *next;
};

/* A request waiting for its records to be written. Embedded in the request's state. */
struct pipeline_waiter {
    uint64_t seq;            /* acked once pipeline.acked_seq >= seq */
    void (*on_acked)(struct pipeline_waiter *w);
    struct pipeline_waiter *prev, *next;
    int linked;
};

/* Records of one batch, encoded back to back as in a RECORDS payload, not yet admitted. */
struct pipeline_batch {
    struct buf records;
    size_t *ends;            /* ends[i]: offset just past record i */
    size_t count, cap;
};

struct pipeline {
    uint64_t max_records, max_bytes, bulk_size;
    uint64_t next_seq, acked_seq;
    uint64_t records, bytes;        /* held: closed + open frames */
    struct pipeline_frame *head, *tail; /* closed frames, in seq order, not yet acked */
    struct pipeline_frame *open;        /* being filled; not on the wire yet */
    struct pipeline_waiter *wait_head, *wait_tail;
    struct pipeline_frame *free_frames; /* recycled frames (no malloc in steady state) */
    size_t nfree;
    size_t nframes, peak_frames;        /* held now (closed + open); most held since the last trim */
    /* counters */
    uint64_t frames_closed, frames_acked, records_acked, rejected_full;
};

void pipeline_init(struct pipeline *p, uint64_t max_records, uint64_t max_bytes, uint64_t bulk_size);
void pipeline_free(struct pipeline *p);

void pipeline_batch_init(struct pipeline_batch *b);
void pipeline_batch_reset(struct pipeline_batch *b);
void pipeline_batch_free(struct pipeline_batch *b);
/* Marks the end of the record just appended to b->records. 0 ok, -1 out of memory. */
int pipeline_batch_mark(struct pipeline_batch *b);

/* Moves a batch's records into the open frame(s). 0 and *wait_seq set (0 when the batch
 * was empty: nothing to wait for), or -1 when it does not fit the bounds (nothing kept). */
int pipeline_admit(struct pipeline *p, const struct pipeline_batch *b, int64_t now_us, uint64_t *wait_seq);
/* Closes the open frame (if any) so it can be sent. Returns 1 if a frame was closed. */
int pipeline_close_open(struct pipeline *p, int64_t now_us);

/* Cumulative ack: frees frames <= seq and wakes the waiters they cover. Returns frames freed. */
size_t pipeline_ack(struct pipeline *p, uint64_t seq, int64_t now_us, void (*on_latency)(void *, double), void *ctx);

void pipeline_wait(struct pipeline *p, struct pipeline_waiter *w, uint64_t seq);
void pipeline_unwait(struct pipeline *p, struct pipeline_waiter *w);
/* Frees pooled frames beyond the most held at once since the last call (the ingest calls it
 * every second), so the pool follows the load down. */
void pipeline_trim(struct pipeline *p);
/* Closed frames not acked yet (sent, or waiting for the link). */
uint64_t pipeline_inflight(const struct pipeline *p);
/* 1 when nothing is held (all acked, no open frame). */
int pipeline_empty(const struct pipeline *p);

#endif
