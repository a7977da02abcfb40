/* shipper_link.h - the ingest's end of the UNIX socket to the logshipper: connect with
 * backoff, HELLO, send closed frames in order, take cumulative ACKs, re-send after reconnect. */
#ifndef TLM_SHIPPER_LINK_H
#define TLM_SHIPPER_LINK_H

#include <libwebsockets.h>
#include <stdint.h>

#include "../common/buf.h"
#include "pipeline.h"

struct shipper_link {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    const char *path;
    struct pipeline *pipe;
    uint64_t instance_id;
    struct lws *wsi;
    int fd;
    int ready;               /* peer HELLO received */
    struct buf in, out;
    size_t out_off;
    uint64_t sent_seq;       /* highest frame seq written whole on this connection */
    size_t frame_off;        /* bytes of the next frame (sent_seq + 1) written so far */
    uint64_t max_sent_seq;   /* highest ever sent: lower ones sent again are re-sends */
    int backoff_ms;
    int closing;             /* BYE sent: close once out is drained */
    lws_sorted_usec_list_t reconnect_sul, kick_sul;
    int in_writeable;
    /* called after an ACK moved the pipeline (requests may be answered) */
    void (*on_ack)(void *ctx, uint64_t acked_seq);
    void (*on_ack_latency)(void *ctx, double seconds);
    void *cb_ctx;
    /* counters */
    uint64_t connects, disconnects, frames_sent, frames_resent, bytes_sent, acks, protocol_errors;
    int64_t up_since_us;
};

/* The lws protocol that carries the link (raw file descriptor). Add it to the vhost. */
extern const struct lws_protocols shipper_link_protocol;

void shipper_link_init(struct shipper_link *l, struct lws_context *ctx, struct lws_vhost *vh,
                       const char *path, struct pipeline *pipe);
void shipper_link_start(struct shipper_link *l);
/* Writes closed, unsent frames to the socket as room allows. Call after closing frames. */
void shipper_link_pump(struct shipper_link *l);
/* Queues a STATS frame (dropped if the link is down: stats are snapshots), with the GAuth
 * bit set when gauth_up. */
void shipper_link_send_stats(struct shipper_link *l, int64_t ts_ms, int gauth_up, const char *text, size_t len);
/* Sends BYE and closes once written. */
void shipper_link_bye(struct shipper_link *l);
void shipper_link_free(struct shipper_link *l);

#endif
