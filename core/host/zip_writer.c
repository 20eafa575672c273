/* zip_writer.c — host.zip_writer(base_dir): a report's zip written entry by entry while its files
 * arrive, so that once the last one is in only the .md and the central directory are left.
 * writer:add(entry) is immediate: it queues the entry and a work item on libuv's thread pool
 * appends the queued entries in order (zipbundle.c); writer:close(zip_path [, entries]) yields
 * until every entry is in, then finishes the zip and renames it to zip_path (nil, err for the first
 * failure of any entry: nothing is left then); writer:abort() or the collector drops it. Registered
 * by primitives_io.c (prim_open); called from scripts (lib/bundle.lua); paths go through the write
 * root (prim_write_path) and the read rule. */
#include "host/zip_writer.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/loop.h"
#include "base/zipbundle.h"
#include "host/host_gen.h"
#include "host/read_rule.h"

#define ZIP_WRITER_MT "pmb.zip_writer"

struct zip_writer_close_op;

/* One writer. The userdata holds a pointer to it; the collector frees it at once when no work
 * runs, else marks it abandoned and the work's end frees it. `pending` and `zip_path` are shared
 * with the pool thread (under lock); `z`, `failed`, `finished` and `err` are the work's while it
 * runs and read on the loop thread once it ended; the rest is the loop thread's. */
struct zip_writer {
    uv_work_t work;
    uv_mutex_t lock;
    char **pending; /* entries not written yet, in order */
    size_t n_pending, cap_pending;
    char *zip_path; /* set by close: the work finishes the zip once nothing is pending */
    struct zipbundle *z;
    int running, abandoned, failed, finished;
    struct zip_writer_close_op *waiter; /* the close waiting for the end, or NULL */
    char err[PATH_MAX + 128];
    char base[PATH_MAX];
};

struct zip_writer_close_op {
    struct prim_op op;
    int rc;
    char err[PATH_MAX + 128];
};

static void zip_writer_free(struct zip_writer *w)
{
    for (size_t i = 0; i < w->n_pending; i++) {
        free(w->pending[i]);
    }
    free(w->pending);
    free(w->zip_path);
    zipbundle_discard(w->z);
    uv_mutex_destroy(&w->lock);
    free(w);
}

/* The next pending entry (the caller frees it), or NULL; *closing says whether close asked for the
 * end. */
static char *zip_writer_take(struct zip_writer *w, int *closing)
{
    char *entry = NULL;
    uv_mutex_lock(&w->lock);
    if (w->n_pending > 0) {
        entry = w->pending[0];
        memmove(w->pending, w->pending + 1, (w->n_pending - 1) * sizeof *w->pending);
        w->n_pending--;
    }
    *closing = w->zip_path != NULL;
    uv_mutex_unlock(&w->lock);
    return entry;
}

/* On the pool: append what is pending; once close asked and nothing is left, finish the zip. */
static void zip_writer_work(uv_work_t *req)
{
    struct zip_writer *w = req->data;
    int closing = 0;
    char *entry;
    while ((entry = zip_writer_take(w, &closing)) != NULL) {
        if (!w->failed && zipbundle_add_entry(w->z, entry, w->err, sizeof w->err) < 0) {
            w->failed = 1;
        }
        free(entry);
    }
    if (closing && !w->finished) {
        if (w->failed) {
            zipbundle_discard(w->z);
        } else if (zipbundle_finish(w->z, w->zip_path, w->err, sizeof w->err) < 0) {
            w->failed = 1;
        }
        w->z = NULL;
        w->finished = 1;
    }
}

static void zip_writer_after(uv_work_t *req, int status);

static void zip_writer_start(struct zip_writer *w)
{
    if (w->running) {
        return;
    }
    w->work.data = w;
    if (uv_queue_work(loop_get(), &w->work, zip_writer_work, zip_writer_after) < 0) {
        w->failed = 1;
        snprintf(w->err, sizeof w->err, "could not start the zip");
        return;
    }
    w->running = 1;
}

/* Drop the zip now (no work runs): a close waiting gets the error. */
static void zip_writer_give_up(struct zip_writer *w)
{
    zipbundle_discard(w->z);
    w->z = NULL;
    w->failed = 1;
    w->finished = 1;
}

/* On the loop, after a work item: go on when more came meanwhile, else answer a waiting close. */
static void zip_writer_after(uv_work_t *req, int status)
{
    struct zip_writer *w = req->data;
    struct zip_writer_close_op *c;
    int more;
    w->running = 0;
    if (status < 0 && !w->finished) {
        snprintf(w->err, sizeof w->err, "the zip was cancelled");
        zip_writer_give_up(w);
    }
    if (!w->abandoned && !w->finished) {
        uv_mutex_lock(&w->lock);
        more = w->n_pending > 0 || w->zip_path != NULL;
        uv_mutex_unlock(&w->lock);
        if (more) {
            zip_writer_start(w);
            if (w->running) {
                return;
            }
            zip_writer_give_up(w); /* (zip_writer_start said why in err) */
        }
    }
    c = w->waiter;
    if (c && (w->finished || w->abandoned)) {
        w->waiter = NULL;
        c->rc = w->failed || !w->finished ? -1 : 0;
        snprintf(c->err, sizeof c->err, "%s", w->failed ? w->err : "the zip was dropped");
    } else {
        c = NULL;
    }
    /* w is done with before the task resumes: the script may abort the writer (or the collector
     * finalize it) while it runs, and w is then freed at once (no work runs) */
    if (w->abandoned) {
        zip_writer_free(w);
    }
    if (c) {
        if (c->op.task) {
            host_task_resume(c->op.task, 0);
        } else {
            free(c); /* its task was cancelled meanwhile */
        }
    }
}

static struct zip_writer *zip_writer_check(lua_State *L)
{
    struct zip_writer **box = luaL_checkudata(L, 1, ZIP_WRITER_MT);
    if (!*box) {
        luaL_error(L, "zip writer: used after close or abort");
    }
    return *box;
}

/* Queue entry (checked: relative, no "..", readable by the read rule). 0, or -1 with why. */
static int zip_writer_queue(struct zip_writer *w, const char *entry, char *why, size_t size)
{
    char path[2 * PATH_MAX + 2];
    char *copy;
    if (!zipbundle_entry_ok(entry)) {
        snprintf(why, size, "bad entry '%s': must be relative, without '..'", entry);
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", w->base, entry);
    if (read_rule_check(path, why, size) < 0) {
        return -1;
    }
    copy = strdup(entry);
    uv_mutex_lock(&w->lock);
    if (copy && w->n_pending == w->cap_pending) {
        size_t cap = w->cap_pending ? 2 * w->cap_pending : 16;
        char **grown = realloc(w->pending, cap * sizeof *grown);
        if (grown) {
            w->pending = grown;
            w->cap_pending = cap;
        }
    }
    int ok = copy && w->n_pending < w->cap_pending;
    if (ok) {
        w->pending[w->n_pending++] = copy;
    }
    uv_mutex_unlock(&w->lock);
    if (!ok) {
        free(copy);
        snprintf(why, size, "out of memory");
        return -1;
    }
    return 0;
}

/* writer:add(entry) -> true | nil, err: a file, a folder with what is under it, or "folder/" (its
 * own entry alone), relative to the base; written in the order added. */
static int zip_writer_add(lua_State *L)
{
    struct zip_writer *w = zip_writer_check(L);
    const char *entry = luaL_checkstring(L, 2);
    char why[PATH_MAX + 128];
    if (w->zip_path) {
        return luaL_error(L, "zip writer: add after close");
    }
    if (zip_writer_queue(w, entry, why, sizeof why) < 0) {
        return prim_fail(L, "refused", why);
    }
    zip_writer_start(w);
    lua_pushboolean(L, 1);
    return 1;
}

static void zip_writer_close_cancel(struct prim_op *op)
{
    op->task = NULL; /* zip_writer_after frees it when the work ends */
}

static int zip_writer_close_push(lua_State *L, struct prim_op *op)
{
    struct zip_writer_close_op *c = (struct zip_writer_close_op *)op;
    if (c->rc < 0) {
        return prim_fail(L, "io", c->err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void zip_writer_close_free(struct prim_op *op)
{
    free(op);
}

/* writer:close(zip_path [, entries]) yields -> true | nil, err: the entries (an array, added
 * last), then the central directory; the zip is renamed to zip_path. */
static int zip_writer_close(lua_State *L)
{
    struct zip_writer *w = zip_writer_check(L);
    const char *zip_path = luaL_checkstring(L, 2);
    char abs[PATH_MAX], why[PATH_MAX + 128];
    struct host_task *t;
    struct zip_writer_close_op *c;
    lua_Integer n = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        n = luaL_len(L, 3);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, 3, i) != LUA_TSTRING) {
                return luaL_error(L, "zip writer: entries[%d] is not a string", (int)i);
            }
            lua_pop(L, 1);
        }
    }
    if (w->zip_path) {
        return luaL_error(L, "zip writer: closed twice");
    }
    t = prim_need_task(L, "zip_writer close");
    prim_write_path(L, "zip_writer", zip_path, 1, abs, sizeof abs);
    for (lua_Integer i = 1; i <= n; i++) {
        int rc;
        lua_rawgeti(L, 3, i); /* a string (checked above) */
        rc = zip_writer_queue(w, lua_tostring(L, -1), why, sizeof why);
        lua_pop(L, 1);
        if (rc < 0) {
            return prim_fail(L, "refused", why); /* still open: abort it */
        }
    }
    c = (struct zip_writer_close_op *)prim_op_new(sizeof *c, zip_writer_close_cancel,
                                                  zip_writer_close_push, zip_writer_close_free);
    char *path_copy = strdup(abs);
    if (!c || !path_copy) {
        free(c);
        free(path_copy);
        return luaL_error(L, "out of memory");
    }
    uv_mutex_lock(&w->lock);
    w->zip_path = path_copy;
    uv_mutex_unlock(&w->lock);
    w->waiter = c;
    zip_writer_start(w);
    if (!w->running) { /* the work could not start: answer now */
        w->waiter = NULL;
        zip_writer_give_up(w);
        snprintf(why, sizeof why, "%s", w->err);
        free(c);
        return prim_fail(L, "io", why);
    }
    return prim_yield(L, t, &c->op, "zip_writer close");
}

/* writer:abort(): nothing is kept (the collector does the same) */
static int zip_writer_abort(lua_State *L)
{
    struct zip_writer **box = luaL_checkudata(L, 1, ZIP_WRITER_MT);
    struct zip_writer *w = *box;
    *box = NULL;
    if (!w) {
        return 0;
    }
    if (w->running) {
        w->abandoned = 1; /* the work's end frees it */
    } else {
        zip_writer_free(w);
    }
    return 0;
}

/* host.zip_writer(base_dir) -> writer | nil, err: the temp file is made in base_dir (put the zip
 * there: close renames it). */
static int prim_zip_writer(lua_State *L)
{
    const char *base = luaL_checkstring(L, 1);
    char probe[PATH_MAX], prefix[PATH_MAX + 16], why[PATH_MAX + 128];
    struct zip_writer **box;
    struct zip_writer *w;
    if (read_rule_check(base, why, sizeof why) < 0) {
        return prim_fail(L, "refused", why);
    }
    snprintf(prefix, sizeof prefix, "%s/.bundle.zip", base);
    prim_write_path(L, "zip_writer", prefix, 1, probe, sizeof probe);
    box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL; /* the metatable (and its __gc) only once there is something to clean */
    if (luaL_newmetatable(L, ZIP_WRITER_MT)) {
        static const luaL_Reg methods[] = {{"add", zip_writer_add},
                                           {"close", zip_writer_close},
                                           {"abort", zip_writer_abort},
                                           {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, zip_writer_abort);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    w = calloc(1, sizeof *w);
    if (!w || uv_mutex_init(&w->lock) != 0) {
        free(w);
        return luaL_error(L, "out of memory");
    }
    snprintf(w->base, sizeof w->base, "%s", base);
    w->z = zipbundle_open(probe, base, why, sizeof why);
    if (!w->z) {
        uv_mutex_destroy(&w->lock);
        free(w);
        return prim_fail(L, "io", why);
    }
    *box = w;
    return 1;
}

void prim_zip_writer_register(lua_State *L)
{
    lua_pushcfunction(L, prim_zip_writer);
    lua_setfield(L, -2, "zip_writer");
}
