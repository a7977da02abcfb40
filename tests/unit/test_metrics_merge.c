/* test_metrics_merge.c - the logshipper's and the ingest's Prometheus texts merged:
 * one HELP/TYPE per family, local first, other's samples under it, other-only families after. */
#include <stdlib.h>

#include "../../logshipper/metrics_merge.h"
#include "unit.h"

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static const char *pos(const char *hay, const char *needle)
{
    const char *p = strstr(hay, needle);
    return p ? p : hay + strlen(hay) + 1; /* absent sorts last, so order checks fail */
}

static void merge(struct buf *out, const char *a, const char *b)
{
    buf_reset(out);
    metrics_merge(out, a, a ? strlen(a) : 0, b, b ? strlen(b) : 0);
    buf_putc(out, '\0');
    out->len--;
}

static void test_shared_family(void)
{
    const char *local =
        "# HELP process_cpu_seconds_total CPU time.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total{component=\"logshipper\"} 1.5\n"
        "# HELP tlm_link_connections Open links.\n"
        "# TYPE tlm_link_connections gauge\n"
        "tlm_link_connections 1\n";
    const char *other =
        "# HELP telemetry_events Service events.\n"
        "# TYPE telemetry_events counter\n"
        "telemetry_events{eventName=\"http_error_404\"} 3\n"
        "# HELP process_cpu_seconds_total Total user and system CPU time.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total{component=\"ingest\"} 7\n";
    struct buf out;
    buf_init(&out);
    merge(&out, local, other);
    const char *s = out.p;
    CHECK_EQ_INT(count(s, "# TYPE process_cpu_seconds_total"), 1);
    CHECK_EQ_INT(count(s, "# HELP process_cpu_seconds_total"), 1);
    CHECK_EQ_INT(count(s, "# HELP process_cpu_seconds_total CPU time.\n"), 1); /* local's */
    CHECK(pos(s, "component=\"logshipper\"") < pos(s, "component=\"ingest\""));
    /* the ingest's sample sits inside the family, before the next local family */
    CHECK(pos(s, "component=\"ingest\"} 7\n") < pos(s, "# HELP tlm_link_connections"));
    /* the ingest-only family comes after every local family, whole */
    CHECK(pos(s, "tlm_link_connections 1\n") < pos(s, "# HELP telemetry_events"));
    CHECK(pos(s, "# TYPE telemetry_events counter\n") < pos(s, "telemetry_events{eventName"));
    CHECK_EQ_INT(count(s, "\n"), 10);
    buf_free(&out);
}

static void test_histogram_suffixes(void)
{
    const char *local =
        "# HELP softphone_sip_call_mos MOS.\n"
        "# TYPE softphone_sip_call_mos histogram\n"
        "softphone_sip_call_mos_bucket{le=\"1\"} 0\n"
        "softphone_sip_call_mos_bucket{le=\"+Inf\"} 2\n"
        "softphone_sip_call_mos_sum 8\n"
        "softphone_sip_call_mos_count 2\n";
    const char *other =
        "# HELP tlm_ack_latency_seconds Ack latency.\n"
        "# TYPE tlm_ack_latency_seconds histogram\n"
        "tlm_ack_latency_seconds_bucket{le=\"0.1\"} 4\n"
        "tlm_ack_latency_seconds_bucket{le=\"+Inf\"} 5\n"
        "tlm_ack_latency_seconds_sum 0.3\n"
        "tlm_ack_latency_seconds_count 5\n"
        "# HELP tlm_ack_latency_seconds_extra Not part of the histogram.\n"
        "# TYPE tlm_ack_latency_seconds_extra gauge\n"
        "tlm_ack_latency_seconds_extra 1\n";
    struct buf out;
    buf_init(&out);
    merge(&out, local, other);
    CHECK_EQ_INT(out.len, strlen(local) + strlen(other));
    CHECK(strncmp(out.p, local, strlen(local)) == 0);
    CHECK(strcmp(out.p + strlen(local), other) == 0);
    buf_free(&out);
}

static void test_untyped_and_edges(void)
{
    struct buf out;
    buf_init(&out);
    /* nothing from the ingest: local as is */
    merge(&out, "# HELP a A.\n# TYPE a gauge\na 1\n", NULL);
    CHECK_EQ_STR(out.p, "# HELP a A.\n# TYPE a gauge\na 1\n");
    /* nothing local */
    merge(&out, "", "b 2\n");
    CHECK_EQ_STR(out.p, "b 2\n");
    /* missing final newline and blank lines are repaired */
    merge(&out, "# TYPE a gauge\na 1", "\n\n# TYPE a gauge\na{x=\"y\"} 2\n\nc 3");
    CHECK_EQ_STR(out.p, "# TYPE a gauge\na 1\na{x=\"y\"} 2\nc 3\n");
    /* samples without metadata group by name; a TYPE-only family merges too */
    merge(&out, "# TYPE up gauge\nup{component=\"logshipper\"} 1\n",
          "up{component=\"ingest\"} 1\nother_metric 5\nother_metric{k=\"v\"} 6\n");
    CHECK_EQ_STR(out.p, "# TYPE up gauge\nup{component=\"logshipper\"} 1\nup{component=\"ingest\"} 1\n"
                        "other_metric 5\nother_metric{k=\"v\"} 6\n");
    /* a comment that is not metadata stays with its family */
    merge(&out, "# just a note\n# TYPE a gauge\na 1\n", "# TYPE a gauge\n# note b\na{b=\"2\"} 2\n");
    CHECK_EQ_STR(out.p, "# just a note\n# TYPE a gauge\na 1\n# note b\na{b=\"2\"} 2\n");
    /* a name that only shares a prefix is another family */
    merge(&out, "# TYPE req counter\nreq 1\n", "# TYPE requests counter\nrequests 2\n");
    CHECK_EQ_STR(out.p, "# TYPE req counter\nreq 1\n# TYPE requests counter\nrequests 2\n");
    buf_free(&out);
}

/* A series both texts have (the ingest's registry also renders the dropped-series counter):
 * kept once, the local value. */
static void test_duplicate_series(void)
{
    struct buf out;
    buf_init(&out);
    merge(&out,
          "# HELP telemetry_metric_series_dropped_total Dropped.\n"
          "# TYPE telemetry_metric_series_dropped_total counter\n"
          "telemetry_metric_series_dropped_total 0\n"
          "# TYPE x gauge\nx{a=\"1 }\\\"\"} 1\nx{a=\"2\"} 2\n",
          "# HELP telemetry_metric_series_dropped_total Dropped.\n"
          "# TYPE telemetry_metric_series_dropped_total counter\n"
          "telemetry_metric_series_dropped_total 5\n"
          "# TYPE x gauge\nx{a=\"1 }\\\"\"} 10\nx{a=\"3\"} 3\nx 4\n");
    CHECK_EQ_STR(out.p, "# HELP telemetry_metric_series_dropped_total Dropped.\n"
                        "# TYPE telemetry_metric_series_dropped_total counter\n"
                        "telemetry_metric_series_dropped_total 0\n"
                        "# TYPE x gauge\nx{a=\"1 }\\\"\"} 1\nx{a=\"2\"} 2\nx{a=\"3\"} 3\nx 4\n");
    buf_free(&out);
}

/* Many families on both sides, every other one shared: each name's TYPE appears once. */
static void test_many(void)
{
    struct buf a, b, out;
    buf_init(&a);
    buf_init(&b);
    buf_init(&out);
    for (int i = 0; i < 200; i++) {
        buf_printf(&a, "# HELP f%d Local %d.\n# TYPE f%d counter\nf%d{component=\"logshipper\"} %d\n",
                   i, i, i, i, i);
        if (i % 2 == 0)
            buf_printf(&b, "# HELP f%d Other %d.\n# TYPE f%d counter\nf%d{component=\"ingest\"} %d\n",
                       i, i, i, i, i);
        else
            buf_printf(&b, "# HELP g%d Other %d.\n# TYPE g%d gauge\ng%d %d\n", i, i, i, i, i);
    }
    metrics_merge(&out, a.p, a.len, b.p, b.len);
    buf_putc(&out, '\0');
    CHECK_EQ_INT(count(out.p, "# TYPE "), 300);
    CHECK_EQ_INT(count(out.p, "component=\"ingest\""), 100);
    CHECK(pos(out.p, "f198{component=\"ingest\"}") < pos(out.p, "# HELP f199 "));
    CHECK(pos(out.p, "f199{component=\"logshipper\"}") < pos(out.p, "# HELP g1 "));
    buf_free(&a);
    buf_free(&b);
    buf_free(&out);
}

int main(void)
{
    RUN(test_shared_family);
    RUN(test_histogram_suffixes);
    RUN(test_untyped_and_edges);
    RUN(test_duplicate_series);
    RUN(test_many);
    UNIT_DONE("test_metrics_merge");
}
