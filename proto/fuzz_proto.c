/* fuzz_proto.c - libFuzzer target of the wire protocol: frames the input, runs every decoder
 * on every frame, re-encodes what decoded and aborts unless it comes back byte for byte. */
#include "tlm_proto.h"

#include <stdlib.h>
#include <string.h>

static void fuzz_assert(int ok)
{
    if (!ok)
        abort();
}

static int str_eq(struct proto_str a, struct proto_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static int record_eq(const struct proto_record *a, const struct proto_record *b)
{
    uint64_t va, vb;
    memcpy(&va, &a->value, sizeof(va));
    memcpy(&vb, &b->value, sizeof(vb));
    return a->kind == b->kind && a->flags == b->flags && a->level == b->level && va == vb &&
           a->ts_ms == b->ts_ms && a->recv_ms == b->recv_ms && str_eq(a->app, b->app) &&
           str_eq(a->tenant, b->tenant) && str_eq(a->ccid, b->ccid) &&
           str_eq(a->name, b->name) && str_eq(a->rid, b->rid) && str_eq(a->line, b->line);
}

static void same_bytes(const struct buf *b, const uint8_t *frame, size_t len)
{
    fuzz_assert(!b->oom && b->len == len && memcmp(b->p, frame, len) == 0);
}

/* The single frame in b, whole. */
static struct proto_frame parse_whole(const struct buf *b)
{
    struct proto_frame f;
    size_t used = 0;
    fuzz_assert(proto_frame_parse((const uint8_t *)b->p, b->len, &f, &used) == PROTO_OK);
    fuzz_assert(used == b->len);
    return f;
}

/* Iterates a RECORDS frame, checks it against validate, re-encodes it, re-decodes that. */
static void fuzz_records(const struct proto_frame *f, const uint8_t *frame, size_t len)
{
    int vst = proto_records_validate(f);
    struct proto_records_reader rd;
    struct proto_record r;
    int st = proto_records_open(f, &rd);
    if (st != PROTO_OK) {
        fuzz_assert(st == vst && st < 0);
        return;
    }
    struct buf out;
    struct proto_records_writer w;
    buf_init(&out);
    proto_records_begin(&out, &w, rd.seq);
    uint32_t n = 0;
    for (;;) {
        const uint8_t *before = rd.p;
        st = proto_records_next(&rd, &r);
        if (st != PROTO_OK)
            break;
        fuzz_assert((size_t)(rd.p - before) == proto_record_size(&r));
        proto_records_add(&out, &w, &r);
        fuzz_assert(!out.oom); /* a record that decoded is always encodable */
        n++;
    }
    proto_records_end(&out, &w);
    if (st != 1) {
        fuzz_assert(st < 0 && st == vst);
        fuzz_assert(proto_records_next(&rd, &r) == st); /* errors are sticky */
        buf_free(&out);
        return;
    }
    fuzz_assert(vst == PROTO_OK && n == rd.count && rd.left == 0);
    same_bytes(&out, frame, len);

    struct proto_frame g = parse_whole(&out);
    struct proto_records_reader ra, rb;
    struct proto_record a, b;
    fuzz_assert(proto_records_open(f, &ra) == PROTO_OK);
    fuzz_assert(proto_records_open(&g, &rb) == PROTO_OK);
    fuzz_assert(ra.seq == rb.seq && ra.count == rb.count);
    while ((st = proto_records_next(&ra, &a)) == PROTO_OK) {
        fuzz_assert(proto_records_next(&rb, &b) == PROTO_OK);
        fuzz_assert(record_eq(&a, &b));
    }
    fuzz_assert(st == 1 && proto_records_next(&rb, &b) == 1);
    buf_free(&out);
}

/* Runs every decoder: the one of the frame's type must agree with a re-encoding, the
 * others must say PROTO_ERR_TYPE. */
static void fuzz_frame(const struct proto_frame *f, const uint8_t *frame, size_t len)
{
    struct buf out;
    buf_init(&out);
    struct proto_hello h;
    int st = proto_get_hello(f, &h);
    fuzz_assert(f->type == PROTO_HELLO ? st <= 0 : st == PROTO_ERR_TYPE);
    if (f->type == PROTO_HELLO && st == PROTO_OK) {
        proto_put_hello(&out, &h);
        same_bytes(&out, frame, len);
    }

    uint64_t u;
    st = proto_get_ack(f, &u);
    fuzz_assert(f->type == PROTO_ACK ? st <= 0 : st == PROTO_ERR_TYPE);
    if (f->type == PROTO_ACK && st == PROTO_OK) {
        buf_reset(&out);
        proto_put_ack(&out, u);
        same_bytes(&out, frame, len);
    }

    st = proto_get_ping(f, &u);
    fuzz_assert(f->type == PROTO_PING ? st <= 0 : st == PROTO_ERR_TYPE);
    if (f->type == PROTO_PING && st == PROTO_OK) {
        buf_reset(&out);
        proto_put_ping(&out, u, f->flags & PROTO_PING_REPLY);
        same_bytes(&out, frame, len);
    }

    struct proto_bye bye;
    st = proto_get_bye(f, &bye);
    fuzz_assert(f->type == PROTO_BYE ? st <= 0 : st == PROTO_ERR_TYPE);
    if (f->type == PROTO_BYE && st == PROTO_OK) {
        char *msg = malloc((size_t)bye.message.len + 1);
        fuzz_assert(msg != NULL);
        if (bye.message.len)
            memcpy(msg, bye.message.p, bye.message.len);
        msg[bye.message.len] = '\0';
        buf_reset(&out);
        proto_put_bye(&out, bye.reason, msg);
        free(msg);
        same_bytes(&out, frame, len);
    }

    int64_t ts;
    uint8_t stats_flags;
    struct proto_str text;
    st = proto_get_stats(f, &ts, &stats_flags, &text);
    fuzz_assert(f->type == PROTO_STATS ? st <= 0 : st == PROTO_ERR_TYPE);
    if (f->type == PROTO_STATS && st == PROTO_OK) {
        buf_reset(&out);
        proto_put_stats(&out, ts, stats_flags, text.p, text.len);
        same_bytes(&out, frame, len);
    }
    buf_free(&out);

    if (f->type == PROTO_RECORDS) {
        fuzz_records(f, frame, len);
    } else {
        struct proto_records_reader rd;
        fuzz_assert(proto_records_open(f, &rd) == PROTO_ERR_TYPE);
        fuzz_assert(proto_records_validate(f) == PROTO_ERR_TYPE);
    }
}

static uint64_t take(const uint8_t **p, const uint8_t *end, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && *p < end; i++)
        v = (v << 8) | *(*p)++;
    return v;
}

/* Encoder side: a record made from the input (string lengths past str8/str16 and values
 * the decoder forbids included) is either refused or decodes to itself, clamped. */
static void fuzz_encode(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    struct proto_record r;
    r.kind = (uint8_t)take(&p, end, 1);
    r.flags = (uint8_t)take(&p, end, 1);
    r.level = (uint8_t)take(&p, end, 1);
    uint64_t bits = take(&p, end, 8);
    memcpy(&r.value, &bits, sizeof(bits));
    r.ts_ms = (int64_t)take(&p, end, 8);
    r.recv_ms = (int64_t)take(&p, end, 8);
    struct proto_str *s[] = {&r.app, &r.tenant, &r.ccid, &r.name, &r.rid, &r.line};
    /* Strings are slices of the rest of the input, or of zero bytes when longer than it. */
    static const char zeros[70000];
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        uint64_t len = take(&p, end, 3) % sizeof(zeros);
        s[i]->len = (uint32_t)len;
        if (len <= (size_t)(end - p)) {
            s[i]->p = (const char *)p;
            p += len;
        } else {
            s[i]->p = zeros;
        }
    }
    struct buf out;
    struct proto_records_writer w;
    buf_init(&out);
    proto_records_begin(&out, &w, 1);
    proto_records_add(&out, &w, &r);
    proto_records_end(&out, &w);
    if (!out.oom) {
        struct proto_frame f = parse_whole(&out);
        struct proto_records_reader rd;
        struct proto_record g;
        fuzz_assert(proto_records_validate(&f) == PROTO_OK);
        fuzz_assert(proto_records_open(&f, &rd) == PROTO_OK && rd.count == 1);
        fuzz_assert(proto_records_next(&rd, &g) == PROTO_OK);
        struct proto_record c = r;
        if (c.app.len > 255) c.app.len = 255;
        if (c.tenant.len > 255) c.tenant.len = 255;
        if (c.ccid.len > 255) c.ccid.len = 255;
        if (c.rid.len > 255) c.rid.len = 255;
        if (c.name.len > 65535) c.name.len = 65535;
        if (!(c.flags & PROTO_REC_HAS_VALUE))
            c.value = 0.0;
        fuzz_assert(record_eq(&c, &g));
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        struct proto_frame f;
        size_t used = 0;
        int st = proto_frame_parse(data + off, size - off, &f, &used);
        if (st != PROTO_OK) {
            fuzz_assert(st == PROTO_NEED_MORE || st == PROTO_ERR_MAGIC ||
                        st == PROTO_ERR_TOO_BIG || st == PROTO_ERR_TYPE);
            fuzz_assert(proto_strerror(st) != NULL);
            break;
        }
        fuzz_assert(used == PROTO_HEADER_LEN + (size_t)f.payload_len && used <= size - off);
        fuzz_assert(f.type >= PROTO_HELLO && f.type <= PROTO_BYE);
        fuzz_frame(&f, data + off, used);
        off += used;
    }
    fuzz_encode(data, size);
    return 0;
}
