/* test_contracts.c - contracts: whole-name event regexes (JS syntax), thresholds, apdex in
 * both directions, histograms, name clashes, regex errors, series cap, hostile bytes. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../common/buf.h"
#include "../../common/config.h"
#include "../../common/prom.h"
#include "../../logshipper/contracts.h"
#include "unit.h"

#define T "pulse"
#define CC "2868802f-1763-4ecd-94f6-203400001200"

static struct proto_str S(const char *s) { return (struct proto_str){s, (uint32_t)strlen(s)}; }

static struct proto_record rec(uint8_t kind, const char *app, const char *name, const char *tenant,
                               const char *ccid)
{
    struct proto_record r;
    memset(&r, 0, sizeof(r));
    r.kind = kind;
    r.level = 6;
    r.app = S(app);
    r.name = S(name);
    r.tenant = S(tenant);
    r.ccid = S(ccid);
    r.line = S("{}");
    r.rid = S("rid");
    return r;
}

static void event(struct contracts *c, const char *app, const char *name, const char *tenant)
{
    struct proto_record r = rec(PROTO_KIND_EVENT, app, name, tenant, CC);
    contracts_observe(c, &r);
}

static void metric(struct contracts *c, const char *app, const char *name, double v, const char *tenant)
{
    struct proto_record r = rec(PROTO_KIND_METRIC, app, name, tenant, CC);
    r.flags = PROTO_REC_HAS_VALUE;
    r.value = v;
    contracts_observe(c, &r);
}

/* <app>_events{tenantName=tenant,eventName=name,contactCenterId=CC} */
static double events(struct prom_registry *reg, const char *fam, const char *name, const char *tenant)
{
    const char *v[3] = {tenant, name, CC};
    return prom_value(prom_family_find(reg, fam), v);
}

static struct contracts *load(struct prom_registry *reg, const char *json, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    if (!j) {
        fprintf(stderr, "bad test JSON: %s\n", je.text);
        return NULL;
    }
    err[0] = '\0';
    struct contracts *c = contracts_new(j, reg, err, errlen);
    json_decref(j);
    return c;
}

/* Contract with the given regexes (C strings, no JSON escaping needed). */
static struct contracts *load_events(struct prom_registry *reg, const char *app,
                                     const char *const *res, size_t n, char *err, size_t errlen)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(res[i]));
    json_t *j = json_pack("[{s:s,s:o}]", "appName", app, "monitoredEvents", list);
    err[0] = '\0';
    struct contracts *c = contracts_new(j, reg, err, errlen);
    json_decref(j);
    return c;
}

static void test_anchoring(void)
{
    static const char *const res[] = {"error_.*", "a|b", "performance_worker_major"};
    struct prom_registry *reg = prom_registry_new(1000);
    char err[256];
    struct contracts *c = load_events(reg, "wwe_ui", res, 3, err, sizeof(err));
    CHECK(c != NULL);
    event(c, "wwe_ui", "error_http_sync_req_Complete", T);
    event(c, "wwe_ui", "error_", T);
    event(c, "wwe_ui", "xerror_a", T);
    event(c, "wwe_ui", "ab", T);
    event(c, "wwe_ui", "a", T);
    event(c, "wwe_ui", "b", T);
    event(c, "wwe_ui", "ba", T);
    event(c, "wwe_ui", "performance_worker_major_2", T);
    event(c, "wwe_ui", "my_performance_worker_major", T);
    event(c, "wwe_ui", "performance_worker_major", T);
    event(c, "wwe_ui", "", T);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "error_http_sync_req_Complete", T), 1);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "error_", T), 1);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "xerror_a", T), 0);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "ab", T), 0);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "a", T), 1);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "b", T), 1);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "ba", T), 0);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "performance_worker_major", T), 1);
    CHECK_EQ_INT(prom_series_count(reg), 5);

    /* other kinds, other apps and a prefix of the app are not counted */
    struct proto_record r = rec(PROTO_KIND_TRACE, "wwe_ui", "error_x", T, CC);
    contracts_observe(c, &r);
    r = rec(PROTO_KIND_METRIC, "wwe_ui", "error_x", T, CC);
    r.flags = PROTO_REC_HAS_VALUE;
    contracts_observe(c, &r);
    event(c, "softphone", "error_x", T);
    event(c, "wwe_u", "error_x", T);
    event(c, "wwe_uix", "error_x", T);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "error_x", T), 0);

    /* once per event even when several regexes match; per tenant series */
    contracts_free(c);
    static const char *const dup[] = {"error_.*", "error_a", "(error)_a"};
    struct prom_registry *reg2 = prom_registry_new(1000);
    c = load_events(reg2, "wwe_ui", dup, 3, err, sizeof(err));
    event(c, "wwe_ui", "error_a", T);
    event(c, "wwe_ui", "error_a", T);
    event(c, "wwe_ui", "error_a", "other");
    CHECK_EQ_INT(events(reg2, "wwe_ui_events", "error_a", T), 2);
    CHECK_EQ_INT(events(reg2, "wwe_ui_events", "error_a", "other"), 1);
    contracts_free(c);
    prom_registry_free(reg2);
    prom_registry_free(reg);
}

static void test_js_syntax(void)
{
    static const char *const res[] = {
        "code_\\d+", "w_\\w+", "n_[^_]+", "(?:x|y)z", "la_(?=ok)\\w+", "nl_(?!bad)\\w+",
        "u_\\u0041", "v_\\u{42}", "h_\\x43", "(?i)ci_abc", "d_x$", "e_\\.dot", "r_(ab){2,3}",
        "(?<word>bk)_\\k<word>", "s_\\s", "lb_\\w+(?<=yes)",
    };
    struct prom_registry *reg = prom_registry_new(1000);
    char err[256];
    struct contracts *c = load_events(reg, "app", res, sizeof(res) / sizeof(res[0]), err, sizeof(err));
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "  %s\n", err);
        prom_registry_free(reg);
        return;
    }
    static const struct {
        const char *name;
        int match;
    } cases[] = {
        {"code_123", 1}, {"code_12a", 0}, {"code_", 0}, {"code_\xd9\xa3", 0} /* Arabic 3: \d is ASCII */,
        {"w_abc_1", 1}, {"w_a-b", 0}, {"n_abc", 1}, {"n_a_b", 0}, {"xz", 1}, {"yz", 1}, {"xyz", 0},
        {"la_okay", 1}, {"la_nope", 0}, {"nl_good", 1}, {"nl_badly", 0},
        {"u_A", 1}, {"u_u0041", 0}, {"v_B", 1}, {"h_C", 1}, {"CI_ABC", 1}, {"ci_abc", 1},
        {"d_x", 1}, {"d_x\n", 0}, {"e_.dot", 1}, {"e_xdot", 0}, {"r_abab", 1}, {"r_ababab", 1},
        {"r_ab", 0}, {"r_abababab", 0}, {"bk_bk", 1}, {"bk_bx", 0}, {"s_ ", 1}, {"s_x", 0},
        {"lb_yes", 1}, {"lb_no", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        event(c, "app", cases[i].name, T);
        double got = events(reg, "app_events", cases[i].name, T);
        if (got != cases[i].match)
            fprintf(stderr, "  regex case \"%s\": got %g, want %d\n", cases[i].name, got, cases[i].match);
        CHECK_EQ_INT(got, cases[i].match);
    }
    contracts_free(c);
    prom_registry_free(reg);
}

static void test_several_contracts(void)
{
    struct prom_registry *reg = prom_registry_new(1000);
    char err[256];
    struct contracts *c = load(reg,
        "[{\"appName\":\"wwe_ui\",\"monitoredEvents\":[\"error_.*\"]},"
        " {\"appName\":\"softphone\",\"monitoredEvents\":[\"softphone_connection_lost\"]},"
        " {\"appName\":\"my-app.v2\",\"monitoredEvents\":[\".*\"]},"
        " {\"appName\":\"quiet\",\"properties\":[\"a\"]}]",
        err, sizeof(err));
    CHECK(c != NULL);
    event(c, "wwe_ui", "error_a", T);
    event(c, "wwe_ui", "softphone_connection_lost", T);
    event(c, "softphone", "softphone_connection_lost", T);
    event(c, "softphone", "error_a", T);
    event(c, "my-app.v2", "anything", T);
    event(c, "my_app_v2", "anything", T); /* the sanitized name is not the app name */
    event(c, "quiet", "error_a", T);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "error_a", T), 1);
    CHECK_EQ_INT(events(reg, "wwe_ui_events", "softphone_connection_lost", T), 0);
    CHECK_EQ_INT(events(reg, "softphone_events", "softphone_connection_lost", T), 1);
    CHECK_EQ_INT(events(reg, "softphone_events", "error_a", T), 0);
    CHECK_EQ_INT(events(reg, "my_app_v2_events", "anything", T), 1);
    CHECK(prom_family_find(reg, "quiet_events") == NULL); /* no monitoredEvents: no family */
    CHECK(prom_family_find(reg, "wwe_ui_metric_violations_total") == NULL);

    struct buf out;
    buf_init(&out);
    prom_render(reg, &out);
    CHECK(strstr(out.p, "# TYPE wwe_ui_events counter\n") != NULL);
    CHECK(strstr(out.p, "wwe_ui_events{tenantName=\"pulse\",eventName=\"error_a\",contactCenterId=\"" CC "\"} 1\n") != NULL);
    buf_free(&out);
    contracts_free(c);
    prom_registry_free(reg);

    /* the shipped default contracts load */
    struct tlm_config cfg;
    CHECK_EQ_INT(config_load(&cfg, NULL, NULL, err, sizeof(err)), 0);
    reg = prom_registry_new(1000);
    c = contracts_new(cfg.contracts, reg, err, sizeof(err));
    CHECK(c != NULL);
    CHECK(prom_family_find(reg, "wwe_ui_events") != NULL);
    CHECK(prom_family_find(reg, "wwe_ui_metric_violations_total") != NULL);
    CHECK(prom_family_find(reg, "softphone_apdex") != NULL);
    CHECK(prom_family_find(reg, "softphone_sip_call_mos") != NULL); /* isExtended */
    contracts_free(c);
    prom_registry_free(reg);
    config_free(&cfg);

    /* no contracts at all */
    reg = prom_registry_new(10);
    c = contracts_new(NULL, reg, err, sizeof(err));
    CHECK(c != NULL);
    event(c, "wwe_ui", "error_a", T);
    contracts_free(c);
    contracts_free(NULL);
    json_t *obj = json_object();
    CHECK(contracts_new(obj, reg, err, sizeof(err)) == NULL);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_CONTRACTS: must be an array of contracts");
    json_decref(obj);
    prom_registry_free(reg);
}

static double violations(struct prom_registry *reg, const char *name, const char *type)
{
    const char *v[4] = {name, type, T, CC};
    return prom_value(prom_family_find(reg, "wwe_ui_metric_violations_total"), v);
}

static void test_thresholds(void)
{
    struct prom_registry *reg = prom_registry_new(1000);
    char err[256];
    struct contracts *c = load(reg,
        "[{\"appName\":\"wwe_ui\",\"monitoredMetrics\":["
        "{\"name\":\"http_sync_req_StartContactCenterSession\",\"value\":2,\"type\":\"gt\"},"
        "{\"name\":\"http_sync_req_AttachUserData\",\"value\":5222000,\"type\":\"lt\"},"
        "{\"name\":\"band\",\"value\":10,\"type\":\"gt\"},{\"name\":\"band\",\"value\":1,\"type\":\"lt\"}]}]",
        err, sizeof(err));
    CHECK(c != NULL);
    metric(c, "wwe_ui", "http_sync_req_StartContactCenterSession", 3, T);
    metric(c, "wwe_ui", "http_sync_req_StartContactCenterSession", 2, T);   /* equal: no */
    metric(c, "wwe_ui", "http_sync_req_StartContactCenterSession", 2.5, T);
    metric(c, "wwe_ui", "http_sync_req_StartContactCenterSession", -1, T);
    metric(c, "wwe_ui", "http_sync_req_AttachUserData", 100, T);
    metric(c, "wwe_ui", "http_sync_req_AttachUserData", 5222000, T);
    metric(c, "wwe_ui", "http_sync_req_AttachUserData", 6e6, T);
    metric(c, "wwe_ui", "band", 11, T);
    metric(c, "wwe_ui", "band", 0.5, T);
    metric(c, "wwe_ui", "band", 5, T);
    metric(c, "wwe_ui", "band", NAN, T);
    metric(c, "wwe_ui", "http_sync_req_StartContactCenterSessio", 100, T); /* prefix */
    metric(c, "wwe_ui", "http_sync_req_StartContactCenterSessionX", 100, T);
    metric(c, "softphone", "http_sync_req_StartContactCenterSession", 100, T);
    struct proto_record r = rec(PROTO_KIND_METRIC, "wwe_ui", "band", T, CC); /* no value */
    r.value = 100;
    contracts_observe(c, &r);
    CHECK_EQ_INT(violations(reg, "http_sync_req_StartContactCenterSession", "gt"), 2);
    CHECK_EQ_INT(violations(reg, "http_sync_req_StartContactCenterSession", "lt"), 0);
    CHECK_EQ_INT(violations(reg, "http_sync_req_AttachUserData", "lt"), 1);
    CHECK_EQ_INT(violations(reg, "http_sync_req_AttachUserData", "gt"), 0);
    CHECK_EQ_INT(violations(reg, "band", "gt"), 1);
    CHECK_EQ_INT(violations(reg, "band", "lt"), 1);
    CHECK_EQ_INT(prom_series_count(reg), 4);
    contracts_free(c);
    prom_registry_free(reg);
}

static double zone(struct prom_registry *reg, const char *fam, const char *metric, const char *z, const char *tenant)
{
    const char *v[4] = {metric, z, tenant, CC};
    return prom_value(prom_family_find(reg, fam), v);
}

static double apdex(struct prom_registry *reg, const char *fam, const char *metric, const char *tenant)
{
    const char *v[3] = {metric, tenant, CC};
    return prom_value(prom_family_find(reg, fam), v);
}

static void test_apdex(void)
{
    struct prom_registry *reg = prom_registry_new(1000);
    char err[256];
    struct contracts *c = load(reg,
        "[{\"appName\":\"softphone\",\"apdex\":{\"metrics\":{"
        "\"sip_call_mos\":{\"satisfiedTH\":3.6,\"toleratedTH\":2,\"isExtended\":true},"
        "\"setup_ms\":{\"satisfiedTH\":100,\"toleratedTH\":400},"
        "\"flat\":{\"satisfiedTH\":5,\"toleratedTH\":5}}}}]",
        err, sizeof(err));
    CHECK(c != NULL);
    /* higher is better: >= 3.6 satisfied, >= 2 tolerated */
    metric(c, "softphone", "sip_call_mos", 4.0, T);
    CHECK(fabs(apdex(reg, "softphone_apdex", "sip_call_mos", T) - 1.0) < 1e-9);
    metric(c, "softphone", "sip_call_mos", 3.6, T);
    metric(c, "softphone", "sip_call_mos", 2.0, T);
    metric(c, "softphone", "sip_call_mos", 1.9, T);
    CHECK_EQ_INT(zone(reg, "softphone_apdex_samples_total", "sip_call_mos", "satisfied", T), 2);
    CHECK_EQ_INT(zone(reg, "softphone_apdex_samples_total", "sip_call_mos", "tolerated", T), 1);
    CHECK_EQ_INT(zone(reg, "softphone_apdex_samples_total", "sip_call_mos", "frustrated", T), 1);
    CHECK(fabs(apdex(reg, "softphone_apdex", "sip_call_mos", T) - 0.625) < 1e-9);
    /* another tenant has its own gauge */
    metric(c, "softphone", "sip_call_mos", 1.0, "other");
    CHECK(fabs(apdex(reg, "softphone_apdex", "sip_call_mos", "other") - 0.0) < 1e-9);
    CHECK(fabs(apdex(reg, "softphone_apdex", "sip_call_mos", T) - 0.625) < 1e-9);

    /* lower is better (satisfiedTH < toleratedTH): <= 100 satisfied, <= 400 tolerated */
    metric(c, "softphone", "setup_ms", 50, T);
    metric(c, "softphone", "setup_ms", 100, T);
    metric(c, "softphone", "setup_ms", 250, T);
    metric(c, "softphone", "setup_ms", 400, T);
    metric(c, "softphone", "setup_ms", 401, T);
    CHECK_EQ_INT(zone(reg, "softphone_apdex_samples_total", "setup_ms", "satisfied", T), 2);
    CHECK_EQ_INT(zone(reg, "softphone_apdex_samples_total", "setup_ms", "tolerated", T), 2);
    CHECK_EQ_INT(zone(reg, "softphone_apdex_samples_total", "setup_ms", "frustrated", T), 1);
    CHECK(fabs(apdex(reg, "softphone_apdex", "setup_ms", T) - 0.6) < 1e-9);
    CHECK(prom_family_find(reg, "softphone_setup_ms") == NULL); /* not extended */

    /* equal thresholds: satisfied or frustrated */
    metric(c, "softphone", "flat", 5, T);
    metric(c, "softphone", "flat", 4.99, T);
    CHECK(fabs(apdex(reg, "softphone_apdex", "flat", T) - 0.5) < 1e-9);

    /* isExtended: histogram of raw values with buckets at the two thresholds */
    struct buf out;
    buf_init(&out);
    prom_render(reg, &out);
    CHECK(strstr(out.p, "# TYPE softphone_sip_call_mos histogram\n") != NULL);
    CHECK(strstr(out.p, "softphone_sip_call_mos_bucket{tenantName=\"pulse\",contactCenterId=\"" CC "\",le=\"2\"} 2\n") != NULL);
    CHECK(strstr(out.p, "softphone_sip_call_mos_bucket{tenantName=\"pulse\",contactCenterId=\"" CC "\",le=\"3.6\"} 3\n") != NULL);
    CHECK(strstr(out.p, "softphone_sip_call_mos_bucket{tenantName=\"pulse\",contactCenterId=\"" CC "\",le=\"+Inf\"} 4\n") != NULL);
    CHECK(strstr(out.p, "softphone_sip_call_mos_count{tenantName=\"pulse\",contactCenterId=\"" CC "\"} 4\n") != NULL);
    CHECK(strstr(out.p, "softphone_apdex{metricName=\"sip_call_mos\",tenantName=\"pulse\",contactCenterId=\"" CC "\"} 0.625\n") != NULL);
    CHECK(strstr(out.p, "softphone_apdex_samples_total{metricName=\"setup_ms\",zone=\"frustrated\",tenantName=\"pulse\",contactCenterId=\"" CC "\"} 1\n") != NULL);
    buf_free(&out);
    contracts_free(c);
    prom_registry_free(reg);
}

static void test_buckets(void)
{
    struct prom_registry *reg = prom_registry_new(1000);
    char err[256];
    struct contracts *c = load(reg,
        "[{\"appName\":\"wwe_ui\",\"bucketizedMetrics\":{\"page.load-time\":[100,500,1000],"
        "\"sip_call_mos\":[1,2,3,4]},"
        "\"apdex\":{\"metrics\":{\"sip_call_mos\":{\"satisfiedTH\":3.6,\"toleratedTH\":2,\"isExtended\":true}}}}]",
        err, sizeof(err));
    CHECK(c != NULL);
    metric(c, "wwe_ui", "page.load-time", 50, T);
    metric(c, "wwe_ui", "page.load-time", 100, T);
    metric(c, "wwe_ui", "page.load-time", 700, T);
    metric(c, "wwe_ui", "page.load-time", 5000, T);
    metric(c, "wwe_ui", "sip_call_mos", 3.5, T);
    struct buf out;
    buf_init(&out);
    prom_render(reg, &out);
#define L "{tenantName=\"pulse\",contactCenterId=\"" CC "\""
    CHECK(strstr(out.p, "# TYPE wwe_ui_page_load_time histogram\n") != NULL);
    CHECK(strstr(out.p, "wwe_ui_page_load_time_bucket" L ",le=\"100\"} 2\n") != NULL);
    CHECK(strstr(out.p, "wwe_ui_page_load_time_bucket" L ",le=\"500\"} 2\n") != NULL);
    CHECK(strstr(out.p, "wwe_ui_page_load_time_bucket" L ",le=\"1000\"} 3\n") != NULL);
    CHECK(strstr(out.p, "wwe_ui_page_load_time_bucket" L ",le=\"+Inf\"} 4\n") != NULL);
    CHECK(strstr(out.p, "wwe_ui_page_load_time_sum" L "} 5850\n") != NULL);
    CHECK(strstr(out.p, "wwe_ui_page_load_time_count" L "} 4\n") != NULL);
    /* bucketizedMetrics bounds win over the isExtended threshold buckets */
    CHECK(strstr(out.p, "wwe_ui_sip_call_mos_bucket" L ",le=\"4\"} 1\n") != NULL);
    CHECK(strstr(out.p, "wwe_ui_sip_call_mos_bucket" L ",le=\"3\"} 0\n") != NULL);
    CHECK(strstr(out.p, "le=\"3.6\"") == NULL);
#undef L
    buf_free(&out);
    contracts_free(c);
    prom_registry_free(reg);
}

static void expect_error(const char *json, struct prom_registry *reg, const char *want)
{
    char err[512];
    struct prom_registry *own = reg ? NULL : prom_registry_new(1000);
    struct contracts *c = load(reg ? reg : own, json, err, sizeof(err));
    CHECK(c == NULL);
    if (strstr(err, want) == NULL)
        fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err, want);
    CHECK(strstr(err, want) != NULL);
    CHECK(strncmp(err, "TELEMETRY_CONFIG_CONTRACTS: at [", 32) == 0);
    contracts_free(c);
    prom_registry_free(own);
}

static void test_errors(void)
{
    expect_error("[{\"appName\":\"a\",\"monitoredEvents\":[\"ok\",\"fine.*\",\"ab(c\"]}]", NULL,
                 "TELEMETRY_CONFIG_CONTRACTS: at [0].monitoredEvents[2]: offset 4: missing closing parenthesis");
    expect_error("[{\"appName\":\"a\"},{\"appName\":\"b\",\"monitoredEvents\":[\"a)b\"]}]", NULL,
                 "TELEMETRY_CONFIG_CONTRACTS: at [1].monitoredEvents[0]: offset 1: ");
    expect_error("[{\"appName\":\"a\",\"monitoredEvents\":[\"x[\"]}]", NULL, "at [0].monitoredEvents[0]: offset 2: ");
    expect_error("[{\"appName\":\"a\",\"monitoredEvents\":[\"x{2,1}\"]}]", NULL, "at [0].monitoredEvents[0]: offset ");
    expect_error("[{\"appName\":\"a\",\"monitoredEvents\":[\"\\\\C\"]}]", NULL, "at [0].monitoredEvents[0]: offset ");
    /* name clashes */
    expect_error("[{\"appName\":\"wwe_ui\",\"monitoredEvents\":[\"e\"],\"bucketizedMetrics\":{\"events\":[1]}}]",
                 NULL, "at [0].bucketizedMetrics[\"events\"]: metric name \"wwe_ui_events\" clashes");
    expect_error("[{\"appName\":\"a.b\",\"monitoredEvents\":[\"e\"]},{\"appName\":\"a_b\",\"monitoredEvents\":[\"e\"]}]",
                 NULL, "at [1].appName: metric name \"a_b_events\" clashes");
    expect_error("[{\"appName\":\"a\",\"bucketizedMetrics\":{\"x\":[1],\"x_count\":[1]}}]", NULL,
                 "at [0].bucketizedMetrics[\"x_count\"]: metric name \"a_x_count\" clashes with the existing family \"a_x\"");
    expect_error("[{\"appName\":\"a\",\"bucketizedMetrics\":{\"apdex\":[1]},\"apdex\":{\"metrics\":{\"m\":{\"satisfiedTH\":1,\"toleratedTH\":2}}}}]",
                 NULL, "metric name \"a_apdex\" clashes");
    struct prom_registry *reg = prom_registry_new(1000);
    static const char *const lab[] = {"eventName"};
    CHECK(prom_family_new(reg, "wwe_ui_events", "the service's", PROM_COUNTER, lab, 1, NULL, 0) != NULL);
    expect_error("[{\"appName\":\"wwe_ui\",\"monitoredEvents\":[\"e\"]}]", reg, "metric name \"wwe_ui_events\" clashes");
    CHECK(prom_family_new(reg, "b_lat_sum", "other", PROM_GAUGE, NULL, 0, NULL, 0) != NULL);
    expect_error("[{\"appName\":\"b\",\"bucketizedMetrics\":{\"lat\":[1]}}]", reg, "clashes with the existing family \"b_lat_sum\"");
    prom_registry_free(reg);
}

static void test_series_cap(void)
{
    struct prom_registry *reg = prom_registry_new(5);
    char err[256], tenant[32];
    struct contracts *c = load(reg,
        "[{\"appName\":\"a\",\"monitoredEvents\":[\"e_.*\"],"
        "\"apdex\":{\"metrics\":{\"m\":{\"satisfiedTH\":1,\"toleratedTH\":2}}}}]", err, sizeof(err));
    CHECK(c != NULL);
    for (int i = 0; i < 20; i++) {
        snprintf(tenant, sizeof(tenant), "t%d", i);
        event(c, "a", "e_x", tenant);
    }
    CHECK_EQ_INT(prom_series_count(reg), 5);
    CHECK_EQ_INT(prom_series_dropped(reg), 15);
    CHECK_EQ_INT(events(reg, "a_events", "e_x", "t4"), 1);
    CHECK_EQ_INT(events(reg, "a_events", "e_x", "t5"), 0);
    /* full: apdex samples are refused, and the gauge is not created from partial data */
    metric(c, "a", "m", 0.5, T);
    CHECK_EQ_INT(prom_series_count(reg), 5);
    CHECK(prom_family_find(reg, "a_apdex") != NULL);
    CHECK_EQ_INT(apdex(reg, "a_apdex", "m", T), 0);
    contracts_free(c);
    prom_registry_free(reg);

    /* room for the satisfied series and gauge, not for a second zone: gauge stays at 1 */
    reg = prom_registry_new(2);
    c = load(reg, "[{\"appName\":\"a\",\"apdex\":{\"metrics\":{\"m\":{\"satisfiedTH\":1,\"toleratedTH\":2}}}}]", err, sizeof(err));
    metric(c, "a", "m", 0.5, T);
    metric(c, "a", "m", 9, T);
    CHECK_EQ_INT(prom_series_count(reg), 2);
    CHECK(fabs(apdex(reg, "a_apdex", "m", T) - 1.0) < 1e-9);
    contracts_free(c);
    prom_registry_free(reg);
}

static void test_hostile_bytes(void)
{
    struct prom_registry *reg = prom_registry_new(1000);
    char err[256];
    struct contracts *c = load(reg,
        "[{\"appName\":\"a\",\"monitoredEvents\":[\"error_.*\",\"x\\\\u00e9y\",\"(a+)+b\",\"[\\\\s\\\\S]*z\","
        "\"(*NO_JIT)nojit_.\",\"(*NO_JIT)(a|a)*c\"],"
        "\"monitoredMetrics\":[{\"name\":\"m\",\"value\":1,\"type\":\"gt\"}]}]", err, sizeof(err));
    CHECK(c != NULL);
    static const char *const names[] = {"error_\xff\xfe", "\xc3", "error_\xc3\x28", "\xed\xa0\x80",
                                        "error_\xf4\x90\x80\x80", "\x80\x80\x80", "error_\xe2\x82"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        event(c, "a", names[i], "t\xff\n\"\\");
    /* valid UTF-8 matches, invalid sequences never match `.` */
    event(c, "a", "error_\xc3\xa9", T);
    CHECK_EQ_INT(events(reg, "a_events", "error_\xc3\xa9", T), 1);
    event(c, "a", "x\xc3\xa9y", T);
    CHECK_EQ_INT(events(reg, "a_events", "x\xc3\xa9y", T), 1);
    CHECK_EQ_INT(events(reg, "a_events", "error_\xff\xfe", "t\xff\n\"\\"), 0);
    /* the interpreter (no JIT) behaves the same on invalid UTF-8 */
    event(c, "a", "nojit_\xff", T);
    event(c, "a", "nojit_\xc3\xa9", T);
    event(c, "a", "nojit_ab", T);
    CHECK_EQ_INT(events(reg, "a_events", "nojit_\xff", T), 0);
    CHECK_EQ_INT(events(reg, "a_events", "nojit_\xc3\xa9", T), 1);
    CHECK_EQ_INT(events(reg, "a_events", "nojit_ab", T), 0);

    /* NUL bytes inside routing strings: matched on the full length, label keeps going */
    struct proto_record r = rec(PROTO_KIND_EVENT, "a", "", T, CC);
    r.name = (struct proto_str){"error_a\0b", 9};
    r.tenant = (struct proto_str){"t\0u", 3};
    contracts_observe(c, &r);
    CHECK_EQ_INT(events(reg, "a_events", "error_a\xef\xbf\xbd" "b", "t\xef\xbf\xbdu"), 1);
    r.name = (struct proto_str){"ab\0z", 4};
    contracts_observe(c, &r);
    CHECK_EQ_INT(events(reg, "a_events", "ab\xef\xbf\xbdz", "t\xef\xbf\xbdu"), 1);
    /* a NULL name pointer with length 0 */
    r.name = (struct proto_str){NULL, 0};
    contracts_observe(c, &r);

    /* catastrophic backtracking is bounded by the match limit */
    char evil[4096];
    memset(evil, 'a', sizeof(evil) - 1);
    evil[sizeof(evil) - 1] = '\0';
    clock_t t0 = clock();
    for (int i = 0; i < 10; i++)
        event(c, "a", evil, T);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(secs < 5.0);
    CHECK_EQ_INT(events(reg, "a_events", evil, T), 0);

    /* a very long matching name grows the label scratch space */
    size_t n = 200000;
    char *longname = malloc(n + 1);
    memcpy(longname, "error_", 6);
    memset(longname + 6, 'q', n - 6);
    longname[n] = '\0';
    event(c, "a", longname, T);
    CHECK_EQ_INT(events(reg, "a_events", longname, T), 1);
    free(longname);

    /* metric names with hostile bytes and infinities */
    metric(c, "a", "m\xff", 5, T);
    metric(c, "a", "m", INFINITY, "\xff");
    const char *vv[4] = {"m", "gt", "\xff", CC};
    CHECK_EQ_INT(prom_value(prom_family_find(reg, "a_metric_violations_total"), vv), 1);

    struct buf out;
    buf_init(&out);
    prom_render(reg, &out);
    CHECK(out.p != NULL && strstr(out.p, "tenantName=\"t\xef\xbf\xbd\\n\\\"\\\\\"") == NULL); /* no match: no series */
    CHECK(strstr(out.p, "tenantName=\"\xef\xbf\xbd\"") != NULL);
    buf_free(&out);
    contracts_free(c);
    prom_registry_free(reg);
}

int main(void)
{
    RUN(test_anchoring);
    RUN(test_js_syntax);
    RUN(test_several_contracts);
    RUN(test_thresholds);
    RUN(test_apdex);
    RUN(test_buckets);
    RUN(test_errors);
    RUN(test_series_cap);
    RUN(test_hostile_bytes);
    UNIT_DONE("contracts");
}
