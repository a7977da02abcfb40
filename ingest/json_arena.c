/* json_arena.c - bump allocation for jansson during a batch (see json_arena.h). */
#include "json_arena.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#define CHUNK_MIN (256 * 1024)
#define ALIGN 16

struct arena_chunk {
    struct arena_chunk *next;
    char *base, *used, *end;
};

static __thread struct json_arena *current; /* the calling thread's active arena, if any */

static int arena_owns(const struct json_arena *a, const void *p)
{
    for (const struct arena_chunk *c = a->chunks; c; c = c->next)
        if ((const char *)p >= c->base && (const char *)p < c->end)
            return 1;
    return 0;
}

static void *arena_malloc(size_t size)
{
    struct json_arena *a = current;
    if (!a)
        return malloc(size);
    size = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    struct arena_chunk *c = a->chunks;
    if (c && (size_t)(c->end - c->used) >= size) {
        void *p = c->used;
        c->used += size;
        return p;
    }
    /* a chunk emptied by an earlier batch: move it to the front */
    for (struct arena_chunk **pp = &a->chunks; *pp; pp = &(*pp)->next) {
        struct arena_chunk *e = *pp;
        if (e->used == e->base && (size_t)(e->end - e->base) >= size) {
            *pp = e->next;
            e->next = a->chunks;
            a->chunks = e;
            e->used += size;
            return e->base;
        }
    }
    size_t cap = size + sizeof(struct arena_chunk) + ALIGN > CHUNK_MIN ? size + sizeof(struct arena_chunk) + ALIGN : CHUNK_MIN;
    struct arena_chunk *n = malloc(cap);
    if (!n)
        return NULL;
    n->base = (char *)(((uintptr_t)(n + 1) + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
    n->end = (char *)n + cap;
    n->used = n->base + size;
    n->next = a->chunks;
    a->chunks = n;
    return n->base;
}

static void arena_free(void *p)
{
    struct json_arena *a = current;
    if (!p || (a && arena_owns(a, p)))
        return; /* released with the whole batch */
    free(p);
}

void json_arena_install(void) { json_set_alloc_funcs(arena_malloc, arena_free); }

void json_arena_init(struct json_arena *a, size_t retain)
{
    a->chunks = NULL;
    a->retain = retain;
}

void json_arena_begin(struct json_arena *a) { current = a; }

void json_arena_end(struct json_arena *a)
{
    current = NULL;
    size_t kept = 0;
    struct arena_chunk **pp = &a->chunks;
    while (*pp) {
        struct arena_chunk *c = *pp;
        size_t size = (size_t)(c->end - (char *)c);
        if (kept + size <= a->retain) {
            c->used = c->base;
            kept += size;
            pp = &c->next;
        } else {
            *pp = c->next;
            free(c);
        }
    }
}

void json_arena_free(struct json_arena *a)
{
    while (a->chunks) {
        struct arena_chunk *n = a->chunks->next;
        free(a->chunks);
        a->chunks = n;
    }
}
