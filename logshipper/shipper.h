/* shipper.h - the logshipper daemon's state: main.c fills one struct shipper and every lws
 * callback reaches it through the context user pointer (lws_context_user). */
#ifndef TLM_SHIPPER_H
#define TLM_SHIPPER_H

#include <libwebsockets.h>

#include "../common/config.h"
#include "../common/prom.h"
#include "contracts.h"
#include "link_server.h"
#include "writer.h"

/* /health/ready turns 503 when stdout has taken nothing for this long with lines waiting. */
#define SHIPPER_STALL_READY_S 10.0

struct shipper {
    struct tlm_config cfg;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct prom_registry *reg;
    struct contracts *contracts;
    struct writer *writer;
    struct link_server *links;
    int draining;  /* SIGTERM/SIGINT seen: no new links, no new reads */
    int bye_sent;  /* drain: BYE queued on every link */
    int done;      /* leave the loop */
    int exit_code;
    lws_sorted_usec_list_t drain_sul;    /* drain: polls for "all written and acked" */
    lws_sorted_usec_list_t deadline_sul; /* drain: TELEMETRY_DRAIN_TIMEOUT */
};

#endif
