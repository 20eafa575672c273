/* md_escape.h — host.escape_markdown: lib/markdown.lua's escape_chars in C (md_escape.c). */
#ifndef PMB_MD_ESCAPE_H
#define PMB_MD_ESCAPE_H

#include <lua.h>

/* host.escape_markdown(text) -> text: a backslash before each of \ ` * _ [ ] < > # | ! ~, and
 * "&" as "&amp;" where it would start an entity reference. Registered by primitives_local.c. */
int md_escape_lua(lua_State *L);

#endif
