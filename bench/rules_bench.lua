-- The filter rules alone (issue 18): builds the timeline of a saved thread with no rules, gives
-- each entry its message back (entry.raw), then runs each rule of scripts/filters/ in file order over
-- the entries the rule before it kept, and prints the milliseconds each took, three times: "read"
-- is what runs as each page is read (an each rule, a prepare: while the next page is on the wire in
-- the bot), "end" what runs once all are read (apply). The host is stubbed (UTC, no bot, no pins),
-- so this times the rules' Lua alone (lua5.4, glibc's malloc).
-- Run from the repo root:  python3 bench/gen_thread.py /tmp/t20k
--                          lua5.4 bench/rules_bench.lua /tmp/t20k
package.path = "scripts/?.lua;scripts/?/init.lua;tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"

local names = {}
for file in io.popen("ls scripts/filters"):lines() do
  if file:match("%.lua$") then names[#names + 1] = "filters." .. file:gsub("%.lua$", "") end
end
table.sort(names)

package.loaded.host = stub.offline_host(names)
local timeline = require "lib.timeline"
local filters = require "lib.filters"

local dir = assert(arg[1], "usage: lua5.4 bench/rules_bench.lua DIR")
local messages, people = stub.saved_thread(dir)
local config = { timezone = "UTC" }
local rules = filters.load(names)
local t = timeline.build(messages, { channel = "C0BENCH", people = people, config = config, offline = true,
                                     rules = {} })
local by_ts = {}
for _, m in ipairs(messages) do by_ts[m.ts] = m end
for _, e in ipairs(t.entries) do e.raw = by_ts[e.ts] end
print(string.format("rules_bench: %d entries, %d rules (ms each, in order: as read + at the end)", #t.entries, #rules))
for _ = 1, 3 do
  local line, read_total, end_total, current = {}, 0, 0, t.entries
  for _, rule in ipairs(rules) do
    local stream = filters.stream({ rule }, { config = config, bot = {}, pinned = {} })
    local started = os.clock()
    stream.add(current)
    local added = os.clock()
    current = stream.finish(false)
    local done = os.clock()
    read_total, end_total = read_total + (added - started) * 1000, end_total + (done - added) * 1000
    line[#line + 1] = string.format("%s %.1f+%.1f", rule.name, (added - started) * 1000, (done - added) * 1000)
  end
  print(string.format("  %s | read %.1f ms, end %.1f ms", table.concat(line, ", "), read_total, end_total))
end
