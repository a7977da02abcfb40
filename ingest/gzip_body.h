/* gzip_body.h - inflating a gzip request body as it arrives, with a cap on the inflated size
 * (a gzip bomb stops at the cap, never in memory). */
#ifndef TLM_GZIP_BODY_H
#define TLM_GZIP_BODY_H

#include <stddef.h>
#include <zlib.h>

#include "../common/buf.h"

enum { GZIP_OK = 0, GZIP_TOO_LARGE = 1, GZIP_BAD = 2 };

struct gzip_body {
    z_stream zs;
    int active;
    int ended;  /* the last member ended exactly at the end of the input so far */
};

int gzip_body_begin(struct gzip_body *g);
/* Inflates in[0..len) onto out; GZIP_TOO_LARGE once out would pass max_out. */
int gzip_body_feed(struct gzip_body *g, const void *in, size_t len, struct buf *out, size_t max_out);
/* GZIP_OK when the stream ended cleanly. */
int gzip_body_finish(struct gzip_body *g);
void gzip_body_free(struct gzip_body *g);

#endif
