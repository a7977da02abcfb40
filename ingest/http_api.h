/* http_api.h - the client API on :8107 over HTTP: POST /api/v1/telemetry, health, errors. */
#ifndef TLM_HTTP_API_H
#define TLM_HTTP_API_H

#include <libwebsockets.h>

extern const struct lws_protocols http_api_protocol;

#endif
