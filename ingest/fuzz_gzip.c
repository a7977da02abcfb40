/* fuzz_gzip.c - libFuzzer target of the streaming gzip inflater: fed in uneven chunks, it must
 * never pass its cap and must agree with a one-shot inflate of the same bytes. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "gzip_body.h"

#define CAP 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gzip_body g;
    struct buf out;
    buf_init(&out);
    if (gzip_body_begin(&g) != GZIP_OK)
        abort();
    int st = GZIP_OK;
    size_t off = 0, step = 1;
    while (off < size && st == GZIP_OK) {
        size_t n = size - off < step ? size - off : step;
        st = gzip_body_feed(&g, data + off, n, &out, CAP);
        off += n;
        step = step * 3 + 1; /* 1, 4, 13, 40, ... bytes: chunk edges everywhere */
    }
    if (out.len > CAP + 1)
        abort();
    if (st == GZIP_OK && gzip_body_finish(&g) == GZIP_OK) {
        /* a single clean member must inflate to the same bytes in one go */
        z_stream zs;
        memset(&zs, 0, sizeof(zs));
        unsigned char *ref = malloc(CAP + 1);
        if (ref && inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK) {
            zs.next_in = (Bytef *)data;
            zs.avail_in = (uInt)size;
            zs.next_out = ref;
            zs.avail_out = CAP + 1;
            int rc = inflate(&zs, Z_FINISH);
            if (rc == Z_STREAM_END && zs.avail_in == 0 &&
                (zs.total_out != out.len || memcmp(ref, out.p, out.len)))
                abort();
            inflateEnd(&zs);
        }
        free(ref);
    }
    gzip_body_free(&g);
    buf_free(&out);
    return 0;
}
