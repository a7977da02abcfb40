/* link_server.h - the UNIX socket the ingest connects to: accepts links, decodes frames,
 * hands RECORDS to the writer and acks each frame once all its lines are written. */
#ifndef TLM_LINK_SERVER_H
#define TLM_LINK_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "writer.h"

struct lws_context;
struct lws_vhost;
struct lws_protocols;

struct link_server_stats {
    uint64_t frames[PROTO_BYE + 1]; /* frames received, by enum proto_type (0: unused) */
    uint64_t bytes;                 /* bytes received on every link */
    uint64_t records;               /* records in accepted RECORDS frames */
    uint64_t acks;                  /* ACK frames sent */
    uint64_t connections;           /* links accepted since start */
    uint64_t protocol_errors;       /* links closed with BYE reason 1 or 2 */
    uint64_t socket_rebinds;   /* socket file bound again after it was removed or replaced */
};

struct link_server;

/* Protocols "tlm-link-listen" and "tlm-link": put both in the vhost's protocol list. */
extern const struct lws_protocols link_server_listen_protocol;
extern const struct lws_protocols link_server_link_protocol;

/* Creates the socket at path (parent directory made 0770 if missing, a stale socket file
 * replaced, the new one mode 0660), listens and adds it to the loop. NULL with err. */
struct link_server *link_server_new(struct lws_context *ctx, struct lws_vhost *vh, const char *path,
                                    struct writer *w, char *err, size_t errlen);
/* After lws_context_destroy (which closed every link). */
void link_server_free(struct link_server *ls);

/* Writer hook: frame seq of owner (a link) is written; its ACK goes out on the next pass. */
void link_server_frame_done(void *owner, uint64_t seq);
/* Stops (1) or resumes (0) reading from every link: the writer's back-pressure. */
void link_server_pause(struct link_server *ls, int paused);
/* Shutdown: close the listening socket and remove its file; links stay. */
void link_server_stop_listening(struct link_server *ls);
/* Shutdown: queue the last ACK and a BYE (reason 0) on every link; each closes once sent. */
void link_server_say_bye(struct link_server *ls);

int link_server_listening(const struct link_server *ls);
size_t link_server_links(const struct link_server *ls);
/* 1 while some link has a written frame not yet acked or unsent bytes. */
int link_server_busy(const struct link_server *ls);
const struct link_server_stats *link_server_stats(const struct link_server *ls);
/* The newest STATS text (Prometheus exposition) of a connected ingest; NULL if none. */
/* The ingest sends STATS every second; an older text means it is gone or frozen. */
#define LINK_STATS_FRESH_US (5 * 1000 * 1000)

/* The newest STATS text received within LINK_STATS_FRESH_US, or NULL. */
const char *link_server_ingest_stats(const struct link_server *ls, size_t *len);
/* The GAuth bit of that STATS (1 the ingest's last GAuth check succeeded, 0 it failed),
 * or -1 when no ingest sent one within LINK_STATS_FRESH_US. */
int link_server_gauth_up(const struct link_server *ls);

#endif
