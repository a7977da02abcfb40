/* admission.h - the connection cap and the WebSocket handshake checks of :8107. */
#ifndef TLM_ADMISSION_H
#define TLM_ADMISSION_H

#include <libwebsockets.h>

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: refuses a WebSocket handshake with a JSON answer
 * (404 wrong path, 403 origin allowed for no tenant, 503 draining); 0 lets it proceed. */
int admission_confirm_upgrade(struct lws *wsi);

/* Counts client connections against TELEMETRY_MAX_CONNECTIONS (accept, instantiate, destroy):
 * non-zero from LWS_CALLBACK_FILTER_NETWORK_CONNECTION closes a connection past the cap. */
int admission_connection_event(struct lws *wsi, enum lws_callback_reasons reason);

#endif
