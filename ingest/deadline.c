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

static struct deadline *head_of(struct deadline_queue *q)
{
    lws_dll2_t *h = lws_dll2_get_head(&q->armed);
    return h ? lws_container_of(h, struct deadline, list) : NULL;
}

static void queue_timer_cb(lws_sorted_usec_list_t *sul);

/* the timer is due at or before the head; it is moved only when it would come too late */
static void schedule_head(struct deadline_queue *q, int64_t now_us)
{
    struct deadline *head = head_of(q);
    if (!head || !q->ctx || (q->sul_due_us && q->sul_due_us <= head->due_us))
        return;
    int64_t wait = head->due_us - now_us;
    q->sul_due_us = head->due_us;
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
    struct deadline *d;
    while ((d = head_of(q)) && d->due_us <= now_us) {
        lws_dll2_remove(&d->list);
        d->fire(d);
    }
    schedule_head(q, now_us);
}

void deadline_arm(struct deadline_queue *q, struct deadline *d, void (*fire)(struct deadline *d))
{
    if (deadline_armed(d))
        lws_dll2_remove(&d->list);
    int64_t now = lws_now_usecs();
    d->due_us = now + q->length_us;
    d->fire = fire;
    lws_dll2_add_tail(&d->list, &q->armed);
    schedule_head(q, now);
}

void deadline_cancel(struct deadline *d)
{
    if (deadline_armed(d))
        lws_dll2_remove(&d->list);
}
