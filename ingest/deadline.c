/* deadline.c - fixed-length timeouts in arrival order, one lws timer per queue (see deadline.h). */
#include "deadline.h"

#include <string.h>

void deadline_queue_init(struct deadline_queue *q, struct lws_context *ctx, int64_t length_us)
{
    memset(q, 0, sizeof(*q));
    q->ctx = ctx;
    q->length_us = length_us;
}

void deadline_queue_stop(struct deadline_queue *q)
{
    lws_sul_cancel(&q->sul);
    q->sul_due_us = 0;
}

static void unlink_deadline(struct deadline_queue *q, struct deadline *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        q->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        q->tail = d->prev;
    d->prev = d->next = NULL;
    d->armed = 0;
}

static void queue_timer_cb(lws_sorted_usec_list_t *sul);

/* the timer is due at or before the head; it is moved only when it would come too late */
static void schedule_head(struct deadline_queue *q, int64_t now_us)
{
    if (!q->head || !q->ctx || (q->sul_due_us && q->sul_due_us <= q->head->due_us))
        return;
    int64_t wait = q->head->due_us - now_us;
    q->sul_due_us = q->head->due_us;
    lws_sul_schedule(q->ctx, 0, &q->sul, queue_timer_cb, wait > 0 ? (lws_usec_t)wait : 0);
}

static void queue_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct deadline_queue *q = lws_container_of(sul, struct deadline_queue, sul);
    q->sul_due_us = 0;
    deadline_queue_run(q, lws_now_usecs());
}

void deadline_queue_run(struct deadline_queue *q, int64_t now_us)
{
    /* a callback may arm or cancel others: take the head afresh each time */
    while (q->head && q->head->due_us <= now_us) {
        struct deadline *d = q->head;
        unlink_deadline(q, d);
        d->fire(d);
    }
    schedule_head(q, now_us);
}

void deadline_arm(struct deadline_queue *q, struct deadline *d, void (*fire)(struct deadline *d))
{
    if (d->armed)
        unlink_deadline(q, d);
    int64_t now = lws_now_usecs();
    d->due_us = now + q->length_us;
    d->fire = fire;
    d->next = NULL;
    d->prev = q->tail;
    if (q->tail)
        q->tail->next = d;
    else
        q->head = d;
    q->tail = d;
    d->armed = 1;
    schedule_head(q, now);
}

void deadline_cancel(struct deadline_queue *q, struct deadline *d)
{
    if (d->armed)
        unlink_deadline(q, d);
}
