/* test_config.c - common/config.c: defaults, every kind of error naming its variable (JSON
 * syntax with line and column, JSON type, int range and syntax, enums, the shape of tenants,
 * CORS and contracts with the position of the error), lookups, config_free on failures, and
 * both daemons refusing a bad configuration at start (exit 2, stderr names the position). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../common/config.h"
#include "unit.h"

#define CC "2868802f-1763-4ecd-94f6-203400001200"

/* A getter over a NULL-terminated table of name/value pairs. */
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

static char err[512];

/* Loads with one variable set; returns config_load's result (cfg freed unless keep). */
static int load_one(const char *name, const char *value)
{
    struct tlm_config cfg;
    struct kv t[] = {{name, value}, {NULL, NULL}};
    err[0] = '\0';
    int rc = config_load(&cfg, kv_get, t, err, sizeof(err));
    config_free(&cfg);
    return rc;
}

static int starts_with(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

static void test_defaults(void)
{
    struct tlm_config cfg;
    err[0] = '\0';
    CHECK_EQ_INT(config_load(&cfg, NULL, NULL, err, sizeof(err)), 0);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_STR(cfg.listen, "0.0.0.0");
    CHECK_EQ_INT(cfg.port, 8107);
    CHECK_EQ_INT(cfg.metrics_port, 9107);
    CHECK_EQ_STR(cfg.socket_path, "/run/tlm/tlm.sock");
    CHECK_EQ_STR(cfg.config_service, "env");
    CHECK_EQ_STR(cfg.auth_url, "http://gauth-auth.gauth.svc");
    CHECK_EQ_STR(cfg.auth_client_secret, "");
    CHECK_EQ_INT(cfg.auth_timeout_ms, 5000);
    CHECK_EQ_INT(cfg.max_session, 10000);
    CHECK_EQ_INT(cfg.record_min_interval_ms, -1);
    CHECK_EQ_INT(cfg.auth_min_interval_ms, -1);
    CHECK_EQ_INT(cfg.traces_threshold, 200000);
    CHECK_EQ_INT(cfg.bulk_size, 10000);
    CHECK_EQ_INT(cfg.bulk_time_ms, 1000);
    CHECK_EQ_INT(cfg.metrics_threshold, 600000);
    CHECK_EQ_INT(cfg.health_timer_s, 30);
    CHECK_EQ_INT(cfg.line_max_bytes, 16384);
    CHECK_EQ_INT(cfg.max_json_depth, 16);
    CHECK_EQ_STR(cfg.traces_provider, "Console");
    CHECK_EQ_STR(cfg.app_log_level, "info");
    CHECK_EQ_STR(cfg.api_log_level, "warn");
    CHECK_EQ_STR(cfg.cors_domain, "");
    CHECK(json_is_object(cfg.tenants) && json_object_size(cfg.tenants) == 0);
    CHECK(json_is_object(cfg.cors) && json_object_size(cfg.cors) == 0);
    CHECK(json_is_array(cfg.contracts) && json_array_size(cfg.contracts) == 2);
    /* the sample contracts */
    json_t *w = config_contract(&cfg, "wwe_ui", 6), *s = config_contract(&cfg, "softphone", 9);
    CHECK(w != NULL && s != NULL && w != s);
    CHECK_EQ_STR(json_string_value(json_object_get(w, "appName")), "wwe_ui");
    CHECK_EQ_INT(json_array_size(json_object_get(w, "monitoredMetrics")), 2);
    CHECK(json_is_object(json_object_get(s, "apdex")));
    /* lengths are exact: no prefix or longer-name matches; the name need not be terminated */
    CHECK(config_contract(&cfg, "wwe_ui", 3) == NULL);
    CHECK(config_contract(&cfg, "wwe_uix", 7) == NULL);
    CHECK(config_contract(&cfg, "wwe_uiXYZ", 6) == w);
    CHECK(config_contract(&cfg, "WWE_UI", 6) == NULL);
    CHECK(config_contract(&cfg, "", 0) == NULL);
    CHECK(config_tenant_name(&cfg, CC) == NULL);
    config_free(&cfg);
    CHECK(cfg.listen == NULL && cfg.contracts == NULL && cfg.tenants == NULL);
    config_free(&cfg); /* twice is harmless */

    /* an empty value means the default */
    struct kv t[] = {{"TELEMETRY_PORT", ""}, {"TELEMETRY_TRACES_PROVIDER", ""}, {"TELEMETRY_CONFIG_TENANTS", ""}, {NULL, NULL}};
    CHECK_EQ_INT(config_load(&cfg, kv_get, t, err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg.port, 8107);
    CHECK_EQ_STR(cfg.traces_provider, "Console");
    CHECK(json_is_object(cfg.tenants));
    config_free(&cfg);
}

static void test_values_taken(void)
{
    struct tlm_config cfg;
    struct kv t[] = {{"TELEMETRY_PORT", "8080"},
                     {"TELEMETRY_LISTEN", "127.0.0.1"},
                     {"TELEMETRY_RECORD_MIN_INTERVAL", "-1"},
                     {"TELEMETRY_AUTH_MIN_INTERVAL", "250"},
                     {"TELEMETRY_BUFFER_MAX_BYTES", "68719476736"}, /* the upper bound itself */
                     {"TELEMETRY_MAX_PROPERTIES", "0"},             /* the lower bound itself */
                     {"TELEMETRY_TRACES_PROVIDER", "Journal"},
                     {"APP_LOG_LEVEL", "DEBUG"},
                     {"API_LOG_LEVEL", "warning"},
                     {"TELEMETRY_CORS_DOMAIN", "example.com"},
                     {"TELEMETRY_CONFIG_TENANTS", "{\"" CC "\":\"pulse\",\"other\":\"blue\"}"},
                     {"TELEMETRY_CONFIG_CONTRACTS", "[{\"appName\":\"a\"},{\"appName\":\"b\",\"properties\":[\"x\"]}]"},
                     {NULL, NULL}};
    CHECK_EQ_INT(config_load(&cfg, kv_get, t, err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg.port, 8080);
    CHECK_EQ_STR(cfg.listen, "127.0.0.1");
    CHECK_EQ_INT(cfg.auth_min_interval_ms, 250);
    CHECK_EQ_INT(cfg.buffer_max_bytes, 68719476736LL);
    CHECK_EQ_INT(cfg.max_properties, 0);
    CHECK_EQ_STR(cfg.traces_provider, "Journal");
    CHECK_EQ_STR(cfg.app_log_level, "DEBUG");
    CHECK_EQ_STR(cfg.api_log_level, "warning");
    CHECK_EQ_STR(cfg.cors_domain, "example.com");
    CHECK_EQ_STR(config_tenant_name(&cfg, CC), "pulse");
    CHECK_EQ_STR(config_tenant_name(&cfg, "other"), "blue");
    CHECK(config_tenant_name(&cfg, "2868802F-1763-4ECD-94F6-203400001200") == NULL);
    CHECK(config_tenant_name(&cfg, "") == NULL);
    CHECK(config_contract(&cfg, "wwe_ui", 6) == NULL); /* the defaults are replaced, not merged */
    json_t *b = config_contract(&cfg, "b", 1);
    CHECK(b == json_array_get(cfg.contracts, 1));
    CHECK(config_contract(&cfg, "a", 1) == json_array_get(cfg.contracts, 0));
    config_free(&cfg);
}

/* JSON syntax errors: "VAR: line L, column C: <jansson text>", multi-line input. */
static void test_json_syntax_errors(void)
{
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_TENANTS", "{\n  \"" CC "\": \"pulse\",\n  \"x\": @\n}"), -1);
    CHECK(starts_with(err, "TELEMETRY_CONFIG_TENANTS: line 3, column 8: "));
    CHECK(strstr(err, "invalid token") != NULL);

    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CORS", "{\n\n\n     @}"), -1);
    CHECK(starts_with(err, "TELEMETRY_CONFIG_CORS: line 4, column 6: "));

    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CONTRACTS", "[\n  {\"appName\": \"a\"},\n  {\"appName\": #}\n]"), -1);
    CHECK(starts_with(err, "TELEMETRY_CONFIG_CONTRACTS: line 3, column 15: "));

    /* unterminated document: the error is at the end */
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_TENANTS", "{\"a\":\"b\""), -1);
    CHECK(starts_with(err, "TELEMETRY_CONFIG_TENANTS: line 1, column "));
    /* duplicate keys are an error (JSON_REJECT_DUPLICATES), with the position */
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_TENANTS", "{\n  \"a\": \"x\",\n  \"a\": \"y\"\n}"), -1);
    CHECK(starts_with(err, "TELEMETRY_CONFIG_TENANTS: line 3, column 5: "));
    CHECK(strstr(err, "duplicate") != NULL);
    /* a bare string is not a document */
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CORS", "\"str\""), -1);
    CHECK(starts_with(err, "TELEMETRY_CONFIG_CORS: line 1, column "));
}

static void test_json_type_errors(void)
{
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_TENANTS", "[]"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_TENANTS: line 1, column 1: must be a JSON object");
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CORS", "[{\"urls\":[]}]"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_CORS: line 1, column 1: must be a JSON object");
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CONTRACTS", "{\"appName\":\"a\"}"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_CONTRACTS: line 1, column 1: must be a JSON array");
    /* an empty contracts array is valid: no app is accepted */
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CONTRACTS", "[]"), 0);
}

static void test_int_errors(void)
{
    CHECK_EQ_INT(load_one("TELEMETRY_PORT", "70000"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_PORT: 70000 is out of range [1, 65535]");
    CHECK_EQ_INT(load_one("TELEMETRY_PORT", "0"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_PORT: 0 is out of range [1, 65535]");
    CHECK_EQ_INT(load_one("TELEMETRY_PORT", "65535"), 0);
    CHECK_EQ_INT(load_one("TELEMETRY_PORT", "1"), 0);
    CHECK_EQ_INT(load_one("TELEMETRY_PORT", "abc"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_PORT: column 1: not an integer");
    CHECK_EQ_INT(load_one("TELEMETRY_PORT", "12x"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_PORT: column 3: not an integer");
    CHECK_EQ_INT(load_one("TELEMETRY_PORT", "80 80"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_PORT: column 4: not an integer");
    CHECK_EQ_INT(load_one("TELEMETRY_PORT", "1.5"), -1);
    CHECK(starts_with(err, "TELEMETRY_PORT: column 2: "));
    CHECK_EQ_INT(load_one("TELEMETRY_METRICS_PORT", "99999999999999999999999"), -1); /* overflow */
    CHECK(starts_with(err, "TELEMETRY_METRICS_PORT: "));
    CHECK_EQ_INT(load_one("TELEMETRY_RECORD_MIN_INTERVAL", "-2"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_RECORD_MIN_INTERVAL: -2 is out of range [-1, 3600000]");
    CHECK_EQ_INT(load_one("TELEMETRY_BUFFER_MAX_BYTES", "68719476737"), -1);
    CHECK(starts_with(err, "TELEMETRY_BUFFER_MAX_BYTES: 68719476737 is out of range"));
    CHECK_EQ_INT(load_one("TELEMETRY_LINE_MAX_BYTES", "1023"), -1);
    CHECK(starts_with(err, "TELEMETRY_LINE_MAX_BYTES: "));
    /* trailing blanks are tolerated (a common copy-paste accident in manifests) */
    CHECK_EQ_INT(load_one("TELEMETRY_PORT", "8080 "), 0);
    /* but a value of blanks only holds no number: it must not silently become 0 (an error,
     * or the default like an empty value) */
    struct tlm_config cfg;
    struct kv t[] = {{"TELEMETRY_MAX_PROPERTIES", "  "}, {"TELEMETRY_AUTH_CACHE_TTL", "\t"}, {NULL, NULL}};
    int rc = config_load(&cfg, kv_get, t, err, sizeof(err));
    CHECK(rc == -1 || cfg.max_properties == 64);
    CHECK(rc == -1 || cfg.auth_cache_ttl_s == 300);
    if (rc == 0)
        fprintf(stderr, "  blank values loaded as TELEMETRY_MAX_PROPERTIES=%lld TELEMETRY_AUTH_CACHE_TTL=%lld\n",
                cfg.max_properties, cfg.auth_cache_ttl_s);
    config_free(&cfg);
}

static void test_enum_errors(void)
{
    CHECK_EQ_INT(load_one("TELEMETRY_TRACES_PROVIDER", "Journal"), 0);
    CHECK_EQ_INT(load_one("TELEMETRY_TRACES_PROVIDER", "console"), 0);
    CHECK_EQ_INT(load_one("TELEMETRY_TRACES_PROVIDER", "file"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_TRACES_PROVIDER: \"file\" is not one of Console|Journal");
    CHECK_EQ_INT(load_one("TELEMETRY_TRACES_PROVIDER", "Consol"), -1);   /* a prefix */
    CHECK_EQ_INT(load_one("TELEMETRY_TRACES_PROVIDER", "ConsoleX"), -1); /* longer */
    CHECK_EQ_INT(load_one("TELEMETRY_TRACES_PROVIDER", "Console|Journal"), -1);
    CHECK(starts_with(err, "TELEMETRY_TRACES_PROVIDER: "));
    CHECK_EQ_INT(load_one("APP_LOG_LEVEL", "debug"), 0);
    CHECK_EQ_INT(load_one("APP_LOG_LEVEL", "off"), 0);
    CHECK_EQ_INT(load_one("APP_LOG_LEVEL", "verbose"), -1);
    CHECK_EQ_STR(err, "APP_LOG_LEVEL: \"verbose\" is not one of debug|info|warn|warning|error|off");
    CHECK_EQ_INT(load_one("API_LOG_LEVEL", "trace"), -1);
    CHECK(starts_with(err, "API_LOG_LEVEL: "));
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_SERVICE", "consul"), -1);
    CHECK(starts_with(err, "TELEMETRY_CONFIG_SERVICE: "));
}

static void test_tenant_and_cors_shape(void)
{
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_TENANTS", "{\"" CC "\":\"\"}"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_TENANTS: at [\"" CC "\"]: tenant name must be a non-empty string");
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_TENANTS", "{\"a\":\"x\",\"b\":5}"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_TENANTS: at [\"b\"]: tenant name must be a non-empty string");

    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CORS", "{\"cc\":{\"urls\":[\"https://a.example\"],\"methods\":[]}}"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_CORS: at [\"cc\"].methods: unknown key (urls, domains)");
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CORS", "{\"cc\":{\"urls\":\"https://a.example\"}}"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_CORS: at [\"cc\"].urls: must be an array of strings");
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CORS", "{\"cc\":{\"domains\":[\"a.example\",7]}}"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_CORS: at [\"cc\"].domains[1]: must be a string");
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CORS", "{\"cc\":[\"https://a.example\"]}"), -1);
    CHECK_EQ_STR(err, "TELEMETRY_CONFIG_CORS: at [\"cc\"]: must be an object with urls and domains");
    CHECK_EQ_INT(load_one("TELEMETRY_CONFIG_CORS", "{\"cc\":{\"urls\":[],\"domains\":[\"x.example\"]},\"dd\":{}}"), 0);
}

static void test_contract_shape(void)
{
    const char *V = "TELEMETRY_CONFIG_CONTRACTS";
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"[{\"appName\":\"a\"},{\"appName\":\"b\",\"monitoredMetrics\":[{\"name\":\"m\",\"value\":1,\"type\":\"eq\"}]}]",
         "at [1].monitoredMetrics[0].type: must be \"gt\" or \"lt\""},
        {"[{\"appName\":\"a\",\"monitoredMetrics\":[{\"name\":\"m\",\"value\":1,\"type\":\"gt\"},{\"name\":\"n\",\"type\":\"lt\"}]}]",
         "at [0].monitoredMetrics[1].value: must be a number"},
        {"[{\"appName\":\"a\",\"monitoredMetrics\":[{\"value\":1,\"type\":\"gt\"}]}]",
         "at [0].monitoredMetrics[0].name: must be a string"},
        {"[{\"appName\":\"a\",\"monitoredMetrics\":[\"m\"]}]", "at [0].monitoredMetrics[0].name: must be a string"},
        {"[{\"appName\":\"a\",\"monitoredMetrics\":{}}]", "at [0].monitoredMetrics: must be an array"},
        {"[\"wwe_ui\"]", "at [0]: a contract must be an object"},
        {"[{\"appName\":\"a\"},{\"properties\":[]}]", "at [1].appName: must be a non-empty string"},
        {"[{\"appName\":\"\"}]", "at [0].appName: must be a non-empty string"},
        {"[{\"appName\":\"a\",\"properties\":[\"x\",1]}]", "at [0].properties[1]: must be a string"},
        {"[{\"appName\":\"a\",\"properties\":\"x\"}]", "at [0].properties: must be an array of strings"},
        {"[{\"appName\":\"a\",\"monitoredEvents\":[null]}]", "at [0].monitoredEvents[0]: must be a string"},
        {"[{\"appName\":\"a\"},{\"appName\":\"b\"},{\"appName\":\"a\"}]",
         "at [2].appName: \"a\" already has a contract at [0]"},
        {"[{\"appName\":\"a\",\"apdex\":{\"metrics\":{\"mos\":{\"satisfiedTH\":3.6}}}}]",
         "at [0].apdex.metrics[\"mos\"].toleratedTH: must be a number"},
        {"[{\"appName\":\"a\",\"apdex\":{\"metrics\":{\"mos\":{\"satisfiedTH\":\"3\",\"toleratedTH\":2}}}}]",
         "at [0].apdex.metrics[\"mos\"].satisfiedTH: must be a number"},
        {"[{\"appName\":\"a\",\"apdex\":{\"metrics\":{\"mos\":{\"satisfiedTH\":3,\"toleratedTH\":2,\"isExtended\":1}}}}]",
         "at [0].apdex.metrics[\"mos\"].isExtended: must be true or false"},
        {"[{\"appName\":\"a\",\"apdex\":{\"metrics\":{\"mos\":[]}}}]", "at [0].apdex.metrics[\"mos\"]: must be an object"},
        {"[{\"appName\":\"a\",\"apdex\":{}}]", "at [0].apdex.metrics: must be an object"},
        {"[{\"appName\":\"a\",\"apdex\":[]}]", "at [0].apdex.metrics: must be an object"},
        {"[{\"appName\":\"a\",\"bucketizedMetrics\":{\"lat\":[1,5,5]}}]",
         "at [0].bucketizedMetrics[\"lat\"][2]: bounds must be ascending numbers"},
        {"[{\"appName\":\"a\",\"bucketizedMetrics\":{\"lat\":[10,2]}}]",
         "at [0].bucketizedMetrics[\"lat\"][1]: bounds must be ascending numbers"},
        {"[{\"appName\":\"a\",\"bucketizedMetrics\":{\"lat\":[1,\"2\"]}}]",
         "at [0].bucketizedMetrics[\"lat\"][1]: bounds must be ascending numbers"},
        {"[{\"appName\":\"a\",\"bucketizedMetrics\":{\"lat\":[]}}]",
         "at [0].bucketizedMetrics[\"lat\"]: must be a non-empty array of numbers"},
        {"[{\"appName\":\"a\",\"bucketizedMetrics\":[1,2]}]",
         "at [0].bucketizedMetrics: must be an object: metric name -> [bounds]"},
        /* patterns compile as the logshipper compiles them, in both daemons */
        {"[{\"appName\":\"a\",\"monitoredEvents\":[\"ok\",\"fine.*\",\"ab(c\"]}]",
         "at [0].monitoredEvents[2]: offset 4: missing closing parenthesis"},
        {"[{\"appName\":\"a\"},{\"appName\":\"b\",\"monitoredEvents\":[\"a)b\"]}]", "at [1].monitoredEvents[0]: offset 1: unmatched closing parenthesis"},
        {"[{\"appName\":\"a\",\"monitoredEvents\":[\"\\\\C\"]}]", "at [0].monitoredEvents[0]: offset 2: using \\C is disabled by the application"},
        {"[{\"appName\":\"telemetry\",\"monitoredEvents\":[\"e\"]}]",
         "at [0].appName: \"telemetry\" is reserved for the service's own metrics"},
    };
    char want[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_EQ_INT(load_one(V, cases[i].json), -1);
        snprintf(want, sizeof(want), "%s: %s", V, cases[i].want);
        CHECK_EQ_STR(err, want);
    }
    /* valid shapes: negative and fractional ascending bounds, a full sample */
    CHECK_EQ_INT(load_one(V, "[{\"appName\":\"a\",\"bucketizedMetrics\":{\"lat\":[-5,-1,0,0.5,2]}}]"), 0);
    CHECK_EQ_INT(load_one(V, "[{\"appName\":\"a\",\"properties\":[],\"monitoredEvents\":[],\"monitoredMetrics\":[],"
                             "\"apdex\":{\"metrics\":{}},\"bucketizedMetrics\":{}}]"), 0);
    CHECK_EQ_INT(load_one(V, "[{\"appName\":\"a\"},{\"appName\":\"A\"}]"), 0); /* case matters */
}

/* A failed load leaves cfg safe to free, twice; whatever was loaded before the error is freed
 * (valgrind and ASan see the leak otherwise). */
static void test_free_after_failure(void)
{
    static const struct kv bad[][3] = {
        {{"TELEMETRY_PORT", "x"}, {NULL, NULL}, {NULL, NULL}},
        {{"TELEMETRY_CONFIG_CORS", "{"}, {"TELEMETRY_CORS_DOMAIN", "example.com"}, {NULL, NULL}},
        {{"TELEMETRY_CONFIG_CONTRACTS", "[1]"}, {NULL, NULL}, {NULL, NULL}},
        {{"API_LOG_LEVEL", "loud"}, {NULL, NULL}, {NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tlm_config cfg;
        memset(&cfg, 0xa5, sizeof(cfg)); /* garbage before: config_load must reset it */
        CHECK_EQ_INT(config_load(&cfg, kv_get, (void *)bad[i], err, sizeof(err)), -1);
        CHECK(starts_with(err, bad[i][0].name));
        config_free(&cfg);
        config_free(&cfg);
        CHECK(cfg.listen == NULL && cfg.tenants == NULL && cfg.contracts == NULL && cfg.api_log_level == NULL);
    }
    /* a short error buffer is cut, never overrun */
    struct tlm_config cfg;
    char small[16];
    memset(small, 'x', sizeof(small));
    struct kv t[] = {{"TELEMETRY_PORT", "70000"}, {NULL, NULL}};
    CHECK_EQ_INT(config_load(&cfg, kv_get, t, small, 10), -1);
    CHECK_EQ_STR(small, "TELEMETRY");
    CHECK(small[10] == 'x');
    config_free(&cfg);
}

/* Runs a daemon with one bad variable; returns its exit status (-1 when it did not exit by
 * itself within 5 s) and its stderr in out. */
static int run_daemon(const char *bin, const char *var, const char *value, char *out, size_t outlen)
{
    const char *dir = getenv("TLM_BUILD_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "build", bin);
    out[0] = '\0';
    if (access(path, X_OK)) {
        fprintf(stderr, "test_config: %s is missing (run make all, or set TLM_BUILD_DIR)\n", path);
        return -2;
    }
    int fds[2];
    if (pipe(fds))
        return -2;
    pid_t pid = fork();
    if (pid < 0)
        return -2;
    if (pid == 0) {
        char env_var[1024];
        snprintf(env_var, sizeof(env_var), "%s=%s", var, value);
        /* a socket path nobody else uses, in case the daemon got further than the config */
        char *envp[] = {env_var, "TELEMETRY_SOCKET=/tmp/tlm-test-config-nowhere.sock",
                        "TELEMETRY_LISTEN=127.0.0.1", "PATH=/usr/bin:/bin", NULL};
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execle(path, path, (char *)NULL, envp);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = {fds[0], POLLIN, 0};
        int r = poll(&p, 1, 100);
        if (r > 0) {
            ssize_t k = read(fds[0], out + n, outlen - 1 - n);
            if (k <= 0)
                break; /* EOF: the child exited (or closed stderr) */
            n += (size_t)k;
            if (n == outlen - 1)
                break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > 5)
            break;
    }
    out[n] = '\0';
    close(fds[0]);
    int status, exited = 0;
    for (int i = 0; i < 50; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            exited = 1;
            break;
        }
        usleep(100 * 1000);
    }
    if (!exited) {
        kill(pid, SIGKILL); /* our own child only */
        waitpid(pid, &status, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_daemons_refuse_bad_config(void)
{
    static const char *bins[] = {"tlm-ingest", "tlm-logshipper"};
    char out[8192];
    for (size_t i = 0; i < 2; i++) {
        int st = run_daemon(bins[i], "TELEMETRY_CONFIG_TENANTS", "{\n  \"" CC "\": \"pulse\",\n  \"x\": @\n}", out, sizeof(out));
        CHECK_EQ_INT(st, 2);
        CHECK(strstr(out, "TELEMETRY_CONFIG_TENANTS") != NULL);
        CHECK(strstr(out, "line 3, column 8") != NULL);
        if (st != 2 || !strstr(out, "line 3, column 8"))
            fprintf(stderr, "  %s stderr: %s\n", bins[i], out);
        /* a non-JSON variable too */
        st = run_daemon(bins[i], "TELEMETRY_PORT", "12x", out, sizeof(out));
        CHECK_EQ_INT(st, 2);
        CHECK(strstr(out, "TELEMETRY_PORT: column 3") != NULL);
        /* and a contract shape error with its position */
        st = run_daemon(bins[i], "TELEMETRY_CONFIG_CONTRACTS", "[{\"appName\":\"a\"},{\"appName\":\"a\"}]", out, sizeof(out));
        CHECK_EQ_INT(st, 2);
        CHECK(strstr(out, "TELEMETRY_CONFIG_CONTRACTS: at [1].appName") != NULL);
        /* and a pattern that does not compile: the ingest never matches it, but stops too */
        st = run_daemon(bins[i], "TELEMETRY_CONFIG_CONTRACTS", "[{\"appName\":\"a\",\"monitoredEvents\":[\"((\"]}]",
                        out, sizeof(out));
        CHECK_EQ_INT(st, 2);
        CHECK(strstr(out, "TELEMETRY_CONFIG_CONTRACTS: at [0].monitoredEvents[0]: offset 2: missing closing parenthesis") != NULL);
    }
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_values_taken);
    RUN(test_json_syntax_errors);
    RUN(test_json_type_errors);
    RUN(test_int_errors);
    RUN(test_enum_errors);
    RUN(test_tenant_and_cors_shape);
    RUN(test_contract_shape);
    RUN(test_free_after_failure);
    RUN(test_daemons_refuse_bad_config);
    UNIT_DONE("test_config");
}
