/* stats.c - the ingest's counters and their Prometheus rendering; the text travels to the
 * logshipper in STATS frames every second and is served on :9107 from there. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/procstat.h"
#include "../common/prom.h"
#include "ingest.h"

const double ingest_ack_bounds[ACK_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,   0.1,   0.25,   0.5,   1,    5};

int64_t ingest_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ingest_count_status(struct ingest *in, int status)
{
    if (status >= 100 && status < 600)
        in->n.http_status[status]++;
}

void ingest_count_result(struct ingest *in, const struct envelope_result *res)
{
    in->n.batches++;
    for (int k = 0; k < ENV_NKINDS; k++) {
        in->n.records_accepted[k] += res->accepted_by_kind[k];
        in->n.records_received[k] += res->accepted_by_kind[k];
    }
    for (int c = 0; c < REJ_NCODES; c++)
        in->n.records_rejected[c] += res->rejected_by_code[c];
    in->n.records_truncated += res->truncated;
    in->n.properties_dropped += res->properties_dropped;
}

static void counter(struct buf *o, const char *name, const char *help, double v)
{
    prom_put_single(o, name, help, PROM_COUNTER, v);
}

static void gauge(struct buf *o, const char *name, const char *help, double v)
{
    prom_put_single(o, name, help, PROM_GAUGE, v);
}

static void labelled(struct buf *o, const char *name, const char *label, const char *value, double v)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "%s=\"%s\"", label, value);
    prom_put_sample(o, name, labels, v);
}

void ingest_render_stats(struct ingest *in, struct buf *o)
{
    const struct ingest_counters *n = &in->n;
    char code[16];

    prom_put_header(o, "telemetry_events", "Events of the service itself (http_error_N: answers with status N).", PROM_COUNTER);
    for (int s = 400; s < 600; s++) {
        if (!n->http_status[s])
            continue;
        snprintf(code, sizeof(code), "http_error_%d", s);
        labelled(o, "telemetry_events", "eventName", code, (double)n->http_status[s]);
    }
    prom_put_header(o, "tlm_http_requests_total", "HTTP answers of the ingest by status code.", PROM_COUNTER);
    for (int s = 100; s < 600; s++) {
        if (!n->http_status[s])
            continue;
        snprintf(code, sizeof(code), "%d", s);
        labelled(o, "tlm_http_requests_total", "code", code, (double)n->http_status[s]);
    }
    int link_up, gauth_up;
    ingest_ready(in, &link_up, &gauth_up);
    prom_put_header(o, "telemetry_dependency_status", "1 when the dependency is up, 0 when down.", PROM_GAUGE);
    labelled(o, "telemetry_dependency_status", "serviceName", "gauth", gauth_up);
    labelled(o, "telemetry_dependency_status", "serviceName", "logshipper", link_up);

    const struct auth_stats *as = auth_get_stats(in->auth);
    prom_put_header(o, "telemetry_gws_auth_req_time",
                    "GAuth userinfo call time in milliseconds over the last TELEMETRY_HEALTH_TIMER window.", PROM_GAUGE);
    labelled(o, "telemetry_gws_auth_req_time", "metricType", "avg", as->prev_avg_ms);
    labelled(o, "telemetry_gws_auth_req_time", "metricType", "max", as->prev_max_ms);
    labelled(o, "telemetry_gws_auth_req_time", "metricType", "min", as->prev_min_ms);
    labelled(o, "telemetry_gws_auth_req_time", "metricType", "count", (double)as->prev_count);
    labelled(o, "telemetry_gws_auth_req_time", "metricType", "last", as->last_ms);
    counter(o, "tlm_auth_cache_hits_total", "Requests whose token was answered from the cache.", (double)as->cache_hits);
    counter(o, "tlm_auth_cache_misses_total", "Requests whose token needed a GAuth call.", (double)as->cache_misses);
    counter(o, "tlm_auth_negative_cache_hits_total", "Requests refused from the negative cache.", (double)as->negative_hits);
    prom_put_header(o, "tlm_auth_calls_total", "GAuth userinfo calls by result.", PROM_COUNTER);
    labelled(o, "tlm_auth_calls_total", "result", "ok", (double)as->calls_ok);
    labelled(o, "tlm_auth_calls_total", "result", "invalid", (double)as->calls_invalid);
    labelled(o, "tlm_auth_calls_total", "result", "unavailable", (double)as->calls_unavailable);
    gauge(o, "tlm_auth_cache_entries", "Tokens in the auth cache.", (double)as->cached);

    prom_put_header(o, "tlm_records_received_total", "Records accepted into the pipeline, by kind.", PROM_COUNTER);
    static const char *const kinds[ENV_NKINDS] = {"trace", "event", "metric"};
    for (int k = 0; k < ENV_NKINDS; k++)
        labelled(o, "tlm_records_received_total", "kind", kinds[k], (double)n->records_accepted[k]);
    prom_put_header(o, "tlm_records_rejected_total", "Records refused by validation, by reason.", PROM_COUNTER);
    for (int c = 0; c < REJ_NCODES; c++)
        labelled(o, "tlm_records_rejected_total", "reason", envelope_reject_codes[c], (double)n->records_rejected[c]);
    counter(o, "tlm_records_truncated_total", "Records whose longest strings were cut to fit TELEMETRY_LINE_MAX_BYTES.",
            (double)n->records_truncated);
    counter(o, "tlm_properties_dropped_total", "Record properties dropped by the contract allow-list.",
            (double)n->properties_dropped);
    counter(o, "tlm_batches_total", "Batches processed (HTTP bodies and WebSocket messages).", (double)n->batches);
    counter(o, "tlm_batches_gzip_total", "Batches that arrived gzip-encoded.", (double)n->batches_gzip);
    counter(o, "tlm_request_bytes_total", "Body bytes received as sent.", (double)n->bytes_received);
    counter(o, "tlm_pipeline_full_total", "Batches refused with 503 because the buffer was full.", (double)in->pipe.rejected_full);
    counter(o, "tlm_ack_timeouts_total", "Requests answered 503 because the logshipper did not ack in time.", (double)n->ack_timeouts);
    gauge(o, "tlm_pipeline_buffered_records", "Records held by the ingest until the logshipper acks them.", (double)in->pipe.records);
    gauge(o, "tlm_pipeline_buffered_bytes", "Bytes held by the ingest until the logshipper acks them.", (double)in->pipe.bytes);
    gauge(o, "tlm_pipeline_inflight_requests", "Requests being processed or waiting for an ack.", (double)in->inflight);
    counter(o, "tlm_pipeline_frames_total", "Frames closed and sent to the logshipper.", (double)in->pipe.frames_closed);
    counter(o, "tlm_pipeline_records_acked_total", "Records the logshipper confirmed written.", (double)in->pipe.records_acked);
    counter(o, "tlm_link_frames_resent_total", "Frames sent again after a reconnect.", (double)in->link.frames_resent);
    gauge(o, "tlm_connections", "Open client connections of the ingest.", (double)in->connections);
    counter(o, "tlm_connections_refused_total", "Connections closed at accept: TELEMETRY_MAX_CONNECTIONS reached.",
            (double)in->n.connections_refused);
    gauge(o, "tlm_ws_sessions", "Open WebSocket connections.", (double)in->ws_count);
    gauge(o, "tlm_sessions_active", "Authenticated sessions counted against TELEMETRY_MAX_SESSION.",
          (double)sessions_active(&in->sessions, lws_now_usecs()));
    prom_put_header(o, "tlm_sessions_refused_total", "Batches or connections refused by a session bound, by reason.", PROM_COUNTER);
    labelled(o, "tlm_sessions_refused_total", "reason", "too_many_sessions", (double)in->sessions.refused_too_many);
    labelled(o, "tlm_sessions_refused_total", "reason", "throttled", (double)in->sessions.throttled);
    counter(o, "tlm_link_reconnects_total", "Connections made to the logshipper.", (double)in->link.connects);

    prom_put_header(o, "tlm_ack_latency_seconds", "Time from a frame leaving the ingest to its ack.", PROM_HISTOGRAM);
    uint64_t cum = 0;
    for (int b = 0; b < ACK_BUCKETS; b++) {
        cum += n->ack_latency_buckets[b];
        char le[64];
        snprintf(le, sizeof(le), "le=\"%g\"", ingest_ack_bounds[b]);
        prom_put_sample(o, "tlm_ack_latency_seconds_bucket", le, (double)cum);
    }
    cum += n->ack_latency_buckets[ACK_BUCKETS];
    prom_put_sample(o, "tlm_ack_latency_seconds_bucket", "le=\"+Inf\"", (double)cum);
    prom_put_sample(o, "tlm_ack_latency_seconds_sum", NULL, n->ack_latency_sum);
    prom_put_sample(o, "tlm_ack_latency_seconds_count", NULL, (double)n->ack_latency_count);

    struct procstat ps;
    if (procstat_read(&ps) == 0) {
        const char *component = "ingest";
        procstat_render_many(o, &ps, &component, 1);
    }
}
