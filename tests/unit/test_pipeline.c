/* test_pipeline.c - ingest/pipeline.c: admission bounds (records and bytes, refused whole),
 * frames split at the bulk size and at PIPELINE_FRAME_BYTES, increasing seq, the
 * header patched at close (decoded with the protocol's own decoder), cumulative acks that
 * free frames and wake waiters in order exactly once, unwait, frame reuse, pipeline_empty. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../../ingest/pipeline.h"
#include "../../proto/tlm_proto.h"
#include "unit.h"

static struct proto_str S(const char *s) { return (struct proto_str){s, (uint32_t)strlen(s)}; }

static char *line;
static size_t line_cap;

/* Appends one trace record whose rid is "r<id>" and whose line is line_len bytes. */
static void add_rec(struct pipeline_batch *b, unsigned id, size_t line_len)
{
    if (line_len + 1 > line_cap) {
        free(line);
        line_cap = line_len + 1;
        line = malloc(line_cap);
    }
    memset(line, 'x', line_len);
    line[line_len] = '\0';
    char rid[32];
    snprintf(rid, sizeof(rid), "r%u", id);
    struct proto_record r;
    memset(&r, 0, sizeof(r));
    r.kind = PROTO_KIND_TRACE;
    r.level = 6;
    r.ts_ms = 1795514400123LL;
    r.recv_ms = 1795514400200LL;
    r.app = S("wwe_ui");
    r.tenant = S("pulse");
    r.ccid = S("2868802f-1763-4ecd-94f6-203400001200");
    r.rid = S(rid);
    r.line = (struct proto_str){line, (uint32_t)line_len};
    struct proto_records_writer w = {0, 0};
    proto_records_add(&b->records, &w, &r);
    CHECK_EQ_INT(pipeline_batch_mark(b), 0);
}

/* A batch of n records with ids first..first+n-1. */
static void make_batch(struct pipeline_batch *b, unsigned first, unsigned n, size_t line_len)
{
    pipeline_batch_reset(b);
    for (unsigned i = 0; i < n; i++)
        add_rec(b, first + i, line_len);
}

/* Decodes a closed frame: 1 when it is a valid RECORDS frame with this seq and count, whose
 * rids are r<first>.. in order. */
static int frame_is(const struct pipeline_frame *f, uint64_t seq, uint32_t count, unsigned first)
{
    struct proto_frame pf;
    size_t used;
    struct proto_records_reader rd;
    struct proto_record r;
    if (proto_frame_parse((const uint8_t *)f->data.p, f->data.len, &pf, &used) != PROTO_OK || used != f->data.len)
        return 0;
    if (pf.type != PROTO_RECORDS || proto_records_validate(&pf) != PROTO_OK || proto_records_open(&pf, &rd) != PROTO_OK)
        return 0;
    if (rd.seq != seq || rd.count != count || f->seq != seq || f->nrecords != count)
        return 0;
    for (uint32_t i = 0; i < count; i++) {
        char want[32];
        snprintf(want, sizeof(want), "r%u", first + i);
        if (proto_records_next(&rd, &r) != PROTO_OK || r.rid.len != strlen(want) || memcmp(r.rid.p, want, r.rid.len))
            return 0;
    }
    return proto_records_next(&rd, &r) == 1;
}

static size_t nframes(const struct pipeline *p)
{
    size_t n = 0;
    for (const struct pipeline_frame *f = p->head; f; f = f->next)
        n++;
    return n;
}

static uint64_t held_bytes(const struct pipeline *p)
{
    uint64_t n = p->open ? p->open->data.len : 0;
    for (const struct pipeline_frame *f = p->head; f; f = f->next)
        n += f->data.len;
    return n;
}

static void test_frames_and_seq(void)
{
    struct pipeline p;
    struct pipeline_batch b;
    uint64_t ws = 99;
    pipeline_init(&p, 100, 1 << 20, 3);
    pipeline_batch_init(&b);
    CHECK_EQ_INT(pipeline_empty(&p), 1);
    CHECK_EQ_INT(pipeline_close_open(&p, 1), 0);
    /* an empty batch: nothing to wait for */
    CHECK_EQ_INT(pipeline_admit(&p, &b, 1, &ws), 0);
    CHECK_EQ_INT(ws, 0);
    CHECK_EQ_INT(pipeline_empty(&p), 1);

    make_batch(&b, 0, 5, 40);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 10, &ws), 0);
    CHECK_EQ_INT(ws, 2); /* records 0-2 in frame 1 (closed at the bulk size), 3-4 in open frame 2 */
    CHECK_EQ_INT(p.records, 5);
    CHECK_EQ_INT(nframes(&p), 1);
    CHECK(p.open != NULL && p.open->seq == 2 && p.open->nrecords == 2);
    CHECK_EQ_INT(p.frames_closed, 1);
    CHECK(p.head && frame_is(p.head, 1, 3, 0));
    CHECK_EQ_INT(p.bytes, held_bytes(&p));
    CHECK_EQ_INT(pipeline_empty(&p), 0);
    /* a second batch shares the open frame, then opens frame 3 */
    make_batch(&b, 5, 2, 40);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 20, &ws), 0);
    CHECK_EQ_INT(ws, 3);
    CHECK_EQ_INT(nframes(&p), 2);
    CHECK(p.head && p.head->next && frame_is(p.head->next, 2, 3, 3));
    CHECK(p.open && p.open->seq == 3 && p.open->nrecords == 1);
    /* close patches length and count */
    CHECK_EQ_INT(pipeline_close_open(&p, 30), 1);
    CHECK(p.open == NULL);
    CHECK_EQ_INT(pipeline_close_open(&p, 31), 0);
    CHECK_EQ_INT(nframes(&p), 3);
    CHECK(p.tail && frame_is(p.tail, 3, 1, 6));
    CHECK_EQ_INT(p.tail->closed_us, 30);
    CHECK_EQ_INT(p.frames_closed, 3);
    CHECK_EQ_INT(p.records, 7);
    CHECK_EQ_INT(p.bytes, held_bytes(&p));
    /* the next batch gets a new frame with the next seq */
    make_batch(&b, 7, 1, 40);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 40, &ws), 0);
    CHECK_EQ_INT(ws, 4);
    pipeline_close_open(&p, 41);
    CHECK(p.tail && frame_is(p.tail, 4, 1, 7));
    /* seq strictly increasing along the list */
    uint64_t prev = 0;
    for (struct pipeline_frame *f = p.head; f; f = f->next) {
        CHECK(f->seq > prev);
        prev = f->seq;
    }
    /* ack everything */
    CHECK_EQ_INT(pipeline_ack(&p, 4, 50, NULL, NULL), 4);
    CHECK_EQ_INT(p.records, 0);
    CHECK_EQ_INT(p.bytes, 0);
    CHECK_EQ_INT(pipeline_empty(&p), 1);
    CHECK_EQ_INT(p.records_acked, 8);
    CHECK_EQ_INT(p.frames_acked, 4);
    pipeline_batch_free(&b);
    pipeline_free(&p);
}

/* Held only in the open frame (not closed yet): not empty. */
static void test_empty_open_only(void)
{
    struct pipeline p;
    struct pipeline_batch b;
    uint64_t ws;
    pipeline_init(&p, 100, 1 << 20, 10);
    pipeline_batch_init(&b);
    make_batch(&b, 0, 1, 40);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 5, &ws), 0);
    CHECK_EQ_INT(ws, 1);
    CHECK(p.head == NULL && p.open != NULL);
    CHECK_EQ_INT(pipeline_empty(&p), 0);
    CHECK_EQ_INT(pipeline_close_open(&p, 6), 1);
    CHECK_EQ_INT(pipeline_empty(&p), 0);
    CHECK_EQ_INT(pipeline_ack(&p, 1, 7, NULL, NULL), 1);
    CHECK_EQ_INT(pipeline_empty(&p), 1);
    pipeline_batch_free(&b);
    pipeline_free(&p);
}

static void test_bulk_size_one(void)
{
    struct pipeline p;
    struct pipeline_batch b;
    uint64_t ws;
    pipeline_init(&p, 100, 1 << 20, 0); /* 0 means 1 */
    pipeline_batch_init(&b);
    make_batch(&b, 0, 3, 10);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 1, &ws), 0);
    CHECK_EQ_INT(ws, 3);
    pipeline_close_open(&p, 2);
    CHECK_EQ_INT(nframes(&p), 3);
    unsigned i = 0;
    for (struct pipeline_frame *f = p.head; f; f = f->next, i++)
        CHECK(frame_is(f, i + 1, 1, i));
    pipeline_batch_free(&b);
    pipeline_free(&p);
}

static void test_admission_records(void)
{
    struct pipeline p;
    struct pipeline_batch b;
    uint64_t ws;
    pipeline_init(&p, 10, 1 << 20, 4);
    pipeline_batch_init(&b);
    make_batch(&b, 0, 5, 20);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 1, &ws), 0);
    uint64_t bytes = p.bytes, next = p.next_seq;
    struct pipeline_frame *open = p.open;
    uint32_t open_n = open ? open->nrecords : 0;
    size_t open_len = open ? open->data.len : 0;
    /* 5 + 6 > 10: refused whole, nothing kept */
    make_batch(&b, 5, 6, 20);
    ws = 77;
    CHECK_EQ_INT(pipeline_admit(&p, &b, 2, &ws), -1);
    CHECK_EQ_INT(ws, 0);
    CHECK_EQ_INT(p.rejected_full, 1);
    CHECK_EQ_INT(p.records, 5);
    CHECK_EQ_INT(p.bytes, bytes);
    CHECK_EQ_INT(p.next_seq, next);
    CHECK(p.open == open);
    CHECK_EQ_INT(open ? open->nrecords : 0, open_n);
    CHECK_EQ_INT(open ? open->data.len : 0, open_len);
    /* exactly at the bound is fine */
    make_batch(&b, 5, 5, 20);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 3, &ws), 0);
    CHECK_EQ_INT(p.records, 10);
    /* full: even one record is refused */
    make_batch(&b, 10, 1, 20);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 4, &ws), -1);
    CHECK_EQ_INT(p.rejected_full, 2);
    /* an ack makes room */
    pipeline_close_open(&p, 5);
    uint64_t first_seq = p.head->seq;
    CHECK_EQ_INT(pipeline_ack(&p, first_seq, 6, NULL, NULL), 1); /* frame 1 held 4 records */
    CHECK_EQ_INT(p.records, 6);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 7, &ws), 0);
    CHECK_EQ_INT(p.records, 7);
    /* a batch larger than the whole bound is always refused, even when empty */
    make_batch(&b, 11, 11, 20);
    pipeline_close_open(&p, 9);
    pipeline_ack(&p, p.next_seq - 1, 10, NULL, NULL);
    CHECK_EQ_INT(pipeline_empty(&p), 1);
    CHECK_EQ_INT(p.records, 0);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 11, &ws), -1);
    CHECK_EQ_INT(p.records, 0);
    CHECK_EQ_INT(pipeline_empty(&p), 1);
    pipeline_batch_free(&b);
    pipeline_free(&p);
}

static void test_admission_bytes(void)
{
    struct pipeline p;
    struct pipeline_batch b;
    uint64_t ws;
    pipeline_init(&p, 1000000, 64 * 1024, 100);
    pipeline_batch_init(&b);
    /* 20 records of ~1 KiB: fits */
    make_batch(&b, 0, 20, 1000);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 1, &ws), 0);
    CHECK_EQ_INT(p.records, 20);
    uint64_t bytes = p.bytes;
    CHECK(bytes > 20 * 1000 && bytes <= 64 * 1024);
    /* 50 more would pass 64 KiB: refused whole */
    make_batch(&b, 20, 50, 1000);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 2, &ws), -1);
    CHECK_EQ_INT(p.records, 20);
    CHECK_EQ_INT(p.bytes, bytes);
    CHECK_EQ_INT(p.open ? p.open->nrecords : 0, 20);
    CHECK_EQ_INT(p.rejected_full, 1);
    /* one record alone larger than the bound */
    make_batch(&b, 20, 1, 70 * 1024);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 3, &ws), -1);
    CHECK_EQ_INT(p.records, 20);
    /* held bytes never pass the bound, whatever the mix */
    for (unsigned i = 0; i < 200; i++) {
        make_batch(&b, 100 + i, 1 + i % 7, 300 + (i * 37) % 900);
        if (pipeline_admit(&p, &b, 10 + i, &ws) == 0 && i % 3 == 0)
            pipeline_close_open(&p, 10 + i);
        CHECK(p.bytes <= 64 * 1024);
        CHECK_EQ_INT(p.bytes, held_bytes(&p));
        if (i % 10 == 9 && p.head)
            pipeline_ack(&p, p.head->seq, 10 + i, NULL, NULL);
    }
    /* after acking all, the byte count returns to zero */
    pipeline_close_open(&p, 500);
    pipeline_ack(&p, p.next_seq - 1, 501, NULL, NULL);
    CHECK_EQ_INT(p.bytes, 0);
    CHECK_EQ_INT(p.records, 0);
    /* an oom'd batch is refused */
    make_batch(&b, 0, 1, 10);
    b.records.oom = 1;
    CHECK_EQ_INT(pipeline_admit(&p, &b, 600, &ws), -1);
    b.records.oom = 0;
    pipeline_batch_free(&b);
    pipeline_free(&p);
}

/* Frames close before a record would take them past PIPELINE_FRAME_BYTES, even below the
 * bulk size; a record larger than that travels alone, and its frame is not kept for reuse. */
static void test_frame_size(void)
{
    struct pipeline p;
    struct pipeline_batch b;
    uint64_t ws;
    pipeline_init(&p, 100000, 64ull << 20, 100000);
    pipeline_batch_init(&b);
    /* 3000 records of 200 bytes and more: several frames, each full but within the size */
    make_batch(&b, 0, 3000, 200);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 1, &ws), 0);
    pipeline_close_open(&p, 2);
    size_t n = nframes(&p);
    CHECK(n >= 3 && n <= 4);
    unsigned first = 0, seq = 1;
    for (struct pipeline_frame *f = p.head; f; f = f->next, seq++) {
        CHECK(f->data.len <= PIPELINE_FRAME_BYTES);
        CHECK(!f->next || f->data.len > PIPELINE_FRAME_BYTES - 1024);
        CHECK(frame_is(f, seq, f->nrecords, first));
        first += f->nrecords;
    }
    CHECK_EQ_INT(first, 3000);
    CHECK_EQ_INT(ws, n);
    /* acked frames of the usual size are kept and reused without growing */
    pipeline_ack(&p, n, 3, NULL, NULL);
    CHECK_EQ_INT(p.nfree, n);
    char *reused = p.free_frames->data.p;
    make_batch(&b, 3000, 1, 200);
    CHECK_EQ_INT(pipeline_admit(&p, &b, 4, &ws), 0);
    CHECK(p.open && p.open->data.p == reused);
    pipeline_close_open(&p, 5);
    pipeline_ack(&p, ws, 6, NULL, NULL);

    /* records of 1 MB: each alone in its frame */
    make_batch(&b, 0, 3, 1024 * 1024);
    uint64_t before = p.next_seq;
    CHECK_EQ_INT(pipeline_admit(&p, &b, 7, &ws), 0);
    pipeline_close_open(&p, 8);
    CHECK_EQ_INT(nframes(&p), 3);
    CHECK(p.head && frame_is(p.head, before, 1, 0));
    CHECK(p.tail && frame_is(p.tail, before + 2, 1, 2));
    CHECK(p.head && p.head->data.len <= PROTO_HEADER_LEN + PROTO_MAX_PAYLOAD);
    /* frames that large are not kept for reuse */
    size_t nfree = p.nfree;
    pipeline_ack(&p, ws, 9, NULL, NULL);
    CHECK_EQ_INT(p.nfree, nfree);
    pipeline_batch_free(&b);
    pipeline_free(&p);
}

struct test_waiter {
    struct pipeline_waiter w;
    int id;
    int woken;
};

static int wake_order[16], nwake;

static void on_acked(struct pipeline_waiter *w)
{
    struct test_waiter *t = (struct test_waiter *)((char *)w - offsetof(struct test_waiter, w));
    t->woken++;
    if (nwake < 16)
        wake_order[nwake++] = t->id;
}

static double latencies[8];
static int nlat;
static void on_latency(void *ctx, double s)
{
    (*(int *)ctx)++;
    if (nlat < 8)
        latencies[nlat++] = s;
}

static void test_acks_and_waiters(void)
{
    struct pipeline p;
    struct pipeline_batch b;
    uint64_t ws;
    pipeline_init(&p, 100, 1 << 20, 2);
    pipeline_batch_init(&b);
    struct test_waiter t[6];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < 6; i++) {
        t[i].id = i;
        t[i].w.on_acked = on_acked;
    }
    /* frames 1, 2, 3 (2 records each), waiters on 1, 2, 2, 3, 3, 3 */
    make_batch(&b, 0, 2, 10);
    pipeline_admit(&p, &b, 1000000, &ws);
    pipeline_wait(&p, &t[0].w, ws);
    CHECK_EQ_INT(ws, 1);
    make_batch(&b, 2, 2, 10);
    pipeline_admit(&p, &b, 1000000, &ws);
    CHECK_EQ_INT(ws, 2);
    pipeline_wait(&p, &t[1].w, ws);
    pipeline_wait(&p, &t[2].w, ws);
    make_batch(&b, 4, 2, 10);
    pipeline_admit(&p, &b, 1000000, &ws);
    CHECK_EQ_INT(ws, 3);
    pipeline_close_open(&p, 2000000);
    for (int i = 3; i < 6; i++)
        pipeline_wait(&p, &t[i].w, ws);
    CHECK_EQ_INT(nframes(&p), 3);
    int calls = 0;
    nlat = 0;
    /* acks older than the last do nothing */
    CHECK_EQ_INT(pipeline_ack(&p, 0, 2500000, on_latency, &calls), 0);
    CHECK_EQ_INT(nwake, 0);
    /* ack 2: frames 1 and 2 freed, waiters 0, 1, 2 woken in order */
    CHECK_EQ_INT(pipeline_ack(&p, 2, 3000000, on_latency, &calls), 2);
    CHECK_EQ_INT(nwake, 3);
    CHECK(wake_order[0] == 0 && wake_order[1] == 1 && wake_order[2] == 2);
    CHECK_EQ_INT(calls, 2);
    CHECK(nlat == 2 && latencies[0] == 2.0 && latencies[1] == 2.0); /* closed at 1 s, acked at 3 s */
    CHECK_EQ_INT(nframes(&p), 1);
    CHECK_EQ_INT(p.records, 2);
    CHECK_EQ_INT(p.acked_seq, 2);
    CHECK(!t[0].w.linked && !t[1].w.linked && t[3].w.linked);
    /* the same ack again (a re-sent frame acked twice): nothing more */
    CHECK_EQ_INT(pipeline_ack(&p, 2, 3100000, on_latency, &calls), 0);
    CHECK_EQ_INT(pipeline_ack(&p, 1, 3100000, on_latency, &calls), 0);
    CHECK_EQ_INT(nwake, 3);
    /* unwait the middle waiter of the last three; unwait twice and unwait of a woken one are harmless */
    pipeline_unwait(&p, &t[4].w);
    pipeline_unwait(&p, &t[4].w);
    pipeline_unwait(&p, &t[0].w);
    CHECK_EQ_INT(pipeline_ack(&p, 3, 4000000, on_latency, &calls), 1);
    CHECK_EQ_INT(nwake, 5);
    CHECK(wake_order[3] == 3 && wake_order[4] == 5);
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(t[i].woken, i == 4 ? 0 : 1);
    CHECK(p.wait_head == NULL && p.wait_tail == NULL);
    CHECK_EQ_INT(pipeline_empty(&p), 1);
    CHECK_EQ_INT(calls, 3);

    /* re-waiting a linked waiter moves it: only one wake, for the new seq */
    nwake = 0;
    memset(t, 0, sizeof(t));
    for (int i = 0; i < 3; i++) {
        t[i].id = i;
        t[i].w.on_acked = on_acked;
    }
    make_batch(&b, 10, 2, 10);
    pipeline_admit(&p, &b, 5000000, &ws); /* frame 4 */
    pipeline_close_open(&p, 5000000);
    make_batch(&b, 12, 2, 10);
    pipeline_admit(&p, &b, 5000000, &ws); /* frame 5 */
    pipeline_close_open(&p, 5000000);
    CHECK_EQ_INT(ws, 5);
    pipeline_wait(&p, &t[0].w, 4);
    pipeline_wait(&p, &t[1].w, 4);
    pipeline_wait(&p, &t[0].w, 5); /* moved behind t1 */
    pipeline_wait(&p, &t[2].w, 5);
    CHECK_EQ_INT(pipeline_ack(&p, 4, 6000000, NULL, NULL), 1);
    CHECK_EQ_INT(nwake, 1);
    CHECK_EQ_INT(wake_order[0], 1);
    CHECK_EQ_INT(pipeline_ack(&p, 5, 6000000, NULL, NULL), 1);
    CHECK_EQ_INT(nwake, 3);
    CHECK(wake_order[1] == 0 && wake_order[2] == 2);
    CHECK_EQ_INT(t[0].woken + t[1].woken + t[2].woken, 3);
    pipeline_batch_free(&b);
    pipeline_free(&p);
}

/* A waiter woken may immediately wait again (a WebSocket's next batch): the wake loop must
 * not wake it twice for the same ack. */
static struct pipeline *rewait_p;
static int rewaits;
static void on_acked_rewait(struct pipeline_waiter *w)
{
    struct test_waiter *t = (struct test_waiter *)((char *)w - offsetof(struct test_waiter, w));
    t->woken++;
    if (rewaits++ == 0)
        pipeline_wait(rewait_p, w, 100); /* a later frame */
}

static void test_rewait_from_callback(void)
{
    struct pipeline p;
    struct pipeline_batch b;
    uint64_t ws;
    pipeline_init(&p, 100, 1 << 20, 10);
    pipeline_batch_init(&b);
    rewait_p = &p;
    make_batch(&b, 0, 1, 10);
    pipeline_admit(&p, &b, 1, &ws);
    pipeline_close_open(&p, 1);
    struct test_waiter a = {.id = 1}, c = {.id = 2};
    a.w.on_acked = on_acked_rewait;
    c.w.on_acked = on_acked_rewait;
    pipeline_wait(&p, &a.w, ws);
    pipeline_wait(&p, &c.w, ws);
    pipeline_ack(&p, ws, 2, NULL, NULL);
    CHECK_EQ_INT(a.woken, 1);
    CHECK_EQ_INT(c.woken, 1);
    CHECK(a.w.linked && a.w.seq == 100);
    pipeline_unwait(&p, &a.w);
    CHECK(p.wait_head == NULL);
    pipeline_batch_free(&b);
    pipeline_free(&p);
}

static void test_frame_reuse(void)
{
    struct pipeline p;
    struct pipeline_batch b;
    uint64_t ws;
    pipeline_init(&p, 100000, 64 << 20, 10);
    pipeline_batch_init(&b);
    make_batch(&b, 0, 3, 100);
    pipeline_admit(&p, &b, 1, &ws);
    struct pipeline_frame *first = p.open;
    pipeline_close_open(&p, 2);
    CHECK_EQ_INT(pipeline_ack(&p, ws, 3, NULL, NULL), 1);
    CHECK_EQ_INT(p.nfree, 1);
    CHECK(p.free_frames == first);
    /* the next frame is the recycled one, rebuilt from scratch with the next seq */
    make_batch(&b, 3, 2, 50);
    pipeline_admit(&p, &b, 4, &ws);
    CHECK(p.open == first);
    CHECK_EQ_INT(p.nfree, 0);
    pipeline_close_open(&p, 5);
    CHECK(frame_is(first, 2, 2, 3));
    CHECK_EQ_INT(p.bytes, first->data.len);
    pipeline_ack(&p, 2, 6, NULL, NULL);
    /* at most PIPELINE_FREE_FRAMES frames are kept for reuse */
    for (unsigned i = 0; i < 100; i++) {
        make_batch(&b, i, 10, 10); /* 10 = bulk: one frame each, closed by the next */
        pipeline_admit(&p, &b, 7, &ws);
    }
    pipeline_close_open(&p, 8);
    CHECK_EQ_INT(nframes(&p), 100);
    pipeline_ack(&p, p.next_seq - 1, 9, NULL, NULL);
    CHECK_EQ_INT(p.nfree, PIPELINE_FREE_FRAMES);
    size_t n = 0;
    for (struct pipeline_frame *f = p.free_frames; f; f = f->next)
        n++;
    CHECK_EQ_INT(n, PIPELINE_FREE_FRAMES);
    /* steady state: admit/close/ack cycles use no new frames */
    struct pipeline_frame *before = p.free_frames;
    for (int i = 0; i < 1000; i++) {
        make_batch(&b, 0, 1, 10);
        pipeline_admit(&p, &b, 10, &ws);
        pipeline_close_open(&p, 10);
        pipeline_ack(&p, ws, 11, NULL, NULL);
    }
    CHECK_EQ_INT(p.nfree, PIPELINE_FREE_FRAMES);
    CHECK(p.free_frames == before);
    CHECK_EQ_INT(pipeline_empty(&p), 1);
    /* the pool follows the load down: a trim keeps what was held at once since the last one */
    pipeline_trim(&p); /* 100 were held at once: all kept */
    CHECK_EQ_INT(p.nfree, PIPELINE_FREE_FRAMES);
    for (unsigned i = 0; i < 3; i++) { /* now at most 3 at once */
        make_batch(&b, i, 10, 10);
        pipeline_admit(&p, &b, 12, &ws);
    }
    pipeline_close_open(&p, 12);
    pipeline_ack(&p, ws, 13, NULL, NULL);
    pipeline_trim(&p);
    CHECK_EQ_INT(p.nfree, 3);
    pipeline_trim(&p); /* nothing held since: the pool empties */
    CHECK_EQ_INT(p.nfree, 0);
    CHECK(p.free_frames == NULL);
    make_batch(&b, 0, 1, 10); /* and frames are made again when needed */
    CHECK_EQ_INT(pipeline_admit(&p, &b, 14, &ws), 0);
    pipeline_close_open(&p, 14);
    pipeline_ack(&p, ws, 15, NULL, NULL);
    CHECK_EQ_INT(p.nfree, 1);
    CHECK_EQ_INT(p.nframes, 0);
    pipeline_batch_free(&b);
    pipeline_free(&p);
    /* pipeline_free with open, closed and free frames held leaks nothing (valgrind/ASan) */
    pipeline_init(&p, 1000, 1 << 20, 2);
    pipeline_batch_init(&b);
    make_batch(&b, 0, 2, 10);
    pipeline_admit(&p, &b, 1, &ws);
    pipeline_close_open(&p, 1);
    pipeline_ack(&p, 1, 2, NULL, NULL);
    make_batch(&b, 0, 3, 10);
    pipeline_admit(&p, &b, 3, &ws);
    CHECK(p.head && p.open && p.free_frames == NULL); /* the free one was reused */
    pipeline_batch_free(&b);
    pipeline_free(&p);
}

int main(void)
{
    RUN(test_frames_and_seq);
    RUN(test_empty_open_only);
    RUN(test_bulk_size_one);
    RUN(test_admission_records);
    RUN(test_admission_bytes);
    RUN(test_frame_size);
    RUN(test_acks_and_waiters);
    RUN(test_rewait_from_callback);
    RUN(test_frame_reuse);
    free(line);
    UNIT_DONE("test_pipeline");
}
