-- Time labels for the timeline: clock and date of a ts in a zone (one host.time_parts call each),
-- day-change detection, and human durations ("45s", "5m", "12m 30s", "1h 05m", "2d 03h 10m").
-- Called by lib/timeline.lua and lib/figures.lua; calls host.time_parts and lib/tsutil.lua.
local host = require "host"
local tsutil = require "lib.tsutil"

local timefmt = {}

local is_canonical, sub = tsutil.is_canonical, string.sub

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

-- The hot path of a big timeline (and, in production, each host.time_parts call sets TZ: it is
-- not cheap). Per zone and UTC hour the host is asked once, at the start of the hour. When the
-- zone's offset then is a whole number of hours it holds for the whole hour (such zones change
-- offset on whole UTC hours), and every label of that hour is arithmetic on the offset.
-- Otherwise (Adelaide, St. John's: they may switch at a half hour) the host is asked once per
-- minute of the zone, as the labels of one minute share its offset (offsets are whole minutes).
local SECONDS = {}
for s = 0, 59 do SECONDS[s] = string.format(":%02d", s) end
local HOURS_MINUTES = {} -- [minute of the day] = "HH:MM", filled as needed
local DATES = {}         -- [days since 1970-01-01] = "YYYY-MM-DD", filled as needed
local zones = {}         -- zone -> { hours = { [utc hour] = offset | false }, minutes = { [utc minute] = { hm =, date = } } }
local cached = 0         -- entries in `zones`, forgotten all at once past CACHE_MAX
local CACHE_MAX = 20000

-- year, month, day of a count of days since 1970-01-01 (proleptic Gregorian; the inverse of
-- Howard Hinnant's days_from_civil). `//` floors, so no special case for negative days.
local function civil_from_days(days)
  local z = days + 719468
  local era = z // 146097
  local doe = z - era * 146097                                         -- [0, 146096]
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365 -- [0, 399]
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)                 -- [0, 365]
  local mp = (5 * doy + 2) // 153                                       -- [0, 11], March first
  local day = doy - (153 * mp + 2) // 5 + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return year, month, day
end

local function date_of_days(days)
  local d = DATES[days]
  if not d then
    d = string.format("%04d-%02d-%02d", civil_from_days(days))
    DATES[days] = d
  end
  return d
end

local function hours_minutes(minute_of_day)
  local hm = HOURS_MINUTES[minute_of_day]
  if not hm then
    hm = string.format("%02d:%02d", minute_of_day // 60, minute_of_day % 60)
    HOURS_MINUTES[minute_of_day] = hm
  end
  return hm
end

local function zone_cache(zone)
  local z = zones[zone]
  if not z or cached > CACHE_MAX then
    if cached > CACHE_MAX then
      zones, cached = {}, 0
    end
    z = { hours = {}, minutes = {} }
    zones[zone] = z
  end
  return z
end

-- The zone's offset for a whole UTC hour, or false when the hour needs the host per minute.
-- The host's own clock and date at the start of the hour must match the arithmetic, or the
-- offset is not used.
local function hour_offset(z, hour, zone)
  local offset = z.hours[hour]
  if offset == nil then
    local start = hour * 3600
    local p = host.time_parts(start, zone)
    offset = math.tointeger(p.offset)
    if offset and offset % 3600 == 0 then
      local here = start + offset
      local day, sod = here // 86400, here % 86400
      local year, month, mday = civil_from_days(day)
      if p.hour ~= sod // 3600 or p.min ~= sod % 3600 // 60 or p.sec ~= sod % 60
        or p.year ~= year or p.month ~= month or p.day ~= mday then
        offset = false
      end
    else
      offset = false
    end
    z.hours[hour] = offset
    cached = cached + 1
  end
  return offset
end

-- Whole epoch seconds of a ts (string or number), or nil.
local function whole_seconds(epoch_or_ts)
  if tsutil.is_canonical(epoch_or_ts) then
    return tonumber(epoch_or_ts:sub(1, 10)) -- the usual ts: 10 digits of seconds (an integer)
  end
  return type(epoch_or_ts) == "number" and math.floor(epoch_or_ts)
    or math.tointeger(tonumber(tostring(epoch_or_ts):match("^%d+")))
end

-- clock "14:03:05" and date "2024-11-14" of a ts (string or number) in zone.
-- (Once per message: the caches are read here directly, their helpers only fill them.)
function timefmt.clock_and_date(epoch_or_ts, zone)
  local whole
  if is_canonical(epoch_or_ts) then
    whole = tonumber(sub(epoch_or_ts, 1, 10)) -- the usual ts: 10 digits of seconds (an integer)
  else
    whole = whole_seconds(epoch_or_ts)
  end
  if not whole then
    local l = timefmt.labels(epoch_or_ts, zone)
    return l.clock, l.date
  end
  local z = zones[zone]
  if not z or cached > CACHE_MAX then
    z = zone_cache(zone)
  end
  local hour = whole // 3600
  local offset = z.hours[hour]
  if offset == nil then
    offset = hour_offset(z, hour, zone)
  end
  if offset then
    local here = whole + offset
    local sod = here % 86400
    local minute_of_day, days = sod // 60, here // 86400
    return (HOURS_MINUTES[minute_of_day] or hours_minutes(minute_of_day)) .. SECONDS[sod % 60],
      DATES[days] or date_of_days(days)
  end
  local minute = whole // 60
  local m = z.minutes[minute]
  if not m then
    local p = host.time_parts(minute * 60, zone)
    m = { hm = string.format("%02d:%02d", p.hour, p.min), date = string.format("%04d-%02d-%02d", p.year, p.month, p.day) }
    z.minutes[minute] = m
    cached = cached + 1
  end
  return m.hm .. SECONDS[whole % 60], m.date
end

-- "14:03:05" in zone, prefixed by the date when `with_date` ("2024-11-14 14:03:05").
-- Slack ts go through the cache of clock_and_date (time2_label asks this for every message).
function timefmt.label(epoch_or_ts, zone, with_date)
  local clock, date
  if tsutil.is_canonical(epoch_or_ts) then
    clock, date = timefmt.clock_and_date(epoch_or_ts, zone)
  else
    local l = timefmt.labels(epoch_or_ts, zone)
    clock, date = l.clock, l.date
  end
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
