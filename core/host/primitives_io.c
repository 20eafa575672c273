/* primitives_io.c — the `host` module's primitives that wait (docs/lua-api.md): api, download,
 * http, sleep, zip and all here, run in primitives_process.c, the immediate ones in
 * primitives_local.c. A waiting primitive validates its arguments (misuse raises), starts the work
 * (http.c, a loop timer, libuv's thread pool, child coroutines), and yields on a `struct prim_op`
 * whose push function prim_continue calls when the loop resumes the coroutine (I/O failures
 * return nil, err). Registered by sandbox.c (prim_open), which also adds file_writer.c's and
 * zip_writer.c's; calls http.c, loop.c, zipbundle.c and host_task.c. */
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/loop.h"
#include "base/strcopy.h"
#include "base/zipbundle.h"
#include "host/file_writer.h"
#include "host/host_gen.h"
#include "host/read_rule.h"
#include "host/signal.h"
#include "host/zip_writer.h"
#include "http/http.h"

#define PRIM_MAX_HEADERS 64

/* ---- the pending operation of a task: one continuation for every kind ---- */

/* The task of L, or raise: waiting primitives run only in a command's own coroutine. */
struct host_task *prim_need_task(lua_State *L, const char *fn)
{
    struct host_task *t = host_task_of(L);
    if (!t || !lua_isyieldable(L)) {
        luaL_error(L,
                   "host.%s yields: call it from a command (not at load time, not inside a "
                   "coroutine the script made, a metamethod, a table.sort comparator or a gsub "
                   "callback)",
                   fn);
    }
    return t;
}

/* host_task.c calls this when it aborts a waiting task (drain, shutdown, a kill). */
static void prim_cancel(struct host_task *t)
{
    struct prim_op *op = t->op;
    t->op = NULL;
    t->cancel = NULL;
    if (op) {
        op->cancel(op);
    }
}

/* Runs op->push under lua_pcall, so that prim_continue frees op before a memory error goes on. */
static int prim_push_protected(lua_State *L)
{
    struct prim_op *op = lua_touserdata(L, 1);
    lua_remove(L, 1);
    return op->push(L, op);
}

/* The one continuation: take the finished op from the task, push its results, free it. ctx is the
 * primitive's name. */
static int prim_continue(lua_State *L, int status, lua_KContext ctx)
{
    struct host_task *t = host_task_of(L);
    struct prim_op *op = t ? t->op : NULL;
    int base = lua_gettop(L);
    int rc;
    (void)status;
    if (!op) {
        return luaL_error(L, "host.%s: resumed without a result", (const char *)ctx);
    }
    t->op = NULL;
    t->cancel = NULL;
    lua_pushcfunction(L, prim_push_protected);
    lua_pushlightuserdata(L, op);
    rc = lua_pcall(L, 1, LUA_MULTRET, 0); /* stack: ... results | error */
    op->free(op);
    if (rc != LUA_OK) {
        return lua_error(L);
    }
    return lua_gettop(L) - base;
}

struct prim_op *prim_op_new(size_t size, prim_cancel_fn cancel, prim_push_fn push,
                            prim_free_fn free_fn)
{
    struct prim_op *op = calloc(1, size);
    if (op) {
        op->cancel = cancel;
        op->push = push;
        op->free = free_fn;
    }
    return op;
}

int prim_yield(lua_State *L, struct host_task *t, struct prim_op *op, const char *fn)
{
    op->task = t;
    t->op = op;
    t->cancel = prim_cancel;
    return lua_yieldk(L, 0, (lua_KContext)fn, prim_continue);
}

/* ---- HTTP: host.api, host.download, host.http (one http.c call each) ---- */

struct prim_header_copy {
    char *name, *value;
};

/* The part of a struct http_result the op keeps (http.c's copy dies with the done callback). */
struct prim_http_op {
    struct prim_op op;
    prim_push_fn push_ok; /* the primitive's results when the call succeeded */
    struct http_call *call;
    char *req_body;
    int lost; /* the result could not be copied (out of memory) */
    enum http_err err;
    long status;
    char *code, *message, *needed, *provided;
    char *body;
    size_t body_len;
    char *path, *sha256, *content_type;
    long long size;
    struct prim_header_copy *headers;
    size_t n_headers;
};

static void prim_http_free(struct prim_op *op)
{
    struct prim_http_op *h = (struct prim_http_op *)op;
    free(h->req_body);
    free(h->code);
    free(h->message);
    free(h->needed);
    free(h->provided);
    free(h->body);
    free(h->path);
    free(h->sha256);
    free(h->content_type);
    for (size_t i = 0; i < h->n_headers; i++) {
        free(h->headers[i].name);
        free(h->headers[i].value);
    }
    free(h->headers);
    free(h);
}

static void prim_http_cancel(struct prim_op *op)
{
    http_cancel(((struct prim_http_op *)op)->call);
    prim_http_free(op);
}

/* A copy of s (NULL stays NULL); sets *lost when the copy fails. */
static char *prim_dup(const char *s, int *lost)
{
    char *d = str_copy(s);
    if (s && !d) {
        *lost = 1;
    }
    return d;
}

static void prim_http_keep(struct prim_http_op *h, const struct http_result *res)
{
    h->err = res->err;
    h->status = res->status;
    h->code = prim_dup(res->code, &h->lost);
    h->message = prim_dup(res->message, &h->lost);
    h->needed = prim_dup(res->needed, &h->lost);
    h->provided = prim_dup(res->provided, &h->lost);
    h->path = prim_dup(res->path, &h->lost);
    h->sha256 = prim_dup(res->sha256_hex, &h->lost);
    h->content_type = prim_dup(res->content_type, &h->lost);
    h->size = res->size;
    if (res->body) {
        h->body = malloc(res->body_len + 1);
        if (h->body) {
            memcpy(h->body, res->body, res->body_len);
            h->body[res->body_len] = '\0';
            h->body_len = res->body_len;
        } else {
            h->lost = 1;
        }
    }
    if (res->n_headers) {
        h->headers = calloc(res->n_headers, sizeof *h->headers);
        if (!h->headers) {
            h->lost = 1;
        }
        for (size_t i = 0; h->headers && i < res->n_headers; i++) {
            h->headers[i].name = prim_dup(res->headers[i].name, &h->lost);
            h->headers[i].value = prim_dup(res->headers[i].value, &h->lost);
            h->n_headers++;
        }
    }
}

static void prim_http_done(const struct http_result *res, void *arg)
{
    struct prim_http_op *h = arg;
    h->call = NULL;
    prim_http_keep(h, res);
    host_task_resume(h->op.task, 0);
}

/* nil, err for a failed call (or a result lost to a memory shortage), else push_ok's results. */
static int prim_http_push(lua_State *L, struct prim_op *op)
{
    struct prim_http_op *h = (struct prim_http_op *)op;
    if (h->lost) {
        return prim_fail(L, "io", "out of memory while keeping the answer");
    }
    if (h->err != HTTP_OK) {
        lua_pushnil(L);
        prim_push_err(L, h->code ? h->code : http_err_code(h->err), h->message, h->status,
                      h->needed, h->provided);
        return 2;
    }
    return h->push_ok(L, op);
}

/* A new HTTP op whose results push_ok pushes, owning a copy of body (may be NULL); raises on out
 * of memory, having allocated nothing. */
static struct prim_http_op *prim_http_new(lua_State *L, prim_push_fn push_ok, const char *body,
                                          size_t len)
{
    struct prim_http_op *h = (struct prim_http_op *)prim_op_new(sizeof *h, prim_http_cancel,
                                                                prim_http_push, prim_http_free);
    char *copy = body ? malloc(len + 1) : NULL;
    if (!h || (body && !copy)) {
        free(h);
        free(copy);
        luaL_error(L, "out of memory");
        return NULL;
    }
    if (copy) {
        memcpy(copy, body, len);
        copy[len] = '\0';
    }
    h->req_body = copy;
    h->push_ok = push_ok;
    return h;
}

/* Start the yield on h, or, when http.c refused to start the call, free h and return nil, err. */
static int prim_http_wait(lua_State *L, struct host_task *t, struct prim_http_op *h, const char *fn)
{
    if (!h->call) {
        prim_http_free(&h->op);
        return prim_fail(L, "io", "could not start the request");
    }
    return prim_yield(L, t, &h->op, fn);
}

static int prim_offline(lua_State *L, const char *fn)
{
    char msg[128];
    snprintf(msg, sizeof msg, "host.%s is not available offline (%s mode)", fn,
             host_gen_of(L)->mode == HOST_MODE_CHECK ? "check" : "render");
    return prim_fail(L, "offline", msg);
}

/* ---- host.api ---- */

static void prim_form_escape_into(luaL_Buffer *b, const char *s, size_t len)
{
    char esc[3];
    for (size_t i = 0; i < len; i++) {
        luaL_addlstring(b, esc, http_form_escape_byte((unsigned char)s[i], esc));
    }
}

/* cjson.encode(value at idx) -> pushes the string, or raises with a clear message */
static void prim_json_encode(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, "pmb.loaded");
    lua_getfield(L, -1, "cjson");
    lua_getfield(L, -1, "encode"); /* stack: loaded cjson encode */
    lua_replace(L, -3);
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
}

/* params at idx -> pushes "k=v&k2=v2" (booleans true/false, tables as JSON) */
static void prim_form_encode(lua_State *L, int idx)
{
    int n = 0;
    lua_newtable(L); /* stack: pieces */
    if (lua_istable(L, idx)) {
        lua_pushnil(L);
        while (lua_next(L, idx)) { /* stack: pieces key value */
            int vt = lua_type(L, -1);
            luaL_Buffer b;
            size_t klen, vlen;
            const char *k, *v;
            if (lua_type(L, -2) != LUA_TSTRING) {
                luaL_error(L, "host.api: params keys must be strings");
                return;
            }
            if (vt == LUA_TBOOLEAN) {
                lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
            } else if (vt == LUA_TTABLE) {
                prim_json_encode(L, -1);
            } else if (vt == LUA_TSTRING || vt == LUA_TNUMBER) {
                lua_pushvalue(L, -1);
                lua_tostring(L, -1);
            } else {
                luaL_error(L, "host.api: param '%s' has type %s", lua_tostring(L, -2),
                           luaL_typename(L, -1));
                return;
            }
            /* stack: pieces key value text */
            k = lua_tolstring(L, -3, &klen);
            v = lua_tolstring(L, -1, &vlen);
            luaL_buffinit(L, &b);
            prim_form_escape_into(&b, k, klen);
            luaL_addchar(&b, '=');
            prim_form_escape_into(&b, v, vlen);
            luaL_pushresult(&b);     /* stack: pieces key value text piece */
            lua_rawseti(L, -5, ++n); /* pieces[n] = piece */
            lua_pop(L, 2);           /* stack: pieces key */
        }
    }
    int pieces = lua_gettop(L);
    luaL_Buffer all;
    luaL_buffinit(L, &all);
    for (int i = 1; i <= n; i++) {
        if (i > 1) {
            luaL_addchar(&all, '&');
        }
        lua_rawgeti(L, pieces, i);
        luaL_addvalue(&all);
    }
    luaL_pushresult(&all); /* stack: pieces body */
    lua_remove(L, -2);
}

static int prim_api_results(lua_State *L, struct prim_op *op)
{
    struct prim_http_op *h = (struct prim_http_op *)op;
    lua_getfield(L, LUA_REGISTRYINDEX, "pmb.loaded");
    lua_getfield(L, -1, "cjson");
    lua_getfield(L, -1, "decode"); /* stack: loaded cjson decode */
    lua_pushlstring(L, h->body ? h->body : "", h->body_len);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        return prim_fail(L, "bad_response", "the Web API answer is not a JSON object");
    }
    return 1;
}

static int prim_api(lua_State *L)
{
    const char *method = luaL_checkstring(L, 1);
    struct host_task *t;
    struct prim_http_op *h;
    const char *ctype = "application/x-www-form-urlencoded";
    size_t len = 0;
    const char *body;
    int json = 0;

    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
    }
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "json");
        json = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    t = prim_need_task(L, "api");
    if (host_gen_of(L)->mode != HOST_MODE_RUN) {
        return prim_offline(L, "api");
    }
    /* counted on the command's own task: host.all children are parts of it */
    host_task_command(t)->api_calls++;
    if (json) {
        ctype = "application/json; charset=utf-8";
        if (lua_istable(L, 2)) {
            prim_json_encode(L, 2);
        } else {
            lua_pushliteral(L, "{}");
        }
    } else {
        prim_form_encode(L, 2);
    }
    body = lua_tolstring(L, -1, &len);
    h = prim_http_new(L, prim_api_results, body, len);
    /* NULL: the bot token, which only http.c holds */
    h->call = http_api(method, NULL, h->req_body, len, ctype, prim_http_done, h);
    return prim_http_wait(L, t, h, "api");
}

static int prim_download_results(lua_State *L, struct prim_op *op)
{
    struct prim_http_op *h = (struct prim_http_op *)op;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, h->path ? h->path : "");
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, h->size);
    lua_setfield(L, -2, "size");
    lua_pushstring(L, h->sha256 ? h->sha256 : "");
    lua_setfield(L, -2, "sha256");
    if (h->content_type) {
        lua_pushstring(L, h->content_type);
        lua_setfield(L, -2, "content_type");
    }
    return 1;
}

static int prim_download(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    const char *dest = luaL_checkstring(L, 2);
    long long max_bytes = 0;
    char path[PATH_MAX];
    struct host_task *t;
    struct prim_http_op *h;
    int allow_private = 0;

    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "max_bytes");
        max_bytes = (long long)luaL_optinteger(L, -1, 0);
        lua_getfield(L, 3, "allow_private");
        allow_private = lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    t = prim_need_task(L, "download");
    prim_write_path(L, "download", dest, 1, path, sizeof path);
    if (host_gen_of(L)->mode != HOST_MODE_RUN) {
        return prim_offline(L, "download");
    }
    h = prim_http_new(L, prim_download_results, NULL, 0);
    h->call = http_download(url, NULL, path, max_bytes, allow_private, prim_http_done, h);
    return prim_http_wait(L, t, h, "download");
}

static int prim_http_results(lua_State *L, struct prim_op *op)
{
    struct prim_http_op *h = (struct prim_http_op *)op;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, h->status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, 0, (int)h->n_headers);
    for (size_t i = 0; i < h->n_headers; i++) {
        if (h->headers[i].name && h->headers[i].value) {
            lua_pushstring(L, h->headers[i].value);
            lua_setfield(L, -2, h->headers[i].name);
        }
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, h->body ? h->body : "", h->body_len);
    lua_setfield(L, -2, "body");
    return 1;
}

static int prim_http(lua_State *L)
{
    struct http_plain_req req;
    struct http_header headers[PRIM_MAX_HEADERS];
    struct host_task *t;
    struct prim_http_op *h;
    size_t body_len = 0;
    const char *body = NULL;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    memset(&req, 0, sizeof req);
    lua_getfield(L, 1, "method"); /* 2 */
    req.method = luaL_optstring(L, -1, "GET");
    lua_getfield(L, 1, "url"); /* 3 */
    req.url = lua_tostring(L, -1);
    if (!req.url) {
        return luaL_error(L, "host.http: url is required");
    }
    lua_getfield(L, 1, "body"); /* 4 */
    if (!lua_isnil(L, -1)) {
        body = luaL_checklstring(L, -1, &body_len);
    }
    lua_getfield(L, 1, "body_file"); /* 5 */
    req.body_file = lua_tostring(L, -1);
    lua_getfield(L, 1, "timeout"); /* 6 */
    req.timeout = luaL_optnumber(L, -1, 0);
    lua_getfield(L, 1, "retries"); /* 7 */
    req.retries = (int)luaL_optinteger(L, -1, 0);
    lua_getfield(L, 1, "allow_private"); /* 8 */
    req.allow_private = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "headers"); /* 8 */
    if (lua_istable(L, 8)) {
        lua_pushnil(L);
        while (lua_next(L, 8)) {
            if (req.n_headers == PRIM_MAX_HEADERS) {
                return luaL_error(L, "host.http: too many headers");
            }
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
                return luaL_error(L, "host.http: headers must be {name = value} strings");
            }
            /* the strings stay referenced by the headers table while we use them */
            headers[req.n_headers].name = lua_tostring(L, -2);
            headers[req.n_headers].value = lua_tostring(L, -1);
            req.n_headers++;
            lua_pop(L, 1);
        }
        req.headers = headers;
    }
    t = prim_need_task(L, "http");
    if (host_gen_of(L)->mode != HOST_MODE_RUN) {
        return prim_offline(L, "http");
    }
    char why[PATH_MAX + 128];
    if (req.body_file && read_rule_check(req.body_file, why, sizeof why) < 0) {
        return prim_fail(L, "refused", why);
    }
    h = prim_http_new(L, prim_http_results, body, body_len);
    req.body = h->req_body;
    req.body_len = body_len;
    h->call = http_request(&req, prim_http_done, h);
    return prim_http_wait(L, t, h, "http");
}

/* ---- host.sleep: a loop timer ---- */

struct prim_sleep_op {
    struct prim_op op;
    struct loop_timer *timer;
};

static void prim_sleep_free(struct prim_op *op)
{
    free(op);
}

static void prim_sleep_cancel(struct prim_op *op)
{
    loop_timer_cancel(((struct prim_sleep_op *)op)->timer);
    free(op);
}

static int prim_sleep_push(lua_State *L, struct prim_op *op)
{
    (void)L;
    (void)op;
    return 0;
}

static void prim_sleep_fired(void *arg)
{
    struct prim_sleep_op *s = arg;
    s->timer = NULL;
    host_task_resume(s->op.task, 0);
}

static int prim_sleep(lua_State *L)
{
    double seconds = luaL_checknumber(L, 1);
    luaL_argcheck(L, seconds == seconds && seconds < 1e9, 1, "a number of seconds below 1e9");
    struct host_task *t = prim_need_task(L, "sleep");
    if (seconds < 0.0005) {
        /* below the timers' millisecond: a plain yield, resumed after the loop's next I/O poll
         * (host_task.c requeues a task that yields with no op), allocating nothing */
        return lua_yield(L, 0);
    }
    struct prim_sleep_op *s = (struct prim_sleep_op *)prim_op_new(sizeof *s, prim_sleep_cancel,
                                                                  prim_sleep_push, prim_sleep_free);
    if (!s) {
        return luaL_error(L, "out of memory");
    }
    s->timer = loop_timer_start(seconds, prim_sleep_fired, s);
    if (!s->timer) {
        prim_sleep_free(&s->op);
        return luaL_error(L, "out of memory");
    }
    return prim_yield(L, t, &s->op, "sleep");
}

/* ---- host.zip: libarchive writes the bundle on libuv's thread pool; the coroutine waits ---- */

/* A running work item cannot be stopped: a cancelled zip op (task NULL) is freed by prim_zip_after
 * when the work ends. */
struct prim_zip_op {
    struct prim_op op;
    uv_work_t work;
    char zip_path[PATH_MAX];
    char *base;
    char **entries;
    size_t n;
    int rc;
    char err[PATH_MAX + 128];
};

static void prim_zip_free(struct prim_op *op)
{
    struct prim_zip_op *z = (struct prim_zip_op *)op;
    for (size_t i = 0; i < z->n; i++) {
        free(z->entries[i]);
    }
    free(z->entries);
    free(z->base);
    free(z);
}

static void prim_zip_cancel(struct prim_op *op)
{
    op->task = NULL; /* prim_zip_after frees it */
}

static void prim_zip_work(uv_work_t *w)
{
    struct prim_zip_op *z = w->data;
    z->rc = zipbundle_write(z->zip_path, z->base, (const char *const *)z->entries, z->n, z->err,
                            sizeof z->err);
}

static void prim_zip_after(uv_work_t *w, int status)
{
    struct prim_zip_op *z = w->data;
    if (!z->op.task) {
        prim_zip_free(&z->op);
        return;
    }
    if (status < 0) {
        z->rc = -1;
        snprintf(z->err, sizeof z->err, "the zip was cancelled");
    }
    host_task_resume(z->op.task, 0);
}

static int prim_zip_push(lua_State *L, struct prim_op *op)
{
    struct prim_zip_op *z = (struct prim_zip_op *)op;
    if (z->rc < 0) {
        return prim_fail(L, "io", z->err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int prim_zip(lua_State *L)
{
    const char *zip_path = luaL_checkstring(L, 1);
    const char *base = luaL_checkstring(L, 2);
    struct host_task *t;
    struct prim_zip_op *z;
    char abs[PATH_MAX];
    lua_Integer n;
    int ok;

    luaL_checktype(L, 3, LUA_TTABLE);
    n = luaL_len(L, 3);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 3, i) != LUA_TSTRING) {
            return luaL_error(L, "host.zip: entries[%d] is not a string", (int)i);
        }
        lua_pop(L, 1);
    }
    t = prim_need_task(L, "zip");
    char why[PATH_MAX + 128];
    if (read_rule_check(base, why, sizeof why) < 0) {
        return prim_fail(L, "refused", why);
    }
    for (lua_Integer i = 1; i <= n; i++) {
        char entry[PATH_MAX];
        lua_rawgeti(L, 3, i);
        snprintf(entry, sizeof entry, "%s/%s", base, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (read_rule_check(entry, why, sizeof why) < 0) {
            return prim_fail(L, "refused", why);
        }
    }
    prim_write_path(L, "zip", zip_path, 1, abs, sizeof abs);
    /* from here nothing raises until the op is freed or handed to the task */
    z = (struct prim_zip_op *)prim_op_new(sizeof *z, prim_zip_cancel, prim_zip_push, prim_zip_free);
    if (!z) {
        return luaL_error(L, "out of memory");
    }
    z->work.data = z;
    memcpy(z->zip_path, abs, sizeof z->zip_path);
    z->base = strdup(base);
    z->entries = calloc((size_t)(n > 0 ? n : 1), sizeof *z->entries);
    ok = z->base && z->entries;
    for (lua_Integer i = 1; ok && i <= n; i++) {
        lua_rawgeti(L, 3, i); /* a string (checked above): neither call allocates */
        z->entries[z->n] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        ok = z->entries[z->n] != NULL;
        z->n += ok ? 1 : 0;
    }
    if (!ok) {
        prim_zip_free(&z->op);
        return luaL_error(L, "out of memory");
    }
    if (uv_queue_work(loop_get(), &z->work, prim_zip_work, prim_zip_after) < 0) {
        prim_zip_free(&z->op);
        return prim_fail(L, "io", "could not start the zip");
    }
    return prim_yield(L, t, &z->op, "zip");
}

/* ---- host.all: child coroutines (host_task.c), at most `limit` at once ---- */

struct prim_all_op {
    struct prim_op op;
    lua_State *L; /* the generation's main state, which holds the registry refs */
    int results_ref, fns_ref;
    int n, next, running, limit, finished;
};

static void prim_all_free(struct prim_op *op)
{
    struct prim_all_op *a = (struct prim_all_op *)op;
    luaL_unref(a->L, LUA_REGISTRYINDEX, a->results_ref);
    luaL_unref(a->L, LUA_REGISTRYINDEX, a->fns_ref);
    free(a);
}

static void prim_all_cancel(struct prim_op *op)
{
    host_task_abort_children(op->task);
    prim_all_free(op);
}

static int prim_all_push(lua_State *L, struct prim_op *op)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ((struct prim_all_op *)op)->results_ref);
    return 1;
}

static void prim_all_start_next(struct prim_all_op *a)
{
    while (a->next <= a->n && a->running < a->limit) {
        int i = a->next++;
        if (host_task_spawn_child(a->op.task, a->results_ref, a->fns_ref, i)) {
            a->running++;
        } else {
            a->finished++; /* out of memory: results[i] stays nil */
        }
    }
}

/* The op of t if it is a host.all, else NULL. */
static struct prim_all_op *prim_all_of(struct host_task *t)
{
    struct prim_op *op = t ? t->op : NULL;
    return op && op->push == prim_all_push ? (struct prim_all_op *)op : NULL;
}

static void prim_all_after_yield(struct host_task *t)
{
    struct prim_all_op *a = prim_all_of(t);
    if (a) {
        prim_all_start_next(a);
        if (a->finished >= a->n) {
            host_task_resume_soon(t);
        }
    }
}

void prim_all_child_done(struct host_task *child, int ok, const char *error)
{
    struct prim_all_op *a = prim_all_of(child->parent);
    lua_State *L = child->gen->L;
    if (!a) {
        return;
    }
    if (!ok) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, a->results_ref); /* L: results */
        lua_createtable(L, 0, 2);                          /* L: results r */
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "ok");
        lua_pushstring(L, error ? error : "failed");
        lua_setfield(L, -2, "error");
        lua_rawseti(L, -2, child->child_index);
        lua_pop(L, 1);
    }
    a->running--;
    a->finished++;
    prim_all_start_next(a);
    if (a->finished >= a->n) {
        host_task_resume_soon(child->parent);
    }
}

static int prim_all(lua_State *L)
{
    struct host_task *t;
    struct prim_all_op *a;
    lua_Integer n, limit;

    luaL_checktype(L, 1, LUA_TTABLE);
    n = luaL_len(L, 1);
    limit = luaL_optinteger(L, 2, n);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 1, i) != LUA_TFUNCTION) {
            return luaL_error(L, "host.all: fns[%d] is not a function", (int)i);
        }
        lua_pop(L, 1);
    }
    t = prim_need_task(L, "all");
    lua_createtable(L, (int)n, 0); /* stack: fns limit? results */
    if (n == 0) {
        return 1;
    }
    /* every Lua allocation (which may raise) before the C op exists, so a memory error cannot
     * leak it */
    lua_createtable(L, (int)n, 0); /* a copy: the caller may change fns meanwhile */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        lua_rawseti(L, -2, i);
    }
    int fns_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    int results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    a = (struct prim_all_op *)prim_op_new(sizeof *a, prim_all_cancel, prim_all_push, prim_all_free);
    if (!a) {
        luaL_unref(L, LUA_REGISTRYINDEX, fns_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, results_ref);
        return luaL_error(L, "out of memory");
    }
    a->L = t->gen->L;
    a->results_ref = results_ref;
    a->fns_ref = fns_ref;
    a->n = (int)n;
    a->next = 1;
    a->limit = limit < 1 ? 1 : (int)limit;
    t->after_yield = prim_all_after_yield; /* children start outside the budgeted resume */
    return prim_yield(L, t, &a->op, "all");
}

int prim_open(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"api", prim_api},     {"download", prim_download}, {"http", prim_http},
        {"sleep", prim_sleep}, {"zip", prim_zip},           {"all", prim_all},
        {"run", prim_run},     {"smtp", prim_smtp},         {"db", prim_db},
        {"job", prim_job},     {"job_lost", prim_job_lost}, {NULL, NULL}};
    luaL_newlib(L, fns);
    prim_local_register(L);       /* primitives_local.c: time, files, log, identity, config */
    prim_file_writer_register(L); /* file_writer.c: a file written in pieces */
    prim_zip_writer_register(L);  /* zip_writer.c: a zip written as its files arrive */
    prim_signal_register(L);      /* signal.c: a coroutine waits until another notifies it */
    return 1;
}
