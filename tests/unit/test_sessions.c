/* test_sessions.c - ingest/sessions.c: TELEMETRY_MAX_SESSION across HTTP tokens and
 * WebSockets, expiry after TELEMETRY_SESSION_TTL (fed with now_us values), the per-session
 * throttle (-1 off, retry_ms), and the refused/throttled counters. */
#include <string.h>

#include "../../ingest/sessions.h"
#include "unit.h"

#define SEC 1000000LL
#define MS 1000LL
#define T0 (1795514400LL * SEC) /* a realistic monotonic-ish start */

static uint64_t key(struct sessions *s, const char *tok) { return sessions_key(s, tok, strlen(tok)); }

static void test_keys(void)
{
    struct sessions s, s2;
    CHECK_EQ_INT(sessions_init(&s, 10, 300, -1), 0);
    CHECK_EQ_INT(sessions_init(&s2, 10, 300, -1), 0);
    CHECK(key(&s, "token-a") == key(&s, "token-a"));
    CHECK(key(&s, "token-a") != key(&s, "token-b"));
    CHECK(sessions_key(&s, "token-a", 5) == key(&s, "token"));
    /* keyed per process: another instance hashes differently (the token is not recoverable) */
    CHECK(key(&s, "token-a") != key(&s2, "token-a"));
    CHECK((s.nbuckets & (s.nbuckets - 1)) == 0);
    sessions_free(&s);
    sessions_free(&s2);
    /* a large max gets a larger table */
    CHECK_EQ_INT(sessions_init(&s, 100000, 300, -1), 0);
    CHECK(s.nbuckets >= 100000 && (s.nbuckets & (s.nbuckets - 1)) == 0);
    sessions_free(&s);
}

static void test_max_sessions(void)
{
    struct sessions s;
    long long retry = -7;
    CHECK_EQ_INT(sessions_init(&s, 3, 300, -1), 0);
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "a"), T0, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "b"), T0 + 1, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_ws_open(&s, T0 + 2), SESS_OK);
    CHECK_EQ_INT(sessions_active(&s, T0 + 3), 3);
    /* full: a new token and a new WebSocket are refused, and counted */
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "c"), T0 + 4, &retry), SESS_TOO_MANY);
    CHECK_EQ_INT(sessions_ws_open(&s, T0 + 5), SESS_TOO_MANY);
    CHECK_EQ_INT(s.refused_too_many, 2);
    CHECK_EQ_INT(sessions_active(&s, T0 + 6), 3);
    CHECK_EQ_INT(s.http_count, 2);
    /* existing sessions go on */
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "a"), T0 + 7, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "b"), T0 + 8, &retry), SESS_OK);
    CHECK_EQ_INT(s.refused_too_many, 2);
    CHECK_EQ_INT(retry, -7); /* untouched when not throttled */
    /* a WebSocket closing frees its place */
    sessions_ws_close(&s);
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "c"), T0 + 9, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_ws_open(&s, T0 + 10), SESS_TOO_MANY);
    CHECK_EQ_INT(s.refused_too_many, 3);
    /* closing more WebSockets than opened does not underflow */
    sessions_ws_close(&s);
    sessions_ws_close(&s);
    CHECK_EQ_INT(s.ws_count, 0);
    CHECK_EQ_INT(sessions_active(&s, T0 + 11), 3);
    sessions_free(&s);

    /* WebSockets alone fill the limit too */
    CHECK_EQ_INT(sessions_init(&s, 2, 300, -1), 0);
    CHECK_EQ_INT(sessions_ws_open(&s, T0), SESS_OK);
    CHECK_EQ_INT(sessions_ws_open(&s, T0), SESS_OK);
    CHECK_EQ_INT(sessions_ws_open(&s, T0), SESS_TOO_MANY);
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "a"), T0, &retry), SESS_TOO_MANY);
    CHECK_EQ_INT(s.http_count, 0);
    CHECK_EQ_INT(s.refused_too_many, 2);
    sessions_free(&s);
}

static void test_ttl(void)
{
    struct sessions s;
    long long retry;
    CHECK_EQ_INT(sessions_init(&s, 2, 60, -1), 0);
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "a"), T0, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "b"), T0 + 30 * SEC, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "c"), T0 + 59 * SEC, &retry), SESS_TOO_MANY);
    /* exactly TTL after its last request "a" still counts */
    CHECK_EQ_INT(sessions_active(&s, T0 + 60 * SEC), 2);
    /* just past it, "a" expired: a new token gets its place */
    CHECK_EQ_INT(sessions_active(&s, T0 + 60 * SEC + 1), 1);
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "c"), T0 + 61 * SEC, &retry), SESS_OK);
    /* a request refreshes: "b" seen again at 80 s lives until 140 s */
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "b"), T0 + 80 * SEC, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_active(&s, T0 + 122 * SEC), 1); /* c (61 s) expired, b not */
    CHECK_EQ_INT(sessions_active(&s, T0 + 140 * SEC), 1);
    CHECK_EQ_INT(sessions_active(&s, T0 + 141 * SEC), 0);
    CHECK(s.lru_head == NULL && s.lru_tail == NULL);
    /* an expired token comes back as a new session */
    CHECK_EQ_INT(sessions_http_batch(&s, key(&s, "a"), T0 + 200 * SEC, &retry), SESS_OK);
    CHECK_EQ_INT(s.http_count, 1);
    /* WebSockets never expire by TTL */
    CHECK_EQ_INT(sessions_ws_open(&s, T0 + 200 * SEC), SESS_OK);
    CHECK_EQ_INT(sessions_active(&s, T0 + 10000 * SEC), 1);
    sessions_free(&s);

    /* expiry in last-seen order, with many tokens: the expired ones go, the others stay */
    CHECK_EQ_INT(sessions_init(&s, 5000, 10, -1), 0);
    char tok[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(tok, sizeof(tok), "tok-%d", i);
        CHECK_EQ_INT(sessions_http_batch(&s, key(&s, tok), T0 + i * MS, &retry), SESS_OK);
    }
    /* the even ones are seen again 5 s later */
    for (int i = 0; i < 3000; i += 2) {
        snprintf(tok, sizeof(tok), "tok-%d", i);
        sessions_http_batch(&s, key(&s, tok), T0 + 5 * SEC + i * MS, &retry);
    }
    CHECK_EQ_INT(s.http_count, 3000);
    /* at 13 s: odd ones last seen at i ms (< 3 s) expired; even ones at 5 s + i ms stay */
    CHECK_EQ_INT(sessions_active(&s, T0 + 13 * SEC + 1), 1500);
    /* at 16.5 s: even ones with 5 s + i ms < 6.5 s expired (i < 1500: 750 of them) */
    CHECK_EQ_INT(sessions_active(&s, T0 + 16500 * MS), 750);
    sessions_free(&s);
}

static void test_throttle(void)
{
    int64_t last = 0;
    long long retry = -1;
    /* off */
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(sessions_throttle(&last, T0 + i, -1, &retry), 0);
    CHECK_EQ_INT(last, 0);
    CHECK_EQ_INT(retry, -1);
    /* 0: never throttles */
    CHECK_EQ_INT(sessions_throttle(&last, T0, 0, &retry), 0);
    CHECK_EQ_INT(sessions_throttle(&last, T0, 0, &retry), 0);
    /* 1000 ms */
    last = 0;
    CHECK_EQ_INT(sessions_throttle(&last, T0, 1000, &retry), 0);
    CHECK_EQ_INT(last, T0);
    CHECK_EQ_INT(sessions_throttle(&last, T0 + 1500, 1000, &retry), 1); /* 1.5 ms later */
    CHECK_EQ_INT(retry, 999);
    CHECK_EQ_INT(last, T0); /* a refused event does not restart the interval */
    CHECK_EQ_INT(sessions_throttle(&last, T0 + 400 * MS, 1000, &retry), 1);
    CHECK_EQ_INT(retry, 600);
    CHECK_EQ_INT(sessions_throttle(&last, T0 + 999999, 1000, &retry), 1);
    CHECK_EQ_INT(retry, 1); /* never 0: the client must wait */
    CHECK_EQ_INT(sessions_throttle(&last, T0 + SEC, 1000, &retry), 0); /* exactly the interval */
    CHECK_EQ_INT(last, T0 + SEC);
    CHECK_EQ_INT(sessions_throttle(&last, T0 + SEC, 1000, &retry), 1);
    CHECK_EQ_INT(retry, 1000);
}

static void test_http_throttle(void)
{
    struct sessions s;
    long long retry = 0;
    CHECK_EQ_INT(sessions_init(&s, 10, 300, 500), 0);
    uint64_t a = key(&s, "a"), b = key(&s, "b");
    CHECK_EQ_INT(sessions_http_batch(&s, a, T0, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_http_batch(&s, a, T0 + 100 * MS, &retry), SESS_THROTTLED);
    CHECK_EQ_INT(retry, 400);
    CHECK_EQ_INT(s.throttled, 1);
    /* per session: another token is not slowed by a */
    CHECK_EQ_INT(sessions_http_batch(&s, b, T0 + 100 * MS, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_http_batch(&s, a, T0 + 499 * MS, &retry), SESS_THROTTLED);
    CHECK_EQ_INT(retry, 1);
    CHECK_EQ_INT(s.throttled, 2);
    CHECK_EQ_INT(sessions_http_batch(&s, a, T0 + 500 * MS, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_http_batch(&s, a, T0 + 1000 * MS, &retry), SESS_OK);
    CHECK_EQ_INT(s.throttled, 2);
    /* a throttled request still keeps the session alive (it was seen) */
    CHECK_EQ_INT(sessions_http_batch(&s, b, T0 + 300 * SEC, &retry), SESS_OK);
    CHECK_EQ_INT(sessions_http_batch(&s, b, T0 + 300 * SEC + 1, &retry), SESS_THROTTLED);
    CHECK_EQ_INT(sessions_active(&s, T0 + 600 * SEC + 1), 1);
    CHECK_EQ_INT(s.http_count, 1);
    CHECK_EQ_INT(s.refused_too_many, 0);
    sessions_free(&s);
    /* -1: no throttle at all */
    CHECK_EQ_INT(sessions_init(&s, 10, 300, -1), 0);
    a = key(&s, "a");
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(sessions_http_batch(&s, a, T0 + i, &retry), SESS_OK);
    CHECK_EQ_INT(s.throttled, 0);
    sessions_free(&s);
}

/* Many sessions coming and going keep the table and the LRU list consistent. */
static void test_churn(void)
{
    struct sessions s;
    long long retry;
    CHECK_EQ_INT(sessions_init(&s, 1000, 2, -1), 0);
    char tok[32];
    int64_t now = T0;
    size_t ok = 0, refused = 0;
    for (int i = 0; i < 20000; i++) {
        now += 250; /* 4000 requests per second: ~8000 distinct tokens alive by TTL, cap 1000 */
        snprintf(tok, sizeof(tok), "t%d", (i * 7919) % 12000);
        int st = sessions_http_batch(&s, key(&s, tok), now, &retry);
        if (st == SESS_OK)
            ok++;
        else
            refused++;
        CHECK(s.http_count <= 1000);
    }
    CHECK(ok > 0 && refused > 0);
    CHECK_EQ_INT(s.refused_too_many, refused);
    /* list and count agree */
    size_t n = 0;
    for (struct http_session_entry **pp = s.table; pp < s.table + s.nbuckets; pp++)
        if (*pp)
            n++;
    CHECK(n > 0 && n <= s.http_count);
    CHECK_EQ_INT(sessions_active(&s, now + 3 * SEC), 0);
    sessions_free(&s);
}

int main(void)
{
    RUN(test_keys);
    RUN(test_max_sessions);
    RUN(test_ttl);
    RUN(test_throttle);
    RUN(test_http_throttle);
    RUN(test_churn);
    UNIT_DONE("test_sessions");
}
