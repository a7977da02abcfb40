/* admission.c - who gets in at :8107 before any request is read: the cap on open connections
 * (TELEMETRY_MAX_CONNECTIONS) and the checks on a WebSocket handshake (path, Origin, draining). */
#include "admission.h"

#include <stdio.h>
#include <string.h>

#include "../common/log.h"
#include "cors.h"
#include "ingest.h"

/* Writes a whole JSON error answer at once (WebSocket handshake refusals). The status line
 * is ours: lws 4.1 would answer an upgrade request as HTTP/1.0, which clients reject. */
static int refuse_upgrade(struct lws *wsi, struct ingest *in, int status, const char *code, const char *message)
{
    static const struct { int status; const char *reason; } reasons[] = {
        {403, "Forbidden"}, {404, "Not Found"}, {503, "Service Unavailable"}};
    const char *reason = "Error";
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            reason = reasons[i].reason;
    char body[512], buf[LWS_PRE + 1024];
    int blen = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    int len = snprintf(buf + LWS_PRE, sizeof(buf) - LWS_PRE,
                       "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                       "vary: Origin\r\nconnection: close\r\n\r\n%s", status, reason, blen, body);
    ingest_count_status(in, status);
    log_api(LOG_INFO, "websocket handshake refused: %d %s", status, code);
    if (lws_write(wsi, (uint8_t *)buf + LWS_PRE, (size_t)len, LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
    return 1;
}

int admission_confirm_upgrade(struct lws *wsi)
{
    struct ingest *in = lws_get_vhost_user(lws_get_vhost(wsi));
    char uri[128], origin[256];
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/api/v1/stream"))
        return refuse_upgrade(wsi, in, 404, "not_found", "WebSocket streams are served on /api/v1/stream");
    if (in->draining)
        return refuse_upgrade(wsi, in, 503, "shutting_down", "this instance is shutting down; retry");
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (n > 0 && (n >= (int)sizeof(origin) || lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0 ||
                  !cors_allowed_any(&in->cfg, origin)))
        return refuse_upgrade(wsi, in, 403, "origin_not_allowed", "this origin is not allowed for any tenant");
    return 0;
}

/* TELEMETRY_MAX_CONNECTIONS: accepted client connections are marked and counted; one past
 * the bound is closed at accept. The mark (lws's opaque pointer) travels with the wsi
 * through a WebSocket upgrade, so the count falls wherever the connection ends. */
static const char connection_mark = 1;

int admission_connection_event(struct lws *wsi, enum lws_callback_reasons reason)
{
    struct ingest *in = lws_get_vhost(wsi) ? lws_get_vhost_user(lws_get_vhost(wsi)) : NULL;
    if (!in)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        if (in->connections >= in->cfg.max_connections) {
            in->n.connections_refused++;
            return 1;
        }
        return 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        if (lws_get_opaque_user_data(wsi) == NULL) {
            lws_set_opaque_user_data(wsi, (void *)&connection_mark);
            in->connections++;
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (lws_get_opaque_user_data(wsi) == &connection_mark) {
            lws_set_opaque_user_data(wsi, NULL);
            in->connections--;
        }
        return 0;
    default:
        return 0;
    }
}
