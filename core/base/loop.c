/* loop.c — owns the process's uv_loop_t and the ready queue.
 * loop_defer() appends a task; an idle handle keeps the loop from sleeping while tasks wait and a
 * check handle runs them after the I/O phase, so library callbacks (curl, lws) never re-enter a
 * library or run Lua. Tasks queued while draining run on the next turn (no starvation of I/O). */
#include "base/loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

struct loop_task {
    loop_task_fn fn;
    void *arg;
    struct loop_task *next;
};

struct loop_timer {
    uv_timer_t handle;
    loop_task_fn fn;
    void *arg;
};

static uv_loop_t loop_main;
static uv_check_t loop_check;
static uv_idle_t loop_idle;
static struct loop_task *loop_head, *loop_tail;
static int loop_ready;

static void *loop_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fputs("postmortembot: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void loop_idle_cb(uv_idle_t *h)
{
    (void)h; /* only here so that uv_run polls with a zero timeout while tasks wait */
}

static void loop_drain(uv_check_t *h)
{
    struct loop_task *batch = loop_head;
    (void)h;
    loop_head = NULL;
    loop_tail = NULL;
    uv_idle_stop(&loop_idle);
    while (batch) {
        struct loop_task *t = batch;
        batch = t->next;
        t->fn(t->arg);
        free(t);
    }
}

int loop_init(void)
{
    int rc = uv_loop_init(&loop_main);
    if (rc < 0) {
        return rc;
    }
    uv_check_init(&loop_main, &loop_check);
    uv_check_start(&loop_check, loop_drain);
    uv_unref((uv_handle_t *)&loop_check);
    uv_idle_init(&loop_main, &loop_idle);
    loop_ready = 1;
    return 0;
}

uv_loop_t *loop_get(void)
{
    return &loop_main;
}

int loop_run(void)
{
    return uv_run(&loop_main, UV_RUN_DEFAULT);
}

void loop_defer(loop_task_fn fn, void *arg)
{
    struct loop_task *t = loop_xmalloc(sizeof *t);
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    if (loop_tail) {
        loop_tail->next = t;
    } else {
        loop_head = t;
    }
    loop_tail = t;
    if (loop_ready && !uv_is_active((uv_handle_t *)&loop_idle)) {
        uv_idle_start(&loop_idle, loop_idle_cb);
    }
}

int loop_close(void)
{
    /* run whatever is still queued, so deferred completions free their memory */
    while (loop_head) {
        loop_drain(&loop_check);
    }
    uv_check_stop(&loop_check);
    uv_idle_stop(&loop_idle);
    uv_close((uv_handle_t *)&loop_check, NULL);
    uv_close((uv_handle_t *)&loop_idle, NULL);
    uv_run(&loop_main, UV_RUN_DEFAULT);
    loop_ready = 0;
    return uv_loop_close(&loop_main);
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

struct loop_timer *loop_timer_start(double seconds, loop_task_fn fn, void *arg)
{
    struct loop_timer *t = loop_xmalloc(sizeof *t);
    uint64_t ms = seconds <= 0 ? 0 : (uint64_t)(seconds * 1000.0 + 0.5);
    t->fn = fn;
    t->arg = arg;
    uv_timer_init(&loop_main, &t->handle);
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
