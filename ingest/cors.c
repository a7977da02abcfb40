/* cors.c - origin checks against the CORS configuration (see cors.h and docs/DESIGN.md). */
#include "cors.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* The host of "scheme://host[:port]" as a span; 0 for anything else (a path, user info,
 * a query, characters no host name has): a malformed Origin is allowed nowhere. */
static int origin_host(const char *origin, const char **host, size_t *len)
{
    const char *p = origin;
    if (!isalpha((unsigned char)*p))
        return 0;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    if (strncmp(p, "://", 3))
        return 0;
    p += 3;
    const char *start = p;
    if (*p == '[') { /* IPv6 literal */
        p++;
        while (isxdigit((unsigned char)*p) || *p == ':' || *p == '.')
            p++;
        if (*p != ']')
            return 0;
        p++;
    } else {
        while (isalnum((unsigned char)*p) || *p == '-' || *p == '.')
            p++;
    }
    const char *hend = p;
    if (hend == start)
        return 0;
    if (*p == ':') {
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return 0;
    *host = start;
    *len = (size_t)(hend - start);
    return 1;
}

static int domain_matches(const char *host, size_t hlen, const char *domain)
{
    while (*domain == '*' || *domain == '.')
        domain++; /* "*.example.com" and ".example.com" mean example.com and its subdomains */
    size_t dlen = strlen(domain);
    if (dlen == 0 || dlen > hlen)
        return 0;
    if (strncasecmp(host + hlen - dlen, domain, dlen))
        return 0;
    return hlen == dlen || host[hlen - dlen - 1] == '.';
}

static int entry_allows(const json_t *entry, const char *origin, const char *host, size_t hlen)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(entry, "urls"), i, v) {
        const char *u = json_string_value(v);
        size_t ul = strlen(u);
        while (ul && u[ul - 1] == '/')
            ul--; /* "https://a.example/" in config equals the Origin "https://a.example" */
        if (strlen(origin) == ul && !strncasecmp(u, origin, ul))
            return 1;
    }
    json_array_foreach(json_object_get(entry, "domains"), i, v) {
        if (domain_matches(host, hlen, json_string_value(v)))
            return 1;
    }
    return 0;
}

static int global_allows(const struct tlm_config *cfg, const char *host, size_t hlen)
{
    return cfg->cors_domain && *cfg->cors_domain && domain_matches(host, hlen, cfg->cors_domain);
}

int cors_allowed_any(const struct tlm_config *cfg, const char *origin)
{
    const char *host;
    size_t hlen;
    if (!origin_host(origin, &host, &hlen))
        return 0;
    if (global_allows(cfg, host, hlen))
        return 1;
    const char *k;
    json_t *entry;
    json_object_foreach(cfg->cors, k, entry) {
        if (entry_allows(entry, origin, host, hlen))
            return 1;
    }
    return 0;
}

int cors_allowed_for(const struct tlm_config *cfg, const char *origin, const char *ccid)
{
    const char *host;
    size_t hlen;
    if (!origin_host(origin, &host, &hlen))
        return 0;
    if (global_allows(cfg, host, hlen))
        return 1;
    json_t *entry = json_object_get(cfg->cors, ccid);
    return entry && entry_allows(entry, origin, host, hlen);
}
