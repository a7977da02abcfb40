/* envelope.h - one batch body: jansson parse, envelope and per-record checks, the contract's
 * property allow-list, rid, and the finished stdout line of every accepted record, encoded as
 * protocol records into a pipeline batch. HTTP and WebSocket share it. */
#ifndef TLM_ENVELOPE_H
#define TLM_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/config.h"
#include "../common/hash.h"
#include "pipeline.h"

enum envelope_kind { ENV_TRACES = 0, ENV_EVENTS = 1, ENV_METRICS = 2, ENV_NKINDS = 3 };

enum envelope_reject {
    REJ_NOT_OBJECT, REJ_MISSING_MSG, REJ_MISSING_NAME, REJ_MISSING_VALUE, REJ_INVALID_TYPE,
    REJ_INVALID_TS, REJ_INVALID_VALUE, REJ_STRING_TOO_LONG, REJ_TOO_MANY_PROPERTIES, REJ_NCODES
};

extern const char *const envelope_kind_names[ENV_NKINDS];   /* "traces", "events", "metrics" */
extern const char *const envelope_reject_codes[REJ_NCODES]; /* "not_object", ... */

struct envelope_identity {
    const char *user;
    const char *ccid;
    const char *tenant;
};

struct envelope_result {
    int status;                /* 0: processed (answer 202/ack); else the HTTP status of the error */
    const char *code;          /* error code when status != 0 */
    char message[256];
    size_t accepted;
    size_t accepted_by_kind[ENV_NKINDS];
    size_t rejected_by_code[REJ_NCODES];
    size_t nrejected;
    struct buf rejected;       /* comma-separated JSON objects {"kind","index","code","message"} */
    size_t truncated;          /* lines whose strings were cut to fit TELEMETRY_LINE_MAX_BYTES */
    size_t properties_dropped; /* properties not in the contract's allow-list */
    char batch_id[800];        /* JSON-escaped batchId with quotes (128 bytes escaped at most 6x), "" when none */
    int has_seq;
    int64_t seq;               /* WebSocket envelopes: "seq" */
};

/* One entry of a contract's properties allow-list, prepared once at start. */
struct allow_entry {
    char *key;      /* the property name ("value" for "value__NUM") */
    int num_only;   /* "__NUM": kept only when it is a number */
};

struct contract_allow {
    const json_t *contract;
    struct allow_entry *entries;
    size_t n;
};

struct envelope {
    const struct tlm_config *cfg;
    struct hash_key rid_key0, rid_key1; /* fixed: rids are stable across restarts and pods */
    struct hash_key rand_key0, rand_key1; /* random per process: rids of batches without batchId */
    uint64_t rid_counter;
    struct buf line;
    struct buf ident;            /* per batch: ,"appName":..,"tenantName":..,"contactCenterId":..,"user":.. */
    char received[32];           /* per batch: the receivedAt text */
    int64_t received_ms;         /* the millisecond received was written for (-1 none) */
    struct buf scratch;          /* per batch: what the batch rid is hashed from */
    struct contract_allow *allow; /* one per contract, in TELEMETRY_CONFIG_CONTRACTS order */
    size_t ncontracts;
    json_t **vals;               /* scratch: the kept value of each allow entry of one record */
    size_t max_allow;
    int arena;                   /* jansson allocates from an arena: skip freeing the tree */
    int no_props;                /* build_line: leave properties out (last resort to fit) */
    struct buf repaired;         /* the body with invalid UTF-8 replaced, when it had some */
};

void envelope_init(struct envelope *e, const struct tlm_config *cfg);
void envelope_free(struct envelope *e);
void envelope_result_init(struct envelope_result *r);
void envelope_result_reset(struct envelope_result *r);
void envelope_result_free(struct envelope_result *r);

/* Appends the accepted records to out (not yet admitted to the pipeline). */
void envelope_process(struct envelope *e, const char *body, size_t len, const struct envelope_identity *id,
                      int64_t now_ms, struct pipeline_batch *out, struct envelope_result *res);

/* 1 when no array/object nesting in body is deeper than max (strings are skipped). */
int envelope_depth_ok(const char *body, size_t len, long long max);

/* Renders {"accepted":N,"rejected":[...](,"batchId":"...")} (prefix lets WS add type/seq). */
void envelope_render_result(const struct envelope_result *res, const char *prefix, struct buf *out);

#endif
