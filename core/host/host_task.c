/* host_task.c — tasks: one coroutine of a generation per envelope, render or host.all child.
 * Creates them, resumes them under the CPU/memory budget, counts finished commands, logs and
 * reports failures, starts host.all children and aborts tasks on drain and shutdown. host.c
 * starts tasks and primitives_io.c resumes them when a primitive completes; this file calls
 * budget.c, primitives_io.c (prim_all_child_done) and host.c (failure posts, render callback,
 * generation release). */
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/liveness.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "host/host_gen.h"

static struct host_task *host_tasks;
static int host_task_count;

struct host_task *host_task_of(lua_State *L)
{
    return *(struct host_task **)lua_getextraspace(L);
}

/* ---- tasks ---- */

static void host_task_link(struct host_task *t)
{
    t->next = host_tasks;
    if (host_tasks) {
        host_tasks->prev = t;
    }
    host_tasks = t;
    host_task_count++;
}

static void host_task_unlink(struct host_task *t)
{
    if (t->prev) {
        t->prev->next = t->next;
    } else {
        host_tasks = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    }
    host_task_count--;
    metrics_gauge_set("pmb_script_tasks", "Lua coroutines alive", NULL, host_task_count);
}

/* The task's coroutine, anchored in the registry: run under lua_pcall, since a Lua allocation
 * that fails outside a protected call would end the process (lua_atpanic). */
static int host_task_new_p(lua_State *L)
{
    struct host_task *t = lua_touserdata(L, 1);
    t->co = lua_newthread(L); /* stack(L): t co */
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

struct host_task *host_task_new(struct host_gen *gen, enum host_task_kind kind)
{
    struct host_task *t = calloc(1, sizeof *t);
    if (!t) {
        return NULL;
    }
    t->gen = gen;
    t->kind = kind;
    lua_pushcfunction(gen->L, host_task_new_p);
    lua_pushlightuserdata(gen->L, t);
    if (lua_pcall(gen->L, 1, 0, 0) != LUA_OK) {
        lua_pop(gen->L, 1); /* the error: out of memory */
        free(t);
        return NULL;
    }
    *(struct host_task **)lua_getextraspace(t->co) = t;
    gen->refs++;
    host_task_link(t);
    metrics_gauge_set("pmb_script_tasks", "Lua coroutines alive", NULL, host_task_count);
    return t;
}

static int host_task_push_string_p(lua_State *L)
{
    lua_pushlstring(L, lua_touserdata(L, 1), (size_t)lua_tointeger(L, 2));
    return 1;
}

int host_task_push_string(struct host_task *t, const char *s, size_t len)
{
    lua_State *L = t->gen->L;
    lua_pushcfunction(L, host_task_push_string_p);
    lua_pushlightuserdata(L, (void *)s);
    lua_pushinteger(L, (lua_Integer)len);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return -1;
    }
    lua_xmove(L, t->co, 1);
    return 0;
}

void host_push_boot_fn(struct host_task *t, const char *name)
{
    lua_State *L = t->gen->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->gen->boot_ref); /* stack(L): boot */
    lua_getfield(L, -1, name);                           /* stack(L): boot fn */
    lua_xmove(L, t->co, 1);
    lua_pop(L, 1);
}

static void host_task_free(struct host_task *t)
{
    struct host_gen *gen = t->gen;
    if (t->kind == HOST_TASK_ENVELOPE && t->job_id[0]) {
        host_job_ended(t);
    }
    host_task_unlink(t);
    if (t->holds_young) {
        host_gen_release_young(gen);
    }
    *(struct host_task **)lua_getextraspace(t->co) = NULL;
    lua_resetthread(t->co);
    luaL_unref(gen->L, LUA_REGISTRYINDEX, t->ref);
    gen->refs--;
    if (t->killed == BUDGET_MEM) {
        lua_gc(gen->L, LUA_GCCOLLECT);
    }
    if (t->queued) {
        t->zombie = 1; /* a resume is queued: that task frees it */
    } else {
        free(t);
    }
    host_gen_release(gen);
    host_start_waiting(); /* a coroutine is free: start the next waiting envelope */
    host_drain_check();
}

static const char *host_error_text(lua_State *co, char *buf, size_t size)
{
    int type = lua_type(co, -1);
    if (type == LUA_TSTRING || type == LUA_TNUMBER) {
        snprintf(buf, size, "%s", lua_tostring(co, -1));
    } else if (type == LUA_TTABLE) {
        /* a host err table raised with error(err) */
        lua_getfield(co, -1, "code");
        lua_getfield(co, -2, "message");
        snprintf(buf, size, "%s: %s", lua_tostring(co, -2) ? lua_tostring(co, -2) : "error",
                 lua_tostring(co, -1) ? lua_tostring(co, -1) : "");
        lua_pop(co, 2);
    } else {
        snprintf(buf, size, "(error object is a %s value)", lua_typename(co, type));
    }
    return buf;
}

static void host_count_command(const struct host_task *t, int status)
{
    char labels[256], name[160];
    const char *outcome = "ok";
    if (!t->reply_label[0] || t->kind != HOST_TASK_ENVELOPE) {
        return;
    }
    if (t->killed == BUDGET_CPU || t->killed == BUDGET_STRETCH) {
        outcome = "cpu_budget";
    } else if (t->killed == BUDGET_MEM) {
        outcome = "memory_cap";
    } else if (status != LUA_OK || t->outcome[0]) {
        outcome = "error";
    }
    metrics_label_escape(t->reply_label, name, sizeof name);
    snprintf(labels, sizeof labels, "command=\"%s\",outcome=\"%s\"", name, outcome);
    metrics_counter_add("pmb_commands_total", "commands run, by outcome", labels, 1);
    /* Web API calls per command (an autopsy: per report): the sum over commands, and the last */
    snprintf(labels, sizeof labels, "command=\"%s\"", name);
    metrics_counter_add("pmb_command_api_calls_total", "Web API calls made by commands", labels,
                        t->api_calls);
    metrics_gauge_set("pmb_command_last_api_calls", "Web API calls made by the last command",
                      labels, t->api_calls);
}

static void host_task_finish(struct host_task *t, int status, const struct budget_run *run)
{
    char msg[1024], gen_s[16];
    snprintf(gen_s, sizeof gen_s, "%d", t->gen->number);
    if (run && run->killed) {
        t->killed = run->killed;
        snprintf(t->kill_msg, sizeof t->kill_msg, "%s%s%s", budget_kill_message(run),
                 run->where[0] ? " at " : "", run->where);
    }
    host_count_command(t, status);
    t->job_ok = status == LUA_OK;
    if (status != LUA_OK) {
        if (t->killed) {
            snprintf(msg, sizeof msg, "%s", t->kill_msg);
        } else {
            host_error_text(t->co, msg, sizeof msg);
        }
        luaL_traceback(t->gen->L, t->co, msg, 0); /* stack(L): tb */
        log_event(LOG_ERROR, t->reply_channel[0] ? "command failed" : "script failed", "error", msg,
                  "command", t->reply_label, "generation", gen_s, "traceback",
                  lua_tostring(t->gen->L, -1), NULL);
        lua_pop(t->gen->L, 1);
        metrics_counter_add("pmb_script_failures_total", "Lua coroutines ended by an error",
                            t->killed == BUDGET_CPU || t->killed == BUDGET_STRETCH
                                ? "reason=\"cpu\""
                            : t->killed == BUDGET_MEM ? "reason=\"memory\""
                                                      : "reason=\"error\"",
                            1);
        if (t->kind == HOST_TASK_CHILD) {
            prim_all_child_done(t, 0, msg);
        } else if (t->reply_channel[0] && !t->job_lost) {
            /* the one failure reply, whatever ended the command: its first line, kept short */
            char text[512];
            int first = (int)strcspn(msg, "\n");
            snprintf(text, sizeof text, ":x: `%s` failed: %.*s%s",
                     t->reply_label[0] ? t->reply_label : "command", first > 300 ? 300 : first, msg,
                     first > 300 ? "…" : "");
            host_post_message(t->reply_channel, t->reply_thread, text);
        }
        if (t->kind == HOST_TASK_RENDER) {
            host_render_finish(1, NULL);
        }
    } else {
        if (t->kind == HOST_TASK_CHILD) {
            prim_all_child_done(t, 1, NULL);
        } else if (t->kind == HOST_TASK_RENDER) {
            const char *path = lua_type(t->co, -1) == LUA_TSTRING ? lua_tostring(t->co, -1) : NULL;
            char copy[PATH_MAX];
            snprintf(copy, sizeof copy, "%s", path ? path : "");
            host_render_finish(path ? 0 : 1, path ? copy : NULL);
        }
    }
    host_task_free(t);
}

static void host_task_resume_task(void *arg)
{
    struct host_task *t = arg;
    int nargs = t->start_nargs;
    t->queued = 0;
    t->start_nargs = 0;
    if (t->zombie) {
        free(t);
        return;
    }
    host_task_resume(t, nargs);
}

void host_task_resume_soon(struct host_task *t)
{
    if (t->queued) {
        return;
    }
    t->queued = 1;
    loop_defer(&t->resume, host_task_resume_task, t);
}

void host_task_resume(struct host_task *t, int nargs)
{
    struct budget_run run;
    int nres = 0;
    int status;

    if (budget_active()) {
        /* never nest a resume inside a running script */
        t->start_nargs = nargs;
        host_task_resume_soon(t);
        return;
    }
    budget_begin(&run, &t->gen->mem, t->co, &t->gen->limits, t->cpu_used);
    liveness_resume_begin();
    status = lua_resume(t->co, NULL, nargs, &nres);
    liveness_resume_end();
    t->cpu_used += budget_end(&run);
    if (status == LUA_YIELD) {
        lua_pop(t->co, nres);
        if (run.killed) {
            /* killed in the C part of a primitive: it is dead all the same */
            if (t->cancel) {
                t->cancel(t);
            }
            lua_pushstring(t->co, budget_kill_message(&run));
            host_task_finish(t, LUA_ERRRUN, &run);
            return;
        }
        if (t->after_yield) {
            host_cancel_fn fn = t->after_yield;
            t->after_yield = NULL;
            fn(t);
        }
        if (!t->op) {
            host_task_resume_soon(t); /* a bare coroutine.yield(): go on next turn */
        }
        return;
    }
    host_task_finish(t, status, &run);
}

struct host_task *host_task_spawn_child(struct host_task *parent, int results_ref, int fns_ref,
                                        int index)
{
    struct host_gen *gen = parent->gen;
    struct host_task *t = host_task_new(gen, HOST_TASK_CHILD);
    if (!t) {
        return NULL;
    }
    t->parent = parent;
    t->child_index = index;
    host_push_boot_fn(t, "child_main");                  /* co: child_main */
    lua_rawgeti(gen->L, LUA_REGISTRYINDEX, results_ref); /* L: results */
    lua_xmove(gen->L, t->co, 1);                         /* co: child_main results */
    lua_pushinteger(t->co, index);                       /* co: child_main results i */
    lua_rawgeti(gen->L, LUA_REGISTRYINDEX, fns_ref);     /* L: fns */
    lua_rawgeti(gen->L, -1, index);                      /* L: fns fn */
    lua_xmove(gen->L, t->co, 1);                         /* co: child_main results i fn */
    lua_pop(gen->L, 1);
    t->start_nargs = 3;
    host_task_resume_soon(t);
    return t;
}

void host_task_abort_children(struct host_task *parent)
{
    struct host_task *t = host_tasks;
    while (t) {
        if (t->parent == parent) {
            host_task_abort(t);
            t = host_tasks; /* the list changed: start over */
        } else {
            t = t->next;
        }
    }
}

void host_task_abort(struct host_task *t)
{
    if (t->cancel) {
        t->cancel(t);
    }
    t->cancel = NULL;
    t->op = NULL;
    t->job_lost = 1; /* ended from outside: another instance may take the job over */
    if (t->kind == HOST_TASK_RENDER) {
        host_render_finish(1, NULL);
    }
    host_task_free(t);
}

struct host_task *host_task_command(struct host_task *t)
{
    while (t && t->parent) {
        t = t->parent;
    }
    return t;
}

void host_task_abort_all(void)
{
    while (host_tasks) {
        struct host_task *t = host_tasks;
        while (t && t->parent) {
            t = t->next;
        }
        if (!t) {
            t = host_tasks; /* children only: should not happen */
        }
        host_task_abort(t);
    }
}

int host_running(void)
{
    return host_task_count;
}
