/* sandbox.c — the environment scripts see in a generation (docs/lua-api.md "The sandbox"):
 * the safe standard library, os.time/clock/date/difftime, debug.traceback only, print that logs,
 * and a `require` that loads text chunks from scripts_dir only (plus `host` and `cjson`).
 * host_gen.c calls sandbox_open when it builds a generation; primitives_io.c supplies the `host`
 * module. */
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua-cjson.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "host/host_gen.h"
#include "host/lua_patterns.h"

#define SANDBOX_LOADED "pmb.loaded"

static const char *const sandbox_base_allowed[] = {
    "assert",       "error",        "ipairs",   "next",     "pairs",  "pcall",
    "xpcall",       "rawequal",     "rawget",   "rawlen",   "rawset", "select",
    "setmetatable", "getmetatable", "tonumber", "tostring", "type",   "_G",
    "_VERSION",     "string",       "table",    "math",     "utf8",   "coroutine",
    "os",           "debug",        NULL};

int sandbox_push_file(lua_State *L, const char *path, char *err, size_t errsz)
{
    struct stat st;
    FILE *f;
    char *buf;
    size_t n;
    int bad;

    if (stat(path, &st) < 0) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errsz, "%s: not a regular file", path);
        return -1;
    }
    /* the buffer is a userdata made BEFORE the file is opened: a memory error (a longjmp) can
     * then never leak the FILE */
    buf = lua_newuserdatauv(L, st.st_size > 0 ? (size_t)st.st_size : 1, 0);
    f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        lua_pop(L, 1);
        return -1;
    }
    n = fread(buf, 1, (size_t)st.st_size, f);
    bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errsz, "%s: read error", path);
        lua_pop(L, 1);
        return -1;
    }
    lua_pushlstring(L, buf, n); /* stack: buf string */
    lua_remove(L, -2);
    return 0;
}

void sandbox_loadfile(lua_State *L, const char *path, const char *chunkname)
{
    char err[PATH_MAX + 128];
    size_t len;
    if (sandbox_push_file(L, path, err, sizeof err) < 0) {
        luaL_error(L, "cannot open %s", err);
        return;
    }
    const char *src = lua_tolstring(L, -1, &len); /* stack: source */
    if (luaL_loadbufferx(L, src, len, chunkname, "t") != LUA_OK) {
        lua_error(L); /* message has chunkname:line */
    }
    lua_remove(L, -2); /* stack: fn */
}

/* coroutine.resume / coroutine.close, refusing the coroutines the host runs (a command's task or
 * a host.all child): only the host may resume those, when their I/O has finished. While one runs,
 * budget.c knows it (its ticks arm that coroutine's hook too). Upvalue 1 is the original
 * function, upvalue 2 its name. */
static int sandbox_guarded_coroutine_fn(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    if (co && host_task_of(co)) {
        return luaL_error(L,
                          "%s: this coroutine is run by the host (a command or a host.all "
                          "function); only the host resumes it",
                          lua_tostring(L, lua_upvalueindex(2)));
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_State *prev = budget_enter_coroutine(co);
    int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    budget_leave_coroutine(prev);
    if (rc != LUA_OK) {
        return lua_error(L);
    }
    return lua_gettop(L);
}

/* The function coroutine.wrap returns: resumes its coroutine (upvalue 1) as coroutine.resume
 * does, hands back what it yields or returns, and raises what it raised, with where it was
 * called from, as Lua's own wrap does. Written here so that budget.c knows the coroutine runs. */
static int sandbox_wrapped_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int nargs = lua_gettop(L);
    int nres = 0;
    if (!lua_checkstack(co, nargs)) {
        return luaL_error(L, "too many arguments to resume");
    }
    lua_xmove(L, co, nargs);
    lua_State *prev = budget_enter_coroutine(co);
    int status = lua_resume(co, L, nargs, &nres);
    budget_leave_coroutine(prev);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    /* the error object (a dead coroutine, or one running or resuming another, says so through
     * lua_resume; co may be L itself, the value is then there already) */
    lua_xmove(co, L, 1);
    status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) {
        /* an error inside: close its to-be-closed variables (an error there wins) */
        status = lua_resetthread(co);
        lua_xmove(co, L, 1);
    }
    if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int sandbox_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, sandbox_wrapped_resume, 1);
    return 1;
}

/* table.sort runs in C where no hook fires, so its time is bounded by its size instead: a
 * million elements sort in well under the stretch bound. Upvalue 1 is the original. */
#define SANDBOX_SORT_MAX 1000000

static int sandbox_bounded_sort(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Unsigned n = lua_rawlen(L, 1);
    if (n > SANDBOX_SORT_MAX) {
        return luaL_error(L,
                          "table.sort: %I elements is more than one call may sort here (%d): a "
                          "sort cannot be interrupted, so it is bounded by size",
                          (lua_Integer)n, SANDBOX_SORT_MAX);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

static void sandbox_bound_sort(lua_State *L)
{
    lua_getglobal(L, "table");   /* stack: table */
    lua_getfield(L, -1, "sort"); /* stack: table sort */
    lua_pushcclosure(L, sandbox_bounded_sort, 1);
    lua_setfield(L, -2, "sort");
    lua_pop(L, 1);
}

static void sandbox_guard_coroutines(lua_State *L)
{
    static const char *const names[] = {"resume", "close", NULL};
    lua_getglobal(L, "coroutine"); /* stack: co */
    for (size_t i = 0; names[i]; i++) {
        lua_getfield(L, -1, names[i]); /* stack: co original */
        lua_pushfstring(L, "coroutine.%s", names[i]);
        lua_pushcclosure(L, sandbox_guarded_coroutine_fn, 2);
        lua_setfield(L, -2, names[i]);
    }
    lua_pushcfunction(L, sandbox_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
}

static int sandbox_valid_module_name(const char *name)
{
    if (!*name || name[0] == '.') {
        return 0;
    }
    for (const char *p = name; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '_' || *p == '-' || *p == '.';
        if (!ok || (p[0] == '.' && p[1] == '.')) {
            return 0;
        }
    }
    return 1;
}

/* require(name): "host", "cjson", else scripts_dir/name.lua or scripts_dir/name/init.lua */
int sandbox_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    struct host_gen *gen = host_gen_of(L);
    char rel[512], path[1024], chunkname[600];
    const char *base;

    lua_settop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_LOADED); /* stack: name loaded */
    lua_getfield(L, 2, name);                           /* stack: name loaded mod */
    if (!lua_isnil(L, -1)) {
        return 1;
    }
    lua_pop(L, 1);
    if (!sandbox_valid_module_name(name)) {
        return luaL_error(L, "require: bad module name '%s'", name);
    }
    snprintf(rel, sizeof rel, "%s", name);
    for (char *p = rel; *p; p++) {
        if (*p == '.') {
            *p = '/';
        }
    }
    base = strrchr(gen->scripts_dir, '/');
    base = base ? base + 1 : gen->scripts_dir;
    snprintf(path, sizeof path, "%s/%s.lua", gen->scripts_dir, rel);
    snprintf(chunkname, sizeof chunkname, "@%s/%s.lua", base, rel);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        snprintf(path, sizeof path, "%s/%s/init.lua", gen->scripts_dir, rel);
        snprintf(chunkname, sizeof chunkname, "@%s/%s/init.lua", base, rel);
        probe = fopen(path, "rb");
    }
    if (!probe) {
        return luaL_error(L, "module '%s' not found (looked for %s/%s.lua and %s/%s/init.lua)",
                          name, base, rel, base, rel);
    }
    fclose(probe);
    sandbox_loadfile(L, path, chunkname); /* stack: name loaded fn */
    lua_pushvalue(L, 1);
    lua_pushstring(L, path);
    lua_call(L, 2, 1); /* stack: name loaded result */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name); /* loaded[name] = result */
    return 1;
}

/* print(...) = host.log("info", ...) */
static int sandbox_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        luaL_tolstring(L, i, NULL);
        if (i > 1) {
            luaL_addchar(&b, '\t');
        }
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    const char *keys[] = {"text"};
    const char *values[] = {lua_tostring(L, -1)};
    log_eventv(LOG_INFO, "print", keys, values, 1);
    return 0;
}

/* load(chunk [, chunkname [, mode [, env]]]): Lua's load for text only. A binary chunk is refused
 * whatever the mode says (a forged one can crash the VM); a string chunk only (no reader function).
 * lib/mustache_compile.lua turns templates into code with it. */
static int sandbox_load(lua_State *L)
{
    size_t len;
    const char *src = luaL_checklstring(L, 1, &len);
    const char *chunkname = luaL_optstring(L, 2, "=(load)");
    int has_env = !lua_isnone(L, 4);
    if (luaL_loadbufferx(L, src, len, chunkname, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2); /* stack: ... fail message */
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1)) { /* a chunk's first upvalue is its _ENV */
            lua_pop(L, 1);
        }
    }
    return 1;
}

static void sandbox_keep_only(lua_State *L, const char *lib, const char *const *keep)
{
    lua_getglobal(L, lib); /* stack: lib */
    lua_newtable(L);       /* stack: lib new */
    for (size_t i = 0; keep[i]; i++) {
        lua_getfield(L, -2, keep[i]);
        lua_setfield(L, -2, keep[i]);
    }
    lua_setglobal(L, lib);
    lua_pop(L, 1);
}

int sandbox_open(lua_State *L)
{
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                    {LUA_COLIBNAME, luaopen_coroutine},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_OSLIBNAME, luaopen_os},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8},
                                    {LUA_DBLIBNAME, luaopen_debug},
                                    {NULL, NULL}};
    static const char *const os_keep[] = {"time", "clock", "date", "difftime", NULL};
    static const char *const debug_keep[] = {"traceback", NULL};

    for (const luaL_Reg *l = libs; l->func; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    sandbox_keep_only(L, "os", os_keep);
    sandbox_keep_only(L, "debug", debug_keep);
    sandbox_guard_coroutines(L);
    sandbox_bound_sort(L);
    /* string.find/match/gmatch/gsub (and s:find...): Lua's own results, but a long match checks
     * the budget as it goes, so a backtracking pattern ends the command instead of the loop */
    lua_patterns_set_check(budget_check);
    lua_getglobal(L, "string"); /* stack: string */
    lua_patterns_register(L);
    lua_pop(L, 1);

    /* drop every global not on the list (load, dofile, loadfile, collectgarbage, warn, ...) */
    lua_pushglobaltable(L); /* stack: G */
    lua_newtable(L);        /* stack: G kept */
    for (size_t i = 0; sandbox_base_allowed[i]; i++) {
        lua_getfield(L, -2, sandbox_base_allowed[i]);
        lua_setfield(L, -2, sandbox_base_allowed[i]);
    }
    lua_pushnil(L); /* clear G */
    while (lua_next(L, -3)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, -5);
    }
    lua_pushnil(L); /* copy kept back */
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -5);
    }
    lua_pop(L, 2);

    /* module cache shared by require: host and cjson are built in */
    lua_newtable(L); /* stack: loaded */
    prim_open(L);
    lua_setfield(L, -2, "host");
    luaopen_cjson(L);
    lua_setfield(L, -2, "cjson");
    lua_setfield(L, LUA_REGISTRYINDEX, SANDBOX_LOADED);

    lua_register(L, "require", sandbox_require);
    lua_register(L, "print", sandbox_print);
    lua_register(L, "load", sandbox_load);
    return 0;
}
