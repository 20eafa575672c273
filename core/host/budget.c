/* budget.c — the limits on scripts: a counting lua_Alloc per generation (memory cap) and a count
 * hook that time-slices and bounds each resume. host_task.c brackets each resume, host_gen.c each
 * load, with budget_begin/budget_end; lua_patterns.c calls budget_check from inside a long match;
 * sandbox.c tells which coroutine a script resumed (budget_enter_coroutine).
 * The hook is armed only when there is something to look at: a Lua count hook, even one that
 * fires every thousand instructions, makes the interpreter stop at every instruction to count
 * (Lua 5.4's "trap"), which halves the speed of every script. So while a run is active a timer
 * of this thread (timer_create, a signal to this thread only) ticks once per slice; its handler
 * only arms the hook (lua_sethook is safe in a signal handler: lua.c stops a script on SIGINT
 * the same way) on the run's coroutine and on the one it is running. The armed hook looks at the
 * clock on the next instruction: past the slice it yields the command's coroutine (the loop serves
 * I/O, then resumes it); past the command's CPU budget, or past the stretch bound where it cannot
 * yield, it kills the run; otherwise it disarms itself. Where no timer can be made, the hook stays
 * installed and looks every BUDGET_HOOK_COUNT instructions, as before. Once a run is killed the
 * hook fires on every instruction, so pcall cannot swallow the kill (as Redis does); a small
 * reserve above the cap lets the error path allocate its message and traceback. */
#include <errno.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/loop.h"
#include "host/batch_arena.h"
#include "host/host_gen.h"

#define BUDGET_HOOK_COUNT 1000
/* the tick of a run without slices (loading): often enough to see the stretch bound */
#define BUDGET_TICK_UNSLICED 0.01

static struct budget_run *volatile budget_current;

/* The ticking timer: 1 made (on the script thread), -1 could not be made (the hook stays
 * installed), 0 not tried yet. */
static int budget_ticker_state;
static timer_t budget_ticker;

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
    if (r->running && r->running != L) {
        lua_sethook(r->running, budget_hook, LUA_MASKCOUNT, 1);
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
        if (budget_ticker_state > 0) {
            lua_sethook(L, NULL, 0, 0);
        }
        return;
    }
    if (budget_over(r, L, &elapsed)) {
        budget_raise(L, r);
    }
    if (elapsed > r->limits.slice && r->limits.slice > 0) {
        if (L == r->L && lua_isyieldable(L)) {
            /* the command's own coroutine, not inside a metamethod or C call: give the loop back
             * (the hook stays armed: it fires first thing on the resume, and disarms there) */
            r->sliced = 1;
            lua_yield(L, 0);
            return;
        }
        /* over the slice where it cannot yield: look again soon, until it can */
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_HOOK_COUNT);
        return;
    }
    if (budget_ticker_state > 0) {
        lua_sethook(L, NULL, 0, 0); /* nothing due: full speed until the next tick */
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

/* The signal handler: arm the hook on the run's coroutine and on the one it is running (a script's
 * own coroutine has a lua_State of its own, with hooks of its own). Nothing else happens here. */
static void budget_on_tick(int sig)
{
    int saved = errno;
    struct budget_run *r = budget_current;
    (void)sig;
    if (r) {
        lua_State *inner = r->running;
        lua_sethook(r->L, budget_hook, LUA_MASKCOUNT, 1);
        if (inner && inner != r->L) {
            lua_sethook(inner, budget_hook, LUA_MASKCOUNT, 1);
        }
    }
    errno = saved;
}

/* Make the ticker once, on the thread that runs the scripts. 1 when it ticks, 0 when the hook
 * must stay installed instead. */
static int budget_ticker_ready(void)
{
    if (budget_ticker_state != 0) {
        return budget_ticker_state > 0;
    }
    budget_ticker_state = -1;
    if (getenv("PMB_BUDGET_COUNT_HOOK")) {
        return 0; /* the old way, kept to compare (bench/) */
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = budget_on_tick;
    sa.sa_flags = SA_RESTART; /* a tick inside a primitive's system call must not fail it */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGRTMIN, &sa, NULL) != 0) {
        return 0;
    }
    sigset_t mine;
    sigemptyset(&mine);
    sigaddset(&mine, SIGRTMIN);
    pthread_sigmask(SIG_UNBLOCK, &mine, NULL);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGRTMIN;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &sev, &budget_ticker) != 0) {
        signal(SIGRTMIN, SIG_IGN);
        return 0;
    }
    budget_ticker_state = 1;
    return 1;
}

static void budget_ticker_set(double every)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (every > 0) {
        its.it_value.tv_sec = (time_t)every;
        its.it_value.tv_nsec = (long)((every - (double)(time_t)every) * 1e9);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec < 100000) {
            its.it_value.tv_nsec = 100000; /* 0.1 ms at least (0 would disarm it) */
        }
        its.it_interval = its.it_value;
    }
    timer_settime(budget_ticker, 0, &its, NULL);
}

void budget_install_hook(lua_State *L)
{
    if (budget_ticker_ready()) {
        lua_sethook(L, NULL, 0, 0); /* armed by the ticker when a run needs looking at */
    } else {
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_HOOK_COUNT);
    }
}

lua_State *budget_enter_coroutine(lua_State *co)
{
    struct budget_run *r = budget_current;
    if (!r) {
        return NULL;
    }
    lua_State *prev = r->running;
    r->running = co;
    if (r->killed != BUDGET_NONE) {
        lua_sethook(co, budget_hook, LUA_MASKCOUNT, 1); /* dead already: so is what it resumes */
    }
    return prev;
}

void budget_leave_coroutine(lua_State *prev)
{
    struct budget_run *r = budget_current;
    if (r) {
        r->running = prev;
    }
}

void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct budget_mem *m = ud;
    size_t old = ptr ? osize : 0; /* osize is a type tag when ptr is NULL */
    struct budget_run *r = budget_current;
    void *p;

    if (nsize == 0) {
        if (m->batch) {
            batch_arena_free(ptr);
        } else {
            free(ptr);
        }
        m->used -= old;
        return NULL;
    }
    /* Only script runs are capped: host C code (building a coroutine, pushing results) must
     * never fail outside a protected call. */
    if (nsize > old && r && r->mem == m && m->used + (nsize - old) > m->cap) {
        if (r->killed == BUDGET_NONE) {
            r->killed = BUDGET_MEM;
            lua_sethook(r->L, budget_hook, LUA_MASKCOUNT, 1);
            if (r->running && r->running != r->L) {
                lua_sethook(r->running, budget_hook, LUA_MASKCOUNT, 1);
            }
        }
        if (m->used + (nsize - old) > m->cap + m->reserve) {
            return NULL;
        }
    }
    p = m->batch ? batch_arena_realloc(ptr, nsize) : realloc(ptr, nsize);
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
    run->running = NULL;
    run->where[0] = '\0';
    budget_current = run;
    if (budget_ticker_ready()) {
        double tick = limits->slice > 0 ? limits->slice : BUDGET_TICK_UNSLICED;
        if (limits->stretch > 0 && limits->stretch < tick) {
            tick = limits->stretch;
        }
        budget_ticker_set(tick);
        /* a command that spent its CPU budget in many short resumes (each shorter than a tick)
         * is stopped on the first instruction of the next one */
        if (cpu_before >= limits->cpu) {
            lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
        }
    }
}

double budget_end(struct budget_run *run)
{
    if (budget_current == run) {
        budget_current = NULL;
        if (budget_ticker_state > 0) {
            budget_ticker_set(0);
        }
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
