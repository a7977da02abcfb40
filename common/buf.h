/* buf.h - a growable byte buffer with a hard cap.
 * Every module that builds text (JSON lines, Prometheus output, frames) appends here. */
#ifndef TLM_BUF_H
#define TLM_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
    char *p;
    size_t len;
    size_t cap;
    int oom; /* set once an allocation failed; later appends are ignored */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);                  /* len = 0, keeps memory */
int buf_grow(struct buf *b, size_t extra);      /* buf_reserve's slow path */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_put_u64(struct buf *b, uint64_t v);    /* decimal */
void buf_put_double(struct buf *b, double v);   /* shortest round-trip form, JSON-safe */
void buf_consume(struct buf *b, size_t n);      /* drop n bytes from the front */

/* The appends are inline: the stdout line of every record is built from dozens of them,
 * nearly all short and with room already there (a call each cost ~2 % of the ingest at
 * 100-record batches), and a constant string's length is then known at compile time. */

/* Room for extra more bytes and a terminating NUL. 0 ok, -1 out of memory. */
static inline int buf_reserve(struct buf *b, size_t extra)
{
    if (!b->oom && extra < b->cap - b->len) /* len + extra + 1 <= cap, without overflow */
        return 0;
    return buf_grow(b, extra);
}

static inline void buf_append(struct buf *b, const void *data, size_t len)
{
    if (!len || buf_reserve(b, len))
        return;
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

static inline void buf_putc(struct buf *b, char c)
{
    if (buf_reserve(b, 1))
        return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

static inline void buf_puts(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

#endif
