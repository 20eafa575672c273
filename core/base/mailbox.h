/* mailbox.h — how the two threads talk: a bounded FIFO of tasks that any thread posts and one loop
 * runs. mailbox_post() appends under a mutex and wakes the owner (uv_async_send); the owner's loop
 * runs the tasks in order. The transport thread posts envelopes, SIGHUP and stop requests to the
 * script loop's mailbox; the script loop posts results (apps.connections.open) back. */
#ifndef PMB_MAILBOX_H
#define PMB_MAILBOX_H

#include <stddef.h>

#include "base/loop.h"

struct mailbox;

/* A post's place in the queue, owned by the poster (inside the object it posts, or a static for a
 * signal-like post); zero-initialise it. It must stay alive until its task has run (or been
 * dropped by mailbox_close). Read and written under the mailbox's lock only. */
struct mailbox_node {
    loop_task_fn fn;
    void *arg;
    struct mailbox_node *next;
    int queued;
};

/* On the owner thread, bound to its loop. max bounds the tasks waiting (0 = unbounded). The async
 * handle is unref'd: a mailbox alone does not keep the loop running. NULL on error. */
struct mailbox *mailbox_open(size_t max);
/* From any thread: queue fn(arg) on the owner's loop, through n. 0; 1 when n is still queued (a
 * static node posted again before its task ran: that task stands, fn and arg are not changed);
 * -1 when full or closed: then fn will not run and the caller still owns arg. Never allocates. */
int mailbox_post(struct mailbox *mb, struct mailbox_node *n, loop_task_fn fn, void *arg);
/* On the owner thread: refuse further posts; tasks still waiting are handed to drop(arg) (or run,
 * when drop is NULL); the async handle is closed. */
void mailbox_close(struct mailbox *mb, loop_task_fn drop);
/* Once no thread can post any more (after the other thread was joined). NULL is fine. */
void mailbox_free(struct mailbox *mb);
/* Tasks waiting now (any thread). */
size_t mailbox_depth(struct mailbox *mb);
/* Is n's task still waiting (posted, not run yet)? Any thread; a snapshot: the owner may take
 * the task the moment after. */
int mailbox_waiting(struct mailbox *mb, struct mailbox_node *n);

#endif
