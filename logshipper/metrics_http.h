/* metrics_http.h - the logshipper's HTTP side on TELEMETRY_METRICS_PORT: GET /metrics
 * (Prometheus text of both daemons), GET /health/live and GET /health/ready. */
#ifndef TLM_METRICS_HTTP_H
#define TLM_METRICS_HTTP_H

#include "../common/buf.h"

struct shipper;
struct lws_protocols;

/* Protocol "http": the vhost's first (default) protocol. */
extern const struct lws_protocols metrics_http_protocol;

/* The /metrics body: contract metrics (the registry), the logshipper's own counters and
 * process metrics, merged with the latest STATS text of the ingest. */
void metrics_http_render(const struct shipper *sh, struct buf *out);
/* 1 when ready; else 0 with a short reason. */
int metrics_http_ready(const struct shipper *sh, const char **reason);

#endif
