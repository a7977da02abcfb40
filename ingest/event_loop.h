/* event_loop.h - the ingest's event loop: libwebsockets on a libev loop of ours (epoll).
 *
 * lws's own loop calls poll(2) over every open connection on each pass: with 10 000 idle
 * WebSockets open that was 2.4 ms a pass on the bench host, and HTTP load alongside them
 * ran at 70 000-89 000 records/s instead of 200 000+. With epoll a pass costs what is
 * ready, not what is open. (lws 4.1's libuv glue was tried too: it restarts a descriptor's
 * poll on every change of interest, ~10 syscalls a request, and lost close frames.)
 *
 * One pass runs libev once (wait for events, serve them), then lws's forced service (input
 * lws holds for connections), then the timers registered with event_loop_run_each_pass
 * that are due. lws 4.1's libev glue services lws timers from an
 * ev_idle watcher, which libev runs only when no I/O is pending: under load the ingest's
 * own short timers (the parse slice, the flush of frames, the link's write kick, the
 * deadline queues) would wait for lws's next long timer instead. Other lws timers (per
 * connection timeouts) are serviced by lws as before, at worst a second late under load:
 * the ingest's 1 s stats timer keeps lws's own timer armed at most that far ahead. */
#ifndef TLM_EVENT_LOOP_H
#define TLM_EVENT_LOOP_H

#include <ev.h>
#include <libwebsockets.h>

#define EVENT_LOOP_MAX_TIMERS 16

struct event_loop {
    struct ev_loop *ev;
    void *foreign[1];                                      /* info.foreign_loops */
    lws_sorted_usec_list_t *timers[EVENT_LOOP_MAX_TIMERS]; /* run by event_loop_pass when due */
    int ntimers;
    ev_timer wake;                                         /* ends a pass's wait when one is due */
};

/* Makes the loop and points the context creation info at it. -1 (logged) on failure. */
int event_loop_init(struct event_loop *el, struct lws_context_creation_info *info);
/* sul (an lws timer) runs at the end of the first pass at or after its due time. */
void event_loop_run_each_pass(struct event_loop *el, lws_sorted_usec_list_t *sul);
/* One pass: waits for events (not past the first registered timer's due time), serves
 * them, then runs the registered timers that are due. */
void event_loop_pass(struct event_loop *el, struct lws_context *ctx);
/* After lws_context_destroy (which takes lws's watchers off the loop). */
void event_loop_free(struct event_loop *el);

#endif
