/* loop.h — a libuv loop per thread (the script loop, the transport loop), and its ready queue.
 * Library callbacks (curl, lws) never run Lua or re-enter a library: they loop_defer() the work,
 * and a uv_check/uv_idle pair drains the queue after the current I/O phase, in FIFO order. */
#ifndef PMB_LOOP_H
#define PMB_LOOP_H

#include <uv.h>

/* Every function here acts on the calling thread's loop: loop_init creates it (0 or a negative uv
 * error; a second call on the same thread is a no-op), loop_close ends it. */
int loop_init(void);
uv_loop_t *loop_get(void); /* NULL on a thread without a loop */
int loop_run(void);        /* uv_run(DEFAULT) */
int loop_close(
    void); /* closes the ready-queue handles, runs the loop dry, uv_loop_close; 0 = clean */

typedef void (*loop_task_fn)(void *arg);

/* A deferred call that lives in its owner's memory (a connection, an HTTP call, a task, or a
 * static for a module), so that queuing it never allocates and cannot fail. Zero-initialise it.
 * A node that is already queued is not queued twice (the call it holds runs once). */
struct loop_deferred {
    loop_task_fn fn;
    void *arg;
    struct loop_deferred *next;
    int queued;
};

/* Queue fn(arg) to run soon on the calling thread's loop, outside any library callback. The node
 * must stay alive until fn runs; fn may free it. Returns 0, or -1 when d was already queued. */
int loop_defer(struct loop_deferred *d, loop_task_fn fn, void *arg);
/* Take d off the queue if it is on it (its call will not run): for an owner freed meanwhile. */
void loop_defer_cancel(struct loop_deferred *d);

/* Monotonic seconds (uv_hrtime based) and wall-clock seconds with microseconds. */
double loop_now_mono(void);
double loop_now_wall(void);

/* A tiny helper for one-shot timers owned by a module: allocates a uv_timer_t that frees
 * itself after firing or after loop_timer_cancel(). NULL when out of memory (the caller decides
 * what a timer it cannot have means). */
struct loop_timer;
struct loop_timer *loop_timer_start(double seconds, loop_task_fn fn, void *arg);
/* Safe on NULL; fn will not run. After fn has run the pointer is dead: owners clear it in fn. */
void loop_timer_cancel(struct loop_timer *t);

#endif
