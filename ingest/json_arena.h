/* json_arena.h - a bump allocator for jansson while one batch is parsed and turned into
 * lines: every node of the document comes from a few reused chunks and is dropped at once,
 * instead of thousands of malloc/free pairs per batch. Per thread: the auth worker's
 * jansson calls keep using malloc. */
#ifndef TLM_JSON_ARENA_H
#define TLM_JSON_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct json_arena {
    struct arena_chunk *chunks; /* current first */
    size_t retain;              /* bytes of chunks kept between batches */
};

/* Installs the allocator into jansson (once per process, before any other thread uses it). */
void json_arena_install(void);
void json_arena_init(struct json_arena *a, size_t retain);
/* Makes a the calling thread's allocator until json_arena_end, which frees the batch at once
 * (every json_t of the batch must be released before). */
void json_arena_begin(struct json_arena *a);
void json_arena_end(struct json_arena *a);
void json_arena_free(struct json_arena *a);

#endif
