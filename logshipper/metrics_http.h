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
/* What /health/ready checks. The ingest and GAuth are the ingest's: an ingest link with a
 * fresh STATS, and that STATS' GAuth bit (SPEC 2: ready on both ports means the logshipper
 * link is up and GAuth answers). */
struct shipper_readiness {
    int ingest;         /* an ingest is connected and sent STATS within LINK_STATS_FRESH_US */
    int gauth;          /* its last GAuth check succeeded */
    int sink;           /* stdout (or the journal) takes lines: "output" */
    const char *reason; /* the first check that failed, NULL when ready */
};
/* 1 when ready; else 0, with r->reason saying why. */
int metrics_http_ready(const struct shipper *sh, struct shipper_readiness *r);

#endif
