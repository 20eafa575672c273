-- Benchmark: time to build the view and render the default postmortem template for a
-- 10,000-entry timeline (plus one image, one file and one alert per 10 entries). Run from the repo
-- root: lua5.4 bench/render_bench.lua [ENTRIES]. Stubs the C host (time, templates from disk);
-- calls lib/report.lua, which calls lib/templates.lua and lib/mustache.lua. Prints one line.
package.path = "scripts/?.lua;scripts/?/init.lua;tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"

local templates = stub.disk_templates()

package.loaded.host = {
  templates = function() return templates end,
  generation = function() return 1 end,
  config = function() return { timezone = "UTC", report = { template = "postmortem.md" } } end,
  now = function() return os.time() end,
  time_parts = stub.utc_time_parts,
  format_time = stub.utc_format_time,
}

local report = require "lib.report"
local N = tonumber(arg and arg[1]) or 10000
local start = 1731624000

local entries = {}
for i = 1, N do
  local t = start + i * 7
  local e = {
    ts = string.format("%d.%06d", t, i), time = t,
    time_label = os.date("!%H:%M:%S", t),
    date_label = (i == 1 or (t // 86400) ~= ((t - 7) // 86400)) and os.date("!%Y-%m-%d", t) or nil,
    author = { id = "U" .. (i % 12), name = "Person " .. (i % 12) },
    text_md = "Update " .. i .. ": **error rate** at " .. (i % 40) .. "% on `checkout-api`, see\n"
      .. "[the dashboard](https://grafana.example.com/d/" .. i .. ")",
    permalink = string.format("https://acme.slack.com/archives/C0INCIDENT/p%d%06d", t, i),
    files = {}, attachments = {}, marks = {}, reactions = {},
  }
  if i % 10 == 0 then
    e.files = {
      { id = "F" .. i, name = "graph-" .. i .. ".png", title = "graph " .. i, kind = "image",
        local_path = "attachments/F" .. i .. "-graph-" .. i .. ".png", size = 20480 },
      { id = "G" .. i, name = "log-" .. i .. ".txt", kind = "file",
        local_path = "attachments/G" .. i .. "-log-" .. i .. ".txt", size = 4096 },
    }
    e.attachments = { { title = "[FIRING:1] HighErrorRate", title_link = "https://grafana.example.com/a",
                        text_md = "5xx above 5%", fields = { { title = "severity", value_md = "critical" } } } }
  end
  entries[i] = e
end

local timeline = {
  channel = "C0INCIDENT", channel_name = "incidents", thread_ts = entries[1].ts, zone = "UTC",
  complete = true, fetched = N, expected = N, entries = entries, dropped = {},
  figures = { start = { ts = entries[1].ts, time = entries[1].time, label = entries[1].time_label,
                        permalink = entries[1].permalink } },
  files = { downloaded = N // 5, missing = 0, bytes = N * 2458 },
}

local t0 = os.clock()
local md = report.render(timeline)
local first = os.clock() - t0
t0 = os.clock()
report.render(timeline)
local second = os.clock() - t0
print(string.format("render_bench: %d entries -> %.1f MB of Markdown in %.3f s (first, parsing templates), "
  .. "%.3f s (second); %.1f us per entry", N, #md / 1e6, first, second, second / N * 1e6))
