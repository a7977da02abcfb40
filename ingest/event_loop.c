/* event_loop.c - lws on a libev loop of ours, and the ingest's timers run each pass
 * (event_loop.h). */
#include "event_loop.h"

#include <string.h>

#include "../common/log.h"

static void wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents; /* only ends ev_run's wait */
}

int event_loop_init(struct event_loop *el, struct lws_context_creation_info *info)
{
    memset(el, 0, sizeof(*el));
    el->ev = ev_loop_new(EVBACKEND_EPOLL);
    if (!el->ev) {
        log_app(LOG_WARN, "no epoll here: the event loop falls back to libev's best backend");
        el->ev = ev_loop_new(EVFLAG_AUTO);
    }
    if (!el->ev) {
        log_app(LOG_ERROR, "cannot create the event loop (libev)");
        return -1;
    }
    ev_timer_init(&el->wake, wake_cb, 0, 0);
    el->foreign[0] = el->ev;
    info->options |= LWS_SERVER_OPTION_LIBEV;
    info->foreign_loops = el->foreign;
    return 0;
}

void event_loop_run_each_pass(struct event_loop *el, lws_sorted_usec_list_t *sul)
{
    if (el->ntimers < EVENT_LOOP_MAX_TIMERS)
        el->timers[el->ntimers++] = sul;
    else
        log_app(LOG_ERROR, "event loop: more than %d pass timers; one is left to lws", EVENT_LOOP_MAX_TIMERS);
}

void event_loop_pass(struct event_loop *el, struct lws_context *ctx)
{
    lws_usec_t now = lws_now_usecs(), first = 0;
    for (int i = 0; i < el->ntimers; i++) {
        lws_sorted_usec_list_t *sul = el->timers[i];
        if (!lws_dll2_is_detached(&sul->list) && (!first || sul->us < first))
            first = sul->us;
    }
    int flags = EVRUN_ONCE;
    if ((first && first <= now) || !lws_service_adjust_timeout(ctx, 1, 0)) {
        flags = EVRUN_NOWAIT; /* poll, serve what is ready, and come back to it */
    } else if (first) {
        ev_timer_set(&el->wake, (double)(first - now) / 1e6, 0);
        ev_timer_start(el->ev, &el->wake);
    }
    ev_run(el->ev, flags);
    ev_timer_stop(el->ev, &el->wake);
    /* what lws's starved idle watcher would do: serve connections that have input lws
     * already read (buffered while their reading was paused), as its own loop does each pass */
    if (!lws_service_adjust_timeout(ctx, 1, 0))
        _lws_plat_service_forced_tsi(ctx, 0);
    /* one sweep, against the time it started: a timer one of these callbacks schedules
     * (the parse slice's "after one more poll") waits for the next pass, as in lws's loop */
    now = lws_now_usecs();
    for (int i = 0; i < el->ntimers; i++) {
        lws_sorted_usec_list_t *sul = el->timers[i];
        if (lws_dll2_is_detached(&sul->list) || sul->us > now)
            continue;
        sul_cb_t cb = sul->cb;
        lws_sul_cancel(sul);
        cb(sul);
    }
}

void event_loop_free(struct event_loop *el)
{
    if (el->ev)
        ev_loop_destroy(el->ev);
    el->ev = NULL;
}
