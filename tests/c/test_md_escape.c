/* test_md_escape.c — host.escape_markdown (core/host/md_escape.c) against the Lua version it
 * replaces, scripts/lib/markdown.lua's escape_chars_lua (loaded from the repository: run from its
 * root, as tests/run_all.py does): the same result for hand-written texts (every special, entity
 * references and near misses, "&" at the end, bytes past ASCII and NUL) and for generated ones.
 * PMB_MD_ESCAPE_CASES=N sets how many generated texts (default 200000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/md_escape.h"

#define TEST_DEFAULT_CASES 200000

/* A state with lib.markdown's Lua escaping as global `lua_escape` and ours as `c_escape`. */
static lua_State *test_state(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    int rc = luaL_dostring(L, "package.path = 'scripts/?.lua;' .. package.path\n"
                              "lua_escape = require('lib.markdown').escape_chars_lua\n");
    if (rc != LUA_OK) {
        fail_msg("loading lib.markdown: %s", lua_tostring(L, -1));
    }
    lua_pushcfunction(L, md_escape_lua);
    lua_setglobal(L, "c_escape");
    return L;
}

/* Both escapes of s (len bytes); fails naming the text when they differ. */
static void test_same(lua_State *L, const char *s, size_t len)
{
    size_t a_len, b_len;
    lua_getglobal(L, "lua_escape");
    lua_pushlstring(L, s, len);
    lua_call(L, 1, 1);
    lua_getglobal(L, "c_escape");
    lua_pushlstring(L, s, len);
    lua_call(L, 1, 1);
    const char *a = lua_tolstring(L, -2, &a_len);
    const char *b = lua_tolstring(L, -1, &b_len);
    if (a_len != b_len || memcmp(a, b, a_len) != 0) {
        fail_msg("for [%.*s]: Lua gives [%.*s], C gives [%.*s]", (int)len, s, (int)a_len, a,
                 (int)b_len, b);
    }
    lua_pop(L, 2);
}

static void test_fixed_texts(void **state)
{
    static const char *texts[] = {
        "",
        "plain text, nothing to do: 42 (ok) - yes.",
        "\\ ` * _ [ ] < > # | ! ~",
        "**bold** _it_ `code` [link](url) <b> # head | cell ! ~~strike~~",
        "&amp; &copy; &#60; &#x3C; &x; &; & ; &a b; &1; &Abc9;",
        "AT&T, R&D&amp;, fish & chips, &&amp;&&",
        "ends with &",
        "ends with &amp",
        "&copy",
        "&\\#60;",
        "caf\xc3\xa9 &\xc3\xa9; \xe2\x9c\x85 * \xff",
        "https://x.example/a?b=1&c=2&d;e",
        "a&b;c&d;e&f",
    };
    lua_State *L = test_state();
    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        test_same(L, texts[i], strlen(texts[i]));
    }
    test_same(L, "nul\0inside & *", 14);
    lua_close(L);
}

static void test_generated_texts(void **state)
{
    /* mostly the bytes that matter, with letters, digits and some of everything else */
    static const char alphabet[] = "\\`*_[]<>#|!~&&&;;#aZ09 x.\n\t%()-";
    const char *env = getenv("PMB_MD_ESCAPE_CASES");
    long cases = env ? strtol(env, NULL, 10) : TEST_DEFAULT_CASES;
    lua_State *L = test_state();
    unsigned long seed = 12345;
    char text[40];
    (void)state;
    for (long n = 0; n < cases; n++) {
        seed = seed * 6364136223846793005UL + 1442695040888963407UL;
        size_t len = (size_t)(seed >> 33) % sizeof text;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            unsigned pick = (unsigned)(seed >> 33);
            text[i] =
                pick % 8 == 0 ? (char)(pick >> 8) : alphabet[(pick >> 3) % (sizeof alphabet - 1)];
        }
        test_same(L, text, len);
    }
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_texts),
        cmocka_unit_test(test_generated_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
