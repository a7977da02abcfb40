/* sessions.h - TELEMETRY_MAX_SESSION and the per-session throttles. A session is an
 * authenticated WebSocket or an HTTP token seen within TELEMETRY_SESSION_TTL. */
#ifndef TLM_SESSIONS_H
#define TLM_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/hash.h"

enum { SESS_OK = 0, SESS_TOO_MANY = 1, SESS_THROTTLED = 2 };

struct http_session_entry;

struct sessions {
    long long max, ttl_s, record_min_interval_ms;
    struct hash_key key;
    struct http_session_entry **table;
    size_t nbuckets;
    struct http_session_entry *lru_head, *lru_tail; /* most recently seen first */
    size_t http_count, ws_count;
    uint64_t refused_too_many, throttled;
};

int sessions_init(struct sessions *s, long long max, long long ttl_s, long long record_min_interval_ms);
void sessions_free(struct sessions *s);
/* The session key of a token (a keyed hash; the token is not kept). */
uint64_t sessions_key(const struct sessions *s, const char *token, size_t len);
/* An HTTP batch of the token with this key: SESS_OK, SESS_TOO_MANY, or SESS_THROTTLED with *retry_ms. */
int sessions_http_batch(struct sessions *s, uint64_t key, int64_t now_us, long long *retry_ms);
/* A WebSocket authenticated / closed. */
int sessions_ws_open(struct sessions *s, int64_t now_us);
void sessions_ws_close(struct sessions *s);
/* 1 when an event at now_us comes less than min_ms after *last_us (-1: off); else records it. */
int sessions_throttle(int64_t *last_us, int64_t now_us, long long min_ms, long long *retry_ms);
size_t sessions_active(struct sessions *s, int64_t now_us);

#endif
