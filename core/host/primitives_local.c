/* primitives_local.c — the `host` primitives that answer at once, without the loop: time in a zone,
 * files (writes only inside the write root, atomically), sha256, base64, logging, identity, config,
 * templates and scripts of the generation, plus the nil, err tables every primitive returns.
 * primitives_io.c registers these beside the waiting ones; called from scripts only; calls
 * log.c, metrics.c, sandbox.c (reading files), host.c (bot identity) and host_task.c (current
 * task). */

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

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "base/tzfile.h"
#include "host/host_gen.h"
#include "host/md_escape.h"
#include "host/read_rule.h"

#define PRIM_ERR_MT "pmb.err"
#define PRIM_MAX_LOG_FIELDS 32

/* ---- err tables ---- */

static int prim_err_tostring(lua_State *L)
{
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "message");
    lua_pushfstring(L, "%s: %s", luaL_optstring(L, -2, "error"), luaL_optstring(L, -1, ""));
    return 1;
}

void prim_push_err(lua_State *L, const char *code, const char *message, long status,
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
    if (luaL_newmetatable(L, PRIM_ERR_MT)) { /* stack: err mt */
        lua_pushcfunction(L, prim_err_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_setmetatable(L, -2);
}

int prim_fail(lua_State *L, const char *code, const char *message)
{
    lua_pushnil(L);
    prim_push_err(L, code, message, 0, NULL, NULL);
    return 2;
}

int prim_fail_errno(lua_State *L, const char *what)
{
    char msg[PATH_MAX + 128];
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
    return prim_fail(L, "io", msg);
}

/* ---- write root ---- */

static int prim_within(const char *root, const char *path)
{
    size_t n = strlen(root);
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int prim_resolve_write_path(const char *root, const char *path, int mkdirs, char *out, size_t size,
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
    if (!prim_within(root, norm) || strcmp(root, norm) == 0) {
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
        if (!realpath(prefix, real) || !prim_within(root, real)) {
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

const char *prim_write_path(lua_State *L, const char *fn, const char *path, int mkdirs, char *out,
                            size_t size)
{
    char err[PATH_MAX + 128];
    struct host_gen *gen = host_gen_of(L);
    if (prim_resolve_write_path(gen->write_root, path, mkdirs, out, size, err, sizeof err) < 0) {
        luaL_error(L, "host.%s: %s", fn, err);
    }
    return out;
}

/* ---- time: zones from tzfile.c, never the process's TZ (the transport thread reads it too) ----
 */

static time_t prim_check_epoch(lua_State *L, int idx)
{
    int ok = 0;
    lua_Number v = lua_tonumberx(L, idx, &ok);
    if (!ok) {
        luaL_argerror(L, idx, "epoch seconds (a number or a Slack ts string) expected");
    }
    return (time_t)v;
}

/* The local time of the epoch at index 1 in the zone at index 2, or raise (unknown zone). tm's
 * tm_zone points into *zl. Returns the epoch. */
static time_t prim_local_time(lua_State *L, struct tm *tm, struct tzfile_local *zl)
{
    time_t t = prim_check_epoch(L, 1);
    const char *zone = luaL_checkstring(L, 2);
    time_t local;
    if (tzfile_lookup(zone, (int64_t)t, zl) < 0) {
        luaL_error(L, "unknown time zone '%s'", zone);
    }
    local = t + zl->utoff;
    if (!gmtime_r(&local, tm)) {
        luaL_error(L, "epoch %f is out of range", (double)t);
    }
    tm->tm_gmtoff = zl->utoff;
    tm->tm_isdst = zl->isdst;
    tm->tm_zone = zl->abbrev;
    return t;
}

static int prim_time_parts(lua_State *L)
{
    struct tm tm;
    struct tzfile_local zl;
    prim_local_time(L, &tm, &zl);
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
    lua_pushstring(L, zl.abbrev);
    lua_setfield(L, -2, "abbrev");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "zone");
    return 1;
}

static int prim_format_time(lua_State *L)
{
    const char *fmt = luaL_checkstring(L, 3);
    struct tm tm;
    struct tzfile_local zl;
    char spec[2816], out[1024];
    size_t n = 0, k = 0;

    if (strlen(fmt) > 256) {
        return luaL_error(L, "host.format_time: format too long");
    }
    time_t t = prim_local_time(L, &tm, &zl);
    /* %s is the epoch: strftime would get it from mktime, which reads the process's TZ */
    for (const char *p = fmt; *p && k + 24 < sizeof spec; p++) {
        if (p[0] == '%' && p[1] == 's') {
            k += (size_t)snprintf(spec + k, sizeof spec - k, "%lld", (long long)t);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            spec[k++] = *p++;
            spec[k++] = *p;
        } else {
            spec[k++] = *p;
        }
    }
    spec[k] = '\0';
    n = *spec ? strftime(out, sizeof out, spec, &tm) : 0;
    lua_pushlstring(L, out, n);
    return 1;
}

static int prim_now(lua_State *L)
{
    lua_pushnumber(L, loop_now_wall());
    return 1;
}

static int prim_monotonic(lua_State *L)
{
    lua_pushnumber(L, loop_now_mono());
    return 1;
}

/* host.collect_garbage([mode]): a full garbage collection now. A report calls it once its
 * messages are let go of and before it renders: the incremental collector would otherwise still be
 * carrying the 20,000 messages of a big thread as garbage while the render allocates, and the
 * process would peak with both. mode "generational": then the collector in generational mode
 * until the command's task ends (host_gen_hold_young: what is left is old, what follows young). */
static int prim_collect_garbage(lua_State *L)
{
    static const char *const modes[] = {"full", "generational", NULL};
    int mode = luaL_checkoption(L, 1, "full", modes);
    struct host_task *t = host_task_command(host_task_of(L));
    lua_gc(L, LUA_GCCOLLECT);
    if (mode == 1 && t && !t->holds_young) {
        t->holds_young = 1;
        host_gen_hold_young(t->gen);
    }
    return 0;
}

/* ---- files ---- */

static int prim_write_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    char abs[PATH_MAX], tmp[PATH_MAX + 16];
    int fd;
    size_t off = 0;

    prim_write_path(L, "write_file", path, 1, abs, sizeof abs);
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", abs);
    fd = mkstemp(tmp);
    if (fd < 0) {
        return prim_fail_errno(L, abs);
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
            return prim_fail_errno(L, abs);
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 || rename(tmp, abs) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return prim_fail_errno(L, abs);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int prim_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char abs[PATH_MAX], real[PATH_MAX];
    struct host_gen *gen = host_gen_of(L);
    /* "dir/." resolves the parents of dir itself, creating them */
    char probe[PATH_MAX + 4];
    snprintf(probe, sizeof probe, "%s/x", path);
    prim_write_path(L, "mkdir", probe, 1, abs, sizeof abs);
    *strrchr(abs, '/') = '\0';
    if (mkdir(abs, 0755) < 0 && errno != EEXIST) {
        return prim_fail_errno(L, abs);
    }
    if (!realpath(abs, real) || !prim_within(gen->write_root, real)) {
        return luaL_error(L, "host.mkdir: %s resolves outside the write root", path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* A file or an empty folder inside the write root (raises outside it, like every write); one that
 * is already gone is no error. lib/early_downloads.lua drops the downloads no kept entry needs. */
static int prim_remove(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char abs[PATH_MAX];
    prim_write_path(L, "remove", path, 0, abs, sizeof abs);
    if (remove(abs) < 0 && errno != ENOENT) {
        return prim_fail_errno(L, abs);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int prim_read_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char err[PATH_MAX + 128];
    /* no kernel pseudo-files (/proc/self/environ holds the tokens): the one read rule */
    if (read_rule_check(path, err, sizeof err) < 0) {
        return prim_fail(L, "refused", err);
    }
    if (sandbox_push_file(L, path, err, sizeof err) < 0) {
        return prim_fail(L, "io", err);
    }
    return 1;
}

/* A scandir result owned by a userdata: if a Lua allocation raises while the names are turned
 * into strings, the collector frees them (a Lua error is a longjmp). */
struct prim_dir_names {
    struct dirent **names;
    int n;
};

static int prim_dir_names_gc(lua_State *L)
{
    struct prim_dir_names *d = lua_touserdata(L, 1);
    for (int i = 0; i < d->n; i++) {
        free(d->names[i]);
    }
    free(d->names);
    d->names = NULL;
    d->n = 0;
    return 0;
}

/* Push the owner userdata of dir's sorted entries (stack: owner); n < 0 when unreadable. */
static struct prim_dir_names *prim_scandir(lua_State *L, const char *dir)
{
    struct prim_dir_names *d = lua_newuserdatauv(L, sizeof *d, 0);
    d->names = NULL;
    d->n = 0;
    if (luaL_newmetatable(L, "pmb.dir_names")) {
        lua_pushcfunction(L, prim_dir_names_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    d->n = scandir(dir, &d->names, NULL, alphasort);
    return d;
}

static int prim_list_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct prim_dir_names *d = prim_scandir(L, path); /* stack: path owner */
    int k = 0;
    if (d->n < 0) {
        d->n = 0;
        return prim_fail_errno(L, path);
    }
    lua_createtable(L, d->n, 0); /* stack: path owner list */
    for (int i = 0; i < d->n; i++) {
        const char *name = d->names[i]->d_name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            lua_pushstring(L, name);
            lua_rawseti(L, -2, ++k);
        }
    }
    lua_remove(L, -2); /* the owner is collected later and frees the names */
    return 1;
}

static int prim_exists(lua_State *L)
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

static int prim_file_size(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) < 0) {
        return prim_fail_errno(L, path);
    }
    lua_pushinteger(L, (lua_Integer)st.st_size);
    return 1;
}

static int prim_sha256(lua_State *L)
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

/* host.base64(s): standard base64 (RFC 4648, with padding, no line breaks), OpenSSL's encoder. */
static int prim_base64(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (len > (size_t)INT_MAX / 4 * 3 - 3) {
        return luaL_error(L, "host.base64: input too large");
    }
    size_t cap = 4 * ((len + 2) / 3) + 1;
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, cap);
    int n = EVP_EncodeBlock(out, (const unsigned char *)s, (int)len);
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* ---- logging, identity, config ---- */

static int prim_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    int level = luaL_checkoption(L, 1, NULL, levels);
    const char *msg = luaL_checkstring(L, 2);
    const char *keys[PRIM_MAX_LOG_FIELDS], *values[PRIM_MAX_LOG_FIELDS];
    size_t n = 0;

    lua_settop(L, 3);
    lua_newtable(L); /* 4: flat {k1, v1, k2, v2, ...}: keeps the strings alive */
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 3)) { /* stack: ... key value */
            if (n < PRIM_MAX_LOG_FIELDS && lua_type(L, -2) == LUA_TSTRING) {
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

static int prim_bot(lua_State *L)
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

static int prim_generation(lua_State *L)
{
    lua_pushinteger(L, host_gen_of(L)->number);
    return 1;
}

static int prim_config(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, host_gen_of(L)->config_ref);
    return 1;
}

static int prim_templates(lua_State *L)
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

static int prim_list_scripts(lua_State *L)
{
    const char *sub = luaL_checkstring(L, 1);
    struct host_gen *gen = host_gen_of(L);
    char dir[PATH_MAX];
    int k = 0;

    for (const char *p = sub; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            return luaL_error(L, "host.list_scripts: bad directory name '%s'", sub);
        }
    }
    snprintf(dir, sizeof dir, "%s/%s", gen->scripts_dir, sub);
    struct prim_dir_names *d = prim_scandir(L, dir); /* stack: sub owner */
    lua_newtable(L);                                 /* stack: sub owner list */
    for (int i = 0; i < d->n; i++) {
        const char *name = d->names[i]->d_name;
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
    }
    if (d->n < 0) {
        d->n = 0;
    }
    lua_remove(L, -2); /* the owner is collected later and frees the names */
    return 1;
}

/* host.observe(name, value): one observation of a histogram (seconds), e.g.
 * host.observe("pmb_report_build_seconds", 1.8). Names must start with pmb_ and end in _seconds. */
static int prim_observe(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    double v = luaL_checknumber(L, 2);
    if (len < 13 || len > 64 || strncmp(name, "pmb_", 4) != 0 ||
        strcmp(name + len - 8, "_seconds") != 0) {
        return luaL_error(L, "host.observe: '%s' is not a pmb_*_seconds histogram name", name);
    }
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return luaL_error(L, "host.observe: bad metric name '%s'", name);
        }
    }
    metrics_observe(name, "observed by the scripts (host.observe)", NULL, v);
    return 0;
}

static int prim_getenv(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (strcmp(name, "SLACK_BOT_TOKEN") == 0 || strcmp(name, "SLACK_APP_TOKEN") == 0) {
        return luaL_error(L, "host.getenv: %s is not readable from scripts", name);
    }
    lua_pushstring(L, getenv(name));
    return 1;
}

/* host.task_reply_to(channel, thread_ts, label [, outcome]): where the host posts the failure
 * reply if this coroutine dies (an error that escaped, the CPU budget, the memory cap), and the
 * command name for pmb_commands_total. Set by the router; outcome "failed" when the router
 * answered an error itself. */
static int prim_task_reply_to(lua_State *L)
{
    const char *channel = luaL_checkstring(L, 1);
    const char *thread = luaL_optstring(L, 2, "");
    const char *label = luaL_optstring(L, 3, "");
    const char *outcome = luaL_optstring(L, 4, "");
    struct host_task *t = host_task_command(host_task_of(L));
    if (!t) {
        lua_pushboolean(L, 0);
        return 1;
    }
    snprintf(t->reply_channel, sizeof t->reply_channel, "%s", channel);
    snprintf(t->reply_thread, sizeof t->reply_thread, "%s", thread);
    snprintf(t->reply_label, sizeof t->reply_label, "%s", label);
    snprintf(t->outcome, sizeof t->outcome, "%s", outcome);
    lua_pushboolean(L, 1);
    return 1;
}

void prim_local_register(lua_State *L)
{
    static const luaL_Reg fns[] = {{"now", prim_now},
                                   {"monotonic", prim_monotonic},
                                   {"collect_garbage", prim_collect_garbage},
                                   {"time_parts", prim_time_parts},
                                   {"format_time", prim_format_time},
                                   {"write_file", prim_write_file},
                                   {"mkdir", prim_mkdir},
                                   {"remove", prim_remove},
                                   {"read_file", prim_read_file},
                                   {"list_dir", prim_list_dir},
                                   {"exists", prim_exists},
                                   {"file_size", prim_file_size},
                                   {"sha256", prim_sha256},
                                   {"base64", prim_base64},
                                   {"escape_markdown", md_escape_lua},
                                   {"log", prim_log},
                                   {"bot", prim_bot},
                                   {"generation", prim_generation},
                                   {"config", prim_config},
                                   {"templates", prim_templates},
                                   {"list_scripts", prim_list_scripts},
                                   {"getenv", prim_getenv},
                                   {"task_reply_to", prim_task_reply_to},
                                   {"observe", prim_observe},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0); /* stack: host */
}
