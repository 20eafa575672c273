/* config.c — turns a generation's config table (checked and completed by
 * scripts/lib/config_schema.lua in the boot chunk, paths absolute) into struct core_settings for
 * the C core, with no default of its own: HTTP limits,
 * download limits, Socket Mode timings, data dir, listen address, log level.
 * Called by host.c at start-up and on every successful reload (then only the HTTP limits and the
 * log level are re-read). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "host/host_gen.h"

#define CONFIG_MAX_HOSTS 32

static char *config_hosts[CONFIG_MAX_HOSTS];
static const char *config_hosts_view[CONFIG_MAX_HOSTS];
static char *config_data_dir, *config_listen, *config_log_level, *config_database_url;

/* t[a][b], or t[a] when b is NULL. The schema filled every key, so a missing one is a bug in
 * config_schema.lua: it is counted and read as 0, never replaced by a number of our own. */
static int config_missing;

static double config_num(lua_State *L, int t, const char *a, const char *b)
{
    double v = 0;
    lua_getfield(L, t, a); /* stack: ... section */
    if (b && lua_istable(L, -1)) {
        lua_getfield(L, -1, b); /* stack: ... section value */
        config_missing += !lua_isnumber(L, -1);
        v = lua_tonumber(L, -1);
        lua_pop(L, 1);
    } else {
        config_missing += !lua_isnumber(L, -1);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static char *config_str(lua_State *L, int t, const char *key)
{
    char *v = NULL;
    lua_getfield(L, t, key);
    if (lua_type(L, -1) == LUA_TSTRING) {
        v = strdup(lua_tostring(L, -1));
        config_missing += !v; /* out of memory: the settings are refused, not half-read */
    }
    lua_pop(L, 1);
    return v;
}

static void config_free_hosts(void)
{
    for (size_t i = 0; i < CONFIG_MAX_HOSTS; i++) {
        free(config_hosts[i]);
        config_hosts[i] = NULL;
    }
}

void config_free(void)
{
    config_free_hosts();
    free(config_data_dir);
    free(config_listen);
    free(config_log_level);
    free(config_database_url);
    config_data_dir = config_listen = config_log_level = config_database_url = NULL;
}

int config_read_settings(lua_State *L, int idx, struct core_settings *s, int reload)
{
    int t = lua_absindex(L, idx);
    size_t n = 0;

    /* On reload only the HTTP limits and the log level change: the rest (data dir, listen
     * address, socket timings) was handed to other modules at start-up and stays. */
    config_free_hosts();
    config_missing = 0;
    s->http.timeout = config_num(L, t, "http", "timeout");
    s->http.connect_timeout = config_num(L, t, "http", "connect_timeout");
    s->http.max_concurrent = (int)config_num(L, t, "http", "max_concurrent");
    s->http.max_retries = (int)config_num(L, t, "http", "max_retries");
    s->http.max_retry_time = config_num(L, t, "http", "max_retry_time");
    s->http.download_max_bytes = (long long)config_num(L, t, "downloads", "max_bytes");
    s->http.download_concurrency = (int)config_num(L, t, "downloads", "concurrency");
    s->http.download_timeout = config_num(L, t, "downloads", "timeout");

    lua_getfield(L, t, "downloads"); /* stack: downloads */
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "allowed_hosts"); /* stack: downloads hosts */
        if (lua_istable(L, -1)) {
            lua_Integer len = luaL_len(L, -1);
            for (lua_Integer i = 1; i <= len && n < CONFIG_MAX_HOSTS; i++) {
                lua_rawgeti(L, -1, i); /* stack: downloads hosts host */
                if (lua_type(L, -1) == LUA_TSTRING) {
                    config_hosts[n] = strdup(lua_tostring(L, -1));
                    config_hosts_view[n] = config_hosts[n];
                    config_missing += !config_hosts[n];
                    n += config_hosts[n] != NULL;
                }
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    s->http.allowed_hosts = config_hosts_view;
    s->http.allowed_hosts_n = n;

    free(config_log_level);
    config_log_level = config_str(L, t, "log_level");
    s->log_level = config_log_level;
    config_missing += !config_log_level;
    if (reload) {
        return config_missing ? -1 : 0;
    }
    s->sm.ping_interval = config_num(L, t, "socket", "ping_interval");
    s->sm.pong_timeout = config_num(L, t, "socket", "pong_timeout");
    s->sm.close_timeout = config_num(L, t, "socket", "close_timeout");
    s->sm.max_frame = (size_t)config_num(L, t, "socket", "max_frame");
    s->sm.dedupe_ttl = config_num(L, t, "socket", "dedupe_ttl");
    s->sm.dedupe_max = (size_t)config_num(L, t, "socket", "dedupe_max");

    free(config_data_dir);
    free(config_listen);
    config_data_dir = config_str(L, t, "data_dir");
    config_listen = config_str(L, t, "listen");
    s->data_dir = config_data_dir;
    s->listen = config_listen;
    free(config_database_url);
    config_database_url = NULL;
    lua_getfield(L, t, "database"); /* stack: database */
    if (lua_istable(L, -1)) {
        config_database_url = config_str(L, lua_gettop(L), "url");
    }
    lua_pop(L, 1);
    s->database_url = config_database_url;
    s->jobs.ack_timeout = config_num(L, t, "database", "ack_timeout");
    s->jobs.lease = config_num(L, t, "database", "lease");
    s->jobs.renew = config_num(L, t, "database", "renew");
    s->jobs.sweep = config_num(L, t, "database", "sweep");
    return config_missing ? -1 : 0;
}
