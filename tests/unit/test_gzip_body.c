/* test_gzip_body.c - ingest/gzip_body.c: streaming in 1-byte chunks equals one shot, the
 * output cap exactly at and one past the limit, a gzip bomb stopped at the cap, corrupt and
 * truncated streams, concatenated members, trailing garbage, use after free. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../../ingest/gzip_body.h"
#include "unit.h"

/* gzip of data (one member) appended to out. */
static void gz(const void *data, size_t len, struct buf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return;
    size_t bound = deflateBound(&zs, len) + 64;
    buf_reserve(out, bound);
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out->p + out->len;
    zs.avail_out = (uInt)bound;
    deflate(&zs, Z_FINISH);
    out->len += bound - zs.avail_out;
    deflateEnd(&zs);
}

/* gzip of n zero bytes, deflated in pieces (a bomb without holding it). */
static void gz_zeros(size_t n, struct buf *out)
{
    static unsigned char zeros[65536];
    unsigned char tmp[65536];
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
    do {
        size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
        n -= k;
        zs.next_in = zeros;
        zs.avail_in = (uInt)k;
        int flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
        do {
            zs.next_out = tmp;
            zs.avail_out = sizeof(tmp);
            deflate(&zs, flush);
            buf_append(out, tmp, sizeof(tmp) - zs.avail_out);
        } while (zs.avail_out == 0);
    } while (n > 0);
    deflateEnd(&zs);
}

/* Inflates in with the given chunk size (0: one shot); returns the first non-OK status of
 * feed, else finish's status. */
static int inflate_chunks(const void *in, size_t len, size_t chunk, size_t max_out, struct buf *out)
{
    struct gzip_body g;
    buf_reset(out);
    if (gzip_body_begin(&g) != GZIP_OK)
        return -1;
    int st = GZIP_OK;
    const char *p = in;
    size_t off = 0;
    if (chunk == 0)
        chunk = len ? len : 1;
    while (off < len && st == GZIP_OK) {
        size_t n = len - off < chunk ? len - off : chunk;
        st = gzip_body_feed(&g, p + off, n, out, max_out);
        off += n;
    }
    if (st == GZIP_OK)
        st = gzip_body_finish(&g);
    gzip_body_free(&g);
    return st;
}

static char *sample(size_t n)
{
    char *s = malloc(n + 1);
    unsigned x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245 + 12345;
        /* text-like: compressible but not trivially */
        s[i] = (x >> 16) % 5 == 0 ? ' ' : (char)('a' + (x >> 20) % 26);
    }
    s[n] = '\0';
    return s;
}

static void test_stream_equals_one_shot(void)
{
    size_t n = 100000;
    char *data = sample(n);
    struct buf z, a, b;
    buf_init(&z);
    buf_init(&a);
    buf_init(&b);
    gz(data, n, &z);
    CHECK(z.len > 20 && z.len < n);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, 1 << 20, &a), GZIP_OK);
    CHECK_EQ_INT(a.len, n);
    CHECK(a.len == n && !memcmp(a.p, data, n));
    CHECK(a.p && a.p[a.len] == '\0'); /* terminated, for the JSON parser */
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 1, 1 << 20, &b), GZIP_OK);
    CHECK(b.len == n && !memcmp(b.p, data, n));
    CHECK(b.p && b.p[b.len] == '\0');
    /* odd chunk sizes */
    size_t sizes[] = {2, 3, 7, 10, 4096, 65535, 65536, 65537};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        CHECK_EQ_INT(inflate_chunks(z.p, z.len, sizes[i], 1 << 20, &b), GZIP_OK);
        CHECK(b.len == n && !memcmp(b.p, data, n));
    }
    /* empty content */
    buf_reset(&z);
    gz("", 0, &z);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 1, 100, &a), GZIP_OK);
    CHECK_EQ_INT(a.len, 0);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, 0, &a), GZIP_OK);
    free(data);
    buf_free(&z);
    buf_free(&a);
    buf_free(&b);
}

static void test_cap(void)
{
    size_t n = 150000;
    char *data = sample(n);
    struct buf z, out;
    buf_init(&z);
    buf_init(&out);
    gz(data, n, &z);
    /* exactly at the limit: fine, one shot or byte by byte */
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, n, &out), GZIP_OK);
    CHECK_EQ_INT(out.len, n);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 1, n, &out), GZIP_OK);
    CHECK_EQ_INT(out.len, n);
    /* one past: too large, and never more than one byte past the cap */
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, n - 1, &out), GZIP_TOO_LARGE);
    CHECK(out.len <= n);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 1, n - 1, &out), GZIP_TOO_LARGE);
    CHECK(out.len <= n);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 1000, n - 1, &out), GZIP_TOO_LARGE);
    CHECK(out.len <= n);
    /* a small cap */
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, 10, &out), GZIP_TOO_LARGE);
    CHECK(out.len <= 11);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, 0, &out), GZIP_TOO_LARGE);
    CHECK(out.len <= 1);
    free(data);

    /* a bomb: 16 MiB of zeros in ~16 KiB, capped at 1 MiB */
    buf_reset(&z);
    gz_zeros(16u << 20, &z);
    CHECK(z.len < 100000);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, 1 << 20, &out), GZIP_TOO_LARGE);
    CHECK(out.len <= (1u << 20) + 1);
    CHECK(out.cap <= (2u << 20) + 2); /* memory stays near the cap */
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 4096, 1 << 20, &out), GZIP_TOO_LARGE);
    CHECK(out.len <= (1u << 20) + 1);
    buf_free(&z);
    buf_free(&out);
}

static void test_corrupt_and_truncated(void)
{
    size_t n = 50000;
    char *data = sample(n);
    struct buf z, bad, out;
    buf_init(&z);
    buf_init(&bad);
    buf_init(&out);
    gz(data, n, &z);
    /* not gzip at all */
    CHECK_EQ_INT(inflate_chunks("{\"appName\":\"wwe_ui\"}", 20, 0, 1 << 20, &out), GZIP_BAD);
    /* a flipped byte in the compressed data */
    buf_append(&bad, z.p, z.len);
    bad.p[z.len / 2] ^= 0x55;
    CHECK_EQ_INT(inflate_chunks(bad.p, bad.len, 0, 1 << 20, &out), GZIP_BAD);
    CHECK_EQ_INT(inflate_chunks(bad.p, bad.len, 1, 1 << 20, &out), GZIP_BAD);
    /* a wrong CRC-32 or ISIZE in the trailer */
    buf_reset(&bad);
    buf_append(&bad, z.p, z.len);
    bad.p[z.len - 8] ^= 1;
    CHECK_EQ_INT(inflate_chunks(bad.p, bad.len, 0, 1 << 20, &out), GZIP_BAD);
    buf_reset(&bad);
    buf_append(&bad, z.p, z.len);
    bad.p[z.len - 1] ^= 1;
    CHECK_EQ_INT(inflate_chunks(bad.p, bad.len, 0, 1 << 20, &out), GZIP_BAD);
    /* a bad header: wrong magic, unknown method */
    buf_reset(&bad);
    buf_append(&bad, z.p, z.len);
    bad.p[1] = 0x00;
    CHECK_EQ_INT(inflate_chunks(bad.p, bad.len, 0, 1 << 20, &out), GZIP_BAD);
    buf_reset(&bad);
    buf_append(&bad, z.p, z.len);
    bad.p[2] = 7;
    CHECK_EQ_INT(inflate_chunks(bad.p, bad.len, 0, 1 << 20, &out), GZIP_BAD);
    /* truncated anywhere: feeding is fine, finish says the stream did not end */
    size_t cuts[] = {0, 1, 2, 9, 10, 11, 100, z.len / 2, z.len - 8, z.len - 4, z.len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        CHECK_EQ_INT(inflate_chunks(z.p, cuts[i], 0, 1 << 20, &out), GZIP_BAD);
        CHECK_EQ_INT(inflate_chunks(z.p, cuts[i], 1, 1 << 20, &out), GZIP_BAD);
    }
    /* a raw deflate stream or zlib stream is not gzip */
    buf_reset(&bad);
    {
        uLongf dl = compressBound(n);
        buf_reserve(&bad, dl);
        compress((Bytef *)bad.p, &dl, (const Bytef *)data, n);
        bad.len = dl;
    }
    CHECK_EQ_INT(inflate_chunks(bad.p, bad.len, 0, 1 << 20, &out), GZIP_BAD);
    free(data);
    buf_free(&z);
    buf_free(&bad);
    buf_free(&out);
}

static void test_members_and_trailing(void)
{
    const char *a = "{\"appName\":\"wwe_ui\",", *b = "\"traces\":[]}";
    struct buf z, out, t;
    buf_init(&z);
    buf_init(&out);
    buf_init(&t);
    gz(a, strlen(a), &z);
    size_t first = z.len;
    gz(b, strlen(b), &z);
    /* two members are one body */
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, 1000, &out), GZIP_OK);
    CHECK_EQ_STR(out.p, "{\"appName\":\"wwe_ui\",\"traces\":[]}");
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 1, 1000, &out), GZIP_OK);
    CHECK_EQ_STR(out.p, "{\"appName\":\"wwe_ui\",\"traces\":[]}");
    /* split exactly at the member boundary, in two feeds */
    struct gzip_body g;
    buf_reset(&out);
    CHECK_EQ_INT(gzip_body_begin(&g), GZIP_OK);
    CHECK_EQ_INT(gzip_body_feed(&g, z.p, first, &out, 1000), GZIP_OK);
    CHECK_EQ_INT(gzip_body_finish(&g), GZIP_OK); /* the first member alone is complete */
    CHECK_EQ_INT(gzip_body_feed(&g, z.p + first, z.len - first, &out, 1000), GZIP_OK);
    CHECK_EQ_INT(gzip_body_finish(&g), GZIP_OK);
    CHECK_EQ_STR(out.p, "{\"appName\":\"wwe_ui\",\"traces\":[]}");
    gzip_body_free(&g);
    /* the second member truncated: not finished */
    CHECK_EQ_INT(inflate_chunks(z.p, z.len - 3, 1, 1000, &out), GZIP_BAD);
    CHECK_EQ_INT(inflate_chunks(z.p, first + 5, 0, 1000, &out), GZIP_BAD);
    /* the cap counts across members */
    size_t total = strlen(a) + strlen(b);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, total, &out), GZIP_OK);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, total - 1, &out), GZIP_TOO_LARGE);
    CHECK_EQ_INT(inflate_chunks(z.p, z.len, 0, strlen(a), &out), GZIP_TOO_LARGE);
    /* trailing garbage after a member: bad, whatever the chunking */
    static const char *const junk[] = {"garbage", "\n", "\0\0\0\0", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03XYZ"};
    static const size_t junk_len[] = {7, 1, 4, 13};
    for (size_t i = 0; i < 4; i++) {
        buf_reset(&t);
        buf_append(&t, z.p, first);
        buf_append(&t, junk[i], junk_len[i]);
        CHECK_EQ_INT(inflate_chunks(t.p, t.len, 0, 1000, &out), GZIP_BAD);
        CHECK_EQ_INT(inflate_chunks(t.p, t.len, 1, 1000, &out), GZIP_BAD);
    }
    /* a lone byte that could start a member: not finished */
    buf_reset(&t);
    buf_append(&t, z.p, first);
    buf_append(&t, "\x1f", 1);
    CHECK_EQ_INT(inflate_chunks(t.p, t.len, 0, 1000, &out), GZIP_BAD);
    buf_free(&z);
    buf_free(&out);
    buf_free(&t);
}

static void test_lifecycle(void)
{
    struct gzip_body g;
    struct buf out, z;
    buf_init(&out);
    buf_init(&z);
    gz("hello", 5, &z);
    CHECK_EQ_INT(gzip_body_begin(&g), GZIP_OK);
    CHECK_EQ_INT(gzip_body_finish(&g), GZIP_BAD); /* nothing yet */
    CHECK_EQ_INT(gzip_body_feed(&g, z.p, 0, &out, 100), GZIP_OK);
    CHECK_EQ_INT(gzip_body_feed(&g, z.p, z.len, &out, 100), GZIP_OK);
    CHECK_EQ_INT(gzip_body_finish(&g), GZIP_OK);
    CHECK_EQ_STR(out.p, "hello");
    gzip_body_free(&g);
    gzip_body_free(&g); /* twice is harmless */
    CHECK_EQ_INT(gzip_body_feed(&g, z.p, z.len, &out, 100), GZIP_BAD);
    CHECK_EQ_INT(gzip_body_finish(&g), GZIP_BAD);
    /* many bodies in a row do not leak (valgrind) */
    for (int i = 0; i < 200; i++) {
        buf_reset(&out);
        CHECK_EQ_INT(gzip_body_begin(&g), GZIP_OK);
        gzip_body_feed(&g, z.p, i % 2 ? z.len : z.len / 2, &out, 100);
        gzip_body_free(&g);
    }
    buf_free(&out);
    buf_free(&z);
}

int main(void)
{
    RUN(test_stream_equals_one_shot);
    RUN(test_cap);
    RUN(test_corrupt_and_truncated);
    RUN(test_members_and_trailing);
    RUN(test_lifecycle);
    UNIT_DONE("test_gzip_body");
}
