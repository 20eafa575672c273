/* host_gen.c — building and closing one generation: a lua_State with the boot table, the
 * defaults-merged config (directories made absolute, zones checked, budgets read), the templates
 * and init.lua loaded and self-checked, all under a load budget. host.c calls host_gen_build at
 * start-up and on SIGHUP and host_gen_close when a generation is done; this file calls
 * sandbox.c (environment), budget.c (allocator and hook) and primitives_io.c (zone check). */
#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/host_gen.h"

/* A resume of a command yields back to the loop after this much time where it can (budget.c). */
#define HOST_SLICE_SECONDS 0.005

#define HOST_RESERVE_BYTES (2u * 1024 * 1024)

/* Run inside every generation before the scripts: config defaults and the coroutine bodies. */
static const char host_boot_lua[] =
    "local cjson, require = ...\n"
    "local boot = {}\n"
    "local DEFAULTS = {\n"
    "  scripts_dir = '../scripts', templates_dir = '../templates', log_level = 'info',\n"
    "  http = { timeout = 30, connect_timeout = 10, max_concurrent = 16, max_retries = 5,\n"
    "           max_retry_time = 120 },\n"
    "  downloads = { max_bytes = 100 * 1024 * 1024, concurrency = 4, timeout = 300,\n"
    "    allowed_hosts = { 'slack.com', '*.slack.com', 'slack-files.com', '*.slack-files.com' } "
    "},\n"
    "  budget = { cpu_seconds = 30, stretch_seconds = 2, memory_mb = 256 },\n"
    "  socket = { ping_interval = 10, pong_timeout = 20 },\n"
    "  report = { template = 'postmortem.md', templates_by_channel = {}, upload = true,\n"
    "             progress_after = 3 },\n"
    "  timeline = { alert_storm_window = 600,\n"
    "    resolution_phrases = { 'resolved', 'all clear', 'incident closed' },\n"
    "    mitigation_phrases = { 'mitigated', 'rolled back', 'rollback complete',\n"
    "                           'workaround in place' },\n"
    "    resolution_reaction = 'white_check_mark', user_cache_ttl = 3600 },\n"
    "  status = { channels = {}, broadcasters = { users = {}, usergroups = {} },\n"
    "             template = 'statusupdate.slack', webhooks = {} },\n"
    "  incident = { template = 'incident.start.slack', first_status_update = true },\n"
    "}\n"
    "local function is_array(t) return next(t) == nil or t[1] ~= nil end\n"
    "local function copy(v)\n"
    "  if type(v) ~= 'table' then return v end\n"
    "  local c = {}\n"
    "  for k, x in pairs(v) do c[k] = copy(x) end\n"
    "  return c\n"
    "end\n"
    "local function merge(cfg, defaults, prefix)\n"
    "  for k, d in pairs(defaults) do\n"
    "    local v = cfg[k]\n"
    "    if v == nil then cfg[k] = copy(d)\n"
    "    elseif type(v) ~= type(d) then\n"
    "      error(('config: %s%s must be a %s, not a %s'):format(prefix, k, type(d), type(v)), 0)\n"
    "    elseif type(d) == 'table' and not is_array(d) then merge(v, d, prefix .. k .. '.') end\n"
    "  end\n"
    "end\n"
    "function boot.prepare_config(cfg)\n"
    "  if type(cfg) ~= 'table' then error('config: the file must return a table', 0) end\n"
    "  merge(cfg, DEFAULTS, '')\n"
    "  return cfg\n"
    "end\n"
    "function boot.task_main(json)\n"
    "  local init = require 'init'\n"
    "  local ok, env = pcall(cjson.decode, json)\n"
    "  if not ok or type(env) ~= 'table' then error('envelope is not a JSON object', 0) end\n"
    "  return init.on_envelope(env)\n"
    "end\n"
    "function boot.child_main(results, i, fn)\n"
    "  local ok, v, v2 = pcall(fn)\n"
    "  if ok then results[i] = { ok = true, value = v, value2 = v2 }\n"
    "  else results[i] = { ok = false, error = v } end\n"
    "end\n"
    "function boot.render_main(opts)\n"
    "  return require('init').render(opts)\n"
    "end\n"
    "function boot.load_init()\n"
    "  local init = require 'init'\n"
    "  if type(init) ~= 'table' then error('init.lua must return a table', 0) end\n"
    "  for _, f in ipairs({ 'load', 'self_check', 'on_envelope', 'render' }) do\n"
    "    if type(init[f]) ~= 'function' then error('init.lua: init.' .. f .. ' is not a function', "
    "0) end\n"
    "  end\n"
    "  init.load()\n"
    "  local ok, errs = init.self_check()\n"
    "  if ok ~= true then\n"
    "    if type(errs) == 'table' then errs = table.concat(errs, '; ') end\n"
    "    error('self-check failed: ' .. tostring(errs or 'no reason given'), 0)\n"
    "  end\n"
    "  return init\n"
    "end\n"
    "return boot\n";

/* ---- small helpers ---- */

static char *host_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int host_mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

/* base + "/" + rel unless rel is absolute; lexical only. -1 when it does not fit. */
static int host_join(char *out, size_t size, const char *base, const char *rel)
{
    int n;
    if (rel[0] == '/') {
        n = snprintf(out, size, "%s", rel);
    } else {
        n = snprintf(out, size, "%s/%s", base, rel);
    }
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

struct host_gen *host_gen_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

/* ---- building a generation ---- */

static void host_read_templates(lua_State *L, int t, const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) {
        luaL_error(L, "templates_dir %s: %s", dir, strerror(errno));
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX], name[PATH_MAX];
        struct stat st;
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.') {
            continue;
        }
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            snprintf(name, sizeof name, "%s%s", prefix, e->d_name) >= (int)sizeof name ||
            stat(path, &st) < 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            char sub[PATH_MAX];
            if (snprintf(sub, sizeof sub, "%s/", name) < (int)sizeof sub) {
                host_read_templates(L, t, path, sub);
            }
        } else if (S_ISREG(st.st_mode) && len > 9 &&
                   strcmp(e->d_name + len - 9, ".mustache") == 0) {
            char err[PATH_MAX + 128];
            if (sandbox_push_file(L, path, err, sizeof err) < 0) {
                continue;
            }
            /* stack: ... source */
            lua_pushlstring(L, name, strlen(name) - 9); /* stack: ... source name */
            lua_insert(L, -2);                          /* stack: ... name source */
            lua_rawset(L, t);
        }
    }
    closedir(d);
}

/* Resolve a directory key of the config table (index cfg) to an absolute path. */
static const char *host_cfg_dir(lua_State *L, int cfg, const char *key, const char *config_dir,
                                const char *env_name, int must_exist, int create)
{
    char joined[PATH_MAX], real[PATH_MAX];
    const char *env = env_name ? getenv(env_name) : NULL;
    const char *v;
    char cwd[PATH_MAX];

    if (env && *env) {
        if (!getcwd(cwd, sizeof cwd)) {
            snprintf(cwd, sizeof cwd, ".");
        }
        host_join(joined, sizeof joined, cwd, env);
    } else {
        lua_getfield(L, cfg, key);
        v = lua_tostring(L, -1);
        if (!v && !must_exist) {
            if (!getcwd(cwd, sizeof cwd)) {
                snprintf(cwd, sizeof cwd, ".");
            }
            host_join(joined, sizeof joined, cwd, "var");
        } else if (!v) {
            luaL_error(L, "config: %s must be a string", key);
            return NULL;
        } else {
            host_join(joined, sizeof joined, config_dir, v);
        }
        lua_pop(L, 1);
    }
    if (create && host_mkdir_p(joined) < 0) {
        luaL_error(L, "config: %s %s cannot be created: %s", key, joined, strerror(errno));
        return NULL;
    }
    if (realpath(joined, real)) {
        lua_pushstring(L, real);
    } else if (must_exist) {
        luaL_error(L, "config: %s %s: %s", key, joined, strerror(errno));
        return NULL;
    } else {
        lua_pushstring(L, joined);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, cfg, key); /* stack: ... path */
    return lua_tostring(L, -1);
}

static void host_check_zone(lua_State *L, int cfg, const char *key)
{
    lua_getfield(L, cfg, key);
    if (!lua_isnil(L, -1)) {
        const char *z = lua_tostring(L, -1);
        if (!z || !api_valid_zone(z)) {
            luaL_error(L, "config: %s '%s' is not a known time zone (see /usr/share/zoneinfo)", key,
                       z ? z : "?");
        }
    }
    lua_pop(L, 1);
}

/* The whole load, in protected mode: upvalue-free, the generation is found from the allocator
 * and the host options arrive as the one (light userdata) argument. */
static int host_gen_load(lua_State *L)
{
    struct host_gen *gen = host_gen_of(L);
    const struct host_options *opts = lua_touserdata(L, 1);
    char config_real[PATH_MAX], config_dir[PATH_MAX];
    int cfg;

    lua_settop(L, 0);
    sandbox_open(L);

    /* boot table */
    if (luaL_loadbufferx(L, host_boot_lua, sizeof host_boot_lua - 1, "=boot", "t") != LUA_OK) {
        return lua_error(L);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "pmb.loaded");
    lua_getfield(L, -1, "cjson");
    lua_remove(L, -2);
    lua_getglobal(L, "require");
    lua_call(L, 2, 1); /* stack: boot */
    lua_pushvalue(L, -1);
    gen->boot_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    /* config: a Lua file returning a table, run with the globals visible */
    if (!realpath(gen->config_path, config_real)) {
        return luaL_error(L, "config %s: %s", gen->config_path, strerror(errno));
    }
    snprintf(config_dir, sizeof config_dir, "%s", config_real);
    *strrchr(config_dir, '/') = '\0';
    {
        char chunk[PATH_MAX + 1];
        snprintf(chunk, sizeof chunk, "@%s", gen->config_path);
        sandbox_loadfile(L, config_real, chunk); /* stack: boot fn */
    }
    lua_call(L, 0, 1); /* stack: boot cfg */
    lua_getfield(L, -2, "prepare_config");
    lua_insert(L, -2);
    lua_call(L, 1, 1); /* stack: boot cfg */
    cfg = lua_gettop(L);

    gen->scripts_dir = host_strdup(host_cfg_dir(L, cfg, "scripts_dir", config_dir, NULL, 1, 0));
    lua_pop(L, 1);
    gen->templates_dir = host_strdup(host_cfg_dir(L, cfg, "templates_dir", config_dir, NULL, 1, 0));
    lua_pop(L, 1);
    gen->data_dir = host_strdup(host_cfg_dir(
        L, cfg, "data_dir", config_dir, "POSTMORTEMBOT_DATA_DIR", 0, gen->mode == HOST_MODE_RUN));
    lua_pop(L, 1);
    if (gen->mode == HOST_MODE_RENDER && opts->write_root) {
        char abs[PATH_MAX], real[PATH_MAX], cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            snprintf(cwd, sizeof cwd, ".");
        }
        host_join(abs, sizeof abs, cwd, opts->write_root);
        if (host_mkdir_p(abs) < 0 || !realpath(abs, real)) {
            return luaL_error(L, "output directory %s: %s", abs, strerror(errno));
        }
        gen->write_root = host_strdup(real);
    } else {
        gen->write_root = host_strdup(gen->data_dir);
    }

    {
        const char *listen = getenv("POSTMORTEMBOT_LISTEN");
        if (listen && *listen) {
            lua_pushstring(L, listen);
            lua_setfield(L, cfg, "listen");
        }
    }
    lua_getfield(L, cfg, "timezone");
    if (lua_isnil(L, -1)) {
        const char *tz = getenv("TZ");
        if (tz && *tz == ':') {
            tz++;
        }
        lua_pushstring(L, tz && *tz ? tz : "UTC");
        lua_setfield(L, cfg, "timezone");
    }
    lua_pop(L, 1);
    host_check_zone(L, cfg, "timezone");
    host_check_zone(L, cfg, "second_timezone");
    lua_getfield(L, cfg, "timezone");
    gen->timezone = host_strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, cfg, "admin_channel");
    if (lua_type(L, -1) == LUA_TSTRING) {
        gen->admin_channel = host_strdup(lua_tostring(L, -1));
    }
    lua_pop(L, 1);

    lua_getfield(L, cfg, "budget"); /* stack: boot cfg budget */
    lua_getfield(L, -1, "cpu_seconds");
    lua_getfield(L, -2, "stretch_seconds");
    lua_getfield(L, -3, "memory_mb"); /* stack: boot cfg budget cpu stretch mem */
    gen->limits.cpu = lua_tonumber(L, -3);
    gen->limits.stretch = lua_tonumber(L, -2);
    gen->limits.slice = HOST_SLICE_SECONDS;
    double mb = lua_tonumber(L, -1);
    lua_pop(L, 4);
    if (!(gen->limits.cpu > 0) || !(gen->limits.stretch > 0) || !(mb > 0)) {
        return luaL_error(L, "config: budget.cpu_seconds, budget.stretch_seconds and "
                             "budget.memory_mb must be positive");
    }
    gen->mem.cap = (size_t)(mb * 1024 * 1024);

    lua_pushvalue(L, cfg);
    gen->config_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_newtable(L); /* stack: boot cfg templates */
    host_read_templates(L, lua_gettop(L), gen->templates_dir, "");
    gen->templates_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    /* scripts: init.lua and everything it loads, then the self-check */
    lua_getfield(L, cfg - 1, "load_init");
    lua_call(L, 0, 1); /* stack: boot cfg init */
    gen->init_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    return 0;
}

void host_gen_close(struct host_gen *gen)
{
    if (!gen) {
        return;
    }
    if (gen->L) {
        lua_close(gen->L);
    }
    free(gen->config_path);
    free(gen->scripts_dir);
    free(gen->templates_dir);
    free(gen->data_dir);
    free(gen->write_root);
    free(gen->admin_channel);
    free(gen->timezone);
    free(gen);
}

struct host_gen *host_gen_build(const struct host_options *opts, int number,
                                const struct host_gen *prev, char *err, size_t errsz)
{
    struct host_gen *gen = calloc(1, sizeof *gen);
    struct budget_run run;
    int rc;

    if (!gen) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    gen->number = number;
    gen->mode = opts->mode;
    gen->config_path = host_strdup(opts->config_path);
    gen->mem.cap = 256u * 1024 * 1024;
    gen->mem.reserve = HOST_RESERVE_BYTES;
    gen->limits.cpu = gen->limits.stretch = 2;
    gen->config_ref = gen->templates_ref = gen->init_ref = gen->boot_ref = LUA_NOREF;
    gen->L = lua_newstate(budget_alloc, gen);
    if (!gen->L) {
        snprintf(err, errsz, "cannot create a Lua state");
        host_gen_close(gen);
        return NULL;
    }
    /* lua_newstate leaves the main thread's extra space uninitialised, and every coroutine a
     * script creates copies it: NULL says "not a host task" (host_task_of). */
    *(struct host_task **)lua_getextraspace(gen->L) = NULL;
    lua_gc(gen->L, LUA_GCGEN, 0, 0);
    budget_install_hook(gen->L);
    /* Loading has a budget too: a script whose top level loops fails the load. Loading cannot
     * yield, so the limit is one stretch: twice the running generation's stretch bound, at least
     * 2 s, whatever the new config says. */
    double limit = prev ? 2 * prev->limits.stretch : 4;
    struct budget_limits load = {limit < 2 ? 2 : limit, limit < 2 ? 2 : limit, 0};
    budget_begin(&run, &gen->mem, gen->L, &load, 0);
    lua_pushcfunction(gen->L, host_gen_load);
    lua_pushlightuserdata(gen->L, (void *)opts);
    rc = lua_pcall(gen->L, 1, 0, 0);
    budget_end(&run);
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(gen->L, -1);
        if (run.killed) {
            snprintf(err, errsz, "%s%s%s while loading", run.where, run.where[0] ? ": " : "",
                     budget_kill_message(&run));
        } else {
            snprintf(err, errsz, "%s", msg ? msg : "(error object is not a string)");
        }
        host_gen_close(gen);
        return NULL;
    }
    budget_install_hook(gen->L); /* a kill during load would have left count=1 */
    lua_gc(gen->L, LUA_GCCOLLECT);
    return gen;
}
