/* metrics_http.c - HTTP on the metrics port: routes GET /metrics and the health checks,
 * renders the logshipper's counters by hand and merges in the ingest's STATS text. */
#include "metrics_http.h"

#include <string.h>

#include "../common/jsonl.h"
#include "../common/procstat.h"
#include "metrics_merge.h"
#include "shipper.h"

#define HTTP_CHUNK 16384

struct http_pss {
    struct buf body; /* LWS_PRE spare bytes, then the body */
    size_t sent;
    int close; /* close after this answer (a request we did not read the body of) */
};

/* ---- /metrics ---- */

static void put_counter(struct buf *b, const char *name, const char *help, double v)
{
    prom_put_single(b, name, help, PROM_COUNTER, v);
}

static void put_gauge(struct buf *b, const char *name, const char *help, double v)
{
    prom_put_single(b, name, help, PROM_GAUGE, v);
}

static void render_own(const struct shipper *sh, struct buf *b)
{
    static const char *const kinds[] = {"kind=\"trace\"", "kind=\"event\"", "kind=\"metric\""};
    static const char *const types[] = {NULL,           "type=\"hello\"", "type=\"records\"",
                                        "type=\"ack\"", "type=\"stats\"", "type=\"ping\"",
                                        "type=\"bye\""};
    const struct writer_stats *ws = writer_stats(sh->writer);
    const struct link_server_stats *ls = link_server_stats(sh->links);

    prom_put_header(b, "tlm_records_written_total",
                    "Records written to the sink (stdout or journal), by kind.", PROM_COUNTER);
    for (int k = 0; k < 3; k++)
        prom_put_sample(b, "tlm_records_written_total", kinds[k], (double)ws->records[k]);
    put_counter(b, "tlm_bytes_written_total", "Bytes of JSON lines written, newlines included.",
                (double)ws->bytes);
    put_counter(b, "tlm_lines_truncated_total",
                "Written lines the ingest cut to fit the line limit (\"truncated\":true).",
                (double)ws->truncated);
    put_counter(b, "tlm_stdout_write_errors_total",
                "Failed writes to stdout other than \"would block\".", (double)ws->write_errors);
    put_counter(b, "tlm_stdout_blocked_seconds_total",
                "Seconds stdout refused more bytes (its reader was behind).",
                writer_blocked_seconds_total(sh->writer));
    put_gauge(b, "tlm_output_buffer_bytes", "Bytes of lines received and not yet written.",
              (double)writer_queued_bytes(sh->writer));
#ifdef TLM_HAVE_SYSTEMD
    put_counter(b, "tlm_journal_errors_total",
                "Records the journal refused (retried; their frames are not acked until sent).",
                (double)ws->journal_errors);
#endif
    prom_put_header(b, "tlm_link_frames_received_total",
                    "Protocol frames received from the ingest, by type.", PROM_COUNTER);
    for (int t = PROTO_HELLO; t <= PROTO_BYE; t++)
        prom_put_sample(b, "tlm_link_frames_received_total", types[t], (double)ls->frames[t]);
    put_counter(b, "tlm_link_bytes_received_total", "Bytes received on ingest links.",
                (double)ls->bytes);
    put_counter(b, "tlm_link_records_received_total",
                "Records received in accepted RECORDS frames.", (double)ls->records);
    put_counter(b, "tlm_link_acks_sent_total", "ACK frames sent to the ingest.", (double)ls->acks);
    put_gauge(b, "tlm_link_connections", "Ingest links open now.",
              (double)link_server_links(sh->links));
    put_counter(b, "tlm_link_connections_total", "Ingest links accepted since start.",
                (double)ls->connections);
    put_counter(b, "tlm_link_protocol_errors_total",
                "Ingest links closed for a protocol error or version mismatch.",
                (double)ls->protocol_errors);
    put_gauge(b, "tlm_link_reads_paused",
              "1 while reading from the ingest is paused because the output buffer is full.",
              writer_over_limit(sh->writer) ? 1 : 0);
}

void metrics_http_render(const struct shipper *sh, struct buf *out)
{
    struct buf local;
    struct procstat ps;
    size_t olen = 0;
    buf_init(&local);
    if (sh->reg)
        prom_render(sh->reg, &local);
    render_own(sh, &local);
    procstat_read(&ps);
    procstat_render(&local, &ps, "logshipper", 1);
    const char *other = link_server_ingest_stats(sh->links, &olen);
    /* The link seen from this side: with no fresh STATS the ingest's own view cannot arrive,
     * so the logshipper says 0 itself (this local series wins the merge over the ingest's). */
    prom_put_header(&local, "telemetry_dependency_status", "1 when the dependency is up, 0 when down.", PROM_GAUGE);
    prom_put_sample(&local, "telemetry_dependency_status", "serviceName=\"logshipper\"", other ? 1 : 0);
    /* what /health/ready answers, so an alert can count ready pods without kube-state-metrics */
    struct shipper_readiness r;
    prom_put_header(&local, "telemetry_ready", "1 when this pod is ready (what /health/ready on :9107 answers), else 0.",
                    PROM_GAUGE);
    prom_put_sample(&local, "telemetry_ready", NULL, metrics_http_ready(sh, &r));
    metrics_merge(out, local.p, local.len, other, olen);
    buf_free(&local);
}

int metrics_http_ready(const struct shipper *sh, struct shipper_readiness *r)
{
    int gauth = link_server_gauth_up(sh->links);
    r->ingest = gauth >= 0;
    r->gauth = gauth == 1;
    r->sink = writer_stalled_seconds(sh->writer) <= SHIPPER_STALL_READY_S;
    r->reason = NULL;
    if (sh->draining)
        r->reason = "shutting down";
    else if (!link_server_listening(sh->links))
        r->reason = "the ingest socket is not listening";
    else if (!r->sink)
        r->reason = writer_sink(sh->writer) == WRITER_CONSOLE ? "stdout has taken no bytes for more than 10 s"
                                                              : "the journal has taken no records for more than 10 s";
    else if (!r->ingest)
        r->reason = "no ingest is connected";
    else if (!r->gauth)
        r->reason = "GAuth did not answer the ingest's last check";
    return r->reason == NULL;
}

/* ---- HTTP ---- */

static void json_error(struct buf *b, const char *code, const char *msg)
{
    buf_puts(b, "{\"error\":{\"code\":\"");
    buf_puts(b, code);
    buf_puts(b, "\",\"message\":");
    jsonl_put_string(b, msg, strlen(msg));
    buf_puts(b, "}}\n");
}

/* Fills pss->body and sends the headers; the body follows on HTTP_WRITEABLE. */
static int answer(struct lws *wsi, struct http_pss *pss, const char *path, int is_get)
{
    const struct shipper *sh = lws_context_user(lws_get_context(wsi));
    struct buf *b = &pss->body;
    unsigned status = HTTP_STATUS_OK;
    const char *ctype = "application/json";
    buf_reset(b);
    pss->sent = 0;
    if (buf_reserve(b, LWS_PRE))
        return -1;
    memset(b->p, 0, LWS_PRE);
    b->len = LWS_PRE;
    int known = !strcmp(path, "/metrics") || !strcmp(path, "/health/live") ||
                !strcmp(path, "/health/ready");
    if (!known) {
        status = HTTP_STATUS_NOT_FOUND;
        json_error(b, "not_found", "no such path: use /metrics, /health/live or /health/ready");
    } else if (!is_get) {
        status = HTTP_STATUS_METHOD_NOT_ALLOWED;
        json_error(b, "method_not_allowed", "only GET is allowed here");
    } else if (!strcmp(path, "/metrics")) {
        ctype = "text/plain; version=0.0.4; charset=utf-8";
        metrics_http_render(sh, b);
    } else if (!strcmp(path, "/health/live")) {
        buf_puts(b, "{\"status\":\"ok\"}\n");
    } else {
        struct shipper_readiness r;
        if (metrics_http_ready(sh, &r)) {
            buf_puts(b, "{\"status\":\"ok\"");
        } else {
            status = HTTP_STATUS_SERVICE_UNAVAILABLE;
            buf_puts(b, "{\"status\":\"not_ready\",\"reason\":");
            jsonl_put_string(b, r.reason, strlen(r.reason));
        }
        buf_printf(b, ",\"checks\":{\"ingest\":%s,\"gauth\":%s,\"output\":%s}}\n", r.ingest ? "true" : "false",
                   r.gauth ? "true" : "false", r.sink ? "true" : "false");
    }
    if (b->oom)
        return -1;
    pss->close = !is_get;

    uint8_t hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
    if (lws_add_http_common_headers(wsi, status, ctype, b->len - LWS_PRE, &p, end) ||
        lws_add_http_header_by_name(wsi, (const uint8_t *)"cache-control:",
                                    (const uint8_t *)"no-store", 8, &p, end) ||
        (status == HTTP_STATUS_METHOD_NOT_ALLOWED &&
         lws_add_http_header_by_name(wsi, (const uint8_t *)"allow:", (const uint8_t *)"GET", 3,
                                     &p, end)) ||
        (pss->close && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                                    (const uint8_t *)"close", 5, &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* Sends the next chunk of the body; the bytes before it were sent already, so lws may use
 * them as its LWS_PRE space. */
static int send_body(struct lws *wsi, struct http_pss *pss)
{
    size_t left = pss->body.len - LWS_PRE - pss->sent;
    size_t n = left > HTTP_CHUNK ? HTTP_CHUNK : left;
    int final = n == left;
    uint8_t *p = (uint8_t *)pss->body.p + LWS_PRE + pss->sent;
    if (lws_write(wsi, p, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
        return -1;
    pss->sent += n;
    if (!final) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (pss->body.cap > 4 * HTTP_CHUNK)
        buf_free(&pss->body); /* /metrics can be large: do not keep it per connection */
    else
        buf_reset(&pss->body);
    pss->sent = 0;
    if (pss->close)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct http_pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return answer(wsi, pss, in ? (const char *)in : "/",
                      lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
                   ? -1
                   : 0;
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return 0; /* a body we refused: ignored, the connection closes after the answer */
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!pss || pss->body.len <= LWS_PRE)
            return 0;
        return send_body(wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (pss)
            buf_free(&pss->body);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

const struct lws_protocols metrics_http_protocol = {"http", http_cb, sizeof(struct http_pss), 0, 0,
                                                    NULL, 0};
