-- luacheck (Debian lua-check) over scripts/, tests/lua/, tools/ and the boot chunk: `make lint`,
-- and a suite of `make check`. Scripts run on Lua 5.4 in the host's sandbox, with no globals of
-- their own (they `require "host"` and `require "cjson"`); specs run under busted.
std = "lua54"
max_line_length = false
files["tests/lua"] = { std = "+busted" }
-- an empty `if` branch with a comment saying why nothing happens there is a house idiom
ignore = { "542" }
-- timeline.lua reuses the name `jobs` in collect() (a second local of the same name, line 491):
-- harmless; its owner renames it, then this line goes.
files["scripts/lib/timeline.lua"] = { ignore = { "542", "411" } }
