/* test_envelope.c - ingest/envelope.c: the stdout line (key order, fields, ts normalisation,
 * level, properties merge and allow-list, identity keys, rid), per-record rejections, envelope
 * errors, the rendered result, truncation to TELEMETRY_LINE_MAX_BYTES, log injection, seq,
 * and the depth pre-check. Records are decoded through a real RECORDS frame. */
#include <jansson.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/config.h"
#include "../../common/jsonl.h"
#include "../../ingest/envelope.h"
#include "../../ingest/json_arena.h"
#include "../../proto/tlm_proto.h"
#include "unit.h"

#define CC "2868802f-1763-4ecd-94f6-203400001200"
#define CC2 "7a1e0b5c-0000-4000-8000-0000000000b2"
#define NOW 1795514400200LL /* 2026-11-24T10:00:00.200Z */
#define NOW_S "2026-11-24T10:00:00.200Z"
#define MAXREC 64

/* ---- configurations ---- */

struct kv {
    const char *name, *value;
};

static const char *kv_get(const char *name, void *ctx)
{
    for (const struct kv *t = ctx; t && t->name; t++)
        if (!strcmp(t->name, name))
            return t->value;
    return NULL;
}

#define TENANTS "{\"" CC "\":\"pulse\",\"" CC2 "\":\"blue\"}"

static const struct kv main_env[] = {
    {"TELEMETRY_CONFIG_TENANTS", TENANTS},
    {"TELEMETRY_CONFIG_CONTRACTS",
     "[{\"appName\":\"wwe_ui\",\"properties\":[\"connId\",\"agentSessionId\",\"value__NUM\",\"label\",\"flag\","
     "\"obj\",\"user\",\"tenantName\",\"contactCenterId\",\"nul\"]},"
     "{\"appName\":\"softphone\",\"properties\":[\"ThisDN\",\"value__NUM\"]},"
     "{\"appName\":\"bare\"},"
     "{\"appName\":\"dup\",\"properties\":[\"value\",\"value__NUM\"]}]"},
    {"TELEMETRY_MAX_STRING_BYTES", "100"},
    {"TELEMETRY_MAX_PROPERTIES", "4"},
    {"TELEMETRY_MAX_RECORDS", "10"},
    {"TELEMETRY_MAX_JSON_DEPTH", "6"},
    {NULL, NULL}};

/* Long lines: 1 KiB lines, long strings allowed, many properties. */
static char trunc_contracts[2048];
static struct kv trunc_env[] = {
    {"TELEMETRY_CONFIG_TENANTS", TENANTS},
    {"TELEMETRY_CONFIG_CONTRACTS", trunc_contracts},
    {"TELEMETRY_LINE_MAX_BYTES", "1024"},
    {"TELEMETRY_MAX_STRING_BYTES", "8192"},
    {"TELEMETRY_MAX_PROPERTIES", "64"},
    {NULL, NULL}};

static struct tlm_config cfg_main, cfg_trunc;
static const struct envelope_identity ID = {"agent1", CC, "pulse"};
static const struct envelope_identity ID2 = {"agent2", CC2, "blue"};

/* ---- running a body and decoding what came out ---- */

struct run {
    struct envelope_result res;
    struct pipeline_batch batch;
    struct buf frame;
    size_t n;
    struct proto_record rec[MAXREC];
    json_t *line[MAXREC];
    char rendered[4096];
};

static void run_n(struct run *r, const struct tlm_config *cfg, const char *body, size_t len,
                  const struct envelope_identity *id)
{
    struct envelope env;
    memset(r, 0, sizeof(*r));
    envelope_init(&env, cfg);
    envelope_result_init(&r->res);
    pipeline_batch_init(&r->batch);
    buf_init(&r->frame);
    envelope_process(&env, body, len, id, NOW, &r->batch, &r->res);
    envelope_free(&env); /* the records hold copies of the lines */

    struct buf out;
    buf_init(&out);
    envelope_render_result(&r->res, NULL, &out);
    snprintf(r->rendered, sizeof(r->rendered), "%s", out.p ? out.p : "");
    buf_free(&out);

    CHECK_EQ_INT(r->batch.count, r->res.accepted);
    if (r->res.status)
        CHECK_EQ_INT(r->batch.count, 0); /* an envelope error keeps nothing */
    if (!r->batch.count)
        return;
    CHECK(r->batch.count <= MAXREC);
    CHECK_EQ_INT(r->batch.ends[r->batch.count - 1], r->batch.records.len);
    struct proto_records_writer w;
    proto_records_begin(&r->frame, &w, 1);
    buf_append(&r->frame, r->batch.records.p, r->batch.records.len);
    w.count = (uint32_t)r->batch.count;
    proto_records_end(&r->frame, &w);
    struct proto_frame f;
    size_t used;
    struct proto_records_reader rd;
    int ok = proto_frame_parse((const uint8_t *)r->frame.p, r->frame.len, &f, &used) == PROTO_OK &&
             used == r->frame.len && proto_records_validate(&f) == PROTO_OK && proto_records_open(&f, &rd) == PROTO_OK;
    CHECK(ok);
    if (!ok)
        return;
    size_t start = 0;
    while (r->n < MAXREC && r->n < r->batch.count && proto_records_next(&rd, &r->rec[r->n]) == PROTO_OK) {
        struct proto_record *pr = &r->rec[r->n];
        /* each record sits between its ends[] marks */
        CHECK(r->batch.ends[r->n] > start);
        start = r->batch.ends[r->n];
        /* one line, at most TELEMETRY_LINE_MAX_BYTES with its newline, no raw newline/CR */
        CHECK(pr->line.len + 1 <= (size_t)cfg->line_max_bytes);
        CHECK(memchr(pr->line.p, '\n', pr->line.len) == NULL);
        CHECK(memchr(pr->line.p, '\r', pr->line.len) == NULL);
        CHECK(memchr(pr->line.p, '\0', pr->line.len) == NULL);
        json_error_t je;
        r->line[r->n] = json_loadb(pr->line.p, pr->line.len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
        CHECK(json_is_object(r->line[r->n]));
        if (!r->line[r->n])
            fprintf(stderr, "  line %zu does not parse (%s): %.*s\n", r->n, je.text, (int)pr->line.len, pr->line.p);
        r->n++;
    }
    CHECK_EQ_INT(r->n, r->batch.count);
}

static void run(struct run *r, const struct tlm_config *cfg, const char *body, const struct envelope_identity *id)
{
    run_n(r, cfg, body, strlen(body), id);
}

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->n; i++)
        json_decref(r->line[i]);
    buf_free(&r->frame);
    pipeline_batch_free(&r->batch);
    envelope_result_free(&r->res);
}

static const char *sget(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static int str_is(struct proto_str s, const char *want)
{
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.p, want, s.len) == 0);
}

/* The keys of o, in order, are exactly the NULL-terminated list. */
static int keys_are(json_t *o, const char *const *keys)
{
    void *it = json_object_iter(o);
    size_t i = 0;
    for (; keys[i]; i++, it = json_object_iter_next(o, it))
        if (!it || strcmp(json_object_iter_key(it), keys[i]))
            return 0;
    return it == NULL;
}

static int rid_ok(const char *rid)
{
    static regex_t re;
    static int compiled;
    if (!compiled) {
        if (regcomp(&re, "^[0-9a-f]{32}-[tem][0-9]+$", REG_EXTENDED | REG_NOSUB))
            return 0;
        compiled = 1;
    }
    return rid && regexec(&re, rid, 0, NULL, 0) == 0;
}

/* The rejected[] array of the rendered result, with kind/index/code of item i. */
static int rejected_is(const struct run *r, size_t i, const char *kind, long long index, const char *code)
{
    json_t *j = json_loads(r->rendered, 0, NULL);
    json_t *it = json_array_get(json_object_get(j, "rejected"), i);
    int ok = it && !strcmp(sget(it, "kind") ? sget(it, "kind") : "", kind) &&
             json_integer_value(json_object_get(it, "index")) == index &&
             !strcmp(sget(it, "code") ? sget(it, "code") : "", code) && json_is_string(json_object_get(it, "message")) &&
             json_object_size(it) == 4;
    if (!ok)
        fprintf(stderr, "  rejected[%zu] is not %s/%lld/%s in %s\n", i, kind, index, code, r->rendered);
    json_decref(j);
    return ok;
}

/* ---- tests ---- */

static const char *const TRACE_KEYS[] = {"ts", "receivedAt", "kind", "level", "appName", "tenantName",
                                         "contactCenterId", "user", "msg", "properties", "rid", NULL};
static const char *const EVENT_KEYS[] = {"ts", "receivedAt", "kind", "appName", "tenantName",
                                         "contactCenterId", "user", "name", "properties", "rid", NULL};
static const char *const METRIC_KEYS[] = {"ts", "receivedAt", "kind", "appName", "tenantName", "contactCenterId",
                                          "user", "name", "value", "properties", "rid", NULL};

static void test_line_fields(void)
{
    struct run r;
    run(&r, &cfg_main,
        "{\"appName\":\"wwe_ui\",\"batchId\":\"b1\",\"properties\":{\"connId\":\"c1\"},"
        "\"traces\":[{\"ts\":\"2026-11-24T10:00:00.123Z\",\"msg\":\"hello\"}],"
        "\"events\":[{\"ts\":1795514400123,\"name\":\"error_x\"}],"
        "\"metrics\":[{\"name\":\"sip_call_mos\",\"value\":4.1},{\"name\":\"n\",\"value\":-7}]}",
        &ID);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK_EQ_INT(r.res.accepted, 4);
    CHECK_EQ_INT(r.res.accepted_by_kind[ENV_TRACES], 1);
    CHECK_EQ_INT(r.res.accepted_by_kind[ENV_EVENTS], 1);
    CHECK_EQ_INT(r.res.accepted_by_kind[ENV_METRICS], 2);
    CHECK_EQ_INT(r.res.nrejected, 0);
    CHECK_EQ_INT(r.n, 4);
    if (r.n == 4) {
        CHECK(keys_are(r.line[0], TRACE_KEYS));
        CHECK(keys_are(r.line[1], EVENT_KEYS));
        CHECK(keys_are(r.line[2], METRIC_KEYS));
        CHECK(keys_are(r.line[3], METRIC_KEYS));
        /* the whole trace line, byte for byte */
        const char *rid = sget(r.line[0], "rid");
        char want[1024];
        snprintf(want, sizeof(want),
                 "{\"ts\":\"2026-11-24T10:00:00.123Z\",\"receivedAt\":\"" NOW_S "\",\"kind\":\"trace\",\"level\":\"info\","
                 "\"appName\":\"wwe_ui\",\"tenantName\":\"pulse\",\"contactCenterId\":\"" CC "\",\"user\":\"agent1\","
                 "\"msg\":\"hello\",\"properties\":{\"connId\":\"c1\"},\"rid\":\"%s\"}",
                 rid ? rid : "");
        CHECK(r.rec[0].line.len == strlen(want) && !memcmp(r.rec[0].line.p, want, strlen(want)));
        CHECK_EQ_STR(sget(r.line[1], "kind"), "event");
        CHECK_EQ_STR(sget(r.line[1], "name"), "error_x");
        CHECK_EQ_STR(sget(r.line[1], "ts"), "2026-11-24T10:00:00.123Z");
        CHECK_EQ_STR(sget(r.line[2], "kind"), "metric");
        CHECK(json_real_value(json_object_get(r.line[2], "value")) == 4.1);
        CHECK(json_number_value(json_object_get(r.line[3], "value")) == -7);
        for (size_t i = 0; i < r.n; i++) {
            CHECK_EQ_STR(sget(r.line[i], "receivedAt"), NOW_S);
            CHECK_EQ_STR(sget(r.line[i], "appName"), "wwe_ui");
            CHECK_EQ_STR(sget(r.line[i], "tenantName"), "pulse");
            CHECK_EQ_STR(sget(r.line[i], "contactCenterId"), CC);
            CHECK_EQ_STR(sget(r.line[i], "user"), "agent1");
            CHECK_EQ_STR(sget(json_object_get(r.line[i], "properties"), "connId"), "c1");
            CHECK(json_object_get(r.line[i], "truncated") == NULL);
            CHECK(rid_ok(sget(r.line[i], "rid")));
            /* routing fields of the protocol record agree with the line */
            CHECK(str_is(r.rec[i].rid, sget(r.line[i], "rid")));
            CHECK(str_is(r.rec[i].app, "wwe_ui"));
            CHECK(str_is(r.rec[i].tenant, "pulse"));
            CHECK(str_is(r.rec[i].ccid, CC));
            CHECK_EQ_INT(r.rec[i].recv_ms, NOW);
            CHECK_EQ_INT(r.rec[i].flags & PROTO_REC_TRUNCATED, 0);
        }
        CHECK_EQ_INT(r.rec[0].kind, PROTO_KIND_TRACE);
        CHECK_EQ_INT(r.rec[0].level, 6);
        CHECK_EQ_INT(r.rec[0].name.len, 0);
        CHECK_EQ_INT(r.rec[0].ts_ms, 1795514400123LL);
        CHECK_EQ_INT(r.rec[0].flags & PROTO_REC_HAS_VALUE, 0);
        CHECK_EQ_INT(r.rec[1].kind, PROTO_KIND_EVENT);
        CHECK(str_is(r.rec[1].name, "error_x"));
        CHECK_EQ_INT(r.rec[2].kind, PROTO_KIND_METRIC);
        CHECK(str_is(r.rec[2].name, "sip_call_mos"));
        CHECK(r.rec[2].flags & PROTO_REC_HAS_VALUE);
        CHECK(r.rec[2].value == 4.1);
        CHECK(r.rec[3].value == -7);
        CHECK_EQ_INT(r.rec[2].ts_ms, NOW); /* missing ts = time received */
        /* rid: one hex part per batch, kind letter and index in its own array */
        const char *r0 = sget(r.line[0], "rid"), *r1 = sget(r.line[1], "rid"), *r2 = sget(r.line[2], "rid"),
                   *r3 = sget(r.line[3], "rid");
        CHECK(r0 && r1 && r2 && r3 && !strncmp(r0, r1, 32) && !strncmp(r0, r2, 32) && !strncmp(r0, r3, 32));
        CHECK(r0 && !strcmp(r0 + 32, "-t0"));
        CHECK(r1 && !strcmp(r1 + 32, "-e0"));
        CHECK(r2 && !strcmp(r2 + 32, "-m0"));
        CHECK(r3 && !strcmp(r3 + 32, "-m1"));
    }
    CHECK_EQ_STR(r.rendered, "{\"accepted\":4,\"rejected\":[],\"batchId\":\"b1\"}");
    run_free(&r);
}

static void test_ts(void)
{
    static const struct {
        const char *json;
        const char *want; /* NULL: rejected invalid_ts */
    } cases[] = {
        {"\"2026-11-24T10:00:00.123Z\"", "2026-11-24T10:00:00.123Z"},
        {"\"2026-11-24T12:00:00.123+02:00\"", "2026-11-24T10:00:00.123Z"},
        {"\"2026-11-24T05:30:00-04:30\"", "2026-11-24T10:00:00.000Z"},
        {"\"2026-11-24t10:00:00.1z\"", "2026-11-24T10:00:00.100Z"},
        {"\"2026-11-24T10:00:00.123456789Z\"", "2026-11-24T10:00:00.123Z"},
        {"\"2026-11-25T00:30:00+14:00\"", "2026-11-24T10:30:00.000Z"},
        {"1795514400123", "2026-11-24T10:00:00.123Z"},
        {"1795514400123.9", "2026-11-24T10:00:00.123Z"},
        {"0", "1970-01-01T00:00:00.000Z"},
        {"253402300799999", "9999-12-31T23:59:59.999Z"},
        {"null", NOW_S},
        {"\"yesterday\"", NULL},
        {"\"2026-11-24\"", NULL},
        {"\"2026-11-24T10:00:00\"", NULL},
        {"\"2026-02-30T10:00:00Z\"", NULL},
        {"\"2026-11-24T10:00:00+0200\"", NULL},
        {"\"1970-01-01T00:00:00+01:00\"", NULL}, /* before the epoch */
        {"-1", NULL},
        {"253402300800000", NULL},
        {"1e300", NULL},
        {"true", NULL},
        {"{}", NULL},
    };
    char body[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        snprintf(body, sizeof(body), "{\"appName\":\"wwe_ui\",\"events\":[{\"name\":\"e\",\"ts\":%s}]}", cases[i].json);
        run(&r, &cfg_main, body, &ID);
        CHECK_EQ_INT(r.res.status, 0);
        if (cases[i].want) {
            CHECK_EQ_INT(r.res.accepted, 1);
            CHECK_EQ_STR(r.n ? sget(r.line[0], "ts") : NULL, cases[i].want);
            if (!r.n || strcmp(sget(r.line[0], "ts"), cases[i].want))
                fprintf(stderr, "  ts %s\n", cases[i].json);
        } else {
            CHECK_EQ_INT(r.res.accepted, 0);
            CHECK_EQ_INT(r.res.rejected_by_code[REJ_INVALID_TS], 1);
            CHECK(rejected_is(&r, 0, "events", 0, "invalid_ts"));
        }
        run_free(&r);
    }
    /* missing ts = now, in the line and the record */
    struct run r;
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\"}]}", &ID);
    CHECK_EQ_INT(r.n, 1);
    if (r.n) {
        CHECK_EQ_STR(sget(r.line[0], "ts"), NOW_S);
        CHECK_EQ_INT(r.rec[0].ts_ms, NOW);
    }
    run_free(&r);
}

static void test_level(void)
{
    static const struct {
        const char *json, *want;
        int prio;
    } cases[] = {
        {NULL, "info", 6},          {"null", "info", 6},     {"\"error\"", "error", 3}, {"\"ERROR\"", "ERROR", 3},
        {"\"warn\"", "warn", 4},    {"\"warning\"", "warning", 4}, {"\"debug\"", "debug", 7},
        {"\"fatal\"", "fatal", 2},  {"\"verbose\"", "verbose", 6},
    };
    char body[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        if (cases[i].json)
            snprintf(body, sizeof(body), "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\",\"level\":%s}]}", cases[i].json);
        else
            snprintf(body, sizeof(body), "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\"}]}");
        run(&r, &cfg_main, body, &ID);
        CHECK_EQ_INT(r.n, 1);
        if (r.n) {
            CHECK_EQ_STR(sget(r.line[0], "level"), cases[i].want);
            CHECK_EQ_INT(r.rec[0].level, cases[i].prio);
        }
        run_free(&r);
    }
    /* events and metrics have no level, even when the record gives one */
    struct run r;
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"events\":[{\"name\":\"e\",\"level\":\"error\"}]}", &ID);
    CHECK_EQ_INT(r.n, 1);
    if (r.n) {
        CHECK(json_object_get(r.line[0], "level") == NULL);
        CHECK_EQ_INT(r.rec[0].level, 6);
    }
    run_free(&r);
}

static void test_properties(void)
{
    struct run r;
    /* merge: the record overrides the envelope key by key; allow-list order; identity keys never */
    run(&r, &cfg_main,
        "{\"appName\":\"wwe_ui\",\"properties\":{\"connId\":\"env\",\"agentSessionId\":\"s\",\"user\":\"evil\"},"
        "\"traces\":[{\"msg\":\"m\",\"properties\":{\"connId\":\"rec\",\"tenantName\":\"evil\"}},"
        "{\"msg\":\"m2\"}]}",
        &ID);
    CHECK_EQ_INT(r.res.accepted, 2);
    if (r.n == 2) {
        json_t *p = json_object_get(r.line[0], "properties");
        static const char *const k0[] = {"connId", "agentSessionId", NULL};
        CHECK(keys_are(p, k0));
        CHECK_EQ_STR(sget(p, "connId"), "rec");
        CHECK_EQ_STR(sget(p, "agentSessionId"), "s");
        p = json_object_get(r.line[1], "properties");
        CHECK(keys_are(p, k0));
        CHECK_EQ_STR(sget(p, "connId"), "env");
        CHECK_EQ_STR(sget(r.line[0], "user"), "agent1");
        CHECK_EQ_STR(sget(r.line[0], "tenantName"), "pulse");
    }
    CHECK_EQ_INT(r.res.properties_dropped, 2 + 1); /* tenantName, user; user again on record 1 */
    run_free(&r);

    /* value__NUM keeps value only when numeric; objects/arrays dropped; booleans kept */
    static const struct {
        const char *props;
        const char *want; /* the properties object as compact JSON */
    } cases[] = {
        {"{\"value\":5}", "{\"value\":5}"},
        {"{\"value\":2.5}", "{\"value\":2.5}"},
        {"{\"value\":\"5\"}", "{}"},
        {"{\"value\":true}", "{}"},
        {"{\"value\":{\"a\":1}}", "{}"},
        {"{\"flag\":true,\"label\":false}", "{\"label\":false,\"flag\":true}"},
        {"{\"obj\":{\"a\":1},\"label\":[1]}", "{}"},
        {"{\"label\":-0.5,\"connId\":12}", "{\"connId\":12,\"label\":-0.5}"},
        {"{\"contactCenterId\":\"x\",\"user\":\"u\",\"tenantName\":\"t\"}", "{}"},
        {"{\"Connid\":\"case matters\"}", "{}"},
    };
    char body[1024];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(body, sizeof(body), "{\"appName\":\"wwe_ui\",\"metrics\":[{\"name\":\"n\",\"value\":1,\"properties\":%s}]}",
                 cases[i].props);
        run(&r, &cfg_main, body, &ID);
        CHECK_EQ_INT(r.n, 1);
        if (r.n) {
            char *got = json_dumps(json_object_get(r.line[0], "properties"), JSON_COMPACT | JSON_PRESERVE_ORDER);
            CHECK_EQ_STR(got, cases[i].want);
            free(got);
        }
        run_free(&r);
    }
    /* properties_dropped counts what the allow-list removed */
    run(&r, &cfg_main,
        "{\"appName\":\"wwe_ui\",\"properties\":{\"a\":1},\"events\":[{\"name\":\"e\",\"properties\":{\"connId\":\"c\",\"b\":2,\"obj\":[]}}]}",
        &ID);
    CHECK_EQ_INT(r.res.accepted, 1);
    CHECK_EQ_INT(r.res.properties_dropped, 3); /* a, b, obj */
    run_free(&r);
    /* a contract without an allow-list keeps no property */
    run(&r, &cfg_main, "{\"appName\":\"bare\",\"properties\":{\"connId\":\"c\"},\"traces\":[{\"msg\":\"m\",\"properties\":{\"x\":1}}]}", &ID);
    CHECK_EQ_INT(r.n, 1);
    if (r.n)
        CHECK_EQ_INT(json_object_size(json_object_get(r.line[0], "properties")), 0);
    CHECK_EQ_INT(r.res.properties_dropped, 2);
    run_free(&r);
    /* softphone's value__NUM */
    run(&r, &cfg_main, "{\"appName\":\"softphone\",\"properties\":{\"ThisDN\":\"5001\",\"value\":\"x\"},"
                       "\"metrics\":[{\"name\":\"sip_call_mos\",\"value\":4.2,\"properties\":{\"value\":3}}]}", &ID);
    CHECK_EQ_INT(r.n, 1);
    if (r.n) {
        char *got = json_dumps(json_object_get(r.line[0], "properties"), JSON_COMPACT | JSON_PRESERVE_ORDER);
        CHECK_EQ_STR(got, "{\"ThisDN\":\"5001\",\"value\":3}");
        free(got);
    }
    run_free(&r);
    /* an allow-list naming a field twice ("value" and "value__NUM") must not give a line
     * with the key twice (run() parses lines with JSON_REJECT_DUPLICATES) */
    run(&r, &cfg_main, "{\"appName\":\"dup\",\"events\":[{\"name\":\"e\",\"properties\":{\"value\":3}}]}", &ID);
    CHECK_EQ_INT(r.res.accepted, 1);
    run_free(&r);
}

static void test_too_many_properties(void)
{
    struct run r;
    /* max 4: 3 envelope + 2 record with one shared = 4 ok */
    run(&r, &cfg_main,
        "{\"appName\":\"wwe_ui\",\"properties\":{\"a\":1,\"b\":2,\"connId\":\"e\"},"
        "\"traces\":[{\"msg\":\"ok\",\"properties\":{\"connId\":\"r\",\"c\":3}},"
        "{\"msg\":\"five\",\"properties\":{\"c\":3,\"d\":4}}]}",
        &ID);
    CHECK_EQ_INT(r.res.accepted, 1);
    CHECK_EQ_INT(r.res.rejected_by_code[REJ_TOO_MANY_PROPERTIES], 1);
    CHECK(rejected_is(&r, 0, "traces", 1, "too_many_properties"));
    if (r.n)
        CHECK(!strcmp(sget(r.line[0], "rid") + 32, "-t0"));
    run_free(&r);
}

static void test_identity_keys_ignored(void)
{
    struct run r;
    run(&r, &cfg_main,
        "{\"appName\":\"wwe_ui\",\"tenantName\":\"evil\",\"contactCenterId\":\"evil\",\"user\":\"evil\","
        "\"properties\":{\"tenantName\":\"evil\",\"contactCenterId\":\"evil\",\"user\":\"evil\"},"
        "\"traces\":[{\"msg\":\"m\",\"tenantName\":\"evil\",\"contactCenterId\":\"evil\",\"user\":\"evil\",\"kind\":\"event\","
        "\"rid\":\"forged\",\"appName\":\"other\",\"receivedAt\":\"1999-01-01T00:00:00Z\","
        "\"properties\":{\"tenantName\":\"evil\",\"contactCenterId\":\"evil\",\"user\":\"evil\"}}]}",
        &ID);
    CHECK_EQ_INT(r.n, 1);
    if (r.n) {
        CHECK(keys_are(r.line[0], TRACE_KEYS));
        CHECK_EQ_STR(sget(r.line[0], "tenantName"), "pulse");
        CHECK_EQ_STR(sget(r.line[0], "contactCenterId"), CC);
        CHECK_EQ_STR(sget(r.line[0], "user"), "agent1");
        CHECK_EQ_STR(sget(r.line[0], "kind"), "trace");
        CHECK_EQ_STR(sget(r.line[0], "appName"), "wwe_ui");
        CHECK_EQ_STR(sget(r.line[0], "receivedAt"), NOW_S);
        CHECK(rid_ok(sget(r.line[0], "rid")));
        CHECK_EQ_INT(json_object_size(json_object_get(r.line[0], "properties")), 0);
    }
    run_free(&r);
    /* another identity gives its own tenant fields */
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\"}]}", &ID2);
    if (r.n) {
        CHECK_EQ_STR(sget(r.line[0], "tenantName"), "blue");
        CHECK_EQ_STR(sget(r.line[0], "contactCenterId"), CC2);
        CHECK_EQ_STR(sget(r.line[0], "user"), "agent2");
        CHECK(str_is(r.rec[0].tenant, "blue"));
    }
    run_free(&r);
}

/* The 32-hex part of the first record's rid (into out), "" when none. */
static void rid_of(const char *body, const struct envelope_identity *id, char out[33])
{
    struct run r;
    run(&r, &cfg_main, body, id);
    out[0] = '\0';
    if (r.n && sget(r.line[0], "rid"))
        snprintf(out, 33, "%s", sget(r.line[0], "rid"));
    run_free(&r);
}

static void test_rid(void)
{
    char a[33], b[33], c[33], d[33], e[33], f[33], g[33];
    const char *B1 = "{\"appName\":\"wwe_ui\",\"batchId\":\"batch-1\",\"traces\":[{\"msg\":\"m\"}]}";
    rid_of(B1, &ID, a);
    rid_of(B1, &ID, b);
    CHECK(strlen(a) == 32 && !strcmp(a, b)); /* stable across re-sends */
    /* the record's content does not matter, only ccid + user + app + batchId */
    rid_of("{\"appName\":\"wwe_ui\",\"batchId\":\"batch-1\",\"traces\":[{\"msg\":\"other\"}]}", &ID, c);
    CHECK_EQ_STR(c, a);
    /* another agent of the tenant whose client also numbers its batches from 1 */
    struct envelope_identity other_user = {"someone", CC, "pulse"};
    rid_of(B1, &other_user, c);
    CHECK(strlen(c) == 32 && strcmp(c, a));
    rid_of(B1, &ID2, d); /* another tenant */
    CHECK(strlen(d) == 32 && strcmp(d, a));
    rid_of("{\"appName\":\"softphone\",\"batchId\":\"batch-1\",\"traces\":[{\"msg\":\"m\"}]}", &ID, e);
    CHECK(strlen(e) == 32 && strcmp(e, a));
    rid_of("{\"appName\":\"wwe_ui\",\"batchId\":\"batch-2\",\"traces\":[{\"msg\":\"m\"}]}", &ID, f);
    CHECK(strlen(f) == 32 && strcmp(f, a));
    /* no field-boundary confusion: app "wwe_ui" + batch "x" vs ... the separator keeps them apart */
    rid_of("{\"appName\":\"wwe_ui\",\"batchId\":\"\",\"traces\":[{\"msg\":\"m\"}]}", &ID, g);
    CHECK(strlen(g) == 32 && strcmp(g, a));
    /* without batchId (or null): random per batch */
    rid_of("{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\"}]}", &ID, b);
    rid_of("{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\"}]}", &ID, c);
    CHECK(strlen(b) == 32 && strlen(c) == 32 && strcmp(b, c) && strcmp(b, a));
    rid_of("{\"appName\":\"wwe_ui\",\"batchId\":null,\"traces\":[{\"msg\":\"m\"}]}", &ID, d);
    rid_of("{\"appName\":\"wwe_ui\",\"batchId\":null,\"traces\":[{\"msg\":\"m\"}]}", &ID, e);
    CHECK(strlen(d) == 32 && strcmp(d, e));
    /* the index is the record's index in its array, rejected ones included */
    struct run r;
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"traces\":[5,{\"msg\":\"a\"},{},{\"msg\":\"b\"}],\"events\":[{\"name\":\"x\"}]}", &ID);
    CHECK_EQ_INT(r.n, 3);
    if (r.n == 3) {
        CHECK(!strcmp(sget(r.line[0], "rid") + 32, "-t1"));
        CHECK(!strcmp(sget(r.line[1], "rid") + 32, "-t3"));
        CHECK(!strcmp(sget(r.line[2], "rid") + 32, "-e0"));
        for (size_t i = 0; i < 3; i++)
            CHECK(rid_ok(sget(r.line[i], "rid")));
    }
    run_free(&r);
}

static void test_rejections(void)
{
    struct run r;
    char longs[300];
    memset(longs, 'x', 101);
    longs[101] = '\0';
    char body[4096];
    snprintf(body, sizeof(body),
             "{\"appName\":\"wwe_ui\","
             "\"traces\":[5,{},{\"msg\":null},{\"msg\":5},{\"msg\":\"m\",\"ts\":\"bad\"},{\"msg\":\"%s\"},"
             "{\"msg\":\"m\",\"level\":5},{\"msg\":\"m\",\"level\":\"%.65s\"},{\"msg\":\"m\",\"properties\":[]},"
             "{\"msg\":\"m\",\"properties\":{\"connId\":\"%s\"}},{\"msg\":\"ok\"},{\"msg\":\"\"}],"
             "\"events\":[\"e\",{},{\"name\":\"\"},{\"name\":[]},{\"name\":\"%s\"}],"
             "\"metrics\":[null,{\"name\":\"m\"},{\"name\":\"m\",\"value\":null},{\"name\":\"m\",\"value\":\"1\"},"
             "{\"name\":\"m\",\"value\":true},{\"value\":1},{\"name\":\"m\",\"value\":1,\"properties\":\"p\"}]}",
             longs, longs, longs, longs);
    /* cfg_main allows 10 records: use a copy with more */
    struct tlm_config cfg = cfg_main;
    cfg.max_records = 100;
    run(&r, &cfg, body, &ID);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK_EQ_INT(r.res.accepted, 2); /* "ok" and "" (an empty msg is a message) */
    CHECK_EQ_INT(r.res.accepted_by_kind[ENV_TRACES], 2);
    CHECK_EQ_INT(r.res.nrejected, 22);
    static const struct {
        const char *kind;
        int index;
        const char *code;
    } want[] = {
        {"traces", 0, "not_object"},       {"traces", 1, "missing_msg"},      {"traces", 2, "missing_msg"},
        {"traces", 3, "invalid_type"},     {"traces", 4, "invalid_ts"},       {"traces", 5, "string_too_long"},
        {"traces", 6, "invalid_type"},     {"traces", 7, "string_too_long"},  {"traces", 8, "invalid_type"},
        {"traces", 9, "string_too_long"},  {"events", 0, "not_object"},       {"events", 1, "missing_name"},
        {"events", 2, "missing_name"},     {"events", 3, "invalid_type"},     {"events", 4, "string_too_long"},
        {"metrics", 0, "not_object"},      {"metrics", 1, "missing_value"},   {"metrics", 2, "missing_value"},
        {"metrics", 3, "invalid_type"},    {"metrics", 4, "invalid_type"},    {"metrics", 5, "missing_name"},
        {"metrics", 6, "invalid_type"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK(rejected_is(&r, i, want[i].kind, want[i].index, want[i].code));
    CHECK_EQ_INT(r.res.rejected_by_code[REJ_NOT_OBJECT], 3);
    CHECK_EQ_INT(r.res.rejected_by_code[REJ_MISSING_MSG], 2);
    CHECK_EQ_INT(r.res.rejected_by_code[REJ_MISSING_NAME], 3);
    CHECK_EQ_INT(r.res.rejected_by_code[REJ_MISSING_VALUE], 2);
    CHECK_EQ_INT(r.res.rejected_by_code[REJ_INVALID_TYPE], 7);
    CHECK_EQ_INT(r.res.rejected_by_code[REJ_INVALID_TS], 1);
    CHECK_EQ_INT(r.res.rejected_by_code[REJ_STRING_TOO_LONG], 4);
    /* the rendered result is valid JSON with exactly accepted and rejected */
    json_t *j = json_loads(r.rendered, 0, NULL);
    CHECK(json_is_object(j) && json_object_size(j) == 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "accepted")), 2);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "rejected")), 22);
    json_decref(j);
    /* exactly at the string limit is fine */
    snprintf(body, sizeof(body), "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"%.100s\",\"properties\":{\"connId\":\"%.100s\"}}]}",
             longs, longs);
    run_free(&r);
    run(&r, &cfg_main, body, &ID);
    CHECK_EQ_INT(r.res.accepted, 1);
    run_free(&r);
    /* a record whose every code is counted once per record, whole batch rejected still 202 */
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"traces\":[{},{}]}", &ID);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK_EQ_INT(r.res.accepted, 0);
    CHECK_EQ_STR(r.rendered,
                 "{\"accepted\":0,\"rejected\":[{\"kind\":\"traces\",\"index\":0,\"code\":\"missing_msg\",\"message\":\"msg is required\"},"
                 "{\"kind\":\"traces\",\"index\":1,\"code\":\"missing_msg\",\"message\":\"msg is required\"}]}");
    run_free(&r);
    /* every code is named */
    for (int c = 0; c < REJ_NCODES; c++)
        CHECK(envelope_reject_codes[c] && strlen(envelope_reject_codes[c]) > 0);
    CHECK_EQ_STR(envelope_reject_codes[REJ_INVALID_VALUE], "invalid_value");
    CHECK_EQ_STR(envelope_reject_codes[REJ_TOO_MANY_PROPERTIES], "too_many_properties");
}

/* A metric value JSON cannot carry as a finite double: jansson refuses 1e400 while parsing,
 * so the answer is invalid_json for the whole batch (invalid_value is never reached). */
static void test_huge_numbers(void)
{
    struct run r;
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"metrics\":[{\"name\":\"m\",\"value\":1e400}]}", &ID);
    CHECK_EQ_INT(r.res.status, 400);
    CHECK_EQ_STR(r.res.code, "invalid_json");
    CHECK(!strncmp(r.res.message, "line 1, column ", 15));
    run_free(&r);
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"metrics\":[{\"name\":\"m\",\"value\":1e308,\"ts\":1e308}]}", &ID);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK(rejected_is(&r, 0, "metrics", 0, "invalid_ts"));
    run_free(&r);
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"metrics\":[{\"name\":\"m\",\"value\":-1.7976931348623157e308}]}", &ID);
    CHECK_EQ_INT(r.res.accepted, 1);
    if (r.n)
        CHECK(json_real_value(json_object_get(r.line[0], "value")) == -1.7976931348623157e308);
    run_free(&r);
}

static void test_envelope_errors(void)
{
    static const struct {
        const char *body;
        int status;
        const char *code;
        const char *msg_prefix;
    } cases[] = {
        {"{\n  \"appName\": \"wwe_ui\",\n  \"traces\": [ x ]\n}", 400, "invalid_json", "line 3, column 15: "},
        {"", 400, "invalid_json", "line 1, column "},
        {"{\"appName\":\"wwe_ui\"} {}", 400, "invalid_json", "line 1, column "},
        {"{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"\x01\"}]}", 400, "invalid_json", "line 1, column "},
        {"[]", 400, "invalid_envelope", "the body must be a JSON object"},
        {"{}", 400, "invalid_envelope", "appName is required"},
        {"{\"appName\":5}", 400, "invalid_envelope", "appName is required"},
        {"{\"appName\":\"\"}", 400, "invalid_envelope", "appName is required"},
        {"{\"appName\":\"nope\"}", 403, "unknown_app", "no contract"},
        {"{\"appName\":\"WWE_UI\"}", 403, "unknown_app", "no contract"},
        {"{\"appName\":\"wwe_ui\",\"batchId\":5}", 400, "invalid_envelope", "batchId"},
        {"{\"appName\":\"wwe_ui\",\"properties\":[]}", 400, "invalid_envelope", "properties must be an object"},
        {"{\"appName\":\"wwe_ui\",\"properties\":\"x\"}", 400, "invalid_envelope", "properties must be an object"},
        {"{\"appName\":\"wwe_ui\",\"traces\":{}}", 400, "invalid_envelope", "traces must be an array"},
        {"{\"appName\":\"wwe_ui\",\"events\":\"e\"}", 400, "invalid_envelope", "events must be an array"},
        {"{\"appName\":\"wwe_ui\",\"metrics\":1}", 400, "invalid_envelope", "metrics must be an array"},
        {"{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\",\"properties\":{\"a\":[[[1]]]}}]}", 400, "too_deep",
         "JSON nesting is deeper than TELEMETRY_MAX_JSON_DEPTH"},
        {"[[[[[[[", 400, "too_deep", "JSON nesting"}, /* before the syntax is even looked at */
        {"{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"1\"},{\"msg\":\"2\"},{\"msg\":\"3\"},{\"msg\":\"4\"}],"
         "\"events\":[{\"name\":\"1\"},{\"name\":\"2\"},{\"name\":\"3\"},{\"name\":\"4\"}],\"metrics\":[1,2,3]}",
         413, "too_many_records", "the batch holds more records than TELEMETRY_MAX_RECORDS"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        run(&r, &cfg_main, cases[i].body, &ID);
        CHECK_EQ_INT(r.res.status, cases[i].status);
        CHECK_EQ_STR(r.res.code, cases[i].code);
        CHECK(!strncmp(r.res.message, cases[i].msg_prefix, strlen(cases[i].msg_prefix)));
        if (r.res.status != cases[i].status || strncmp(r.res.message, cases[i].msg_prefix, strlen(cases[i].msg_prefix)))
            fprintf(stderr, "  case %zu: %d %s %s\n", i, r.res.status, r.res.code ? r.res.code : "-", r.res.message);
        CHECK_EQ_INT(r.batch.count, 0);
        CHECK_EQ_INT(r.res.accepted, 0);
        run_free(&r);
    }
    /* limits: appName 255 bytes is a name (no contract: 403), 256 is invalid; batchId 128 ok, 129 not */
    char body[1024], s[300];
    memset(s, 'a', sizeof(s));
    struct run r;
    snprintf(body, sizeof(body), "{\"appName\":\"%.255s\"}", s);
    run(&r, &cfg_main, body, &ID);
    CHECK_EQ_INT(r.res.status, 403);
    run_free(&r);
    snprintf(body, sizeof(body), "{\"appName\":\"%.256s\"}", s);
    run(&r, &cfg_main, body, &ID);
    CHECK_EQ_INT(r.res.status, 400);
    CHECK_EQ_STR(r.res.code, "invalid_envelope");
    run_free(&r);
    snprintf(body, sizeof(body), "{\"appName\":\"wwe_ui\",\"batchId\":\"%.128s\",\"traces\":[{\"msg\":\"m\"}]}", s);
    run(&r, &cfg_main, body, &ID);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK_EQ_INT(r.res.accepted, 1);
    run_free(&r);
    snprintf(body, sizeof(body), "{\"appName\":\"wwe_ui\",\"batchId\":\"%.129s\",\"traces\":[{\"msg\":\"m\"}]}", s);
    run(&r, &cfg_main, body, &ID);
    CHECK_EQ_INT(r.res.status, 400);
    CHECK_EQ_STR(r.res.code, "invalid_envelope");
    run_free(&r);
    /* exactly TELEMETRY_MAX_RECORDS (10) is fine, rejected ones count too */
    run(&r, &cfg_main,
        "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"1\"},{\"msg\":\"2\"},{\"msg\":\"3\"},{\"msg\":\"4\"}],"
        "\"events\":[{\"name\":\"1\"},{\"name\":\"2\"},{\"name\":\"3\"},{\"name\":\"4\"}],\"metrics\":[1,{\"name\":\"m\",\"value\":0}]}",
        &ID);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK_EQ_INT(r.res.accepted, 9);
    CHECK_EQ_INT(r.res.nrejected, 1);
    run_free(&r);
    /* exactly TELEMETRY_MAX_JSON_DEPTH (6) is fine; null arrays and properties are absent ones */
    run(&r, &cfg_main,
        "{\"appName\":\"wwe_ui\",\"properties\":null,\"events\":null,\"metrics\":null,"
        "\"traces\":[{\"msg\":\"[[[[[[[[[[[[\\\"[[[[\",\"properties\":{\"a\":[[1]]}}]}",
        &ID);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK_EQ_INT(r.res.accepted, 1);
    if (r.n)
        CHECK_EQ_STR(sget(r.line[0], "msg"), "[[[[[[[[[[[[\"[[[[");
    run_free(&r);
    /* an empty batch is processed: nothing accepted, nothing rejected */
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"traces\":[]}", &ID);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK_EQ_STR(r.rendered, "{\"accepted\":0,\"rejected\":[]}");
    run_free(&r);
}

static void test_render(void)
{
    struct run r;
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"batchId\":\"a\\\"b\\n\\u2028</script>\",\"traces\":[{\"msg\":\"m\"},{}]}", &ID);
    CHECK_EQ_INT(r.res.accepted, 1);
    json_t *j = json_loads(r.rendered, 0, NULL);
    CHECK(json_is_object(j));
    CHECK_EQ_STR(sget(j, "batchId"), "a\"b\n\xe2\x80\xa8</script>");
    CHECK(strchr(r.rendered, '\n') == NULL);
    json_decref(j);
    /* with a prefix (the WebSocket ack) */
    struct buf b;
    buf_init(&b);
    envelope_render_result(&r.res, "\"type\":\"ack\",\"seq\":3,", &b);
    j = json_loads(b.p, 0, NULL);
    CHECK(json_is_object(j) && json_object_size(j) == 5);
    CHECK_EQ_STR(sget(j, "type"), "ack");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "seq")), 3);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "accepted")), 1);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "rejected")), 1);
    CHECK(!strncmp(b.p, "{\"type\":\"ack\",\"seq\":3,\"accepted\":1,", 35));
    json_decref(j);
    buf_free(&b);
    run_free(&r);

    /* reset between batches: counts, rejections, batchId and seq start over */
    struct envelope env;
    struct envelope_result res;
    struct pipeline_batch batch;
    envelope_init(&env, &cfg_main);
    envelope_result_init(&res);
    pipeline_batch_init(&batch);
    const char *b1 = "{\"seq\":1,\"appName\":\"wwe_ui\",\"batchId\":\"x\",\"traces\":[{\"msg\":\"m\"},{}]}";
    envelope_process(&env, b1, strlen(b1), &ID, NOW, &batch, &res);
    CHECK_EQ_INT(res.accepted, 1);
    CHECK_EQ_INT(res.has_seq, 1);
    envelope_result_reset(&res);
    pipeline_batch_reset(&batch);
    const char *b2 = "{\"appName\":\"wwe_ui\",\"events\":[{\"name\":\"e\"}]}";
    envelope_process(&env, b2, strlen(b2), &ID, NOW, &batch, &res);
    buf_init(&b);
    envelope_render_result(&res, NULL, &b);
    CHECK_EQ_STR(b.p, "{\"accepted\":1,\"rejected\":[]}");
    CHECK_EQ_INT(res.has_seq, 0);
    CHECK_EQ_INT(res.nrejected, 0);
    CHECK_EQ_INT(res.accepted_by_kind[ENV_TRACES], 0);
    CHECK_EQ_INT(batch.count, 1);
    buf_free(&b);
    pipeline_batch_free(&batch);
    envelope_result_free(&res);
    envelope_free(&env);
}

static void test_truncation(void)
{
    struct run r;
    char *body = malloc(64 * 1024);
    char big[3001];
    memset(big, 'a', 3000);
    big[3000] = '\0';
    /* one long msg: cut to the largest that fits, exactly the line limit (1023 + newline) */
    snprintf(body, 64 * 1024, "{\"appName\":\"wwe_ui\",\"batchId\":\"t\",\"traces\":[{\"msg\":\"%s\",\"properties\":{\"connId\":\"short\"}}]}", big);
    run(&r, &cfg_trunc, body, &ID);
    CHECK_EQ_INT(r.res.accepted, 1);
    CHECK_EQ_INT(r.res.truncated, 1);
    CHECK_EQ_INT(r.n, 1);
    if (r.n) {
        static const char *const keys[] = {"ts", "receivedAt", "kind", "level", "appName", "tenantName", "contactCenterId",
                                           "user", "msg", "properties", "truncated", "rid", NULL};
        CHECK(keys_are(r.line[0], keys));
        CHECK(json_is_true(json_object_get(r.line[0], "truncated")));
        CHECK(r.rec[0].flags & PROTO_REC_TRUNCATED);
        CHECK_EQ_INT(r.rec[0].line.len, 1023);
        const char *m = sget(r.line[0], "msg");
        CHECK(m && strlen(m) > 500 && strlen(m) < 1000 && strspn(m, "a") == strlen(m));
        CHECK_EQ_STR(sget(json_object_get(r.line[0], "properties"), "connId"), "short"); /* short strings stay whole */
        CHECK(rid_ok(sget(r.line[0], "rid")));
    }
    run_free(&r);
    /* a long msg and a long property: both cut, line valid */
    snprintf(body, 64 * 1024, "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"%s\",\"properties\":{\"connId\":\"%s\"}}]}", big, big);
    run(&r, &cfg_trunc, body, &ID);
    CHECK_EQ_INT(r.n, 1);
    if (r.n) {
        CHECK(json_is_true(json_object_get(r.line[0], "truncated")));
        const char *m = sget(r.line[0], "msg"), *c = sget(json_object_get(r.line[0], "properties"), "connId");
        CHECK(m && c && strlen(m) > 200 && strlen(c) > 200);
    }
    run_free(&r);
    /* multi-byte characters and escapes are never cut in the middle (the line parses, with
     * jansson's UTF-8 check, and ends its strings cleanly) */
    size_t o = (size_t)snprintf(body, 64 * 1024, "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"");
    for (int i = 0; i < 600; i++)
        o += (size_t)snprintf(body + o, 64 * 1024 - o, "\xc3\xa9\\n\\u0001\xe2\x80\xa8\xf0\x9f\x98\x80\\\"");
    snprintf(body + o, 64 * 1024 - o, "\",\"level\":\"%.60s\"}]}", big);
    run(&r, &cfg_trunc, body, &ID);
    CHECK_EQ_INT(r.n, 1);
    if (r.n) {
        CHECK(json_is_true(json_object_get(r.line[0], "truncated")));
        CHECK(r.rec[0].line.len <= 1023 && r.rec[0].line.len > 900);
        const char *m = sget(r.line[0], "msg");
        CHECK(m && !strncmp(m, "\xc3\xa9\n\x01\xe2\x80\xa8", 7));
    }
    run_free(&r);
    /* a line under the limit is not touched */
    run(&r, &cfg_trunc, "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"fits\"}]}", &ID);
    CHECK_EQ_INT(r.res.truncated, 0);
    if (r.n) {
        CHECK(json_object_get(r.line[0], "truncated") == NULL);
        CHECK_EQ_INT(r.rec[0].flags & PROTO_REC_TRUNCATED, 0);
    }
    run_free(&r);
    /* many allowed properties: even when every string is cut to the minimum, the line must
     * stay within TELEMETRY_LINE_MAX_BYTES (run() checks every line's length) */
    o = (size_t)snprintf(body, 64 * 1024, "{\"appName\":\"many\",\"events\":[{\"name\":\"e\",\"properties\":{");
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(body + o, 64 * 1024 - o, "%s\"p%02d\":\"%.100s\"", i ? "," : "", i, big);
    snprintf(body + o, 64 * 1024 - o, "}}]}");
    run(&r, &cfg_trunc, body, &ID);
    CHECK_EQ_INT(r.res.accepted, 1);
    if (r.n) {
        CHECK(r.rec[0].line.len <= 1023);
        if (r.rec[0].line.len > 1023)
            fprintf(stderr, "  40 properties of 100 bytes, TELEMETRY_LINE_MAX_BYTES=1024: line is %u bytes\n",
                    r.rec[0].line.len);
    }
    run_free(&r);
    free(body);
}

/* Hostile strings stay inside their JSON string: the line is one object with exactly the
 * expected keys, the values round-trip, and no raw newline, NUL, CR or U+2028 is written. */
static void test_injection(void)
{
    const char *evil = "x\\n\\\"},\\\"tenantName\\\":\\\"evil\\\",\\\"a\\\":{\\\"\\u2028\\u2029\\r\\u0000\\u0085\\u001b[31m\\ud83d\\ude00";
    static const char evil_raw[] = "x\n\"},\"tenantName\":\"evil\",\"a\":{\"\xe2\x80\xa8\xe2\x80\xa9\r\0\xc2\x85\x1b[31m\xf0\x9f\x98\x80";
    const size_t evil_raw_len = sizeof(evil_raw) - 1;
    char body[4096];
    snprintf(body, sizeof(body),
             "{\"appName\":\"wwe_ui\",\"properties\":{\"label\":\"%s\"},"
             "\"traces\":[{\"msg\":\"%s\",\"level\":\"%s\"}],"
             "\"events\":[{\"name\":\"%s\",\"properties\":{\"connId\":\"%s\"}}]}",
             evil, evil, evil, evil, evil);
    struct envelope_identity hostile = {"agent\n1\"}", CC, "pulse"};
    struct run r;
    run(&r, &cfg_main, body, &hostile);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK_EQ_INT(r.res.accepted, 2);
    CHECK_EQ_INT(r.n, 2);
    if (r.n == 2) {
        CHECK(keys_are(r.line[0], TRACE_KEYS));
        CHECK(keys_are(r.line[1], EVENT_KEYS));
        for (size_t i = 0; i < 2; i++) {
            const struct proto_str l = r.rec[i].line;
            CHECK(memmem(l.p, l.len, "\xe2\x80\xa8", 3) == NULL);
            CHECK(memmem(l.p, l.len, "\xe2\x80\xa9", 3) == NULL);
            CHECK(memmem(l.p, l.len, "\xc2\x85", 2) == NULL);
            CHECK(memchr(l.p, 0x1b, l.len) == NULL);
            CHECK_EQ_STR(sget(r.line[i], "tenantName"), "pulse");
            CHECK_EQ_STR(sget(r.line[i], "user"), "agent\n1\"}");
            json_t *p = json_object_get(r.line[i], "properties");
            CHECK_EQ_INT(json_object_size(p), i == 0 ? 1 : 2);
            json_t *lab = json_object_get(p, "label");
            CHECK(json_string_length(lab) == evil_raw_len && !memcmp(json_string_value(lab), evil_raw, evil_raw_len));
        }
        json_t *m = json_object_get(r.line[0], "msg"), *lv = json_object_get(r.line[0], "level"),
               *n = json_object_get(r.line[1], "name"), *c = json_object_get(json_object_get(r.line[1], "properties"), "connId");
        CHECK(json_string_length(m) == evil_raw_len && !memcmp(json_string_value(m), evil_raw, evil_raw_len));
        CHECK(json_string_length(lv) == evil_raw_len && !memcmp(json_string_value(lv), evil_raw, evil_raw_len));
        CHECK(json_string_length(n) == evil_raw_len && !memcmp(json_string_value(n), evil_raw, evil_raw_len));
        CHECK(json_string_length(c) == evil_raw_len && !memcmp(json_string_value(c), evil_raw, evil_raw_len));
        CHECK_EQ_INT(r.rec[1].name.len, evil_raw_len); /* the routing name is the raw name */
    }
    run_free(&r);
    /* a raw NUL byte in the body (not the \u0000 escape) and raw control bytes */
    static const char raw[] = "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"a\0b\"}]}";
    run_n(&r, &cfg_main, raw, sizeof(raw) - 1, &ID);
    CHECK_EQ_INT(r.res.status, 400);
    CHECK_EQ_STR(r.res.code, "invalid_json");
    run_free(&r);
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"a\nb\"}]}", &ID);
    CHECK_EQ_INT(r.res.status, 400);
    run_free(&r);
    /* a lone surrogate escape is refused by the parser */
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"\\ud800\"}]}", &ID);
    CHECK_EQ_INT(r.res.status, 400);
    CHECK_EQ_STR(r.res.code, "invalid_json");
    run_free(&r);
    /* the tenant strings themselves are escaped too */
    struct envelope_identity odd = {"u\xff\xfe", "c\x01", "t\xe2\x80\xa8"};
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\"}]}", &odd);
    CHECK_EQ_INT(r.n, 1);
    if (r.n) {
        CHECK_EQ_STR(sget(r.line[0], "user"), "u\xef\xbf\xbd\xef\xbf\xbd");
        CHECK_EQ_STR(sget(r.line[0], "contactCenterId"), "c\x01");
        CHECK_EQ_STR(sget(r.line[0], "tenantName"), "t\xe2\x80\xa8");
        CHECK(keys_are(r.line[0], TRACE_KEYS));
    }
    run_free(&r);
}

static void test_seq(void)
{
    static const struct {
        const char *body;
        int has;
        long long seq;
        int status;
    } cases[] = {
        {"{\"seq\":7,\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\"}]}", 1, 7, 0},
        {"{\"appName\":\"wwe_ui\",\"traces\":[],\"seq\":9007199254740993}", 1, 9007199254740993LL, 0},
        {"{\"seq\":-3,\"appName\":\"wwe_ui\"}", 1, -3, 0},
        {"{\"seq\":8,\"appName\":5}", 1, 8, 400},
        {"{\"seq\":9,\"appName\":\"nope\"}", 1, 9, 403},
        {"{\"seq\":10}", 1, 10, 400},
        {"{\"seq\":11,\"appName\":\"wwe_ui\",\"traces\":{}}", 1, 11, 400},
        {"{\"seq\":12,\"appName\":\"wwe_ui\",\"traces\":[1,2,3,4,5,6,7,8,9,10,11]}", 1, 12, 413},
        {"{\"seq\":\"7\",\"appName\":\"wwe_ui\"}", 0, 0, 0},
        {"{\"seq\":1.5,\"appName\":\"wwe_ui\"}", 0, 0, 0},
        {"{\"seq\":null,\"appName\":\"wwe_ui\"}", 0, 0, 0},
        {"{\"appName\":\"wwe_ui\"}", 0, 0, 0},
        /* an integer past 2^63 elsewhere: numbers read as doubles, seq still names the batch */
        {"{\"seq\":14,\"appName\":\"wwe_ui\",\"metrics\":[{\"name\":\"n\",\"value\":1180591620717411303424}]}", 1, 14,
         0},
        {"{\"seq\":-15,\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"m\",\"ts\":18446744073709551616}]}", 1, -15, 0},
        {"{\"seq\":1180591620717411303424,\"appName\":\"wwe_ui\"}", 0, 0, 0}, /* past 2^53: no seq */
        {"{\"seq\":16,\"appName\":\"wwe_ui\",\"metrics\":[{\"name\":\"n\",\"value\":1e400}]}", 0, 0, 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        run(&r, &cfg_main, cases[i].body, &ID);
        CHECK_EQ_INT(r.res.has_seq, cases[i].has);
        CHECK_EQ_INT(r.res.seq, cases[i].seq);
        CHECK_EQ_INT(r.res.status, cases[i].status);
        run_free(&r);
    }
}

static void test_depth_ok(void)
{
    CHECK_EQ_INT(envelope_depth_ok("[[]]", 4, 2), 1);
    CHECK_EQ_INT(envelope_depth_ok("[[]]", 4, 1), 0);
    CHECK_EQ_INT(envelope_depth_ok("{\"a\":{\"b\":[]}}", 14, 3), 1);
    CHECK_EQ_INT(envelope_depth_ok("{\"a\":{\"b\":[]}}", 14, 2), 0);
    CHECK_EQ_INT(envelope_depth_ok("", 0, 0), 1);
    CHECK_EQ_INT(envelope_depth_ok("[", 1, 0), 0);
    /* brackets inside strings do not count, escaped quotes do not end the string */
    const char *s1 = "[\"[[[[{{{{\"]";
    CHECK_EQ_INT(envelope_depth_ok(s1, strlen(s1), 1), 1);
    const char *s2 = "[\"\\\"[[[[\"]"; /* ["\"[[[["] */
    CHECK_EQ_INT(envelope_depth_ok(s2, strlen(s2), 1), 1);
    const char *s3 = "[\"\\\\\",[[]]]"; /* ["\\",[[]]] : the string ends after the escaped backslash */
    CHECK_EQ_INT(envelope_depth_ok(s3, strlen(s3), 3), 1);
    CHECK_EQ_INT(envelope_depth_ok(s3, strlen(s3), 2), 0);
    /* siblings do not add up */
    const char *s4 = "[[],[],[],[]]";
    CHECK_EQ_INT(envelope_depth_ok(s4, strlen(s4), 2), 1);
    /* len is honoured (no reading past it) */
    CHECK_EQ_INT(envelope_depth_ok("[[[[", 1, 1), 1);
    /* deep nesting is refused without recursion */
    size_t n = 200000;
    char *deep = malloc(n);
    memset(deep, '[', n);
    CHECK_EQ_INT(envelope_depth_ok(deep, n, 1000), 0);
    CHECK_EQ_INT(envelope_depth_ok(deep, n, (long long)n), 1);
    free(deep);
}

/* As the daemon runs it: inside a json_arena batch with env.arena set (the tree is not walked
 * to be freed; json_arena_end drops it). Lines are the same; valgrind sees no leak. */
static void test_in_arena(void)
{
    json_arena_install();
    struct json_arena arena;
    json_arena_init(&arena, 1 << 20);
    struct envelope env;
    struct envelope_result res;
    struct pipeline_batch batch;
    envelope_init(&env, &cfg_main);
    env.arena = 1;
    envelope_result_init(&res);
    pipeline_batch_init(&batch);
    const char *body = "{\"appName\":\"wwe_ui\",\"batchId\":\"arena\",\"properties\":{\"connId\":\"c\"},"
                       "\"traces\":[{\"msg\":\"one\"},{\"msg\":\"two\",\"level\":\"warn\"}],\"events\":[{\"name\":\"e\"}]}";
    for (int i = 0; i < 50; i++) {
        envelope_result_reset(&res);
        pipeline_batch_reset(&batch);
        json_arena_begin(&arena);
        envelope_process(&env, body, strlen(body), &ID, NOW, &batch, &res);
        json_arena_end(&arena);
        CHECK_EQ_INT(res.accepted, 3);
        CHECK_EQ_INT(batch.count, 3);
    }
    struct buf kept;
    buf_init(&kept);
    buf_append(&kept, batch.records.p, batch.records.len);
    /* an error answer in the arena too */
    envelope_result_reset(&res);
    pipeline_batch_reset(&batch);
    json_arena_begin(&arena);
    envelope_process(&env, "{\"appName\":\"nope\"}", 18, &ID, NOW, &batch, &res);
    json_arena_end(&arena);
    CHECK_EQ_INT(res.status, 403);
    pipeline_batch_free(&batch);
    envelope_result_free(&res);
    envelope_free(&env);
    json_arena_free(&arena);
    /* the same body outside the arena gives the same records (rid is stable by batchId) */
    struct run a;
    run(&a, &cfg_main, body, &ID);
    CHECK_EQ_INT(a.batch.records.len, kept.len);
    CHECK(kept.len && a.batch.records.len == kept.len && !memcmp(a.batch.records.p, kept.p, kept.len));
    run_free(&a);
    buf_free(&kept);
}

/* Invalid UTF-8 anywhere in a client string is replaced by U+FFFD; the record is kept. */
static void test_invalid_utf8_replaced(void)
{
    struct run r;
    run(&r, &cfg_main, "{\"appName\":\"wwe_ui\",\"traces\":[{\"msg\":\"a\xff\xc3(b\xed\xa0\x80" "c\"}],"
                       "\"events\":[{\"name\":\"e\xe2\x82\"}]}", &ID);
    CHECK_EQ_INT(r.res.status, 0);
    CHECK_EQ_INT(r.res.accepted, 2);
    if (r.n == 2) {
        CHECK_EQ_STR(json_string_value(json_object_get(r.line[0], "msg")),
                     "a\xef\xbf\xbd\xef\xbf\xbd(b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "c");
        CHECK_EQ_STR(json_string_value(json_object_get(r.line[1], "name")), "e\xef\xbf\xbd");
    }
    run_free(&r);
}

int main(void)
{
    char err[512];
    if (config_load(&cfg_main, kv_get, (void *)main_env, err, sizeof(err))) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    size_t o = (size_t)snprintf(trunc_contracts, sizeof(trunc_contracts),
                                "[{\"appName\":\"wwe_ui\",\"properties\":[\"connId\"]},{\"appName\":\"many\",\"properties\":[");
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(trunc_contracts + o, sizeof(trunc_contracts) - o, "%s\"p%02d\"", i ? "," : "", i);
    snprintf(trunc_contracts + o, sizeof(trunc_contracts) - o, "]}]");
    if (config_load(&cfg_trunc, kv_get, trunc_env, err, sizeof(err))) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    RUN(test_line_fields);
    RUN(test_ts);
    RUN(test_level);
    RUN(test_properties);
    RUN(test_too_many_properties);
    RUN(test_identity_keys_ignored);
    RUN(test_rid);
    RUN(test_rejections);
    RUN(test_huge_numbers);
    RUN(test_envelope_errors);
    RUN(test_render);
    RUN(test_truncation);
    RUN(test_injection);
    RUN(test_seq);
    RUN(test_depth_ok);
    RUN(test_invalid_utf8_replaced);
    RUN(test_in_arena);
    config_free(&cfg_main);
    config_free(&cfg_trunc);
    UNIT_DONE("test_envelope");
}
