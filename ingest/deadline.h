/* deadline.h - timeouts of one fixed length, kept in the order they were armed.
 *
 * lws keeps every timer of a thread in one list sorted by due time and walks it from the
 * head on each insert: with a timer or two per request and hundreds of connections, that
 * walk was 5 % of the ingest at 256 connections. All deadlines of one queue have the same
 * length, so appending keeps a queue sorted: arming and cancelling are O(1), and one lws
 * timer per queue wakes for its head. */
#ifndef TLM_DEADLINE_H
#define TLM_DEADLINE_H

#include <stdint.h>

#include <libwebsockets.h>

struct deadline {
    lws_dll2_t list;            /* in its queue while armed */
    int64_t due_us;
    void (*fire)(struct deadline *d);
};

struct deadline_queue {
    struct lws_context *ctx;
    int64_t length_us;
    lws_dll2_owner_t armed;     /* in arming order, so in due order */
    lws_sorted_usec_list_t sul; /* due at the head's due_us, or later when the head was cancelled */
    int64_t sul_due_us;         /* 0: not scheduled */
};

static inline int deadline_armed(const struct deadline *d) { return !lws_dll2_is_detached(&d->list); }

void deadline_queue_init(struct deadline_queue *q, struct lws_context *ctx, int64_t length_us);
/* Cancels the queue's timer; armed deadlines stay linked but never fire. */
void deadline_queue_stop(struct deadline_queue *q);
/* Arms (or re-arms) d to call fire(d) length_us from now. */
void deadline_arm(struct deadline_queue *q, struct deadline *d, void (*fire)(struct deadline *d));
void deadline_cancel(struct deadline *d);
/* Fires every deadline due at now_us, in order (the timer calls it; tests call it directly). */
void deadline_queue_run(struct deadline_queue *q, int64_t now_us);

#endif
