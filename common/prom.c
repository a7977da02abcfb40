/* prom.c - Prometheus text exposition: a registry of families kept in declaration order,
 * each a SipHash table of series keyed by label values, with one cap over all families. */
#include "prom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define DROPPED_NAME "telemetry_metric_series_dropped_total"
#define DROPPED_HELP "Metric series not created because the series cap (TELEMETRY_METRICS_THRESHOLD) was reached."

/* One labelled series. key is the label values joined with NUL bytes; labels is the
 * rendered k="v",... text; bucket counts (nbounds + 1, the last is +Inf) follow. */
struct prom_series {
    struct prom_series *hnext;
    uint64_t hash;
    double value; /* counter/gauge value, histogram sum */
    uint64_t count;
    char *key;
    size_t keylen;
    char *labels;
    size_t labelslen;
    uint64_t buckets[];
};

struct prom_family {
    struct prom_registry *reg;
    char *name;
    char *help;
    enum prom_type type;
    char **label_names;
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    struct prom_series **table; /* chains, size tmask + 1 (a power of two) */
    size_t tmask;
    struct prom_series **items; /* insertion order, for rendering */
    size_t nitems, citems;
};

struct prom_registry {
    struct hash_key key;
    size_t max_series;
    size_t nseries; /* series of labelled families (the ones the cap bounds) */
    uint64_t dropped;
    struct prom_family **fams;
    size_t nfams, cfams;
};

/* ---- names and values ---- */

static int name_char(unsigned char c, int first, int colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    if (colon && c == ':')
        return 1;
    return !first && c >= '0' && c <= '9';
}

int prom_valid_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (size_t i = 0; s[i]; i++)
        if (!name_char((unsigned char)s[i], i == 0, 1))
            return 0;
    return 1;
}

static int valid_label_name(const char *s)
{
    if (!s || !*s || (s[0] == '_' && s[1] == '_')) /* "__" prefix is reserved */
        return 0;
    for (size_t i = 0; s[i]; i++)
        if (!name_char((unsigned char)s[i], i == 0, 0))
            return 0;
    return 1;
}

void prom_sanitize_name(const char *s, char *out, size_t outlen)
{
    if (!outlen)
        return;
    size_t o = 0;
    int prev_high = 0;
    if (s && s[0] >= '0' && s[0] <= '9' && o + 1 < outlen)
        out[o++] = '_';
    for (size_t i = 0; s && s[i] && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 && c <= 0xbf && prev_high)
            continue; /* one '_' per multi-byte character */
        prev_high = c >= 0x80;
        out[o] = name_char(c, o == 0, 1) ? (char)c : '_';
        o++;
    }
    if (o == 0 && outlen > 1)
        out[o++] = '_';
    out[o] = '\0';
}

/* Length of the valid UTF-8 sequence at p, or 0 when the bytes there are not one. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
    unsigned c = p[0], lo = 0x80, hi = 0xbf;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef)
        need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (avail <= need)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i <= need; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return need + 1;
}

/* Skips one maximal invalid subpart at p (at least one byte). */
static size_t utf8_bad_len(const unsigned char *p, size_t avail)
{
    unsigned c = p[0], lo = 0x80, hi = 0xbf;
    size_t need;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef)
        need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 1;
    size_t i = 1;
    for (; i <= need && i < avail; i++) {
        unsigned b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
            break;
    }
    return i;
}

void prom_put_label_value(struct buf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    buf_putc(out, '"');
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            buf_append(out, run, (size_t)(p - run));
        if (p == end)
            break;
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            buf_putc(out, '\\');
            buf_putc(out, (char)c);
            p++;
        } else if (c == '\n') {
            buf_append(out, "\\n", 2);
            p++;
        } else if (c < 0x80) { /* other controls are legal in the format; keep them */
            buf_putc(out, (char)c);
            p++;
        } else {
            size_t n = utf8_len(p, (size_t)(end - p));
            if (n) {
                buf_append(out, p, n);
                p += n;
            } else {
                buf_append(out, "\xef\xbf\xbd", 3);
                p += utf8_bad_len(p, (size_t)(end - p));
            }
        }
    }
    buf_putc(out, '"');
}

/* Integral values print as integers, others in the shortest form that reads back. */
static void put_value(struct buf *out, double v)
{
    if (isnan(v)) {
        buf_append(out, "NaN", 3);
        return;
    }
    if (isinf(v)) {
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        buf_putc(out, '0');
        return;
    }
    if (fabs(v) < 9.2e18 && v == (double)(int64_t)v) {
        int64_t i = (int64_t)v;
        if (i < 0) {
            buf_putc(out, '-');
            buf_put_u64(out, (uint64_t)0 - (uint64_t)i);
        } else {
            buf_put_u64(out, (uint64_t)i);
        }
        return;
    }
    /* A value whose shortest form has <= 15 digits prints as that form at %.15g
     * (trailing zeros dropped), so trying 15, 16, 17 finds the shortest. */
    char tmp[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v)
            break;
    }
    buf_puts(out, tmp);
}

void prom_put_header(struct buf *out, const char *name, const char *help, enum prom_type t)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    buf_append(out, "# HELP ", 7);
    buf_puts(out, name);
    buf_putc(out, ' ');
    for (const char *h = help ? help : ""; *h; h++) {
        if (*h == '\\')
            buf_append(out, "\\\\", 2);
        else if (*h == '\n')
            buf_append(out, "\\n", 2);
        else
            buf_putc(out, *h);
    }
    buf_append(out, "\n# TYPE ", 8);
    buf_puts(out, name);
    buf_putc(out, ' ');
    buf_puts(out, types[t <= PROM_HISTOGRAM ? t : PROM_GAUGE]);
    buf_putc(out, '\n');
}

void prom_put_sample(struct buf *out, const char *name, const char *labels, double v)
{
    buf_puts(out, name);
    if (labels && *labels) {
        buf_putc(out, '{');
        buf_puts(out, labels);
        buf_putc(out, '}');
    }
    buf_putc(out, ' ');
    put_value(out, v);
    buf_putc(out, '\n');
}

/* ---- registry ---- */

struct prom_registry *prom_registry_new(size_t max_series)
{
    struct prom_registry *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (hash_random_key(&r->key)) { /* only hash flooding resistance is lost */
        r->key.k0 = 0x70726f6d6b657930ULL;
        r->key.k1 = (uint64_t)(uintptr_t)r;
    }
    r->max_series = max_series;
    return r;
}

static void family_free(struct prom_family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nitems; i++)
        free(f->items[i]);
    free(f->items);
    free(f->table);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->label_names ? f->label_names[i] : NULL);
    free(f->label_names);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void prom_registry_free(struct prom_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nfams; i++)
        family_free(r->fams[i]);
    free(r->fams);
    free(r);
}

struct prom_family *prom_family_find(struct prom_registry *r, const char *name)
{
    for (size_t i = 0; r && name && i < r->nfams; i++)
        if (!strcmp(r->fams[i]->name, name))
            return r->fams[i];
    return NULL;
}

static int family_args_ok(struct prom_registry *r, const char *name, enum prom_type type,
                          const char *const *label_names, size_t nlabels,
                          const double *buckets, size_t nbuckets)
{
    if (!r || !prom_valid_name(name) || !strcmp(name, DROPPED_NAME) || prom_family_find(r, name))
        return 0;
    if (type != PROM_COUNTER && type != PROM_GAUGE && type != PROM_HISTOGRAM)
        return 0;
    if (nlabels && !label_names)
        return 0;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_label_name(label_names[i]))
            return 0;
        if (type == PROM_HISTOGRAM && !strcmp(label_names[i], "le"))
            return 0;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(label_names[i], label_names[j]))
                return 0;
    }
    if (type != PROM_HISTOGRAM)
        return nbuckets == 0;
    if (nbuckets && !buckets)
        return 0;
    for (size_t i = 0; i < nbuckets; i++) {
        if (!isfinite(buckets[i]) || (i && !(buckets[i] > buckets[i - 1])))
            return 0;
    }
    return 1;
}

struct prom_family *prom_family_new(struct prom_registry *r, const char *name, const char *help,
                                    enum prom_type type, const char *const *label_names,
                                    size_t nlabels, const double *buckets, size_t nbuckets)
{
    if (!family_args_ok(r, name, type, label_names, nlabels, buckets, nbuckets))
        return NULL;
    if (r->nfams == r->cfams) {
        size_t c = r->cfams ? r->cfams * 2 : 16;
        struct prom_family **fams = realloc(r->fams, c * sizeof(*fams));
        if (!fams)
            return NULL;
        r->fams = fams;
        r->cfams = c;
    }
    struct prom_family *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->reg = r;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->tmask = 7;
    f->table = calloc(f->tmask + 1, sizeof(*f->table));
    if (nlabels)
        f->label_names = calloc(nlabels, sizeof(*f->label_names));
    if (nbuckets)
        f->bounds = malloc(nbuckets * sizeof(*f->bounds));
    if (!f->name || !f->help || !f->table || (nlabels && !f->label_names) ||
        (nbuckets && !f->bounds))
        goto fail;
    f->nlabels = nlabels;
    for (size_t i = 0; i < nlabels; i++)
        if (!(f->label_names[i] = strdup(label_names[i])))
            goto fail;
    if (nbuckets)
        memcpy(f->bounds, buckets, nbuckets * sizeof(*buckets));
    f->nbounds = nbuckets;
    r->fams[r->nfams++] = f;
    return f;
fail:
    family_free(f);
    return NULL;
}

/* ---- series ---- */

static struct prom_series *series_find(struct prom_family *f, uint64_t h, const char *key,
                                       size_t keylen)
{
    for (struct prom_series *s = f->table[h & f->tmask]; s; s = s->hnext)
        if (s->hash == h && s->keylen == keylen && !memcmp(s->key, key, keylen))
            return s;
    return NULL;
}

static int table_grow(struct prom_family *f)
{
    size_t nmask = f->tmask * 2 + 1;
    struct prom_series **t = calloc(nmask + 1, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i <= f->tmask; i++) {
        struct prom_series *s = f->table[i], *next;
        for (; s; s = next) {
            next = s->hnext;
            s->hnext = t[s->hash & nmask];
            t[s->hash & nmask] = s;
        }
    }
    free(f->table);
    f->table = t;
    f->tmask = nmask;
    return 0;
}

/* Creates the series for key (the label values, each ended by a NUL). */
static struct prom_series *series_new(struct prom_family *f, uint64_t h, const char *key,
                                      size_t keylen)
{
    struct prom_registry *r = f->reg;
    if (f->nlabels && r->nseries >= r->max_series) {
        r->dropped++;
        return NULL;
    }
    if (f->nitems == f->citems) {
        size_t c = f->citems ? f->citems * 2 : 8;
        struct prom_series **items = realloc(f->items, c * sizeof(*items));
        if (!items)
            return NULL;
        f->items = items;
        f->citems = c;
    }
    if (f->nitems + 1 > f->tmask + 1 && table_grow(f))
        return NULL;
    struct buf lb;
    buf_init(&lb);
    const char *v = key;
    for (size_t i = 0; i < f->nlabels; i++) {
        size_t vlen = strlen(v);
        if (i)
            buf_putc(&lb, ',');
        buf_puts(&lb, f->label_names[i]);
        buf_putc(&lb, '=');
        prom_put_label_value(&lb, v, vlen);
        v += vlen + 1;
    }
    if (lb.oom) {
        buf_free(&lb);
        return NULL;
    }
    size_t nb = f->type == PROM_HISTOGRAM ? f->nbounds + 1 : 0;
    size_t size = sizeof(struct prom_series) + nb * sizeof(uint64_t);
    struct prom_series *s = calloc(1, size + keylen + 1 + lb.len + 1);
    if (!s) {
        buf_free(&lb);
        return NULL;
    }
    s->hash = h;
    s->key = (char *)s + size;
    memcpy(s->key, key, keylen);
    s->keylen = keylen;
    s->labels = s->key + keylen + 1;
    if (lb.len)
        memcpy(s->labels, lb.p, lb.len);
    s->labelslen = lb.len;
    buf_free(&lb);
    s->hnext = f->table[h & f->tmask];
    f->table[h & f->tmask] = s;
    f->items[f->nitems++] = s;
    if (f->nlabels)
        r->nseries++;
    return s;
}

/* Finds or creates the series for values (a NULL value counts as ""); NULL when refused
 * by the cap or out of memory. The key is built on the stack for usual sizes. */
static struct prom_series *series_get(struct prom_family *f, const char *const *values,
                                      int create)
{
    if (f->nlabels && !values)
        return NULL;
    char small[512], *key = small;
    size_t keylen = 0, lens[16], *lenp = lens;
    if (f->nlabels > 16 && !(lenp = malloc(f->nlabels * sizeof(*lenp))))
        return NULL;
    for (size_t i = 0; i < f->nlabels; i++) {
        lenp[i] = values[i] ? strlen(values[i]) : 0;
        keylen += lenp[i] + 1;
    }
    if (keylen > sizeof(small) && !(key = malloc(keylen))) {
        if (lenp != lens)
            free(lenp);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < f->nlabels; i++) {
        if (lenp[i])
            memcpy(key + o, values[i], lenp[i]);
        o += lenp[i];
        key[o++] = '\0';
    }
    uint64_t h = hash_siphash(&f->reg->key, key, keylen);
    struct prom_series *s = series_find(f, h, key, keylen);
    if (!s && create)
        s = series_new(f, h, key, keylen);
    if (key != small)
        free(key);
    if (lenp != lens)
        free(lenp);
    return s;
}

int prom_counter_add(struct prom_family *f, const char *const *values, double v)
{
    if (!f || f->type != PROM_COUNTER)
        return -1;
    struct prom_series *s = series_get(f, values, 1);
    if (!s)
        return -1;
    if (v > 0) /* counters only go up; NaN and negatives are ignored */
        s->value += v;
    return 0;
}

int prom_gauge_set(struct prom_family *f, const char *const *values, double v)
{
    if (!f || f->type != PROM_GAUGE)
        return -1;
    struct prom_series *s = series_get(f, values, 1);
    if (!s)
        return -1;
    s->value = v;
    return 0;
}

int prom_histogram_observe(struct prom_family *f, const char *const *values, double v)
{
    if (!f || f->type != PROM_HISTOGRAM)
        return -1;
    struct prom_series *s = series_get(f, values, 1);
    if (!s)
        return -1;
    /* First bound >= v (le semantics); NaN and values past the last go to +Inf. */
    size_t lo = 0, hi = f->nbounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= f->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (isnan(v))
        lo = f->nbounds;
    s->buckets[lo]++;
    s->count++;
    s->value += v;
    return 0;
}

double prom_value(struct prom_family *f, const char *const *values)
{
    if (!f)
        return 0;
    struct prom_series *s = series_get(f, values, 0);
    if (!s)
        return 0;
    return f->type == PROM_HISTOGRAM ? (double)s->count : s->value;
}

size_t prom_series_count(const struct prom_registry *r) { return r ? r->nseries : 0; }

uint64_t prom_series_dropped(const struct prom_registry *r) { return r ? r->dropped : 0; }

/* ---- rendering ---- */

/* name + suffix + {labels[,extra]} */
static void put_series_name(struct buf *out, const struct prom_family *f, const char *suffix,
                            const struct prom_series *s, const char *extra, size_t extralen)
{
    buf_puts(out, f->name);
    if (suffix)
        buf_puts(out, suffix);
    if (!s->labelslen && !extralen) {
        buf_putc(out, ' ');
        return;
    }
    buf_putc(out, '{');
    buf_append(out, s->labels, s->labelslen);
    if (extralen) {
        if (s->labelslen)
            buf_putc(out, ',');
        buf_append(out, extra, extralen);
    }
    buf_append(out, "} ", 2);
}

static void render_histogram(struct buf *out, const struct prom_family *f,
                             const struct prom_series *s, struct buf *le)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->nbounds; i++) {
        buf_reset(le);
        buf_append(le, "le=\"", 4);
        if (i < f->nbounds)
            put_value(le, f->bounds[i]);
        else
            buf_append(le, "+Inf", 4);
        buf_putc(le, '"');
        cum += s->buckets[i];
        put_series_name(out, f, "_bucket", s, le->p, le->len);
        buf_put_u64(out, cum);
        buf_putc(out, '\n');
    }
    put_series_name(out, f, "_sum", s, NULL, 0);
    put_value(out, s->value);
    buf_putc(out, '\n');
    put_series_name(out, f, "_count", s, NULL, 0);
    buf_put_u64(out, s->count);
    buf_putc(out, '\n');
}

void prom_render(const struct prom_registry *r, struct buf *out)
{
    struct buf le;
    buf_init(&le);
    for (size_t i = 0; r && i < r->nfams; i++) {
        const struct prom_family *f = r->fams[i];
        prom_put_header(out, f->name, f->help, f->type);
        for (size_t j = 0; j < f->nitems; j++) {
            const struct prom_series *s = f->items[j];
            if (f->type == PROM_HISTOGRAM) {
                render_histogram(out, f, s, &le);
            } else {
                put_series_name(out, f, NULL, s, NULL, 0);
                put_value(out, s->value);
                buf_putc(out, '\n');
            }
        }
    }
    buf_free(&le);
    prom_put_header(out, DROPPED_NAME, DROPPED_HELP, PROM_COUNTER);
    buf_append(out, DROPPED_NAME " ", sizeof(DROPPED_NAME));
    buf_put_u64(out, r ? r->dropped : 0);
    buf_putc(out, '\n');
}

void prom_put_single(struct buf *out, const char *name, const char *help, enum prom_type t, double v)
{
    prom_put_header(out, name, help, t);
    prom_put_sample(out, name, NULL, v);
}
