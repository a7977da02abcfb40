/* ws_rxbuf.h - where lws keeps each WebSocket's receive buffer, so that it costs no memory
 * until something is written into it.
 *
 * lws reads a WebSocket at most rx_buffer_size bytes at a time, and allocates a buffer of
 * that size for every connection when it upgrades. lws 4.1 hands data frames to the callback
 * from its per-thread read buffer (unmasked in place), so that per-connection buffer only
 * takes control-frame payloads (a client's ping) and is otherwise never written. At 1 KiB, a
 * 27 KB batch took 27 reads, polls and callbacks (2.8 syscalls a record, 7 % of the ingest's
 * CPU); at 32 KiB one read, but 32 KiB from malloc cost every connection the page that
 * malloc's bookkeeping touches: 10 000 idle WebSockets held 6 kB each instead of 3.
 *
 * This module hands lws those buffers (lws_set_allocator, reason "rx_ubuf") from one region
 * of page-aligned slots reserved at start (address space only): a slot costs nothing until
 * written, and a freed slot gives its pages back. Every other lws allocation, and any
 * receive buffer when the region is full or could not be reserved, goes to malloc.
 *
 * The state is process-wide because lws's allocator hook is (it takes no user pointer);
 * ws_rxbuf_shutdown resets it for a fresh ws_rxbuf_init, so tests can start over. */
#ifndef TLM_WS_RXBUF_H
#define TLM_WS_RXBUF_H

#include <stddef.h>

struct ws_rxbuf_stats {
    size_t slots;      /* reserved */
    size_t slot_bytes; /* each, a multiple of the page size */
    size_t in_use;     /* handed to lws and not freed */
    unsigned long long fallbacks; /* receive buffers that went to malloc: region full or too small */
};

/* Reserves `slots` slots for buffers of up to buf_bytes (plus lws's headroom) and installs
 * the allocator. 0 on success; -1 when the region could not be reserved (buffers then come
 * from malloc, as without this module). */
int ws_rxbuf_init(size_t slots, size_t buf_bytes);
/* Unmaps the region once no slot is in use (else keeps it and returns -1). */
int ws_rxbuf_shutdown(void);
/* 1 when p points into a slot. */
int ws_rxbuf_owns(const void *p);
void ws_rxbuf_stats(struct ws_rxbuf_stats *out);
/* The allocator lws calls (lws_realloc semantics: size 0 frees). Exposed for tests. */
void *ws_rxbuf_realloc(void *p, size_t size, const char *reason);

#endif
