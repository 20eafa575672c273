-- Benchmark: the incident picture for a 10,000-entry timeline (issue 17, goal < 50 ms): the data
-- (incident_picture.data: range, phases, buckets, markers, lanes) and the SVG (the default
-- template through lib/mustache.lua), median of 7 runs. Run from the repo root:
-- lua5.4 bench/picture_bench.lua [ENTRIES]. Stubs the C host (UTC, templates from disk). Prints figures.
package.path = "scripts/?.lua;scripts/?/init.lua;tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"

local templates = stub.disk_templates()
package.loaded.host = {
  templates = function() return templates end,
  time_parts = stub.utc_time_parts,
  format_time = stub.utc_format_time,
  log = function() end,
}
local picture = require "lib.incident_picture"

local N = tonumber(arg and arg[1]) or 10000
local start = 1731624000
local entries = {}
for i = 1, N do
  local t = start + i * 7 -- 10,000 entries: about 19 hours
  local e = { ts = string.format("%d.%06d", t, i), time = t,
              author = { id = "U" .. (i % 9), name = "Person " .. (i % 9), is_bot = i % 9 == 0 },
              marks = {} }
  if i % 50 == 0 then e.marks.status_update = true end
  if i % 97 == 0 then e.merged = { count = 5 } end
  entries[i] = e
end
local function point(i, label) return { ts = entries[i].ts, time = entries[i].time, label = label } end
local timeline = { entries = entries, figures = { start = point(1, "start"), first_response = point(3, "fr"),
                   mitigation = point(N // 2, "mit"), resolution = point(N, "res") } }
local config = { report = { picture = { format = "svg" } } }

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local data_ms, svg_ms, size, markers = {}, {}, 0, 0
for _ = 1, 7 do
  local t0 = os.clock()
  local d = picture.data(timeline, { zone = "UTC", config = config, title = "Bench" })
  local t1 = os.clock()
  local svg = assert(picture.svg({ picture = d }))
  local t2 = os.clock()
  data_ms[#data_ms + 1] = (t1 - t0) * 1000
  svg_ms[#svg_ms + 1] = (t2 - t1) * 1000
  size, markers = #svg, #d.markers
end
local total = median(data_ms) + median(svg_ms)
print(string.format("incident picture, %d entries: data %.1f ms + svg %.1f ms = %.1f ms (median of 7; goal < 50 ms); "
  .. "%d markers, %.1f KB of SVG", N, median(data_ms), median(svg_ms), total, markers, size / 1024))
