/* budget.c — the limits on scripts: a counting lua_Alloc per generation (memory cap) and a count
 * hook that time-slices and bounds each resume. host_task.c brackets each resume, host_gen.c each
 * load, with budget_begin/budget_end; lua_patterns.c calls budget_check from inside a long match.
 * Every BUDGET_HOOK_COUNT instructions the hook looks at the clock: past the slice it yields the
 * command's coroutine (the loop serves I/O, then resumes it); past the command's CPU budget, or
 * past the stretch bound where it cannot yield, it kills the run. Once a run is killed the hook
 * fires on every instruction, so pcall cannot swallow the kill (as Redis does); a small reserve
 * above the cap lets the error path allocate its message and traceback. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/loop.h"
#include "host/host_gen.h"

#define BUDGET_HOOK_COUNT 1000

static struct budget_run *budget_current;

double budget_thread_cpu(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        return loop_now_mono();
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void budget_kill(struct budget_run *r, enum budget_kill why, lua_State *L)
{
    if (r->killed != BUDGET_NONE) {
        return;
    }
    r->killed = why;
    lua_Debug d;
    if (lua_getstack(L, 0, &d) && lua_getinfo(L, "Sl", &d) && d.currentline > 0) {
        snprintf(r->where, sizeof r->where, "%s:%d", d.short_src, d.currentline);
    }
}

/* CPU of the command so far. Wall time of this resume is an upper bound of its CPU time and costs
 * nothing to read; the thread's CPU clock (a system call) is read only when that bound is over. */
static int budget_cpu_over(struct budget_run *r, double elapsed)
{
    if (r->cpu_before + elapsed <= r->limits.cpu) {
        return 0;
    }
    return r->cpu_before + (budget_thread_cpu() - r->cpu_started) > r->limits.cpu;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

static void budget_raise(lua_State *L, struct budget_run *r)
{
    /* every instruction from now on raises again, until the coroutine is dead */
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    if (r->L != L) {
        lua_sethook(r->L, budget_hook, LUA_MASKCOUNT, 1);
    }
    lua_pushstring(L, budget_kill_message(r));
    lua_error(L);
}

/* Is the run over its CPU budget or its stretch bound? Marks it killed if so (1), else returns 0
 * with *elapsed set to the seconds this resume has run. */
static int budget_over(struct budget_run *r, lua_State *L, double *elapsed)
{
    if (r->killed != BUDGET_NONE) {
        return 1;
    }
    *elapsed = loop_now_mono() - r->started;
    if (budget_cpu_over(r, *elapsed)) {
        budget_kill(r, BUDGET_CPU, L);
    } else if (*elapsed > r->limits.stretch) {
        /* a stretch without a yield this long: a C call the hook could not see into, or code
         * that cannot yield (a metamethod, a coroutine the script made, loading) */
        budget_kill(r, BUDGET_STRETCH, L);
    } else {
        return 0;
    }
    return 1;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct budget_run *r = budget_current;
    double elapsed = 0;
    (void)ar;
    if (!r) {
        return;
    }
    if (budget_over(r, L, &elapsed)) {
        budget_raise(L, r);
    }
    if (elapsed > r->limits.slice && r->limits.slice > 0 && L == r->L && lua_isyieldable(L)) {
        /* the command's own coroutine, not inside a metamethod or C call: give the loop back */
        r->sliced = 1;
        lua_yield(L, 0);
    }
}

void budget_check(lua_State *L)
{
    struct budget_run *r = budget_current;
    double elapsed;
    if (r && budget_over(r, L, &elapsed)) {
        budget_raise(L, r);
    }
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
            r->killed = BUDGET_MEM;
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

void budget_begin(struct budget_run *run, struct budget_mem *mem, lua_State *L,
                  const struct budget_limits *limits, double cpu_before)
{
    run->mem = mem;
    run->started = loop_now_mono();
    run->cpu_started = budget_thread_cpu();
    run->cpu_before = cpu_before;
    run->limits = *limits;
    run->L = L;
    run->killed = BUDGET_NONE;
    run->sliced = 0;
    run->where[0] = '\0';
    budget_current = run;
}

double budget_end(struct budget_run *run)
{
    if (budget_current == run) {
        budget_current = NULL;
    }
    return budget_thread_cpu() - run->cpu_started;
}

int budget_active(void)
{
    return budget_current != NULL;
}

const char *budget_kill_message(const struct budget_run *run)
{
    static char msg[128];
    if (run->killed == BUDGET_MEM) {
        snprintf(msg, sizeof msg, "memory cap exceeded (%zu MB)", run->mem->cap / (1024 * 1024));
    } else if (run->killed == BUDGET_STRETCH) {
        snprintf(msg, sizeof msg, "cpu budget exceeded (%g s without yielding)",
                 run->limits.stretch);
    } else {
        snprintf(msg, sizeof msg, "cpu budget exceeded (%g s of CPU)", run->limits.cpu);
    }
    return msg;
}
