/* signal.c — host.signal(): one coroutine waits until another says "something changed", instead of
 * looking again every few milliseconds. lib/early_downloads.lua's dispatcher waits on one while the
 * reading adds files to its queue. sig:wait() yields the calling command coroutine (an op of
 * primitives_io.c's kind) until sig:notify() wakes every coroutine waiting at that moment; a notify
 * with nobody waiting is not kept, so a waiter checks its condition before it waits (nothing runs
 * between the check and the wait: the scripts are one thread). Registered by primitives_io.c. */
#include "host/signal.h"

#include <lauxlib.h>
#include <stdlib.h>

#include "host/host_gen.h"

#define SIGNAL_MT "pmb.signal"

struct signal_wait;

/* The userdata: the waiters, in the order they came. */
struct signal {
    struct signal_wait *first, *last;
};

/* One waiting coroutine: its op, linked into the signal's list until woken or cancelled. */
struct signal_wait {
    struct prim_op op;
    struct signal *sig; /* NULL once unlinked */
    struct signal_wait *prev, *next;
};

static void signal_unlink(struct signal_wait *w)
{
    struct signal *s = w->sig;
    if (!s) {
        return;
    }
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        s->first = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    } else {
        s->last = w->prev;
    }
    w->sig = NULL;
    w->prev = w->next = NULL;
}

static void signal_wait_free(struct prim_op *op)
{
    struct signal_wait *w = (struct signal_wait *)op;
    signal_unlink(w);
    free(w);
}

/* the waiting coroutine was aborted (drain, shutdown, a kill): it leaves the list */
static void signal_wait_cancel(struct prim_op *op)
{
    signal_wait_free(op);
}

static int signal_wait_push(lua_State *L, struct prim_op *op)
{
    (void)op;
    lua_pushboolean(L, 1);
    return 1;
}

/* sig:wait() -> true once a notify woke it (yields) */
static int signal_wait(lua_State *L)
{
    struct signal *s = luaL_checkudata(L, 1, SIGNAL_MT);
    struct host_task *t = prim_need_task(L, "signal wait");
    struct signal_wait *w = (struct signal_wait *)prim_op_new(sizeof *w, signal_wait_cancel,
                                                              signal_wait_push, signal_wait_free);
    if (!w) {
        return luaL_error(L, "out of memory");
    }
    w->sig = s;
    w->prev = s->last;
    if (s->last) {
        s->last->next = w;
    } else {
        s->first = w;
    }
    s->last = w;
    return prim_yield(L, t, &w->op, "signal wait");
}

/* sig:notify() -> how many waiting coroutines it woke (they run after the caller yields) */
static int signal_notify(lua_State *L)
{
    struct signal *s = luaL_checkudata(L, 1, SIGNAL_MT);
    lua_Integer woken = 0;
    while (s->first) {
        struct signal_wait *w = s->first;
        signal_unlink(w);
        /* inside a running script the host queues the resume: it never nests */
        host_task_resume(w->op.task, 0);
        woken++;
    }
    lua_pushinteger(L, woken);
    return 1;
}

/* The collector takes a signal only once no coroutine waits on it (a waiter's stack holds it);
 * anything left is unlinked so that no op points into freed memory. */
static int signal_gc(lua_State *L)
{
    struct signal *s = luaL_checkudata(L, 1, SIGNAL_MT);
    while (s->first) {
        signal_unlink(s->first);
    }
    return 0;
}

/* host.signal() -> sig */
static int prim_signal(lua_State *L)
{
    struct signal *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->first = s->last = NULL;
    if (luaL_newmetatable(L, SIGNAL_MT)) {
        static const luaL_Reg methods[] = {
            {"wait", signal_wait}, {"notify", signal_notify}, {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, signal_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return 1;
}

void prim_signal_register(lua_State *L)
{
    lua_pushcfunction(L, prim_signal);
    lua_setfield(L, -2, "signal");
}
