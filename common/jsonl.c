/* jsonl.c - JSON string escaping that repairs UTF-8 (maximal subparts -> U+FFFD) and
 * escapes every control character, plus RFC 3339 millisecond time formatting and parsing. */
#include "jsonl.h"

#include <string.h>

/* Bytes copied as they are: printable ASCII except '"' (0x22) and '\\' (0x5c). */
static const unsigned char jsonl_plain[256] = {
    [0x20 ... 0x21] = 1,
    [0x23 ... 0x5b] = 1,
    [0x5d ... 0x7e] = 1,
};

static const char jsonl_hex[] = "0123456789abcdef";

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Nonzero when some byte of w needs work: < 0x20, '"', '\\', >= 0x7f. Exact as a test. */
static inline uint64_t word_special(uint64_t w)
{
    uint64_t lt20 = (w - ONES * 0x20) & ~w;
    uint64_t q = w ^ (ONES * 0x22);
    uint64_t bs = w ^ (ONES * 0x5c);
    uint64_t hiq = (q - ONES) & ~q;
    uint64_t hibs = (bs - ONES) & ~bs;
    uint64_t ge7f = (w + ONES) | w;
    return (lt20 | hiq | hibs | ge7f) & HIGHS;
}

/* Copies the leading run of plain bytes of [p, end) to o, 8 at a time while it can
 * (o must have room for end - p bytes). Returns the run's length. */
static inline size_t copy_plain(const unsigned char *p, const unsigned char *end, char *o)
{
    const unsigned char *s = p;
    while ((size_t)(end - p) >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (word_special(w))
            break;
        memcpy(o, &w, 8);
        p += 8;
        o += 8;
    }
    while (p < end && jsonl_plain[*p])
        *o++ = (char)*p++;
    return (size_t)(p - s);
}

/* Length of the leading run of plain bytes in [p, end). */
static inline size_t plain_run(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *s = p;
    while ((size_t)(end - p) >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (word_special(w))
            break;
        p += 8;
    }
    while (p < end && jsonl_plain[*p])
        p++;
    return (size_t)(p - s);
}

/* Length of the valid UTF-8 sequence at p, or 0 with *bad set to the length of the invalid
 * maximal subpart to replace (Unicode's "U+FFFD substitution of maximal subparts"). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end, size_t *bad)
{
    unsigned c = p[0], need, lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (p + i >= end || (i == 1 ? (p[i] < lo || p[i] > hi) : (p[i] < 0x80 || p[i] > 0xbf))) {
            *bad = i;
            return 0;
        }
    }
    return need + 1;
}

/* Writes the JSON form of the next non-plain unit at p (one escaped character, one valid
 * multi-byte character, or one invalid maximal subpart) into o (>= 6 bytes).
 * Returns the output length; *used receives the input bytes consumed. */
static inline size_t unit_escape(const unsigned char *p, const unsigned char *end, char *o,
                                 size_t *used)
{
    unsigned c = p[0];
    if (c < 0x80) {
        *used = 1;
        switch (c) {
        case '"': o[0] = '\\'; o[1] = '"'; return 2;
        case '\\': o[0] = '\\'; o[1] = '\\'; return 2;
        case '\n': o[0] = '\\'; o[1] = 'n'; return 2;
        case '\r': o[0] = '\\'; o[1] = 'r'; return 2;
        case '\t': o[0] = '\\'; o[1] = 't'; return 2;
        case '\b': o[0] = '\\'; o[1] = 'b'; return 2;
        case '\f': o[0] = '\\'; o[1] = 'f'; return 2;
        default:
            if (c >= 0x20 && c != 0x7f) { /* plain: only reached from the counting paths */
                o[0] = (char)c;
                return 1;
            }
            memcpy(o, "\\u00", 4);
            o[4] = jsonl_hex[c >> 4];
            o[5] = jsonl_hex[c & 15];
            return 6;
        }
    }
    size_t bad = 0, n = utf8_seq(p, end, &bad);
    if (!n) {
        *used = bad; /* one invalid maximal subpart */
        goto fffd;
    }
    *used = n;
    if (c == 0xc2 && p[1] < 0xa0) { /* C1 control U+0080..U+009F */
        memcpy(o, "\\u00", 4);
        o[4] = jsonl_hex[p[1] >> 4];
        o[5] = jsonl_hex[p[1] & 15];
        return 6;
    }
    if (c == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
        memcpy(o, "\\u202", 5);
        o[5] = p[2] == 0xa8 ? '8' : '9';
        return 6;
    }
    memcpy(o, p, n);
    return n;
fffd:
    o[0] = (char)0xef;
    o[1] = (char)0xbf;
    o[2] = (char)0xbd;
    return 3;
}

/* Copies a valid 2-byte or 3-byte sequence that needs no escape (most non-Latin text);
 * returns its length, or 0 to take the general path. */
static inline size_t common_seq(const unsigned char *p, const unsigned char *end, char *o)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    if (c >= 0xc3 && c <= 0xdf) { /* 0xc2 holds the C1 controls */
        if (avail >= 2 && (p[1] & 0xc0) == 0x80) {
            o[0] = (char)c;
            o[1] = (char)p[1];
            return 2;
        }
    } else if (c >= 0xe1 && c <= 0xef && c != 0xe2 && c != 0xed) { /* no U+2028/9, surrogates */
        if (avail >= 3 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80) {
            o[0] = (char)c;
            o[1] = (char)p[1];
            o[2] = (char)p[2];
            return 3;
        }
    }
    return 0;
}

/* Up to this many input bytes left, the worst case (6 output bytes each) is reserved at
 * once at the first byte that needs work; past it, each unit reserves for itself. */
#define JSONL_RESERVE_ALL 65536

void jsonl_put_string(struct buf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    if (buf_reserve(out, len + 2))
        return;
    char *o = out->p + out->len;
    *o++ = '"';
    int reserved = 0;
    while (p < end) {
        if (jsonl_plain[*p]) {
            size_t run = copy_plain(p, end, o);
            o += run;
            p += run;
            if (p == end)
                break;
        }
        if (!reserved) {
            /* Room for this unit (<= 6 bytes), the rest (>= 1 output byte per input byte,
             * so at most 6) and the closing quote. */
            size_t rest = (size_t)(end - p);
            reserved = rest <= JSONL_RESERVE_ALL;
            out->len = (size_t)(o - out->p);
            if (buf_reserve(out, (reserved ? 6 * rest : 6 + rest) + 1))
                return;
            o = out->p + out->len;
        }
        size_t n = common_seq(p, end, o);
        if (n) {
            o += n;
            p += n;
            continue;
        }
        size_t used;
        o += unit_escape(p, end, o, &used);
        p += used;
    }
    *o++ = '"';
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
}

int jsonl_put_string_max(struct buf *out, const char *s, size_t len, size_t max_out)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    size_t budget = max_out >= 2 ? max_out - 2 : 0;
    /* The output is at most min(6 * len, budget) bytes plus quotes: reserve that once. */
    size_t room = len <= SIZE_MAX / 8 ? 6 * len : SIZE_MAX / 8;
    if (room > budget)
        room = budget;
    if (buf_reserve(out, room + 2))
        return len > 0;
    char *o = out->p + out->len;
    *o++ = '"';
    while (p < end) {
        if (jsonl_plain[*p]) {
            size_t run = copy_plain(p, (size_t)(end - p) > budget ? p + budget : end, o);
            o += run;
            p += run;
            budget -= run;
            if (p == end || !budget)
                break;
        }
        size_t n, used;
        if (budget >= 6) { /* any unit fits: write in place */
            n = common_seq(p, end, o);
            if (n)
                used = n;
            else
                n = unit_escape(p, end, o, &used);
        } else {
            char tmp[6];
            n = unit_escape(p, end, tmp, &used);
            if (n > budget)
                break;
            memcpy(o, tmp, n);
        }
        o += n;
        p += used;
        budget -= n;
    }
    *o++ = '"';
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
    return p < end;
}

size_t jsonl_string_size(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    size_t n = 2;
    while (p < end) {
        size_t run = plain_run(p, end);
        n += run;
        p += run;
        if (p == end)
            break;
        char tmp[6];
        size_t used;
        n += unit_escape(p, end, tmp, &used);
        p += used;
    }
    return n;
}

/* ---- time ---- */

#define MS_PER_DAY 86400000LL
#define JSONL_MIN_MS (-62167219200000LL) /* 0000-01-01T00:00:00.000Z */
#define JSONL_MAX_MS 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

/* Days since 1970-01-01 of a proleptic Gregorian date. Counts in 400-year eras that
 * start on March 1st, so the leap day is the last day of an era-year. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);                    /* 0..399 */
    unsigned mp = m > 2 ? m - 3 : m + 9;                         /* March = 0 */
    unsigned doy = (153 * mp + 2) / 5 + d - 1;                   /* 0..365 */
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;        /* 0..146096 */
    return era * 146097 + (int64_t)doe - 719468;                 /* 719468: 0000-03-01 */
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static inline void put2(char *o, unsigned v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
}

void jsonl_put_time(struct buf *out, int64_t ms)
{
    if (ms < JSONL_MIN_MS)
        ms = JSONL_MIN_MS;
    if (ms > JSONL_MAX_MS)
        ms = JSONL_MAX_MS;
    int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned msec = (unsigned)(rem % 1000), sec = (unsigned)(rem / 1000);
    if (buf_reserve(out, 24))
        return;
    char *o = out->p + out->len;
    put2(o, (unsigned)(y / 100));
    put2(o + 2, (unsigned)(y % 100));
    o[4] = '-';
    put2(o + 5, m);
    o[7] = '-';
    put2(o + 8, d);
    o[10] = 'T';
    put2(o + 11, sec / 3600);
    o[13] = ':';
    put2(o + 14, sec / 60 % 60);
    o[16] = ':';
    put2(o + 17, sec % 60);
    o[19] = '.';
    o[20] = (char)('0' + msec / 100);
    put2(o + 21, msec % 100);
    o[23] = 'Z';
    out->len += 24;
    out->p[out->len] = '\0';
}

/* Reads exactly n digits at s; -1 if any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int jsonl_parse_time(const char *s, size_t len, int64_t *epoch_ms)
{
    static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len < 20) /* YYYY-MM-DDTHH:MM:SSZ */
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0)
        return -1;
    if (s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60)
        return -1;
    if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return -1;
    size_t i = 19;
    int frac = 0;
    if (s[i] == '.') {
        i++;
        size_t start = i;
        int scale = 100;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            frac += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start)
            return -1;
    }
    if (i >= len)
        return -1;
    int off = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (len - i < 6 || s[i + 3] != ':')
            return -1;
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59)
            return -1;
        off = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - (int64_t)off * 60;
    *epoch_ms = secs * 1000 + frac;
    return 0;
}

int jsonl_utf8_repair(struct buf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *copied = p;
    int repaired = 0;
    while (p < end) {
        if (end - p >= 8) { /* ASCII fast path: eight bytes without a high bit */
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(w & 0x8080808080808080ULL)) {
                p += 8;
                continue;
            }
        }
        size_t bad = 0, n = utf8_seq(p, end, &bad);
        if (n) {
            p += n;
            continue;
        }
        if (!repaired)
            buf_reset(out);
        repaired = 1;
        buf_append(out, copied, (size_t)(p - copied));
        buf_append(out, "\xef\xbf\xbd", 3);
        p += bad;
        copied = p;
    }
    if (repaired)
        buf_append(out, copied, (size_t)(end - copied));
    return repaired;
}
