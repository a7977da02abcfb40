/* cors.h - which browser origins may call the API, per contact center
 * (TELEMETRY_CONFIG_CORS: exact urls, domain suffixes) and globally (TELEMETRY_CORS_DOMAIN). */
#ifndef TLM_CORS_H
#define TLM_CORS_H

#include "../common/config.h"

/* 1 when origin is allowed for some tenant (preflight, WebSocket handshake). */
int cors_allowed_any(const struct tlm_config *cfg, const char *origin);
/* 1 when origin is allowed for the contact center ccid. */
int cors_allowed_for(const struct tlm_config *cfg, const char *origin, const char *ccid);

#endif
