/* loop.c — owns each thread's uv_loop_t and its ready queue (the script loop on the main thread,
 * the transport loop on the transport thread: net/transport.c). loop_defer() appends a task (a
 * node its owner holds: nothing here allocates per task); an
 * idle handle keeps the loop from sleeping while tasks wait and a check handle runs them after the
 * I/O phase, so library callbacks (curl, lws) never re-enter a library or run Lua. Tasks queued
 * while draining run on the next turn (no starvation of I/O). */
#include "base/loop.h"

#include <stdlib.h>
#include <sys/time.h>

struct loop_timer {
    uv_timer_t handle;
    loop_task_fn fn;
    void *arg;
};

/* One per thread that runs a loop. Every function below works on the calling thread's loop. */
struct loop {
    uv_loop_t uv;
    uv_check_t check;
    uv_idle_t idle;
    struct loop_deferred *head, *tail;
    int ready;
};

static _Thread_local struct loop *loop_cur;

static void loop_idle_cb(uv_idle_t *h)
{
    (void)h; /* only here so that uv_run polls with a zero timeout while tasks wait */
}

static void loop_drain(uv_check_t *h)
{
    struct loop *l = h->data;
    struct loop_deferred *batch = l->head;
    l->head = NULL;
    l->tail = NULL;
    uv_idle_stop(&l->idle);
    while (batch) {
        struct loop_deferred *d = batch;
        loop_task_fn fn = d->fn;
        void *arg = d->arg;
        batch = d->next;
        d->next = NULL;
        d->queued = 0; /* before the call: fn may queue it again, or free it */
        fn(arg);
    }
}

int loop_init(void)
{
    struct loop *l;
    int rc;
    if (loop_cur) {
        return 0;
    }
    l = calloc(1, sizeof *l);
    if (!l) {
        return UV_ENOMEM;
    }
    rc = uv_loop_init(&l->uv);
    if (rc < 0) {
        free(l);
        return rc;
    }
    uv_check_init(&l->uv, &l->check);
    l->check.data = l;
    uv_check_start(&l->check, loop_drain);
    uv_unref((uv_handle_t *)&l->check);
    uv_idle_init(&l->uv, &l->idle);
    l->ready = 1;
    loop_cur = l;
    return 0;
}

uv_loop_t *loop_get(void)
{
    return loop_cur ? &loop_cur->uv : NULL;
}

int loop_run(void)
{
    return uv_run(&loop_cur->uv, UV_RUN_DEFAULT);
}

int loop_defer(struct loop_deferred *d, loop_task_fn fn, void *arg)
{
    struct loop *l = loop_cur;
    if (d->queued) {
        return -1;
    }
    d->fn = fn;
    d->arg = arg;
    d->next = NULL;
    d->queued = 1;
    if (l->tail) {
        l->tail->next = d;
    } else {
        l->head = d;
    }
    l->tail = d;
    if (l->ready && !uv_is_active((uv_handle_t *)&l->idle)) {
        uv_idle_start(&l->idle, loop_idle_cb);
    }
    return 0;
}

int loop_close(void)
{
    struct loop *l = loop_cur;
    int rc;
    if (!l) {
        return 0;
    }
    /* run whatever is still queued, so deferred completions free their memory */
    while (l->head) {
        loop_drain(&l->check);
    }
    uv_check_stop(&l->check);
    uv_idle_stop(&l->idle);
    uv_close((uv_handle_t *)&l->check, NULL);
    uv_close((uv_handle_t *)&l->idle, NULL);
    uv_run(&l->uv, UV_RUN_DEFAULT);
    l->ready = 0;
    rc = uv_loop_close(&l->uv);
    if (rc == 0) {
        loop_cur = NULL;
        free(l);
    }
    return rc;
}

double loop_now_mono(void)
{
    return (double)uv_hrtime() / 1e9;
}

double loop_now_wall(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void loop_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void loop_timer_fired(uv_timer_t *h)
{
    struct loop_timer *t = h->data;
    loop_task_fn fn = t->fn;
    void *arg = t->arg;
    uv_close((uv_handle_t *)&t->handle, loop_timer_closed);
    fn(arg);
}

void loop_defer_cancel(struct loop_deferred *d)
{
    struct loop *l = loop_cur;
    struct loop_deferred *prev = NULL;
    if (!d->queued || !l) {
        return;
    }
    for (struct loop_deferred *x = l->head; x; prev = x, x = x->next) {
        if (x == d) {
            if (prev) {
                prev->next = d->next;
            } else {
                l->head = d->next;
            }
            if (l->tail == d) {
                l->tail = prev;
            }
            break;
        }
    }
    d->next = NULL;
    d->queued = 0;
}

struct loop_timer *loop_timer_start(double seconds, loop_task_fn fn, void *arg)
{
    struct loop_timer *t = malloc(sizeof *t);
    if (!t) {
        return NULL;
    }
    uint64_t ms = seconds <= 0 ? 0 : (uint64_t)(seconds * 1000.0 + 0.5);
    t->fn = fn;
    t->arg = arg;
    uv_timer_init(&loop_cur->uv, &t->handle);
    t->handle.data = t;
    uv_timer_start(&t->handle, loop_timer_fired, ms, 0);
    return t;
}

void loop_timer_cancel(struct loop_timer *t)
{
    if (!t || uv_is_closing((uv_handle_t *)&t->handle)) {
        return;
    }
    uv_timer_stop(&t->handle);
    uv_close((uv_handle_t *)&t->handle, loop_timer_closed);
}
