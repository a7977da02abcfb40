/* ws_rxbuf.c - lws's per-connection WebSocket receive buffers, in page-aligned slots of one
 * reserved region: no memory until written, given back when freed (see ws_rxbuf.h). */
#include "ws_rxbuf.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RXBUF_REASON "rx_ubuf"          /* what lws 4.1 names a WebSocket's receive buffer */
#define RXBUF_HEADROOM (LWS_PRE + 4)    /* lws asks for rx_buffer_size + LWS_PRE + 4 */

/* One instance: lws's allocator hook takes no user pointer. */
static struct {
    pthread_mutex_t lock;
    uint8_t *base;          /* NULL: no region, everything goes to malloc */
    size_t slots, slot_bytes, region_bytes;
    size_t next_fresh;      /* slots below this were handed out at least once */
    uint32_t *free_slots;   /* freed slots, reused last in first out */
    size_t nfree, in_use;
    unsigned long long fallbacks;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER};

static long slot_of(const void *p)
{
    const uint8_t *b = p;
    if (!R.base || b < R.base || b >= R.base + R.region_bytes)
        return -1;
    return (long)((size_t)(b - R.base) / R.slot_bytes);
}

static void drop_pages(size_t i)
{
    /* anonymous private memory: the pages go back now and read as zeros when touched again */
    (void)madvise(R.base + i * R.slot_bytes, R.slot_bytes, MADV_DONTNEED);
}

static void *slot_take(size_t size)
{
    void *p = NULL;
    pthread_mutex_lock(&R.lock);
    if (R.base && size <= R.slot_bytes) {
        size_t i = R.slots;
        if (R.nfree)
            i = R.free_slots[--R.nfree];
        else if (R.next_fresh < R.slots)
            i = R.next_fresh++;
        if (i < R.slots) {
            p = R.base + i * R.slot_bytes;
            R.in_use++;
        }
    }
    if (!p)
        R.fallbacks++;
    pthread_mutex_unlock(&R.lock);
    return p;
}

static void slot_give_back(size_t i)
{
    pthread_mutex_lock(&R.lock);
    drop_pages(i); /* a freed slot holds no memory, and the next owner finds zeros */
    R.free_slots[R.nfree++] = (uint32_t)i;
    R.in_use--;
    pthread_mutex_unlock(&R.lock);
}

void *ws_rxbuf_realloc(void *p, size_t size, const char *reason)
{
    long i = p ? slot_of(p) : -1;
    if (i >= 0) {
        if (size && size <= R.slot_bytes)
            return p; /* still fits its slot */
        void *q = NULL;
        if (size) { /* grown past the slot (lws does not do this): move it to the heap */
            if (!(q = malloc(size)))
                return NULL;
            memcpy(q, p, R.slot_bytes);
        }
        slot_give_back((size_t)i);
        return q;
    }
    if (!p && size && reason && !strcmp(reason, RXBUF_REASON)) {
        void *q = slot_take(size);
        if (q)
            return q;
    }
    if (!size) { /* lws_realloc(p, 0) frees */
        free(p);
        return NULL;
    }
    return realloc(p, size);
}

int ws_rxbuf_init(size_t slots, size_t buf_bytes)
{
    lws_set_allocator(ws_rxbuf_realloc); /* also without a region: then it is plain malloc */
    if (R.base && ws_rxbuf_shutdown())
        return -1;
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    size_t slot_bytes = (buf_bytes + RXBUF_HEADROOM + pg - 1) / pg * pg;
    if (!slots || slots > UINT32_MAX || slots > SIZE_MAX / slot_bytes)
        return -1;
    uint32_t *free_slots = malloc(slots * sizeof(*free_slots));
    if (!free_slots)
        return -1;
    /* address space only: pages exist once lws writes to them (and the kernel may refuse the
     * reservation under strict overcommit, where buffers simply stay on the heap) */
    void *base = mmap(NULL, slots * slot_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    if (base == MAP_FAILED) {
        free(free_slots);
        return -1;
    }
    pthread_mutex_lock(&R.lock);
    R.base = base;
    R.slots = slots;
    R.slot_bytes = slot_bytes;
    R.region_bytes = slots * slot_bytes;
    R.free_slots = free_slots;
    R.next_fresh = R.nfree = R.in_use = 0;
    R.fallbacks = 0;
    pthread_mutex_unlock(&R.lock);
    return 0;
}

int ws_rxbuf_shutdown(void)
{
    pthread_mutex_lock(&R.lock);
    if (R.in_use) { /* lws still holds buffers in the region: it stays */
        pthread_mutex_unlock(&R.lock);
        return -1;
    }
    if (R.base)
        munmap(R.base, R.region_bytes);
    free(R.free_slots);
    R.base = NULL;
    R.free_slots = NULL;
    R.slots = R.slot_bytes = R.region_bytes = R.next_fresh = R.nfree = 0;
    pthread_mutex_unlock(&R.lock);
    return 0;
}

int ws_rxbuf_owns(const void *p) { return slot_of(p) >= 0; }

void ws_rxbuf_stats(struct ws_rxbuf_stats *out)
{
    pthread_mutex_lock(&R.lock);
    out->slots = R.slots;
    out->slot_bytes = R.slot_bytes;
    out->in_use = R.in_use;
    out->fallbacks = R.fallbacks;
    pthread_mutex_unlock(&R.lock);
}
