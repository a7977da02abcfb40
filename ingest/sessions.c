/* sessions.c - session counting and throttles (see sessions.h). HTTP sessions are keyed by
 * a keyed hash of the token and expire in last-seen order. */
#include "sessions.h"

#include <stdlib.h>
#include <string.h>

struct http_session_entry {
    uint64_t key;
    int64_t last_seen_us, last_batch_us;
    struct http_session_entry *hnext, *lprev, *lnext;
};

int sessions_init(struct sessions *s, long long max, long long ttl_s, long long record_min_interval_ms)
{
    memset(s, 0, sizeof(*s));
    s->max = max;
    s->ttl_s = ttl_s;
    s->record_min_interval_ms = record_min_interval_ms;
    hash_random_key(&s->key);
    s->nbuckets = 1024;
    while ((long long)s->nbuckets < max && s->nbuckets < (1u << 22))
        s->nbuckets <<= 1;
    s->table = calloc(s->nbuckets, sizeof(*s->table));
    return s->table ? 0 : -1;
}

static void lru_unlink(struct sessions *s, struct http_session_entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        s->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        s->lru_tail = e->lprev;
}

static void unlink_entry(struct sessions *s, struct http_session_entry *e)
{
    struct http_session_entry **pp = &s->table[e->key & (s->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(s, e);
    s->http_count--;
}

void sessions_free(struct sessions *s)
{
    while (s->lru_head) {
        struct http_session_entry *e = s->lru_head;
        unlink_entry(s, e);
        free(e);
    }
    free(s->table);
    memset(s, 0, sizeof(*s));
}

static void expire(struct sessions *s, int64_t now_us)
{
    int64_t limit = now_us - s->ttl_s * 1000000LL;
    while (s->lru_tail && s->lru_tail->last_seen_us < limit) {
        struct http_session_entry *e = s->lru_tail;
        unlink_entry(s, e);
        free(e);
    }
}

size_t sessions_active(struct sessions *s, int64_t now_us)
{
    expire(s, now_us);
    return s->http_count + s->ws_count;
}

int sessions_throttle(int64_t *last_us, int64_t now_us, long long min_ms, long long *retry_ms)
{
    if (min_ms < 0)
        return 0;
    if (*last_us && now_us - *last_us < min_ms * 1000) {
        *retry_ms = min_ms - (now_us - *last_us) / 1000;
        return 1;
    }
    *last_us = now_us;
    return 0;
}

uint64_t sessions_key(const struct sessions *s, const char *token, size_t len)
{
    return hash_siphash(&s->key, token, len);
}

int sessions_http_batch(struct sessions *s, uint64_t key, int64_t now_us, long long *retry_ms)
{
    expire(s, now_us);
    struct http_session_entry *e = s->table[key & (s->nbuckets - 1)];
    while (e && e->key != key)
        e = e->hnext;
    if (!e) {
        if ((long long)(s->http_count + s->ws_count) >= s->max) {
            s->refused_too_many++;
            return SESS_TOO_MANY;
        }
        if (!(e = calloc(1, sizeof(*e))))
            return SESS_TOO_MANY;
        e->key = key;
        size_t b = key & (s->nbuckets - 1);
        e->hnext = s->table[b];
        s->table[b] = e;
        s->http_count++;
    } else {
        lru_unlink(s, e);
    }
    e->last_seen_us = now_us;
    e->lprev = NULL;
    e->lnext = s->lru_head;
    if (s->lru_head)
        s->lru_head->lprev = e;
    s->lru_head = e;
    if (!s->lru_tail)
        s->lru_tail = e;
    if (sessions_throttle(&e->last_batch_us, now_us, s->record_min_interval_ms, retry_ms)) {
        s->throttled++;
        return SESS_THROTTLED;
    }
    return SESS_OK;
}

int sessions_ws_open(struct sessions *s, int64_t now_us)
{
    expire(s, now_us);
    if ((long long)(s->http_count + s->ws_count) >= s->max) {
        s->refused_too_many++;
        return SESS_TOO_MANY;
    }
    s->ws_count++;
    return SESS_OK;
}

void sessions_ws_close(struct sessions *s)
{
    if (s->ws_count)
        s->ws_count--;
}
