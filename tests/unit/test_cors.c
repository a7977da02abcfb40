/* test_cors.c - ingest/cors.c: exact urls (trailing slash in the config), domains with their
 * subdomains ("*.x" and ".x" forms too), no suffix confusion, case-insensitive hosts, ports,
 * IPv6 literals, malformed origins, TELEMETRY_CORS_DOMAIN, allowed_any vs allowed_for. */
#include <string.h>

#include "../../common/config.h"
#include "../../ingest/cors.h"
#include "unit.h"

#define CC_A "2868802f-1763-4ecd-94f6-203400001200"
#define CC_B "7a1e0b5c-0000-4000-8000-0000000000b2"
#define CC_C "c0c0c0c0-0000-4000-8000-00000000000c"

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

static const struct kv env[] = {
    {"TELEMETRY_CONFIG_CORS",
     "{\"" CC_A "\":{\"urls\":[\"https://desk.example.com/\",\"http://localhost:8080\",\"http://[::1]:3000\","
     "\"https://UPPER.example.org\"],\"domains\":[\"example.com\"]},"
     "\"" CC_B "\":{\"domains\":[\"*.genesys.test\",\".pure.test\",\"10.0.0.5\"]},"
     "\"" CC_C "\":{\"urls\":[],\"domains\":[]}}"},
    {NULL, NULL}};

static const struct kv env_global[] = {
    {"TELEMETRY_CONFIG_CORS", "{\"" CC_A "\":{\"urls\":[\"https://desk.example.com\"]}}"},
    {"TELEMETRY_CORS_DOMAIN", "corp.test"},
    {NULL, NULL}};

static struct tlm_config cfg, cfg_global;

static int for_a(const char *o) { return cors_allowed_for(&cfg, o, CC_A); }
static int for_b(const char *o) { return cors_allowed_for(&cfg, o, CC_B); }
static int any(const char *o) { return cors_allowed_any(&cfg, o); }

static void test_urls(void)
{
    CHECK_EQ_INT(for_a("https://desk.example.com"), 1); /* config has a trailing slash */
    CHECK_EQ_INT(for_a("http://localhost:8080"), 1);
    CHECK_EQ_INT(for_a("http://localhost"), 0);      /* port differs */
    CHECK_EQ_INT(for_a("http://localhost:8081"), 0);
    CHECK_EQ_INT(for_a("https://localhost:8080"), 0); /* scheme differs */
    CHECK_EQ_INT(for_a("http://localhost:80800"), 0);
    CHECK_EQ_INT(for_a("https://upper.example.org"), 1); /* hosts are case-insensitive */
    CHECK_EQ_INT(for_a("HTTPS://UPPER.EXAMPLE.ORG"), 1);
    CHECK_EQ_INT(for_a("https://upper.example.org.evil.test"), 0);
    CHECK_EQ_INT(for_a("https://example.org"), 0); /* a url is not a domain */
    CHECK_EQ_INT(for_a("https://x.upper.example.org"), 0);
    /* IPv6 literal */
    CHECK_EQ_INT(for_a("http://[::1]:3000"), 1);
    CHECK_EQ_INT(for_a("http://[::1]:3001"), 0);
    CHECK_EQ_INT(for_a("http://[::1]"), 0);
    /* urls of another tenant are not this one's */
    CHECK_EQ_INT(for_b("http://localhost:8080"), 0);
    CHECK_EQ_INT(any("http://localhost:8080"), 1);
}

static void test_domains(void)
{
    CHECK_EQ_INT(for_a("https://example.com"), 1);
    CHECK_EQ_INT(for_a("https://a.example.com"), 1);
    CHECK_EQ_INT(for_a("https://a.b.example.com"), 1);
    CHECK_EQ_INT(for_a("http://a.example.com:8443"), 1); /* any scheme and port */
    CHECK_EQ_INT(for_a("https://A.EXAMPLE.COM"), 1);
    CHECK_EQ_INT(for_a("https://Example.Com:443"), 1);
    /* no suffix confusion */
    CHECK_EQ_INT(for_a("https://evilexample.com"), 0);
    CHECK_EQ_INT(for_a("https://a.evilexample.com"), 0);
    CHECK_EQ_INT(for_a("https://example.com.evil.test"), 0);
    CHECK_EQ_INT(for_a("https://example.co"), 0);
    CHECK_EQ_INT(for_a("https://xample.com"), 0);
    CHECK_EQ_INT(for_a("https://com"), 0);
    /* "*.x" and ".x" forms: x and its subdomains */
    CHECK_EQ_INT(for_b("https://genesys.test"), 1);
    CHECK_EQ_INT(for_b("https://app.genesys.test"), 1);
    CHECK_EQ_INT(for_b("https://notgenesys.test"), 0);
    CHECK_EQ_INT(for_b("https://pure.test"), 1);
    CHECK_EQ_INT(for_b("https://x.y.pure.test:9000"), 1);
    CHECK_EQ_INT(for_b("https://impure.test"), 0);
    /* an IP address as a domain matches itself, not other addresses ending the same way */
    CHECK_EQ_INT(for_b("http://10.0.0.5:8080"), 1);
    CHECK_EQ_INT(for_b("http://110.0.0.5"), 0);
    /* tenants are separate */
    CHECK_EQ_INT(for_b("https://a.example.com"), 0);
    CHECK_EQ_INT(for_a("https://app.genesys.test"), 0);
    CHECK_EQ_INT(cors_allowed_for(&cfg, "https://a.example.com", CC_C), 0); /* empty lists */
    CHECK_EQ_INT(cors_allowed_for(&cfg, "https://a.example.com", "unknown-cc"), 0);
    CHECK_EQ_INT(cors_allowed_for(&cfg, "https://a.example.com", ""), 0);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "null",                              /* sandboxed iframes, file:// pages */
        "",
        "example.com",                       /* no scheme */
        "//example.com",
        "://example.com",
        "https://",
        "https://:443",
        "https://example.com/",              /* origins have no path */
        "https://example.com/app",
        "https://a.example.com/x/y",
        "https://desk.example.com/",         /* even when the config url has one */
        "http://[::1",                       /* unterminated IPv6 literal */
        "http://[::1]:3000/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(any(bad[i]), 0);
        CHECK_EQ_INT(for_a(bad[i]), 0);
        if (any(bad[i]) || for_a(bad[i]))
            fprintf(stderr, "  allowed: \"%s\"\n", bad[i]);
        CHECK_EQ_INT(cors_allowed_any(&cfg_global, bad[i]), 0);
    }
    /* Characters that cannot be in a host (query, fragment, userinfo, spaces) make the origin
     * malformed; they must not let another host pass as a subdomain of an allowed domain. */
    static const char *const tricky[] = {
        "https://evil.test?.example.com",
        "https://evil.test#.example.com",
        "https://evil.test\\.example.com",
        "https://evil.test .example.com",
        "https://user@evil.test@a.example.com",
    };
    for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
        CHECK_EQ_INT(for_a(tricky[i]), 0);
        if (for_a(tricky[i]))
            fprintf(stderr, "  allowed for tenant A: \"%s\"\n", tricky[i]);
    }
}

static void test_global_domain(void)
{
    /* TELEMETRY_CORS_DOMAIN allows its domain and subdomains for every tenant */
    CHECK_EQ_INT(cors_allowed_for(&cfg_global, "https://corp.test", CC_A), 1);
    CHECK_EQ_INT(cors_allowed_for(&cfg_global, "https://app.corp.test", CC_B), 1);
    CHECK_EQ_INT(cors_allowed_for(&cfg_global, "https://app.corp.test", "any-tenant"), 1);
    CHECK_EQ_INT(cors_allowed_for(&cfg_global, "https://APP.Corp.Test:8443", CC_C), 1);
    CHECK_EQ_INT(cors_allowed_any(&cfg_global, "https://app.corp.test"), 1);
    CHECK_EQ_INT(cors_allowed_for(&cfg_global, "https://evilcorp.test", CC_A), 0);
    CHECK_EQ_INT(cors_allowed_any(&cfg_global, "https://corp.test.evil"), 0);
    /* the per-tenant list still applies next to it */
    CHECK_EQ_INT(cors_allowed_for(&cfg_global, "https://desk.example.com", CC_A), 1);
    CHECK_EQ_INT(cors_allowed_for(&cfg_global, "https://desk.example.com", CC_B), 0);
    CHECK_EQ_INT(cors_allowed_any(&cfg_global, "https://desk.example.com"), 1);
    /* empty TELEMETRY_CORS_DOMAIN (the default) allows nothing */
    CHECK_EQ_INT(cors_allowed_any(&cfg, "https://corp.test"), 0);
}

static void test_any_vs_for(void)
{
    /* allowed for some tenant: preflight ok; the real request is checked per tenant */
    CHECK_EQ_INT(any("https://a.example.com"), 1);
    CHECK_EQ_INT(any("https://app.genesys.test"), 1);
    CHECK_EQ_INT(any("https://unknown.test"), 0);
    CHECK_EQ_INT(for_a("https://a.example.com"), 1);
    CHECK_EQ_INT(for_b("https://a.example.com"), 0);
    /* no configuration at all: nothing is allowed */
    struct tlm_config empty;
    char err[256];
    CHECK_EQ_INT(config_load(&empty, NULL, NULL, err, sizeof(err)), 0);
    CHECK_EQ_INT(cors_allowed_any(&empty, "https://a.example.com"), 0);
    CHECK_EQ_INT(cors_allowed_for(&empty, "https://a.example.com", CC_A), 0);
    config_free(&empty);
}

int main(void)
{
    char err[512];
    if (config_load(&cfg, kv_get, (void *)env, err, sizeof(err)) ||
        config_load(&cfg_global, kv_get, (void *)env_global, err, sizeof(err))) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    RUN(test_urls);
    RUN(test_domains);
    RUN(test_malformed);
    RUN(test_global_domain);
    RUN(test_any_vs_for);
    config_free(&cfg);
    config_free(&cfg_global);
    UNIT_DONE("test_cors");
}
