/* test_proto.c - unit tests of the wire protocol codec (proto/tlm_proto.c): round trips,
 * the vector files of proto/vectors (status, fields, byte-identical re-encoding), limits. */
#include "../../proto/tlm_proto.h"
#include "unit.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The values make_vectors.py uses, typed again here on purpose. */
#define TS 1795514400123LL
#define RECV (TS + 77)
#define CCID "2868e8c5-0f3b-4c22-9d0d-6f1c0f6c5a11"
#define RID "9f86d081884c7d659a2feaa0c55ad015"
#define HEAD "{\"ts\":\"2026-11-24T10:00:00.123Z\",\"receivedAt\":\"2026-11-24T10:00:00.200Z\","
#define ROUTE "\"appName\":\"wwe_ui\",\"tenantName\":\"pulse\",\"contactCenterId\":\"" CCID "\","
#define TRACE_LINE HEAD "\"kind\":\"trace\",\"level\":\"info\"," ROUTE \
    "\"user\":\"agent1\",\"msg\":\"hello\",\"properties\":{},\"rid\":\"" RID "-t0\"}"
#define ERROR_LINE HEAD "\"kind\":\"trace\",\"level\":\"error\"," ROUTE \
    "\"user\":\"agent1\",\"msg\":\"boom\",\"properties\":{},\"truncated\":true,\"rid\":\"" RID "-t0\"}"
#define EVENT_LINE HEAD "\"kind\":\"event\"," ROUTE "\"rid\":\"" RID "-e1\"}"
#define STATS_TEXT "# TYPE tlm_ingest_records_total counter\ntlm_ingest_records_total 3\n"
#define PING_NONCE 0xDEADBEEFCAFEF00DULL

static struct proto_str S(const char *s)
{
    struct proto_str r = {s, (uint32_t)strlen(s)};
    return r;
}

static int str_is(struct proto_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static int str_eq(struct proto_str a, struct proto_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static const char *vectors_dir(void)
{
    const char *d = getenv("TLM_VECTORS_DIR");
    return d && *d ? d : "proto/vectors";
}

/* Whole file into a malloc'd buffer (NULL when missing). */
static uint8_t *read_file(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", vectors_dir(), name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b;
    buf_init(&b);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    if (b.oom || !b.p) { /* an empty file still gets a buffer */
        buf_free(&b);
        uint8_t *e = malloc(1);
        *len = 0;
        return e;
    }
    *len = b.len;
    return (uint8_t *)b.p;
}

static int decode_frame(const struct proto_frame *f)
{
    struct proto_hello h;
    struct proto_bye b;
    struct proto_str t;
    uint64_t u;
    int64_t ts;
    uint8_t fl;
    switch (f->type) {
    case PROTO_HELLO: return proto_get_hello(f, &h);
    case PROTO_RECORDS: return proto_records_validate(f);
    case PROTO_ACK: return proto_get_ack(f, &u);
    case PROTO_STATS: return proto_get_stats(f, &ts, &fl, &t);
    case PROTO_PING: return proto_get_ping(f, &u);
    case PROTO_BYE: return proto_get_bye(f, &b);
    }
    return PROTO_ERR_TYPE;
}

/* The README's definition of a file's expected status. */
static int decode_stream(const uint8_t *d, size_t len, int *frames)
{
    size_t off = 0;
    *frames = 0;
    while (off < len) {
        struct proto_frame f;
        size_t used = 0;
        int st = proto_frame_parse(d + off, len - off, &f, &used);
        if (st != PROTO_OK)
            return st;
        if ((st = decode_frame(&f)) != PROTO_OK)
            return st;
        off += used;
        (*frames)++;
    }
    return PROTO_OK;
}

static int status_by_name(const char *s, size_t n)
{
    static const struct { const char *name; int st; } tab[] = {
        {"PROTO_OK", PROTO_OK}, {"PROTO_NEED_MORE", PROTO_NEED_MORE},
        {"PROTO_ERR_MAGIC", PROTO_ERR_MAGIC}, {"PROTO_ERR_TOO_BIG", PROTO_ERR_TOO_BIG},
        {"PROTO_ERR_TYPE", PROTO_ERR_TYPE}, {"PROTO_ERR_SHORT", PROTO_ERR_SHORT},
        {"PROTO_ERR_TRAILING", PROTO_ERR_TRAILING}, {"PROTO_ERR_VALUE", PROTO_ERR_VALUE},
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strlen(tab[i].name) == n && memcmp(tab[i].name, s, n) == 0)
            return tab[i].st;
    return 99;
}

/* Every row "| `file.bin` | PROTO_... | ..." of the README is decoded and checked. */
static void test_vectors_readme(void)
{
    size_t rlen;
    char *readme = (char *)read_file("README.md", &rlen);
    CHECK(readme != NULL);
    if (!readme)
        return;
    int rows = 0, ok_rows = 0;
    char listed[8192] = "";
    for (char *line = strtok(readme, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        char *name = line + 3, *tick = strchr(name, '`');
        if (!tick)
            continue;
        *tick = '\0';
        char *st = tick + 1;
        st += strspn(st, " |");
        int want = status_by_name(st, strcspn(st, " |"));
        rows++;
        strncat(listed, "/", sizeof(listed) - strlen(listed) - 1);
        strncat(listed, name, sizeof(listed) - strlen(listed) - 1);
        strncat(listed, "/", sizeof(listed) - strlen(listed) - 1);
        size_t len;
        uint8_t *d = read_file(name, &len);
        if (!d) {
            fprintf(stderr, "missing vector %s\n", name);
            CHECK(d != NULL);
            continue;
        }
        int frames, got = decode_stream(d, len, &frames);
        if (got != want)
            fprintf(stderr, "vector %s: got %d (%s), want %d\n", name, got,
                    proto_strerror(got), want);
        CHECK_EQ_INT(got, want);
        if (want == PROTO_OK) {
            ok_rows++;
            /* every strict prefix of a valid file is only incomplete */
            for (size_t cut = 1; cut < len; cut++) {
                int f2, s2 = decode_stream(d, cut, &f2);
                if (s2 != PROTO_NEED_MORE && !(s2 == PROTO_OK && f2 > 0)) {
                    fprintf(stderr, "vector %s cut at %zu: %d\n", name, cut, s2);
                    CHECK(0);
                    break;
                }
            }
        }
        free(d);
    }
    free(readme);
    CHECK(rows >= 50);
    CHECK(ok_rows >= 10);

    /* and every .bin in the folder is listed */
    DIR *dir = opendir(vectors_dir());
    CHECK(dir != NULL);
    if (!dir)
        return;
    struct dirent *e;
    int bins = 0;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".bin") != 0)
            continue;
        bins++;
        char key[300];
        snprintf(key, sizeof(key), "/%s/", e->d_name);
        if (!strstr(listed, key)) {
            fprintf(stderr, "vector %s not in README\n", e->d_name);
            CHECK(0);
        }
    }
    closedir(dir);
    CHECK_EQ_INT(bins, rows);
}

/* Decodes the single frame of a vector file (or fails the test). */
static uint8_t *vector_frame(const char *name, struct proto_frame *f, size_t *len)
{
    uint8_t *d = read_file(name, len);
    CHECK(d != NULL);
    if (!d)
        return NULL;
    size_t used = 0;
    int st = proto_frame_parse(d, *len, f, &used);
    CHECK_EQ_INT(st, PROTO_OK);
    CHECK_EQ_INT(used, *len);
    if (st != PROTO_OK) {
        free(d);
        return NULL;
    }
    return d;
}

static void check_same_bytes(const char *name, const struct buf *b)
{
    size_t len;
    uint8_t *d = read_file(name, &len);
    CHECK(d != NULL);
    if (!d)
        return;
    int same = !b->oom && b->len == len && memcmp(b->p, d, len) == 0;
    if (!same)
        fprintf(stderr, "encoding differs from %s (%zu vs %zu bytes)\n", name, b->len, len);
    CHECK(same);
    free(d);
}

static struct proto_record trace_record(void)
{
    struct proto_record r = {0};
    r.kind = PROTO_KIND_TRACE;
    r.level = 6;
    r.ts_ms = TS;
    r.recv_ms = RECV;
    r.app = S("wwe_ui");
    r.tenant = S("pulse");
    r.ccid = S(CCID);
    r.name = S("");
    r.rid = S(RID "-t0");
    r.line = S(TRACE_LINE);
    return r;
}

/* The three records of records_three_kinds.bin; name and metric line live in the bufs. */
static void three_records(struct proto_record r[3], struct buf *name, struct buf *line)
{
    buf_puts(name, "evt_");
    for (int i = 0; i < 256; i++)
        buf_putc(name, 'x');
    buf_puts(line, HEAD "\"kind\":\"metric\",\"name\":\"page_load_ms\",\"value\":-1234.5," ROUTE
                    "\"properties\":{\"pad\":\"");
    for (int i = 0; i < 300; i++)
        buf_putc(line, 'p');
    buf_puts(line, "\"},\"rid\":\"" RID "-m2\"}");
    r[0] = trace_record();
    r[0].flags = PROTO_REC_TRUNCATED;
    r[0].level = 3;
    r[0].line = S(ERROR_LINE);
    r[1] = trace_record();
    r[1].kind = PROTO_KIND_EVENT;
    r[1].name.p = name->p;
    r[1].name.len = (uint32_t)name->len;
    r[1].rid = S(RID "-e1");
    r[1].line = S(EVENT_LINE);
    r[2] = trace_record();
    r[2].kind = PROTO_KIND_METRIC;
    r[2].flags = PROTO_REC_HAS_VALUE;
    r[2].value = -1234.5;
    r[2].name = S("page_load_ms");
    r[2].rid = S(RID "-m2");
    r[2].line.p = line->p;
    r[2].line.len = (uint32_t)line->len;
}

static int record_eq(const struct proto_record *a, const struct proto_record *b)
{
    uint64_t va, vb;
    memcpy(&va, &a->value, 8);
    memcpy(&vb, &b->value, 8);
    return a->kind == b->kind && a->flags == b->flags && a->level == b->level && va == vb &&
           a->ts_ms == b->ts_ms && a->recv_ms == b->recv_ms && str_eq(a->app, b->app) &&
           str_eq(a->tenant, b->tenant) && str_eq(a->ccid, b->ccid) &&
           str_eq(a->name, b->name) && str_eq(a->rid, b->rid) && str_eq(a->line, b->line);
}

static void test_vector_hello(void)
{
    struct proto_frame f;
    size_t len;
    uint8_t *d = vector_frame("hello.bin", &f, &len);
    if (!d)
        return;
    struct proto_hello h;
    CHECK_EQ_INT(proto_get_hello(&f, &h), PROTO_OK);
    CHECK_EQ_INT(h.version, PROTO_VERSION);
    CHECK_EQ_INT(h.role, 1);
    CHECK(h.instance_id == 0x0102030405060708ULL);
    CHECK_EQ_INT(h.pid, 4242);
    free(d);

    struct buf b;
    buf_init(&b);
    struct proto_hello e = {PROTO_VERSION, 1, 0x0102030405060708ULL, 4242};
    proto_put_hello(&b, &e);
    check_same_bytes("hello.bin", &b);
    buf_reset(&b);
    struct proto_hello e2 = {PROTO_VERSION, 2, 0xFFFFFFFFFFFFFFFEULL, 1};
    proto_put_hello(&b, &e2);
    check_same_bytes("hello_logshipper.bin", &b);
    buf_free(&b);

    d = vector_frame("hello_v2.bin", &f, &len);
    if (!d)
        return;
    CHECK_EQ_INT(proto_get_hello(&f, &h), PROTO_OK);
    CHECK_EQ_INT(h.version, 2);
    free(d);
}

static void test_vector_records(void)
{
    struct proto_frame f;
    size_t len;
    uint8_t *d = vector_frame("records_one_trace.bin", &f, &len);
    if (!d)
        return;
    struct proto_records_reader rd;
    struct proto_record r, want = trace_record();
    CHECK_EQ_INT(proto_records_open(&f, &rd), PROTO_OK);
    CHECK(rd.seq == 1);
    CHECK_EQ_INT(rd.count, 1);
    CHECK_EQ_INT(proto_records_next(&rd, &r), PROTO_OK);
    CHECK(record_eq(&r, &want));
    CHECK(str_is(r.line, TRACE_LINE));
    CHECK(r.value == 0.0);
    CHECK_EQ_INT(proto_records_next(&rd, &r), 1);
    CHECK_EQ_INT(proto_records_next(&rd, &r), 1);
    free(d);

    struct buf b;
    struct proto_records_writer w;
    buf_init(&b);
    proto_records_begin(&b, &w, 1);
    proto_records_add(&b, &w, &want);
    proto_records_end(&b, &w);
    check_same_bytes("records_one_trace.bin", &b);
    CHECK_EQ_INT(b.len, PROTO_HEADER_LEN + 12 + proto_record_size(&want));

    struct buf name, line;
    buf_init(&name);
    buf_init(&line);
    struct proto_record three[3];
    three_records(three, &name, &line);
    d = vector_frame("records_three_kinds.bin", &f, &len);
    if (d) {
        CHECK_EQ_INT(proto_records_open(&f, &rd), PROTO_OK);
        CHECK(rd.seq == 42);
        CHECK_EQ_INT(rd.count, 3);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(proto_records_next(&rd, &r), PROTO_OK);
            CHECK(record_eq(&r, &three[i]));
        }
        CHECK_EQ_INT(proto_records_next(&rd, &r), 1);
        CHECK(r.value == -1234.5);
        CHECK_EQ_INT(r.name.len, 12);
        CHECK_EQ_INT(r.line.len, 592);
        free(d);
    }
    buf_reset(&b);
    proto_records_begin(&b, &w, 42);
    for (int i = 0; i < 3; i++)
        proto_records_add(&b, &w, &three[i]);
    proto_records_end(&b, &w);
    check_same_bytes("records_three_kinds.bin", &b);
    buf_free(&name);
    buf_free(&line);
    buf_free(&b);
}

static void test_vector_small_frames(void)
{
    struct proto_frame f;
    size_t len;
    uint64_t u = 0;
    uint8_t *d;
    struct buf b;
    buf_init(&b);

    if ((d = vector_frame("ack.bin", &f, &len))) {
        CHECK_EQ_INT(proto_get_ack(&f, &u), PROTO_OK);
        CHECK(u == 4294967298ULL);
        free(d);
    }
    proto_put_ack(&b, 4294967298ULL);
    check_same_bytes("ack.bin", &b);

    if ((d = vector_frame("ping.bin", &f, &len))) {
        CHECK_EQ_INT(proto_get_ping(&f, &u), PROTO_OK);
        CHECK(u == PING_NONCE);
        CHECK_EQ_INT(f.flags & PROTO_PING_REPLY, 0);
        free(d);
    }
    buf_reset(&b);
    proto_put_ping(&b, PING_NONCE, 0);
    check_same_bytes("ping.bin", &b);

    if ((d = vector_frame("ping_reply.bin", &f, &len))) {
        CHECK_EQ_INT(proto_get_ping(&f, &u), PROTO_OK);
        CHECK(u == PING_NONCE);
        CHECK_EQ_INT(f.flags, PROTO_PING_REPLY);
        free(d);
    }
    buf_reset(&b);
    proto_put_ping(&b, PING_NONCE, 1);
    check_same_bytes("ping_reply.bin", &b);

    struct proto_bye bye;
    if ((d = vector_frame("bye.bin", &f, &len))) {
        CHECK_EQ_INT(proto_get_bye(&f, &bye), PROTO_OK);
        CHECK_EQ_INT(bye.reason, 0);
        CHECK(str_is(bye.message, "shutdown"));
        free(d);
    }
    buf_reset(&b);
    proto_put_bye(&b, 0, "shutdown");
    check_same_bytes("bye.bin", &b);
    buf_reset(&b);
    proto_put_bye(&b, 1, proto_strerror(PROTO_ERR_VALUE));
    check_same_bytes("bye_protocol_error.bin", &b);

    int64_t ts = 0;
    uint8_t flags = 0xff;
    struct proto_str text;
    if ((d = vector_frame("stats.bin", &f, &len))) {
        CHECK_EQ_INT(proto_get_stats(&f, &ts, &flags, &text), PROTO_OK);
        CHECK_EQ_INT(ts, TS);
        CHECK_EQ_INT(flags, 0);
        CHECK(str_is(text, STATS_TEXT));
        free(d);
    }
    buf_reset(&b);
    proto_put_stats(&b, TS, 0, STATS_TEXT, strlen(STATS_TEXT));
    check_same_bytes("stats.bin", &b);
    if ((d = vector_frame("stats_gauth_up.bin", &f, &len))) {
        CHECK_EQ_INT(proto_get_stats(&f, &ts, &flags, &text), PROTO_OK);
        CHECK_EQ_INT(flags, PROTO_STATS_GAUTH_UP);
        CHECK(str_is(text, STATS_TEXT));
        free(d);
    }
    buf_reset(&b);
    proto_put_stats(&b, TS, PROTO_STATS_GAUTH_UP | 0x80, STATS_TEXT, strlen(STATS_TEXT)); /* unknown bits dropped */
    check_same_bytes("stats_gauth_up.bin", &b);

    /* stream.bin is these four frames back to back */
    buf_reset(&b);
    struct proto_hello h = {PROTO_VERSION, 1, 0x0102030405060708ULL, 4242};
    proto_put_hello(&b, &h);
    struct proto_records_writer w;
    struct proto_record r = trace_record();
    proto_records_begin(&b, &w, 1);
    proto_records_add(&b, &w, &r);
    proto_records_end(&b, &w);
    proto_put_ping(&b, 7, 0);
    proto_put_ack(&b, 1);
    check_same_bytes("stream.bin", &b);
    buf_free(&b);
}

static void test_strerror(void)
{
    int all[] = {PROTO_OK, PROTO_NEED_MORE, PROTO_ERR_MAGIC, PROTO_ERR_TOO_BIG, PROTO_ERR_TYPE,
                 PROTO_ERR_SHORT, PROTO_ERR_TRAILING, PROTO_ERR_VALUE, 1234};
    int n = (int)(sizeof(all) / sizeof(all[0]));
    for (int i = 0; i < n; i++) {
        CHECK(proto_strerror(all[i]) != NULL && *proto_strerror(all[i]));
        for (int j = 0; j < i; j++)
            CHECK(strcmp(proto_strerror(all[i]), proto_strerror(all[j])) != 0);
    }
}

static void test_frame_parse(void)
{
    struct proto_frame f;
    size_t used = 12345;
    uint8_t h[PROTO_HEADER_LEN + 8] = {'T', 'L', PROTO_ACK, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9};
    CHECK_EQ_INT(proto_frame_parse(h, 0, &f, &used), PROTO_NEED_MORE);
    for (size_t n = 1; n < sizeof(h); n++)
        CHECK_EQ_INT(proto_frame_parse(h, n, &f, &used), PROTO_NEED_MORE);
    CHECK_EQ_INT(used, 12345); /* untouched until a whole frame is there */
    CHECK_EQ_INT(proto_frame_parse(h, sizeof(h), &f, &used), PROTO_OK);
    CHECK_EQ_INT(used, sizeof(h));
    CHECK_EQ_INT(f.type, PROTO_ACK);
    CHECK_EQ_INT(f.payload_len, 8);
    CHECK(f.payload == h + 8);

    /* wrong bytes are reported as soon as they arrive */
    uint8_t x[8] = {'X'};
    CHECK_EQ_INT(proto_frame_parse(x, 1, &f, &used), PROTO_ERR_MAGIC);
    uint8_t y[8] = {'T', 'X'};
    CHECK_EQ_INT(proto_frame_parse(y, 2, &f, &used), PROTO_ERR_MAGIC);
    uint8_t t[8] = {'T', 'L', 7};
    CHECK_EQ_INT(proto_frame_parse(t, 3, &f, &used), PROTO_ERR_TYPE);
    t[2] = 0;
    CHECK_EQ_INT(proto_frame_parse(t, 3, &f, &used), PROTO_ERR_TYPE);
    for (int type = PROTO_HELLO; type <= PROTO_BYE; type++) {
        t[2] = (uint8_t)type;
        CHECK_EQ_INT(proto_frame_parse(t, 8, &f, &used), PROTO_OK);
        CHECK_EQ_INT(used, 8);
    }

    /* the size limit is decided from the header alone */
    uint8_t big[8] = {'T', 'L', PROTO_RECORDS, 0};
    uint32_t max = PROTO_MAX_PAYLOAD;
    big[4] = (uint8_t)(max >> 24), big[5] = (uint8_t)(max >> 16);
    big[6] = (uint8_t)(max >> 8), big[7] = (uint8_t)max;
    CHECK_EQ_INT(proto_frame_parse(big, 8, &f, &used), PROTO_NEED_MORE);
    max++;
    big[4] = (uint8_t)(max >> 24), big[5] = (uint8_t)(max >> 16);
    big[6] = (uint8_t)(max >> 8), big[7] = (uint8_t)max;
    CHECK_EQ_INT(proto_frame_parse(big, 8, &f, &used), PROTO_ERR_TOO_BIG);
    memset(big + 4, 0xff, 4);
    CHECK_EQ_INT(proto_frame_parse(big, 8, &f, &used), PROTO_ERR_TOO_BIG);
}

static void test_wrong_type(void)
{
    uint8_t d[PROTO_HEADER_LEN + 8] = {'T', 'L', PROTO_ACK, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1};
    struct proto_frame f;
    size_t used;
    CHECK_EQ_INT(proto_frame_parse(d, sizeof(d), &f, &used), PROTO_OK);
    struct proto_hello h;
    struct proto_bye b;
    struct proto_str s;
    struct proto_records_reader rd;
    uint64_t u;
    int64_t ts;
    uint8_t fl;
    CHECK_EQ_INT(proto_get_hello(&f, &h), PROTO_ERR_TYPE);
    CHECK_EQ_INT(proto_get_ping(&f, &u), PROTO_ERR_TYPE);
    CHECK_EQ_INT(proto_get_bye(&f, &b), PROTO_ERR_TYPE);
    CHECK_EQ_INT(proto_get_stats(&f, &ts, &fl, &s), PROTO_ERR_TYPE);
    CHECK_EQ_INT(proto_records_open(&f, &rd), PROTO_ERR_TYPE);
    CHECK_EQ_INT(proto_records_validate(&f), PROTO_ERR_TYPE);
    CHECK_EQ_INT(proto_get_ack(&f, &u), PROTO_OK);
    CHECK(u == 1);
}

/* Parses the one frame at the start of b (test helper). */
static int parse_buf(const struct buf *b, struct proto_frame *f)
{
    size_t used = 0;
    int st = proto_frame_parse((const uint8_t *)b->p, b->len, f, &used);
    if (st == PROTO_OK && used != b->len)
        return 99;
    return st;
}

static void test_roundtrip_small(void)
{
    struct buf b;
    struct proto_frame f;
    buf_init(&b);

    struct proto_hello h = {0xBEEF, 2, 0x8000000000000001ULL, 0xFFFFFFFFu}, g;
    proto_put_hello(&b, &h);
    CHECK_EQ_INT(b.len, 24);
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    CHECK_EQ_INT(proto_get_hello(&f, &g), PROTO_OK);
    CHECK(g.version == h.version && g.role == h.role && g.instance_id == h.instance_id &&
          g.pid == h.pid);

    uint64_t seqs[] = {1, 255, 256, 0x0102030405060708ULL, UINT64_MAX};
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        uint64_t u = 0;
        buf_reset(&b);
        proto_put_ack(&b, seqs[i]);
        CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
        CHECK_EQ_INT(proto_get_ack(&f, &u), PROTO_OK);
        CHECK(u == seqs[i]);
        buf_reset(&b);
        proto_put_ping(&b, seqs[i], (int)(i & 1));
        CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
        CHECK_EQ_INT(proto_get_ping(&f, &u), PROTO_OK);
        CHECK(u == seqs[i]);
        CHECK_EQ_INT(f.flags, (int)(i & 1));
    }
    buf_reset(&b);
    proto_put_ack(&b, 0); /* encodable, but no receiver accepts it */
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    uint64_t u;
    CHECK_EQ_INT(proto_get_ack(&f, &u), PROTO_ERR_VALUE);

    struct proto_bye bye;
    buf_reset(&b);
    proto_put_bye(&b, 2, NULL);
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    CHECK_EQ_INT(proto_get_bye(&f, &bye), PROTO_OK);
    CHECK_EQ_INT(bye.reason, 2);
    CHECK_EQ_INT(bye.message.len, 0);
    buf_reset(&b);
    proto_put_bye(&b, 3, "x"); /* undefined reason: encodable, rejected on decode */
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    CHECK_EQ_INT(proto_get_bye(&f, &bye), PROTO_ERR_VALUE);

    /* a message longer than str16 is cut to 65535 bytes, frame still valid */
    char *longmsg = malloc(70001);
    memset(longmsg, 'm', 70000);
    longmsg[70000] = '\0';
    buf_reset(&b);
    proto_put_bye(&b, 1, longmsg);
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    CHECK_EQ_INT(proto_get_bye(&f, &bye), PROTO_OK);
    CHECK_EQ_INT(bye.message.len, 65535);
    free(longmsg);

    int64_t ts;
    uint8_t flags;
    struct proto_str text;
    buf_reset(&b);
    proto_put_stats(&b, -5, 0, NULL, 0);
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    CHECK_EQ_INT(proto_get_stats(&f, &ts, &flags, &text), PROTO_OK);
    CHECK_EQ_INT(ts, -5);
    CHECK_EQ_INT(text.len, 0);
    buf_free(&b);
}

/* STATS text over the frame limit is cut after the last whole line that fits. */
static void test_stats_clamp(void)
{
    size_t n = PROTO_MAX_PAYLOAD + 100, line = 100;
    char *t = malloc(n);
    for (size_t i = 0; i < n; i++)
        t[i] = (i % line == line - 1) ? '\n' : 'a';
    struct buf b;
    struct proto_frame f;
    buf_init(&b);
    proto_put_stats(&b, 1, 0, t, n);
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    int64_t ts;
    uint8_t flags;
    struct proto_str text;
    CHECK_EQ_INT(proto_get_stats(&f, &ts, &flags, &text), PROTO_OK);
    CHECK(text.len <= PROTO_MAX_PAYLOAD - 12);
    CHECK(text.len > PROTO_MAX_PAYLOAD - 12 - line);
    CHECK_EQ_INT(text.len % line, 0);
    CHECK(text.len > 0 && text.p[text.len - 1] == '\n');
    free(t);
    buf_free(&b);
}

static void test_records_roundtrip(void)
{
    struct buf b, name, line;
    buf_init(&b);
    buf_init(&name);
    buf_init(&line);
    struct proto_record three[3];
    three_records(three, &name, &line);

    /* two frames in one buffer, after some unrelated bytes */
    buf_puts(&b, "xyz");
    struct proto_records_writer w1, w2;
    proto_records_begin(&b, &w1, 7);
    size_t before = b.len;
    for (int i = 0; i < 300; i++) {
        proto_records_add(&b, &w1, &three[i % 3]);
        CHECK_EQ_INT(b.len - before, proto_record_size(&three[i % 3]));
        before = b.len;
    }
    proto_records_end(&b, &w1);
    CHECK_EQ_INT(w1.count, 300);
    proto_records_begin(&b, &w2, UINT64_MAX);
    proto_records_add(&b, &w2, &three[2]);
    proto_records_end(&b, &w2);
    CHECK(!b.oom);

    const uint8_t *p = (const uint8_t *)b.p + 3;
    size_t left = b.len - 3, used;
    struct proto_frame f;
    struct proto_records_reader rd;
    struct proto_record r;
    CHECK_EQ_INT(proto_frame_parse(p, left, &f, &used), PROTO_OK);
    CHECK_EQ_INT(proto_records_validate(&f), PROTO_OK);
    CHECK_EQ_INT(proto_records_open(&f, &rd), PROTO_OK);
    CHECK(rd.seq == 7);
    CHECK_EQ_INT(rd.count, 300);
    int n = 0, st;
    while ((st = proto_records_next(&rd, &r)) == PROTO_OK) {
        CHECK(record_eq(&r, &three[n % 3]));
        n++;
    }
    CHECK_EQ_INT(st, 1);
    CHECK_EQ_INT(n, 300);
    p += used;
    left -= used;
    CHECK_EQ_INT(proto_frame_parse(p, left, &f, &used), PROTO_OK);
    CHECK_EQ_INT(used, left);
    CHECK_EQ_INT(proto_records_open(&f, &rd), PROTO_OK);
    CHECK(rd.seq == UINT64_MAX);
    CHECK_EQ_INT(proto_records_next(&rd, &r), PROTO_OK);
    CHECK(record_eq(&r, &three[2]));

    /* a frame with no record is removed; what was before it stays */
    buf_reset(&b);
    buf_puts(&b, "keep");
    proto_records_begin(&b, &w1, 3);
    proto_records_end(&b, &w1);
    CHECK_EQ_INT(b.len, 4);
    CHECK_EQ_STR(b.p, "keep");
    CHECK(!b.oom);

    /* bare records into a buffer of their own (a zero writer, no begin/end) */
    struct proto_records_writer bare = {0, 0};
    buf_reset(&b);
    proto_records_add(&b, &bare, &three[0]);
    proto_records_add(&b, &bare, &three[2]);
    CHECK(!b.oom);
    CHECK_EQ_INT(bare.count, 2);
    CHECK_EQ_INT(b.len, proto_record_size(&three[0]) + proto_record_size(&three[2]));

    /* value is written as 0 without HAS_VALUE, whatever the struct holds */
    struct proto_record v = trace_record();
    v.value = 99.5;
    buf_reset(&b);
    proto_records_begin(&b, &w1, 1);
    proto_records_add(&b, &w1, &v);
    proto_records_end(&b, &w1);
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    CHECK_EQ_INT(proto_records_open(&f, &rd), PROTO_OK);
    CHECK_EQ_INT(proto_records_next(&rd, &r), PROTO_OK);
    CHECK(r.value == 0.0);

    buf_free(&name);
    buf_free(&line);
    buf_free(&b);
}

/* Routing strings longer than their length field are cut, never corrupt the frame. */
static void test_records_clamp(void)
{
    char *big = malloc(70000);
    memset(big, 'a', 70000);
    struct proto_record r = trace_record();
    r.app.p = big, r.app.len = 300;
    r.tenant.p = big, r.tenant.len = 256;
    r.ccid.p = big, r.ccid.len = 255;
    r.rid.p = big, r.rid.len = 1000;
    r.name.p = big, r.name.len = 70000;
    CHECK_EQ_INT(proto_record_size(&r), 38 + 4 * 255 + 65535 + strlen(TRACE_LINE));
    struct buf b;
    struct proto_records_writer w;
    struct proto_frame f;
    struct proto_records_reader rd;
    struct proto_record got;
    buf_init(&b);
    proto_records_begin(&b, &w, 9);
    proto_records_add(&b, &w, &r);
    proto_records_end(&b, &w);
    CHECK_EQ_INT(b.len, 8 + 12 + proto_record_size(&r));
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    CHECK_EQ_INT(proto_records_validate(&f), PROTO_OK);
    CHECK_EQ_INT(proto_records_open(&f, &rd), PROTO_OK);
    CHECK_EQ_INT(proto_records_next(&rd, &got), PROTO_OK);
    CHECK_EQ_INT(got.app.len, 255);
    CHECK_EQ_INT(got.tenant.len, 255);
    CHECK_EQ_INT(got.ccid.len, 255);
    CHECK_EQ_INT(got.rid.len, 255);
    CHECK_EQ_INT(got.name.len, 65535);
    CHECK(str_is(got.line, TRACE_LINE));
    free(big);
    buf_free(&b);
}

/* The writer refuses what a receiver would reject, marking the buffer failed. */
static void test_records_refuse(void)
{
    struct proto_record bad[12];
    for (int i = 0; i < 12; i++)
        bad[i] = trace_record();
    bad[0].kind = 0;
    bad[1].kind = 4;
    bad[2].flags = 0x04;
    bad[3].level = 8;
    bad[4].rid = S("");
    bad[5].line = S("");
    bad[6].line = S("{}\n{}");
    bad[7].line = S("{}\r");
    bad[8].flags = PROTO_REC_HAS_VALUE, bad[8].value = NAN;
    bad[9].flags = PROTO_REC_HAS_VALUE, bad[9].value = -INFINITY;
    bad[10].app.p = NULL, bad[10].app.len = 3;
    bad[11].line.p = NULL;
    struct buf b;
    struct proto_records_writer w;
    buf_init(&b);
    for (int i = 0; i < 12; i++) {
        buf_reset(&b);
        proto_records_begin(&b, &w, 1);
        proto_records_add(&b, &w, &bad[i]);
        if (!b.oom)
            fprintf(stderr, "bad record %d accepted\n", i);
        CHECK(b.oom);
    }
    buf_reset(&b);
    proto_records_begin(&b, &w, 0); /* seq 0 */
    CHECK(b.oom);

    /* a record too large for any frame is refused */
    size_t n = PROTO_MAX_PAYLOAD / 2;
    char *line = malloc(PROTO_MAX_PAYLOAD);
    memset(line, 'l', PROTO_MAX_PAYLOAD);
    struct proto_record r = trace_record();
    r.line.p = line, r.line.len = (uint32_t)PROTO_MAX_PAYLOAD;
    buf_reset(&b);
    proto_records_begin(&b, &w, 1);
    proto_records_add(&b, &w, &r);
    CHECK(b.oom);
    /* a frame whose records add up past the limit is refused at end */
    r.line.len = (uint32_t)n;
    buf_reset(&b);
    proto_records_begin(&b, &w, 1);
    proto_records_add(&b, &w, &r);
    CHECK(!b.oom);
    proto_records_add(&b, &w, &r);
    CHECK(!b.oom);
    proto_records_end(&b, &w);
    CHECK(b.oom);
    /* one that fits exactly is accepted */
    buf_reset(&b);
    proto_records_begin(&b, &w, 1);
    proto_records_add(&b, &w, &r);
    size_t first = proto_record_size(&r);
    r.line.len = 0;
    r.line.len = (uint32_t)(PROTO_MAX_PAYLOAD - 12 - first - proto_record_size(&r));
    proto_records_add(&b, &w, &r);
    proto_records_end(&b, &w);
    CHECK(!b.oom);
    CHECK_EQ_INT(b.len, PROTO_HEADER_LEN + PROTO_MAX_PAYLOAD);
    struct proto_frame f;
    CHECK_EQ_INT(parse_buf(&b, &f), PROTO_OK);
    CHECK_EQ_INT(proto_records_validate(&f), PROTO_OK);
    free(line);
    buf_free(&b);
}

/* Every cut of a valid RECORDS payload is SHORT, every extra byte TRAILING, every
 * one-byte change either rejected or decoded into something that re-encodes identically. */
static void test_records_mutations(void)
{
    struct buf b, name, line, re;
    buf_init(&b);
    buf_init(&name);
    buf_init(&line);
    buf_init(&re);
    struct proto_record three[3];
    three_records(three, &name, &line);
    struct proto_records_writer w;
    proto_records_begin(&b, &w, 42);
    for (int i = 0; i < 3; i++)
        proto_records_add(&b, &w, &three[i]);
    proto_records_end(&b, &w);

    uint8_t *d = malloc(b.len + 1);
    memcpy(d, b.p, b.len);
    size_t plen = b.len - PROTO_HEADER_LEN;
    struct proto_frame f = {PROTO_RECORDS, 0, 0, d + PROTO_HEADER_LEN};
    int bad_cuts = 0;
    for (size_t cut = 0; cut < plen; cut++) {
        f.payload_len = (uint32_t)cut;
        if (proto_records_validate(&f) != PROTO_ERR_SHORT)
            bad_cuts++;
    }
    CHECK_EQ_INT(bad_cuts, 0);
    d[b.len] = 0;
    f.payload_len = (uint32_t)plen + 1;
    CHECK_EQ_INT(proto_records_validate(&f), PROTO_ERR_TRAILING);

    int accepted = 0, mismatched = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(d, b.p, b.len);
            d[i] ^= (uint8_t)(1u << bit);
            struct proto_frame g;
            size_t used;
            if (proto_frame_parse(d, b.len, &g, &used) != PROTO_OK || used != b.len ||
                g.type != PROTO_RECORDS || proto_records_validate(&g) != PROTO_OK)
                continue;
            accepted++;
            struct proto_records_reader rd;
            struct proto_record r;
            struct proto_records_writer w2;
            buf_reset(&re);
            proto_records_open(&g, &rd);
            proto_records_begin(&re, &w2, rd.seq);
            while (proto_records_next(&rd, &r) == PROTO_OK)
                proto_records_add(&re, &w2, &r);
            proto_records_end(&re, &w2);
            if (re.oom || re.len != b.len || memcmp(re.p, d, b.len) != 0)
                mismatched++;
        }
    }
    CHECK(accepted > 0); /* changes inside strings are legal */
    CHECK_EQ_INT(mismatched, 0);
    free(d);
    buf_free(&re);
    buf_free(&name);
    buf_free(&line);
    buf_free(&b);
}

static void test_reader_sticky_error(void)
{
    size_t len;
    uint8_t *d = read_file("records_second_bad.bin", &len);
    CHECK(d != NULL);
    if (!d)
        return;
    struct proto_frame f;
    size_t used;
    struct proto_records_reader rd;
    struct proto_record r;
    CHECK_EQ_INT(proto_frame_parse(d, len, &f, &used), PROTO_OK);
    CHECK_EQ_INT(proto_records_open(&f, &rd), PROTO_OK);
    CHECK_EQ_INT(rd.count, 2);
    CHECK_EQ_INT(proto_records_next(&rd, &r), PROTO_OK);
    CHECK_EQ_INT(proto_records_next(&rd, &r), PROTO_ERR_VALUE);
    CHECK_EQ_INT(proto_records_next(&rd, &r), PROTO_ERR_VALUE);
    CHECK_EQ_INT(rd.left, 1);
    CHECK_EQ_INT(proto_records_validate(&f), PROTO_ERR_VALUE);
    free(d);
}

int main(void)
{
    RUN(test_strerror);
    RUN(test_frame_parse);
    RUN(test_wrong_type);
    RUN(test_roundtrip_small);
    RUN(test_stats_clamp);
    RUN(test_records_roundtrip);
    RUN(test_records_clamp);
    RUN(test_records_refuse);
    RUN(test_records_mutations);
    RUN(test_reader_sticky_error);
    RUN(test_vectors_readme);
    RUN(test_vector_hello);
    RUN(test_vector_records);
    RUN(test_vector_small_frames);
    UNIT_DONE("test_proto");
}
