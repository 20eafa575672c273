/* api.c — the `host` module: every primitive Lua may call (docs/lua-api.md), and the only C
 * file besides the generation manager that touches a generation's Lua stacks. A yielding
 * primitive validates its arguments (misuse raises), starts the work on http.c or a loop timer,
 * records how to cancel it and yields with a continuation that pushes the results when the loop
 * resumes the coroutine (I/O failures return nil, err). Called from scripts; calls http.c,
 * loop.c, log.c, archive.c and host.c (tasks, bot identity). */
#include <archive.h> /* core/archive.h (+ libarchive's) */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host_gen.h"
#include "http.h"
#include "log.h"
#include "loop.h"

#define API_ERR_MT "pmb.err"
#define API_MAX_LOG_FIELDS 32
#define API_MAX_HEADERS 64

enum api_op_kind { API_OP_API, API_OP_DOWNLOAD, API_OP_HTTP, API_OP_SLEEP, API_OP_ALL };

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

/* ---- err tables ---- */

static int api_err_tostring(lua_State *L)
{
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "message");
    lua_pushfstring(L, "%s: %s", luaL_optstring(L, -2, "error"), luaL_optstring(L, -1, ""));
    return 1;
}

static void api_push_err(lua_State *L, const char *code, const char *message, long status,
                         const char *needed, const char *provided)
{
    lua_createtable(L, 0, 5); /* stack: err */
    lua_pushstring(L, code ? code : "io");
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message ? message : (code ? code : "error"));
    lua_setfield(L, -2, "message");
    if (status) {
        lua_pushinteger(L, status);
        lua_setfield(L, -2, "status");
    }
    if (needed) {
        lua_pushstring(L, needed);
        lua_setfield(L, -2, "needed");
    }
    if (provided) {
        lua_pushstring(L, provided);
        lua_setfield(L, -2, "provided");
    }
    if (luaL_newmetatable(L, API_ERR_MT)) { /* stack: err mt */
        lua_pushcfunction(L, api_err_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_setmetatable(L, -2);
}

static int api_fail(lua_State *L, const char *code, const char *message)
{
    lua_pushnil(L);
    api_push_err(L, code, message, 0, NULL, NULL);
    return 2;
}

static int api_fail_errno(lua_State *L, const char *what)
{
    char msg[PATH_MAX + 128];
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
    return api_fail(L, "io", msg);
}

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
            luaL_pushresult(&b);          /* stack: pieces key value text piece */
            lua_rawseti(L, -5, ++n);      /* pieces[n] = piece */
            lua_pop(L, 2);                /* stack: pieces key */
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

/* ---- write root ---- */

static int api_within(const char *root, const char *path)
{
    size_t n = strlen(root);
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int api_resolve_write_path(const char *root, const char *path, int mkdirs, char *out, size_t size,
                           char *err, size_t errsz)
{
    char norm[PATH_MAX], prefix[PATH_MAX], real[PATH_MAX];
    const char *p = path;
    size_t n;
    struct stat st;

    if (!root || !*path) {
        snprintf(err, errsz, "empty path");
        return -1;
    }
    /* lexical: absolute path without "." or ".." components */
    if (path[0] == '/') {
        norm[0] = '\0';
    } else {
        snprintf(norm, sizeof norm, "%s", root);
    }
    n = strlen(norm);
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            snprintf(err, errsz, "'..' is not allowed in %s", path);
            return -1;
        }
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (n + len + 2 >= sizeof norm) {
                snprintf(err, errsz, "path too long");
                return -1;
            }
            norm[n++] = '/';
            memcpy(norm + n, p, len);
            n += len;
            norm[n] = '\0';
        }
        p += len;
        if (*p == '/') {
            p++;
        }
    }
    if (!api_within(root, norm) || strcmp(root, norm) == 0) {
        snprintf(err, errsz, "%s is outside the write root %s", path, root);
        return -1;
    }
    /* every existing directory between root and the parent must resolve inside the root */
    size_t rlen = strlen(root);
    const char *last = strrchr(norm, '/');
    for (size_t i = rlen + 1; i <= (size_t)(last - norm); i++) {
        if (norm[i] != '/' && i != (size_t)(last - norm)) {
            continue;
        }
        memcpy(prefix, norm, i);
        prefix[i] = '\0';
        if (i == rlen) {
            continue;
        }
        if (lstat(prefix, &st) < 0) {
            if (!mkdirs || errno != ENOENT || mkdir(prefix, 0755) < 0) {
                snprintf(err, errsz, "%s: %s", prefix, strerror(errno));
                return -1;
            }
        }
        if (!realpath(prefix, real) || !api_within(root, real)) {
            snprintf(err, errsz, "%s resolves outside the write root %s", prefix, root);
            return -1;
        }
    }
    if (lstat(norm, &st) == 0 && S_ISLNK(st.st_mode)) {
        snprintf(err, errsz, "%s is a symbolic link", path);
        return -1;
    }
    snprintf(out, size, "%s", norm);
    return 0;
}

static const char *api_write_path(lua_State *L, const char *fn, const char *path, int mkdirs,
                                  char *out, size_t size)
{
    char err[PATH_MAX + 128];
    struct host_gen *gen = host_gen_of(L);
    if (api_resolve_write_path(gen->write_root, path, mkdirs, out, size, err, sizeof err) < 0) {
        luaL_error(L, "host.%s: %s", fn, err);
    }
    return out;
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

    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "max_bytes");
        max_bytes = (long long)luaL_optinteger(L, -1, 0);
        lua_pop(L, 1);
    }
    t = api_need_task(L, "download");
    api_write_path(L, "download", dest, 1, path, sizeof path);
    if (host_gen_of(L)->mode != HOST_MODE_RUN) {
        return api_offline(L, "download");
    }
    op = api_op_new(L, API_OP_DOWNLOAD);
    op->task = t;
    op->call = http_download(url, token ? token : "", path, max_bytes, api_http_done, op);
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
    struct host_task *t = api_need_task(L, "sleep");
    struct api_op *op = api_op_new(L, API_OP_SLEEP);
    op->task = t;
    op->timer = loop_timer_start(s < 0 ? 0 : s, api_sleep_fired, op);
    return api_yield(L, t, op, api_sleep_k);
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
        lua_createtable(gen->L, 0, 2);                            /* L: results r */
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
    op = api_op_new(L, API_OP_ALL);
    op->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, (int)n, 0); /* a copy: the caller may change fns meanwhile */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        lua_rawseti(L, -2, i);
    }
    op->fns_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    op->n = (int)n;
    op->next = 1;
    op->limit = limit < 1 ? 1 : (int)limit;
    op->task = t;
    t->op = op;
    t->cancel = api_op_cancel;
    t->after_yield = api_all_after_yield; /* children start outside the budgeted resume */
    return lua_yieldk(L, 0, 0, api_all_k);
}

/* ---- time ---- */

int api_valid_zone(const char *zone)
{
    char path[512];
    struct stat st;
    size_t len = strlen(zone);
    if (len == 0 || len > 200 || zone[0] == '/' || strstr(zone, "..")) {
        return 0;
    }
    for (const char *p = zone; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || *p == '/' || *p == '_' || *p == '-' || *p == '+';
        if (!ok) {
            return 0;
        }
    }
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", zone);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Switch the process zone to `zone` (saving the old TZ in *saved); api_zone_leave restores. */
static void api_zone_enter(const char *zone, char **saved, int *had)
{
    const char *old = getenv("TZ");
    *had = old != NULL;
    *saved = old ? strdup(old) : NULL;
    setenv("TZ", zone, 1);
    tzset();
}

static void api_zone_leave(char *saved, int had)
{
    if (had && saved) {
        setenv("TZ", saved, 1);
    } else {
        unsetenv("TZ");
    }
    free(saved);
    tzset();
}

static time_t api_check_epoch(lua_State *L, int idx)
{
    int ok = 0;
    lua_Number v = lua_tonumberx(L, idx, &ok);
    if (!ok) {
        luaL_argerror(L, idx, "epoch seconds (a number or a Slack ts string) expected");
    }
    return (time_t)v;
}

static const char *api_check_zone(lua_State *L, int idx)
{
    const char *zone = luaL_checkstring(L, idx);
    if (!api_valid_zone(zone)) {
        luaL_error(L, "unknown time zone '%s'", zone);
    }
    return zone;
}

static int api_time_parts(lua_State *L)
{
    time_t t = api_check_epoch(L, 1);
    const char *zone = api_check_zone(L, 2);
    struct tm tm;
    char abbrev[32];
    char *saved;
    int had;

    api_zone_enter(zone, &saved, &had);
    localtime_r(&t, &tm);
    snprintf(abbrev, sizeof abbrev, "%s", tm.tm_zone ? tm.tm_zone : "");
    api_zone_leave(saved, had);

    lua_createtable(L, 0, 12);
    lua_pushinteger(L, tm.tm_year + 1900);
    lua_setfield(L, -2, "year");
    lua_pushinteger(L, tm.tm_mon + 1);
    lua_setfield(L, -2, "month");
    lua_pushinteger(L, tm.tm_mday);
    lua_setfield(L, -2, "day");
    lua_pushinteger(L, tm.tm_hour);
    lua_setfield(L, -2, "hour");
    lua_pushinteger(L, tm.tm_min);
    lua_setfield(L, -2, "min");
    lua_pushinteger(L, tm.tm_sec);
    lua_setfield(L, -2, "sec");
    lua_pushinteger(L, tm.tm_wday + 1); /* as os.date: 1 = Sunday */
    lua_setfield(L, -2, "wday");
    lua_pushinteger(L, tm.tm_yday + 1);
    lua_setfield(L, -2, "yday");
    lua_pushinteger(L, tm.tm_gmtoff);
    lua_setfield(L, -2, "offset");
    lua_pushboolean(L, tm.tm_isdst > 0);
    lua_setfield(L, -2, "isdst");
    lua_pushstring(L, abbrev);
    lua_setfield(L, -2, "abbrev");
    lua_pushstring(L, zone);
    lua_setfield(L, -2, "zone");
    return 1;
}

static int api_format_time(lua_State *L)
{
    time_t t = api_check_epoch(L, 1);
    const char *zone = api_check_zone(L, 2);
    const char *fmt = luaL_checkstring(L, 3);
    struct tm tm;
    char out[1024];
    size_t n;
    char *saved;
    int had;

    if (strlen(fmt) > 256) {
        return luaL_error(L, "host.format_time: format too long");
    }
    api_zone_enter(zone, &saved, &had);
    localtime_r(&t, &tm);
    n = *fmt ? strftime(out, sizeof out, fmt, &tm) : 0;
    api_zone_leave(saved, had);
    lua_pushlstring(L, out, n);
    return 1;
}

static int api_valid_zone_l(lua_State *L)
{
    const char *zone = lua_tostring(L, 1);
    lua_pushboolean(L, zone && api_valid_zone(zone));
    return 1;
}

static int api_now(lua_State *L)
{
    lua_pushnumber(L, loop_now_wall());
    return 1;
}

static int api_monotonic(lua_State *L)
{
    lua_pushnumber(L, loop_now_mono());
    return 1;
}

/* ---- files ---- */

static int api_write_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    char abs[PATH_MAX], tmp[PATH_MAX + 16];
    int fd;
    size_t off = 0;

    api_write_path(L, "write_file", path, 1, abs, sizeof abs);
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", abs);
    fd = mkstemp(tmp);
    if (fd < 0) {
        return api_fail_errno(L, abs);
    }
    fchmod(fd, 0644);
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            close(fd);
            unlink(tmp);
            errno = e;
            return api_fail_errno(L, abs);
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 || rename(tmp, abs) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return api_fail_errno(L, abs);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int api_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char abs[PATH_MAX], real[PATH_MAX];
    struct host_gen *gen = host_gen_of(L);
    /* "dir/." resolves the parents of dir itself, creating them */
    char probe[PATH_MAX + 4];
    snprintf(probe, sizeof probe, "%s/x", path);
    api_write_path(L, "mkdir", probe, 1, abs, sizeof abs);
    *strrchr(abs, '/') = '\0';
    if (mkdir(abs, 0755) < 0 && errno != EEXIST) {
        return api_fail_errno(L, abs);
    }
    if (!realpath(abs, real) || !api_within(gen->write_root, real)) {
        return luaL_error(L, "host.mkdir: %s resolves outside the write root", path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int api_read_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_Buffer b;
    char chunk[8192];
    size_t n;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return api_fail_errno(L, path);
    }
    luaL_buffinit(L, &b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        luaL_addlstring(&b, chunk, n);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        return api_fail(L, "io", "read error");
    }
    luaL_pushresult(&b);
    return 1;
}

static int api_list_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    int k = 0;
    if (n < 0) {
        return api_fail_errno(L, path);
    }
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
            lua_pushstring(L, names[i]->d_name);
            lua_rawseti(L, -2, ++k);
        }
        free(names[i]);
    }
    free(names);
    return 1;
}

static int api_exists(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) < 0) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, S_ISDIR(st.st_mode) ? "dir" : "file");
    }
    return 1;
}

static int api_file_size(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) < 0) {
        return api_fail_errno(L, path);
    }
    lua_pushinteger(L, (lua_Integer)st.st_size);
    return 1;
}

static int api_zip(lua_State *L)
{
    const char *zip_path = luaL_checkstring(L, 1);
    const char *base = luaL_checkstring(L, 2);
    char abs[PATH_MAX], err[PATH_MAX + 128];
    const char **entries;
    lua_Integer n;
    int rc;

    luaL_checktype(L, 3, LUA_TTABLE);
    n = luaL_len(L, 3);
    api_write_path(L, "zip", zip_path, 1, abs, sizeof abs);
    /* the entry array lives in a userdata so a Lua error cannot leak it */
    entries = lua_newuserdatauv(L, sizeof *entries * (size_t)(n > 0 ? n : 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 3, i);
        if (lua_type(L, -1) != LUA_TSTRING) {
            return luaL_error(L, "host.zip: entries[%d] is not a string", (int)i);
        }
        entries[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1); /* still referenced by the entries table */
    }
    rc = archive_zip_write(abs, base, entries, (size_t)n, err, sizeof err);
    if (rc < 0) {
        return api_fail(L, "io", err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int api_sha256(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[EVP_MAX_MD_SIZE * 2 + 1];
    if (!EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL)) {
        return luaL_error(L, "host.sha256: digest failed");
    }
    for (unsigned int i = 0; i < mdlen; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    lua_pushlstring(L, hex, mdlen * 2);
    return 1;
}

/* ---- logging, identity, config ---- */

static int api_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    int level = luaL_checkoption(L, 1, NULL, levels);
    const char *msg = luaL_checkstring(L, 2);
    const char *keys[API_MAX_LOG_FIELDS], *values[API_MAX_LOG_FIELDS];
    size_t n = 0;

    lua_settop(L, 3);
    lua_newtable(L); /* 4: flat {k1, v1, k2, v2, ...}: keeps the strings alive */
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 3)) { /* stack: ... key value */
            if (n < API_MAX_LOG_FIELDS && lua_type(L, -2) == LUA_TSTRING) {
                lua_pushvalue(L, -2);
                lua_rawseti(L, 4, (lua_Integer)(2 * n + 1));
                luaL_tolstring(L, -1, NULL); /* stack: ... key value text */
                lua_rawseti(L, 4, (lua_Integer)(2 * n + 2));
                n++;
            }
            lua_pop(L, 1);
        }
    }
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 4, (lua_Integer)(2 * i + 1));
        keys[i] = lua_tostring(L, -1);
        lua_rawgeti(L, 4, (lua_Integer)(2 * i + 2));
        values[i] = lua_tostring(L, -1);
        lua_pop(L, 2); /* still referenced by table 4 */
    }
    log_eventv((enum log_level)level, msg, keys, values, n);
    return 0;
}

static int api_bot(lua_State *L)
{
    const struct bot_identity *b = host_bot();
    if (!b) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, b->user_id);
    lua_setfield(L, -2, "user_id");
    lua_pushstring(L, b->bot_id);
    lua_setfield(L, -2, "bot_id");
    lua_pushstring(L, b->team_id);
    lua_setfield(L, -2, "team_id");
    lua_pushstring(L, b->team);
    lua_setfield(L, -2, "team");
    lua_pushstring(L, b->url);
    lua_setfield(L, -2, "url");
    return 1;
}

static int api_generation(lua_State *L)
{
    lua_pushinteger(L, host_gen_of(L)->number);
    return 1;
}

static int api_config(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, host_gen_of(L)->config_ref);
    return 1;
}

static int api_templates(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, host_gen_of(L)->templates_ref); /* stack: all */
    lua_newtable(L);                                                  /* stack: all copy */
    if (lua_istable(L, -2)) {
        lua_pushnil(L);
        while (lua_next(L, -3)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4);
        }
    }
    return 1;
}

static int api_list_scripts(lua_State *L)
{
    const char *sub = luaL_checkstring(L, 1);
    struct host_gen *gen = host_gen_of(L);
    char dir[PATH_MAX];
    struct dirent **names;
    int n, k = 0;

    for (const char *p = sub; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            return luaL_error(L, "host.list_scripts: bad directory name '%s'", sub);
        }
    }
    snprintf(dir, sizeof dir, "%s/%s", gen->scripts_dir, sub);
    lua_newtable(L);
    n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        size_t len = strlen(name);
        char full[PATH_MAX + 300];
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", dir, name);
        if (name[0] != '.' && len > 4 && strcmp(name + len - 4, ".lua") == 0 &&
            stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            lua_pushfstring(L, "%s.%s", sub, name); /* "commands.help.lua" */
            lua_pushlstring(L, lua_tostring(L, -1), strlen(sub) + 1 + len - 4);
            lua_remove(L, -2);
            lua_rawseti(L, -2, ++k);
        }
        free(names[i]);
    }
    if (n >= 0) {
        free(names);
    }
    return 1;
}

static int api_getenv(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (strcmp(name, "SLACK_BOT_TOKEN") == 0 || strcmp(name, "SLACK_APP_TOKEN") == 0) {
        return luaL_error(L, "host.getenv: %s is not readable from scripts", name);
    }
    lua_pushstring(L, getenv(name));
    return 1;
}

static int api_mode(lua_State *L)
{
    enum host_mode m = host_gen_of(L)->mode;
    lua_pushstring(L, m == HOST_MODE_RUN ? "run" : m == HOST_MODE_CHECK ? "check" : "render");
    return 1;
}

/* host.task_reply_to(channel, thread_ts, label): where the host posts the failure reply if this
 * coroutine dies (an error that escaped, the CPU budget, the memory cap). Set by the router. */
static int api_task_reply_to(lua_State *L)
{
    const char *channel = luaL_checkstring(L, 1);
    const char *thread = luaL_optstring(L, 2, "");
    const char *label = luaL_optstring(L, 3, "");
    struct host_task *t = host_task_of(L);
    while (t && t->parent) {
        t = t->parent;
    }
    if (!t) {
        lua_pushboolean(L, 0);
        return 1;
    }
    snprintf(t->reply_channel, sizeof t->reply_channel, "%s", channel);
    snprintf(t->reply_thread, sizeof t->reply_thread, "%s", thread);
    snprintf(t->reply_label, sizeof t->reply_label, "%s", label);
    lua_pushboolean(L, 1);
    return 1;
}

int api_open(lua_State *L)
{
    static const luaL_Reg fns[] = {{"api", api_api},
                                   {"download", api_download},
                                   {"http", api_http},
                                   {"sleep", api_sleep},
                                   {"all", api_all},
                                   {"now", api_now},
                                   {"monotonic", api_monotonic},
                                   {"time_parts", api_time_parts},
                                   {"format_time", api_format_time},
                                   {"valid_zone", api_valid_zone_l},
                                   {"write_file", api_write_file},
                                   {"mkdir", api_mkdir},
                                   {"read_file", api_read_file},
                                   {"list_dir", api_list_dir},
                                   {"exists", api_exists},
                                   {"file_size", api_file_size},
                                   {"zip", api_zip},
                                   {"sha256", api_sha256},
                                   {"log", api_log},
                                   {"bot", api_bot},
                                   {"generation", api_generation},
                                   {"config", api_config},
                                   {"templates", api_templates},
                                   {"list_scripts", api_list_scripts},
                                   {"getenv", api_getenv},
                                   {"mode", api_mode},
                                   {"task_reply_to", api_task_reply_to},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
