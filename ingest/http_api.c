/* http_api.c - the HTTP side of :8107: one lws protocol callback, state in a per-connection
 * struct. A POST is answered 202 only after the logshipper acked every accepted record. */
#include "http_api.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/jsonl.h"
#include "../common/log.h"
#include "admission.h"
#include "cors.h"
#include "gzip_body.h"
#include "ingest.h"

enum route { ROUTE_NONE, ROUTE_TELEMETRY, ROUTE_STREAM, ROUTE_LIVE, ROUTE_READY };

struct http_session {
    struct lws *wsi;
    struct ingest *in;
    enum route route;
    int active;            /* a request is in flight (counted in in->inflight) */
    int body_done;
    int gzip;
    struct gzip_body gz;
    size_t raw_bytes;
    struct buf body;
    lws_dll2_t parse_list;  /* in in->parse_queue: body read, not parsed yet */
    int auth_state;        /* AUTH_PENDING, AUTH_OK, ... ; -1 no token */
    struct auth_identity id;
    struct auth_waiter aw;
    uint64_t session_key;
    char origin[256];      /* the Origin header, "" when absent */
    int cors_ok;           /* add CORS headers to the answer */
    struct pipeline_waiter pw;
    struct deadline ack_deadline;
    struct deadline body_deadline; /* the whole body must arrive within TELEMETRY_IDLE_TIMEOUT */
    /* the answer */
    int status;            /* 0 while not decided */
    int close_after;
    const char *retry_after;
    char retry_buf[24];
    const char *allow;
    const char *www_authenticate; /* the challenge of a 401 (RFC 6750 3) */
    struct buf resp;
    int writing;
};

static struct ingest *ingest_of(struct lws *wsi)
{
    return lws_get_vhost_user(lws_get_vhost(wsi));
}

/* ---- answering ---- */

/* Answers with what s->resp holds. */
static void respond_prepared(struct http_session *s, int status)
{
    if (s->status)
        return;
    s->status = status;
    s->in->answers_ready = 1;
    lws_callback_on_writable(s->wsi);
}

static void respond(struct http_session *s, int status, const char *body, size_t len)
{
    if (s->status)
        return;
    buf_reset(&s->resp);
    buf_append(&s->resp, body, len);
    respond_prepared(s, status);
}

static void respond_error(struct http_session *s, int status, const char *code, const char *message)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"error\":{\"code\":\"");
    buf_puts(&b, code);
    buf_puts(&b, "\",\"message\":");
    jsonl_put_string(&b, message, strlen(message));
    buf_puts(&b, "}}");
    if (status == 503 && !s->retry_after)
        s->retry_after = "1";
    respond(s, status, b.p ? b.p : "{}", b.len);
    buf_free(&b);
    log_api(LOG_INFO, "%d %s: %s", status, code, message);
}

static void parse_unqueue(struct http_session *s)
{
    if (!lws_dll2_is_detached(&s->parse_list))
        lws_dll2_remove(&s->parse_list);
}

static void request_end(struct http_session *s)
{
    struct ingest *in = s->in;
    if (!in)
        return;
    parse_unqueue(s);
    if (s->aw.entry)
        auth_cancel(in->auth, &s->aw);
    pipeline_unwait(&in->pipe, &s->pw);
    deadline_cancel(&s->ack_deadline);
    deadline_cancel(&s->body_deadline);
    gzip_body_free(&s->gz);
    if (s->active) {
        s->active = 0;
        in->inflight--;
    }
}

static int add_header(struct lws *wsi, const char *name, const char *value, uint8_t **p, uint8_t *end)
{
    return lws_add_http_header_by_name(wsi, (const uint8_t *)name, (const uint8_t *)value, (int)strlen(value), p, end);
}

/* Vary: Origin on every API answer and any answer to an Origin; the allow headers only
 * for allowed origins. */
static int add_cors_headers(struct http_session *s, uint8_t **p, uint8_t *end)
{
    if (add_header(s->wsi, "vary:", "Origin", p, end))
        return -1;
    if (!s->cors_ok)
        return 0;
    if (add_header(s->wsi, "access-control-allow-origin:", s->origin, p, end) ||
        add_header(s->wsi, "access-control-allow-credentials:", "true", p, end))
        return -1;
    if (s->status == 204 && (s->route == ROUTE_TELEMETRY || s->route == ROUTE_STREAM))
        return add_header(s->wsi, "access-control-allow-methods:", s->route == ROUTE_STREAM ? "GET, OPTIONS" : "POST, OPTIONS", p, end) ||
               add_header(s->wsi, "access-control-allow-headers:", "Authorization, Content-Type, Content-Encoding", p, end) ||
               add_header(s->wsi, "access-control-max-age:", "600", p, end);
    return add_header(s->wsi, "access-control-expose-headers:", "Retry-After", p, end);
}

static int write_answer(struct http_session *s)
{
    uint8_t hbuf[LWS_PRE + 4096];
    uint8_t *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof(hbuf) - 1;
    struct ingest *in = s->in;
    ingest_count_status(in, s->status);
    if (lws_add_http_common_headers(s->wsi, (unsigned)s->status, "application/json", s->resp.len, &p, end))
        return -1;
    if (s->retry_after &&
        lws_add_http_header_by_name(s->wsi, (const uint8_t *)"retry-after:", (const uint8_t *)s->retry_after,
                                    (int)strlen(s->retry_after), &p, end))
        return -1;
    if (s->allow && lws_add_http_header_by_name(s->wsi, (const uint8_t *)"allow:", (const uint8_t *)s->allow,
                                                (int)strlen(s->allow), &p, end))
        return -1;
    if (s->www_authenticate && add_header(s->wsi, "www-authenticate:", s->www_authenticate, &p, end))
        return -1;
    /* an API answer depends on Origin whether one was sent or not: caches must know */
    if ((s->origin[0] || s->route == ROUTE_TELEMETRY || s->route == ROUTE_STREAM) && add_cors_headers(s, &p, end))
        return -1;
    if (s->close_after &&
        lws_add_http_header_by_token(s->wsi, WSI_TOKEN_CONNECTION, (const uint8_t *)"close", 5, &p, end))
        return -1;
    if (lws_add_http_header_by_name(s->wsi, (const uint8_t *)"cache-control:", (const uint8_t *)"no-store", 8, &p, end))
        return -1;
    /* a small answer leaves in one write with its headers (one syscall, one segment) */
    if (s->resp.len && s->resp.len <= (size_t)(end - p) - 4) {
        if (lws_finalize_http_header(s->wsi, &p, end))
            return -1;
        memcpy(p, s->resp.p, s->resp.len);
        p += s->resp.len;
        if (lws_write(s->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0)
            return -1;
    } else if (lws_finalize_write_http_header(s->wsi, start, &p, end)) {
        return -1;
    } else if (s->resp.len) {
        if (buf_reserve(&s->resp, LWS_PRE))
            return -1;
        memmove(s->resp.p + LWS_PRE, s->resp.p, s->resp.len);
        if (lws_write(s->wsi, (uint8_t *)s->resp.p + LWS_PRE, s->resp.len, LWS_WRITE_HTTP_FINAL) < 0)
            return -1;
    }
    request_end(s);
    int close = s->close_after || in->draining;
    s->status = 0;
    s->route = ROUTE_NONE;
    if (close)
        return -1;
    return lws_http_transaction_completed(s->wsi) ? -1 : 0;
}

/* ---- processing a batch once both body and identity are there ---- */

/* Per-connection buffers are reused across requests, but a large one is given back. */
static void release_if_large(struct buf *b)
{
    if (b->cap > 64 * 1024)
        buf_free(b);
    else
        buf_reset(b);
}

static void on_acked(struct pipeline_waiter *w)
{
    struct http_session *s = lws_container_of(w, struct http_session, pw);
    deadline_cancel(&s->ack_deadline);
    respond_prepared(s, 202);
}

static void on_ack_timeout(struct deadline *d)
{
    struct http_session *s = lws_container_of(d, struct http_session, ack_deadline);
    pipeline_unwait(&s->in->pipe, &s->pw);
    s->in->n.ack_timeouts++;
    respond_error(s, 503, "ack_timeout",
                  "the records are buffered but the log shipper has not confirmed them in time; retry with the same batchId");
}

/* Once per request: from the parse queue (or at once for a request without a body), when
 * both its body and its identity are there. */
static void process_batch(struct http_session *s)
{
    struct ingest *in = s->in;
    if (s->status || s->pw.linked || !s->body_done || s->auth_state == AUTH_PENDING)
        return; /* answered, waiting for its ack, or not ready */
    if (s->auth_state == -1) {
        s->www_authenticate = "Bearer realm=\"telemetry\"";
        respond_error(s, 401, "missing_token", "an Authorization: Bearer <token> header is required");
        return;
    }
    if (s->auth_state == AUTH_INVALID) {
        s->www_authenticate = "Bearer realm=\"telemetry\", error=\"invalid_token\"";
        respond_error(s, 401, "invalid_token", "the token was refused by the authentication service");
        return;
    }
    if (s->auth_state == AUTH_UNAVAILABLE) {
        s->retry_after = "5";
        respond_error(s, 503, "auth_unavailable", "the authentication service is unreachable or too slow");
        return;
    }
    if (s->gzip) {
        int st = gzip_body_finish(&s->gz);
        if (st != GZIP_OK) {
            respond_error(s, 400, "bad_gzip", "the gzip body is truncated or corrupt");
            return;
        }
    }
    const char *tenant = config_tenant_name(&in->cfg, s->id.ccid);
    if (!tenant) {
        respond_error(s, 403, "unknown_tenant", "the token's contact center is not configured on this service");
        return;
    }
    if (s->origin[0] && !cors_allowed_for(&in->cfg, s->origin, s->id.ccid)) {
        s->cors_ok = 0;
        respond_error(s, 403, "origin_not_allowed", "this origin is not allowed for the token's tenant");
        return;
    }
    long long retry_ms = 0;
    int sess = sessions_http_batch(&in->sessions, s->session_key, lws_now_usecs(), &retry_ms);
    if (sess != SESS_OK) {
        snprintf(s->retry_buf, sizeof(s->retry_buf), "%lld", sess == SESS_THROTTLED ? (retry_ms + 999) / 1000 : 5);
        s->retry_after = s->retry_buf;
        if (sess == SESS_THROTTLED)
            respond_error(s, 429, "throttled", "batches of this session come faster than TELEMETRY_RECORD_MIN_INTERVAL");
        else
            respond_error(s, 429, "too_many_sessions", "the service has TELEMETRY_MAX_SESSION sessions");
        return;
    }
    struct envelope_identity id = {s->id.user, s->id.ccid, tenant};
    struct envelope_result *res = &in->result;
    envelope_result_reset(res);
    pipeline_batch_reset(&in->batch);
    json_arena_begin(&in->arena);
    envelope_process(&in->env, s->body.p ? s->body.p : "", s->body.len, &id, ingest_wall_ms(),
                     &in->batch, res);
    json_arena_end(&in->arena);
    release_if_large(&s->body); /* the lines are built: a waiting request holds no body */
    ingest_count_result(in, res);
    if (res->status) {
        respond_error(s, res->status, res->code, res->message);
        return;
    }
    uint64_t wait_seq;
    if (ingest_admit(in, &wait_seq)) {
        respond_error(s, 503, "pipeline_full", "the service is holding as many records as it may; retry later");
        return;
    }
    buf_reset(&s->resp);
    envelope_render_result(res, NULL, &s->resp);
    if (!wait_seq) {
        respond_prepared(s, 202);
        return;
    }
    s->pw.on_acked = on_acked;
    pipeline_wait(&in->pipe, &s->pw, wait_seq);
    deadline_arm(&in->ack_deadlines, &s->ack_deadline, on_ack_timeout);
    ingest_schedule_flush(in);
}

/* Bodies read in a loop pass are parsed after it, in the order they completed, in slices of
 * in->parse_slice.slice_us with a poll between slices. Parsing each body in its read callback put
 * the answers of a pass behind the parsing of every body read before them in fd order;
 * parsing all of a pass's bodies at once put acks and answers behind the whole batch (at 32
 * connections: 14 ms). A slice's frames leave at its end, and acks are read and answers
 * written before the next slice. A slice is 1 ms unless a loop pass's poll takes long
 * (parse_slice.h). */
static void parse_queued_cb(lws_sorted_usec_list_t *sul)
{
    struct ingest *in = lws_container_of(sul, struct ingest, parse_sul);
    in->parse_scheduled = 0;
    lws_dll2_t *next;
    int64_t start = lws_now_usecs(), until = start + in->parse_slice.slice_us;
    while ((next = lws_dll2_get_head(&in->parse_queue))) {
        if (in->answers_ready || lws_now_usecs() >= until) {
            in->answers_ready = 0;
            /* the rest after one more poll, where acks are read and answers written: answers
             * made ready (acks came) go out first */
            in->parse_scheduled = 1;
            /* 1 µs, not 0: a timer due at the microsecond lws is servicing runs in the same
             * round, before the poll */
            lws_sul_schedule(in->ctx, 0, &in->parse_sul, parse_queued_cb, 1);
            break;
        }
        struct http_session *s = lws_container_of(next, struct http_session, parse_list);
        parse_unqueue(s);
        process_batch(s);
    }
    ingest_flush(in, 1); /* the frames of this slice leave now, all of them */
    in->parse_slice.parsed_us += lws_now_usecs() - start;
}

static void parse_later(struct http_session *s)
{
    struct ingest *in = s->in;
    if (!lws_dll2_is_detached(&s->parse_list))
        return;
    lws_dll2_add_tail(&s->parse_list, &in->parse_queue);
    if (!in->parse_scheduled) {
        in->parse_scheduled = 1;
        lws_sul_schedule(in->ctx, 0, &in->parse_sul, parse_queued_cb, 0);
    }
}

/* GAuth answered for this request's token. A complete body goes (back) to the parse queue:
 * if it is still queued it stays in its place. Processing it here while it was queued
 * processed it twice, the second time on its released body (400 invalid_json, or no answer
 * at all once the first one's ack came). */
static void on_auth(struct auth_waiter *w, int result, const struct auth_identity *id)
{
    struct http_session *s = lws_container_of(w, struct http_session, aw);
    s->auth_state = result;
    if (result == AUTH_OK)
        s->id = *id;
    if (s->body_done && !s->status)
        parse_later(s);
}

/* ---- request start ---- */

static int header_copy(struct lws *wsi, enum lws_token_indexes t, char *dst, int cap)
{
    int n = lws_hdr_total_length(wsi, t);
    if (n <= 0)
        return 0;
    if (n >= cap)
        return -1;
    return lws_hdr_copy(wsi, dst, cap, t) < 0 ? -1 : n;
}

static void start_auth(struct http_session *s)
{
    char authz[8300];
    int n = header_copy(s->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, authz, sizeof(authz));
    size_t used = n > 0 ? (size_t)n : 0;
    s->auth_state = -1;
    if (n < 0) {
        s->auth_state = AUTH_INVALID;
    } else if (n > 0) {
        if (n > 7 && !strncasecmp(authz, "Bearer ", 7)) {
            const char *tok = authz + 7;
            while (*tok == ' ')
                tok++;
            s->aw.done = on_auth;
            s->session_key = sessions_key(&s->in->sessions, tok, strlen(tok));
            s->auth_state = auth_lookup(s->in->auth, tok, strlen(tok), &s->aw, &s->id);
        } else {
            s->auth_state = AUTH_INVALID;
        }
    }
    explicit_bzero(authz, used); /* the token does not outlive this function */
}

/* A body sent slowly (slowloris) is cut off whatever its pace: lws's own timeout restarts
 * with every chunk. */
static void on_body_timeout(struct deadline *d)
{
    struct http_session *s = lws_container_of(d, struct http_session, body_deadline);
    if (s->body_done || s->status)
        return;
    s->close_after = 1;
    respond_error(s, 408, "request_timeout", "the body did not arrive within TELEMETRY_IDLE_TIMEOUT");
}

static int media_type_is_json(const char *ct)
{
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    return n == 16 && !strncasecmp(ct, "application/json", 16);
}

/* curl (bodies over 1 KiB) and .NET send Expect: 100-continue and hold the body until the
 * interim answer comes, or a timeout (curl: 1 s) runs out: answer it once the request's
 * headers have passed every check that can refuse it. */
static void answer_expect_continue(struct http_session *s)
{
    static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char v[32];
    if (header_copy(s->wsi, WSI_TOKEN_HTTP_EXPECT, v, sizeof(v)) <= 0 || strcasecmp(v, "100-continue"))
        return;
    uint8_t buf[LWS_PRE + sizeof(interim)];
    memcpy(buf + LWS_PRE, interim, sizeof(interim) - 1);
    /* lws keeps what the socket does not take and sends it before the final answer */
    (void)lws_write(s->wsi, buf + LWS_PRE, sizeof(interim) - 1, LWS_WRITE_HTTP);
}

static void start_telemetry_post(struct http_session *s)
{
    struct ingest *in = s->in;
    char ct[256], ce[64], cl[32];
    int n = header_copy(s->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ct, sizeof(ct));
    if (n <= 0 || !media_type_is_json(ct)) {
        s->close_after = 1;
        respond_error(s, 415, "unsupported_media_type", "Content-Type must be application/json");
        return;
    }
    n = header_copy(s->wsi, WSI_TOKEN_HTTP_CONTENT_ENCODING, ce, sizeof(ce));
    if (n < 0 || (n > 0 && strcasecmp(ce, "gzip") && strcasecmp(ce, "identity"))) {
        s->close_after = 1;
        respond_error(s, 415, "unsupported_encoding", "Content-Encoding must be gzip or identity");
        return;
    }
    s->gzip = n > 0 && !strcasecmp(ce, "gzip");
    /* exactly one plain Content-Length and no Transfer-Encoding: anything else could make
     * this server and a proxy in front of it disagree on where the body ends */
    if (lws_hdr_total_length(s->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        s->close_after = 1;
        respond_error(s, 411, "length_required", "send the body with a Content-Length (chunked bodies are not accepted)");
        return;
    }
    n = header_copy(s->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof(cl));
    long long clen = -1;
    if (n > 0) {
        char *endp;
        clen = strtoll(cl, &endp, 10);
        if (*endp || !isdigit((unsigned char)cl[0]) || clen < 0) {
            s->close_after = 1;
            respond_error(s, 400, "invalid_request", "Content-Length must be one decimal number");
            return;
        }
    }
    if (clen > in->cfg.max_body_bytes) {
        s->close_after = 1;
        respond_error(s, 413, "body_too_large", "the body is larger than TELEMETRY_MAX_BODY_BYTES");
        return;
    }
    /* a full pipeline refuses before reading the body: under a stall, bodies that cannot be
     * kept would otherwise sit in memory beside the buffer */
    if (in->pipe.records >= in->pipe.max_records ||
        in->pipe.bytes + (uint64_t)(clen > 0 ? clen : 0) > in->pipe.max_bytes) {
        in->pipe.rejected_full++;
        s->close_after = 1;
        respond_error(s, 503, "pipeline_full", "the service is holding as many records as it may; retry later");
        return;
    }
    if (s->gzip && gzip_body_begin(&s->gz) != GZIP_OK) {
        respond_error(s, 503, "pipeline_full", "out of memory");
        return;
    }
    if (s->gzip)
        in->n.batches_gzip++;
    else if (clen > 0 && buf_reserve(&s->body, (size_t)clen)) /* one allocation, no regrowth copies */
        s->body.oom = 0;
    if (clen > 0)
        answer_expect_continue(s);
    start_auth(s);
    deadline_arm(&in->body_deadlines, &s->body_deadline, on_body_timeout);
    if (clen <= 0) { /* no body will follow */
        s->body_done = 1;
        process_batch(s);
    }
}

/* A request pipelined behind one still waiting for its answer: not supported (lws 4.1 cannot
 * hold it back), so the connection is closed; the client retries both. */
static void pipelined_close(struct http_session *s)
{
    log_api(LOG_INFO, "pipelined request behind an unanswered one: closing the connection");
    s->in->n.pipelined_closed++;
    request_end(s);
    s->status = 0;
    s->route = ROUTE_NONE;
}

static int on_http(struct http_session *s, const char *uri)
{
    struct ingest *in = s->in;
    char *muri;
    int mlen;
    int method = lws_http_get_uri_and_method(s->wsi, &muri, &mlen);
    s->route = ROUTE_NONE;
    s->status = 0;
    s->close_after = 0;
    s->retry_after = NULL;
    s->allow = NULL;
    s->www_authenticate = NULL;
    s->body_done = 0;
    s->gzip = 0;
    s->raw_bytes = 0;
    s->auth_state = -1;
    buf_reset(&s->body);
    buf_reset(&s->resp);
    s->origin[0] = '\0';
    if (header_copy(s->wsi, WSI_TOKEN_ORIGIN, s->origin, sizeof(s->origin)) < 0)
        snprintf(s->origin, sizeof(s->origin), "invalid:");
    s->cors_ok = s->origin[0] && cors_allowed_any(&in->cfg, s->origin);
    s->active = 1;
    in->inflight++;
    if (in->draining) {
        s->close_after = 1;
        respond_error(s, 503, "shutting_down", "this instance is shutting down; retry");
        return 0;
    }
    /* Only POST /api/v1/telemetry keeps the connection: lws 4.1 wedges on a request that was
     * pipelined behind another and then waits for its answer (SECURITY.md, known limits),
     * so every other answer closes and nothing can be queued behind it. */
    s->close_after = !(method == LWSHUMETH_POST && !strcmp(uri, "/api/v1/telemetry"));
    if (!strcmp(uri, "/health/live") || !strcmp(uri, "/health/ready")) {
        if (method != LWSHUMETH_GET && method != LWSHUMETH_HEAD) {
            s->allow = "GET, HEAD";
            respond_error(s, 405, "method_not_allowed", "use GET");
            return 0;
        }
        if (!strcmp(uri, "/health/live")) {
            static const char ok[] = "{\"status\":\"ok\"}";
            respond(s, 200, ok, sizeof(ok) - 1);
            return 0;
        }
        int link_up, gauth_up;
        int ready = ingest_ready(in, &link_up, &gauth_up);
        char body[160];
        int len = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"checks\":{\"logshipper\":%s,\"gauth\":%s}}",
                           ready ? "ok" : "not_ready", link_up ? "true" : "false", gauth_up ? "true" : "false");
        respond(s, ready ? 200 : 503, body, (size_t)len);
        return 0;
    }
    if (!strcmp(uri, "/api/v1/telemetry")) {
        if (method == LWSHUMETH_POST) {
            s->route = ROUTE_TELEMETRY;
            start_telemetry_post(s);
            return 0;
        }
        s->allow = "POST, OPTIONS";
        if (method == LWSHUMETH_OPTIONS) {
            s->route = ROUTE_TELEMETRY;
            if (s->origin[0] && !s->cors_ok) {
                respond_error(s, 403, "origin_not_allowed", "this origin is not allowed for any tenant");
                return 0;
            }
            respond(s, 204, "", 0);
            return 0;
        }
        respond_error(s, 405, "method_not_allowed", "use POST");
        return 0;
    }
    if (!strcmp(uri, "/api/v1/stream")) { /* the WebSocket upgrade never reaches here */
        s->allow = "GET, OPTIONS";
        if (method == LWSHUMETH_OPTIONS) {
            s->route = ROUTE_STREAM;
            if (s->origin[0] && !s->cors_ok) {
                respond_error(s, 403, "origin_not_allowed", "this origin is not allowed for any tenant");
                return 0;
            }
            respond(s, 204, "", 0);
            return 0;
        }
        respond_error(s, method == LWSHUMETH_GET ? 426 : 405, method == LWSHUMETH_GET ? "upgrade_required" : "method_not_allowed",
                      "this path serves WebSocket streams only");
        return 0;
    }
    respond_error(s, 404, "not_found", "no such path");
    return 0;
}

static int on_body(struct http_session *s, const char *data, size_t len)
{
    struct ingest *in = s->in;
    if (s->route != ROUTE_TELEMETRY || s->status)
        return 0; /* answered already: the rest is discarded */
    if (s->body_done) {
        /* lws 4.1 hands a request pipelined behind this one over as more body while this
         * one waits (for its parse or its ack): not supported, drop the connection */
        pipelined_close(s);
        return -1;
    }
    s->raw_bytes += len;
    in->n.bytes_received += len;
    if ((long long)s->raw_bytes > in->cfg.max_body_bytes) {
        s->close_after = 1;
        respond_error(s, 413, "body_too_large", "the body is larger than TELEMETRY_MAX_BODY_BYTES");
        return 0;
    }
    if (s->gzip) {
        size_t before = s->body.len;
        int st = gzip_body_feed(&s->gz, data, len, &s->body, (size_t)in->cfg.max_decompressed_bytes);
        in->n.bytes_inflated += s->body.len - before;
        if (st == GZIP_TOO_LARGE) {
            s->close_after = 1;
            respond_error(s, 413, "decompressed_too_large", "the inflated body is larger than TELEMETRY_MAX_DECOMPRESSED_BYTES");
        } else if (st == GZIP_BAD) {
            s->close_after = 1;
            respond_error(s, 400, "bad_gzip", "the gzip body is corrupt");
        }
        return 0;
    }
    buf_append(&s->body, data, len);
    if (s->body.oom) {
        s->close_after = 1;
        respond_error(s, 503, "pipeline_full", "out of memory");
    }
    return 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct http_session *s = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (s->active) { /* the previous request on this connection is not answered yet */
            pipelined_close(s);
            return -1;
        }
        s->wsi = wsi;
        s->in = ingest_of(wsi);
        return on_http(s, in);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(s, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        deadline_cancel(&s->body_deadline);
        if (s->body_done) {
            /* lws 4.1 completes the body again, with nothing consumed, for every service of
             * a request pipelined behind this one while it waits (for its parse or its ack):
             * answering 0 here made lws spin on it for ever. Drop the connection. */
            pipelined_close(s);
            return -1;
        }
        if (s->route == ROUTE_TELEMETRY && !s->status) {
            s->body_done = 1;
            parse_later(s);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!s->status || s->pw.linked)
            return 0;
        return write_answer(s);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        request_end(s);
        buf_free(&s->body);
        buf_free(&s->resp);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return admission_confirm_upgrade(wsi);
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
    case LWS_CALLBACK_WSI_DESTROY:
        return admission_connection_event(wsi, reason);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        struct ingest *ing = lws_get_vhost_user(lws_get_vhost(wsi));
        if (ing && ing->auth)
            auth_service(ing->auth);
        return 0;
    }
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

const struct lws_protocols http_api_protocol = {"http", http_callback, sizeof(struct http_session), 0, 0, NULL, 0};
