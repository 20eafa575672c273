/* json.c — JSON for the C side, decoded by lua-cjson in a small core-owned lua_State.
 * Each thread that uses it (the script loop, the transport thread) has its own state, created on
 * first use and never reloaded; each parsed document is a table anchored in its registry. Callers
 * (http.c, socketmode.c, main.c) read a few fields by dotted path. */
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

static _Thread_local lua_State *json_L;
static _Thread_local int json_decode_ref = LUA_NOREF;
static _Thread_local int json_encode_ref = LUA_NOREF;

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

static int json_hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* JSON's grammar allows an escaped UTF-16 surrogate without its pair ("\ud800"); lua-cjson
 * refuses the whole document for it. Rewrite each unpaired one as U+FFFD (same length, in a
 * copy) so that the rest of the document, an envelope id above all, can still be read. Returns
 * NULL when there was nothing to rewrite (or no memory). */
static char *json_replace_lone_surrogates(const char *text, size_t len)
{
    char *copy = NULL;
    for (size_t i = 0; i + 6 <= len; i++) {
        unsigned u, low;
        if (text[i] != '\\') {
            continue;
        }
        if (text[i + 1] != 'u' || json_hex4(text + i + 2, &u) < 0) {
            i++; /* another escape: skip its second character */
            continue;
        }
        int paired = u >= 0xD800 && u <= 0xDBFF && i + 12 <= len && text[i + 6] == '\\' &&
                     text[i + 7] == 'u' && json_hex4(text + i + 8, &low) == 0 && low >= 0xDC00 &&
                     low <= 0xDFFF;
        if (paired) {
            i += 11;
            continue;
        }
        if (u >= 0xD800 && u <= 0xDFFF) {
            if (!copy) {
                copy = malloc(len + 1);
                if (!copy) {
                    return NULL;
                }
                memcpy(copy, text, len);
                copy[len] = '\0';
            }
            memcpy(copy + i + 2, "fffd", 4);
        }
        i += 5;
    }
    return copy;
}

static int json_decode_top(const char *text, size_t len)
{
    lua_rawgeti(json_L, LUA_REGISTRYINDEX, json_decode_ref);
    lua_pushlstring(json_L, text, len);
    if (lua_pcall(json_L, 1, 1, 0) != LUA_OK || !lua_istable(json_L, -1)) {
        lua_pop(json_L, 1);
        return -1;
    }
    return 0; /* stack: doc */
}

struct json_doc *json_parse(const char *text, size_t len)
{
    struct json_doc *doc;
    if (!json_L && json_init() < 0) {
        return NULL;
    }
    if (json_decode_top(text, len) < 0) {
        char *fixed = json_replace_lone_surrogates(text, len);
        int rc = fixed ? json_decode_top(fixed, len) : -1;
        free(fixed);
        if (rc < 0) {
            return NULL;
        }
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

/* The string at path: a pointer into the decoder's state (valid until the next call on this
 * thread) and its length, or NULL. Pops what it pushed either way. */
static const char *json_peek_string(struct json_doc *doc, const char *path, size_t *len)
{
    const char *s = NULL;
    json_push_path(doc, path);
    if (lua_type(json_L, -1) == LUA_TSTRING) {
        s = lua_tolstring(json_L, -1, len);
    }
    /* the document still anchors the string, so the pointer outlives the pop */
    lua_pop(json_L, 1);
    return s;
}

int json_get_string(struct json_doc *doc, const char *path, char *buf, size_t size)
{
    size_t len;
    const char *s = json_peek_string(doc, path, &len);
    if (!s || size == 0) {
        return -1;
    }
    if (len >= size) {
        len = size - 1;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

char *json_get_string_dup(struct json_doc *doc, const char *path, size_t *len_out)
{
    size_t len;
    const char *s = json_peek_string(doc, path, &len);
    char *out = s ? malloc(len + 1) : NULL;
    if (!out) {
        return NULL;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    if (len_out) {
        *len_out = len;
    }
    return out;
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
    return json_encode_pair_n(key, value, strlen(value));
}

char *json_encode_pair_n(const char *key, const char *value, size_t value_len)
{
    const char *s;
    size_t len;
    char *out = NULL;
    if (!json_L && json_init() < 0) {
        return NULL;
    }
    lua_rawgeti(json_L, LUA_REGISTRYINDEX, json_encode_ref);
    lua_createtable(json_L, 0, 1);
    lua_pushlstring(json_L, value, value_len);
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

char *json_encode_object(const struct json_field *fields, size_t n, size_t *len_out)
{
    const char *s;
    size_t len;
    char *out = NULL;
    if (!json_L && json_init() < 0) {
        return NULL;
    }
    lua_rawgeti(json_L, LUA_REGISTRYINDEX, json_encode_ref);
    lua_createtable(json_L, 0, (int)n); /* stack: encode obj */
    for (size_t i = 0; i < n; i++) {
        switch (fields[i].type) {
        case JSON_FIELD_STRING:
            lua_pushstring(json_L, fields[i].str ? fields[i].str : "");
            break;
        case JSON_FIELD_NUMBER:
            lua_pushnumber(json_L, fields[i].num);
            break;
        case JSON_FIELD_BOOL:
            lua_pushboolean(json_L, fields[i].num != 0);
            break;
        }
        lua_setfield(json_L, -2, fields[i].key);
    }
    if (lua_pcall(json_L, 1, 1, 0) == LUA_OK) {
        s = lua_tolstring(json_L, -1, &len);
        out = malloc(len + 2);
        if (out) {
            memcpy(out, s, len);
            out[len] = '\n';
            out[len + 1] = '\0';
            if (len_out) {
                *len_out = len + 1;
            }
        }
    }
    lua_pop(json_L, 1);
    return out;
}
