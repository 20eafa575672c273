-- A sampling profiler for the report's Lua (issue 18): builds the timeline of a saved thread and
-- renders the default template, as `render` does, with a count hook that fires every 1,000 VM
-- instructions and charges the CPU time since the last firing to the running function (self) and
-- to every function on the stack (inclusive), so time inside C calls (gsub, concat) counts for
-- the Lua function that made them. Prints the phases' times without the hook, then the top
-- functions. The host is stubbed (UTC, templates from disk), so this times the Lua libraries alone.
-- Run from the repo root:  python3 bench/gen_thread.py /tmp/t20k
--                          lua5.4 bench/profile_render.lua /tmp/t20k [TOP]
package.path = "scripts/?.lua;scripts/?/init.lua;tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"
package.loaded.host = stub.offline_host({ "filters.10-drop-bot-self", "filters.20-drop-joins",
  "filters.30-drop-command", "filters.40-collapse-alert-storms", "filters.50-mark-status" })
local timeline = require "lib.timeline"
local report = require "lib.report"

local dir = assert(arg[1], "usage: lua5.4 bench/profile_render.lua DIR [TOP]")
local top = tonumber(arg[2]) or 12
local messages, people = stub.saved_thread(dir)

local self_n, incl_n, total, last = {}, {}, 0, 0
local function name_of(info)
  return string.format("%s:%d %s", info.short_src, info.linedefined, info.name or "?")
end
local function sample()
  local now = os.clock()
  local dt = now - last
  last = now
  total = total + dt
  local seen = {}
  local level = 2
  while true do
    local info = debug.getinfo(level, "Sn")
    if not info then break end
    local key = info.what == "C" and ("[C] " .. (info.name or "?")) or name_of(info)
    if level == 2 then self_n[key] = (self_n[key] or 0) + dt end
    if not seen[key] then
      seen[key] = true
      incl_n[key] = (incl_n[key] or 0) + dt
    end
    level = level + 1
  end
  last = os.clock() -- the hook's own time is nobody's
end

local function build()
  return timeline.build(messages, { channel = "C0BENCH", people = people, config = { timezone = "UTC" },
                                    offline = true })
end
local t0 = os.clock()
local t = build()
local t1 = os.clock()
report.render(t, { config = { timezone = "UTC" } })
print(string.format("without the hook: timeline.build %.3f s, report.render %.3f s", t1 - t0, os.clock() - t1))

t0 = os.clock()
last = t0
debug.sethook(sample, "", 1000)
t = build()
local md = report.render(t, { config = { timezone = "UTC" } })
debug.sethook()
local elapsed = os.clock() - t0

local function print_top(title, counts)
  local keys = {}
  for k in pairs(counts) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return counts[a] > counts[b] end)
  print(title)
  for i = 1, math.min(top, #keys) do
    print(string.format("  %5.1f%%  %s", 100 * counts[keys[i]] / total, keys[i]))
  end
end
print(string.format("profile_render: %d messages -> %d entries, %.1f MB of Markdown, %.2f s with the hook",
  #messages, #t.entries, #md / 1e6, elapsed))
print_top("self (CPU time while the function ran, C calls it made included):", self_n)
print_top("inclusive (CPU time while the function was on the stack):", incl_n)
