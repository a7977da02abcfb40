/* ws_stream.h - GET /api/v1/stream: the WebSocket protocol for streaming clients
 * (first-message auth, batches with seq, ordered acks after write, window, flow control). */
#ifndef TLM_WS_STREAM_H
#define TLM_WS_STREAM_H

#include <libwebsockets.h>

struct ingest;

extern const struct lws_protocols ws_stream_protocol;

/* Per-vhost options that make this protocol the default for upgrades without a subprotocol. */
extern const struct lws_protocol_vhost_options ws_stream_pvo;

/* Sets up the ping and idle-close deadlines (TELEMETRY_WS_PING_INTERVAL, _IDLE_TIMEOUT). */
void ws_stream_init_keepalive(struct ingest *in);
/* After the pipeline moved (acks): resumes paused sessions and retries held batches. */
void ws_stream_on_ack(struct ingest *in);
/* SIGTERM: every session stops reading and closes with 1001 once its acks are sent. */
void ws_stream_drain(struct ingest *in);

#endif
