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

-- clock "14:03:05" and date "2024-11-14" of a ts (string or number) in zone. One host call per
-- label: the host reads each zone's rules once (core/base/tzfile.c), so no cache is needed here.
function timefmt.clock_and_date(epoch_or_ts, zone)
  local p = host.time_parts(epoch_or_ts, zone)
  return string.format("%02d:%02d:%02d", p.hour, p.min, p.sec),
    string.format("%04d-%02d-%02d", p.year, p.month, p.day)
end

-- The clock and date of every message of a big timeline (20,000 host calls, 20,000 tables and
-- 40,000 string.format otherwise): timefmt.clocks(zone) returns a function ts -> clock, date that
-- gives what clock_and_date gives. It asks the host for the zone's offset once per UTC hour, at the
-- hour's first and last second; when both agree (and the host's clock and date there are the
-- arithmetic on that offset), no change of offset falls inside the hour (a zone would have to
-- change it twice within the hour; the tz database's closest changes are days apart), and every
-- label of that hour is arithmetic. Otherwise, and for a ts that is not canonical
-- (lib/tsutil.lua), the host is asked as clock_and_date does. One function per build: its caches
-- live as long as the timeline being built.
local HOUR = 3600
local SECONDS = {} -- [s] = ":SS"
for s = 0, 59 do SECONDS[s] = string.format(":%02d", s) end
local HOURS_MINUTES = {} -- [minute of the day] = "HH:MM", filled as needed (1,440 at most)

-- year, month, day of a count of days since 1970-01-01 (proleptic Gregorian, as gmtime; the
-- inverse of Howard Hinnant's days_from_civil). `//` floors, so negative days need no special case.
local function civil_from_days(days)
  local z = days + 719468
  local era = z // 146097
  local doe = z - era * 146097                                         -- [0, 146096]
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365 -- [0, 399]
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)                 -- [0, 365]
  local mp = (5 * doy + 2) // 153                                       -- [0, 11], March first
  local day = doy - (153 * mp + 2) // 5 + 1
  local month = mp < 10 and mp + 3 or mp - 9
  return yoe + era * 400 + (month <= 2 and 1 or 0), month, day
end

-- Does the host's p (for UTC second t) say what offset arithmetic says?
local function parts_agree(p, t, offset)
  local here = t + offset
  local sod = here % 86400
  local year, month, day = civil_from_days(here // 86400)
  return p.hour == sod // 3600 and p.min == sod % 3600 // 60 and p.sec == sod % 60
    and p.year == year and p.month == month and p.day == day
end

function timefmt.clocks(zone)
  local offsets = {} -- [UTC hour] = offset, or false: ask the host for each ts of that hour
  local dates = {}   -- [local day since 1970-01-01] = "YYYY-MM-DD"
  local is_canonical, sub, tointeger = tsutil.is_canonical, string.sub, math.tointeger
  local function hour_offset(hour)
    local first, last = hour * HOUR, hour * HOUR + HOUR - 1
    local p, q = host.time_parts(first, zone), host.time_parts(last, zone)
    local offset = tointeger(p.offset)
    if not (offset and offset == q.offset and parts_agree(p, first, offset) and parts_agree(q, last, offset)) then
      offset = false
    end
    offsets[hour] = offset
    return offset
  end
  return function(ts)
    if not is_canonical(ts) then return timefmt.clock_and_date(ts, zone) end
    local t = tonumber(sub(ts, 1, 10)) -- the whole seconds, as the host reads a ts
    local hour = t // HOUR
    local offset = offsets[hour]
    if offset == nil then offset = hour_offset(hour) end
    if not offset then return timefmt.clock_and_date(ts, zone) end
    local here = t + offset
    local day = here // 86400
    local sod = here - day * 86400
    local date = dates[day]
    if not date then
      date = string.format("%04d-%02d-%02d", civil_from_days(day))
      dates[day] = date
    end
    local minute = sod // 60
    local hm = HOURS_MINUTES[minute]
    if not hm then
      hm = string.format("%02d:%02d", minute // 60, minute % 60)
      HOURS_MINUTES[minute] = hm
    end
    return hm .. SECONDS[sod - minute * 60], date
  end
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
