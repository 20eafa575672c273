/* primitives_process.c — host.run (docs/lua-api.md): a child process started with uv_spawn from an
 * argv (no shell), its stdin fed from a string, stdout and stderr read up to a bound, killed with
 * its process group when the timeout passes, and a curated environment (what the call passes plus
 * PATH, HOME, LANG: never the tokens). Only programs named in config `programs` may run. Registered
 * by primitives_io.c (prim_open); calls loop.c, log.c and host_task.c (resume). */
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "host/host_gen.h"

#define RUN_MAX_ARGS 256
#define RUN_MAX_ENV 64
#define RUN_DEFAULT_TIMEOUT 60.0
#define RUN_MAX_TIMEOUT 3600.0
#define RUN_DEFAULT_OUTPUT (1024 * 1024)
#define RUN_MAX_OUTPUT (64 * 1024 * 1024)

static const char *const run_default_programs[] = {"git", "rsvg-convert", NULL};

struct run_buf {
    char *data;
    size_t len, cap, max;
    int truncated;
};

/* One child process. Owned by the task while it waits (t->op); once every handle is closed the
 * continuation pushes its results and frees it, or, when the task was cancelled (op.task ==
 * NULL), the last close callback frees it. */
struct run_op {
    struct prim_op op; /* first: the task, cancel, push and free */
    uv_process_t proc;
    uv_pipe_t out, err, in;
    uv_timer_t timer;
    uv_write_t write_req;
    int open_handles; /* initialised handles whose close callback has not run yet */
    int closing;
    int spawned, exited, out_eof, err_eof, in_done;
    int timed_out;
    int64_t exit_status;
    int term_signal;
    struct run_buf out_buf, err_buf;
    char *stdin_data;
    size_t stdin_len;
    char program[128];
    double started;
};

static void run_buf_free(struct run_buf *b)
{
    free(b->data);
    b->data = NULL;
}

static void run_op_free(struct prim_op *base)
{
    struct run_op *op = (struct run_op *)base;
    run_buf_free(&op->out_buf);
    run_buf_free(&op->err_buf);
    free(op->stdin_data);
    free(op);
}

static void run_closed(uv_handle_t *h)
{
    struct run_op *op = h->data;
    if (--op->open_handles > 0) {
        return;
    }
    if (op->op.task) {
        host_task_resume(op->op.task, 0); /* the continuation frees op */
    } else {
        run_op_free(&op->op);
    }
}

static void run_close(uv_handle_t *h)
{
    if (h->data && !uv_is_closing(h)) {
        uv_close(h, run_closed);
    }
}

/* Close every handle once the child exited and both pipes reached their end (or at once when
 * cancelled); the resume happens after the last close callback. */
static void run_maybe_finish(struct run_op *op, int force)
{
    if (op->closing) {
        return;
    }
    if (!force && !(op->exited && op->out_eof && op->err_eof && op->in_done)) {
        return;
    }
    op->closing = 1;
    run_close((uv_handle_t *)&op->timer);
    run_close((uv_handle_t *)&op->out);
    run_close((uv_handle_t *)&op->err);
    run_close((uv_handle_t *)&op->in);
    run_close((uv_handle_t *)&op->proc);
}

static void run_kill(struct run_op *op)
{
    if (op->spawned && !op->exited && op->proc.pid > 0) {
        kill(-op->proc.pid, SIGKILL); /* the process group: git's helpers (ssh, remote-http) too */
    }
}

static void run_exited(uv_process_t *p, int64_t status, int term_signal)
{
    struct run_op *op = p->data;
    op->exited = 1;
    op->exit_status = status;
    op->term_signal = term_signal;
    run_maybe_finish(op, 0);
}

static void run_timed_out(uv_timer_t *timer)
{
    struct run_op *op = timer->data;
    op->timed_out = 1;
    run_kill(op);
    if (op->exited) {
        run_maybe_finish(op, 1); /* something it left behind still holds the pipes open */
    }
}

static void run_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char discard[65536]; /* reads past the bound land here and are dropped */
    struct run_op *op = h->data;
    struct run_buf *b = (uv_pipe_t *)h == &op->out ? &op->out_buf : &op->err_buf;
    (void)suggested;
    if (b->len < b->max) {
        size_t want = b->max - b->len < 65536 ? b->max - b->len : 65536;
        if (b->cap - b->len < want) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap - b->len < want) {
                cap *= 2;
            }
            char *data = realloc(b->data, cap + 1);
            if (data) {
                b->data = data;
                b->cap = cap;
            }
        }
        if (b->data && b->cap - b->len >= want) {
            *buf = uv_buf_init(b->data + b->len, (unsigned)want);
            return;
        }
    }
    *buf = uv_buf_init(discard, sizeof discard);
}

static void run_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct run_op *op = s->data;
    struct run_buf *b = (uv_pipe_t *)s == &op->out ? &op->out_buf : &op->err_buf;
    if (n > 0) {
        if (b->data && buf->base == b->data + b->len) {
            b->len += (size_t)n;
        } else {
            b->truncated = 1;
        }
        return;
    }
    if (n < 0) { /* UV_EOF or a read error: this pipe is done either way */
        uv_read_stop(s);
        if ((uv_pipe_t *)s == &op->out) {
            op->out_eof = 1;
        } else {
            op->err_eof = 1;
        }
        run_maybe_finish(op, 0);
    }
}

static void run_written(uv_write_t *req, int status)
{
    struct run_op *op = req->data;
    (void)status; /* a child that does not read its input (EPIPE) is not our error */
    op->in_done = 1;
    run_close((uv_handle_t *)&op->in);
    run_maybe_finish(op, 0);
}

static void run_cancel(struct prim_op *base)
{
    struct run_op *op = (struct run_op *)base;
    op->op.task = NULL; /* the last close callback frees it */
    run_kill(op);
    run_maybe_finish(op, 1);
}

/* ---- results ---- */

static void run_push_buf(lua_State *L, const struct run_buf *b, const char *field)
{
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    lua_setfield(L, -2, field);
}

static int run_push(lua_State *L, struct prim_op *base)
{
    struct run_op *op = (struct run_op *)base;
    char msg[256];
    if (op->timed_out) {
        snprintf(msg, sizeof msg, "%s did not finish in time and was killed", op->program);
        return prim_fail(L, "timeout", msg);
    }
    lua_createtable(L, 0, 6); /* stack: result */
    if (op->term_signal) {
        lua_pushinteger(L, op->term_signal);
        lua_setfield(L, -2, "signal");
    } else {
        lua_pushinteger(L, op->exit_status);
        lua_setfield(L, -2, "status");
    }
    run_push_buf(L, &op->out_buf, "stdout");
    run_push_buf(L, &op->err_buf, "stderr");
    if (op->out_buf.truncated || op->err_buf.truncated) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "truncated");
    }
    lua_pushnumber(L, loop_now_mono() - op->started);
    lua_setfield(L, -2, "seconds");
    return 1;
}

/* ---- arguments ---- */

/* Is program allowed by config `programs` (an array of names; default git and rsvg-convert)? */
static int run_program_allowed(lua_State *L, const char *program)
{
    struct host_gen *gen = host_gen_of(L);
    int allowed = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, gen->config_ref); /* stack: ... config */
    lua_getfield(L, -1, "programs");                    /* stack: ... config programs */
    if (lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n && !allowed; i++) {
            lua_rawgeti(L, -1, i);
            const char *name = lua_tostring(L, -1);
            allowed = name && strcmp(name, program) == 0;
            lua_pop(L, 1);
        }
    } else {
        for (int i = 0; run_default_programs[i] && !allowed; i++) {
            allowed = strcmp(run_default_programs[i], program) == 0;
        }
    }
    lua_pop(L, 2);
    return allowed;
}

/* A string without NUL bytes (they cannot reach exec), or raise. */
static const char *run_cstring(lua_State *L, int idx, const char *what)
{
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (!s || strlen(s) != len) {
        luaL_error(L, "host.run: %s must be a string without NUL bytes", what);
    }
    return s;
}

static int run_valid_env_name(const char *name)
{
    if (!*name || (*name >= '0' && *name <= '9')) {
        return 0;
    }
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_')) {
            return 0;
        }
    }
    return strcmp(name, "SLACK_BOT_TOKEN") != 0 && strcmp(name, "SLACK_APP_TOKEN") != 0;
}

/* Push "NAME=value" for the environment array unless the call's env table (at idx) has NAME. */
static void run_push_inherited(lua_State *L, int env_idx, const char *name, const char *fallback)
{
    const char *v = getenv(name);
    if (lua_istable(L, env_idx)) {
        lua_getfield(L, env_idx, name);
        int given = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (given) {
            return;
        }
    }
    if (!v) {
        v = fallback;
    }
    if (v) {
        lua_pushfstring(L, "%s=%s", name, v);
    }
}

/* ---- host.run ---- */

int prim_run(lua_State *L)
{
    const char *argv[RUN_MAX_ARGS + 1];
    const char *envp[RUN_MAX_ENV + 4];
    char cwd[PATH_MAX];
    int nargs = 0, nenv = 0;
    double timeout;
    lua_Integer max_output;
    size_t stdin_len = 0;
    const char *stdin_s = NULL;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, RUN_MAX_ARGS + RUN_MAX_ENV + 16, "host.run");
    lua_getfield(L, 1, "argv");  /* 2 */
    lua_getfield(L, 1, "env");   /* 3 */
    lua_getfield(L, 1, "cwd");   /* 4 */
    lua_getfield(L, 1, "stdin"); /* 5 */
    lua_getfield(L, 1, "timeout");
    timeout = luaL_optnumber(L, 6, RUN_DEFAULT_TIMEOUT);
    lua_getfield(L, 1, "max_output");
    max_output = luaL_optinteger(L, 7, RUN_DEFAULT_OUTPUT);
    luaL_argcheck(L, lua_istable(L, 2), 1, "argv (an array of strings) is required");
    luaL_argcheck(L, timeout > 0 && timeout <= RUN_MAX_TIMEOUT, 1, "timeout in (0, 3600] seconds");
    luaL_argcheck(L, max_output > 0 && max_output <= RUN_MAX_OUTPUT, 1,
                  "max_output in (0, 64 MiB] bytes");
    nargs = (int)luaL_len(L, 2);
    luaL_argcheck(L, nargs >= 1 && nargs <= RUN_MAX_ARGS, 1, "argv must hold 1 to 256 strings");
    for (int i = 1; i <= nargs; i++) {
        lua_rawgeti(L, 2, i); /* stays on the stack: argv[] points into it */
        argv[i - 1] = run_cstring(L, -1, "every argv element");
    }
    argv[nargs] = NULL;
    if (!run_program_allowed(L, argv[0])) {
        return luaL_error(L, "host.run: '%s' is not in config `programs`", argv[0]);
    }
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) { /* stack: ... key value */
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING ||
                !run_valid_env_name(lua_tostring(L, -2))) {
                return luaL_error(L, "host.run: env must be {NAME = value} strings (not the "
                                     "Slack tokens)");
            }
            if (nenv == RUN_MAX_ENV) {
                return luaL_error(L, "host.run: at most %d env entries", RUN_MAX_ENV);
            }
            run_cstring(L, -1, "an env value");
            lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
            lua_insert(L, -3); /* stack: ... "K=V" key value: the string stays below the key */
            envp[nenv++] = lua_tostring(L, -3);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, 3)) {
        return luaL_error(L, "host.run: env must be a table");
    }
    const char *inherit[][2] = {
        {"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", NULL}, {"LANG", "C.UTF-8"}};
    for (size_t i = 0; i < sizeof inherit / sizeof inherit[0]; i++) {
        int top = lua_gettop(L);
        run_push_inherited(L, 3, inherit[i][0], inherit[i][1]);
        if (lua_gettop(L) > top) {
            envp[nenv++] = lua_tostring(L, -1);
        }
    }
    envp[nenv] = NULL;
    if (!lua_isnil(L, 5)) {
        stdin_s = luaL_checklstring(L, 5, &stdin_len);
    }
    struct host_task *t = prim_need_task(L, "run");
    /* the working directory: inside the write root (created if missing), like every write; "dir/x"
     * makes prim_write_path check dir itself and every directory above it (raises otherwise) */
    char probe[PATH_MAX + 4];
    snprintf(probe, sizeof probe, "%s/x", lua_isnil(L, 4) ? "." : run_cstring(L, 4, "cwd"));
    prim_write_path(L, "run", probe, 1, cwd, sizeof cwd);
    *strrchr(cwd, '/') = '\0';

    struct run_op *op = (struct run_op *)prim_op_new(sizeof *op, run_cancel, run_push, run_op_free);
    if (!op) {
        return luaL_error(L, "out of memory");
    }
    op->out_buf.max = op->err_buf.max = (size_t)max_output;
    snprintf(op->program, sizeof op->program, "%s", argv[0]);
    op->started = loop_now_mono();
    if (stdin_s) {
        op->stdin_data = malloc(stdin_len ? stdin_len : 1);
        if (!op->stdin_data) {
            free(op);
            return luaL_error(L, "out of memory");
        }
        memcpy(op->stdin_data, stdin_s, stdin_len);
        op->stdin_len = stdin_len;
    }

    uv_loop_t *loop = loop_get();
    uv_pipe_t *pipes[3] = {&op->in, &op->out, &op->err};
    for (int i = 0; i < 3; i++) {
        uv_pipe_init(loop, pipes[i], 0);
        pipes[i]->data = op;
        op->open_handles++;
    }
    uv_timer_init(loop, &op->timer);
    op->timer.data = op;
    op->open_handles++;

    uv_stdio_container_t stdio[3];
    stdio[0].flags = stdin_s ? (UV_CREATE_PIPE | UV_READABLE_PIPE) : UV_IGNORE;
    stdio[0].data.stream = (uv_stream_t *)&op->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&op->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&op->err;

    uv_process_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.exit_cb = run_exited;
    opts.file = argv[0];
    opts.args = (char **)argv;
    opts.env = (char **)envp;
    opts.cwd = cwd;
    opts.flags = UV_PROCESS_DETACHED; /* its own process group, so a timeout kills it all */
    opts.stdio_count = 3;
    opts.stdio = stdio;
    op->proc.data = op;
    int rc = uv_spawn(loop, &op->proc, &opts);
    op->proc.data = op;
    op->open_handles++; /* uv_spawn initialises the handle even when it fails */
    if (rc < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "could not start %s: %s", op->program, uv_strerror(rc));
        run_maybe_finish(op, 1); /* task is NULL: the last close callback frees op */
        return prim_fail(L, "spawn", msg);
    }
    op->spawned = 1;
    uv_read_start((uv_stream_t *)&op->out, run_alloc, run_read);
    uv_read_start((uv_stream_t *)&op->err, run_alloc, run_read);
    if (stdin_s) {
        uv_buf_t buf = uv_buf_init(op->stdin_data, (unsigned)op->stdin_len);
        op->write_req.data = op;
        if (uv_write(&op->write_req, (uv_stream_t *)&op->in, &buf, 1, run_written) < 0) {
            op->in_done = 1;
            run_close((uv_handle_t *)&op->in);
        }
    } else {
        op->in_done = 1;
        run_close((uv_handle_t *)&op->in);
    }
    uv_timer_start(&op->timer, run_timed_out, (uint64_t)(timeout * 1000.0), 0);
    log_event(LOG_DEBUG, "child process started", "program", op->program, NULL);

    return prim_yield(L, t, &op->op, "run");
}
