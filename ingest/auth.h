/* auth.h - who a token belongs to: GAuth /auth/v3/userinfo through libcurl on a worker
 * thread (the lws loop never blocks), a cache keyed by a keyed hash of the token (never the
 * token itself) with TTL, bound and a short negative cache, and the periodic GAuth ping. */
#ifndef TLM_AUTH_H
#define TLM_AUTH_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"

#define AUTH_USER_MAX 128
#define AUTH_CCID_MAX 64

struct auth_identity {
    char user[AUTH_USER_MAX];
    char ccid[AUTH_CCID_MAX];
};

enum auth_result {
    AUTH_OK = 0,
    AUTH_INVALID = 1,     /* GAuth refused the token (or it is malformed): 401 */
    AUTH_UNAVAILABLE = 2, /* GAuth down, slow or answering nonsense: 503 */
    AUTH_PENDING = 3,
};

struct auth_entry;

/* Embedded in a request; done() runs on the lws thread when the answer arrives. */
struct auth_waiter {
    void (*done)(struct auth_waiter *w, int result, const struct auth_identity *id);
    struct auth_entry *entry;
    struct auth_waiter *prev, *next;
};

struct auth_stats {
    uint64_t cache_hits, cache_misses, negative_hits;
    uint64_t calls_ok, calls_invalid, calls_unavailable;
    uint64_t evictions;
    /* telemetry_gws_auth_req_time over the current window (ms) */
    double window_sum_ms, window_max_ms, window_min_ms, last_ms;
    uint64_t window_count;
    double prev_avg_ms, prev_max_ms, prev_min_ms;
    uint64_t prev_count;
    size_t cached;
};

struct auth;

struct auth *auth_new(struct lws_context *ctx, const struct tlm_config *cfg);
void auth_free(struct auth *a);

/* Answers from the cache (AUTH_OK / AUTH_INVALID with *id filled when OK) or returns
 * AUTH_PENDING with w linked; w->done is called later (unless auth_cancel'ed first). */
int auth_lookup(struct auth *a, const char *token, size_t len, struct auth_waiter *w, struct auth_identity *id);
void auth_cancel(struct auth *a, struct auth_waiter *w);
/* Delivers finished GAuth answers to their waiters. Call on LWS_CALLBACK_EVENT_WAIT_CANCELLED. */
void auth_service(struct auth *a);
/* 1 while the last GAuth ping (every TELEMETRY_HEALTH_TIMER) answered 2xx. */
int auth_gauth_up(struct auth *a);
/* Rolls the telemetry_gws_auth_req_time window. */
void auth_roll_window(struct auth *a);
const struct auth_stats *auth_get_stats(struct auth *a);

#endif
