/* gzip_body.c - streaming gzip inflate with an output cap (see gzip_body.h). */
#include "gzip_body.h"

#include <string.h>

int gzip_body_begin(struct gzip_body *g)
{
    memset(g, 0, sizeof(*g));
    if (inflateInit2(&g->zs, 16 + MAX_WBITS) != Z_OK)
        return GZIP_BAD;
    g->active = 1;
    return GZIP_OK;
}

int gzip_body_feed(struct gzip_body *g, const void *in, size_t len, struct buf *out, size_t max_out)
{
    if (!g->active)
        return GZIP_BAD;
    g->zs.next_in = (Bytef *)in;
    g->zs.avail_in = (uInt)len;
    while (g->zs.avail_in > 0) {
        if (g->ended) { /* another gzip member follows: concatenated members are one body */
            if (inflateReset(&g->zs) != Z_OK)
                return GZIP_BAD;
            g->ended = 0;
        }
        size_t room = 65536;
        if (out->len + room > max_out + 1)
            room = max_out + 1 - out->len; /* one byte past the cap proves it is too large */
        if (room == 0)
            return GZIP_TOO_LARGE;
        if (buf_reserve(out, room))
            return GZIP_TOO_LARGE;
        g->zs.next_out = (Bytef *)out->p + out->len;
        g->zs.avail_out = (uInt)room;
        int rc = inflate(&g->zs, Z_NO_FLUSH);
        out->len += room - g->zs.avail_out;
        out->p[out->len] = '\0';
        if (out->len > max_out)
            return GZIP_TOO_LARGE;
        if (rc == Z_STREAM_END)
            g->ended = 1;
        else if (rc == Z_BUF_ERROR && g->zs.avail_out == 0)
            continue;
        else if (rc != Z_OK)
            return GZIP_BAD;
    }
    return GZIP_OK;
}

int gzip_body_finish(struct gzip_body *g) { return g->active && g->ended ? GZIP_OK : GZIP_BAD; }

void gzip_body_free(struct gzip_body *g)
{
    if (g->active)
        inflateEnd(&g->zs);
    g->active = 0;
}
