/* config.c - the table of every variable and its loader (see config.h).
 * Add a variable here and it is parsed, bounded, documented and freed everywhere. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "contract_regex.h"
#include "prom.h"

enum cfg_type { CFG_INT, CFG_STR, CFG_ENUM, CFG_JSON_OBJECT, CFG_JSON_ARRAY };

struct cfg_entry {
    const char *name;
    enum cfg_type type;
    size_t offset;
    const char *def;
    long long min, max; /* CFG_INT bounds */
    const char *choices; /* CFG_ENUM: "a|b|c" (case-insensitive) */
    const char *doc;
};

#define OFF(f) offsetof(struct tlm_config, f)
#define I(n, f, d, lo, hi, doc) {n, CFG_INT, OFF(f), d, lo, hi, NULL, doc}
#define S(n, f, d, doc) {n, CFG_STR, OFF(f), d, 0, 0, NULL, doc}
#define E(n, f, d, ch, doc) {n, CFG_ENUM, OFF(f), d, 0, 0, ch, doc}
#define JO(n, f, d, doc) {n, CFG_JSON_OBJECT, OFF(f), d, 0, 0, NULL, doc}
#define JA(n, f, d, doc) {n, CFG_JSON_ARRAY, OFF(f), d, 0, 0, NULL, doc}
#define MiB (1024LL * 1024LL)

static const char default_contracts[] =
    "[{\"appName\":\"wwe_ui\","
    "\"properties\":[\"connId\",\"agentSessionId\",\"browserSessionId\",\"interactionId\",\"POC_override\"],"
    "\"monitoredMetrics\":[{\"name\":\"http_sync_req_StartContactCenterSession\",\"value\":2,\"type\":\"gt\"},"
    "{\"name\":\"http_sync_req_AttachUserData\",\"value\":5222000,\"type\":\"lt\"}],"
    "\"monitoredEvents\":[\"error_.*\",\"disaster_recovery_.*\",\"performance_worker_major\","
    "\"insecure_external_website_config_issue\",\"statistic_object_config_issue\","
    "\"business_attribute_option_config_issue\",\"softphone_connection_lost\"]},"
    "{\"appName\":\"softphone\","
    "\"properties\":[\"ThisDN\",\"call_id\",\"call_uuid\",\"region\",\"level\",\"msgId\",\"sepsessionid\",\"value__NUM\"],"
    "\"apdex\":{\"metrics\":{\"sip_call_mos\":{\"satisfiedTH\":3.6,\"toleratedTH\":2,\"isExtended\":true}}}}]";

static const struct cfg_entry table[] = {
    S("TELEMETRY_LISTEN", listen, "0.0.0.0", "Address both daemons bind (ingest API and logshipper metrics)."),
    I("TELEMETRY_PORT", port, "8107", 1, 65535, "Ingest port: HTTP batches, WebSocket stream, health."),
    I("TELEMETRY_METRICS_PORT", metrics_port, "9107", 1, 65535, "Logshipper port: /metrics and health."),
    S("TELEMETRY_SOCKET", socket_path, "/run/tlm/tlm.sock", "UNIX socket between ingest and logshipper (shared emptyDir)."),
    E("TELEMETRY_CONFIG_SERVICE", config_service, "env", "env", "Where configuration comes from; only `env` (these variables) is supported."),
    S("TELEMETRY_SERVICES_AUTH", auth_url, "http://gauth-auth.gauth.svc", "GAuth base URL; the ingest calls {base}/auth/v3/userinfo and {base}/auth/v3/ping."),
    S("TELEMETRY_AUTH_CLIENT_ID", auth_client_id, "", "GAuth client id of this service."),
    S("TELEMETRY_AUTH_CLIENT_SECRET", auth_client_secret, "", "GAuth client secret (from a Secret; never logged)."),
    I("TELEMETRY_AUTH_TIMEOUT_MS", auth_timeout_ms, "5000", 100, 120000, "Timeout of one GAuth call; past it the client gets 503 with Retry-After."),
    I("TELEMETRY_AUTH_CACHE_TTL", auth_cache_ttl_s, "300", 0, 86400, "Seconds a validated token is trusted without asking GAuth again."),
    I("TELEMETRY_AUTH_NEGATIVE_TTL", auth_negative_ttl_s, "10", 0, 3600, "Seconds a token GAuth refused is refused without asking again."),
    I("TELEMETRY_AUTH_CACHE_SIZE", auth_cache_size, "100000", 1, 10000000, "Most tokens cached (keyed by a keyed hash, never the token)."),
    I("TELEMETRY_AUTH_MAX_INFLIGHT", auth_max_inflight, "256", 1, 100000, "Most concurrent GAuth calls; more wait in a queue."),
    JO("TELEMETRY_CONFIG_TENANTS", tenants, "{}", "JSON object: contactCenterId -> tenant name. A token of another contact center gets 403."),
    JO("TELEMETRY_CONFIG_CORS", cors, "{}", "JSON object: contactCenterId -> {\"urls\":[exact origins],\"domains\":[suffixes]}."),
    S("TELEMETRY_CORS_DOMAIN", cors_domain, "", "A domain suffix allowed for every tenant (empty: none)."),
    JA("TELEMETRY_CONFIG_CONTRACTS", contracts, default_contracts, "JSON array of contracts, one per appName (see README, Contracts)."),
    I("TELEMETRY_MAX_SESSION", max_session, "10000", 1, 10000000, "Most concurrent authenticated sessions (WebSocket connections and recently seen HTTP tokens)."),
    I("TELEMETRY_RECORD_MIN_INTERVAL", record_min_interval_ms, "-1", -1, 3600000, "Least milliseconds between two batches of one session (-1: off)."),
    I("TELEMETRY_AUTH_MIN_INTERVAL", auth_min_interval_ms, "-1", -1, 3600000, "Least milliseconds between two authentications of one session (-1: off)."),
    I("TELEMETRY_SESSION_TTL", session_ttl_s, "300", 1, 86400, "Seconds an HTTP token counts as a session after its last request."),
    I("TELEMETRY_TRACES_THRESHOLD", traces_threshold, "200000", 1, 100000000, "Most records the ingest holds un-acknowledged; past it clients get 503 / flow control."),
    I("TELEMETRY_BUFFER_MAX_BYTES", buffer_max_bytes, "134217728", 1048576, 68719476736LL, "Most bytes of encoded records the ingest holds un-acknowledged."),
    I("TELEMETRY_TRACES_BULK_SIZE", bulk_size, "10000", 1, 1000000, "Most records in one frame to the logshipper and one stdout write batch."),
    I("TELEMETRY_TRACES_BULK_TIME", bulk_time_ms, "1000", 0, 60000, "Most milliseconds a record waits in the ingest before it is sent (frames normally leave at the end of each event-loop pass)."),
    I("TELEMETRY_ACK_TIMEOUT_MS", ack_timeout_ms, "10000", 100, 600000, "Most milliseconds a request waits for the logshipper's ack before 503 (records stay buffered and are still written)."),
    I("TELEMETRY_DRAIN_TIMEOUT", drain_timeout_s, "20", 0, 3600, "Seconds a SIGTERM waits for in-flight requests and acks before exiting."),
    I("TELEMETRY_SHIPPER_BUFFER_BYTES", shipper_buffer_bytes, "33554432", 65536, 17179869184LL, "Logshipper: most bytes of lines waiting for stdout before it stops reading the socket."),
    E("TELEMETRY_TRACES_PROVIDER", traces_provider, "Console", "Console|Journal", "Where records go: Console (stdout JSON lines) or Journal (systemd journal, if built with libsystemd)."),
    I("TELEMETRY_METRICS_THRESHOLD", metrics_threshold, "600000", 1, 100000000, "Most labelled metric series; new series past it are dropped and counted."),
    I("TELEMETRY_HEALTH_TIMER", health_timer_s, "30", 1, 3600, "Seconds between dependency checks (GAuth ping, logshipper link)."),
    I("TELEMETRY_MAX_BODY_BYTES", max_body_bytes, "1048576", 1024, 1073741824, "Most bytes of a request body as sent (413 past it)."),
    I("TELEMETRY_MAX_DECOMPRESSED_BYTES", max_decompressed_bytes, "8388608", 1024, 1073741824, "Most bytes of a gzip body once inflated (413 past it)."),
    I("TELEMETRY_MAX_RECORDS", max_records, "5000", 1, 1000000, "Most records (traces + events + metrics) in one batch (413 past it)."),
    I("TELEMETRY_MAX_STRING_BYTES", max_string_bytes, "8192", 16, 1048576, "Longest string value in a record (the record is rejected past it)."),
    I("TELEMETRY_MAX_PROPERTIES", max_properties, "64", 0, 10000, "Most properties on one record after merging the envelope's (rejected past it)."),
    I("TELEMETRY_MAX_JSON_DEPTH", max_json_depth, "16", 2, 1000, "Deepest nesting of arrays and objects in a body (400 past it)."),
    I("TELEMETRY_MAX_HEADER_BYTES", max_header_bytes, "8192", 1024, 65535, "Most bytes of request headers (libwebsockets holds at most 65535)."),
    I("TELEMETRY_MAX_CONNECTIONS", max_connections, "20000", 16, 1000000, "Most open client connections of the ingest."),
    I("TELEMETRY_IDLE_TIMEOUT", idle_timeout_s, "30", 1, 3600, "Seconds an HTTP connection may stay idle or send a request slowly."),
    I("TELEMETRY_LINE_MAX_BYTES", line_max_bytes, "16384", 1024, 1048576, "Longest stdout line; longer records have their longest strings cut (\"truncated\":true)."),
    I("TELEMETRY_WS_AUTH_TIMEOUT", ws_auth_timeout_s, "10", 1, 600, "Seconds a WebSocket has to authenticate (close 1008 past it)."),
    I("TELEMETRY_WS_MAX_MESSAGE_BYTES", ws_max_message_bytes, "1048576", 1024, 67108864, "Largest WebSocket message (close 1009 past it)."),
    I("TELEMETRY_WS_WINDOW", ws_window, "8", 1, 1024, "Most un-acknowledged batches per WebSocket; the server stops reading past it."),
    I("TELEMETRY_WS_PING_INTERVAL", ws_ping_interval_s, "30", 1, 3600, "Seconds between server pings on a quiet WebSocket."),
    I("TELEMETRY_WS_IDLE_TIMEOUT", ws_idle_timeout_s, "120", 1, 86400, "Seconds without any message (pong included) before a WebSocket is closed."),
    I("TELEMETRY_WS_STALL_TIMEOUT", ws_stall_timeout_s, "30", 1, 3600, "Seconds a WebSocket may stay paused (window of un-acked or unread acks, or pipeline full) before close 1013; a close not sent by then drops the connection."),
    E("APP_LOG_LEVEL", app_log_level, "info", "debug|info|warn|warning|error|off", "Level of the daemons' own diagnostics (logger app)."),
    E("API_LOG_LEVEL", api_log_level, "warn", "debug|info|warn|warning|error|off", "Level of per-request diagnostics (logger api)."),
};

static void set_err(char *err, size_t errlen, const char *name, const char *msg)
{
    snprintf(err, errlen, "%s: %s", name, msg);
}

static int parse_int(const struct cfg_entry *e, const char *v, long long *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    int digits = end != v;
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno == ERANGE) {
        set_err(err, errlen, e->name, "out of range");
        return -1;
    }
    if (errno || !digits || *end) {
        char msg[160];
        snprintf(msg, sizeof(msg), "column %ld: not an integer", (long)(end - v) + 1);
        set_err(err, errlen, e->name, msg);
        return -1;
    }
    if (n < e->min || n > e->max) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%lld is out of range [%lld, %lld]", n, e->min, e->max);
        set_err(err, errlen, e->name, msg);
        return -1;
    }
    *out = n;
    return 0;
}

static int parse_enum(const struct cfg_entry *e, const char *v, char *err, size_t errlen)
{
    const char *p = e->choices;
    size_t vlen = strlen(v);
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vlen && strncasecmp(p, v, n) == 0)
            return 0;
        p += n + (bar ? 1 : 0);
    }
    char msg[200];
    snprintf(msg, sizeof(msg), "\"%.40s\" is not one of %s", v, e->choices);
    set_err(err, errlen, e->name, msg);
    return -1;
}

static int parse_json(const struct cfg_entry *e, const char *v, json_t **out, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loads(v, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        snprintf(err, errlen, "%s: line %d, column %d: %s", e->name, je.line, je.column, je.text);
        return -1;
    }
    int want_obj = e->type == CFG_JSON_OBJECT;
    if (want_obj ? !json_is_object(j) : !json_is_array(j)) {
        set_err(err, errlen, e->name, want_obj ? "line 1, column 1: must be a JSON object"
                                               : "line 1, column 1: must be a JSON array");
        json_decref(j);
        return -1;
    }
    *out = j;
    return 0;
}

/* Shape checks of the JSON documents, with the path of the first error. */
static int check_tenants(json_t *t, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach(t, k, v) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            snprintf(err, errlen, "TELEMETRY_CONFIG_TENANTS: at [\"%.64s\"]: tenant name must be a non-empty string", k);
            return -1;
        }
    }
    return 0;
}

static int check_string_array(json_t *a, const char *var, const char *path, char *err, size_t errlen)
{
    if (!json_is_array(a)) {
        snprintf(err, errlen, "%s: at %s: must be an array of strings", var, path);
        return -1;
    }
    size_t i;
    json_t *s;
    json_array_foreach(a, i, s) {
        if (!json_is_string(s)) {
            snprintf(err, errlen, "%s: at %s[%zu]: must be a string", var, path, i);
            return -1;
        }
    }
    return 0;
}

/* Each monitoredEvents pattern compiles as the logshipper will compile it. */
static int check_patterns(json_t *a, const char *path, char *err, size_t errlen)
{
    size_t i, off;
    json_t *s;
    char why[256];
    json_array_foreach(a, i, s) {
        pcre2_code *re = contract_regex_compile(json_string_value(s), json_string_length(s), &off, why, sizeof(why));
        if (!re) {
            snprintf(err, errlen, "TELEMETRY_CONFIG_CONTRACTS: at %s[%zu]: offset %zu: %s", path, i, off, why);
            return -1;
        }
        pcre2_code_free(re);
    }
    return 0;
}

static int check_cors(json_t *c, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    char path[160];
    json_object_foreach(c, k, v) {
        if (!json_is_object(v)) {
            snprintf(err, errlen, "TELEMETRY_CONFIG_CORS: at [\"%.64s\"]: must be an object with urls and domains", k);
            return -1;
        }
        const char *key;
        json_t *list;
        json_object_foreach(v, key, list) {
            if (strcmp(key, "urls") && strcmp(key, "domains")) {
                snprintf(err, errlen, "TELEMETRY_CONFIG_CORS: at [\"%.64s\"].%.32s: unknown key (urls, domains)", k, key);
                return -1;
            }
            snprintf(path, sizeof(path), "[\"%.64s\"].%s", k, key);
            if (check_string_array(list, "TELEMETRY_CONFIG_CORS", path, err, errlen))
                return -1;
        }
    }
    return 0;
}

static int check_number_field(json_t *o, const char *key, const char *path, int required, char *err, size_t errlen)
{
    json_t *n = json_object_get(o, key);
    if (!n && !required)
        return 0;
    if (!json_is_number(n)) {
        snprintf(err, errlen, "TELEMETRY_CONFIG_CONTRACTS: at %s.%s: must be a number", path, key);
        return -1;
    }
    return 0;
}

static int check_contract(json_t *c, size_t i, char *err, size_t errlen)
{
    const char *var = "TELEMETRY_CONFIG_CONTRACTS";
    char path[256];
    if (!json_is_object(c)) {
        snprintf(err, errlen, "%s: at [%zu]: a contract must be an object", var, i);
        return -1;
    }
    json_t *app = json_object_get(c, "appName");
    if (!json_is_string(app) || json_string_length(app) == 0) {
        snprintf(err, errlen, "%s: at [%zu].appName: must be a non-empty string", var, i);
        return -1;
    }
    json_t *v;
    if ((v = json_object_get(c, "properties"))) {
        snprintf(path, sizeof(path), "[%zu].properties", i);
        if (check_string_array(v, var, path, err, errlen))
            return -1;
    }
    char prefix[256];
    prom_sanitize_name(json_string_value(app), prefix, sizeof(prefix));
    if (!strcmp(prefix, "telemetry")) {
        snprintf(err, errlen, "%s: at [%zu].appName: \"telemetry\" is reserved for the service's own metrics", var, i);
        return -1;
    }
    if ((v = json_object_get(c, "monitoredEvents"))) {
        snprintf(path, sizeof(path), "[%zu].monitoredEvents", i);
        if (check_string_array(v, var, path, err, errlen) || check_patterns(v, path, err, errlen))
            return -1;
    }
    if ((v = json_object_get(c, "monitoredMetrics"))) {
        if (!json_is_array(v)) {
            snprintf(err, errlen, "%s: at [%zu].monitoredMetrics: must be an array", var, i);
            return -1;
        }
        size_t j;
        json_t *m;
        json_array_foreach(v, j, m) {
            snprintf(path, sizeof(path), "[%zu].monitoredMetrics[%zu]", i, j);
            json_t *name = json_object_get(m, "name"), *type = json_object_get(m, "type");
            if (!json_is_object(m) || !json_is_string(name)) {
                snprintf(err, errlen, "%s: at %s.name: must be a string", var, path);
                return -1;
            }
            if (check_number_field(m, "value", path, 1, err, errlen))
                return -1;
            if (!json_is_string(type) || (strcmp(json_string_value(type), "gt") && strcmp(json_string_value(type), "lt"))) {
                snprintf(err, errlen, "%s: at %s.type: must be \"gt\" or \"lt\"", var, path);
                return -1;
            }
        }
    }
    if ((v = json_object_get(c, "apdex"))) {
        json_t *metrics = json_object_get(v, "metrics");
        if (!json_is_object(v) || !json_is_object(metrics)) {
            snprintf(err, errlen, "%s: at [%zu].apdex.metrics: must be an object", var, i);
            return -1;
        }
        const char *name;
        json_t *a;
        json_object_foreach(metrics, name, a) {
            snprintf(path, sizeof(path), "[%zu].apdex.metrics[\"%.64s\"]", i, name);
            if (!json_is_object(a)) {
                snprintf(err, errlen, "%s: at %s: must be an object", var, path);
                return -1;
            }
            if (check_number_field(a, "satisfiedTH", path, 1, err, errlen) ||
                check_number_field(a, "toleratedTH", path, 1, err, errlen))
                return -1;
            json_t *ext = json_object_get(a, "isExtended");
            if (ext && !json_is_boolean(ext)) {
                snprintf(err, errlen, "%s: at %s.isExtended: must be true or false", var, path);
                return -1;
            }
        }
    }
    if ((v = json_object_get(c, "bucketizedMetrics"))) {
        if (!json_is_object(v)) {
            snprintf(err, errlen, "%s: at [%zu].bucketizedMetrics: must be an object: metric name -> [bounds]", var, i);
            return -1;
        }
        const char *name;
        json_t *b;
        json_object_foreach(v, name, b) {
            size_t j;
            json_t *n;
            double prev = 0;
            if (!json_is_array(b) || json_array_size(b) == 0) {
                snprintf(err, errlen, "%s: at [%zu].bucketizedMetrics[\"%.64s\"]: must be a non-empty array of numbers", var, i, name);
                return -1;
            }
            json_array_foreach(b, j, n) {
                if (!json_is_number(n) || (j > 0 && json_number_value(n) <= prev)) {
                    snprintf(err, errlen, "%s: at [%zu].bucketizedMetrics[\"%.64s\"][%zu]: bounds must be ascending numbers", var, i, name, j);
                    return -1;
                }
                prev = json_number_value(n);
            }
        }
    }
    return 0;
}

static int check_contracts(json_t *a, char *err, size_t errlen)
{
    size_t i, j;
    json_t *c;
    json_array_foreach(a, i, c) {
        if (check_contract(c, i, err, errlen))
            return -1;
        const char *app = json_string_value(json_object_get(c, "appName"));
        for (j = 0; j < i; j++)
            if (!strcmp(app, json_string_value(json_object_get(json_array_get(a, j), "appName")))) {
                snprintf(err, errlen, "TELEMETRY_CONFIG_CONTRACTS: at [%zu].appName: \"%.64s\" already has a contract at [%zu]", i, app, j);
                return -1;
            }
    }
    return 0;
}

int config_load(struct tlm_config *cfg, config_getter get, void *ctx, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const struct cfg_entry *e = &table[i];
        const char *v = get ? get(e->name, ctx) : NULL;
        if (!v || !*v)
            v = e->def;
        void *field = (char *)cfg + e->offset;
        switch (e->type) {
        case CFG_INT:
            if (parse_int(e, v, (long long *)field, err, errlen))
                return -1;
            break;
        case CFG_ENUM:
            if (parse_enum(e, v, err, errlen))
                return -1;
            /* fall through */
        case CFG_STR:
            if (!(*(char **)field = strdup(v))) {
                set_err(err, errlen, e->name, "out of memory");
                return -1;
            }
            break;
        case CFG_JSON_OBJECT:
        case CFG_JSON_ARRAY:
            if (parse_json(e, v, (json_t **)field, err, errlen))
                return -1;
            break;
        }
    }
    if (check_tenants(cfg->tenants, err, errlen) || check_cors(cfg->cors, err, errlen) ||
        check_contracts(cfg->contracts, err, errlen))
        return -1;
    return 0;
}

static const char *env_getter(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

int config_load_env(struct tlm_config *cfg, char *err, size_t errlen)
{
    return config_load(cfg, env_getter, NULL, err, errlen);
}

void config_free(struct tlm_config *cfg)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        void *field = (char *)cfg + table[i].offset;
        switch (table[i].type) {
        case CFG_STR:
        case CFG_ENUM:
            free(*(char **)field);
            *(char **)field = NULL;
            break;
        case CFG_JSON_OBJECT:
        case CFG_JSON_ARRAY:
            json_decref(*(json_t **)field);
            *(json_t **)field = NULL;
            break;
        case CFG_INT:
            break;
        }
    }
}

void config_print_markdown(void)
{
    printf("| Variable | Default | Meaning |\n|---|---|---|\n");
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const struct cfg_entry *e = &table[i];
        const char *def = e->def;
        if (e->type == CFG_JSON_ARRAY && strlen(def) > 40)
            def = "(the two sample contracts: wwe_ui, softphone)";
        printf("| `%s` | `%s` | %s |\n", e->name, def, e->doc);
    }
}

const char *config_tenant_name(const struct tlm_config *cfg, const char *ccid)
{
    return json_string_value(json_object_get(cfg->tenants, ccid));
}

json_t *config_contract(const struct tlm_config *cfg, const char *app, size_t len)
{
    size_t i;
    json_t *c;
    json_array_foreach(cfg->contracts, i, c) {
        json_t *name = json_object_get(c, "appName");
        if (json_string_length(name) == len && memcmp(json_string_value(name), app, len) == 0)
            return c;
    }
    return NULL;
}
