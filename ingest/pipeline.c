/* pipeline.c - bounded un-acked record buffer with frame coalescing (see pipeline.h). */
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "../proto/tlm_proto.h"

void pipeline_init(struct pipeline *p, uint64_t max_records, uint64_t max_bytes, uint64_t bulk_size)
{
    memset(p, 0, sizeof(*p));
    p->max_records = max_records;
    p->max_bytes = max_bytes;
    p->bulk_size = bulk_size ? bulk_size : 1;
    p->next_seq = 1;
}

static void frame_destroy(struct pipeline_frame *f)
{
    buf_free(&f->data);
    free(f);
}

void pipeline_free(struct pipeline *p)
{
    struct pipeline_frame *f, *n;
    for (f = p->head; f; f = n) {
        n = f->next;
        frame_destroy(f);
    }
    for (f = p->free_frames; f; f = n) {
        n = f->next;
        frame_destroy(f);
    }
    if (p->open)
        frame_destroy(p->open);
    memset(p, 0, sizeof(*p));
}

void pipeline_batch_init(struct pipeline_batch *b) { memset(b, 0, sizeof(*b)); }

void pipeline_batch_reset(struct pipeline_batch *b)
{
    buf_reset(&b->records);
    b->count = 0;
}

void pipeline_batch_free(struct pipeline_batch *b)
{
    buf_free(&b->records);
    free(b->ends);
    memset(b, 0, sizeof(*b));
}

int pipeline_batch_mark(struct pipeline_batch *b)
{
    if (b->records.oom)
        return -1;
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        size_t *e = realloc(b->ends, cap * sizeof(*e));
        if (!e)
            return -1;
        b->ends = e;
        b->cap = cap;
    }
    b->ends[b->count++] = b->records.len;
    return 0;
}

static struct pipeline_frame *frame_open(struct pipeline *p)
{
    struct pipeline_frame *f = p->free_frames;
    if (f) {
        p->free_frames = f->next;
        p->nfree--;
        buf_reset(&f->data);
    } else {
        f = calloc(1, sizeof(*f));
        if (!f)
            return NULL;
    }
    if (buf_reserve(&f->data, PIPELINE_FRAME_BYTES)) {
        frame_destroy(f);
        return NULL;
    }
    f->seq = p->next_seq++;
    f->nrecords = 0;
    if (++p->nframes > p->peak_frames)
        p->peak_frames = p->nframes;
    f->next = NULL;
    /* header (8) + seq (8) + count (4); count and length are patched at close */
    uint8_t hdr[20] = {PROTO_MAGIC0, PROTO_MAGIC1, PROTO_RECORDS, 0};
    for (int i = 0; i < 8; i++)
        hdr[8 + i] = (uint8_t)(f->seq >> (56 - 8 * i));
    buf_append(&f->data, hdr, sizeof(hdr));
    p->bytes += sizeof(hdr);
    return f;
}

static void put_be32(uint8_t *at, uint32_t v)
{
    at[0] = (uint8_t)(v >> 24);
    at[1] = (uint8_t)(v >> 16);
    at[2] = (uint8_t)(v >> 8);
    at[3] = (uint8_t)v;
}

int pipeline_close_open(struct pipeline *p, int64_t now_us)
{
    struct pipeline_frame *f = p->open;
    if (!f)
        return 0;
    p->open = NULL;
    put_be32((uint8_t *)f->data.p + 4, (uint32_t)(f->data.len - PROTO_HEADER_LEN));
    put_be32((uint8_t *)f->data.p + 16, f->nrecords);
    f->closed_us = now_us;
    /* With a quarter of the buffer bound held (the logshipper slow or gone), give back the
     * frame's unused room: the bound counts bytes held, not reserved. Below that a frame is
     * acked and reused within milliseconds; shrinking it would only fault its pages in again. */
    if (p->bytes >= p->max_bytes / 4 && f->data.cap > f->data.len + 4096) {
        char *shrunk = realloc(f->data.p, f->data.len + 1);
        if (shrunk) {
            f->data.p = shrunk;
            f->data.cap = f->data.len + 1;
        }
    }
    if (p->tail)
        p->tail->next = f;
    else
        p->head = f;
    p->tail = f;
    p->frames_closed++;
    return 1;
}

int pipeline_admit(struct pipeline *p, const struct pipeline_batch *b, int64_t now_us, uint64_t *wait_seq)
{
    *wait_seq = 0;
    if (b->count == 0)
        return 0;
    /* worst case every record opens a frame: count the headers too */
    uint64_t extra = b->records.len + 20 * (b->count / p->bulk_size + 2);
    if (b->records.oom || p->records + b->count > p->max_records || p->bytes + extra > p->max_bytes) {
        p->rejected_full++;
        return -1;
    }
    size_t start = 0;
    for (size_t i = 0; i < b->count; i++) {
        size_t end = b->ends[i];
        size_t len = end - start;
        if (p->open && (p->open->nrecords >= p->bulk_size ||
                        (p->open->nrecords && p->open->data.len + len > PIPELINE_FRAME_BYTES)))
            pipeline_close_open(p, now_us);
        if (!p->open && !(p->open = frame_open(p)))
            return -1; /* out of memory: records admitted so far stay (they are valid) */
        if (p->open->nrecords == 0)
            p->open->opened_us = now_us;
        buf_append(&p->open->data, b->records.p + start, len);
        if (p->open->data.oom)
            return -1;
        p->open->nrecords++;
        p->records++;
        p->bytes += len;
        start = end;
    }
    *wait_seq = p->open->seq;
    return 0;
}

static void waiter_unlink(struct pipeline *p, struct pipeline_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        p->wait_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        p->wait_tail = w->prev;
    w->prev = w->next = NULL;
    w->linked = 0;
}

void pipeline_wait(struct pipeline *p, struct pipeline_waiter *w, uint64_t seq)
{
    if (w->linked)
        waiter_unlink(p, w);
    w->seq = seq;
    w->next = NULL;
    w->prev = p->wait_tail;
    if (p->wait_tail)
        p->wait_tail->next = w;
    else
        p->wait_head = w;
    p->wait_tail = w;
    w->linked = 1;
}

void pipeline_unwait(struct pipeline *p, struct pipeline_waiter *w)
{
    if (w->linked)
        waiter_unlink(p, w);
}

size_t pipeline_ack(struct pipeline *p, uint64_t seq, int64_t now_us, void (*on_latency)(void *, double), void *ctx)
{
    size_t freed = 0;
    if (seq <= p->acked_seq)
        return 0;
    p->acked_seq = seq;
    while (p->head && p->head->seq <= seq) {
        struct pipeline_frame *f = p->head;
        p->head = f->next;
        if (!p->head)
            p->tail = NULL;
        p->records -= f->nrecords;
        p->bytes -= f->data.len;
        p->records_acked += f->nrecords;
        p->frames_acked++;
        p->nframes--;
        if (on_latency && f->closed_us)
            on_latency(ctx, (double)(now_us - f->closed_us) / 1e6);
        if (f->data.cap <= 2 * PIPELINE_FRAME_BYTES && p->nfree < PIPELINE_FREE_FRAMES) { /* keep a few for reuse */
            f->next = p->free_frames;
            p->free_frames = f;
            p->nfree++;
        } else {
            frame_destroy(f);
        }
        freed++;
    }
    /* waiters are in non-decreasing seq order */
    while (p->wait_head && p->wait_head->seq <= seq) {
        struct pipeline_waiter *w = p->wait_head;
        waiter_unlink(p, w);
        w->on_acked(w);
    }
    return freed;
}

void pipeline_trim(struct pipeline *p)
{
    while (p->nfree > p->peak_frames) {
        struct pipeline_frame *f = p->free_frames;
        p->free_frames = f->next;
        p->nfree--;
        frame_destroy(f);
    }
    p->peak_frames = p->nframes;
}

int pipeline_empty(const struct pipeline *p) { return !p->head && !p->open; }

uint64_t pipeline_inflight(const struct pipeline *p) { return p->tail ? p->tail->seq - p->acked_seq : 0; }
