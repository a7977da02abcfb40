/* test_ws_rxbuf.c - ingest/ws_rxbuf.c: lws's receive buffers come from page-aligned slots,
 * everything else from malloc; a slot holds no pages until written (mincore) and none once
 * freed, and the next owner finds zeros; freed slots are reused; a full region or an
 * oversized request falls back to malloc; the region is unmapped only once lws holds nothing
 * in it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "../../ingest/ws_rxbuf.h"
#include "unit.h"

static size_t page;

/* pages of [p, p + len) that are resident */
static int resident_pages(const void *p, size_t len)
{
    unsigned char vec[64];
    size_t n = (len + page - 1) / page;
    if (n > sizeof(vec) || mincore((void *)p, len, vec))
        return -1;
    int r = 0;
    for (size_t i = 0; i < n; i++)
        r += vec[i] & 1;
    return r;
}

static int all_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return 0;
    return 1;
}

static size_t lws_size(size_t rx) { return rx + LWS_PRE + 4; } /* what lws asks for */

static void test_slots_and_heap(void)
{
    CHECK_EQ_INT(ws_rxbuf_init(4, 8192), 0);
    struct ws_rxbuf_stats st;
    ws_rxbuf_stats(&st);
    CHECK_EQ_INT(st.slots, 4);
    CHECK(st.slot_bytes >= lws_size(8192) && st.slot_bytes % page == 0);

    unsigned char *a = ws_rxbuf_realloc(NULL, lws_size(8192), "rx_ubuf");
    CHECK(a != NULL);
    CHECK_EQ_INT((uintptr_t)a % page, 0);
    CHECK_EQ_INT(ws_rxbuf_owns(a + 100), 1);

    void *other = ws_rxbuf_realloc(NULL, 200, "wsi");
    CHECK(other != NULL);
    CHECK_EQ_INT(ws_rxbuf_owns(other), 0);
    other = ws_rxbuf_realloc(other, 4000, "wsi"); /* plain realloc semantics */
    CHECK(other != NULL);
    CHECK(ws_rxbuf_realloc(other, 0, "lws_free") == NULL);

    void *big = ws_rxbuf_realloc(NULL, st.slot_bytes + 1, "rx_ubuf"); /* larger than a slot */
    CHECK(big != NULL);
    CHECK_EQ_INT(ws_rxbuf_owns(big), 0);
    ws_rxbuf_realloc(big, 0, "lws_free");
    ws_rxbuf_stats(&st);
    CHECK_EQ_INT(st.in_use, 1);
    CHECK_EQ_INT(st.fallbacks, 1);

    ws_rxbuf_realloc(a, 0, "lws_free");
    ws_rxbuf_stats(&st);
    CHECK_EQ_INT(st.in_use, 0);
    CHECK_EQ_INT(ws_rxbuf_shutdown(), 0);
}

static void test_pages_only_while_written(void)
{
    CHECK_EQ_INT(ws_rxbuf_init(2, 32768), 0);
    unsigned char *a = ws_rxbuf_realloc(NULL, lws_size(32768), "rx_ubuf");
    CHECK(a != NULL);
    CHECK_EQ_INT(resident_pages(a, 32768), 0); /* handed out, never written: no memory */
    memset(a + LWS_PRE, 'x', 100);             /* a ping's payload */
    CHECK_EQ_INT(resident_pages(a, 32768), 1);
    ws_rxbuf_realloc(a, 0, "lws_free");
    CHECK_EQ_INT(resident_pages(a, 32768), 0); /* a freed slot holds no pages */
    unsigned char *b = ws_rxbuf_realloc(NULL, lws_size(32768), "rx_ubuf");
    CHECK(b == a);                             /* last freed, first reused */
    CHECK(all_zero(b, 32768));                 /* and nothing of its last owner is left */
    ws_rxbuf_realloc(b, 0, "lws_free");
    CHECK_EQ_INT(ws_rxbuf_shutdown(), 0);
}

static void test_full_region_and_shutdown(void)
{
    CHECK_EQ_INT(ws_rxbuf_init(2, 1024), 0);
    unsigned char *a = ws_rxbuf_realloc(NULL, lws_size(1024), "rx_ubuf");
    unsigned char *b = ws_rxbuf_realloc(NULL, lws_size(1024), "rx_ubuf");
    unsigned char *c = ws_rxbuf_realloc(NULL, lws_size(1024), "rx_ubuf"); /* region full: heap */
    CHECK(a && b && c && a != b);
    CHECK_EQ_INT(ws_rxbuf_owns(c), 0);
    CHECK_EQ_INT(ws_rxbuf_shutdown(), -1); /* lws still holds slots: the region stays */
    CHECK_EQ_INT(ws_rxbuf_owns(a), 1);
    struct ws_rxbuf_stats st;
    ws_rxbuf_stats(&st);
    CHECK_EQ_INT(st.in_use, 2);
    CHECK_EQ_INT(st.fallbacks, 1);

    /* a slot grown past its size moves to the heap with its bytes */
    memcpy(b, "keep", 4);
    unsigned char *moved = ws_rxbuf_realloc(b, st.slot_bytes * 2, "rx_ubuf");
    CHECK(moved != NULL && !memcmp(moved, "keep", 4));
    CHECK_EQ_INT(ws_rxbuf_owns(moved), 0);
    ws_rxbuf_realloc(moved, 0, "lws_free");
    ws_rxbuf_realloc(c, 0, "lws_free");
    ws_rxbuf_realloc(a, 0, "lws_free");
    ws_rxbuf_stats(&st);
    CHECK_EQ_INT(st.in_use, 0);
    CHECK_EQ_INT(ws_rxbuf_shutdown(), 0);

    /* without a region every buffer is the heap's, and init starts over */
    void *h = ws_rxbuf_realloc(NULL, lws_size(1024), "rx_ubuf");
    CHECK(h != NULL);
    CHECK_EQ_INT(ws_rxbuf_owns(h), 0);
    ws_rxbuf_realloc(h, 0, "lws_free");
    CHECK_EQ_INT(ws_rxbuf_init(0, 1024), -1);
    CHECK_EQ_INT(ws_rxbuf_init(1, 1024), 0);
    CHECK_EQ_INT(ws_rxbuf_shutdown(), 0);
}

int main(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    RUN(test_slots_and_heap);
    RUN(test_pages_only_while_written);
    RUN(test_full_region_and_shutdown);
    UNIT_DONE("test_ws_rxbuf");
}
