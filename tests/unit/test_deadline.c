/* test_deadline.c - ingest/deadline.c: deadlines fire in the order they were armed, once,
 * only when due; cancelled ones never fire; re-arming moves one to the back; a callback may
 * arm and cancel others while the queue runs. The queue has no event loop here (ctx NULL):
 * deadline_queue_run is called with chosen times. */
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "../../ingest/deadline.h"
#include "unit.h"

struct item {
    struct deadline d;
    int id;
};

static int fired[16];
static int nfired;
static struct deadline_queue *current_q;
static struct item *to_cancel, *to_arm;

static void on_fire(struct deadline *d)
{
    struct item *it = lws_container_of(d, struct item, d);
    if (nfired < 16)
        fired[nfired++] = it->id;
    if (to_cancel) {
        deadline_cancel(&to_cancel->d);
        to_cancel = NULL;
    }
    if (to_arm) {
        deadline_arm(current_q, &to_arm->d, on_fire);
        to_arm = NULL;
    }
}

static void reset(void)
{
    nfired = 0;
    to_cancel = to_arm = NULL;
}

static void test_order_and_cancel(void)
{
    struct deadline_queue q;
    struct item it[4];
    memset(it, 0, sizeof(it));
    deadline_queue_init(&q, NULL, 1000000);
    current_q = &q;
    reset();
    for (int i = 0; i < 4; i++) {
        it[i].id = i;
        deadline_arm(&q, &it[i].d, on_fire);
    }
    CHECK(it[0].d.due_us <= it[3].d.due_us);
    deadline_cancel(&it[1].d);
    deadline_cancel(&it[1].d); /* twice is harmless */
    deadline_queue_run(&q, it[0].d.due_us - 1);
    CHECK_EQ_INT(nfired, 0);
    deadline_queue_run(&q, it[3].d.due_us);
    CHECK_EQ_INT(nfired, 3);
    CHECK(fired[0] == 0 && fired[1] == 2 && fired[2] == 3);
    CHECK(!deadline_armed(&it[0].d) && !deadline_armed(&it[2].d) && !deadline_armed(&it[3].d));
    CHECK(q.armed.head == NULL && q.armed.tail == NULL);
    deadline_queue_run(&q, it[3].d.due_us + 5000000);
    CHECK_EQ_INT(nfired, 3);
}

static void test_rearm_moves_back(void)
{
    struct deadline_queue q;
    struct item a = {.id = 1}, b = {.id = 2};
    deadline_queue_init(&q, NULL, 1000);
    current_q = &q;
    reset();
    deadline_arm(&q, &a.d, on_fire);
    deadline_arm(&q, &b.d, on_fire);
    usleep(2000); /* the clock has microseconds: make the re-armed one due strictly later */
    deadline_arm(&q, &a.d, on_fire); /* a is now after b */
    CHECK(q.armed.head == &b.d.list && q.armed.tail == &a.d.list);
    deadline_queue_run(&q, b.d.due_us);
    CHECK_EQ_INT(nfired, 1);
    CHECK_EQ_INT(fired[0], 2);
    CHECK(deadline_armed(&a.d));
    deadline_queue_run(&q, a.d.due_us);
    CHECK_EQ_INT(nfired, 2);
    CHECK_EQ_INT(fired[1], 1);
}

static void test_callbacks_change_queue(void)
{
    struct deadline_queue q;
    struct item it[3];
    memset(it, 0, sizeof(it));
    deadline_queue_init(&q, NULL, 1000);
    current_q = &q;
    reset();
    for (int i = 0; i < 3; i++) {
        it[i].id = i;
        deadline_arm(&q, &it[i].d, on_fire);
    }
    /* the first to fire cancels the second and re-arms itself: only 0 and 2 now, 0 later again */
    to_cancel = &it[1];
    to_arm = &it[0];
    int64_t late = it[2].d.due_us;
    usleep(2000); /* the re-armed deadline comes due after late */
    deadline_queue_run(&q, late);
    CHECK_EQ_INT(nfired, 2);
    CHECK(fired[0] == 0 && fired[1] == 2);
    CHECK(deadline_armed(&it[0].d) && q.armed.head == &it[0].d.list && q.armed.tail == &it[0].d.list);
    CHECK(!deadline_armed(&it[1].d));
    deadline_queue_run(&q, it[0].d.due_us);
    CHECK_EQ_INT(nfired, 3);
    CHECK_EQ_INT(fired[2], 0);
}

int main(void)
{
    RUN(test_order_and_cancel);
    RUN(test_rearm_moves_back);
    RUN(test_callbacks_change_queue);
    UNIT_DONE("test_deadline");
}
