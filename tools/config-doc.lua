-- tools/config-doc.lua — prints README.md with its config reference (between the
-- "config-reference" markers) regenerated from scripts/lib/config_schema.lua. `make readme` runs
-- it; tests/lua/config_schema_spec.lua fails when README.md differs from what this prints.
-- Usage (from the repository root): lua5.4 tools/config-doc.lua README.md > README.md.new
package.path = "scripts/?.lua;" .. package.path
local schema = require "lib.config_schema"

local BEGIN = "<!-- config-reference: generated from scripts/lib/config_schema.lua by `make readme` -->"
local END = "<!-- end of config-reference -->"

local f = assert(io.open(arg[1] or "README.md", "rb"))
local text = f:read("a")
f:close()
local a = text:find(BEGIN, 1, true)
local b = text:find(END, 1, true)
if not a or not b then
  io.stderr:write("config-doc: README.md has no config-reference markers\n")
  os.exit(1)
end
io.write(text:sub(1, a - 1), BEGIN, "\n\n", schema.reference(), "\n", text:sub(b))
