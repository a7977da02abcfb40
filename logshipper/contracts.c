/* contracts.c - turns each written record into its app's contract metrics: monitored events
 * (PCRE2, whole name, JIT), threshold violations, apdex zones and bucketized histograms. */
#include "contracts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/contract_regex.h"

#define VAR "TELEMETRY_CONFIG_CONTRACTS"

#define RE_MATCH_LIMIT 100000u          /* backtracking steps per match (ReDoS bound) */
#define RE_JIT_STACK_MIN (32u * 1024u)
#define RE_JIT_STACK_MAX (512u * 1024u)

enum zone { ZONE_SATISFIED, ZONE_TOLERATED, ZONE_FRUSTRATED };
static const char *const zone_names[] = {"satisfied", "tolerated", "frustrated"};

static const char *const events_labels[] = {"tenantName", "eventName", "contactCenterId"};
static const char *const violation_labels[] = {"metricName", "type", "tenantName", "contactCenterId"};
static const char *const samples_labels[] = {"metricName", "zone", "tenantName", "contactCenterId"};
static const char *const apdex_labels[] = {"metricName", "tenantName", "contactCenterId"};
static const char *const hist_labels[] = {"tenantName", "contactCenterId"};

struct threshold {
    double value;
    int lt; /* 1: a sample below value violates; 0: above */
};

/* Everything a contract says about one metric name, merged from monitoredMetrics,
 * apdex.metrics and bucketizedMetrics. */
struct metric_rule {
    char *name;
    size_t len;
    struct threshold *th;
    size_t nth;
    int apdex;
    int extended;
    double satisfied, tolerated;
    double *bounds; /* bucketizedMetrics bounds (owned), NULL when not listed */
    size_t nbounds;
    struct prom_family *hist; /* <app>_<metric> histogram, NULL when none */
};

struct contract {
    char *app;
    size_t app_len;
    pcre2_code **re;
    size_t nre;
    struct metric_rule *rules; /* sorted by name bytes for bsearch */
    size_t nrules;
    struct prom_family *events, *violations, *apdex_samples, *apdex;
};

struct contracts {
    struct contract *v;
    size_t n;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    char *scratch; /* NUL-terminated copies of label values, grown, never shrunk */
    size_t scratch_cap;
};

/* ---- building ---- */

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int d = memcmp(a, b, alen < blen ? alen : blen);
    if (d)
        return d;
    return alen < blen ? -1 : alen > blen;
}

static int rule_cmp(const void *a, const void *b)
{
    const struct metric_rule *x = a, *y = b;
    return name_cmp(x->name, x->len, y->name, y->len);
}

/* The rule for name, created when absent (linear: contracts are small and built once). */
static struct metric_rule *rule_get(struct contract *k, const char *name, size_t len, size_t *cap)
{
    for (size_t i = 0; i < k->nrules; i++)
        if (k->rules[i].len == len && !memcmp(k->rules[i].name, name, len))
            return &k->rules[i];
    if (k->nrules == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        struct metric_rule *r = realloc(k->rules, c * sizeof(*r));
        if (!r)
            return NULL;
        k->rules = r;
        *cap = c;
    }
    struct metric_rule *r = &k->rules[k->nrules];
    memset(r, 0, sizeof(*r));
    if (!(r->name = malloc(len + 1)))
        return NULL;
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    r->len = len;
    k->nrules++;
    return r;
}

static int compile_events(struct contract *k, json_t *list, size_t ci, char *err, size_t errlen)
{
    size_t n = json_array_size(list);
    if (!n)
        return 0;
    if (!(k->re = calloc(n, sizeof(*k->re)))) {
        snprintf(err, errlen, "%s: out of memory", VAR);
        return -1;
    }
    for (size_t j = 0; j < n; j++) {
        json_t *s = json_array_get(list, j);
        size_t off;
        char why[256];
        pcre2_code *re = contract_regex_compile(json_string_value(s), json_string_length(s), &off, why, sizeof(why));
        if (!re) { /* after config_load checked the patterns, only out of memory */
            snprintf(err, errlen, "%s: at [%zu].monitoredEvents[%zu]: offset %zu: %s", VAR, ci, j, off, why);
            return -1;
        }
        /* JIT when the platform has it; pcre2_match falls back to the interpreter. */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        k->re[k->nre++] = re;
    }
    return 0;
}

static int collect_rules(struct contract *k, json_t *c, size_t ci, char *err, size_t errlen)
{
    size_t cap = 0, j;
    json_t *m, *v;
    const char *key;
    json_array_foreach(json_object_get(c, "monitoredMetrics"), j, m) {
        json_t *name = json_object_get(m, "name");
        struct metric_rule *r = rule_get(k, json_string_value(name), json_string_length(name), &cap);
        struct threshold *th = r ? realloc(r->th, (r->nth + 1) * sizeof(*th)) : NULL;
        if (!th)
            goto oom;
        r->th = th;
        th[r->nth].value = json_number_value(json_object_get(m, "value"));
        th[r->nth].lt = !strcmp(json_string_value(json_object_get(m, "type")), "lt");
        r->nth++;
    }
    json_object_foreach(json_object_get(json_object_get(c, "apdex"), "metrics"), key, m) {
        struct metric_rule *r = rule_get(k, key, strlen(key), &cap);
        if (!r)
            goto oom;
        r->apdex = 1;
        r->satisfied = json_number_value(json_object_get(m, "satisfiedTH"));
        r->tolerated = json_number_value(json_object_get(m, "toleratedTH"));
        r->extended = json_is_true(json_object_get(m, "isExtended"));
    }
    json_object_foreach(json_object_get(c, "bucketizedMetrics"), key, v) {
        struct metric_rule *r = rule_get(k, key, strlen(key), &cap);
        size_t n = json_array_size(v);
        if (!r || !(r->bounds = malloc(n * sizeof(double))))
            goto oom;
        for (size_t b = 0; b < n; b++)
            r->bounds[b] = json_number_value(json_array_get(v, b));
        r->nbounds = n;
    }
    if (k->nrules)
        qsort(k->rules, k->nrules, sizeof(*k->rules), rule_cmp);
    return 0;
oom:
    snprintf(err, errlen, "%s: at [%zu]: out of memory", VAR, ci);
    return -1;
}

/* The existing family name would clash with (NULL when none), sample names included: a
 * histogram also writes name_bucket, name_sum and name_count. */
static const char *family_clash(struct prom_registry *reg, const char *name, enum prom_type t, char *tmp, size_t tmplen)
{
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    size_t len = strlen(name);
    if (prom_family_find(reg, name))
        return name;
    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(sfx[i]);
        if (t == PROM_HISTOGRAM) { /* our samples against existing families */
            snprintf(tmp, tmplen, "%s%s", name, sfx[i]);
            if (prom_family_find(reg, tmp))
                return tmp;
        }
        if (len > sl && !strcmp(name + len - sl, sfx[i])) { /* against an existing histogram */
            snprintf(tmp, tmplen, "%.*s", (int)(len - sl), name);
            if (prom_family_find(reg, tmp))
                return tmp;
        }
    }
    return NULL;
}

/* Declares the family base+suffix (sanitized into a metric name), refusing clashes; where
 * names the contract field for the error message. */
static struct prom_family *declare(struct prom_registry *reg, const char *base, const char *suffix,
                                   const char *help, enum prom_type t, const char *const *labels,
                                   size_t nlabels, const double *bounds, size_t nbounds,
                                   const char *where, char *err, size_t errlen)
{
    size_t len = strlen(base) + (suffix ? strlen(suffix) : 0) + 2;
    char *raw = malloc(len), *name = malloc(len + 1), *tmp = malloc(len + 16);
    struct prom_family *f = NULL;
    if (!raw || !name || !tmp) {
        snprintf(err, errlen, "%s: at %s: out of memory", VAR, where);
        goto done;
    }
    snprintf(raw, len, "%s%s", base, suffix ? suffix : "");
    prom_sanitize_name(raw, name, len + 1);
    const char *clash = family_clash(reg, name, t, tmp, len + 16);
    if (clash) {
        snprintf(err, errlen, "%s: at %s: metric name \"%.128s\" clashes with the existing family \"%.128s\"",
                 VAR, where, name, clash);
        goto done;
    }
    f = prom_family_new(reg, name, help, t, labels, nlabels, bounds, nbounds);
    if (!f)
        snprintf(err, errlen, "%s: at %s: cannot declare metric family \"%.128s\"", VAR, where, name);
done:
    free(raw);
    free(name);
    free(tmp);
    return f;
}

#define NLAB(a) (sizeof(a) / sizeof((a)[0]))

static int declare_families(struct contract *k, json_t *c, size_t ci, struct prom_registry *reg,
                            char *err, size_t errlen)
{
    char where[256];
    size_t plen = k->app_len + 2;
    char *prefix = malloc(plen);
    int rc = -1;
    if (!prefix) {
        snprintf(err, errlen, "%s: at [%zu]: out of memory", VAR, ci);
        return -1;
    }
    prom_sanitize_name(k->app, prefix, plen); /* not "telemetry": config_load refuses it */
    snprintf(where, sizeof(where), "[%zu].appName", ci);
    if (k->nre && !(k->events = declare(reg, prefix, "_events",
                                        "Client events matching the contract's monitoredEvents.",
                                        PROM_COUNTER, events_labels, NLAB(events_labels), NULL, 0,
                                        where, err, errlen)))
        goto done;
    if (json_array_size(json_object_get(c, "monitoredMetrics")) &&
        !(k->violations = declare(reg, prefix, "_metric_violations_total",
                                  "Metric samples past a monitoredMetrics threshold (type gt: above, lt: below).",
                                  PROM_COUNTER, violation_labels, NLAB(violation_labels), NULL, 0,
                                  where, err, errlen)))
        goto done;
    int any_apdex = 0;
    for (size_t i = 0; i < k->nrules; i++)
        any_apdex |= k->rules[i].apdex;
    if (any_apdex &&
        (!(k->apdex_samples = declare(reg, prefix, "_apdex_samples_total",
                                      "Apdex samples by zone (satisfied, tolerated, frustrated).",
                                      PROM_COUNTER, samples_labels, NLAB(samples_labels), NULL, 0,
                                      where, err, errlen)) ||
         !(k->apdex = declare(reg, prefix, "_apdex",
                              "Apdex since start: (satisfied + tolerated/2) / samples.",
                              PROM_GAUGE, apdex_labels, NLAB(apdex_labels), NULL, 0, where, err,
                              errlen))))
        goto done;
    /* One histogram per bucketized metric, and per isExtended apdex metric (buckets at
     * its two thresholds unless bucketizedMetrics gives bounds for it). */
    for (size_t i = 0; i < k->nrules; i++) {
        struct metric_rule *r = &k->rules[i];
        double th[2];
        const double *b = r->bounds;
        size_t nb = r->nbounds;
        if (!b && r->extended) {
            th[0] = r->satisfied < r->tolerated ? r->satisfied : r->tolerated;
            th[1] = r->satisfied < r->tolerated ? r->tolerated : r->satisfied;
            b = th;
            nb = th[0] == th[1] ? 1 : 2;
            snprintf(where, sizeof(where), "[%zu].apdex.metrics[\"%.64s\"]", ci, r->name);
        } else if (b) {
            snprintf(where, sizeof(where), "[%zu].bucketizedMetrics[\"%.64s\"]", ci, r->name);
        } else {
            continue;
        }
        size_t blen = strlen(prefix) + r->len + 2;
        char *base = malloc(blen);
        if (!base) {
            snprintf(err, errlen, "%s: at %s: out of memory", VAR, where);
            goto done;
        }
        snprintf(base, blen, "%s_%s", prefix, r->name);
        r->hist = declare(reg, base, NULL,
                          "Raw samples of a contract metric (bucketizedMetrics, or apdex "
                          "isExtended: buckets at its thresholds).",
                          PROM_HISTOGRAM, hist_labels, NLAB(hist_labels), b, nb, where, err, errlen);
        free(base);
        if (!r->hist)
            goto done;
    }
    rc = 0;
done:
    free(prefix);
    return rc;
}

static int contract_build(struct contract *k, json_t *c, size_t ci, struct prom_registry *reg,
                          char *err, size_t errlen)
{
    json_t *app = json_object_get(c, "appName");
    k->app_len = json_string_length(app);
    if (!(k->app = malloc(k->app_len + 1))) {
        snprintf(err, errlen, "%s: at [%zu]: out of memory", VAR, ci);
        return -1;
    }
    memcpy(k->app, json_string_value(app), k->app_len + 1);
    if (compile_events(k, json_object_get(c, "monitoredEvents"), ci, err, errlen) ||
        collect_rules(k, c, ci, err, errlen) ||
        declare_families(k, c, ci, reg, err, errlen))
        return -1;
    return 0;
}

struct contracts *contracts_new(const json_t *contracts, struct prom_registry *reg, char *err, size_t errlen)
{
    json_t *list = (json_t *)contracts;
    size_t n = json_is_array(list) ? json_array_size(list) : 0;
    if (list && !json_is_array(list)) {
        snprintf(err, errlen, "%s: must be an array of contracts", VAR);
        return NULL;
    }
    struct contracts *c = calloc(1, sizeof(*c));
    if (!c || (n && !(c->v = calloc(n, sizeof(*c->v)))))
        goto oom;
    for (size_t i = 0; i < n; i++) {
        c->n = i + 1; /* so contracts_free releases what this one took on failure */
        if (contract_build(&c->v[i], json_array_get(list, i), i, reg, err, errlen))
            goto fail;
    }
    c->md = pcre2_match_data_create(1, NULL); /* only "did it match": one pair is enough */
    c->mctx = pcre2_match_context_create(NULL);
    c->jit_stack = pcre2_jit_stack_create(RE_JIT_STACK_MIN, RE_JIT_STACK_MAX, NULL);
    if (!c->md || !c->mctx || !c->jit_stack)
        goto oom;
    pcre2_set_match_limit(c->mctx, RE_MATCH_LIMIT);
    pcre2_jit_stack_assign(c->mctx, NULL, c->jit_stack);
    return c;
oom:
    snprintf(err, errlen, "%s: out of memory", VAR);
fail:
    contracts_free(c);
    return NULL;
}

void contracts_free(struct contracts *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        struct contract *k = &c->v[i];
        for (size_t j = 0; j < k->nre; j++)
            pcre2_code_free(k->re[j]);
        free(k->re);
        for (size_t j = 0; j < k->nrules; j++) {
            free(k->rules[j].name);
            free(k->rules[j].th);
            free(k->rules[j].bounds);
        }
        free(k->rules);
        free(k->app);
    }
    free(c->v);
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mctx);
    pcre2_jit_stack_free(c->jit_stack);
    free(c->scratch);
    free(c);
}

/* ---- observing ---- */

static struct contract *contract_find(struct contracts *c, const struct proto_str *app)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].app_len == app->len && !memcmp(c->v[i].app, app->p, app->len))
            return &c->v[i];
    return NULL;
}

static struct metric_rule *rule_find(struct contract *k, const struct proto_str *name)
{
    size_t lo = 0, hi = k->nrules;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = name_cmp(name->p, name->len, k->rules[mid].name, k->rules[mid].len);
        if (!d)
            return &k->rules[mid];
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int event_matches(struct contracts *c, struct contract *k, const struct proto_str *name)
{
    PCRE2_SPTR subject = (PCRE2_SPTR)(name->p ? name->p : "");
    for (size_t i = 0; i < k->nre; i++) /* first match wins: one count per event */
        if (pcre2_match(k->re[i], subject, name->len, 0, 0, c->md, c->mctx) >= 0)
            return 1;
    return 0;
}

/* Copies s into the scratch area at *o as a C string; a NUL byte (which would cut the
 * label value) becomes U+FFFD. */
static const char *scratch_put(struct contracts *c, size_t *o, const struct proto_str *s)
{
    char *start = c->scratch + *o, *d = start;
    for (uint32_t i = 0; i < s->len; i++) {
        if (s->p[i]) {
            *d++ = s->p[i];
        } else {
            memcpy(d, "\xef\xbf\xbd", 3);
            d += 3;
        }
    }
    *d++ = '\0';
    *o += (size_t)(d - start);
    return start;
}

/* Label values of r as C strings, in c->scratch (grown only when a record needs more). */
static int labels_prepare(struct contracts *c, const struct proto_record *r, const char **tenant,
                          const char **ccid, const char **name)
{
    size_t need = 3 * ((size_t)r->tenant.len + r->ccid.len + r->name.len) + 3, o = 0;
    if (need > c->scratch_cap) {
        char *p = realloc(c->scratch, need);
        if (!p)
            return -1;
        c->scratch = p;
        c->scratch_cap = need;
    }
    *tenant = scratch_put(c, &o, &r->tenant);
    *ccid = scratch_put(c, &o, &r->ccid);
    *name = scratch_put(c, &o, &r->name);
    return 0;
}

static enum zone apdex_zone(const struct metric_rule *m, double v)
{
    if (m->satisfied >= m->tolerated) /* higher is better (MOS) */
        return v >= m->satisfied ? ZONE_SATISFIED : v >= m->tolerated ? ZONE_TOLERATED : ZONE_FRUSTRATED;
    return v <= m->satisfied ? ZONE_SATISFIED : v <= m->tolerated ? ZONE_TOLERATED : ZONE_FRUSTRATED;
}

static void observe_apdex(struct contract *k, const struct metric_rule *m, double v,
                          const char *tenant, const char *ccid, const char *name)
{
    const char *sv[4] = {name, zone_names[apdex_zone(m, v)], tenant, ccid};
    if (prom_counter_add(k->apdex_samples, sv, 1) < 0)
        return; /* refused by the series cap: leave the gauge consistent with the counters */
    double n[3];
    for (int z = 0; z < 3; z++) {
        sv[1] = zone_names[z];
        n[z] = prom_value(k->apdex_samples, sv);
    }
    double total = n[0] + n[1] + n[2];
    const char *gv[3] = {name, tenant, ccid};
    if (total > 0)
        prom_gauge_set(k->apdex, gv, (n[ZONE_SATISFIED] + n[ZONE_TOLERATED] / 2) / total);
}

void contracts_observe(struct contracts *c, const struct proto_record *r)
{
    if (!c || !r || (r->kind != PROTO_KIND_EVENT && r->kind != PROTO_KIND_METRIC))
        return;
    struct contract *k = contract_find(c, &r->app);
    if (!k)
        return;
    const char *tenant, *ccid, *name;
    if (r->kind == PROTO_KIND_EVENT) {
        if (!k->nre || !event_matches(c, k, &r->name) || labels_prepare(c, r, &tenant, &ccid, &name))
            return;
        const char *ev[3] = {tenant, name, ccid};
        prom_counter_add(k->events, ev, 1);
        return;
    }
    if (!(r->flags & PROTO_REC_HAS_VALUE) || isnan(r->value))
        return;
    struct metric_rule *m = rule_find(k, &r->name);
    if (!m || labels_prepare(c, r, &tenant, &ccid, &name))
        return;
    double v = r->value;
    for (size_t i = 0; i < m->nth; i++) {
        const struct threshold *t = &m->th[i];
        if (t->lt ? v < t->value : v > t->value) {
            const char *vv[4] = {name, t->lt ? "lt" : "gt", tenant, ccid};
            prom_counter_add(k->violations, vv, 1);
        }
    }
    if (m->apdex)
        observe_apdex(k, m, v, tenant, ccid, name);
    if (m->hist) {
        const char *hv[2] = {tenant, ccid};
        prom_histogram_observe(m->hist, hv, v);
    }
}
