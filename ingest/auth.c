/* auth.c - GAuth token validation: cache on the lws thread, libcurl multi on a worker thread.
 * Tokens cross to the worker only to build the request header and are wiped after it. */
#include "auth.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/buf.h"
#include "../common/hash.h"
#include "../common/log.h"

#define AUTH_TOKEN_MAX 8192

enum entry_state { ENTRY_PENDING, ENTRY_VALID, ENTRY_INVALID };

struct auth_entry {
    uint64_t key;                 /* SipHash of the token with a per-process random key */
    uint64_t check;               /* second hash with another key: two tokens never share an entry */
    enum entry_state state;
    int64_t expires_us;
    struct auth_identity id;
    struct auth_waiter *waiters;
    struct auth_entry *hnext;     /* hash chain */
    struct auth_entry *lprev, *lnext; /* LRU list (not for pending entries) */
};

struct auth_job {
    uint64_t key, check;
    char *token;
    struct auth_job *next;
};

struct auth_answer {
    uint64_t key, check;
    int result;
    struct auth_identity id;
    double ms;
    struct auth_answer *next;
};

struct auth_call {              /* one in-flight curl request (worker thread only) */
    CURL *easy;
    struct auth_call *prev, *next;
    struct auth_job *job;       /* NULL for a ping */
    struct curl_slist *headers;
    struct buf body;
    struct timespec started;
};

struct auth {
    struct lws_context *ctx;
    const struct tlm_config *cfg;
    struct hash_key hkey, ckey;
    struct auth_entry **table;
    size_t nbuckets, count;
    struct auth_entry *lru_head, *lru_tail;
    struct auth_stats stats;
    /* shared with the worker */
    pthread_mutex_t lock;
    struct auth_job *jobs, *jobs_tail;
    struct auth_answer *answers;
    int stop;
    atomic_int gauth_up;
    CURLM *multi;
    struct auth_call *calls;    /* in flight (worker thread only) */
    pthread_t thread;
    int thread_started;
    char *userinfo_url, *ping_url;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double elapsed_ms(const struct timespec *from)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - from->tv_sec) * 1e3 + (double)(ts.tv_nsec - from->tv_nsec) / 1e6;
}

/* ---- cache (lws thread) ---- */

static struct auth_entry *cache_find(struct auth *a, uint64_t key, uint64_t check)
{
    struct auth_entry *e = a->table[key & (a->nbuckets - 1)];
    while (e && !(e->key == key && e->check == check))
        e = e->hnext;
    return e;
}

static void lru_unlink(struct auth *a, struct auth_entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else if (a->lru_head == e)
        a->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else if (a->lru_tail == e)
        a->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push_front(struct auth *a, struct auth_entry *e)
{
    e->lprev = NULL;
    e->lnext = a->lru_head;
    if (a->lru_head)
        a->lru_head->lprev = e;
    a->lru_head = e;
    if (!a->lru_tail)
        a->lru_tail = e;
}

static void cache_remove(struct auth *a, struct auth_entry *e)
{
    struct auth_entry **pp = &a->table[e->key & (a->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    if (e->state != ENTRY_PENDING)
        lru_unlink(a, e);
    a->count--;
    free(e);
}

static struct auth_entry *cache_insert(struct auth *a, uint64_t key, uint64_t check)
{
    while (a->count >= (size_t)a->cfg->auth_cache_size && a->lru_tail) {
        cache_remove(a, a->lru_tail);
        a->stats.evictions++;
    }
    struct auth_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->key = key;
    e->check = check;
    e->state = ENTRY_PENDING;
    size_t b = key & (a->nbuckets - 1);
    e->hnext = a->table[b];
    a->table[b] = e;
    a->count++;
    return e;
}

static int token_is_well_formed(const char *t, size_t len)
{
    if (len == 0 || len > AUTH_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return 0; /* no CR/LF/space/controls: nothing can be injected into our request */
    return 1;
}

static void job_queue(struct auth *a, uint64_t key, uint64_t check, const char *token, size_t len)
{
    struct auth_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->token = strndup(token, len))) {
        free(j);
        return;
    }
    j->key = key;
    j->check = check;
    pthread_mutex_lock(&a->lock);
    if (a->jobs_tail)
        a->jobs_tail->next = j;
    else
        a->jobs = j;
    a->jobs_tail = j;
    pthread_mutex_unlock(&a->lock);
    curl_multi_wakeup(a->multi);
}

int auth_lookup(struct auth *a, const char *token, size_t len, struct auth_waiter *w, struct auth_identity *id)
{
    if (!token_is_well_formed(token, len))
        return AUTH_INVALID;
    uint64_t key = hash_siphash(&a->hkey, token, len);
    uint64_t check = hash_siphash(&a->ckey, token, len);
    int64_t now = now_us();
    struct auth_entry *e = cache_find(a, key, check);
    if (e && e->state != ENTRY_PENDING && e->expires_us <= now) {
        cache_remove(a, e);
        e = NULL;
    }
    if (e && e->state == ENTRY_VALID) {
        a->stats.cache_hits++;
        lru_unlink(a, e);
        lru_push_front(a, e);
        *id = e->id;
        return AUTH_OK;
    }
    if (e && e->state == ENTRY_INVALID) {
        a->stats.negative_hits++;
        return AUTH_INVALID;
    }
    if (!e) {
        a->stats.cache_misses++;
        if (!(e = cache_insert(a, key, check)))
            return AUTH_UNAVAILABLE;
        job_queue(a, key, check, token, len);
    }
    /* join the waiters of the pending entry: one GAuth call per token however many ask */
    w->entry = e;
    w->prev = NULL;
    w->next = e->waiters;
    if (e->waiters)
        e->waiters->prev = w;
    e->waiters = w;
    return AUTH_PENDING;
}

void auth_cancel(struct auth *a, struct auth_waiter *w)
{
    (void)a;
    struct auth_entry *e = w->entry;
    if (!e)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->entry = NULL;
    w->prev = w->next = NULL;
}

static void deliver(struct auth *a, struct auth_answer *ans)
{
    struct auth_entry *e = cache_find(a, ans->key, ans->check);
    if (!e || e->state != ENTRY_PENDING)
        return;
    a->stats.last_ms = ans->ms;
    a->stats.window_sum_ms += ans->ms;
    a->stats.window_count++;
    if (ans->ms > a->stats.window_max_ms)
        a->stats.window_max_ms = ans->ms;
    if (a->stats.window_count == 1 || ans->ms < a->stats.window_min_ms)
        a->stats.window_min_ms = ans->ms;
    struct auth_waiter *w = e->waiters;
    e->waiters = NULL;
    if (ans->result == AUTH_UNAVAILABLE) {
        a->stats.calls_unavailable++;
        cache_remove(a, e); /* not cached: the next request asks again */
        e = NULL;
    } else {
        int ok = ans->result == AUTH_OK;
        if (ok)
            a->stats.calls_ok++;
        else
            a->stats.calls_invalid++;
        e->state = ok ? ENTRY_VALID : ENTRY_INVALID;
        e->id = ans->id;
        e->expires_us = now_us() + (ok ? a->cfg->auth_cache_ttl_s : a->cfg->auth_negative_ttl_s) * 1000000LL;
        lru_push_front(a, e);
    }
    while (w) {
        struct auth_waiter *next = w->next;
        w->entry = NULL;
        w->prev = w->next = NULL;
        w->done(w, ans->result, &ans->id);
        w = next;
    }
}

void auth_service(struct auth *a)
{
    pthread_mutex_lock(&a->lock);
    struct auth_answer *list = a->answers;
    a->answers = NULL;
    pthread_mutex_unlock(&a->lock);
    /* answers were pushed newest first: deliver oldest first */
    struct auth_answer *rev = NULL;
    while (list) {
        struct auth_answer *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        struct auth_answer *n = rev->next;
        deliver(a, rev);
        free(rev);
        rev = n;
    }
    a->stats.cached = a->count;
}

int auth_gauth_up(struct auth *a) { return atomic_load(&a->gauth_up); }

void auth_roll_window(struct auth *a)
{
    struct auth_stats *s = &a->stats;
    s->prev_count = s->window_count;
    s->prev_avg_ms = s->window_count ? s->window_sum_ms / (double)s->window_count : 0;
    s->prev_max_ms = s->window_max_ms;
    s->prev_min_ms = s->window_min_ms;
    s->window_sum_ms = s->window_max_ms = s->window_min_ms = 0;
    s->window_count = 0;
}

const struct auth_stats *auth_get_stats(struct auth *a)
{
    a->stats.cached = a->count;
    return &a->stats;
}

/* ---- worker thread: libcurl multi ---- */

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    struct buf *b = userp;
    size_t len = size * n;
    if (b->len + len > 65536)
        return 0; /* an answer this large is not a userinfo: fail the call */
    buf_append(b, data, len);
    return b->oom ? 0 : len;
}

static void copy_field(char *dst, size_t cap, json_t *v, int *ok)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (!s || len == 0 || len >= cap || memchr(s, 0, len)) {
        *ok = 0;
        return;
    }
    memcpy(dst, s, len + 1);
}

static int parse_userinfo(const struct buf *body, struct auth_identity *id)
{
    json_t *j = json_loadb(body->p ? body->p : "", body->len, 0, NULL);
    int ok = json_is_object(j);
    if (ok) {
        copy_field(id->user, sizeof(id->user), json_object_get(j, "username"), &ok);
        copy_field(id->ccid, sizeof(id->ccid), json_object_get(j, "contactCenterId"), &ok);
    }
    json_decref(j);
    return ok;
}

static CURL *call_start(struct auth *a, struct auth_job *job)
{
    CURL *c = curl_easy_init();
    struct auth_call *call = calloc(1, sizeof(*call));
    if (!c || !call) {
        curl_easy_cleanup(c);
        free(call);
        return NULL;
    }
    call->job = job;
    call->easy = c;
    call->next = a->calls;
    if (a->calls)
        a->calls->prev = call;
    a->calls = call;
    clock_gettime(CLOCK_MONOTONIC, &call->started);
    curl_easy_setopt(c, CURLOPT_URL, job ? a->userinfo_url : a->ping_url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)a->cfg->auth_timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)a->cfg->auth_timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &call->body);
    curl_easy_setopt(c, CURLOPT_PRIVATE, call);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tlm-ingest");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (job) {
        struct buf h;
        buf_init(&h);
        buf_puts(&h, "Authorization: Bearer ");
        buf_puts(&h, job->token);
        call->headers = curl_slist_append(NULL, h.p ? h.p : "");
        call->headers = curl_slist_append(call->headers, "Accept: application/json");
        if (h.p)
            explicit_bzero(h.p, h.len);
        buf_free(&h);
        explicit_bzero(job->token, strlen(job->token));
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, call->headers);
    }
    curl_multi_add_handle(a->multi, c);
    return c;
}

static void call_free(struct auth *a, struct auth_call *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        a->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    curl_multi_remove_handle(a->multi, call->easy);
    curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->headers);
    buf_free(&call->body);
    if (call->job) {
        free(call->job->token);
        free(call->job);
    }
    free(call);
}

static void call_finish(struct auth *a, CURL *c, CURLcode rc, int *wake)
{
    struct auth_call *call = NULL;
    curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&call);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    double ms = elapsed_ms(&call->started);
    if (!call->job) {
        int up = rc == CURLE_OK && status >= 200 && status < 300;
        if (up != atomic_load(&a->gauth_up))
            log_app(up ? LOG_INFO : LOG_WARN, "GAuth ping: %s", up ? "up" : "down");
        atomic_store(&a->gauth_up, up);
    } else {
        struct auth_answer *ans = calloc(1, sizeof(*ans));
        if (ans) {
            ans->key = call->job->key;
            ans->check = call->job->check;
            ans->ms = ms;
            if (rc != CURLE_OK || status >= 500 || status == 0)
                ans->result = AUTH_UNAVAILABLE;
            else if (status >= 200 && status < 300)
                ans->result = parse_userinfo(&call->body, &ans->id) ? AUTH_OK : AUTH_UNAVAILABLE;
            else
                ans->result = AUTH_INVALID;
            if (rc != CURLE_OK)
                log_app(LOG_WARN, "GAuth userinfo call failed: %s", curl_easy_strerror(rc));
            else if (ans->result == AUTH_UNAVAILABLE)
                log_app(LOG_WARN, "GAuth userinfo answered %ld without a usable userinfo", status);
            pthread_mutex_lock(&a->lock);
            ans->next = a->answers;
            a->answers = ans;
            pthread_mutex_unlock(&a->lock);
            *wake = 1;
        }
    }
    call_free(a, call);
}

static void *worker(void *arg)
{
    struct auth *a = arg;
    int inflight = 0;
    int64_t next_ping = 0;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        int stop = a->stop;
        struct auth_job *take = NULL, **tail = &take;
        while (a->jobs && inflight < a->cfg->auth_max_inflight) {
            struct auth_job *j = a->jobs;
            a->jobs = j->next;
            if (!a->jobs)
                a->jobs_tail = NULL;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
            inflight++;
        }
        pthread_mutex_unlock(&a->lock);
        if (stop) {
            while (a->calls)
                call_free(a, a->calls);
            while (take) {
                struct auth_job *n = take->next;
                free(take->token);
                free(take);
                take = n;
            }
            break;
        }
        while (take) {
            struct auth_job *n = take->next;
            take->next = NULL;
            if (!call_start(a, take)) {
                free(take->token);
                free(take);
                inflight--;
            }
            take = n;
        }
        int64_t now = now_us();
        if (now >= next_ping) {
            call_start(a, NULL);
            inflight++;
            next_ping = now + a->cfg->health_timer_s * 1000000LL;
        }
        int running = 0, wake = 0, left;
        curl_multi_perform(a->multi, &running);
        CURLMsg *m;
        while ((m = curl_multi_info_read(a->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            call_finish(a, m->easy_handle, m->data.result, &wake);
            inflight--;
        }
        if (wake)
            lws_cancel_service(a->ctx);
        int64_t wait_ms = (next_ping - now_us()) / 1000;
        if (wait_ms > 1000)
            wait_ms = 1000;
        if (wait_ms < 1)
            wait_ms = 1;
        curl_multi_poll(a->multi, NULL, 0, (int)wait_ms, NULL);
    }
    return NULL;
}

static char *join_url(const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    struct buf b;
    buf_init(&b);
    buf_append(&b, base, bl);
    buf_puts(&b, path);
    return b.p;
}

struct auth *auth_new(struct lws_context *ctx, const struct tlm_config *cfg)
{
    struct auth *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->ctx = ctx;
    a->cfg = cfg;
    pthread_mutex_init(&a->lock, NULL);
    hash_random_key(&a->hkey);
    hash_random_key(&a->ckey);
    a->nbuckets = 1024;
    while (a->nbuckets < (size_t)cfg->auth_cache_size && a->nbuckets < (1u << 22))
        a->nbuckets <<= 1;
    a->table = calloc(a->nbuckets, sizeof(*a->table));
    a->userinfo_url = join_url(cfg->auth_url, "/auth/v3/userinfo");
    a->ping_url = join_url(cfg->auth_url, "/auth/v3/ping");
    a->multi = curl_multi_init();
    if (!a->table || !a->userinfo_url || !a->ping_url || !a->multi) {
        auth_free(a);
        return NULL;
    }
    if (pthread_create(&a->thread, NULL, worker, a) != 0) {
        auth_free(a);
        return NULL;
    }
    a->thread_started = 1;
    return a;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    if (a->thread_started) {
        pthread_mutex_lock(&a->lock);
        a->stop = 1;
        pthread_mutex_unlock(&a->lock);
        curl_multi_wakeup(a->multi);
        pthread_join(a->thread, NULL);
    }
    while (a->jobs) {
        struct auth_job *j = a->jobs;
        a->jobs = j->next;
        free(j->token);
        free(j);
    }
    while (a->answers) {
        struct auth_answer *n = a->answers->next;
        free(a->answers);
        a->answers = n;
    }
    if (a->table) {
        for (size_t i = 0; i < a->nbuckets; i++) {
            struct auth_entry *e = a->table[i];
            while (e) {
                struct auth_entry *n = e->hnext;
                free(e);
                e = n;
            }
        }
        free(a->table);
    }
    if (a->multi)
        curl_multi_cleanup(a->multi);
    free(a->userinfo_url);
    free(a->ping_url);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
