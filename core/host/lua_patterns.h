/* lua_patterns.h — string.find, string.match, string.gmatch and string.gsub for the script
 * sandbox: Lua 5.4.4's results and error messages, but the matcher counts its work and calls a
 * check function (the CPU budget) every LUA_PATTERNS_CHECK_STEPS units, since no debug hook fires
 * inside a C function. sandbox.c registers them over the sandbox's string table. */
#ifndef LUA_PATTERNS_H
#define LUA_PATTERNS_H

#include <lua.h>

/* Units of work (one character tested against a pattern item, one entry into the recursive
 * matcher, a few bytes compared by a back-reference) between two calls of the check function. */
#define LUA_PATTERNS_CHECK_STEPS 4096

/* Called by the matcher every LUA_PATTERNS_CHECK_STEPS units of work, at a point where it holds
 * no C resources and may raise (luaL_error / lua_error longjmp out). If it returns, whatever it
 * left on the stack is dropped. NULL = never. */
typedef void (*lua_patterns_check_fn)(lua_State *L);

/* Register find, match, gmatch, gsub into the table at the top of the stack (the sandbox's string
 * table). The stack is otherwise unchanged. */
void lua_patterns_register(lua_State *L);

/* One check function for the whole process (set it once, before scripts run). */
void lua_patterns_set_check(lua_patterns_check_fn fn);

#endif
