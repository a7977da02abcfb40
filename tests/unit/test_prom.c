/* test_prom.c - Prometheus registry: exact rendering, escaping, histograms, the series cap
 * and its dropped counter, name checks; the output is fed to promtool when installed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../common/buf.h"
#include "../../common/prom.h"
#include "unit.h"

#define DROPPED_TAIL(n)                                                                     \
    "# HELP telemetry_metric_series_dropped_total Metric series not created because the "  \
    "series cap (TELEMETRY_METRICS_THRESHOLD) was reached.\n"                              \
    "# TYPE telemetry_metric_series_dropped_total counter\n"                               \
    "telemetry_metric_series_dropped_total " #n "\n"

static const char *render(struct prom_registry *r, struct buf *b)
{
    buf_reset(b);
    prom_render(r, b);
    return b->p;
}

static void test_render_counter_gauge(void)
{
    struct prom_registry *r = prom_registry_new(100);
    struct buf b;
    buf_init(&b);
    CHECK_EQ_STR(render(r, &b), DROPPED_TAIL(0));

    static const char *const ln[] = {"tenantName", "eventName"};
    struct prom_family *ev = prom_family_new(r, "wwe_ui_events_total", "Monitored client events.",
                                             PROM_COUNTER, ln, 2, NULL, 0);
    struct prom_family *q = prom_family_new(r, "telemetry_queue_depth", "Records \\ waiting\nnow.",
                                            PROM_GAUGE, NULL, 0, NULL, 0);
    struct prom_family *empty = prom_family_new(r, "telemetry_empty", "Never set.", PROM_GAUGE,
                                                NULL, 0, NULL, 0);
    CHECK(ev && q && empty);
    const char *v1[] = {"pulse", "error_x"}, *v2[] = {"pulse", "disaster_recovery_y"};
    CHECK_EQ_INT(prom_counter_add(ev, v1, 1), 0);
    CHECK_EQ_INT(prom_counter_add(ev, v2, 2.5), 0);
    CHECK_EQ_INT(prom_counter_add(ev, v1, 2), 0);
    CHECK_EQ_INT(prom_counter_add(ev, v1, -5), 0); /* counters never go down */
    CHECK_EQ_INT(prom_gauge_set(q, NULL, 17), 0);
    CHECK_EQ_INT(prom_gauge_set(q, NULL, -3), 0);
    CHECK(prom_value(ev, v1) == 3);
    CHECK(prom_value(ev, v2) == 2.5);
    CHECK(prom_value(q, NULL) == -3);
    const char *absent[] = {"x", "y"};
    CHECK(prom_value(ev, absent) == 0);
    CHECK_EQ_INT(prom_series_count(r), 2); /* unlabelled series are not capped */
    /* type mismatches are refused */
    CHECK_EQ_INT(prom_gauge_set(ev, v1, 1), -1);
    CHECK_EQ_INT(prom_histogram_observe(q, NULL, 1), -1);
    CHECK_EQ_STR(render(r, &b),
                 "# HELP wwe_ui_events_total Monitored client events.\n"
                 "# TYPE wwe_ui_events_total counter\n"
                 "wwe_ui_events_total{tenantName=\"pulse\",eventName=\"error_x\"} 3\n"
                 "wwe_ui_events_total{tenantName=\"pulse\",eventName=\"disaster_recovery_y\"} 2.5\n"
                 "# HELP telemetry_queue_depth Records \\\\ waiting\\nnow.\n"
                 "# TYPE telemetry_queue_depth gauge\n"
                 "telemetry_queue_depth -3\n"
                 "# HELP telemetry_empty Never set.\n"
                 "# TYPE telemetry_empty gauge\n" DROPPED_TAIL(0));
    CHECK(prom_family_find(r, "telemetry_queue_depth") == q);
    CHECK(prom_family_find(r, "nope") == NULL);
    buf_free(&b);
    prom_registry_free(r);
}

static void test_family_checks(void)
{
    struct prom_registry *r = prom_registry_new(10);
    static const char *const ok[] = {"a"}, *const bad[] = {"a-b"}, *const res[] = {"__x"},
                             *const le[] = {"le"}, *const dup[] = {"a", "a"};
    static const double asc[] = {1, 2}, desc[] = {2, 1}, same[] = {1, 1}, inf[] = {1, INFINITY};
    CHECK(prom_family_new(r, "m_total", "h", PROM_COUNTER, ok, 1, NULL, 0) != NULL);
    CHECK(prom_family_new(r, "m_total", "h", PROM_GAUGE, NULL, 0, NULL, 0) == NULL); /* dup */
    CHECK(prom_family_new(r, "telemetry_metric_series_dropped_total", "h", PROM_COUNTER, NULL, 0,
                          NULL, 0) == NULL);
    CHECK(prom_family_new(r, "9abc", "h", PROM_GAUGE, NULL, 0, NULL, 0) == NULL);
    CHECK(prom_family_new(r, "a-b", "h", PROM_GAUGE, NULL, 0, NULL, 0) == NULL);
    CHECK(prom_family_new(r, "", "h", PROM_GAUGE, NULL, 0, NULL, 0) == NULL);
    CHECK(prom_family_new(r, NULL, "h", PROM_GAUGE, NULL, 0, NULL, 0) == NULL);
    CHECK(prom_family_new(r, "g1", "h", PROM_GAUGE, bad, 1, NULL, 0) == NULL);
    CHECK(prom_family_new(r, "g2", "h", PROM_GAUGE, res, 1, NULL, 0) == NULL);
    CHECK(prom_family_new(r, "g3", "h", PROM_GAUGE, dup, 2, NULL, 0) == NULL);
    CHECK(prom_family_new(r, "g4", "h", PROM_GAUGE, le, 1, NULL, 0) != NULL); /* le ok here */
    CHECK(prom_family_new(r, "h1", "h", PROM_HISTOGRAM, le, 1, asc, 2) == NULL);
    CHECK(prom_family_new(r, "h2", "h", PROM_HISTOGRAM, NULL, 0, desc, 2) == NULL);
    CHECK(prom_family_new(r, "h3", "h", PROM_HISTOGRAM, NULL, 0, same, 2) == NULL);
    CHECK(prom_family_new(r, "h4", "h", PROM_HISTOGRAM, NULL, 0, inf, 2) == NULL);
    CHECK(prom_family_new(r, "g5", "h", PROM_GAUGE, NULL, 0, asc, 2) == NULL);
    CHECK(prom_family_new(r, "h5", "h", PROM_HISTOGRAM, ok, 1, asc, 2) != NULL);
    CHECK(prom_family_new(r, "h6", "h", PROM_HISTOGRAM, NULL, 0, NULL, 0) != NULL);
    CHECK(prom_family_new(r, "ns:sub_total", "h", PROM_COUNTER, NULL, 0, NULL, 0) != NULL);

    CHECK(prom_valid_name("abc_DEF:9"));
    CHECK(prom_valid_name("_x"));
    CHECK(prom_valid_name(":x"));
    CHECK(!prom_valid_name("9x"));
    CHECK(!prom_valid_name("a.b"));
    CHECK(!prom_valid_name("a b"));
    CHECK(!prom_valid_name(""));
    CHECK(!prom_valid_name(NULL));
    prom_registry_free(r);
}

static void test_sanitize(void)
{
    char out[32];
    prom_sanitize_name("wwe-ui.v2", out, sizeof(out));
    CHECK_EQ_STR(out, "wwe_ui_v2");
    prom_sanitize_name("9lives", out, sizeof(out));
    CHECK_EQ_STR(out, "_9lives");
    prom_sanitize_name("caf\xc3\xa9_x", out, sizeof(out));
    CHECK_EQ_STR(out, "caf__x");
    prom_sanitize_name("", out, sizeof(out));
    CHECK_EQ_STR(out, "_");
    prom_sanitize_name("abcdefghij", out, 5);
    CHECK_EQ_STR(out, "abcd");
    prom_sanitize_name("a:b_c", out, sizeof(out));
    CHECK_EQ_STR(out, "a:b_c");
    CHECK(prom_valid_name(out));
    /* whatever the input, the output is a valid name */
    unsigned seed = 7;
    for (int i = 0; i < 2000; i++) {
        char in[12];
        for (int k = 0; k < 11; k++) {
            seed = seed * 1103515245u + 12345u;
            in[k] = (char)((seed >> 16) & 0xff);
            if (!in[k])
                in[k] = 'z';
        }
        in[11] = '\0';
        prom_sanitize_name(in, out, sizeof(out));
        CHECK(prom_valid_name(out));
    }
}

static void test_label_escaping(void)
{
    struct buf b;
    buf_init(&b);
    prom_put_label_value(&b, "a\\b\"c\nd", 7);
    CHECK_EQ_STR(b.p, "\"a\\\\b\\\"c\\nd\"");
    buf_reset(&b);
    prom_put_label_value(&b, "\xc3\xa9\xff\xe2\x82", 5); /* é, bad byte, truncated € */
    CHECK_EQ_STR(b.p, "\"\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\"");
    buf_reset(&b);
    prom_put_label_value(&b, "\xed\xa0\x80" "x", 4); /* surrogate: 3 subparts */
    CHECK_EQ_STR(b.p, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx\"");
    buf_reset(&b);
    prom_put_label_value(&b, "", 0);
    CHECK_EQ_STR(b.p, "\"\"");

    struct prom_registry *r = prom_registry_new(10);
    static const char *const ln[] = {"v"};
    struct prom_family *f = prom_family_new(r, "esc_total", "Escapes.", PROM_COUNTER, ln, 1, NULL, 0);
    const char *v[] = {"q\"b\\n\nz\xff"};
    prom_counter_add(f, v, 1);
    const char *nul[] = {NULL}; /* NULL is the empty value */
    prom_counter_add(f, nul, 4);
    const char *emptyv[] = {""};
    CHECK(prom_value(f, emptyv) == 4);
    buf_reset(&b);
    prom_render(r, &b);
    CHECK(strstr(b.p, "esc_total{v=\"q\\\"b\\\\n\\nz\xef\xbf\xbd\"} 1\n") != NULL);
    CHECK(strstr(b.p, "esc_total{v=\"\"} 4\n") != NULL);
    prom_registry_free(r);

    buf_reset(&b);
    prom_put_sample(&b, "x_total", "a=\"1\"", 2);
    prom_put_sample(&b, "y", NULL, 0.25);
    prom_put_sample(&b, "z", "", 1);
    CHECK_EQ_STR(b.p, "x_total{a=\"1\"} 2\ny 0.25\nz 1\n");
    buf_reset(&b);
    prom_put_header(&b, "h", "a\\b\nc", PROM_HISTOGRAM);
    CHECK_EQ_STR(b.p, "# HELP h a\\\\b\\nc\n# TYPE h histogram\n");
    buf_free(&b);
}

static void test_values(void)
{
    static const struct {
        double v;
        const char *s;
    } t[] = {
        {0, "0"}, {-0.0, "0"}, {1, "1"}, {-3, "-3"}, {0.5, "0.5"}, {0.1, "0.1"},
        {1e15, "1000000000000000"}, {123456789012345678.0, "123456789012345680"},
        {1e20, "1e+20"}, {1e300, "1e+300"}, {-2.5e-7, "-2.5e-07"}, {1.0 / 3, "0.3333333333333333"},
        {NAN, "NaN"}, {INFINITY, "+Inf"}, {-INFINITY, "-Inf"},
    };
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        buf_reset(&b);
        prom_put_sample(&b, "m", NULL, t[i].v);
        char want[64];
        snprintf(want, sizeof(want), "m %s\n", t[i].s);
        CHECK_EQ_STR(b.p, want);
    }
    /* everything else reads back exactly */
    unsigned long long x = 88172645463325252ULL;
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof(v));
        if (!isfinite(v))
            continue;
        buf_reset(&b);
        prom_put_sample(&b, "m", NULL, v);
        if (strtod(b.p + 2, NULL) != v)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    buf_free(&b);
}

static void test_histogram(void)
{
    struct prom_registry *r = prom_registry_new(100);
    static const char *const ln[] = {"app"};
    static const double bounds[] = {0.5, 1, 2.5};
    struct prom_family *h = prom_family_new(r, "ack_latency_seconds", "Ack latency.",
                                            PROM_HISTOGRAM, ln, 1, bounds, 3);
    struct prom_family *h0 = prom_family_new(r, "plain_seconds", "No buckets.", PROM_HISTOGRAM,
                                             NULL, 0, NULL, 0);
    const char *a[] = {"wwe_ui"};
    double obs[] = {0.1, 0.5, 0.7, 1, 2, 3, 100};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        CHECK_EQ_INT(prom_histogram_observe(h, a, obs[i]), 0);
    CHECK_EQ_INT(prom_histogram_observe(h0, NULL, 2), 0);
    CHECK(prom_value(h, a) == 7);
    CHECK_EQ_INT(prom_counter_add(h, a, 1), -1);
    struct buf b;
    buf_init(&b);
    CHECK_EQ_STR(render(r, &b),
                 "# HELP ack_latency_seconds Ack latency.\n"
                 "# TYPE ack_latency_seconds histogram\n"
                 "ack_latency_seconds_bucket{app=\"wwe_ui\",le=\"0.5\"} 2\n"
                 "ack_latency_seconds_bucket{app=\"wwe_ui\",le=\"1\"} 4\n"
                 "ack_latency_seconds_bucket{app=\"wwe_ui\",le=\"2.5\"} 5\n"
                 "ack_latency_seconds_bucket{app=\"wwe_ui\",le=\"+Inf\"} 7\n"
                 "ack_latency_seconds_sum{app=\"wwe_ui\"} 107.3\n"
                 "ack_latency_seconds_count{app=\"wwe_ui\"} 7\n"
                 "# HELP plain_seconds No buckets.\n"
                 "# TYPE plain_seconds histogram\n"
                 "plain_seconds_bucket{le=\"+Inf\"} 1\n"
                 "plain_seconds_sum 2\n"
                 "plain_seconds_count 1\n" DROPPED_TAIL(0));
    buf_free(&b);
    prom_registry_free(r);
}

static void test_cap(void)
{
    struct prom_registry *r = prom_registry_new(3);
    static const char *const ln[] = {"k"};
    struct prom_family *c = prom_family_new(r, "c_total", "C.", PROM_COUNTER, ln, 1, NULL, 0);
    struct prom_family *g = prom_family_new(r, "g", "G.", PROM_GAUGE, ln, 1, NULL, 0);
    struct prom_family *u = prom_family_new(r, "u", "U.", PROM_GAUGE, NULL, 0, NULL, 0);
    const char *k1[] = {"1"}, *k2[] = {"2"}, *k3[] = {"3"}, *k4[] = {"4"};
    CHECK_EQ_INT(prom_counter_add(c, k1, 1), 0);
    CHECK_EQ_INT(prom_counter_add(c, k2, 1), 0);
    CHECK_EQ_INT(prom_gauge_set(g, k1, 1), 0);
    CHECK_EQ_INT(prom_series_count(r), 3);
    CHECK_EQ_INT(prom_counter_add(c, k3, 1), -1); /* new series past the cap */
    CHECK_EQ_INT(prom_gauge_set(g, k4, 1), -1);
    CHECK_EQ_INT(prom_counter_add(c, k3, 1), -1);
    CHECK_EQ_INT(prom_series_dropped(r), 3);
    CHECK_EQ_INT(prom_counter_add(c, k1, 1), 0); /* existing series keep working */
    CHECK_EQ_INT(prom_gauge_set(u, NULL, 5), 0); /* unlabelled: always allowed */
    CHECK(prom_value(c, k1) == 2);
    CHECK(prom_value(c, k3) == 0);
    CHECK_EQ_INT(prom_series_count(r), 3);
    struct buf b;
    buf_init(&b);
    render(r, &b);
    CHECK(strstr(b.p, "\ntelemetry_metric_series_dropped_total 3\n") != NULL);
    CHECK(strstr(b.p, "c_total{k=\"3\"}") == NULL);
    buf_free(&b);
    prom_registry_free(r);
}

static void test_many_series(void)
{
    struct prom_registry *r = prom_registry_new(100000);
    static const char *const ln[] = {"tenant", "name"};
    struct prom_family *f = prom_family_new(r, "many_total", "Many.", PROM_COUNTER, ln, 2, NULL, 0);
    char t[32], n[600];
    memset(n, 'n', sizeof(n) - 1); /* a key longer than the stack buffer */
    n[sizeof(n) - 1] = '\0';
    for (int i = 0; i < 20000; i++) {
        snprintf(t, sizeof(t), "t%d", i);
        const char *v[] = {t, i % 100 ? "x" : n};
        prom_counter_add(f, v, i);
    }
    CHECK_EQ_INT(prom_series_count(r), 20000);
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(t, sizeof(t), "t%d", i);
        const char *v[] = {t, i % 100 ? "x" : n};
        if (prom_value(f, v) != i)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* label boundaries matter: ("ab","c") and ("a","bc") are different series */
    const char *x1[] = {"ab", "c"}, *x2[] = {"a", "bc"};
    prom_counter_add(f, x1, 1);
    CHECK(prom_value(f, x2) == 0);
    prom_registry_free(r);
}

/* 0 when promtool accepts text, 1 if it rejects it, -1 when promtool is absent. */
static int promtool_check(const char *text, size_t len, int verbose)
{
    if (access("/usr/bin/promtool", X_OK))
        return -1;
    FILE *p = popen("/usr/bin/promtool check metrics >/tmp/tlm_promtool.out 2>&1", "w");
    if (!p)
        return 1;
    fwrite(text, 1, len, p);
    int st = pclose(p);
    if (st != 0 && verbose) {
        fprintf(stderr, "promtool said:\n");
        FILE *o = fopen("/tmp/tlm_promtool.out", "r");
        char line[512];
        while (o && fgets(line, sizeof(line), o))
            fputs(line, stderr);
        if (o)
            fclose(o);
    }
    unlink("/tmp/tlm_promtool.out");
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

static void test_promtool(void)
{
    struct prom_registry *r = prom_registry_new(1);
    static const char *const ln[] = {"tenant_name", "event_name"};
    static const double bounds[] = {0.005, 0.25, 1, 10};
    struct prom_family *ev = prom_family_new(r, "wwe_ui_events_total", "Monitored \\ events\nof clients.",
                                             PROM_COUNTER, ln, 2, NULL, 0);
    struct prom_family *dep = prom_family_new(r, "telemetry_dependency_status",
                                              "1 up, 0 down.", PROM_GAUGE, NULL, 0, NULL, 0);
    struct prom_family *lat = prom_family_new(r, "telemetry_ack_latency_seconds",
                                              "Ack latency.", PROM_HISTOGRAM, NULL, 0, bounds, 4);
    prom_family_new(r, "telemetry_unused_total", "Declared, never used.", PROM_COUNTER, ln, 2,
                    NULL, 0);
    const char *v[] = {"pul\"se\\\n\xff", "error_\xe2\x80\xa8x"}, *v2[] = {"b", "c"};
    prom_counter_add(ev, v, 3);
    prom_counter_add(ev, v2, 3); /* dropped: cap 1 */
    prom_gauge_set(dep, NULL, NAN);
    prom_histogram_observe(lat, NULL, 0.3);
    prom_histogram_observe(lat, NULL, INFINITY);
    struct buf b;
    buf_init(&b);
    render(r, &b);
    int rc = promtool_check(b.p, b.len, 1);
    if (rc < 0)
        fprintf(stderr, "note: /usr/bin/promtool absent, skipped\n");
    else
        CHECK_EQ_INT(rc, 0);
    /* and promtool does reject broken text, so the check above can fail */
    if (rc >= 0)
        CHECK_EQ_INT(promtool_check("m{a=\"x} 1\n", 10, 0), 1);
    buf_free(&b);
    prom_registry_free(r);
}

int main(void)
{
    RUN(test_render_counter_gauge);
    RUN(test_family_checks);
    RUN(test_sanitize);
    RUN(test_label_escaping);
    RUN(test_values);
    RUN(test_histogram);
    RUN(test_cap);
    RUN(test_many_series);
    RUN(test_promtool);
    UNIT_DONE("prom");
}
