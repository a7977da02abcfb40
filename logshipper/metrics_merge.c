/* metrics_merge.c - splits two Prometheus texts into families (contiguous runs of lines
 * under one name) and writes each family once: local metadata, local samples, other's samples. */
#include "metrics_merge.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct family {
    const char *name; /* NULL for comment lines before any family */
    size_t nlen;
    size_t start, end; /* byte span in its text */
    int used;
};

struct family_list {
    struct family *v;
    size_t n, cap;
};

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static size_t name_span(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && name_char(p[i], i == 0))
        i++;
    return i;
}

/* "# HELP name ..." or "# TYPE name ...": 1 with the name. */
static int meta_line(const char *p, size_t n, const char **name, size_t *nlen)
{
    if (n < 8 || (memcmp(p, "# HELP ", 7) && memcmp(p, "# TYPE ", 7)))
        return 0;
    *name = p + 7;
    *nlen = name_span(p + 7, n - 7);
    return *nlen > 0;
}

/* A sample named s belongs to family f when it is f's name, or f's name plus one of the
 * suffixes histograms and summaries add. */
static int sample_of(const struct family *f, const char *s, size_t slen)
{
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    if (!f || !f->name || slen < f->nlen || memcmp(s, f->name, f->nlen))
        return 0;
    if (slen == f->nlen)
        return 1;
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++)
        if (slen - f->nlen == strlen(sfx[i]) && !memcmp(s + f->nlen, sfx[i], slen - f->nlen))
            return 1;
    return 0;
}

static struct family *list_add(struct family_list *l, const char *name, size_t nlen, size_t at)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        struct family *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        l->v = v;
        l->cap = cap;
    }
    struct family *f = &l->v[l->n++];
    f->name = name;
    f->nlen = nlen;
    f->start = f->end = at;
    f->used = 0;
    return f;
}

static int same_name(const struct family *f, const char *name, size_t nlen)
{
    return f && f->name && f->nlen == nlen && !memcmp(f->name, name, nlen);
}

/* Splits t into families; -1 when out of memory. */
static int parse(const char *t, size_t len, struct family_list *l)
{
    struct family *cur = NULL;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(t + i, '\n', len - i);
        size_t next = nl ? (size_t)(nl - t) + 1 : len;
        const char *p = t + i;
        size_t n = (nl ? (size_t)(nl - t) : len) - i;
        const char *name;
        size_t nlen;
        if (n == 0) {
            /* blank line: dropped */
        } else if (p[0] == '#') {
            if (meta_line(p, n, &name, &nlen)) {
                /* HELP then TYPE of one name stay one family; a new name starts one */
                if (!same_name(cur, name, nlen) && !(cur = list_add(l, name, nlen, i)))
                    return -1;
            } else if (!cur && !(cur = list_add(l, NULL, 0, i))) {
                return -1;
            }
        } else {
            nlen = name_span(p, n);
            if (!sample_of(cur, p, nlen) && !(cur = list_add(l, p, nlen, i)))
                return -1;
        }
        if (cur)
            cur->end = next;
        i = next;
    }
    return 0;
}

/* The series of a sample line: its name and {labels} (quoted values may hold spaces and
 * escaped quotes), without the value. */
static size_t series_len(const char *p, size_t n)
{
    size_t i = name_span(p, n);
    if (i < n && p[i] == '{') {
        int quoted = 0;
        for (i++; i < n; i++) {
            if (quoted && p[i] == '\\')
                i++;
            else if (p[i] == '"')
                quoted = !quoted;
            else if (!quoted && p[i] == '}')
                return i + 1;
        }
    }
    return i;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (n--)
        h = (h ^ (unsigned char)*p++) * 1099511628211ull;
    return h | 1; /* 0 marks an empty slot */
}

/* The series of one family's samples, to drop the other text's duplicates of them. */
struct series_entry {
    uint64_t h; /* 0: empty slot */
    size_t at, len; /* the series text in the local text */
};

struct series_set {
    struct series_entry *v;
    size_t mask;
    const char *t;
};

static int set_build(struct series_set *s, const char *t, size_t start, size_t end)
{
    size_t n = 0, cap = 16;
    for (size_t i = start; i < end; i++)
        n += t[i] == '\n';
    while (cap < 2 * (n + 1))
        cap *= 2;
    if (!(s->v = calloc(cap, sizeof(*s->v))))
        return -1;
    s->mask = cap - 1;
    s->t = t;
    for (size_t i = start; i < end;) {
        const char *nl = memchr(t + i, '\n', end - i);
        size_t stop = nl ? (size_t)(nl - t) : end;
        if (stop > i && t[i] != '#') {
            size_t k = series_len(t + i, stop - i);
            uint64_t h = hash_bytes(t + i, k);
            size_t j = h & s->mask;
            while (s->v[j].h)
                j = (j + 1) & s->mask;
            s->v[j] = (struct series_entry){h, i, k};
        }
        i = nl ? stop + 1 : end;
    }
    return 0;
}

static int set_has(const struct series_set *s, const char *p, size_t n)
{
    size_t k = series_len(p, n);
    uint64_t h = hash_bytes(p, k);
    for (size_t j = h & s->mask; s->v[j].h; j = (j + 1) & s->mask)
        if (s->v[j].h == h && s->v[j].len == k && !memcmp(s->t + s->v[j].at, p, k))
            return 1;
    return 0;
}

/* Appends the lines of t[start..end), without blank lines, each ending in '\n';
 * skip_meta drops # HELP and # TYPE lines, skip (if any) the samples of series it holds. */
static void put_lines(struct buf *out, const char *t, size_t start, size_t end, int skip_meta,
                      const struct series_set *skip)
{
    size_t i = start;
    while (i < end) {
        const char *nl = memchr(t + i, '\n', end - i);
        size_t stop = nl ? (size_t)(nl - t) : end;
        const char *name;
        size_t nlen;
        if (stop > i && !(skip_meta && meta_line(t + i, stop - i, &name, &nlen)) &&
            !(skip && t[i] != '#' && set_has(skip, t + i, stop - i))) {
            buf_append(out, t + i, stop - i);
            buf_putc(out, '\n');
        }
        i = nl ? stop + 1 : end;
    }
}

void metrics_merge(struct buf *out, const char *local, size_t llen, const char *other, size_t olen)
{
    struct family_list L = {0}, O = {0};
    if (!local)
        llen = 0;
    if (!other)
        olen = 0;
    if (parse(local, llen, &L) || parse(other, olen, &O)) {
        /* out of memory: serve the local text alone rather than a broken merge */
        put_lines(out, local, 0, llen, 0, NULL);
        goto done;
    }
    for (size_t i = 0; i < L.n; i++) {
        const struct family *f = &L.v[i];
        put_lines(out, local, f->start, f->end, 0, NULL);
        if (!f->name)
            continue;
        struct series_set set = {0};
        int have_set = 0;
        for (size_t j = 0; j < O.n; j++) {
            struct family *g = &O.v[j];
            if (g->used || !same_name(g, f->name, f->nlen))
                continue;
            if (!have_set)
                have_set = set_build(&set, local, f->start, f->end) == 0 ? 1 : -1;
            put_lines(out, other, g->start, g->end, 1, have_set > 0 ? &set : NULL);
            g->used = 1;
        }
        free(set.v);
    }
    for (size_t j = 0; j < O.n; j++)
        if (!O.v[j].used)
            put_lines(out, other, O.v[j].start, O.v[j].end, 0, NULL);
done:
    free(L.v);
    free(O.v);
}
