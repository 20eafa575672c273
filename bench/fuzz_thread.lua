-- Writes N random messages (tests/lua/helpers/fuzz.lua: half plain, half export subtypes) as one
-- saved thread, a JSON array of messages with the first as its root, for bench/render_identical.py
-- to render before and after a change. Run from the repo root:
--   lua5.4 bench/fuzz_thread.lua N FIRST_SEED > thread.json
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local fuzz = require "helpers.fuzz"

local n = tonumber(arg[1]) or 20000
local first = tonumber(arg[2]) or 1
local out = {}
for i = 1, n do
  local seed = first + i - 1
  out[i] = (i % 2 == 0) and fuzz.subtype_message(seed) or fuzz.message(seed)
end
local root_ts = out[1].ts
for _, m in ipairs(out) do
  m.thread_ts = root_ts
end
io.write(cjson.encode(out))
