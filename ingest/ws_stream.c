/* ws_stream.c - the /api/v1/stream protocol callback. One ws_session per connection; every
 * incoming message gets one answer, sent in arrival order (acks wait for the logshipper). */
#include "ws_stream.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/jsonl.h"
#include "../common/log.h"
#include "cors.h"
#include "admission.h"
#include "ingest.h"

#define WS_CLOSE_TRY_AGAIN_LATER ((enum lws_close_status)1013) /* RFC 6455 registry; lws 4.1 has no name */

struct ws_answer {
    struct pipeline_waiter pw;
    struct ws_session *owner;
    int ready;                 /* may be sent */
    struct buf text;           /* LWS_PRE bytes, then the JSON */
    struct ws_answer *next;
};

struct ws_session {
    struct lws *wsi;
    struct ingest *in;
    struct ws_session *prev, *next; /* in->ws_sessions */
    char origin[256];
    char *handshake_token;          /* from Authorization / cookie, wiped once used */
    int authed, auth_pending, counted;
    struct auth_waiter aw;
    struct auth_identity id;
    const char *tenant;
    struct buf msg;                 /* the message being assembled */
    int msg_too_big;
    int held;                       /* msg is a whole batch waiting for pipeline room */
    struct ws_answer *head, *tail;
    int queued;                     /* answers not yet written: a batch's waits for its ack,
                                     * then, like errors, for the socket; the window bounds it */
    int rx_paused;
    lws_dll2_t ack_list;            /* in in->ws_ack_waiters while held or rx_paused */
    struct deadline quiet;          /* in in->ws_quiet, then in->ws_unanswered once pinged */
    int ping_due;                   /* a ping waits for the next writable callback */
    int64_t last_batch_us, last_auth_us;
    int close_code;
    const char *close_reason;
    lws_sorted_usec_list_t auth_sul, stall_sul;
};

/* ---- answers ---- */

static struct ws_answer *answer_new(struct ws_session *s)
{
    struct ws_answer *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->owner = s;
    s->queued++;
    buf_init(&a->text);
    buf_reserve(&a->text, LWS_PRE + 128);
    if (a->text.p) {
        memset(a->text.p, 0, LWS_PRE);
        a->text.len = LWS_PRE;
    }
    if (s->tail)
        s->tail->next = a;
    else
        s->head = a;
    s->tail = a;
    return a;
}

static void answer_free(struct ingest *in, struct ws_answer *a)
{
    a->owner->queued--;
    pipeline_unwait(&in->pipe, &a->pw);
    buf_free(&a->text);
    free(a);
}

static void ws_close(struct ws_session *s, int code, const char *reason)
{
    if (s->close_code)
        return;
    s->close_code = code;
    s->close_reason = reason;
    log_api(LOG_INFO, "websocket close %d: %s", code, reason);
    /* the close frame follows the answers queued before it; a peer that reads none of them
     * is dropped once the stall timeout has passed again */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, (int)s->in->cfg.ws_stall_timeout_s);
    lws_callback_on_writable(s->wsi);
}

static void send_error(struct ws_session *s, int has_seq, int64_t seq, const char *code, const char *message)
{
    struct ws_answer *a = answer_new(s);
    if (!a) {
        ws_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    struct buf *b = &a->text;
    buf_puts(b, "{\"type\":\"error\",\"seq\":");
    if (has_seq)
        buf_printf(b, "%lld", (long long)seq);
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"code\":\"");
    buf_puts(b, code);
    buf_puts(b, "\",\"message\":");
    jsonl_put_string(b, message, strlen(message));
    buf_putc(b, '}');
    a->ready = 1;
    lws_callback_on_writable(s->wsi);
}

/* ---- flow control ---- */

static void stall_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_session *s = lws_container_of(sul, struct ws_session, stall_sul);
    if (s->rx_paused && !s->in->draining)
        ws_close(s, WS_CLOSE_TRY_AGAIN_LATER, s->held ? "pipeline full" : "acks stalled");
}

/* Only a session that holds a batch or has its reads paused has anything to do when acks
 * come, so only those are on in->ws_ack_waiters: walking every session at each ack cost 8 %
 * of a busy ingest's CPU with 10 000 idle WebSockets open. */
static void track_ack_waiter(struct ws_session *s)
{
    int on = s->held || s->rx_paused;
    if (on && lws_dll2_is_detached(&s->ack_list))
        lws_dll2_add_tail(&s->ack_list, &s->in->ws_ack_waiters);
    else if (!on && !lws_dll2_is_detached(&s->ack_list))
        lws_dll2_remove(&s->ack_list);
}

static void update_flow(struct ws_session *s)
{
    /* answers count until written, not until acked: a client that never reads its acks
     * would otherwise have them pile up here while lws holds a write its socket refuses */
    int pause = s->held || s->auth_pending || s->queued >= s->in->cfg.ws_window || s->in->draining || s->close_code;
    if (pause == s->rx_paused) {
        track_ack_waiter(s); /* held may have changed */
        return;
    }
    s->rx_paused = pause;
    track_ack_waiter(s);
    lws_rx_flow_control(s->wsi, !pause);
    if (pause && !s->auth_pending && !s->in->draining)
        lws_sul_schedule(s->in->ctx, 0, &s->stall_sul, stall_cb, (lws_usec_t)s->in->cfg.ws_stall_timeout_s * 1000000);
    else
        lws_sul_cancel(&s->stall_sul);
}

/* ---- batches ---- */

static void on_acked(struct pipeline_waiter *w)
{
    struct ws_answer *a = lws_container_of(w, struct ws_answer, pw);
    a->ready = 1;
    lws_callback_on_writable(a->owner->wsi);
}

/* Tries to admit the held message. 1 when it was handled (answered or waiting), 0 if still full. */
static int process_batch(struct ws_session *s)
{
    struct ingest *in = s->in;
    struct envelope_identity id = {s->id.user, s->id.ccid, s->tenant};
    struct envelope_result *res = &in->result;
    envelope_result_reset(res);
    pipeline_batch_reset(&in->batch);
    json_arena_begin(&in->arena);
    envelope_process(&in->env, s->msg.p ? s->msg.p : "", s->msg.len, &id, ingest_wall_ms(), &in->batch, res);
    json_arena_end(&in->arena);
    if (res->status) {
        ingest_count_result(in, res);
        send_error(s, res->has_seq, res->seq, res->code, res->message);
        return 1;
    }
    if (!res->has_seq) {
        send_error(s, 0, 0, "missing_seq", "every batch needs an integer seq");
        return 1;
    }
    long long retry_ms;
    if (!s->held && sessions_throttle(&s->last_batch_us, lws_now_usecs(), in->cfg.record_min_interval_ms, &retry_ms)) {
        in->sessions.throttled++;
        send_error(s, 1, res->seq, "throttled", "batches come faster than TELEMETRY_RECORD_MIN_INTERVAL");
        return 1;
    }
    uint64_t wait_seq;
    if (ingest_admit(in, &wait_seq))
        return 0;
    ingest_count_result(in, res);
    struct ws_answer *a = answer_new(s);
    if (!a) {
        ws_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return 1;
    }
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "\"type\":\"ack\",\"seq\":%lld,", (long long)res->seq);
    envelope_render_result(res, prefix, &a->text);
    if (wait_seq) {
        a->pw.on_acked = on_acked;
        pipeline_wait(&in->pipe, &a->pw, wait_seq);
        ingest_schedule_flush(in);
    } else {
        a->ready = 1;
        lws_callback_on_writable(s->wsi);
    }
    return 1;
}

/* A session holds a message buffer only while a message is in flight. The last one handed
 * back is kept as the ingest's spare and taken by the next message of any session: idle
 * sessions hold nothing, and busy ones assemble into the same buffer, still in the cache
 * (64 sessions with a buffer each cost 5-9 % more per record than HTTP's one hot body). */
static void msg_take(struct ws_session *s)
{
    struct ingest *in = s->in;
    if (!s->msg.p && in->ws_spare.p) {
        s->msg = in->ws_spare;
        buf_init(&in->ws_spare);
    }
    buf_reset(&s->msg);
}

static void msg_release(struct ws_session *s)
{
    struct ingest *in = s->in;
    if (!s->msg.p)
        return;
    if (!in->ws_spare.p && s->msg.cap <= WS_SPARE_MAX_BYTES) {
        buf_reset(&s->msg);
        in->ws_spare = s->msg;
        buf_init(&s->msg);
    } else {
        buf_free(&s->msg);
    }
}

static void handle_batch(struct ws_session *s)
{
    if (process_batch(s)) {
        s->held = 0;
        msg_release(s);
    } else {
        if (!s->held)
            s->in->pipe.rejected_full++;
        s->held = 1; /* keep it; retried when acks free room */
    }
    update_flow(s);
}

/* ---- authentication ---- */

static void send_auth_ok(struct ws_session *s)
{
    struct ws_answer *a = answer_new(s);
    if (!a)
        return;
    buf_puts(&a->text, "{\"type\":\"auth\",\"ok\":true,\"user\":");
    jsonl_put_string(&a->text, s->id.user, strlen(s->id.user));
    buf_puts(&a->text, ",\"tenantName\":");
    jsonl_put_string(&a->text, s->tenant, strlen(s->tenant));
    buf_printf(&a->text, ",\"window\":%lld,\"maxMessageBytes\":%lld}", s->in->cfg.ws_window, s->in->cfg.ws_max_message_bytes);
    a->ready = 1;
    lws_callback_on_writable(s->wsi);
}

static void on_auth(struct auth_waiter *w, int result, const struct auth_identity *id)
{
    struct ws_session *s = lws_container_of(w, struct ws_session, aw);
    struct ingest *in = s->in;
    s->auth_pending = 0;
    if (result == AUTH_INVALID) {
        ws_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "invalid token");
        return;
    }
    if (result != AUTH_OK) {
        ws_close(s, WS_CLOSE_TRY_AGAIN_LATER, "auth service unavailable");
        return;
    }
    if (s->authed && strcmp(s->id.ccid, id->ccid)) {
        ws_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "token of another tenant");
        return;
    }
    const char *tenant = config_tenant_name(&in->cfg, id->ccid);
    if (!tenant) {
        ws_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "unknown tenant");
        return;
    }
    if (s->origin[0] && !cors_allowed_for(&in->cfg, s->origin, id->ccid)) {
        ws_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "origin not allowed for tenant");
        return;
    }
    if (!s->counted) {
        if (sessions_ws_open(&in->sessions, lws_now_usecs()) != SESS_OK) {
            ws_close(s, WS_CLOSE_TRY_AGAIN_LATER, "too many sessions");
            return;
        }
        s->counted = 1;
    }
    s->id = *id;
    s->tenant = tenant;
    s->authed = 1;
    lws_sul_cancel(&s->auth_sul);
    send_auth_ok(s);
    update_flow(s);
}

static void start_auth(struct ws_session *s, const char *token, size_t len)
{
    s->auth_pending = 1;
    s->last_auth_us = lws_now_usecs();
    s->aw.done = on_auth;
    struct auth_identity id;
    int r = auth_lookup(s->in->auth, token, len, &s->aw, &id);
    if (r != AUTH_PENDING)
        on_auth(&s->aw, r, &id);
    else
        update_flow(s);
}

static void auth_timeout_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_session *s = lws_container_of(sul, struct ws_session, auth_sul);
    if (!s->authed)
        ws_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "authentication timeout");
}

/* {"type":"auth","token":"..."}: 1 and the token when the message is an auth message.
 * A token travels in an Authorization header too, so an auth message is at most
 * TELEMETRY_MAX_HEADER_BYTES + 1 KiB; anything longer is a batch (scanning every 27 KB
 * batch for "auth" was 2 % of the ingest under WebSocket load). */
static int parse_auth(const struct ingest *in, const char *msg, size_t len, json_t **root, const char **token, size_t *tlen)
{
    /* cheap tests first: batches are far more common than auth messages */
    if (len > (size_t)in->cfg.max_header_bytes + 1024 || !memmem(msg, len, "\"auth\"", 6))
        return 0;
    *root = json_loadb(msg, len, 0, NULL);
    json_t *type = json_object_get(*root, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "auth")) {
        json_decref(*root);
        *root = NULL;
        return 0;
    }
    json_t *t = json_object_get(*root, "token");
    *token = json_string_value(t);
    *tlen = json_string_length(t);
    return 1;
}

static void on_message(struct ws_session *s, void *data, size_t len)
{
    json_t *root = NULL;
    const char *token = NULL;
    size_t tlen = 0;
    if (parse_auth(s->in, s->msg.p, s->msg.len, &root, &token, &tlen)) {
        long long retry_ms;
        if (!token) {
            if (s->authed)
                send_error(s, 0, 0, "invalid_envelope", "an auth message needs a token");
            else
                ws_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "auth message without token");
        } else if (s->authed && sessions_throttle(&s->last_auth_us, lws_now_usecs(), s->in->cfg.auth_min_interval_ms, &retry_ms)) {
            s->in->sessions.throttled++;
            send_error(s, 0, 0, "throttled", "authentications come faster than TELEMETRY_AUTH_MIN_INTERVAL");
        } else {
            start_auth(s, token, tlen);
        }
        json_decref(root);
        explicit_bzero(s->msg.p, s->msg.len); /* the token is not left in a shared buffer */
        explicit_bzero(data, len);            /* nor in lws's read buffer */
        msg_release(s);
        return;
    }
    if (!s->authed) {
        ws_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "authenticate first");
        return;
    }
    handle_batch(s);
}

static int on_receive(struct ws_session *s, void *data, size_t len)
{
    struct ingest *in = s->in;
    if (s->close_code)
        return 0;
    if (lws_frame_is_binary(s->wsi)) {
        ws_close(s, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary messages are not accepted");
        return 0;
    }
    if (lws_is_first_fragment(s->wsi))
        msg_take(s);
    if ((long long)(s->msg.len + len) > in->cfg.ws_max_message_bytes) {
        ws_close(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message larger than TELEMETRY_WS_MAX_MESSAGE_BYTES");
        return 0;
    }
    buf_append(&s->msg, data, len);
    in->n.bytes_received += len;
    if (s->msg.oom) {
        ws_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return 0;
    }
    if (lws_is_final_fragment(s->wsi) && !lws_remaining_packet_payload(s->wsi))
        on_message(s, data, len);
    return 0;
}

/* ---- keepalive ----
 * A WebSocket nothing was heard from for TELEMETRY_WS_PING_INTERVAL gets a ping; one still
 * silent at TELEMETRY_WS_IDLE_TIMEOUT is dropped. lws's retry policy did this with a timer
 * per connection in its sorted timer list, whose every insert (one per HTTP request) walked
 * past them: ~20 % of a busy ingest's CPU with 10 000 idle WebSockets open. All quiet
 * deadlines have one length, so two arrival-order queues (deadline.h) hold them: hearing
 * from a peer moves it to the back of the first, in O(1). */

static void on_unanswered(struct deadline *d)
{
    struct ws_session *s = lws_container_of(d, struct ws_session, quiet);
    /* as lws's validity timeout did: no close handshake with a peer that stopped answering */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_WS_PONG_CHECK_GET_PONG, LWS_TO_KILL_ASYNC);
}

static void on_quiet(struct deadline *d)
{
    struct ws_session *s = lws_container_of(d, struct ws_session, quiet);
    struct ingest *in = s->in;
    if (in->ws_unanswered.length_us <= 0) { /* the idle timeout is not longer than the ping interval */
        on_unanswered(d);
        return;
    }
    s->ping_due = 1;
    lws_callback_on_writable(s->wsi);
    deadline_arm(&in->ws_unanswered, d, on_unanswered);
}

static void heard_from(struct ws_session *s)
{
    deadline_arm(&s->in->ws_quiet, &s->quiet, on_quiet);
}

void ws_stream_init_keepalive(struct ingest *in)
{
    long long ping = in->cfg.ws_ping_interval_s, idle = in->cfg.ws_idle_timeout_s;
    deadline_queue_init(&in->ws_quiet, in->ctx, (ping < idle ? ping : idle) * 1000000);
    deadline_queue_init(&in->ws_unanswered, in->ctx, ping < idle ? (idle - ping) * 1000000 : 0);
}

/* ---- writing ---- */

/* RFC 6455 5.2, server to client: FIN and the text opcode, no mask, the length in 7, 7+16 or
 * 7+64 bits, then the payload. */
static void put_text_frame(struct buf *out, const char *payload, size_t len)
{
    uint8_t h[10];
    size_t n = 0;
    h[n++] = 0x81;
    if (len < 126) {
        h[n++] = (uint8_t)len;
    } else if (len < 65536) {
        h[n++] = 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    buf_append(out, h, n);
    buf_append(out, payload, len);
}

/* Every answer ready at the head of the queue leaves in one write, each its own text frame:
 * acks come in bursts (one logshipper ack releases the batches of a whole frame; under load
 * 5-6 per session at a time), and one send per answer was one syscall, one TCP segment and
 * one wake-up of the client each. lws passes an LWS_WRITE_HTTP write on a WebSocket through
 * as it is (and keeps what the socket did not take for the next writable callback). */
static int send_ready_answers(struct ws_session *s)
{
    static const uint8_t pre[LWS_PRE];
    struct buf *out = &s->in->ws_out;
    buf_reset(out);
    buf_append(out, pre, LWS_PRE);
    while (s->head && s->head->ready && out->len < LWS_PRE + WS_WRITE_MAX_BYTES) {
        struct ws_answer *a = s->head;
        s->head = a->next;
        if (!s->head)
            s->tail = NULL;
        put_text_frame(out, a->text.p + LWS_PRE, a->text.len - LWS_PRE);
        answer_free(s->in, a);
    }
    if (out->oom)
        return -1;
    return lws_write(s->wsi, (uint8_t *)out->p + LWS_PRE, out->len - LWS_PRE, LWS_WRITE_HTTP) < 0 ? -1 : 0;
}

static int on_writeable(struct ws_session *s)
{
    struct ws_answer *a = s->head;
    if (s->ping_due) {
        /* with a payload: lws 4.1 calls LWS_CALLBACK_RECEIVE_PONG only for a pong that has one */
        static uint8_t ping[LWS_PRE + 3] = {[LWS_PRE] = 't', 'l', 'm'};
        s->ping_due = 0;
        if (lws_write(s->wsi, ping + LWS_PRE, 3, LWS_WRITE_PING) < 0)
            return -1;
        if ((a && a->ready) || s->close_code || s->in->draining)
            lws_callback_on_writable(s->wsi); /* one write a callback */
        return 0;
    }
    if (a && a->ready) {
        if (send_ready_answers(s))
            return -1;
        /* more to send, or a close (requested or for draining) waiting behind this answer */
        if ((s->head && s->head->ready) || (!s->head && (s->close_code || s->in->draining)))
            lws_callback_on_writable(s->wsi);
        update_flow(s);
        return 0;
    }
    if (s->close_code) {
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code, (uint8_t *)s->close_reason,
                         strlen(s->close_reason));
        return -1;
    }
    if (s->in->draining && !s->head) {
        lws_close_reason(s->wsi, LWS_CLOSE_STATUS_GOINGAWAY, (uint8_t *)"server shutting down", 20);
        return -1;
    }
    return 0;
}

/* ---- lifecycle ---- */

static void copy_handshake(struct ws_session *s)
{
    char tmp[8300];
    s->origin[0] = '\0';
    int n = lws_hdr_total_length(s->wsi, WSI_TOKEN_ORIGIN);
    if (n > 0 && n < (int)sizeof(s->origin))
        lws_hdr_copy(s->wsi, s->origin, sizeof(s->origin), WSI_TOKEN_ORIGIN);
    else if (n > 0)
        snprintf(s->origin, sizeof(s->origin), "invalid:");
    n = lws_hdr_total_length(s->wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && n < (int)sizeof(tmp) && lws_hdr_copy(s->wsi, tmp, sizeof(tmp), WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
        !strncasecmp(tmp, "Bearer ", 7)) {
        s->handshake_token = strdup(tmp + 7);
    } else if (lws_hdr_total_length(s->wsi, WSI_TOKEN_HTTP_COOKIE) > 0) {
        size_t max = sizeof(tmp);
        if (lws_http_cookie_get(s->wsi, "tlm_token", tmp, &max) == 0)
            s->handshake_token = strndup(tmp, max);
    }
    explicit_bzero(tmp, sizeof(tmp));
}

static void session_end(struct ws_session *s)
{
    struct ingest *in = s->in;
    if (!in)
        return;
    if (s->aw.entry)
        auth_cancel(in->auth, &s->aw);
    lws_sul_cancel(&s->auth_sul);
    lws_sul_cancel(&s->stall_sul);
    deadline_cancel(&s->quiet);
    if (!lws_dll2_is_detached(&s->ack_list))
        lws_dll2_remove(&s->ack_list);
    while (s->head) {
        struct ws_answer *a = s->head;
        s->head = a->next;
        answer_free(in, a);
    }
    s->tail = NULL;
    if (s->counted)
        sessions_ws_close(&in->sessions);
    if (s->handshake_token) {
        explicit_bzero(s->handshake_token, strlen(s->handshake_token));
        free(s->handshake_token);
    }
    buf_free(&s->msg);
    if (s->prev)
        s->prev->next = s->next;
    else if (in->ws_sessions == s)
        in->ws_sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    in->ws_count--;
    s->in = NULL;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct ws_session *s = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: /* lws asks the protocol the upgrade goes to */
        return admission_confirm_upgrade(wsi);
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: /* lws sends these to the default protocol */
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
    case LWS_CALLBACK_WSI_DESTROY:
        return admission_connection_event(wsi, reason);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        memset(s, 0, sizeof(*s));
        s->wsi = wsi;
        copy_handshake(s);
        return 0;
    case LWS_CALLBACK_ESTABLISHED: {
        struct ingest *ing = lws_get_vhost_user(lws_get_vhost(wsi));
        s->wsi = wsi;
        s->in = ing;
        s->next = ing->ws_sessions;
        if (s->next)
            s->next->prev = s;
        ing->ws_sessions = s;
        ing->ws_count++;
        buf_init(&s->msg);
        heard_from(s);
        if (s->handshake_token) {
            char *t = s->handshake_token;
            s->handshake_token = NULL;
            start_auth(s, t, strlen(t));
            explicit_bzero(t, strlen(t));
            free(t);
        }
        if (!s->authed && !s->close_code)
            lws_sul_schedule(ing->ctx, 0, &s->auth_sul, auth_timeout_cb, (lws_usec_t)ing->cfg.ws_auth_timeout_s * 1000000);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        if (!s->in)
            return -1;
        heard_from(s);
        return on_receive(s, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (s->in)
            heard_from(s);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return s->in ? on_writeable(s) : -1;
    case LWS_CALLBACK_CLOSED:
        session_end(s);
        return 0;
    default:
        return 0;
    }
}

void ws_stream_on_ack(struct ingest *in)
{
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, next, lws_dll2_get_head(&in->ws_ack_waiters)) {
        struct ws_session *s = lws_container_of(d, struct ws_session, ack_list);
        if (s->held)
            handle_batch(s); /* may take s off the list: next is already read */
        else
            update_flow(s);
    } lws_end_foreach_dll_safe(d, next);
}

void ws_stream_drain(struct ingest *in)
{
    for (struct ws_session *s = in->ws_sessions; s; s = s->next) {
        update_flow(s);
        lws_callback_on_writable(s->wsi);
    }
}

static const struct lws_protocol_vhost_options ws_default_opt = {NULL, NULL, "default", "1"};
const struct lws_protocol_vhost_options ws_stream_pvo = {NULL, &ws_default_opt, "tlm-stream", ""};

/* rx_buffer_size: lws reads a WebSocket this much at a time (one read for a 100-record
 * batch); the per-connection buffer of that size lws allocates costs no memory (ws_rxbuf.h). */
const struct lws_protocols ws_stream_protocol = {"tlm-stream", ws_callback, sizeof(struct ws_session),
                                                 WS_RX_BUFFER_BYTES, 0, NULL, 0};
