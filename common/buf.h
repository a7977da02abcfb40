/* buf.h - a growable byte buffer with a hard cap.
 * Every module that builds text (JSON lines, Prometheus output, frames) appends here. */
#ifndef TLM_BUF_H
#define TLM_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char *p;
    size_t len;
    size_t cap;
    int oom; /* set once an allocation failed; later appends are ignored */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);                  /* len = 0, keeps memory */
int buf_reserve(struct buf *b, size_t extra);   /* 0 ok, -1 out of memory */
void buf_append(struct buf *b, const void *data, size_t len);
void buf_putc(struct buf *b, char c);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_put_u64(struct buf *b, uint64_t v);    /* decimal */
void buf_put_double(struct buf *b, double v);   /* shortest round-trip form, JSON-safe */
void buf_consume(struct buf *b, size_t n);      /* drop n bytes from the front */

#endif
