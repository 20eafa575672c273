/* mailbox.c — a bounded, mutex-guarded FIFO of tasks for one loop, woken by a uv_async_t. The only
 * shared state between the threads besides metrics.c and the atomics of net/transport.c; each task
 * runs on the owner's loop, never under the lock. The nodes belong to the posters (embedded in
 * what they post, or static): posting never allocates, so it cannot fail for want of memory. */
#include "base/mailbox.h"

#include <pthread.h>
#include <stdlib.h>

struct mailbox {
    uv_async_t async;
    pthread_mutex_t lock;
    struct mailbox_node *head, *tail;
    size_t depth, max;
    int closed;
};

static struct mailbox_node *mailbox_take_all(struct mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    struct mailbox_node *batch = mb->head;
    mb->head = mb->tail = NULL;
    mb->depth = 0;
    pthread_mutex_unlock(&mb->lock);
    return batch;
}

static void mailbox_run(struct mailbox *mb, struct mailbox_node *batch, loop_task_fn instead)
{
    while (batch) {
        struct mailbox_node *n = batch;
        /* under the lock: a poster on the other thread reads `queued`; once it is clear the node
         * may be queued again (and linked anew), so everything needed is read first */
        pthread_mutex_lock(&mb->lock);
        batch = n->next;
        loop_task_fn fn = n->fn;
        void *arg = n->arg;
        n->next = NULL;
        n->queued = 0;
        pthread_mutex_unlock(&mb->lock);
        if (instead) {
            instead(arg);
        } else {
            fn(arg);
        }
    }
}

static void mailbox_wake(uv_async_t *h)
{
    mailbox_run(h->data, mailbox_take_all(h->data), NULL);
}

struct mailbox *mailbox_open(size_t max)
{
    struct mailbox *mb = calloc(1, sizeof *mb);
    if (!mb || !loop_get()) {
        free(mb);
        return NULL;
    }
    if (pthread_mutex_init(&mb->lock, NULL) != 0) {
        free(mb);
        return NULL;
    }
    if (uv_async_init(loop_get(), &mb->async, mailbox_wake) < 0) {
        pthread_mutex_destroy(&mb->lock);
        free(mb);
        return NULL;
    }
    mb->async.data = mb;
    mb->max = max;
    uv_unref((uv_handle_t *)&mb->async);
    return mb;
}

int mailbox_post(struct mailbox *mb, struct mailbox_node *n, loop_task_fn fn, void *arg)
{
    if (!mb) {
        return -1;
    }
    pthread_mutex_lock(&mb->lock);
    if (n->queued) {
        pthread_mutex_unlock(&mb->lock);
        return 1;
    }
    if (mb->closed || (mb->max && mb->depth >= mb->max)) {
        pthread_mutex_unlock(&mb->lock);
        return -1;
    }
    n->fn = fn;
    n->arg = arg;
    n->next = NULL;
    n->queued = 1;
    if (mb->tail) {
        mb->tail->next = n;
    } else {
        mb->head = n;
    }
    mb->tail = n;
    mb->depth++;
    /* sent under the lock: mailbox_close cannot close the handle between the check and the send */
    uv_async_send(&mb->async);
    pthread_mutex_unlock(&mb->lock);
    return 0;
}

void mailbox_close(struct mailbox *mb, loop_task_fn drop)
{
    if (!mb) {
        return;
    }
    pthread_mutex_lock(&mb->lock);
    if (mb->closed) {
        pthread_mutex_unlock(&mb->lock);
        return;
    }
    mb->closed = 1;
    pthread_mutex_unlock(&mb->lock);
    mailbox_run(mb, mailbox_take_all(mb), drop);
    uv_close((uv_handle_t *)&mb->async, NULL);
}

void mailbox_free(struct mailbox *mb)
{
    if (!mb) {
        return;
    }
    /* closed before (mailbox_close ran or dropped every task): nothing is left to run here */
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

size_t mailbox_depth(struct mailbox *mb)
{
    size_t n;
    if (!mb) {
        return 0;
    }
    pthread_mutex_lock(&mb->lock);
    n = mb->depth;
    pthread_mutex_unlock(&mb->lock);
    return n;
}

int mailbox_waiting(struct mailbox *mb, struct mailbox_node *n)
{
    int queued;
    if (!mb) {
        return 0;
    }
    pthread_mutex_lock(&mb->lock);
    queued = n->queued;
    pthread_mutex_unlock(&mb->lock);
    return queued;
}
