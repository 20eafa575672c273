/* host_gen.h — what the Lua host's own files share (host.c, host_gen.c, host_task.c, budget.c,
 * sandbox.c, config.c and the three primitives_*.c): a generation (one lua_State and its budgets),
 * a task (one coroutine), a waiting primitive's op and the hooks between them. Nothing outside the
 * host includes this; the rest of the core sees host.h. */
#ifndef PMB_HOST_GEN_H
#define PMB_HOST_GEN_H

#include <lua.h>
#include <stddef.h>

#include "base/loop.h"
#include "host/host.h"

/* ---- budget.c: memory cap (counting allocator), time slices and CPU budget (count hook) ---- */

enum budget_kill { BUDGET_NONE = 0, BUDGET_CPU, BUDGET_MEM, BUDGET_STRETCH };

struct budget_mem {
    size_t used;    /* bytes the generation holds now */
    size_t cap;     /* budget.memory_mb */
    size_t reserve; /* extra bytes the error path may use once a run was killed */
    size_t peak;
    int batch; /* 1: allocated in batch_arena.c (a render), else realloc/free */
};

struct budget_limits {
    double cpu;     /* seconds of CPU for the whole command, all its resumes (budget.cpu_seconds) */
    double stretch; /* seconds one resume may run where it cannot yield (budget.stretch_seconds) */
    double slice;   /* seconds after which a resume yields where it can; 0 = never (loading) */
};

/* One resume (or one load step) under budget. Only one is active at a time: the script loop is
 * one thread and resumes never nest. */
struct budget_run {
    struct budget_mem *mem;
    struct budget_limits limits;
    double started;              /* loop_now_mono() at the start of the resume */
    double cpu_started;          /* the thread's CPU clock then */
    double cpu_before;           /* CPU seconds the command used in its earlier resumes */
    lua_State *L;                /* the thread being resumed */
    lua_State *volatile running; /* the script-made coroutine it is running now, or NULL */
    enum budget_kill killed;
    int sliced;      /* the hook yielded at the end of a slice: resume on the next turn */
    char where[256]; /* "scripts/x.lua:12" where the budget ran out, or "" */
};

void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* What a new lua_State (and the coroutines made from it) starts with: no hook when the ticker
 * arms it (the usual case), else a count hook every BUDGET_HOOK_COUNT instructions. */
void budget_install_hook(lua_State *L);
/* Around a script's coroutine.resume / close / a wrap function: co is what runs now, so a tick
 * arms its hook too. enter returns what leave must be given back. */
lua_State *budget_enter_coroutine(lua_State *co);
void budget_leave_coroutine(lua_State *prev);
void budget_begin(struct budget_run *run, struct budget_mem *mem, lua_State *L,
                  const struct budget_limits *limits, double cpu_before);
double budget_end(struct budget_run *run); /* returns the CPU seconds this run used */
int budget_active(void);                   /* a run is in progress */
/* From C code that runs long without Lua instructions (pattern matching): raise the kill if the
 * run is over its CPU budget or its stretch. Safe to call only where a longjmp leaks nothing. */
void budget_check(lua_State *L);
double budget_thread_cpu(void); /* this thread's CPU seconds */
/* "cpu budget exceeded (2 s without yielding)" / "memory cap exceeded (256 MB)". Static buffer. */
const char *budget_kill_message(const struct budget_run *run);

/* ---- generations (built and closed in host_gen.c, swapped and released in host.c) ---- */

struct host_gen {
    struct budget_mem mem; /* first member: the allocator's ud is the generation */
    lua_State *L;
    int number;
    int refs;        /* live tasks */
    int retired;     /* no longer current: closed when refs drops to 0 */
    int young_holds; /* tasks holding the collector in generational mode (host_gen_hold_young) */
    enum host_mode mode;
    struct budget_limits limits; /* budget.cpu_seconds, budget.stretch_seconds, slice */
    char *config_path;           /* as given */
    char *scripts_dir;           /* absolute */
    char *templates_dir;         /* absolute */
    char *data_dir;              /* absolute */
    char *write_root;            /* realpath: data_dir, or render's out_dir */
    char *admin_channel;         /* or NULL */
    char *timezone;
    int config_ref;    /* registry: the config table */
    int templates_ref; /* registry: { name = source } */
    int init_ref;      /* registry: the init module */
    int boot_ref;      /* registry: the boot table (task_main, child_main, render_main) */
    struct host_gen *next_retired;
};

/* A new generation numbered `number` built from opts (which must outlive the call), or NULL with
 * the error (file:line: message) in err. prev is the generation running now (NULL at start-up):
 * the load budget is twice its CPU budget. The caller frees the result with host_gen_close. */
struct host_gen *host_gen_build(const struct host_options *opts, int number,
                                const struct host_gen *prev, char *err, size_t errsz);
void host_gen_close(struct host_gen *gen); /* NULL is fine */
/* The collector of gen in generational mode while at least one task holds it (a big report once
 * its thread is read: host.collect_garbage("generational")), else in its incremental mode. */
void host_gen_hold_young(struct host_gen *gen);
void host_gen_release_young(struct host_gen *gen);
/* host.c: close gen if it is retired and its last task ended (host_task.c calls it). */
void host_gen_release(struct host_gen *gen);
/* host.c: start envelopes that wait for a free coroutine (host_task.c calls it when one ends). */
void host_start_waiting(void);
struct host_gen *host_gen_of(lua_State *L);

/* ---- tasks (host_task.c) ---- */

struct host_task;
struct prim_op;
/* How a yielded primitive is cancelled (drain, shutdown) — frees its op. */
typedef void (*host_cancel_fn)(struct host_task *t);

enum host_task_kind { HOST_TASK_ENVELOPE, HOST_TASK_CHILD, HOST_TASK_RENDER };

struct host_task {
    struct host_gen *gen;
    lua_State *co;
    int ref; /* registry anchor of co */
    enum host_task_kind kind;
    struct prim_op *op; /* the pending primitive (primitives_io.c) or NULL */
    host_cancel_fn cancel;
    host_cancel_fn after_yield; /* run once after the coroutine yielded, outside the budget */
    enum budget_kill killed;
    double cpu_used; /* CPU seconds of all resumes so far (the budget counts them all) */
    char kill_msg[384];
    /* where the host posts a failure reply (host.task_reply_to, set by the router) */
    char reply_channel[32], reply_thread[32], reply_label[96];
    char outcome[16];   /* "failed" when the router answered an error itself; "" = ok */
    unsigned api_calls; /* host.api calls of this task and of its host.all children (a command's
                           Web API calls, for pmb_command_api_calls_total) */
    int holds_young;    /* holds gen's collector in generational mode until it ends */
    /* database mode: the job this envelope runs as (host.job), "" otherwise */
    char job_id[200];
    int job_generation, job_degraded;
    int job_ok;   /* the coroutine ended without an error */
    int job_lost; /* fenced (host.job_lost) or aborted: no failure reply, not finished here */
    /* host.all children */
    struct host_task *parent; /* the task waiting in host.all */
    int child_index;
    int start_nargs;               /* values to pass to the queued first resume */
    int queued;                    /* a resume is on the ready queue */
    struct loop_deferred resume;   /* that resume (host_task_resume_task) */
    int zombie;                    /* ended while queued: the queued resume frees it */
    struct host_task *prev, *next; /* every live task */
};

/* host.c: tell main.c (host_set_job_end) that the job of envelope task t has ended. */
void host_job_ended(const struct host_task *t);

/* The task whose coroutine is L (NULL outside a host coroutine, e.g. inside a coroutine the
 * script made itself, or at load time). */
struct host_task *host_task_of(lua_State *L);
/* The command's own task: t itself, or the task a host.all child (of a child…) works for. NULL
 * stays NULL. */
struct host_task *host_task_command(struct host_task *t);
/* A new task (coroutine) of gen, linked into the live list; NULL on OOM. It frees itself when
 * its coroutine ends or is aborted. */
struct host_task *host_task_new(struct host_gen *gen, enum host_task_kind kind);
/* Push the boot table's function `name` (task_main, child_main, render_main) onto t->co. */
void host_push_boot_fn(struct host_task *t, const char *name);
/* Push a copy of s onto the task's coroutine, allocating under a protected call: 0, or -1 when out
 * of memory (nothing pushed). */
int host_task_push_string(struct host_task *t, const char *s, size_t len);
/* Resume t with nargs values already pushed onto t->co. Never called from inside a resume. */
void host_task_resume(struct host_task *t, int nargs);
/* Same, from the ready queue (for completions that may arrive while Lua runs). */
void host_task_resume_soon(struct host_task *t);
/* host.all: start (on the next loop turn) a child of parent running fns[index] under the boot
 * child_main, which stores {ok=..} into results[index]; refs are registry refs. NULL on OOM. */
struct host_task *host_task_spawn_child(struct host_task *parent, int results_ref, int fns_ref,
                                        int index);
/* Cancel a task's pending op and end its coroutine (drain, shutdown). */
void host_task_abort(struct host_task *t);
void host_task_abort_children(struct host_task *parent);
/* Abort every live task, top-level tasks before host.all children (drain timeout, shutdown). */
void host_task_abort_all(void);

/* ---- host.c, called by the files above ---- */

/* Call the host_render callback once (rc 0 with the Markdown path, or 1 and NULL). */
void host_render_finish(int rc, const char *path);
/* While draining: once no task is left, finish the drain (on the next loop turn). */
void host_drain_check(void);
/* Post text in a thread via chat.postMessage, from C (failure replies, admin channel). */
void host_post_message(const char *channel, const char *thread_ts, const char *text);
const struct bot_identity *host_bot(void); /* NULL when unknown */

/* ---- config.c ---- */
/* Read the (defaults-merged) config table at index idx into s; strings are strdup'd into the
 * arrays owned by config.c (freed by config_free). reload: only http and log_level. */
int config_read_settings(lua_State *L, int idx, struct core_settings *s, int reload);
void config_free(void);

/* ---- sandbox.c ---- */
/* Open the curated libraries of a generation and install `require`, `print`, `host`, `cjson`.
 * Expects gen->scripts_dir set. 0 or -1 (message on the Lua stack). Run inside lua_pcall. */
int sandbox_open(lua_State *L);
/* require(name) from C (inside a protected call): pushes the module. */
int sandbox_require(lua_State *L);
/* Load a Lua file as text with a chunkname; pushes the function or raises. */
void sandbox_loadfile(lua_State *L, const char *path, const char *chunkname);
/* Push the whole content of a regular file as a string; -1 with the reason in err (nothing
 * pushed). Raises only on a memory error, and then leaks nothing. */
int sandbox_push_file(lua_State *L, const char *path, char *err, size_t errsz);

/* ---- the host module's primitives (primitives_io.c, primitives_local.c, primitives_process.c) */

/* A waiting primitive's pending operation: this header, first member of the kind's own struct
 * (an HTTP call, a timer, a zip job, host.all's children, a child process). Owned by the task
 * while it waits (t->op). */
struct prim_op;
/* The task was aborted (drain, shutdown, a kill): stop the work and free the op, now or, for
 * work that cannot be stopped at once, when it ends (the op then clears op->task first). */
typedef void (*prim_cancel_fn)(struct prim_op *op);
/* The coroutine is resumed: push the results (returns how many; may raise). */
typedef int (*prim_push_fn)(lua_State *L, struct prim_op *op);
typedef void (*prim_free_fn)(struct prim_op *op); /* after push, raised or not */
struct prim_op {
    struct host_task *task;
    prim_cancel_fn cancel;
    prim_push_fn push;
    prim_free_fn free;
};
/* A zeroed op of size bytes (the kind's struct) with its functions set, or NULL on out of memory
 * (nothing raised: the caller frees what it holds first). Freed by free_fn. */
struct prim_op *prim_op_new(size_t size, prim_cancel_fn cancel, prim_push_fn push,
                            prim_free_fn free_fn);
/* The task of L, or raise: waiting primitives run only in a command's own coroutine. */
struct host_task *prim_need_task(lua_State *L, const char *fn);
/* Give op (work started, cancel/push/free set) to t and yield; once the work called
 * host_task_resume(op->task, 0), one continuation pushes op's results and frees it. fn: the
 * primitive's name, a string literal. */
int prim_yield(lua_State *L, struct host_task *t, struct prim_op *op, const char *fn);

int prim_open(lua_State *L);     /* luaopen_host (primitives_io.c) */
int prim_run(lua_State *L);      /* host.run (primitives_process.c) */
int prim_smtp(lua_State *L);     /* host.smtp (primitives_mail.c) */
int prim_db(lua_State *L);       /* host.db (primitives_db.c) */
int prim_job(lua_State *L);      /* host.job (primitives_job.c) */
int prim_job_lost(lua_State *L); /* host.job_lost (primitives_job.c) */
/* host_task.c: a host.all child finished (start the next one, or resume the parent). */
void prim_all_child_done(struct host_task *child, int ok, const char *error);

/* primitives_local.c */
void prim_local_register(lua_State *L); /* adds the immediate primitives to the table on top */
/* Is path (absolute or relative to the write root) inside the root? Writes the absolute path to
 * out. 0 or -1 with why in err. mkdirs = create the parent directories. */
int prim_resolve_write_path(const char *root, const char *path, int mkdirs, char *out, size_t size,
                            char *err, size_t errsz);
/* Resolve path for writing inside this generation's write root (creating parents), or raise. */
const char *prim_write_path(lua_State *L, const char *fn, const char *path, int mkdirs, char *out,
                            size_t size);
/* nil, err: pushes both, returns 2 */
int prim_fail(lua_State *L, const char *code, const char *message);
int prim_fail_errno(lua_State *L, const char *what);
void prim_push_err(lua_State *L, const char *code, const char *message, long status,
                   const char *needed, const char *provided);

#endif
