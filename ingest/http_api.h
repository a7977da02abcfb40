/* http_api.h - the client API on :8107 over HTTP: POST /api/v1/telemetry, health, errors. */
#ifndef TLM_HTTP_API_H
#define TLM_HTTP_API_H

#include <libwebsockets.h>

extern const struct lws_protocols http_api_protocol;

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: refuses a WebSocket handshake with a JSON answer
 * (404 wrong path, 403 origin allowed for no tenant, 503 draining); 0 lets it proceed. */
int http_api_confirm_upgrade(struct lws *wsi);

/* Counts client connections against TELEMETRY_MAX_CONNECTIONS (accept, instantiate, destroy). */
int http_api_connection_event(struct lws *wsi, enum lws_callback_reasons reason);

#endif
