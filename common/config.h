/* config.h - every TELEMETRY_* variable in one table: name, type, default, bounds, doc.
 * Both daemons load the same struct from the environment; errors name the variable and,
 * for JSON values, the line and column. The README's variable table is printed from it. */
#ifndef TLM_CONFIG_H
#define TLM_CONFIG_H

#include <jansson.h>
#include <stddef.h>

struct tlm_config {
    /* listening and the link between the daemons */
    char *listen;
    long long port;
    long long metrics_port;
    char *socket_path;
    /* identity */
    char *config_service;
    char *auth_url;
    char *auth_client_id;
    char *auth_client_secret;
    long long auth_timeout_ms;
    long long auth_cache_ttl_s;
    long long auth_negative_ttl_s;
    long long auth_cache_size;
    long long auth_max_inflight;
    /* configuration documents */
    json_t *tenants;   /* object: contactCenterId -> tenant name */
    json_t *cors;      /* object: contactCenterId -> {urls:[], domains:[]} */
    char *cors_domain;
    json_t *contracts; /* array of contracts */
    /* sessions and throttles */
    long long max_session;
    long long record_min_interval_ms;
    long long auth_min_interval_ms;
    long long session_ttl_s;
    /* pipeline */
    long long traces_threshold;
    long long buffer_max_bytes;
    long long bulk_size;
    long long bulk_time_ms;
    long long ack_timeout_ms;
    long long drain_timeout_s;
    long long shipper_buffer_bytes;
    char *traces_provider;
    /* metrics */
    long long metrics_threshold;
    long long health_timer_s;
    /* request limits */
    long long max_body_bytes;
    long long max_decompressed_bytes;
    long long max_records;
    long long max_string_bytes;
    long long max_properties;
    long long max_json_depth;
    long long max_header_bytes;
    long long max_connections;
    long long idle_timeout_s;
    long long line_max_bytes;
    /* WebSocket */
    long long ws_auth_timeout_s;
    long long ws_max_message_bytes;
    long long ws_window;
    long long ws_ping_interval_s;
    long long ws_idle_timeout_s;
    long long ws_stall_timeout_s;
    /* diagnostics */
    char *app_log_level;
    char *api_log_level;
};

/* Where values come from: getenv in the daemons, a table in unit tests. */
typedef const char *(*config_getter)(const char *name, void *ctx);

/* Fills cfg from defaults and the getter. 0 ok; -1 with a message like
 * "TELEMETRY_CONFIG_TENANTS: line 1, column 7: ..." in err. cfg is always safe to free. */
int config_load(struct tlm_config *cfg, config_getter get, void *ctx, char *err, size_t errlen);
int config_load_env(struct tlm_config *cfg, char *err, size_t errlen);
void config_free(struct tlm_config *cfg);

/* Markdown table of every variable (name, default, meaning) for the README. */
void config_print_markdown(void);

/* Tenant name for a contact-center id, or NULL when the tenants map has none. */
const char *config_tenant_name(const struct tlm_config *cfg, const char *ccid);
/* The contract (JSON object) of an app, or NULL. */
json_t *config_contract(const struct tlm_config *cfg, const char *app, size_t len);

#endif
