/* md_escape.c — host.escape_markdown(text): the escaping every piece of user text gets on its way
 * into the report's Markdown, in C. lib/markdown.lua's escape_chars calls it when the host has it
 * and keeps its own Lua version, which defines the result (the specs run it; the unit test
 * tests/c/test_md_escape.c compares the two over generated texts): a backslash before each
 * character that can start inline Markdown (\ ` * _ [ ] < > # | ! ~), then "&" as "&amp;" where
 * the escaped text has "&", one or more ASCII letters or digits, and ";" (an entity reference). A
 * 20,000-message report escapes ~100,000 pieces: in Lua that was a tenth of the render. */
#include "host/md_escape.h"

#include <lauxlib.h>

/* 1 for the bytes that get a backslash */
static const unsigned char md_special[256] = {
    ['\\'] = 1, ['`'] = 1, ['*'] = 1, ['_'] = 1, ['['] = 1, [']'] = 1,
    ['<'] = 1,  ['>'] = 1, ['#'] = 1, ['|'] = 1, ['!'] = 1, ['~'] = 1,
};

static int md_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Does s[i..] (the text after an "&") read as an entity's name and ";" once escaped? A "#" would
 * be escaped ("\#"), so only letters and digits, then ";", qualify. */
static int md_entity_follows(const char *s, size_t i, size_t len)
{
    size_t j = i;
    while (j < len && md_alnum((unsigned char)s[j])) {
        j++;
    }
    return j > i && j < len && s[j] == ';';
}

int md_escape_lua(lua_State *L)
{
    size_t len, i;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (md_special[c] || (c == '&' && md_entity_follows(s, i + 1, len))) {
            break;
        }
    }
    if (i == len) {
        lua_settop(L, 1); /* nothing to escape: the same string */
        return 1;
    }
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, s, i);
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (md_special[c]) {
            luaL_addchar(&b, '\\');
            luaL_addchar(&b, (char)c);
        } else if (c == '&' && md_entity_follows(s, i + 1, len)) {
            luaL_addlstring(&b, "&amp;", 5);
        } else {
            luaL_addchar(&b, (char)c);
        }
    }
    luaL_pushresult(&b);
    return 1;
}
