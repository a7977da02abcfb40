/* test_json_arena.c - ingest/json_arena.c: jansson parses inside begin/end from the arena,
 * end releases the batch and keeps at most `retain` bytes of chunks (bounded over many
 * batches), objects allocated outside the arena are freed normally, another thread keeps
 * using malloc while an arena is active, alignment, json_arena_free. */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../ingest/json_arena.h"
#include "unit.h"

/* The chunk header as json_arena.c lays it out: the test walks the list to count chunks
 * and their bytes (a chunk's size is end - (char *)chunk). */
struct arena_chunk {
    struct arena_chunk *next;
    char *base, *used, *end;
};

static size_t nchunks(const struct json_arena *a)
{
    size_t n = 0;
    for (const struct arena_chunk *c = a->chunks; c; c = c->next)
        n++;
    return n;
}

static size_t chunk_bytes(const struct json_arena *a)
{
    size_t n = 0;
    for (const struct arena_chunk *c = a->chunks; c; c = c->next)
        n += (size_t)(c->end - (const char *)c);
    return n;
}

/* A batch-like document with n traces. */
static char *make_doc(size_t n, size_t msg_len)
{
    size_t cap = 64 + n * (msg_len + 128);
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "{\"appName\":\"wwe_ui\",\"traces\":[");
    for (size_t i = 0; i < n; i++) {
        o += (size_t)snprintf(s + o, cap - o, "%s{\"msg\":\"", i ? "," : "");
        memset(s + o, 'a' + (char)(i % 26), msg_len);
        o += msg_len;
        o += (size_t)snprintf(s + o, cap - o, "\",\"level\":\"info\",\"ts\":%zu,\"properties\":{\"k\":%zu}}", 1795514400000 + i, i);
    }
    snprintf(s + o, cap - o, "]}");
    return s;
}

/* Parses doc, checks it, releases it; returns 1 when the content was right. */
static int parse_check(const char *doc, size_t n, size_t msg_len, int check_align)
{
    json_error_t je;
    json_t *root = json_loads(doc, 0, &je);
    if (!root)
        return 0;
    int ok = check_align ? ((uintptr_t)root % 16 == 0) : 1;
    json_t *traces = json_object_get(root, "traces");
    ok = ok && json_array_size(traces) == n;
    for (size_t i = 0; ok && i < n; i += check_align ? 1 : 1 + n / 16) {
        json_t *t = json_array_get(traces, i);
        const char *m = json_string_value(json_object_get(t, "msg"));
        ok = m && strlen(m) == msg_len && (msg_len == 0 || m[0] == 'a' + (char)(i % 26)) &&
             json_integer_value(json_object_get(json_object_get(t, "properties"), "k")) == (json_int_t)i;
        if (check_align) {
            json_t *lv = json_object_get(t, "level"), *pr = json_object_get(t, "properties");
            ok = ok && (uintptr_t)t % 16 == 0 && (uintptr_t)m % 16 == 0 && (uintptr_t)lv % 16 == 0 &&
                 (uintptr_t)json_string_value(lv) % 16 == 0 && (uintptr_t)pr % 16 == 0 &&
                 (uintptr_t)json_object_get(t, "ts") % 16 == 0;
        }
    }
    json_decref(root);
    return ok;
}

static void test_parse_and_release(void)
{
    struct json_arena a;
    json_arena_init(&a, 1024 * 1024);
    CHECK_EQ_INT(nchunks(&a), 0);
    char *doc = make_doc(100, 40); /* ~15 KB of JSON, many small nodes */
    json_arena_begin(&a);
    CHECK(parse_check(doc, 100, 40, 1));
    CHECK(nchunks(&a) >= 1); /* the nodes came from the arena */
    json_arena_end(&a);
    size_t after_first = nchunks(&a);
    CHECK(after_first >= 1);
    struct arena_chunk *first = (struct arena_chunk *)a.chunks;
    CHECK(first && first->used == first->base); /* released */
    /* many batches: the same chunks are reused, nothing grows */
    for (int i = 0; i < 100; i++) {
        json_arena_begin(&a);
        int ok = parse_check(doc, 100, 40, 0);
        json_arena_end(&a);
        if (!ok || nchunks(&a) != after_first || chunk_bytes(&a) > a.retain) {
            CHECK(ok);
            CHECK_EQ_INT(nchunks(&a), after_first);
            CHECK(chunk_bytes(&a) <= a.retain);
            break;
        }
    }
    CHECK_EQ_INT(nchunks(&a), after_first);
    CHECK((struct arena_chunk *)a.chunks == first);
    free(doc);
    json_arena_free(&a);
    CHECK(a.chunks == NULL);
    CHECK_EQ_INT(nchunks(&a), 0);
}

static void test_retain_bound(void)
{
    /* a large batch takes many chunks; end keeps at most retain bytes of them */
    char *big = make_doc(600, 300); /* ~260 KB of JSON, several chunks of nodes */
    size_t retains[] = {1000, 600 * 1024, 64u << 20};
    for (size_t r = 0; r < sizeof(retains) / sizeof(retains[0]); r++) {
        struct json_arena a;
        json_arena_init(&a, retains[r]);
        json_arena_begin(&a);
        CHECK(parse_check(big, 600, 300, 0));
        size_t during = nchunks(&a);
        CHECK(during >= 3);
        json_arena_end(&a);
        CHECK(chunk_bytes(&a) <= retains[r]);
        if (retains[r] < 256 * 1024)
            CHECK_EQ_INT(nchunks(&a), 0);
        if (retains[r] == (64u << 20))
            CHECK_EQ_INT(nchunks(&a), during); /* everything fits: kept */
        for (const struct arena_chunk *c = a.chunks; c; c = c->next)
            CHECK(c->used == c->base);
        /* the next batch works on what was kept: with room for everything, no new chunk */
        json_arena_begin(&a);
        CHECK(parse_check(big, 600, 300, 0));
        if (retains[r] == (64u << 20))
            CHECK_EQ_INT(nchunks(&a), during);
        json_arena_end(&a);
        CHECK(chunk_bytes(&a) <= retains[r]);
        json_arena_free(&a);
    }
    /* a single string larger than a chunk gets a chunk of its own */
    size_t n = 600 * 1024;
    char *doc = malloc(n + 32);
    memcpy(doc, "[\"", 2);
    memset(doc + 2, 'q', n);
    memcpy(doc + 2 + n, "\"]", 3);
    struct json_arena a;
    json_arena_init(&a, 4u << 20);
    for (int i = 0; i < 3; i++) {
        json_arena_begin(&a);
        json_t *j = json_loads(doc, 0, NULL);
        CHECK(json_string_length(json_array_get(j, 0)) == n);
        json_decref(j);
        json_arena_end(&a);
        CHECK(chunk_bytes(&a) <= a.retain);
    }
    size_t kept = nchunks(&a);
    /* the emptied large chunk is reused (moved to the front), not allocated again */
    json_arena_begin(&a);
    json_t *j = json_loads(doc, 0, NULL);
    CHECK(j != NULL);
    json_decref(j);
    json_arena_end(&a);
    CHECK_EQ_INT(nchunks(&a), kept);
    json_arena_free(&a);
    free(doc);
    free(big);
}

/* Objects made outside any arena are malloc'd and freed with free, even when released while
 * an arena is active (valgrind/ASan would see a leak or a bad free otherwise). */
static void test_outside_objects(void)
{
    json_t *outside = json_pack("{s:s, s:[i,i,i], s:{s:b}}", "name", "kept across batches", "list", 1, 2, 3, "o", "x", 1);
    CHECK(json_is_object(outside));
    struct json_arena a;
    json_arena_init(&a, 1024 * 1024);
    for (int i = 0; i < 50; i++) {
        json_arena_begin(&a);
        json_t *inside = json_loads("{\"x\":[1,2,{\"y\":\"z\"}]}", 0, NULL);
        CHECK(json_is_object(inside));
        /* reading the outside object from inside the batch is fine */
        CHECK_EQ_STR(json_string_value(json_object_get(outside, "name")), "kept across batches");
        json_decref(inside);
        json_arena_end(&a);
    }
    json_t *tmp = json_string("made outside, freed inside");
    json_arena_begin(&a);
    json_decref(tmp);        /* not the arena's: really freed */
    json_decref(outside);
    json_arena_end(&a);
    /* outside again: plain malloc/free, no chunk is added */
    size_t before = nchunks(&a);
    for (int i = 0; i < 100; i++) {
        json_t *j = json_loads("{\"a\":[1,2,3],\"b\":\"c\"}", 0, NULL);
        CHECK(json_is_object(j));
        json_decref(j);
    }
    CHECK_EQ_INT(nchunks(&a), before);
    json_arena_free(&a);
}

/* Another thread parses with no arena of its own while the main thread's arena is active. */
static volatile int stop_worker;

static void *worker(void *arg)
{
    long ok = 0;
    (void)arg;
    char *doc = make_doc(30, 20);
    while (!stop_worker) {
        json_t *j = json_loads(doc, 0, NULL);
        json_t *extra = json_object();
        json_object_set_new(extra, "token-cache", json_string("entry"));
        if (j && json_array_size(json_object_get(j, "traces")) == 30)
            ok++;
        else
            ok = -1000000;
        json_decref(j);
        json_decref(extra);
        if (ok > 300)
            break;
    }
    free(doc);
    return (void *)ok;
}

static void test_threads(void)
{
    pthread_t th;
    stop_worker = 0;
    CHECK_EQ_INT(pthread_create(&th, NULL, worker, NULL), 0);
    struct json_arena a;
    json_arena_init(&a, 1024 * 1024);
    char *doc = make_doc(100, 30);
    int ok = 1;
    for (int i = 0; i < 50; i++) {
        json_arena_begin(&a);
        ok &= parse_check(doc, 100, 30, 0);
        json_arena_end(&a);
    }
    stop_worker = 1;
    void *res;
    pthread_join(th, &res);
    CHECK(ok);
    CHECK((long)res > 0);
    free(doc);
    json_arena_free(&a);
    /* two threads with an arena each */
    stop_worker = 0;
}

struct arena_thread {
    int ok;
    size_t chunks_end;
};

static void *arena_worker(void *arg)
{
    struct arena_thread *t = arg;
    struct json_arena a;
    json_arena_init(&a, 512 * 1024);
    char *doc = make_doc(50, 25);
    t->ok = 1;
    for (int i = 0; i < 50; i++) {
        json_arena_begin(&a);
        t->ok &= parse_check(doc, 50, 25, 1);
        json_arena_end(&a);
    }
    t->chunks_end = nchunks(&a);
    json_arena_free(&a);
    free(doc);
    return NULL;
}

static void test_two_arenas(void)
{
    pthread_t th[2];
    struct arena_thread t[2];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(pthread_create(&th[i], NULL, arena_worker, &t[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK(t[i].ok);
        CHECK_EQ_INT(t[i].chunks_end, 1);
    }
}

int main(void)
{
    json_arena_install();
    RUN(test_parse_and_release);
    RUN(test_retain_bound);
    RUN(test_outside_objects);
    RUN(test_threads);
    RUN(test_two_arenas);
    UNIT_DONE("test_json_arena");
}
