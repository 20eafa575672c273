-- Time labels for the timeline: clock and date of a ts in a zone (one host.time_parts call each),
-- day-change detection, and human durations ("45s", "5m", "12m 30s", "1h 05m", "2d 03h 10m").
-- Called by lib/timeline.lua and lib/figures.lua; calls host.time_parts and lib/tsutil.lua.
local host = require "host"
local tsutil = require "lib.tsutil"

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

-- The hot path of a big timeline: "HH:MM" and the date are asked of the host once per minute of
-- a zone and reused for the other messages of that minute (zone offsets are whole minutes).
local SECONDS = {}
for s = 0, 59 do SECONDS[s] = string.format(":%02d", s) end
local minutes = {}        -- zone -> { [epoch minute] = { hm =, date = } }
local minutes_count = 0
local MINUTES_MAX = 20000

-- clock "14:03:05" and date "2024-11-14" of a ts (string or number) in zone.
function timefmt.clock_and_date(epoch_or_ts, zone)
  local whole
  if tsutil.is_canonical(epoch_or_ts) then
    whole = tonumber(epoch_or_ts:sub(1, 10)) -- the usual ts: 10 digits of seconds (an integer)
  else
    whole = type(epoch_or_ts) == "number" and math.floor(epoch_or_ts)
      or math.tointeger(tonumber(tostring(epoch_or_ts):match("^%d+")))
  end
  if not whole then
    local l = timefmt.labels(epoch_or_ts, zone)
    return l.clock, l.date
  end
  local minute = whole // 60
  local by_zone = minutes[zone]
  if not by_zone or minutes_count > MINUTES_MAX then
    if minutes_count > MINUTES_MAX then
      minutes, minutes_count = {}, 0
    end
    by_zone = {}
    minutes[zone] = by_zone
  end
  local m = by_zone[minute]
  if not m then
    local p = host.time_parts(minute * 60, zone)
    m = { hm = string.format("%02d:%02d", p.hour, p.min), date = string.format("%04d-%02d-%02d", p.year, p.month, p.day) }
    by_zone[minute] = m
    minutes_count = minutes_count + 1
  end
  return m.hm .. SECONDS[whole % 60], m.date
end

-- "14:03:05" in zone, prefixed by the date when `with_date` ("2024-11-14 14:03:05").
function timefmt.label(epoch_or_ts, zone, with_date)
  local l = timefmt.labels(epoch_or_ts, zone)
  if with_date then return l.date .. " " .. l.clock end
  return l.clock
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
