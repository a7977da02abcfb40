/* test_jsonl.c - JSON string escaping (every control, invalid UTF-8, cuts) and RFC 3339
 * times; random inputs are checked with jansson, times against gmtime_r. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../common/buf.h"
#include "../../common/jsonl.h"
#include "unit.h"

/* jsonl_put_string of s (len bytes) as a fresh C string in a static-lifetime buf. */
static const char *esc(struct buf *b, const char *s, size_t len)
{
    buf_reset(b);
    jsonl_put_string(b, s, len);
    return b->p;
}

static void test_every_ascii_byte(void)
{
    struct buf b;
    buf_init(&b);
    for (int c = 0; c < 0x80; c++) {
        char in = (char)c, want[16];
        switch (c) {
        case '"': strcpy(want, "\"\\\"\""); break;
        case '\\': strcpy(want, "\"\\\\\""); break;
        case '\n': strcpy(want, "\"\\n\""); break;
        case '\r': strcpy(want, "\"\\r\""); break;
        case '\t': strcpy(want, "\"\\t\""); break;
        case '\b': strcpy(want, "\"\\b\""); break;
        case '\f': strcpy(want, "\"\\f\""); break;
        default:
            if (c < 0x20 || c == 0x7f)
                snprintf(want, sizeof(want), "\"\\u%04x\"", c);
            else
                snprintf(want, sizeof(want), "\"%c\"", c);
        }
        const char *got = esc(&b, &in, 1);
        if (strcmp(got, want))
            fprintf(stderr, "byte 0x%02x: got %s want %s\n", c, got, want);
        CHECK_EQ_STR(got, want);
        CHECK_EQ_INT(jsonl_string_size(&in, 1), strlen(want));
    }
    CHECK_EQ_STR(esc(&b, "", 0), "\"\"");
    CHECK_EQ_STR(esc(&b, "a\0b", 3), "\"a\\u0000b\"");
    buf_free(&b);
}

static void test_specials_at_every_offset(void)
{
    /* The plain-run scanner reads 8 bytes at a time: put each special byte at every
     * position of strings around word sizes. */
    static const struct {
        const char *in;
        const char *out;
    } sp[] = {{"\"", "\\\""}, {"\\", "\\\\"}, {"\x01", "\\u0001"}, {"\x1f", "\\u001f"},
              {"\x7f", "\\u007f"}, {"\xc3\xa9", "\xc3\xa9"}, {"\xff", "\xef\xbf\xbd"},
              {"\n", "\\n"}};
    struct buf b, want;
    buf_init(&b);
    buf_init(&want);
    char in[64];
    for (size_t k = 0; k < sizeof(sp) / sizeof(sp[0]); k++) {
        for (size_t pos = 0; pos < 20; pos++) {
            for (size_t tail = 0; tail < 12; tail += 5) {
                size_t n = 0, il = strlen(sp[k].in);
                memset(in, 'x', pos);
                n = pos;
                memcpy(in + n, sp[k].in, il);
                n += il;
                memset(in + n, 'y', tail);
                n += tail;
                buf_reset(&want);
                buf_putc(&want, '"');
                for (size_t i = 0; i < pos; i++)
                    buf_putc(&want, 'x');
                buf_puts(&want, sp[k].out);
                for (size_t i = 0; i < tail; i++)
                    buf_putc(&want, 'y');
                buf_putc(&want, '"');
                CHECK_EQ_STR(esc(&b, in, n), want.p);
            }
        }
    }
    buf_free(&b);
    buf_free(&want);
}

#define FFFD "\xef\xbf\xbd"

static void test_utf8(void)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } t[] = {
        {"\xc3\xa9", 2, "\"\xc3\xa9\""},                     /* é */
        {"\xe2\x82\xac", 3, "\"\xe2\x82\xac\""},             /* € */
        {"\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\""},     /* U+1F600 */
        {"\xef\xbf\xbd", 3, "\"" FFFD "\""},                 /* U+FFFD itself */
        {"\xf4\x8f\xbf\xbf", 4, "\"\xf4\x8f\xbf\xbf\""},     /* U+10FFFF */
        {"\xed\x9f\xbf", 3, "\"\xed\x9f\xbf\""},             /* U+D7FF */
        {"\xee\x80\x80", 3, "\"\xee\x80\x80\""},             /* U+E000 */
        {"\xc2\xa0", 2, "\"\xc2\xa0\""},                     /* U+00A0 is not C1 */
        {"\xc2\x80", 2, "\"\\u0080\""},                      /* C1 */
        {"\xc2\x85", 2, "\"\\u0085\""},                      /* NEL */
        {"\xc2\x9f", 2, "\"\\u009f\""},
        {"\xe2\x80\xa8", 3, "\"\\u2028\""},
        {"\xe2\x80\xa9", 3, "\"\\u2029\""},
        {"\xe2\x80\xaa", 3, "\"\xe2\x80\xaa\""},
        {"\x80", 1, "\"" FFFD "\""},                         /* lone continuation */
        {"\xbf\x80", 2, "\"" FFFD FFFD "\""},
        {"\xc0\x80", 2, "\"" FFFD FFFD "\""},                /* overlong NUL */
        {"\xc1\xbf", 2, "\"" FFFD FFFD "\""},
        {"\xc2", 1, "\"" FFFD "\""},                         /* truncated */
        {"\xc2" "A", 2, "\"" FFFD "A\""},
        {"\xe0\x80\x80", 3, "\"" FFFD FFFD FFFD "\""},       /* overlong 3-byte */
        {"\xe0\x9f\xbf", 3, "\"" FFFD FFFD FFFD "\""},
        {"\xe0\xa0", 2, "\"" FFFD "\""},                     /* truncated, one subpart */
        {"\xe1\x80" "z", 3, "\"" FFFD "z\""},
        {"\xed\xa0\x80", 3, "\"" FFFD FFFD FFFD "\""},       /* surrogate D800 */
        {"\xed\xbf\xbf", 3, "\"" FFFD FFFD FFFD "\""},       /* surrogate DFFF */
        {"\xf0\x80\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\""}, /* overlong 4-byte */
        {"\xf0\x9f\x98", 3, "\"" FFFD "\""},
        {"\xf0\x9f\x98" "A", 4, "\"" FFFD "A\""},
        {"\xf4\x90\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\""}, /* > U+10FFFF */
        {"\xf5\x80\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\""},
        {"\xf8\x88\x80\x80\x80", 5, "\"" FFFD FFFD FFFD FFFD FFFD "\""},
        {"\xfe\xff", 2, "\"" FFFD FFFD "\""},
        {"\xc3\xa9\xc3", 3, "\"\xc3\xa9" FFFD "\""},
        {"\xc2\xc2\xa9", 3, "\"" FFFD "\xc2\xa9\""},
        /* Unicode 15, table 3-8: maximal subparts */
        {"\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64", 13,
         "\"a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d\""},
    };
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *got = esc(&b, t[i].in, t[i].len);
        if (strcmp(got, t[i].out))
            fprintf(stderr, "utf8 case %zu\n", i);
        CHECK_EQ_STR(got, t[i].out);
        CHECK_EQ_INT(jsonl_string_size(t[i].in, t[i].len), strlen(t[i].out));
    }
    buf_free(&b);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random bytes biased towards the interesting ones. */
static size_t random_input(char *s, size_t maxlen)
{
    static const char *const pieces[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                         "\xc2\x85", "\xe2\x80\xa8", "\xed\xa0\x80",
                                         "\"", "\\", "\n", "\x7f", "\xc0\xaf", "\xf4\x90"};
    size_t n = rnd() % maxlen, o = 0;
    while (o < n) {
        unsigned k = (unsigned)(rnd() % 10);
        if (k < 4) {
            s[o++] = (char)('a' + rnd() % 26);
        } else if (k < 6) {
            s[o++] = (char)(rnd() & 0xff);
        } else {
            const char *p = pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);
            if (o + pl > n)
                break;
            memcpy(s + o, p, pl);
            o += pl;
        }
    }
    return o;
}

/* The bytes must not hold a raw control, DEL, C1 or U+2028/9 (any line breaker). */
static int no_raw_controls(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c == 0xc2 && i + 1 < len && (unsigned char)p[i + 1] < 0xa0)
            return 0;
        if (c == 0xe2 && i + 2 < len && (unsigned char)p[i + 1] == 0x80 &&
            ((unsigned char)p[i + 2] == 0xa8 || (unsigned char)p[i + 2] == 0xa9))
            return 0;
    }
    return 1;
}

static void test_random_against_jansson(void)
{
    char in[200];
    struct buf full, cut;
    buf_init(&full);
    buf_init(&cut);
    int bad = 0;
    for (int iter = 0; iter < 4000 && bad < 5; iter++) {
        size_t n = random_input(in, sizeof(in));
        buf_reset(&full);
        jsonl_put_string(&full, in, n);
        size_t before = bad;
        if (full.len != jsonl_string_size(in, n))
            bad++;
        if (!no_raw_controls(full.p, full.len))
            bad++;
        json_error_t err;
        json_t *jf = json_loadb(full.p, full.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!jf || !json_is_string(jf)) {
            bad++;
            json_decref(jf);
            continue;
        }
        /* A cut at every size: valid JSON, within the limit, a prefix of the whole, and
         * as long as possible (another unit, at most 6 bytes, would not have fit). */
        for (size_t max = 2; max <= full.len + 1; max += 1 + rnd() % 7) {
            buf_reset(&cut);
            int was_cut = jsonl_put_string_max(&cut, in, n, max);
            json_t *jc = json_loadb(cut.p, cut.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            size_t cl = jc ? json_string_length(jc) : 0;
            if (!jc || !json_is_string(jc) || cut.len > max ||
                cl > json_string_length(jf) || memcmp(json_string_value(jc), json_string_value(jf), cl) ||
                was_cut != (cut.len != full.len) || (was_cut && cut.len + 6 <= max) ||
                (!was_cut && strcmp(cut.p, full.p)))
                bad++;
            json_decref(jc);
        }
        json_decref(jf);
        if ((size_t)bad != before) {
            fprintf(stderr, "random case %d failed: %s\n", iter, full.p);
        }
    }
    CHECK_EQ_INT(bad, 0);
    buf_free(&full);
    buf_free(&cut);
}

static void test_max_cuts(void)
{
    struct buf b;
    buf_init(&b);
    CHECK_EQ_INT(jsonl_put_string_max(&b, "abcdef", 6, 8), 0);
    CHECK_EQ_STR(b.p, "\"abcdef\"");
    buf_reset(&b);
    CHECK_EQ_INT(jsonl_put_string_max(&b, "abcdef", 6, 7), 1);
    CHECK_EQ_STR(b.p, "\"abcde\"");
    buf_reset(&b); /* an escape is never split */
    CHECK_EQ_INT(jsonl_put_string_max(&b, "ab\x01", 3, 9), 1);
    CHECK_EQ_STR(b.p, "\"ab\"");
    buf_reset(&b);
    CHECK_EQ_INT(jsonl_put_string_max(&b, "ab\x01", 3, 10), 0);
    CHECK_EQ_STR(b.p, "\"ab\\u0001\"");
    buf_reset(&b); /* nor a UTF-8 sequence */
    CHECK_EQ_INT(jsonl_put_string_max(&b, "a\xf0\x9f\x98\x80", 5, 6), 1);
    CHECK_EQ_STR(b.p, "\"a\"");
    buf_reset(&b);
    CHECK_EQ_INT(jsonl_put_string_max(&b, "a\xf0\x9f\x98\x80", 5, 7), 0);
    buf_reset(&b);
    CHECK_EQ_INT(jsonl_put_string_max(&b, "abc", 3, 2), 1);
    CHECK_EQ_STR(b.p, "\"\"");
    buf_reset(&b);
    CHECK_EQ_INT(jsonl_put_string_max(&b, "", 0, 2), 0);
    CHECK_EQ_STR(b.p, "\"\"");
    /* appends after existing content */
    buf_reset(&b);
    buf_puts(&b, "x=");
    jsonl_put_string_max(&b, "hello", 5, 5);
    CHECK_EQ_STR(b.p, "x=\"hel\"");
    /* a long string of escapes grows the buffer correctly */
    char big[5000];
    memset(big, '\x01', sizeof(big));
    buf_reset(&b);
    jsonl_put_string(&b, big, sizeof(big));
    CHECK_EQ_INT(b.len, 2 + 6 * sizeof(big));
    CHECK(!b.oom);
    buf_reset(&b);
    CHECK_EQ_INT(jsonl_put_string_max(&b, big, sizeof(big), 1000), 1);
    CHECK_EQ_INT(b.len, 998);
    /* past 64 KiB of input the writer reserves unit by unit: all escapes, then mixed */
    size_t hn = 100000;
    char *huge = malloc(hn);
    memset(huge, '\n', hn);
    buf_free(&b);
    jsonl_put_string(&b, huge, hn);
    CHECK_EQ_INT(b.len, 2 + 2 * hn);
    CHECK(!b.oom && b.p[b.len - 1] == '"' && b.p[b.len - 2] == 'n');
    for (size_t i = 0; i < hn; i++)
        huge[i] = "a\x01\xc3\xa9\xe2\x80\xa8\xff\"\xf0\x9f\x98\x80"[i % 13];
    buf_free(&b);
    jsonl_put_string(&b, huge, hn);
    CHECK_EQ_INT(b.len, jsonl_string_size(huge, hn));
    json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(j && json_is_string(j));
    json_decref(j);
    free(huge);
    buf_free(&b);
}

static const char *fmt_time(struct buf *b, int64_t ms)
{
    buf_reset(b);
    jsonl_put_time(b, ms);
    return b->p;
}

static void test_time_format(void)
{
    struct buf b;
    buf_init(&b);
    CHECK_EQ_STR(fmt_time(&b, 0), "1970-01-01T00:00:00.000Z");
    CHECK_EQ_STR(fmt_time(&b, 1764000000123LL), "2025-11-24T16:00:00.123Z");
    CHECK_EQ_STR(fmt_time(&b, 951782400000LL), "2000-02-29T00:00:00.000Z");
    CHECK_EQ_STR(fmt_time(&b, -1), "1969-12-31T23:59:59.999Z");
    CHECK_EQ_STR(fmt_time(&b, 4102444800000LL), "2100-01-01T00:00:00.000Z");
    CHECK_EQ_STR(fmt_time(&b, -62135596800000LL), "0001-01-01T00:00:00.000Z");
    CHECK_EQ_STR(fmt_time(&b, -62167219200000LL), "0000-01-01T00:00:00.000Z");
    CHECK_EQ_STR(fmt_time(&b, 253402300799999LL), "9999-12-31T23:59:59.999Z");
    CHECK_EQ_STR(fmt_time(&b, INT64_MIN), "0000-01-01T00:00:00.000Z");
    CHECK_EQ_STR(fmt_time(&b, INT64_MAX), "9999-12-31T23:59:59.999Z");
    CHECK_EQ_STR(fmt_time(&b, 253402300800000LL), "9999-12-31T23:59:59.999Z");
    CHECK_EQ_INT(b.len, 24);

    /* Against gmtime_r over the whole range, plus parse round trips. */
    int bad = 0;
    for (int i = 0; i < 50000; i++) {
        int64_t ms = (int64_t)(rnd() % (253402300800000ULL + 62167219200000ULL)) - 62167219200000LL;
        if (i < 1000) /* near the epoch too */
            ms = (int64_t)(rnd() % 400000000000ULL) - 200000000000LL;
        time_t t = (time_t)((ms - ((ms % 1000 + 1000) % 1000)) / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char want[96];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)((ms % 1000 + 1000) % 1000));
        const char *got = fmt_time(&b, ms);
        int64_t back = 0;
        if (strcmp(got, want) || jsonl_parse_time(b.p, b.len, &back) || back != ms) {
            if (bad++ < 3)
                fprintf(stderr, "ms %lld: got %s want %s back %lld\n", (long long)ms, got, want,
                        (long long)back);
        }
    }
    CHECK_EQ_INT(bad, 0);
    buf_free(&b);
}

static int parse(const char *s, int64_t *ms) { return jsonl_parse_time(s, strlen(s), ms); }

static void test_time_parse(void)
{
    int64_t ms = 0;
    CHECK_EQ_INT(parse("2025-11-24T16:00:00.123Z", &ms), 0);
    CHECK_EQ_INT(ms, 1764000000123LL);
    CHECK_EQ_INT(parse("2025-11-24t16:00:00.123z", &ms), 0);
    CHECK_EQ_INT(ms, 1764000000123LL);
    CHECK_EQ_INT(parse("2025-11-24 16:00:00.123Z", &ms), 0);
    CHECK_EQ_INT(ms, 1764000000123LL);
    CHECK_EQ_INT(parse("2025-11-24T18:00:00.123+02:00", &ms), 0);
    CHECK_EQ_INT(ms, 1764000000123LL);
    CHECK_EQ_INT(parse("2025-11-24T10:30:00.123-05:30", &ms), 0);
    CHECK_EQ_INT(ms, 1764000000123LL);
    CHECK_EQ_INT(parse("2025-11-24T16:00:00Z", &ms), 0);
    CHECK_EQ_INT(ms, 1764000000000LL);
    CHECK_EQ_INT(parse("2025-11-24T16:00:00.1Z", &ms), 0);
    CHECK_EQ_INT(ms, 1764000000100LL);
    CHECK_EQ_INT(parse("2025-11-24T16:00:00.123999999999Z", &ms), 0); /* truncated */
    CHECK_EQ_INT(ms, 1764000000123LL);
    CHECK_EQ_INT(parse("1969-12-31T23:59:59.999Z", &ms), 0);
    CHECK_EQ_INT(ms, -1);
    CHECK_EQ_INT(parse("2000-02-29T00:00:00Z", &ms), 0);
    CHECK_EQ_INT(ms, 951782400000LL);
    CHECK_EQ_INT(parse("2024-02-29T00:00:00Z", &ms), 0);
    CHECK_EQ_INT(parse("2016-12-31T23:59:60Z", &ms), 0); /* leap second */
    CHECK_EQ_INT(ms, 1483228800000LL);
    CHECK_EQ_INT(parse("0000-01-01T00:00:00Z", &ms), 0);
    CHECK_EQ_INT(ms, -62167219200000LL);
    CHECK_EQ_INT(parse("9999-12-31T23:59:59.999Z", &ms), 0);
    CHECK_EQ_INT(ms, 253402300799999LL);
    CHECK_EQ_INT(parse("2025-01-01T00:00:00+23:59", &ms), 0);

    static const char *const invalid[] = {
        "",
        "2025-11-24",
        "2025-11-24T16:00:00",        /* no offset */
        "2025-11-24T16:00:00.Z",      /* empty fraction */
        "2025-11-24T16:00:00.123",
        "2025-11-24T16:00:00ZZ",
        "2025-11-24T16:00:00Z ",
        " 2025-11-24T16:00:00Z",
        "2025-11-24X16:00:00Z",
        "2025/11/24T16:00:00Z",
        "2025-11-24T16-00-00Z",
        "25-11-24T16:00:00Z",
        "2025-1-24T16:00:00Z",
        "2025-11-24T16:00:00+02",
        "2025-11-24T16:00:00+0200",
        "2025-11-24T16:00:00+02:0",
        "2025-11-24T16:00:00+24:00",
        "2025-11-24T16:00:00+02:60",
        "2025-11-24T16:00:00+02:00x",
        "2025-00-24T16:00:00Z",
        "2025-13-24T16:00:00Z",
        "2025-11-00T16:00:00Z",
        "2025-11-31T16:00:00Z",
        "2025-04-31T16:00:00Z",
        "2025-01-32T16:00:00Z",
        "2025-02-29T16:00:00Z",
        "2100-02-29T16:00:00Z",
        "1900-02-29T16:00:00Z",
        "2025-11-24T24:00:00Z",
        "2025-11-24T16:60:00Z",
        "2025-11-24T16:00:61Z",
        "2025-11-24T16:00:0aZ",
        "+025-11-24T16:00:00Z",
        "2025-11-24T16:00:00.12a3Z",
        "2025-11-24T16:00:00,123Z",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        int rc = parse(invalid[i], &ms);
        if (rc != -1)
            fprintf(stderr, "accepted: %s\n", invalid[i]);
        CHECK_EQ_INT(rc, -1);
    }
    /* length is honoured: no read past len, no NUL needed */
    CHECK_EQ_INT(jsonl_parse_time("2025-11-24T16:00:00Zjunk", 20, &ms), 0);
    CHECK_EQ_INT(jsonl_parse_time("2025-11-24T16:00:00Z", 19, &ms), -1);
}

int main(void)
{
    RUN(test_every_ascii_byte);
    RUN(test_specials_at_every_offset);
    RUN(test_utf8);
    RUN(test_max_cuts);
    RUN(test_random_against_jansson);
    RUN(test_time_format);
    RUN(test_time_parse);
    UNIT_DONE("jsonl");
}
