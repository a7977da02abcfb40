/* main.c - tlm-ingest: configuration, the lws context on TELEMETRY_LISTEN:TELEMETRY_PORT,
 * the link to the logshipper, timers, and a SIGTERM drain. Wiring only. */
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "../common/log.h"
#include "event_loop.h"
#include "http_api.h"
#include "ingest.h"
#include "ws_rxbuf.h"
#include "ws_stream.h"

static volatile sig_atomic_t got_signal;
static struct lws_context *signal_ctx;

static void on_signal(int sig)
{
    got_signal = sig;
    if (signal_ctx)
        lws_cancel_service(signal_ctx);
}

int ingest_admit(struct ingest *in, uint64_t *wait_seq)
{
    return pipeline_admit(&in->pipe, &in->batch, lws_now_usecs(), wait_seq);
}

/* Sends the open frame unless INGEST_MAX_INFLIGHT_FRAMES are already on their way: then
 * records of concurrent requests keep gathering in it until an ack comes (or the frame has
 * waited TELEMETRY_TRACES_BULK_TIME), so a busy ingest sends fewer, larger frames and both
 * daemons make fewer syscalls and context switches per record; an idle one sends at once. */
static void flush_cb(lws_sorted_usec_list_t *sul)
{
    ingest_flush(lws_container_of(sul, struct ingest, flush_sul), 0);
}

/* The two daemons of a pod often share a core (a CPU limit of one core or less, or pinned as
 * `make bench` does). Under load the ingest never waits in poll, and the scheduler (CFS, or
 * EEVDF since Linux 6.6; this host runs 6.18) may then leave it the core for the rest of its
 * slice after a frame woke the logshipper: measured at 100 x 32,
 * 1-2 % of the logshipper's wake-ups waited 3-4 ms (p50 17 µs), and every request of such a
 * frame waited as long for its ack (p99 / p50 of the answers 1.6-1.8). So once frames have
 * left while bodies wait in the parse queue (the ingest goes on parsing, not to poll), it
 * yields: the logshipper writes and acks them now. Not when the queue is empty: the ingest
 * then waits in poll soon enough, and yielding there cost about 5 % at 1 x 32. With nothing
 * else runnable on the core (the logshipper on another one) sched_yield returns at once. */
static void hand_over_core(struct ingest *in)
{
    int sent = in->link.frames_sent != in->frames_at_yield;
    in->frames_at_yield = in->link.frames_sent;
    if (sent && in->parse_queue.count)
        sched_yield();
}

void ingest_flush(struct ingest *in, int whole_pass)
{
    in->flush_scheduled = 0; /* a flush due in this pass is this one (or is moved below) */
    shipper_link_pump(&in->link); /* frames closed full while batches were admitted */
    if (in->pipe.open) {
        int64_t now = lws_now_usecs();
        int64_t deadline = in->pipe.open->opened_us + in->cfg.bulk_time_ms * 1000;
        if (!whole_pass && pipeline_inflight(&in->pipe) >= INGEST_MAX_INFLIGHT_FRAMES && now < deadline &&
            !in->draining)
            /* the next ack or admitted batch brings this forward (flush_scheduled stays 0) */
            lws_sul_schedule(in->ctx, 0, &in->flush_sul, flush_cb, (lws_usec_t)(deadline - now));
        else if (pipeline_close_open(&in->pipe, now))
            shipper_link_pump(&in->link);
    }
    hand_over_core(in);
}

void ingest_schedule_flush(struct ingest *in)
{
    if (in->flush_scheduled) /* already due in this loop pass */
        return;
    in->flush_scheduled = 1;
    /* 0 µs: runs after the events of this service pass, so concurrent requests share a frame */
    lws_sul_schedule(in->ctx, 0, &in->flush_sul, flush_cb, 0);
}

int ingest_ready(struct ingest *in, int *link_up, int *gauth_up)
{
    *link_up = in->link.ready;
    *gauth_up = in->auth ? auth_gauth_up(in->auth) : 0;
    return *link_up && *gauth_up && !in->draining;
}

static void on_ack_latency(void *ctx, double seconds)
{
    struct ingest *in = ctx;
    int b = 0;
    while (b < ACK_BUCKETS && seconds > ingest_ack_bounds[b])
        b++;
    in->n.ack_latency_buckets[b]++;
    in->n.ack_latency_sum += seconds;
    in->n.ack_latency_count++;
}

static void on_ack(void *ctx, uint64_t seq)
{
    struct ingest *in = ctx;
    (void)seq;
    if (in->pipe.open)
        ingest_schedule_flush(in);
    ws_stream_on_ack(in);
}

static void stats_cb(lws_sorted_usec_list_t *sul)
{
    struct ingest *in = lws_container_of(sul, struct ingest, stats_sul);
    buf_reset(&in->stats_text);
    ingest_render_stats(in, &in->stats_text);
    /* the GAuth bit: the logshipper's /health/ready reports GAuth as the ingest sees it */
    shipper_link_send_stats(&in->link, ingest_wall_ms(), in->auth && auth_gauth_up(in->auth),
                            in->stats_text.p, in->stats_text.len);
    pipeline_trim(&in->pipe);
    lws_sul_schedule(in->ctx, 0, &in->stats_sul, stats_cb, 1000 * 1000);
}

static void health_cb(lws_sorted_usec_list_t *sul)
{
    struct ingest *in = lws_container_of(sul, struct ingest, health_sul);
    auth_roll_window(in->auth);
    lws_sul_schedule(in->ctx, 0, &in->health_sul, health_cb, (lws_usec_t)in->cfg.health_timer_s * 1000000);
}

static void usage(void)
{
    printf("usage: tlm-ingest [--help] [--print-config]\n"
           "Serves the tlm client API (HTTP batches, WebSocket) and forwards records to tlm-logshipper.\n"
           "Configured by environment variables; --print-config lists them as a Markdown table.\n");
}

static int lws_log_level(const char *app_level)
{
    return log_level_parse(app_level) == LOG_DEBUG ? (LLL_ERR | LLL_WARN | LLL_NOTICE) : LLL_ERR;
}

static void lws_log_to_json(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_app(level == LLL_ERR ? LOG_ERROR : level == LLL_WARN ? LOG_WARN : LOG_DEBUG, "lws: %.*s", (int)n, line);
}

int main(int argc, char **argv)
{
    /* Buffers of 256 KiB and more (frames, bodies, output) get their own mappings and go back
     * to the system when freed: a fixed threshold stops glibc from raising it and growing a
     * fragmented heap that keeps RSS far above what the buffer bounds allow. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        }
        if (!strcmp(argv[i], "--print-config")) {
            config_print_markdown();
            return 0;
        }
        fprintf(stderr, "tlm-ingest: unknown argument %s\n", argv[i]);
        usage();
        return 2;
    }
    static struct ingest in; /* zeroed; main's only instance */
    char err[512];
    log_setup("ingest", LOG_INFO, LOG_WARN);
    if (config_load_env(&in.cfg, err, sizeof(err))) {
        log_app(LOG_ERROR, "configuration error: %s", err);
        config_free(&in.cfg);
        return 2;
    }
    log_setup("ingest", log_level_parse(in.cfg.app_log_level), log_level_parse(in.cfg.api_log_level));
    json_arena_install(); /* before the auth thread exists: jansson's allocator is global */
    json_arena_init(&in.arena, 4 * 1024 * 1024);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    lws_set_log_level(lws_log_level(in.cfg.app_log_level), lws_log_to_json);

    /* one receive-buffer slot per connection lws may hold (fd_limit_per_thread below) */
    if (ws_rxbuf_init((size_t)in.cfg.max_connections + 64, WS_RX_BUFFER_BYTES))
        log_app(LOG_WARN, "could not reserve address space for %lld WebSocket receive buffers; they stay on the "
                "heap, and each connection keeps a page of its own", in.cfg.max_connections + 64);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.fd_limit_per_thread = (unsigned)in.cfg.max_connections + 64;
    /* header limits are context-wide in lws 4.1 */
    info.max_http_header_data = (unsigned short)in.cfg.max_header_bytes; /* at most 65535 (config.c) */
    info.timeout_secs_ah_idle = (unsigned)in.cfg.idle_timeout_s;
    /* lws reads every socket into this one per-thread buffer (not per connection): at the
     * default 4 KiB a 27 KB batch took seven reads, polls and body callbacks. Not larger:
     * each ready connection gets one read a loop pass, and with 256 connections uploading
     * 270 KB bodies 64 KiB reads made passes so long that 1000-record batches slowed by 35 %. */
    info.pt_serv_buf_size = INGEST_READ_BUFFER;
    struct event_loop loop;
    if (event_loop_init(&loop, &info))
        return 1;
    in.ctx = lws_create_context(&info);
    if (!in.ctx) {
        log_app(LOG_ERROR, "cannot create the event loop (lws on libev: is Debian's libwebsockets-evlib-ev installed?)");
        event_loop_free(&loop);
        return 1;
    }
    signal_ctx = in.ctx;
    deadline_queue_init(&in.body_deadlines, in.ctx, in.cfg.idle_timeout_s * 1000000);
    deadline_queue_init(&in.ack_deadlines, in.ctx, in.cfg.ack_timeout_ms * 1000);
    ws_stream_init_keepalive(&in);

    /* protocols[0] answers HTTP; the link is a raw fd adopted into the same vhost */
    struct lws_protocols plist[4] = {http_api_protocol, ws_stream_protocol, shipper_link_protocol,
                                     {NULL, NULL, 0, 0, 0, NULL, 0}};
    /* no lws validity timers: WebSocket pings and idle closes are ws_stream.c's own */
    lws_retry_bo_t retry;
    memset(&retry, 0, sizeof(retry));
    memset(&info, 0, sizeof(info));
    info.port = (int)in.cfg.port;
    info.iface = in.cfg.listen;
    info.protocols = plist;
    info.pvo = &ws_stream_pvo;
    info.retry_and_idle_policy = &retry;
    info.vhost_name = "tlm-ingest";
    info.user = &in;
    info.max_http_header_data = (unsigned short)in.cfg.max_header_bytes; /* at most 65535 (config.c) */
    info.timeout_secs = (unsigned)in.cfg.idle_timeout_s;
    info.keepalive_timeout = (int)in.cfg.idle_timeout_s;
    info.timeout_secs_ah_idle = (unsigned)in.cfg.idle_timeout_s; /* headers sent slowly */
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    in.vh = lws_create_vhost(in.ctx, &info);
    if (!in.vh) {
        log_app(LOG_ERROR, "cannot listen on %s:%lld (TELEMETRY_LISTEN, TELEMETRY_PORT)", in.cfg.listen, in.cfg.port);
        lws_context_destroy(in.ctx);
        event_loop_free(&loop);
        ws_rxbuf_shutdown();
        config_free(&in.cfg);
        return 1;
    }
    in.started_us = lws_now_usecs();
    pipeline_init(&in.pipe, (uint64_t)in.cfg.traces_threshold, (uint64_t)in.cfg.buffer_max_bytes, (uint64_t)in.cfg.bulk_size);
    envelope_init(&in.env, &in.cfg);
    in.env.arena = 1; /* every envelope_process runs between json_arena_begin and _end */
    envelope_result_init(&in.result);
    pipeline_batch_init(&in.batch);
    buf_init(&in.stats_text);
    buf_init(&in.ws_spare);
    buf_init(&in.ws_out);
    if (sessions_init(&in.sessions, in.cfg.max_session, in.cfg.session_ttl_s, in.cfg.record_min_interval_ms)) {
        log_app(LOG_ERROR, "out of memory");
        return 1;
    }
    in.auth = auth_new(in.ctx, &in.cfg);
    if (!in.auth) {
        log_app(LOG_ERROR, "cannot start the auth client");
        return 1;
    }
    shipper_link_init(&in.link, in.ctx, in.vh, in.cfg.socket_path, &in.pipe);
    in.link.on_ack_latency = on_ack_latency;
    in.link.on_ack = on_ack;
    in.link.cb_ctx = &in;
    shipper_link_start(&in.link);
    lws_sul_schedule(in.ctx, 0, &in.stats_sul, stats_cb, 1000 * 1000);
    lws_sul_schedule(in.ctx, 0, &in.health_sul, health_cb, (lws_usec_t)in.cfg.health_timer_s * 1000000);
    /* timers that must not wait for lws to service its own, which it defers under load (event_loop.h) */
    lws_sorted_usec_list_t *on_time[] = {&in.parse_sul, &in.flush_sul, &in.link.kick_sul, &in.link.reconnect_sul,
                                         &in.stats_sul, &in.body_deadlines.sul, &in.ack_deadlines.sul,
                                         &in.ws_quiet.sul, &in.ws_unanswered.sul};
    for (size_t i = 0; i < sizeof(on_time) / sizeof(on_time[0]); i++)
        event_loop_run_each_pass(&loop, on_time[i]);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    log_app(LOG_INFO, "listening on %s:%lld, logshipper socket %s, GAuth %s", in.cfg.listen, in.cfg.port,
            in.cfg.socket_path, in.cfg.auth_url);

    int exit_code = 0;
    parse_slice_init(&in.parse_slice);
    for (;;) {
        int busy = in.parse_scheduled; /* a parse slice is due: this pass will not wait in poll */
        int64_t pass_start = lws_now_usecs();
        in.parse_slice.parsed_us = 0;
        event_loop_pass(&loop, in.ctx);
        if (busy) /* the next slices last a few times the rest of this pass (parse_slice.h) */
            parse_slice_note_pass(&in.parse_slice, lws_now_usecs() - pass_start);
        if (got_signal && !in.draining) {
            in.draining = 1;
            in.drain_deadline_us = lws_now_usecs() + in.cfg.drain_timeout_s * 1000000LL;
            log_app(LOG_INFO, "signal %d: draining (%d requests in flight, %d streams, %llu records un-acked)",
                    (int)got_signal, in.inflight, in.ws_count, (unsigned long long)in.pipe.records);
            ws_stream_drain(&in);
        }
        if (in.draining) {
            if (pipeline_close_open(&in.pipe, lws_now_usecs()))
                shipper_link_pump(&in.link);
            int done = in.inflight == 0 && in.ws_count == 0 && pipeline_empty(&in.pipe);
            if (done || lws_now_usecs() >= in.drain_deadline_us) {
                if (!done) {
                    log_app(LOG_WARN, "drain timeout: %d requests unanswered, %llu records un-acked", in.inflight,
                            (unsigned long long)in.pipe.records);
                    exit_code = 1;
                }
                break;
            }
            /* wake up regularly while draining to re-check */
            lws_sul_schedule(in.ctx, 0, &in.flush_sul, flush_cb, 50 * 1000);
            in.flush_scheduled = 1;
        }
    }
    shipper_link_bye(&in.link);
    for (int i = 0; i < 20 && in.link.wsi && in.link.out.len; i++)
        event_loop_pass(&loop, in.ctx);
    log_app(LOG_INFO, "stopped");
    lws_sul_cancel(&in.stats_sul);
    lws_sul_cancel(&in.health_sul);
    lws_sul_cancel(&in.flush_sul);
    lws_sul_cancel(&in.parse_sul);
    deadline_queue_stop(&in.body_deadlines);
    deadline_queue_stop(&in.ack_deadlines);
    deadline_queue_stop(&in.ws_quiet);
    deadline_queue_stop(&in.ws_unanswered);
    auth_free(in.auth);
    in.auth = NULL;
    /* timers of the link live in our memory: take them off the loop before it is destroyed
     * (destroying the context may close the link and would schedule a reconnect) */
    in.link.closing = 1;
    shipper_link_free(&in.link);
    lws_context_destroy(in.ctx);
    event_loop_free(&loop);
    ws_rxbuf_shutdown(); /* after lws freed every connection's buffer */
    pipeline_free(&in.pipe);
    sessions_free(&in.sessions);
    pipeline_batch_free(&in.batch);
    envelope_result_free(&in.result);
    envelope_free(&in.env);
    json_arena_free(&in.arena);
    buf_free(&in.stats_text);
    buf_free(&in.ws_spare);
    buf_free(&in.ws_out);
    config_free(&in.cfg);
    curl_global_cleanup();
    return exit_code;
}
