-- Time labels for the timeline: clock and date of a ts in a zone (one host.time_parts call each),
-- day-change detection, and human durations ("45s", "5m", "12m 30s", "1h 05m", "2d 03h 10m").
-- Called by lib/timeline.lua and lib/figures.lua; calls host.time_parts.
local host = require "host"

local timefmt = {}

-- { clock = "14:03:05", short = "14:03", date = "2024-11-14", abbrev = "CET" }
function timefmt.labels(epoch_or_ts, zone)
  local p = host.time_parts(epoch_or_ts, zone)
  local short = string.format("%02d:%02d", p.hour, p.min)
  return {
    clock = string.format("%s:%02d", short, p.sec),
    short = short,
    date = string.format("%04d-%02d-%02d", p.year, p.month, p.day),
    abbrev = p.abbrev,
  }
end

-- clock "14:03:05" and date "2024-11-14" of a ts (string or number) in zone. One host call per
-- label: the host reads each zone's rules once (core/base/tzfile.c), so no cache is needed here.
function timefmt.clock_and_date(epoch_or_ts, zone)
  local p = host.time_parts(epoch_or_ts, zone)
  return string.format("%02d:%02d:%02d", p.hour, p.min, p.sec),
    string.format("%04d-%02d-%02d", p.year, p.month, p.day)
end

-- "14:03:05" in zone, prefixed by the date when `with_date` ("2024-11-14 14:03:05").
function timefmt.label(epoch_or_ts, zone, with_date)
  local clock, date = timefmt.clock_and_date(epoch_or_ts, zone)
  if with_date then return date .. " " .. clock end
  return clock
end

-- A duration in seconds as people say it. Negative durations keep their sign.
function timefmt.duration(seconds)
  seconds = math.floor(seconds or 0)
  if seconds < 0 then return "-" .. timefmt.duration(-seconds) end
  local d = seconds // 86400
  local h = (seconds % 86400) // 3600
  local m = (seconds % 3600) // 60
  local s = seconds % 60
  if d > 0 then return string.format("%dd %02dh %02dm", d, h, m) end
  if h > 0 then return string.format("%dh %02dm", h, m) end
  if m > 0 and s > 0 then return string.format("%dm %02ds", m, s) end
  if m > 0 then return string.format("%dm", m) end
  return string.format("%ds", s)
end

return timefmt
