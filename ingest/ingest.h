/* ingest.h - the ingest daemon's state, shared by its protocol callbacks (one per vhost,
 * reached with lws_get_vhost_user), and the counters it reports to the logshipper. */
#ifndef TLM_INGEST_H
#define TLM_INGEST_H

#include <libwebsockets.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/config.h"
#include "auth.h"
#include "deadline.h"
#include "envelope.h"
#include "json_arena.h"
#include "parse_slice.h"
#include "pipeline.h"
#include "sessions.h"
#include "shipper_link.h"

#define ACK_BUCKETS 12
#define INGEST_MAX_INFLIGHT_FRAMES 2 /* frames on their way to the logshipper before the next waits */
#define WS_SPARE_MAX_BYTES (1024 * 1024) /* a larger message buffer is freed, not kept */
#define WS_WRITE_MAX_BYTES (16 * 1024) /* answers of one session sent in one write, at most */
#define INGEST_READ_BUFFER (32 * 1024) /* lws's per-thread read buffer: see main.c */
#define WS_RX_BUFFER_BYTES INGEST_READ_BUFFER /* a WebSocket's read size and receive buffer (ws_rxbuf.h) */

struct ws_session;

struct ingest_counters {
    uint64_t http_status[600];           /* answers by status code */
    uint64_t records_received[ENV_NKINDS];
    uint64_t records_accepted[ENV_NKINDS];
    uint64_t records_rejected[REJ_NCODES];
    uint64_t records_truncated, properties_dropped;
    uint64_t batches, batches_gzip, bytes_received, bytes_inflated;
    uint64_t pipeline_full, ack_timeouts, pipelined_closed, connections_refused;
    uint64_t ack_latency_buckets[ACK_BUCKETS + 1];
    double ack_latency_sum;
    uint64_t ack_latency_count;
};

struct ingest {
    struct tlm_config cfg;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct pipeline pipe;
    struct shipper_link link;
    struct auth *auth;
    struct sessions sessions;
    struct envelope env;
    struct json_arena arena;         /* jansson's allocator while a batch is parsed */
    struct pipeline_batch batch;     /* scratch: one request's records before admission */
    struct envelope_result result;   /* scratch */
    struct ingest_counters n;
    lws_sorted_usec_list_t flush_sul, stats_sul, health_sul;
    lws_sorted_usec_list_t parse_sul; /* parses the bodies read in the last loop pass (http_api.c) */
    int parse_scheduled;
    int answers_ready;               /* HTTP answers made ready since the last poll */
    struct parse_slice parse_slice;  /* how long a parse slice lasts (parse_slice.h) */
    lws_dll2_owner_t parse_queue;     /* HTTP sessions whose body waits to be parsed */
    struct deadline_queue body_deadlines; /* HTTP bodies due within TELEMETRY_IDLE_TIMEOUT */
    struct deadline_queue ack_deadlines;  /* answers due within TELEMETRY_ACK_TIMEOUT */
    struct deadline_queue ws_quiet;       /* WebSockets due a ping (ws_stream.c) */
    struct deadline_queue ws_unanswered;  /* pinged WebSockets due to be closed */
    int flush_scheduled;
    uint64_t frames_at_yield;        /* link.frames_sent when the ingest last gave up the core */
    int draining;
    int64_t drain_deadline_us;
    int inflight;                    /* requests started and not answered */
    struct ws_session *ws_sessions;  /* open WebSocket sessions */
    lws_dll2_owner_t ws_ack_waiters;  /* the sessions an ack may move on (ws_stream.c) */
    struct buf ws_spare;             /* a message buffer no session holds (ws_stream.c) */
    struct buf ws_out;               /* the answers of one WebSocket write (ws_stream.c) */
    int ws_count;
    long long connections;           /* open client connections (TELEMETRY_MAX_CONNECTIONS) */
    int64_t started_us;
    struct buf stats_text;
};

extern const double ingest_ack_bounds[ACK_BUCKETS];

/* Accepts one parsed batch into the pipeline; returns 0 with *wait_seq, or -1 when full. */
int ingest_admit(struct ingest *in, uint64_t *wait_seq);
/* Ensures the open frame leaves at the end of this loop pass. */
void ingest_schedule_flush(struct ingest *in);
/* Sends closed frames and, unless INGEST_MAX_INFLIGHT_FRAMES are on their way, the open one;
 * whole_pass: the open frame too, whatever is on its way (the batches of a loop pass were
 * just parsed together: they are the coalescing, and holding their last frame back made
 * those requests wait a whole pass more: p99 1.7-1.9 x p50 at 32 connections). */
void ingest_flush(struct ingest *in, int whole_pass);
void ingest_count_status(struct ingest *in, int status);
void ingest_count_result(struct ingest *in, const struct envelope_result *res);
/* 1 when the logshipper link is up and GAuth answered its last ping. */
int ingest_ready(struct ingest *in, int *link_up, int *gauth_up);
/* Wall-clock milliseconds since the epoch. */
int64_t ingest_wall_ms(void);
/* Renders the ingest's metrics (sent to the logshipper in STATS frames). */
void ingest_render_stats(struct ingest *in, struct buf *out);

#endif
