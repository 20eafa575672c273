/* json.c — JSON for the C side, decoded by lua-cjson in a small core-owned lua_State.
 * The state is created once and never reloaded; each parsed document is a table anchored in its
 * registry. Callers (http.c, socketmode.c, main.c) read a few fields by dotted path. */
#include "base/json.h"

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

struct json_doc {
    int ref;
};

static lua_State *json_L;
static int json_decode_ref = LUA_NOREF;
static int json_encode_ref = LUA_NOREF;

int json_init(void)
{
    if (json_L) {
        return 0;
    }
    json_L = luaL_newstate();
    if (!json_L) {
        return -1;
    }
    luaL_requiref(json_L, "_G", luaopen_base, 0);
    lua_pop(json_L, 1);
    luaopen_cjson(json_L);              /* stack: cjson */
    lua_getfield(json_L, -1, "decode"); /* stack: cjson decode */
    json_decode_ref = luaL_ref(json_L, LUA_REGISTRYINDEX);
    lua_getfield(json_L, -1, "encode");
    json_encode_ref = luaL_ref(json_L, LUA_REGISTRYINDEX);
    lua_pop(json_L, 1);
    return 0;
}

void json_shutdown(void)
{
    if (json_L) {
        lua_close(json_L);
        json_L = NULL;
    }
}

struct json_doc *json_parse(const char *text, size_t len)
{
    struct json_doc *doc;
    if (!json_L && json_init() < 0) {
        return NULL;
    }
    lua_rawgeti(json_L, LUA_REGISTRYINDEX, json_decode_ref);
    lua_pushlstring(json_L, text, len);
    if (lua_pcall(json_L, 1, 1, 0) != LUA_OK || !lua_istable(json_L, -1)) {
        lua_pop(json_L, 1);
        return NULL;
    }
    doc = malloc(sizeof *doc);
    if (!doc) {
        lua_pop(json_L, 1);
        return NULL;
    }
    doc->ref = luaL_ref(json_L, LUA_REGISTRYINDEX);
    return doc;
}

void json_free(struct json_doc *doc)
{
    if (!doc) {
        return;
    }
    luaL_unref(json_L, LUA_REGISTRYINDEX, doc->ref);
    free(doc);
    /* documents can be large (a page of 200 messages): let the collector catch up */
    lua_gc(json_L, LUA_GCSTEP, 0);
}

/* Push the value at a dotted path (or nil). Leaves exactly one value on the stack. */
static void json_push_path(struct json_doc *doc, const char *path)
{
    char key[128];
    lua_rawgeti(json_L, LUA_REGISTRYINDEX, doc->ref);
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key || !lua_istable(json_L, -1)) {
            lua_pop(json_L, 1);
            lua_pushnil(json_L);
            return;
        }
        memcpy(key, path, n);
        key[n] = '\0';
        lua_getfield(json_L, -1, key); /* stack: parent child */
        lua_remove(json_L, -2);
        path += n;
        if (*path == '.') {
            path++;
        }
    }
}

int json_get_string(struct json_doc *doc, const char *path, char *buf, size_t size)
{
    size_t len;
    const char *s;
    int rc = -1;
    json_push_path(doc, path);
    if (lua_type(json_L, -1) == LUA_TSTRING && size > 0) {
        s = lua_tolstring(json_L, -1, &len);
        if (len >= size) {
            len = size - 1;
        }
        memcpy(buf, s, len);
        buf[len] = '\0';
        rc = 0;
    }
    lua_pop(json_L, 1);
    return rc;
}

int json_get_number(struct json_doc *doc, const char *path, double *out)
{
    int rc = -1;
    json_push_path(doc, path);
    if (lua_type(json_L, -1) == LUA_TNUMBER) {
        *out = lua_tonumber(json_L, -1);
        rc = 0;
    }
    lua_pop(json_L, 1);
    return rc;
}

int json_get_bool(struct json_doc *doc, const char *path, int *out)
{
    int rc = -1;
    json_push_path(doc, path);
    if (lua_type(json_L, -1) == LUA_TBOOLEAN) {
        *out = lua_toboolean(json_L, -1);
        rc = 0;
    }
    lua_pop(json_L, 1);
    return rc;
}

int json_has(struct json_doc *doc, const char *path)
{
    int has;
    json_push_path(doc, path);
    has = !lua_isnil(json_L, -1);
    lua_pop(json_L, 1);
    return has;
}

char *json_encode_pair(const char *key, const char *value)
{
    const char *s;
    size_t len;
    char *out = NULL;
    if (!json_L && json_init() < 0) {
        return NULL;
    }
    lua_rawgeti(json_L, LUA_REGISTRYINDEX, json_encode_ref);
    lua_createtable(json_L, 0, 1);
    lua_pushstring(json_L, value);
    lua_setfield(json_L, -2, key);
    if (lua_pcall(json_L, 1, 1, 0) == LUA_OK) {
        s = lua_tolstring(json_L, -1, &len);
        out = malloc(len + 1);
        if (out) {
            memcpy(out, s, len + 1);
        }
    }
    lua_pop(json_L, 1);
    return out;
}
