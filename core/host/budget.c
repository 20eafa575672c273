/* budget.c — the two limits on scripts: a counting lua_Alloc per generation (memory cap) and a
 * count hook checking the wall time of the current resume (CPU budget). host_task.c brackets
 * each resume, host_gen.c each load, with budget_begin/budget_end. Once a run is killed the hook
 * fires on every instruction, so pcall cannot swallow the kill (as Redis does); a small reserve
 * above the cap lets the error path allocate its message and traceback. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/loop.h"
#include "host/host_gen.h"

#define BUDGET_HOOK_COUNT 1000

static struct budget_run *budget_current;

static void budget_kill(struct budget_run *r, enum budget_kill why)
{
    if (r->killed == BUDGET_NONE) {
        r->killed = why;
    }
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct budget_run *r = budget_current;
    (void)ar;
    if (!r) {
        return;
    }
    if (r->killed == BUDGET_NONE) {
        if (loop_now_mono() - r->started <= r->limit) {
            return;
        }
        budget_kill(r, BUDGET_CPU);
        lua_Debug d;
        if (lua_getstack(L, 0, &d) && lua_getinfo(L, "Sl", &d) && d.currentline > 0) {
            snprintf(r->where, sizeof r->where, "%s:%d", d.short_src, d.currentline);
        }
    }
    /* every instruction from now on raises again, until the coroutine is dead */
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    lua_pushstring(L, budget_kill_message(r));
    lua_error(L);
}

void budget_install_hook(lua_State *L)
{
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_HOOK_COUNT);
}

void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct budget_mem *m = ud;
    size_t old = ptr ? osize : 0; /* osize is a type tag when ptr is NULL */
    struct budget_run *r = budget_current;
    void *p;

    if (nsize == 0) {
        free(ptr);
        m->used -= old;
        return NULL;
    }
    /* Only script runs are capped: host C code (building a coroutine, pushing results) must
     * never fail outside a protected call. */
    if (nsize > old && r && r->mem == m && m->used + (nsize - old) > m->cap) {
        if (r->killed == BUDGET_NONE) {
            budget_kill(r, BUDGET_MEM);
            lua_sethook(r->L, budget_hook, LUA_MASKCOUNT, 1);
        }
        if (m->used + (nsize - old) > m->cap + m->reserve) {
            return NULL;
        }
    }
    p = realloc(ptr, nsize);
    if (!p) {
        return NULL;
    }
    m->used = m->used - old + nsize;
    if (m->used > m->peak) {
        m->peak = m->used;
    }
    return p;
}

void budget_begin(struct budget_run *run, struct budget_mem *mem, lua_State *L, double limit)
{
    run->mem = mem;
    run->started = loop_now_mono();
    run->limit = limit;
    run->L = L;
    run->killed = BUDGET_NONE;
    run->where[0] = '\0';
    budget_current = run;
}

void budget_end(struct budget_run *run)
{
    if (budget_current == run) {
        budget_current = NULL;
    }
}

int budget_active(void)
{
    return budget_current != NULL;
}

const char *budget_kill_message(const struct budget_run *run)
{
    static char msg[96];
    if (run->killed == BUDGET_MEM) {
        snprintf(msg, sizeof msg, "memory cap exceeded (%zu MB)", run->mem->cap / (1024 * 1024));
    } else {
        snprintf(msg, sizeof msg, "cpu budget exceeded (%g s without yielding)", run->limit);
    }
    return msg;
}
