/* host.c — the Lua host: builds generations (config + scripts + templates in one lua_State,
 * loaded and self-checked under a budget), runs each Socket Mode envelope in a new coroutine of
 * the current generation, swaps generations on SIGHUP only when the new one loads completely,
 * closes an old generation when its last coroutine ends, and posts failure replies for
 * coroutines that die (budget kills included). main.c calls the host_* API of host.h; the
 * primitives Lua calls are in api.c, budgets in budget.c, the environment in sandbox.c. */
#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host_gen.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"

#define HOST_DEFAULT_CONFIG "config/postmortembot.lua"
#define HOST_RESERVE_BYTES (2u * 1024 * 1024)
#define HOST_ERR_MAX 4096

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
    "  budget = { cpu_seconds = 2, memory_mb = 256 },\n"
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

static struct host_options host_opts;
static struct core_settings host_cs;
static struct host_gen *host_current;
static struct host_gen *host_retired;
static struct host_task *host_tasks;
static int host_task_count;
static struct bot_identity host_bot_id;
static int host_bot_known;
static int host_draining;
static void (*host_drain_done)(void *arg);
static void *host_drain_arg;
static struct loop_timer *host_drain_timer;
static void (*host_render_cb)(int rc, const char *md_path, void *arg);
static void *host_render_arg;

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

struct host_task *host_task_of(lua_State *L)
{
    return *(struct host_task **)lua_getextraspace(L);
}

struct host_gen *host_gen_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

const struct bot_identity *host_bot(void)
{
    return host_bot_known && host_opts.mode == HOST_MODE_RUN ? &host_bot_id : NULL;
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
            FILE *f = fopen(path, "rb");
            if (!f) {
                continue;
            }
            luaL_Buffer b;
            char chunk[4096];
            size_t n;
            luaL_buffinit(L, &b);
            while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
                luaL_addlstring(&b, chunk, n);
            }
            fclose(f);
            luaL_pushresult(&b);                        /* stack: ... source */
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

/* The whole load, in protected mode: upvalue-free, the generation is found from the allocator. */
static int host_gen_load(lua_State *L)
{
    struct host_gen *gen = host_gen_of(L);
    char config_real[PATH_MAX], config_dir[PATH_MAX];
    int cfg;

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
    if (gen->mode == HOST_MODE_RENDER && host_opts.write_root) {
        char abs[PATH_MAX], real[PATH_MAX], cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            snprintf(cwd, sizeof cwd, ".");
        }
        host_join(abs, sizeof abs, cwd, host_opts.write_root);
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
    lua_getfield(L, -2, "memory_mb"); /* stack: boot cfg budget cpu mem */
    gen->cpu_seconds = lua_tonumber(L, -2);
    double mb = lua_tonumber(L, -1);
    lua_pop(L, 3);
    if (gen->cpu_seconds <= 0 || mb <= 0) {
        return luaL_error(L, "config: budget.cpu_seconds and budget.memory_mb must be positive");
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

static void host_gen_close(struct host_gen *gen)
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

/* A new generation numbered `number`, or NULL with the error (file:line: message) in err. */
static struct host_gen *host_gen_build(int number, enum host_mode mode, char *err, size_t errsz)
{
    struct host_gen *gen = calloc(1, sizeof *gen);
    struct budget_run run;
    int rc;

    if (!gen) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    gen->number = number;
    gen->mode = mode;
    gen->config_path = host_strdup(host_opts.config_path);
    gen->mem.cap = 256u * 1024 * 1024;
    gen->mem.reserve = HOST_RESERVE_BYTES;
    gen->cpu_seconds = 2;
    gen->config_ref = gen->templates_ref = gen->init_ref = gen->boot_ref = LUA_NOREF;
    gen->L = lua_newstate(budget_alloc, gen);
    if (!gen->L) {
        snprintf(err, errsz, "cannot create a Lua state");
        host_gen_close(gen);
        return NULL;
    }
    lua_gc(gen->L, LUA_GCGEN, 0, 0);
    budget_install_hook(gen->L);
    /* Loading has a budget too: a script whose top level loops fails the load. The limit is
     * twice the configured CPU budget, at least 2 s, whatever the new config says. */
    double limit = host_current ? 2 * host_current->cpu_seconds : 4;
    budget_begin(&run, &gen->mem, gen->L, limit < 2 ? 2 : limit);
    lua_pushcfunction(gen->L, host_gen_load);
    rc = lua_pcall(gen->L, 0, 0, 0);
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

/* ---- tasks ---- */

static void host_task_link(struct host_task *t)
{
    t->next = host_tasks;
    if (host_tasks) {
        host_tasks->prev = t;
    }
    host_tasks = t;
    host_task_count++;
}

static void host_task_unlink(struct host_task *t)
{
    if (t->prev) {
        t->prev->next = t->next;
    } else {
        host_tasks = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    }
    host_task_count--;
    metrics_gauge_set("pmb_script_tasks", "Lua coroutines alive", NULL, host_task_count);
}

static struct host_task *host_task_new(struct host_gen *gen, enum host_task_kind kind)
{
    struct host_task *t = calloc(1, sizeof *t);
    if (!t) {
        return NULL;
    }
    t->gen = gen;
    t->kind = kind;
    t->co = lua_newthread(gen->L); /* stack(L): co */
    t->ref = luaL_ref(gen->L, LUA_REGISTRYINDEX);
    *(struct host_task **)lua_getextraspace(t->co) = t;
    gen->refs++;
    host_task_link(t);
    metrics_gauge_set("pmb_script_tasks", "Lua coroutines alive", NULL, host_task_count);
    return t;
}

static void host_push_boot_fn(struct host_task *t, const char *name)
{
    lua_State *L = t->gen->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->gen->boot_ref); /* stack(L): boot */
    lua_getfield(L, -1, name);                           /* stack(L): boot fn */
    lua_xmove(L, t->co, 1);
    lua_pop(L, 1);
}

static void host_gen_release(struct host_gen *gen)
{
    if (gen->retired && gen->refs == 0) {
        struct host_gen **pp = &host_retired;
        while (*pp && *pp != gen) {
            pp = &(*pp)->next_retired;
        }
        if (*pp) {
            *pp = gen->next_retired;
        }
        char n[16];
        snprintf(n, sizeof n, "%d", gen->number);
        log_event(LOG_INFO, "generation closed", "generation", n, NULL);
        host_gen_close(gen);
    }
}

static void host_drain_check(void);

static void host_task_free(struct host_task *t)
{
    struct host_gen *gen = t->gen;
    host_task_unlink(t);
    *(struct host_task **)lua_getextraspace(t->co) = NULL;
    lua_resetthread(t->co);
    luaL_unref(gen->L, LUA_REGISTRYINDEX, t->ref);
    gen->refs--;
    if (t->killed == BUDGET_MEM) {
        lua_gc(gen->L, LUA_GCCOLLECT);
    }
    if (t->queued) {
        t->zombie = 1; /* a resume is queued: that task frees it */
    } else {
        free(t);
    }
    host_gen_release(gen);
    host_drain_check();
}

static void host_render_finish(int rc, const char *path)
{
    void (*cb)(int, const char *, void *) = host_render_cb;
    host_render_cb = NULL;
    if (cb) {
        cb(rc, path, host_render_arg);
    }
}

static const char *host_error_text(lua_State *co, char *buf, size_t size)
{
    int type = lua_type(co, -1);
    if (type == LUA_TSTRING || type == LUA_TNUMBER) {
        snprintf(buf, size, "%s", lua_tostring(co, -1));
    } else if (type == LUA_TTABLE) {
        /* a host err table raised with error(err) */
        lua_getfield(co, -1, "code");
        lua_getfield(co, -2, "message");
        snprintf(buf, size, "%s: %s", lua_tostring(co, -2) ? lua_tostring(co, -2) : "error",
                 lua_tostring(co, -1) ? lua_tostring(co, -1) : "");
        lua_pop(co, 2);
    } else {
        snprintf(buf, size, "(error object is a %s value)", lua_typename(co, type));
    }
    return buf;
}

static void host_count_command(const struct host_task *t, int status)
{
    char labels[256], name[160];
    const char *outcome = "ok";
    if (!t->reply_label[0] || t->kind != HOST_TASK_ENVELOPE) {
        return;
    }
    if (t->killed == BUDGET_CPU) {
        outcome = "cpu_budget";
    } else if (t->killed == BUDGET_MEM) {
        outcome = "memory_cap";
    } else if (status != LUA_OK || t->outcome[0]) {
        outcome = "error";
    }
    metrics_label_escape(t->reply_label, name, sizeof name);
    snprintf(labels, sizeof labels, "command=\"%s\",outcome=\"%s\"", name, outcome);
    metrics_counter_add("pmb_commands_total", "commands run, by outcome", labels, 1);
}

static void host_task_finish(struct host_task *t, int status, const struct budget_run *run)
{
    char msg[1024], gen_s[16];
    snprintf(gen_s, sizeof gen_s, "%d", t->gen->number);
    if (run && run->killed) {
        t->killed = run->killed;
        snprintf(t->kill_msg, sizeof t->kill_msg, "%s%s%s", budget_kill_message(run),
                 run->where[0] ? " at " : "", run->where);
    }
    host_count_command(t, status);
    if (status != LUA_OK) {
        if (t->killed) {
            snprintf(msg, sizeof msg, "%s", t->kill_msg);
        } else {
            host_error_text(t->co, msg, sizeof msg);
        }
        luaL_traceback(t->gen->L, t->co, msg, 0); /* stack(L): tb */
        log_event(LOG_ERROR, "script failed", "error", msg, "command", t->reply_label, "generation",
                  gen_s, "traceback", lua_tostring(t->gen->L, -1), NULL);
        lua_pop(t->gen->L, 1);
        metrics_counter_add("pmb_script_failures_total", "Lua coroutines ended by an error",
                            t->killed == BUDGET_CPU   ? "reason=\"cpu\""
                            : t->killed == BUDGET_MEM ? "reason=\"memory\""
                                                      : "reason=\"error\"",
                            1);
        if (t->kind == HOST_TASK_CHILD) {
            api_child_done(t, 0, msg);
        } else if (t->reply_channel[0]) {
            char text[1400];
            snprintf(text, sizeof text, ":x: `%s` failed: %s",
                     t->reply_label[0] ? t->reply_label : "command", msg);
            host_post_message(t->reply_channel, t->reply_thread, text);
        }
        if (t->kind == HOST_TASK_RENDER) {
            host_render_finish(1, NULL);
        }
    } else {
        if (t->kind == HOST_TASK_CHILD) {
            api_child_done(t, 1, NULL);
        } else if (t->kind == HOST_TASK_RENDER) {
            const char *path = lua_type(t->co, -1) == LUA_TSTRING ? lua_tostring(t->co, -1) : NULL;
            char copy[PATH_MAX];
            snprintf(copy, sizeof copy, "%s", path ? path : "");
            host_render_finish(path ? 0 : 1, path ? copy : NULL);
        }
    }
    host_task_free(t);
}

static void host_task_resume_task(void *arg)
{
    struct host_task *t = arg;
    int nargs = t->start_nargs;
    t->queued = 0;
    t->start_nargs = 0;
    if (t->zombie) {
        free(t);
        return;
    }
    host_task_resume(t, nargs);
}

void host_task_resume_soon(struct host_task *t)
{
    if (t->queued) {
        return;
    }
    t->queued = 1;
    loop_defer(host_task_resume_task, t);
}

void host_task_resume(struct host_task *t, int nargs)
{
    struct budget_run run;
    int nres = 0;
    int status;

    if (budget_active()) {
        /* never nest a resume inside a running script */
        t->start_nargs = nargs;
        host_task_resume_soon(t);
        return;
    }
    budget_begin(&run, &t->gen->mem, t->co, t->gen->cpu_seconds);
    status = lua_resume(t->co, NULL, nargs, &nres);
    budget_end(&run);
    if (status == LUA_YIELD) {
        lua_pop(t->co, nres);
        if (run.killed) {
            /* killed in the C part of a primitive: it is dead all the same */
            if (t->cancel) {
                t->cancel(t);
            }
            lua_pushstring(t->co, budget_kill_message(&run));
            host_task_finish(t, LUA_ERRRUN, &run);
            return;
        }
        if (t->after_yield) {
            host_cancel_fn fn = t->after_yield;
            t->after_yield = NULL;
            fn(t);
        }
        if (!t->op) {
            host_task_resume_soon(t); /* a bare coroutine.yield(): go on next turn */
        }
        return;
    }
    host_task_finish(t, status, &run);
}

struct host_task *host_task_spawn_child(struct host_task *parent, int results_ref, int fns_ref,
                                        int index)
{
    struct host_gen *gen = parent->gen;
    struct host_task *t = host_task_new(gen, HOST_TASK_CHILD);
    if (!t) {
        return NULL;
    }
    t->parent = parent;
    t->child_index = index;
    host_push_boot_fn(t, "child_main");                  /* co: child_main */
    lua_rawgeti(gen->L, LUA_REGISTRYINDEX, results_ref); /* L: results */
    lua_xmove(gen->L, t->co, 1);                         /* co: child_main results */
    lua_pushinteger(t->co, index);                       /* co: child_main results i */
    lua_rawgeti(gen->L, LUA_REGISTRYINDEX, fns_ref);     /* L: fns */
    lua_rawgeti(gen->L, -1, index);                      /* L: fns fn */
    lua_xmove(gen->L, t->co, 1);                         /* co: child_main results i fn */
    lua_pop(gen->L, 1);
    t->start_nargs = 3;
    host_task_resume_soon(t);
    return t;
}

void host_task_abort_children(struct host_task *parent)
{
    struct host_task *t = host_tasks;
    while (t) {
        if (t->parent == parent) {
            host_task_abort(t);
            t = host_tasks; /* the list changed: start over */
        } else {
            t = t->next;
        }
    }
}

void host_task_abort(struct host_task *t)
{
    if (t->cancel) {
        t->cancel(t);
    }
    t->cancel = NULL;
    t->op = NULL;
    if (t->kind == HOST_TASK_RENDER) {
        host_render_finish(1, NULL);
    }
    host_task_free(t);
}

/* ---- posting from C ---- */

static void host_post_done(const struct http_result *res, void *arg)
{
    (void)arg;
    if (res->err != HTTP_OK) {
        log_event(LOG_WARN, "could not post a message", "error", res->code ? res->code : "?",
                  "detail", res->message ? res->message : "", NULL);
    }
}

void host_post_message(const char *channel, const char *thread_ts, const char *text)
{
    const char *token = getenv("SLACK_BOT_TOKEN");
    char *c, *th, *tx, *body;
    size_t n;
    if (host_opts.mode != HOST_MODE_RUN || !token || !channel || !*channel) {
        return;
    }
    c = http_form_escape(channel, strlen(channel));
    th = http_form_escape(thread_ts ? thread_ts : "", thread_ts ? strlen(thread_ts) : 0);
    tx = http_form_escape(text, strlen(text));
    n = strlen(c) + strlen(th) + strlen(tx) + 64;
    body = malloc(n);
    if (c && th && tx && body) {
        if (thread_ts && *thread_ts) {
            snprintf(body, n, "channel=%s&thread_ts=%s&text=%s", c, th, tx);
        } else {
            snprintf(body, n, "channel=%s&text=%s", c, tx);
        }
        if (!http_api("chat.postMessage", token, body, strlen(body),
                      "application/x-www-form-urlencoded", host_post_done, NULL)) {
            log_event(LOG_WARN, "could not start chat.postMessage", NULL);
        }
    }
    free(c);
    free(th);
    free(tx);
    free(body);
}

/* ---- host.h API ---- */

static void host_log_problem(const char *what, const char *err)
{
    log_event(LOG_ERROR, what, "error", err, "config", host_opts.config_path, NULL);
    if (host_opts.mode == HOST_MODE_CHECK) {
        fprintf(stderr, "postmortembot check: %s\n", err);
    }
}

static void host_apply_settings(struct host_gen *gen, int reload)
{
    lua_rawgeti(gen->L, LUA_REGISTRYINDEX, gen->config_ref);
    config_read_settings(gen->L, -1, &host_cs, reload);
    lua_pop(gen->L, 1);
}

int host_init(const struct host_options *o)
{
    char err[HOST_ERR_MAX];
    host_opts = *o;
    if (!host_opts.config_path) {
        host_opts.config_path = HOST_DEFAULT_CONFIG;
    }
    host_current = host_gen_build(1, o->mode, err, sizeof err);
    if (!host_current) {
        host_log_problem("could not load config and scripts", err);
        return -1;
    }
    host_apply_settings(host_current, 0);
    metrics_gauge_set("pmb_generation", "number of the current script generation", NULL, 1);
    return 0;
}

const struct core_settings *host_settings(void)
{
    return &host_cs;
}

void host_set_bot(const struct bot_identity *bot)
{
    host_bot_id = *bot;
    host_bot_known = 1;
}

int host_generation(void)
{
    return host_current ? host_current->number : 0;
}

int host_reload(void)
{
    char err[HOST_ERR_MAX], gen_s[16], ms_s[32];
    double t0 = loop_now_mono();
    struct host_gen *old = host_current;
    struct host_gen *gen;

    if (!old) {
        return -1;
    }
    gen = host_gen_build(old->number + 1, host_opts.mode, err, sizeof err);
    if (!gen) {
        log_event(LOG_ERROR, "reload failed", "error", err, "generation_kept",
                  (snprintf(gen_s, sizeof gen_s, "%d", old->number), gen_s), NULL);
        metrics_counter_add("pmb_reloads_total", "SIGHUP reloads", "outcome=\"failed\"", 1);
        if (old->admin_channel) {
            char text[HOST_ERR_MAX + 128];
            snprintf(
                text, sizeof text,
                ":warning: postmortembot reload failed; generation %d keeps running.\n```%s```",
                old->number, err);
            host_post_message(old->admin_channel, NULL, text);
        }
        return -1;
    }
    host_current = gen;
    old->retired = 1;
    old->next_retired = host_retired;
    host_retired = old;
    host_apply_settings(gen, 1);
    if (host_opts.mode == HOST_MODE_RUN) {
        struct http_settings hs = host_cs.http;
        const char *api = getenv("SLACK_API_URL");
        hs.api_base = api && *api ? api : "https://slack.com/api/";
        http_configure(&hs);
    }
    log_set_level(log_level_from_name(host_cs.log_level));
    host_gen_release(old);
    snprintf(gen_s, sizeof gen_s, "%d", gen->number);
    snprintf(ms_s, sizeof ms_s, "%.1f", (loop_now_mono() - t0) * 1000);
    log_event(LOG_INFO, "reload ok", "generation", gen_s, "ms", ms_s, NULL);
    metrics_counter_add("pmb_reloads_total", "SIGHUP reloads", "outcome=\"ok\"", 1);
    metrics_gauge_set("pmb_generation", "number of the current script generation", NULL,
                      gen->number);
    return 0;
}

void host_on_envelope(const char *json, size_t len, void *arg)
{
    char type[64] = "", event_id[64] = "", event_type[64] = "";
    struct json_doc *doc = json_parse(json, len);
    struct host_task *t;
    (void)arg;
    if (doc) {
        json_get_string(doc, "type", type, sizeof type);
        json_get_string(doc, "payload.event_id", event_id, sizeof event_id);
        json_get_string(doc, "payload.event.type", event_type, sizeof event_type);
        json_free(doc);
    }
    log_event(LOG_INFO, "envelope", "type", type, "event_id", event_id, "event", event_type, NULL);
    if (host_draining || !host_current) {
        log_event(LOG_WARN, "envelope dropped: stopping", "event_id", event_id, NULL);
        return;
    }
    t = host_task_new(host_current, HOST_TASK_ENVELOPE);
    if (!t) {
        return;
    }
    host_push_boot_fn(t, "task_main");
    lua_pushlstring(t->co, json, len);
    /* start on the next loop turn: the ack socketmode.c just queued goes out first */
    t->start_nargs = 1;
    host_task_resume_soon(t);
}

int host_check_report(void)
{
    struct host_gen *g = host_current;
    int templates = 0;
    if (!g) {
        return 1;
    }
    lua_rawgeti(g->L, LUA_REGISTRYINDEX, g->templates_ref);
    lua_pushnil(g->L);
    while (lua_next(g->L, -2)) {
        templates++;
        lua_pop(g->L, 1);
    }
    lua_pop(g->L, 1);
    printf("ok: %s loads (scripts %s, %d templates in %s, data dir %s, timezone %s)\n",
           host_opts.config_path, g->scripts_dir, templates, g->templates_dir, g->data_dir,
           g->timezone);
    return 0;
}

void host_render(const char *thread, const char *users, const char *out_dir,
                 void (*done)(int rc, const char *md_path, void *arg), void *arg)
{
    struct host_task *t;
    host_render_cb = done;
    host_render_arg = arg;
    if (!host_current) {
        host_render_finish(1, NULL);
        return;
    }
    t = host_task_new(host_current, HOST_TASK_RENDER);
    if (!t) {
        host_render_finish(1, NULL);
        return;
    }
    host_push_boot_fn(t, "render_main");
    lua_createtable(t->co, 0, 3);
    lua_pushstring(t->co, thread);
    lua_setfield(t->co, -2, "thread");
    if (users) {
        lua_pushstring(t->co, users);
        lua_setfield(t->co, -2, "users");
    }
    lua_pushstring(t->co, host_current->write_root ? host_current->write_root : out_dir);
    lua_setfield(t->co, -2, "out_dir");
    host_task_resume(t, 1);
}

static void host_abort_all(void)
{
    while (host_tasks) {
        struct host_task *t = host_tasks;
        while (t && t->parent) {
            t = t->next;
        }
        if (!t) {
            t = host_tasks; /* children only: should not happen */
        }
        host_task_abort(t);
    }
}

static void host_drain_finish(void *arg)
{
    (void)arg;
    void (*done)(void *) = host_drain_done;
    host_drain_done = NULL;
    if (done) {
        done(host_drain_arg);
    }
}

static void host_drain_check(void)
{
    if (host_draining && host_task_count == 0 && host_drain_done) {
        loop_timer_cancel(host_drain_timer);
        host_drain_timer = NULL;
        loop_defer(host_drain_finish, NULL);
    }
}

static void host_drain_timeout(void *arg)
{
    (void)arg;
    host_drain_timer = NULL;
    if (host_task_count > 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", host_task_count);
        log_event(LOG_WARN, "ending scripts still running after the grace period", "tasks", n,
                  NULL);
    }
    host_abort_all();
    host_drain_check();
}

void host_drain(double grace, void (*done)(void *arg), void *arg)
{
    host_draining = 1;
    host_drain_done = done;
    host_drain_arg = arg;
    if (host_task_count == 0) {
        host_drain_check();
        return;
    }
    host_drain_timer = loop_timer_start(grace, host_drain_timeout, NULL);
}

int host_running(void)
{
    return host_task_count;
}

void host_shutdown(void)
{
    host_drain_done = NULL;
    loop_timer_cancel(host_drain_timer);
    host_drain_timer = NULL;
    host_abort_all();
    while (host_retired) {
        struct host_gen *g = host_retired;
        host_retired = g->next_retired;
        host_gen_close(g);
    }
    host_gen_close(host_current);
    host_current = NULL;
    config_free();
}
