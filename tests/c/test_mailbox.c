/* test_mailbox.c — unit tests for loop.c's ready queue and mailbox.c, whose nodes live in their
 * owners: a node queued twice runs once, a node may be queued again from its own task, a task
 * whose owner went away can be taken off the queue, a bounded or closed mailbox refuses a post
 * (and the poster keeps its object), a node says whether its task still waits, and a closed mailbox
 * hands what waits to `drop`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the four headers above first */
#include <cmocka.h>

#include "base/loop.h"
#include "base/mailbox.h"

static int runs, again_runs;
static struct loop_deferred again_node;

static void count(void *arg)
{
    (void)arg;
    runs++;
}

static void count_and_requeue_once(void *arg)
{
    (void)arg;
    runs++;
    if (++again_runs == 1) {
        assert_int_equal(loop_defer(&again_node, count_and_requeue_once, NULL), 0);
    }
}

static void test_deferred_runs_once_per_queuing(void **state)
{
    struct loop_deferred a = {0}, b = {0};
    (void)state;
    runs = again_runs = 0;
    assert_int_equal(loop_init(), 0);
    assert_int_equal(loop_defer(&a, count, NULL), 0);
    assert_int_equal(loop_defer(&a, count, NULL), -1); /* still queued: runs once */
    assert_int_equal(loop_defer(&b, count, NULL), 0);
    loop_defer_cancel(&b); /* its owner went away: it must not run */
    assert_int_equal(loop_defer(&again_node, count_and_requeue_once, NULL), 0);
    loop_run();
    assert_int_equal(runs, 1 + 2); /* a once, again_node twice (queued again from its own run) */
    assert_int_equal(loop_close(), 0);
}

static int dropped;

static void drop(void *arg)
{
    (void)arg;
    dropped++;
}

static void test_mailbox_nodes(void **state)
{
    struct mailbox_node n1 = {0}, n2 = {0}, n3 = {0};
    (void)state;
    runs = dropped = 0;
    assert_int_equal(loop_init(), 0);
    struct mailbox *mb = mailbox_open(2);
    assert_non_null(mb);
    assert_int_equal(mailbox_waiting(mb, &n1), 0);
    assert_int_equal(mailbox_post(mb, &n1, count, NULL), 0);
    assert_int_equal(mailbox_waiting(mb, &n1), 1);           /* posted, not run yet */
    assert_int_equal(mailbox_post(mb, &n1, count, NULL), 1); /* coalesced: the queued one stands */
    assert_int_equal(mailbox_post(mb, &n2, count, NULL), 0);
    assert_int_equal(mailbox_post(mb, &n3, count, NULL), -1); /* full (bound 2) */
    assert_int_equal(mailbox_depth(mb), 2);
    mailbox_close(mb, drop); /* what waits is handed to drop, not run */
    assert_int_equal(dropped, 2);
    assert_int_equal(mailbox_waiting(mb, &n1), 0); /* handed on: waiting no more */
    assert_int_equal(runs, 0);
    assert_int_equal(mailbox_post(mb, &n3, count, NULL), -1); /* closed */
    assert_int_equal(mailbox_post(mb, &n1, count, NULL), -1); /* n1 is free again, still closed */
    loop_run();
    mailbox_free(mb);
    assert_int_equal(loop_close(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deferred_runs_once_per_queuing),
        cmocka_unit_test(test_mailbox_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
