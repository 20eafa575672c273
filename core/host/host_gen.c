/* host_gen.c — building and closing one generation: a lua_State with the config schema and the
 * boot table (core/host/boot.lua, compiled in), the config checked and completed by the schema
 * (every default, the environment, absolute paths), the templates it names checked, init.lua
 * loaded and self-checked, all under a load budget. host.c calls host_gen_build at start-up and
 * on SIGHUP and host_gen_close when a generation is done; this file calls sandbox.c
 * (environment), budget.c (allocator and hook) and primitives_io.c (zone check). */
#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/metrics.h"
#include "base/strcopy.h"
#include "base/tzfile.h"
#include "host/batch_arena.h"
#include "host/host_gen.h"

/* A resume of a command yields back to the loop after this much time where it can (budget.c). */
#define HOST_SLICE_SECONDS 0.005
#define HOST_GC_PAUSE 150       /* percent: see host_gen_build */
#define HOST_GC_PAUSE_BATCH 200 /* the render's */

#define HOST_RESERVE_BYTES (2u * 1024 * 1024)
#define HOST_LOAD_CAP_BYTES (256u * 1024 * 1024)

/* core/host/boot.lua and scripts/lib/config_schema.lua, compiled in by the Makefile */
static const char host_boot_lua[] =
#include "boot.lua.inc"
    ;
static const char host_schema_lua[] =
#include "config_schema.lua.inc"
    ;

/* ---- small helpers ---- */

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

/* A directory key of the resolved config table (index cfg), absolute already (the schema joined
 * it with the config's directory): create it if asked, then store its realpath back. Pushes the
 * path. */
static const char *host_cfg_dir(lua_State *L, int cfg, const char *key, int must_exist, int create)
{
    char real[PATH_MAX];
    const char *path;

    lua_getfield(L, cfg, key); /* stack: ... path */
    path = lua_tostring(L, -1);
    if (create && host_mkdir_p(path) < 0) {
        luaL_error(L, "config: %s %s cannot be created: %s", key, path, strerror(errno));
        return NULL;
    }
    if (realpath(path, real)) {
        lua_pushstring(L, real); /* stack: ... path real */
        lua_remove(L, -2);
    } else if (must_exist) {
        luaL_error(L, "config: %s %s: %s", key, path, strerror(errno));
        return NULL;
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, cfg, key); /* stack: ... path */
    return lua_tostring(L, -1);
}

/* For the schema (boot.prepare_config): the environment and the zone check. Only the boot chunk
 * sees these two; scripts get host.getenv with its own restrictions. */
static int host_gen_getenv(lua_State *L)
{
    lua_pushstring(L, getenv(luaL_checkstring(L, 1)));
    return 1;
}

static int host_gen_valid_zone(lua_State *L)
{
    lua_pushboolean(L, tzfile_valid_zone(luaL_checkstring(L, 1)));
    return 1;
}

/* Load one compiled-in chunk and call it with the n values below it; leaves its one result. */
static void host_gen_run_chunk(lua_State *L, const char *src, size_t len, const char *name, int n)
{
    if (luaL_loadbufferx(L, src, len, name, "t") != LUA_OK) {
        lua_error(L);
    }
    lua_insert(L, -n - 1);
    lua_call(L, n, 1);
}

static double host_gen_number(lua_State *L, int cfg, const char *section, const char *key)
{
    double v;
    lua_getfield(L, cfg, section);
    lua_getfield(L, -1, key); /* stack: ... section value */
    v = lua_tonumber(L, -1);
    lua_pop(L, 2);
    return v;
}

/* The whole load, in protected mode: upvalue-free, the generation is found from the allocator
 * and the host options arrive as the one (light userdata) argument. */
/* The message handler of a load (as lua.c's msghandler): the error, then the stack it came from,
 * so that a script that fails to load says where. Config problems are reported as such, without
 * a traceback into boot.lua. */
static int host_gen_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    if (strncmp(msg, "config ", 7) == 0) {
        return 1;
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* A copy the generation keeps; raises "out of memory" (inside the load's protected call) instead of
 * leaving the field NULL. */
static char *host_gen_copy(lua_State *L, const char *s)
{
    char *copy = str_copy(s);
    if (s && !copy) {
        luaL_error(L, "out of memory");
    }
    return copy;
}

static int host_gen_load(lua_State *L)
{
    struct host_gen *gen = host_gen_of(L);
    const struct host_options *opts = lua_touserdata(L, 1);
    char config_real[PATH_MAX], config_dir[PATH_MAX], cwd[PATH_MAX];
    int boot, cfg;

    lua_settop(L, 0);
    sandbox_open(L);

    /* the schema, also require-able by scripts as lib.config_schema; then the boot table */
    lua_getfield(L, LUA_REGISTRYINDEX, "pmb.loaded"); /* stack: loaded */
    host_gen_run_chunk(L, host_schema_lua, sizeof host_schema_lua - 1, "=config_schema", 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "lib.config_schema"); /* stack: loaded schema */
    lua_getfield(L, -2, "cjson");
    lua_insert(L, -2);
    lua_getglobal(L, "require");
    lua_insert(L, -2); /* stack: loaded cjson require schema */
    host_gen_run_chunk(L, host_boot_lua, sizeof host_boot_lua - 1, "=boot", 3);
    lua_remove(L, 1); /* stack: boot */
    boot = lua_gettop(L);
    lua_pushvalue(L, boot);
    gen->boot_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    /* config: a Lua file returning a table, run with the globals visible */
    if (!realpath(gen->config_path, config_real)) {
        return luaL_error(L, "config %s: %s", gen->config_path, strerror(errno));
    }
    snprintf(config_dir, sizeof config_dir, "%s", config_real);
    *strrchr(config_dir, '/') = '\0';
    if (!getcwd(cwd, sizeof cwd)) {
        return luaL_error(L, "the current directory: %s", strerror(errno));
    }
    {
        char chunk[PATH_MAX + 1];
        snprintf(chunk, sizeof chunk, "@%s", gen->config_path);
        sandbox_loadfile(L, config_real, chunk); /* stack: boot fn */
    }
    lua_call(L, 0, 1); /* stack: boot cfg */
    lua_getfield(L, boot, "prepare_config");
    lua_insert(L, -2);
    lua_createtable(L, 0, 5); /* stack: boot prepare cfg ctx */
    lua_pushstring(L, gen->config_path);
    lua_setfield(L, -2, "config_path");
    lua_pushstring(L, config_dir);
    lua_setfield(L, -2, "config_dir");
    lua_pushstring(L, cwd);
    lua_setfield(L, -2, "cwd");
    lua_pushcfunction(L, host_gen_getenv);
    lua_setfield(L, -2, "getenv");
    lua_pushcfunction(L, host_gen_valid_zone);
    lua_setfield(L, -2, "valid_zone");
    lua_call(L, 2, 1); /* stack: boot cfg (resolved: every key set, paths absolute) */
    cfg = lua_gettop(L);

    gen->scripts_dir = host_gen_copy(L, host_cfg_dir(L, cfg, "scripts_dir", 1, 0));
    lua_pop(L, 1);
    gen->templates_dir = host_gen_copy(L, host_cfg_dir(L, cfg, "templates_dir", 1, 0));
    lua_pop(L, 1);
    gen->data_dir =
        host_gen_copy(L, host_cfg_dir(L, cfg, "data_dir", 0, gen->mode == HOST_MODE_RUN));
    lua_pop(L, 1);
    if (gen->mode == HOST_MODE_RENDER && opts->write_root) {
        char abs[2 * PATH_MAX + 2], real[PATH_MAX];
        host_join(abs, sizeof abs, cwd, opts->write_root);
        if (host_mkdir_p(abs) < 0 || !realpath(abs, real)) {
            return luaL_error(L, "output directory %s: %s", abs, strerror(errno));
        }
        gen->write_root = host_gen_copy(L, real);
    } else {
        gen->write_root = host_gen_copy(L, gen->data_dir);
    }

    lua_getfield(L, cfg, "timezone");
    gen->timezone = host_gen_copy(L, lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, cfg, "admin_channel");
    if (lua_type(L, -1) == LUA_TSTRING) {
        gen->admin_channel = host_gen_copy(L, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    gen->limits.cpu = host_gen_number(L, cfg, "budget", "cpu_seconds");
    gen->limits.stretch = host_gen_number(L, cfg, "budget", "stretch_seconds");
    gen->limits.slice = HOST_SLICE_SECONDS;
    gen->mem.cap = (size_t)(host_gen_number(L, cfg, "budget", "memory_mb") * 1024 * 1024);

    lua_pushvalue(L, cfg);
    gen->config_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_newtable(L); /* stack: boot cfg templates */
    host_read_templates(L, lua_gettop(L), gen->templates_dir, "");
    lua_getfield(L, boot, "check_templates");
    lua_pushvalue(L, cfg);
    lua_pushvalue(L, -3);
    lua_pushstring(L, gen->config_path);
    lua_call(L, 3, 0); /* stack: boot cfg templates */
    gen->templates_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    /* scripts: init.lua and everything it loads, then the self-check */
    lua_getfield(L, boot, "load_init");
    lua_pushboolean(L, gen->mode == HOST_MODE_RENDER); /* a render loads no commands */
    lua_call(L, 1, 1);                                 /* stack: boot cfg init */
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

/* The generation's usual collector: incremental, a cycle once the heap has grown by half (Lua's
 * default waits for it to double). Measured on the 20,000-message render (issue 18,
 * bench/gen_thread.py): pause 200 0.91 s and 65 MB peak RSS, 150 0.96 s and 58 MB, 130 1.06 s and
 * 52 MB; the generational mode took 10-15% longer than 200 and peaked 6 MB higher. A render is one
 * report and an exit, its heap on huge pages (batch_arena.c): it keeps Lua's default, time before
 * memory (the 20,000-message render with the arena, 5 runs each: 150 0.44-0.51 s, 48 MB; 200
 * 0.40-0.43 s, 52 MB; 300 0.40-0.42 s, 58 MB). budget.memory_mb counts garbage not yet collected:
 * a render's heap may reach twice its live size (the 20,000-message render: ~25 MB live). */
static void host_gen_collector_incremental(struct host_gen *gen)
{
    lua_gc(gen->L, LUA_GCINC, gen->mode == HOST_MODE_RENDER ? HOST_GC_PAUSE_BATCH : HOST_GC_PAUSE,
           0, 0);
}

/* Generational mode for the end of a big report (host.collect_garbage("generational"), after a
 * full collection): what the thread's reading built (20,000 entries) is old by then and stays to
 * the end, and what the render, the JSON and the uploads make is short-lived, so minor
 * collections that look at the young objects only do the work, instead of incremental cycles that
 * mark every entry again each time the heap grows by half. The 20,000-message autopsy
 * (bench/autopsy_e2e.py --messages 20000, 4 runs each, alternated): after the last page 258-279
 * ms and 43.2-43.9 MB peak RSS, against 295-300 ms and 45.7-46.4 MB incremental. Reading is
 * not done in it: every entry survives, and minor collections would keep finding them alive. */
static int young_holds_all; /* over every generation alive (a reload may leave one running) */

static void host_gen_count_young(int change)
{
    young_holds_all += change;
    metrics_gauge_set("pmb_script_collector_generational",
                      "commands holding the script collector in generational mode (a big report "
                      "once its thread is read); 0 when none",
                      NULL, young_holds_all);
}

void host_gen_hold_young(struct host_gen *gen)
{
    if (gen->young_holds++ == 0) {
        lua_gc(gen->L, LUA_GCGEN, 0, 0);
    }
    host_gen_count_young(1);
}

void host_gen_release_young(struct host_gen *gen)
{
    if (gen->young_holds <= 0) {
        return;
    }
    if (--gen->young_holds == 0) {
        host_gen_collector_incremental(gen);
    }
    host_gen_count_young(-1);
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
    gen->config_path = str_copy(opts->config_path);
    if (!gen->config_path) {
        snprintf(err, errsz, "out of memory");
        free(gen);
        return NULL;
    }
    /* until the config is read (its budget), the load runs under the schema's default cap */
    gen->mem.cap = HOST_LOAD_CAP_BYTES;
    gen->mem.reserve = HOST_RESERVE_BYTES;
    gen->limits.cpu = gen->limits.stretch = 2; /* until the config is read */
    gen->config_ref = gen->templates_ref = gen->init_ref = gen->boot_ref = LUA_NOREF;
    /* a render is one report and an exit: its heap on huge pages (batch_arena.c says why) */
    gen->mem.batch = gen->mode == HOST_MODE_RENDER && batch_arena_open();
    gen->L = lua_newstate(budget_alloc, gen);
    if (!gen->L) {
        snprintf(err, errsz, "cannot create a Lua state");
        host_gen_close(gen);
        return NULL;
    }
    /* lua_newstate leaves the main thread's extra space uninitialised, and every coroutine a
     * script creates copies it: NULL says "not a host task" (host_task_of). */
    *(struct host_task **)lua_getextraspace(gen->L) = NULL;
    host_gen_collector_incremental(gen);
    host_gen_count_young(0); /* (the gauge is there from the start) */
    budget_install_hook(gen->L);
    /* Loading has a budget too: a script whose top level loops fails the load. Loading cannot
     * yield, so the limit is one stretch: twice the running generation's stretch bound, at least
     * 2 s, whatever the new config says. */
    double limit = prev ? 2 * prev->limits.stretch : 4;
    struct budget_limits load = {limit < 2 ? 2 : limit, limit < 2 ? 2 : limit, 0};
    budget_begin(&run, &gen->mem, gen->L, &load, 0);
    lua_pushcfunction(gen->L, host_gen_traceback);
    lua_pushcfunction(gen->L, host_gen_load);
    lua_pushlightuserdata(gen->L, (void *)opts);
    rc = lua_pcall(gen->L, 1, 0, 1);
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
    lua_settop(gen->L, 0);
    budget_install_hook(gen->L); /* a kill during load would have left count=1 */
    lua_gc(gen->L, LUA_GCCOLLECT);
    return gen;
}
