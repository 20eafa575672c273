/* primitives_io.c — the `host` module (docs/lua-api.md): its yielding primitives (api, download,
 * http, sleep, all, zip) here, the immediate ones in primitives_local.c; with the host (host.c,
 * host_gen.c, host_task.c) these are the only C files that touch a generation's Lua stacks. A
 * yielding primitive validates its arguments (misuse raises), starts the work on http.c or a loop
 * timer, records how to cancel it and yields with a continuation that pushes the results when the
 * loop resumes the coroutine (I/O failures return nil, err). Called from scripts; calls http.c,
 * loop.c, log.c, zipbundle.c (on libuv's thread pool), host_task.c (tasks) and host.c (bot
 * identity). */
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/zipbundle.h"
#include "host/host_gen.h"
#include "host/read_rule.h"
#include "http/http.h"

#define API_MAX_HEADERS 64

enum api_op_kind { API_OP_API, API_OP_DOWNLOAD, API_OP_HTTP, API_OP_SLEEP, API_OP_ALL, API_OP_ZIP };

struct api_zip_job;

struct api_header_copy {
    char *name, *value;
};

/* One pending primitive of a task. Owned by the task while it waits (t->op); freed by the
 * continuation after it pushed the results, or by api_op_cancel. */
struct api_op {
    enum api_op_kind kind;
    struct host_task *task;
    struct http_call *call;
    struct loop_timer *timer;
    struct api_zip_job *zip_job; /* host.zip running on the thread pool */
    char *req_body;
    /* results */
    enum http_err err;
    long status;
    char *code, *message, *needed, *provided;
    char *body;
    size_t body_len;
    char *path, *sha256, *content_type;
    long long size;
    struct api_header_copy *headers;
    size_t n_headers;
    /* host.all */
    int results_ref, fns_ref;
    int n, next, running, limit, finished;
};

/* ---- ops ---- */

static struct api_op *api_op_new(lua_State *L, enum api_op_kind kind)
{
    struct api_op *op = calloc(1, sizeof *op);
    if (!op) {
        luaL_error(L, "out of memory");
        return NULL;
    }
    op->kind = kind;
    op->results_ref = op->fns_ref = LUA_NOREF;
    return op;
}

static void api_op_free(struct api_op *op)
{
    if (!op) {
        return;
    }
    free(op->req_body);
    free(op->code);
    free(op->message);
    free(op->needed);
    free(op->provided);
    free(op->body);
    free(op->path);
    free(op->sha256);
    free(op->content_type);
    for (size_t i = 0; i < op->n_headers; i++) {
        free(op->headers[i].name);
        free(op->headers[i].value);
    }
    free(op->headers);
    free(op);
}

static void api_zip_orphan(struct api_zip_job *job);

static void api_op_cancel(struct host_task *t)
{
    struct api_op *op = t->op;
    t->op = NULL;
    t->cancel = NULL;
    if (!op) {
        return;
    }
    if (op->call) {
        http_cancel(op->call);
    }
    if (op->timer) {
        loop_timer_cancel(op->timer);
    }
    if (op->zip_job) {
        api_zip_orphan(op->zip_job); /* a running work item cannot be stopped: it frees itself */
    }
    if (op->kind == API_OP_ALL) {
        host_task_abort_children(t);
        luaL_unref(t->gen->L, LUA_REGISTRYINDEX, op->results_ref);
        luaL_unref(t->gen->L, LUA_REGISTRYINDEX, op->fns_ref);
    }
    api_op_free(op);
}

/* The task of L, or raise: yielding primitives run only in a command's own coroutine. */
static struct host_task *api_need_task(lua_State *L, const char *fn)
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

static int api_yield(lua_State *L, struct host_task *t, struct api_op *op, lua_KFunction k)
{
    op->task = t;
    t->op = op;
    t->cancel = api_op_cancel;
    return lua_yieldk(L, 0, 0, k);
}

/* Take the finished op back from the task (inside the continuation). */
static struct api_op *api_take_op(lua_State *L)
{
    struct host_task *t = host_task_of(L);
    struct api_op *op = t ? t->op : NULL;
    if (t) {
        t->op = NULL;
        t->cancel = NULL;
    }
    return op;
}

static char *api_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void api_copy_result(struct api_op *op, const struct http_result *res)
{
    op->call = NULL;
    op->err = res->err;
    op->status = res->status;
    op->code = api_dup(res->code);
    op->message = api_dup(res->message);
    op->needed = api_dup(res->needed);
    op->provided = api_dup(res->provided);
    if (res->body && op->kind != API_OP_DOWNLOAD) {
        op->body = malloc(res->body_len + 1);
        if (op->body) {
            memcpy(op->body, res->body, res->body_len);
            op->body[res->body_len] = '\0';
            op->body_len = res->body_len;
        }
    }
    op->path = api_dup(res->path);
    op->sha256 = api_dup(res->sha256_hex);
    op->content_type = api_dup(res->content_type);
    op->size = res->size;
    if (res->n_headers) {
        op->headers = calloc(res->n_headers, sizeof *op->headers);
        for (size_t i = 0; op->headers && i < res->n_headers; i++) {
            op->headers[i].name = api_dup(res->headers[i].name);
            op->headers[i].value = api_dup(res->headers[i].value);
            op->n_headers++;
        }
    }
}

static void api_http_done(const struct http_result *res, void *arg)
{
    struct api_op *op = arg;
    api_copy_result(op, res);
    host_task_resume(op->task, 0);
}

/* ---- results ---- */

static int api_push_op_err(lua_State *L, struct api_op *op)
{
    lua_pushnil(L);
    api_push_err(L, op->code ? op->code : http_err_code(op->err), op->message, op->status,
                 op->needed, op->provided);
    api_op_free(op);
    return 2;
}

static int api_offline(lua_State *L, const char *fn)
{
    char msg[128];
    snprintf(msg, sizeof msg, "host.%s is not available offline (%s mode)", fn,
             host_gen_of(L)->mode == HOST_MODE_CHECK ? "check" : "render");
    return api_fail(L, "offline", msg);
}

/* ---- host.api ---- */

static void api_form_escape_into(luaL_Buffer *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            luaL_addchar(b, (char)c);
        } else if (c == ' ') {
            luaL_addchar(b, '+');
        } else {
            luaL_addchar(b, '%');
            luaL_addchar(b, hex[c >> 4]);
            luaL_addchar(b, hex[c & 15]);
        }
    }
}

/* cjson.encode(value at idx) -> pushes the string, or raises with a clear message */
static void api_json_encode(lua_State *L, int idx)
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
static void api_form_encode(lua_State *L, int idx)
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
                api_json_encode(L, -1);
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
            api_form_escape_into(&b, k, klen);
            luaL_addchar(&b, '=');
            api_form_escape_into(&b, v, vlen);
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

static int api_api_k(lua_State *L, int status, lua_KContext ctx)
{
    struct api_op *op = api_take_op(L);
    (void)status;
    (void)ctx;
    if (!op) {
        return luaL_error(L, "host.api: resumed without a result");
    }
    if (op->err != HTTP_OK) {
        return api_push_op_err(L, op);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "pmb.loaded");
    lua_getfield(L, -1, "cjson");
    lua_getfield(L, -1, "decode"); /* stack: loaded cjson decode */
    lua_pushlstring(L, op->body ? op->body : "", op->body_len);
    api_op_free(op);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        return api_fail(L, "bad_response", "the Web API answer is not a JSON object");
    }
    return 1;
}

static int api_api(lua_State *L)
{
    const char *method = luaL_checkstring(L, 1);
    struct host_task *t;
    struct api_op *op;
    const char *ctype = "application/x-www-form-urlencoded";
    const char *token = getenv("SLACK_BOT_TOKEN");
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
    t = api_need_task(L, "api");
    if (host_gen_of(L)->mode != HOST_MODE_RUN) {
        return api_offline(L, "api");
    }
    if (json) {
        ctype = "application/json; charset=utf-8";
        if (lua_istable(L, 2)) {
            api_json_encode(L, 2);
        } else {
            lua_pushliteral(L, "{}");
        }
    } else {
        api_form_encode(L, 2);
    }
    body = lua_tolstring(L, -1, &len);
    op = api_op_new(L, API_OP_API);
    op->req_body = malloc(len + 1);
    if (!op->req_body) {
        api_op_free(op);
        return luaL_error(L, "out of memory");
    }
    memcpy(op->req_body, body, len + 1);
    op->task = t;
    op->call = http_api(method, token ? token : "", op->req_body, len, ctype, api_http_done, op);
    if (!op->call) {
        api_op_free(op);
        return api_fail(L, "io", "could not start the request");
    }
    return api_yield(L, t, op, api_api_k);
}

/* ---- host.download ---- */

static int api_download_k(lua_State *L, int status, lua_KContext ctx)
{
    struct api_op *op = api_take_op(L);
    (void)status;
    (void)ctx;
    if (!op) {
        return luaL_error(L, "host.download: resumed without a result");
    }
    if (op->err != HTTP_OK) {
        return api_push_op_err(L, op);
    }
    lua_createtable(L, 0, 4);
    lua_pushstring(L, op->path ? op->path : "");
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, op->size);
    lua_setfield(L, -2, "size");
    lua_pushstring(L, op->sha256 ? op->sha256 : "");
    lua_setfield(L, -2, "sha256");
    if (op->content_type) {
        lua_pushstring(L, op->content_type);
        lua_setfield(L, -2, "content_type");
    }
    api_op_free(op);
    return 1;
}

static int api_download(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    const char *dest = luaL_checkstring(L, 2);
    long long max_bytes = 0;
    char path[PATH_MAX];
    struct host_task *t;
    struct api_op *op;
    const char *token = getenv("SLACK_BOT_TOKEN");
    int allow_private = 0;

    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "max_bytes");
        max_bytes = (long long)luaL_optinteger(L, -1, 0);
        lua_getfield(L, 3, "allow_private");
        allow_private = lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    t = api_need_task(L, "download");
    api_write_path(L, "download", dest, 1, path, sizeof path);
    if (host_gen_of(L)->mode != HOST_MODE_RUN) {
        return api_offline(L, "download");
    }
    op = api_op_new(L, API_OP_DOWNLOAD);
    op->task = t;
    op->call =
        http_download(url, token ? token : "", path, max_bytes, allow_private, api_http_done, op);
    if (!op->call) {
        api_op_free(op);
        return api_fail(L, "io", "could not start the download");
    }
    return api_yield(L, t, op, api_download_k);
}

/* ---- host.http ---- */

static int api_http_k(lua_State *L, int status, lua_KContext ctx)
{
    struct api_op *op = api_take_op(L);
    (void)status;
    (void)ctx;
    if (!op) {
        return luaL_error(L, "host.http: resumed without a result");
    }
    if (op->err != HTTP_OK) {
        return api_push_op_err(L, op);
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, op->status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, 0, (int)op->n_headers);
    for (size_t i = 0; i < op->n_headers; i++) {
        if (op->headers[i].name && op->headers[i].value) {
            lua_pushstring(L, op->headers[i].value);
            lua_setfield(L, -2, op->headers[i].name);
        }
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, op->body ? op->body : "", op->body_len);
    lua_setfield(L, -2, "body");
    api_op_free(op);
    return 1;
}

static int api_http(lua_State *L)
{
    struct http_plain_req req;
    struct http_header headers[API_MAX_HEADERS];
    struct host_task *t;
    struct api_op *op;
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
            if (req.n_headers == API_MAX_HEADERS) {
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
    t = api_need_task(L, "http");
    if (host_gen_of(L)->mode != HOST_MODE_RUN) {
        return api_offline(L, "http");
    }
    char why[PATH_MAX + 128];
    if (req.body_file && read_rule_check(req.body_file, why, sizeof why) < 0) {
        return api_fail(L, "refused", why);
    }
    op = api_op_new(L, API_OP_HTTP);
    if (body) {
        op->req_body = malloc(body_len + 1);
        if (!op->req_body) {
            api_op_free(op);
            return luaL_error(L, "out of memory");
        }
        memcpy(op->req_body, body, body_len);
        req.body = op->req_body;
        req.body_len = body_len;
    }
    op->task = t;
    op->call = http_request(&req, api_http_done, op);
    if (!op->call) {
        api_op_free(op);
        return api_fail(L, "io", "could not start the request");
    }
    return api_yield(L, t, op, api_http_k);
}

/* ---- host.sleep ---- */

static void api_sleep_fired(void *arg)
{
    struct api_op *op = arg;
    op->timer = NULL;
    host_task_resume(op->task, 0);
}

static int api_sleep_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    api_op_free(api_take_op(L));
    return 0;
}

static int api_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s == s && s < 1e9, 1, "a number of seconds below 1e9");
    struct host_task *t = api_need_task(L, "sleep");
    struct api_op *op = api_op_new(L, API_OP_SLEEP);
    op->task = t;
    op->timer = loop_timer_start(s < 0 ? 0 : s, api_sleep_fired, op);
    return api_yield(L, t, op, api_sleep_k);
}

/* ---- host.zip: libarchive writes the bundle on libuv's thread pool; the coroutine waits ---- */

struct api_zip_job {
    uv_work_t work;
    struct api_op *op; /* NULL once the task was cancelled: the job then only frees itself */
    char zip_path[PATH_MAX];
    char *base;
    char **entries;
    size_t n;
    int rc;
    char err[PATH_MAX + 128];
};

static void api_zip_job_free(struct api_zip_job *job)
{
    for (size_t i = 0; i < job->n; i++) {
        free(job->entries[i]);
    }
    free(job->entries);
    free(job->base);
    free(job);
}

static void api_zip_orphan(struct api_zip_job *job)
{
    job->op = NULL;
}

static void api_zip_work(uv_work_t *w)
{
    struct api_zip_job *job = w->data;
    job->rc = zipbundle_write(job->zip_path, job->base, (const char *const *)job->entries, job->n,
                              job->err, sizeof job->err);
}

static void api_zip_after(uv_work_t *w, int status)
{
    struct api_zip_job *job = w->data;
    struct api_op *op = job->op;
    if (op) {
        op->zip_job = NULL;
        if (status < 0 || job->rc < 0) {
            op->err = HTTP_ERR_IO;
            op->code = strdup("io");
            op->message = strdup(status < 0 ? "the zip was cancelled" : job->err);
        }
        host_task_resume(op->task, 0);
    }
    api_zip_job_free(job);
}

static int api_zip_k(lua_State *L, int status, lua_KContext ctx)
{
    struct api_op *op = api_take_op(L);
    (void)status;
    (void)ctx;
    if (!op) {
        return luaL_error(L, "host.zip: resumed without a result");
    }
    if (op->code) {
        return api_push_op_err(L, op);
    }
    api_op_free(op);
    lua_pushboolean(L, 1);
    return 1;
}

static int api_zip(lua_State *L)
{
    const char *zip_path = luaL_checkstring(L, 1);
    const char *base = luaL_checkstring(L, 2);
    struct host_task *t;
    struct api_zip_job *job;
    struct api_op *op;
    char abs[PATH_MAX];
    lua_Integer n;

    luaL_checktype(L, 3, LUA_TTABLE);
    n = luaL_len(L, 3);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 3, i) != LUA_TSTRING) {
            return luaL_error(L, "host.zip: entries[%d] is not a string", (int)i);
        }
        lua_pop(L, 1);
    }
    t = api_need_task(L, "zip");
    char why[PATH_MAX + 128];
    if (read_rule_check(base, why, sizeof why) < 0) {
        return api_fail(L, "refused", why);
    }
    for (lua_Integer i = 1; i <= n; i++) {
        char entry[PATH_MAX];
        lua_rawgeti(L, 3, i);
        snprintf(entry, sizeof entry, "%s/%s", base, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (read_rule_check(entry, why, sizeof why) < 0) {
            return api_fail(L, "refused", why);
        }
    }
    api_write_path(L, "zip", zip_path, 1, abs,
                   sizeof abs); /* raises before anything is allocated */
    job = calloc(1, sizeof *job);
    if (!job) {
        return luaL_error(L, "out of memory");
    }
    memcpy(job->zip_path, abs, sizeof job->zip_path);
    job->base = strdup(base);
    job->entries = calloc((size_t)(n > 0 ? n : 1), sizeof *job->entries);
    for (lua_Integer i = 1; job->entries && i <= n; i++) {
        lua_rawgeti(L, 3, i);
        job->entries[job->n++] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    op = api_op_new(L, API_OP_ZIP);
    op->zip_job = job;
    job->op = op;
    job->work.data = job;
    if (!job->base || !job->entries ||
        uv_queue_work(loop_get(), &job->work, api_zip_work, api_zip_after) < 0) {
        api_zip_job_free(job);
        op->zip_job = NULL;
        api_op_free(op);
        return api_fail(L, "io", "could not start the zip");
    }
    return api_yield(L, t, op, api_zip_k);
}

/* ---- host.all ---- */

static int api_all_k(lua_State *L, int status, lua_KContext ctx)
{
    struct api_op *op = api_take_op(L);
    struct host_gen *gen = host_gen_of(L);
    (void)status;
    (void)ctx;
    if (!op) {
        return luaL_error(L, "host.all: resumed without a result");
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, op->results_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, op->results_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, op->fns_ref);
    (void)gen;
    api_op_free(op);
    return 1;
}

static void api_all_start_next(struct api_op *op)
{
    while (op->next <= op->n && op->running < op->limit) {
        int i = op->next++;
        if (host_task_spawn_child(op->task, op->results_ref, op->fns_ref, i)) {
            op->running++;
        } else {
            op->finished++; /* out of memory: results[i] stays nil */
        }
    }
}

static void api_all_after_yield(struct host_task *t)
{
    struct api_op *op = t->op;
    if (op && op->kind == API_OP_ALL) {
        api_all_start_next(op);
        if (op->finished >= op->n) {
            host_task_resume_soon(t);
        }
    }
}

void api_child_done(struct host_task *child, int ok, const char *error)
{
    struct host_task *parent = child->parent;
    struct api_op *op = parent ? parent->op : NULL;
    struct host_gen *gen = child->gen;
    if (!op || op->kind != API_OP_ALL) {
        return;
    }
    if (!ok) {
        lua_rawgeti(gen->L, LUA_REGISTRYINDEX, op->results_ref); /* L: results */
        lua_createtable(gen->L, 0, 2);                           /* L: results r */
        lua_pushboolean(gen->L, 0);
        lua_setfield(gen->L, -2, "ok");
        lua_pushstring(gen->L, error ? error : "failed");
        lua_setfield(gen->L, -2, "error");
        lua_rawseti(gen->L, -2, child->child_index);
        lua_pop(gen->L, 1);
    }
    op->running--;
    op->finished++;
    api_all_start_next(op);
    if (op->finished >= op->n) {
        host_task_resume_soon(parent);
    }
}

static int api_all(lua_State *L)
{
    struct host_task *t;
    struct api_op *op;
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
    t = api_need_task(L, "all");
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
    op = calloc(1, sizeof *op);
    if (!op) {
        luaL_unref(L, LUA_REGISTRYINDEX, fns_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, results_ref);
        return luaL_error(L, "out of memory");
    }
    op->kind = API_OP_ALL;
    op->results_ref = results_ref;
    op->fns_ref = fns_ref;
    op->n = (int)n;
    op->next = 1;
    op->limit = limit < 1 ? 1 : (int)limit;
    op->task = t;
    t->op = op;
    t->cancel = api_op_cancel;
    t->after_yield = api_all_after_yield; /* children start outside the budgeted resume */
    return lua_yieldk(L, 0, 0, api_all_k);
}

int api_open(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"api", api_api}, {"download", api_download}, {"http", api_http}, {"sleep", api_sleep},
        {"zip", api_zip}, {"all", api_all},           {NULL, NULL}};
    luaL_newlib(L, fns);
    api_local_register(L); /* primitives_local.c: time, files, log, identity, config */
    return 1;
}
