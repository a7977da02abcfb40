/* tlm_proto.c - encoder and decoder of the ingest <-> logshipper wire protocol.
 * Big-endian, length-prefixed frames; every read is bounds-checked (PROTOCOL.md is the spec). */
#include "tlm_proto.h"

#include <math.h>
#include <string.h>

#define PROTO_RECORDS_HEAD 12  /* u64 seq + u32 count */
#define PROTO_RECORD_FIXED 38  /* 4 one-byte fields, value, ts, recv, 6 length prefixes */
#define PROTO_STR8_MAX 255u
#define PROTO_STR16_MAX 65535u
#define PROTO_BYE_REASON_MAX 2

const char *proto_strerror(int status)
{
    switch (status) {
    case PROTO_OK: return "ok";
    case PROTO_NEED_MORE: return "incomplete frame";
    case PROTO_ERR_MAGIC: return "bad magic: not a tlm protocol stream";
    case PROTO_ERR_TOO_BIG: return "frame payload larger than the maximum";
    case PROTO_ERR_TYPE: return "unknown or unexpected frame type";
    case PROTO_ERR_SHORT: return "payload ends inside a field";
    case PROTO_ERR_TRAILING: return "bytes left after the last field";
    case PROTO_ERR_VALUE: return "field holds a forbidden value";
    default: return "unknown protocol status";
    }
}

/* ---------------------------------------------------------------- decoding */

/* A read cursor over one payload; every get checks what is left first. */
struct cursor {
    const uint8_t *p, *end;
};

static void cursor_init(struct cursor *c, const struct proto_frame *f)
{
    c->p = f->payload;
    c->end = f->payload ? f->payload + f->payload_len : f->payload;
}

static size_t cursor_left(const struct cursor *c) { return (size_t)(c->end - c->p); }

static int get_be(struct cursor *c, size_t n, uint64_t *v)
{
    if (cursor_left(c) < n)
        return PROTO_ERR_SHORT;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 8) | c->p[i];
    c->p += n;
    *v = x;
    return PROTO_OK;
}

/* A string of width-byte length prefix; s points into the payload. */
static int get_str(struct cursor *c, size_t width, struct proto_str *s)
{
    uint64_t n;
    int st = get_be(c, width, &n);
    if (st != PROTO_OK)
        return st;
    if (cursor_left(c) < n)
        return PROTO_ERR_SHORT;
    s->p = (const char *)c->p;
    s->len = (uint32_t)n;
    c->p += n;
    return PROTO_OK;
}

/* Shared start of every payload decoder: right type, only the allowed flag bits. */
static int frame_check(const struct proto_frame *f, uint8_t type, uint8_t allowed_flags)
{
    if (f->type != type)
        return PROTO_ERR_TYPE;
    if (f->flags & (uint8_t)~allowed_flags)
        return PROTO_ERR_VALUE;
    return PROTO_OK;
}

static int frame_done(const struct cursor *c)
{
    return cursor_left(c) ? PROTO_ERR_TRAILING : PROTO_OK;
}

int proto_frame_parse(const uint8_t *data, size_t len, struct proto_frame *f, size_t *consumed)
{
    /* Reject a foreign stream as soon as its first bytes are in. */
    if (len >= 1 && data[0] != PROTO_MAGIC0)
        return PROTO_ERR_MAGIC;
    if (len >= 2 && data[1] != PROTO_MAGIC1)
        return PROTO_ERR_MAGIC;
    if (len >= 3 && (data[2] < PROTO_HELLO || data[2] > PROTO_BYE))
        return PROTO_ERR_TYPE;
    if (len < PROTO_HEADER_LEN)
        return PROTO_NEED_MORE;
    uint32_t plen = (uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 |
                    (uint32_t)data[6] << 8 | (uint32_t)data[7];
    if (plen > PROTO_MAX_PAYLOAD)
        return PROTO_ERR_TOO_BIG;
    if (len - PROTO_HEADER_LEN < plen)
        return PROTO_NEED_MORE;
    f->type = data[2];
    f->flags = data[3];
    f->payload_len = plen;
    f->payload = data + PROTO_HEADER_LEN;
    *consumed = PROTO_HEADER_LEN + (size_t)plen;
    return PROTO_OK;
}

int proto_get_hello(const struct proto_frame *f, struct proto_hello *h)
{
    int st = frame_check(f, PROTO_HELLO, 0);
    if (st != PROTO_OK)
        return st;
    struct cursor c;
    cursor_init(&c, f);
    uint64_t version, role, reserved, id, pid;
    if ((st = get_be(&c, 2, &version)) || (st = get_be(&c, 1, &role)) ||
        (st = get_be(&c, 1, &reserved)) || (st = get_be(&c, 8, &id)) ||
        (st = get_be(&c, 4, &pid)) || (st = frame_done(&c)))
        return st;
    if ((role != 1 && role != 2) || reserved != 0)
        return PROTO_ERR_VALUE;
    h->version = (uint16_t)version;
    h->role = (uint8_t)role;
    h->instance_id = id;
    h->pid = (uint32_t)pid;
    return PROTO_OK;
}

/* ACK and PING carry one u64 and nothing else. */
static int get_only_u64(const struct proto_frame *f, uint8_t type, uint8_t flags, uint64_t *v)
{
    int st = frame_check(f, type, flags);
    if (st != PROTO_OK)
        return st;
    struct cursor c;
    cursor_init(&c, f);
    if ((st = get_be(&c, 8, v)) || (st = frame_done(&c)))
        return st;
    return PROTO_OK;
}

int proto_get_ack(const struct proto_frame *f, uint64_t *seq)
{
    uint64_t v;
    int st = get_only_u64(f, PROTO_ACK, 0, &v);
    if (st != PROTO_OK)
        return st;
    if (v == 0) /* no RECORDS frame has seq 0 */
        return PROTO_ERR_VALUE;
    *seq = v;
    return PROTO_OK;
}

int proto_get_ping(const struct proto_frame *f, uint64_t *nonce)
{
    return get_only_u64(f, PROTO_PING, PROTO_PING_REPLY, nonce);
}

int proto_get_bye(const struct proto_frame *f, struct proto_bye *b)
{
    int st = frame_check(f, PROTO_BYE, 0);
    if (st != PROTO_OK)
        return st;
    struct cursor c;
    cursor_init(&c, f);
    uint64_t reason;
    struct proto_str msg;
    if ((st = get_be(&c, 2, &reason)) || (st = get_str(&c, 2, &msg)) || (st = frame_done(&c)))
        return st;
    if (reason > PROTO_BYE_REASON_MAX || (msg.len && memchr(msg.p, '\0', msg.len)))
        return PROTO_ERR_VALUE;
    b->reason = (uint16_t)reason;
    b->message = msg;
    return PROTO_OK;
}

int proto_get_stats(const struct proto_frame *f, int64_t *ts_ms, uint8_t *flags, struct proto_str *text)
{
    int st = frame_check(f, PROTO_STATS, PROTO_STATS_GAUTH_UP);
    if (st != PROTO_OK)
        return st;
    struct cursor c;
    cursor_init(&c, f);
    uint64_t ts;
    struct proto_str t;
    if ((st = get_be(&c, 8, &ts)) || (st = get_str(&c, 4, &t)) || (st = frame_done(&c)))
        return st;
    *ts_ms = (int64_t)ts;
    *flags = f->flags;
    *text = t;
    return PROTO_OK;
}

/* The value rules both directions share; the decoder adds the reserved byte and the
 * canonical zero value of a record without PROTO_REC_HAS_VALUE. */
static int record_check(const struct proto_record *r)
{
    if (r->kind < PROTO_KIND_TRACE || r->kind > PROTO_KIND_METRIC)
        return PROTO_ERR_VALUE;
    if (r->flags & (uint8_t)~(PROTO_REC_HAS_VALUE | PROTO_REC_TRUNCATED))
        return PROTO_ERR_VALUE;
    if (r->level > 7)
        return PROTO_ERR_VALUE;
    if ((r->flags & PROTO_REC_HAS_VALUE) && !isfinite(r->value))
        return PROTO_ERR_VALUE;
    if (r->rid.len == 0 || r->line.len == 0)
        return PROTO_ERR_VALUE;
    if (memchr(r->line.p, '\n', r->line.len) || memchr(r->line.p, '\r', r->line.len))
        return PROTO_ERR_VALUE;
    return PROTO_OK;
}

static double double_from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static uint64_t double_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    return bits;
}

int proto_records_open(const struct proto_frame *f, struct proto_records_reader *rd)
{
    int st = frame_check(f, PROTO_RECORDS, 0);
    if (st != PROTO_OK)
        return st;
    struct cursor c;
    cursor_init(&c, f);
    uint64_t seq, count;
    if ((st = get_be(&c, 8, &seq)) || (st = get_be(&c, 4, &count)))
        return st;
    if (seq == 0 || count == 0)
        return PROTO_ERR_VALUE;
    rd->p = c.p;
    rd->end = c.end;
    rd->seq = seq;
    rd->count = (uint32_t)count;
    rd->left = (uint32_t)count;
    return PROTO_OK;
}

/* The reader only advances past a record that decoded whole, so after an error every
 * further call returns the same error. */
int proto_records_next(struct proto_records_reader *rd, struct proto_record *r)
{
    struct cursor c = {rd->p, rd->end};
    if (rd->left == 0)
        return cursor_left(&c) ? PROTO_ERR_TRAILING : 1;
    uint64_t kind, flags, level, reserved, vbits, ts, recv;
    struct proto_record t;
    int st;
    if ((st = get_be(&c, 1, &kind)) || (st = get_be(&c, 1, &flags)) ||
        (st = get_be(&c, 1, &level)) || (st = get_be(&c, 1, &reserved)) ||
        (st = get_be(&c, 8, &vbits)) || (st = get_be(&c, 8, &ts)) ||
        (st = get_be(&c, 8, &recv)) || (st = get_str(&c, 1, &t.app)) ||
        (st = get_str(&c, 1, &t.tenant)) || (st = get_str(&c, 1, &t.ccid)) ||
        (st = get_str(&c, 2, &t.name)) || (st = get_str(&c, 1, &t.rid)) ||
        (st = get_str(&c, 4, &t.line)))
        return st;
    t.kind = (uint8_t)kind;
    t.flags = (uint8_t)flags;
    t.level = (uint8_t)level;
    t.value = double_from_bits(vbits);
    t.ts_ms = (int64_t)ts;
    t.recv_ms = (int64_t)recv;
    if (reserved != 0 || (!(t.flags & PROTO_REC_HAS_VALUE) && vbits != 0))
        return PROTO_ERR_VALUE;
    if ((st = record_check(&t)) != PROTO_OK)
        return st;
    *r = t;
    rd->p = c.p;
    rd->left--;
    return PROTO_OK;
}

int proto_records_validate(const struct proto_frame *f)
{
    struct proto_records_reader rd;
    struct proto_record r;
    int st = proto_records_open(f, &rd);
    while (st == PROTO_OK)
        st = proto_records_next(&rd, &r);
    return st == 1 ? PROTO_OK : st;
}

/* ---------------------------------------------------------------- encoding */

static void be_store(uint8_t *dst, uint64_t v, size_t n)
{
    while (n--) {
        dst[n] = (uint8_t)v;
        v >>= 8;
    }
}

static void put_be(struct buf *out, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    be_store(tmp, v, n);
    buf_append(out, tmp, n);
}

/* Length prefix then bytes; len is already clamped to what the prefix can say. */
static void put_str(struct buf *out, size_t width, const char *p, size_t len)
{
    put_be(out, len, width);
    if (len) /* p may be NULL for an empty string */
        buf_append(out, p, len);
}

static void put_header(struct buf *out, uint8_t type, uint8_t flags, uint32_t payload_len)
{
    uint8_t h[PROTO_HEADER_LEN] = {PROTO_MAGIC0, PROTO_MAGIC1, type, flags};
    be_store(h + 4, payload_len, 4);
    buf_append(out, h, sizeof(h));
}

static size_t clamp(size_t len, size_t max) { return len > max ? max : len; }

void proto_put_hello(struct buf *out, const struct proto_hello *h)
{
    if (buf_reserve(out, PROTO_HEADER_LEN + 16))
        return;
    put_header(out, PROTO_HELLO, 0, 16);
    put_be(out, h->version, 2);
    put_be(out, h->role, 1);
    put_be(out, 0, 1);
    put_be(out, h->instance_id, 8);
    put_be(out, h->pid, 4);
}

void proto_put_ack(struct buf *out, uint64_t seq)
{
    put_header(out, PROTO_ACK, 0, 8);
    put_be(out, seq, 8);
}

void proto_put_ping(struct buf *out, uint64_t nonce, int reply)
{
    put_header(out, PROTO_PING, reply ? PROTO_PING_REPLY : 0, 8);
    put_be(out, nonce, 8);
}

/* A NULL message is empty; a longer one than str16 allows is cut. */
void proto_put_bye(struct buf *out, uint16_t reason, const char *message)
{
    size_t len = message ? clamp(strlen(message), PROTO_STR16_MAX) : 0;
    if (buf_reserve(out, PROTO_HEADER_LEN + 4 + len))
        return;
    put_header(out, PROTO_BYE, 0, (uint32_t)(4 + len));
    put_be(out, reason, 2);
    put_str(out, 2, message, len);
}

/* A text too large for one frame is cut after its last whole line that fits, so the
 * frame stays valid and the receiver never sees half a sample. */
void proto_put_stats(struct buf *out, int64_t ts_ms, uint8_t flags, const char *text, size_t text_len)
{
    const size_t max = PROTO_MAX_PAYLOAD - 12;
    if (!text)
        text_len = 0;
    if (text_len > max) {
        text_len = max;
        while (text_len && text[text_len - 1] != '\n')
            text_len--;
    }
    if (buf_reserve(out, PROTO_HEADER_LEN + 12 + text_len))
        return;
    put_header(out, PROTO_STATS, flags & PROTO_STATS_GAUTH_UP, (uint32_t)(12 + text_len));
    put_be(out, (uint64_t)ts_ms, 8);
    put_str(out, 4, text, text_len);
}

size_t proto_record_size(const struct proto_record *r)
{
    return PROTO_RECORD_FIXED + clamp(r->app.len, PROTO_STR8_MAX) +
           clamp(r->tenant.len, PROTO_STR8_MAX) + clamp(r->ccid.len, PROTO_STR8_MAX) +
           clamp(r->name.len, PROTO_STR16_MAX) + clamp(r->rid.len, PROTO_STR8_MAX) +
           (size_t)r->line.len;
}

void proto_records_begin(struct buf *out, struct proto_records_writer *w, uint64_t seq)
{
    w->start = out->len;
    w->count = 0;
    if (seq == 0) { /* would be rejected by every receiver: refuse to build it */
        out->oom = 1;
        return;
    }
    put_header(out, PROTO_RECORDS, 0, 0);
    put_be(out, seq, 8);
    put_be(out, 0, 4);
}

static int str_ok(const struct proto_str *s) { return s->len == 0 || s->p != NULL; }

/* Refuses (marks out->oom) a record the decoder would reject or one too large for any
 * frame: a frame the peer rejects would be re-sent forever. Uses w only to count, so it
 * also serves to encode bare records into a buffer of their own. */
void proto_records_add(struct buf *out, struct proto_records_writer *w, const struct proto_record *r)
{
    if (out->oom)
        return;
    struct proto_record t = *r;
    t.app.len = (uint32_t)clamp(t.app.len, PROTO_STR8_MAX);
    t.tenant.len = (uint32_t)clamp(t.tenant.len, PROTO_STR8_MAX);
    t.ccid.len = (uint32_t)clamp(t.ccid.len, PROTO_STR8_MAX);
    t.name.len = (uint32_t)clamp(t.name.len, PROTO_STR16_MAX);
    t.rid.len = (uint32_t)clamp(t.rid.len, PROTO_STR8_MAX);
    if (!str_ok(&t.app) || !str_ok(&t.tenant) || !str_ok(&t.ccid) || !str_ok(&t.name) ||
        !str_ok(&t.rid) || !str_ok(&t.line) || record_check(&t) != PROTO_OK ||
        t.line.len > PROTO_MAX_PAYLOAD ||
        proto_record_size(&t) > PROTO_MAX_PAYLOAD - PROTO_RECORDS_HEAD) {
        out->oom = 1;
        return;
    }
    if (buf_reserve(out, proto_record_size(&t)))
        return;
    uint8_t fixed[28] = {t.kind, t.flags, t.level, 0};
    be_store(fixed + 4, (t.flags & PROTO_REC_HAS_VALUE) ? double_bits(t.value) : 0, 8);
    be_store(fixed + 12, (uint64_t)t.ts_ms, 8);
    be_store(fixed + 20, (uint64_t)t.recv_ms, 8);
    buf_append(out, fixed, sizeof(fixed));
    put_str(out, 1, t.app.p, t.app.len);
    put_str(out, 1, t.tenant.p, t.tenant.len);
    put_str(out, 1, t.ccid.p, t.ccid.len);
    put_str(out, 2, t.name.p, t.name.len);
    put_str(out, 1, t.rid.p, t.rid.len);
    put_str(out, 4, t.line.p, t.line.len);
    w->count++;
}

/* Patches payload length and count. A frame that got no record is removed from out; one
 * whose payload passed PROTO_MAX_PAYLOAD (callers keep count with proto_record_size) marks
 * out->oom instead of leaving a frame every receiver rejects. */
void proto_records_end(struct buf *out, struct proto_records_writer *w)
{
    if (out->oom || out->len < w->start + PROTO_HEADER_LEN + PROTO_RECORDS_HEAD)
        return;
    if (w->count == 0) {
        out->len = w->start;
        out->p[out->len] = '\0';
        return;
    }
    if (out->len - w->start - PROTO_HEADER_LEN > PROTO_MAX_PAYLOAD) {
        out->oom = 1;
        return;
    }
    uint8_t *f = (uint8_t *)out->p + w->start;
    be_store(f + 4, out->len - w->start - PROTO_HEADER_LEN, 4);
    be_store(f + PROTO_HEADER_LEN + 8, w->count, 4);
}
