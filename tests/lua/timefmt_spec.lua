-- Specs for lib/timefmt.lua's labels (clock_and_date, label): across DST switches, half-hour
-- zones, midnight and many years, every label must equal what the host itself says
-- (timefmt.labels asks it directly).
local H = {}
package.loaded.host = H

-- A fake zone database. "Test/Berlin": +1h, +2h in summer, switching on whole UTC hours.
-- "Test/Adelaide": +9:30, +10:30 between 01:30 and 02:30 UTC every day (a switch at a half hour).
local function offset_of(epoch, zone)
  if zone == "UTC" then return 0 end
  if zone == "Test/Berlin" then
    local summer = epoch >= 1711846800 and epoch < 1729990800 -- 2024-03-31 01:00 .. 2024-10-27 01:00 UTC
    return summer and 7200 or 3600
  end
  if zone == "Test/Adelaide" then
    local sod = epoch % 86400
    return (sod >= 5400 and sod < 9000) and 37800 or 34200
  end
  error("unknown zone " .. tostring(zone))
end

local function real_time_parts(epoch, zone)
  local e = math.floor(tonumber(tostring(epoch):match("^%d+")))
  local offset = offset_of(e, zone)
  local t = os.date("!*t", e + offset)
  t.offset, t.abbrev, t.zone = offset, zone, zone
  return t
end
H.time_parts = real_time_parts

local timefmt = require "lib.timefmt"

local function ts_of(epoch, micro)
  return string.format("%d.%06d", epoch, micro or 0)
end

-- What the host says for one ts, asked through timefmt.labels.
local function host_clock_and_date(ts, zone)
  local l = timefmt.labels(ts, zone)
  return l.clock, l.date
end

local function check_range(zone, from, to, step)
  for e = from, to, step do
    local ts = ts_of(e, e % 1000000)
    local clock, date = timefmt.clock_and_date(ts, zone)
    local want_clock, want_date = host_clock_and_date(ts, zone)
    assert.are.same({ want_clock, want_date }, { clock, date }, zone .. " at " .. ts)
  end
end

-- timefmt.clocks(zone) must say what the host says, hour after hour, whatever the order of the ts.
local function check_clocks(zone, from, to, step)
  local clock_of = timefmt.clocks(zone)
  for e = from, to, step do
    local ts = ts_of(e, e % 1000000)
    local clock, date = clock_of(ts)
    local want_clock, want_date = host_clock_and_date(ts, zone)
    assert.are.same({ want_clock, want_date }, { clock, date }, zone .. " at " .. ts)
  end
end

describe("timefmt.clocks", function()
  it("agrees with the host across a whole-hour DST switch and midnight", function()
    check_clocks("Test/Berlin", 1711846800 - 4 * 3600, 1711846800 + 4 * 3600, 37)
    check_clocks("Test/Berlin", 1729990800 - 4 * 3600, 1729990800 + 4 * 3600, 41)
    check_clocks("Test/Berlin", 1729990800 + 4 * 3600, 1729990800 - 4 * 3600, -43) -- backwards
    check_clocks("UTC", 1735689600 - 3600, 1735689600 + 3600, 13)
  end)

  it("agrees with the host when a zone switches at a half hour, twice within two hours", function()
    local day = 1731628800
    check_clocks("Test/Adelaide", day, day + 4 * 3600, 29)
    check_clocks("Test/Adelaide", day + 5400 - 3, day + 5400 + 3, 1)
    check_clocks("Test/Adelaide", day + 9000 - 3, day + 9000 + 3, 1)
  end)

  it("formats dates like the host over many years", function()
    local clock_of = timefmt.clocks("UTC")
    local e = 1000000000 -- the first 10-digit ts (2001)
    while e < 4133980800 do
      local clock, date = clock_of(ts_of(e, 5))
      local t = os.date("!*t", e)
      assert.are.equal(string.format("%04d-%02d-%02d", t.year, t.month, t.day), date)
      assert.are.equal(string.format("%02d:%02d:%02d", t.hour, t.min, t.sec), clock)
      e = e + 86400 + 61
    end
  end)

  it("asks the host for a ts that is not canonical", function()
    local clock_of = timefmt.clocks("Test/Berlin")
    assert.are.same({ "23:41:07", "2024-11-14" }, { clock_of("1731624067.0001") })
    assert.are.same({ "23:41:07", "2024-11-14" }, { clock_of("1731624067") })
  end)

  it("asks the host once per UTC hour at most twice", function()
    local calls = 0
    H.time_parts = function(...)
      calls = calls + 1
      return real_time_parts(...)
    end
    local clock_of = timefmt.clocks("Test/Berlin")
    for e = 1731600000, 1731600000 + 3 * 3600 - 1, 7 do clock_of(ts_of(e, 1)) end
    H.time_parts = real_time_parts
    assert.are.equal(6, calls) -- 1731600000 is a whole UTC hour: three hours, two probes each
  end)
end)

describe("timefmt.clock_and_date", function()
  it("agrees with the host across a whole-hour DST switch and midnight", function()
    check_range("Test/Berlin", 1711846800 - 4 * 3600, 1711846800 + 4 * 3600, 37)  -- spring
    check_range("Test/Berlin", 1729990800 - 4 * 3600, 1729990800 + 4 * 3600, 41)  -- autumn
    check_range("UTC", 1735689600 - 3600, 1735689600 + 3600, 13)                    -- new year
  end)

  it("agrees with the host when a zone switches at a half hour", function()
    local day = 1731628800 -- 2024-11-15 00:00 UTC
    check_range("Test/Adelaide", day, day + 4 * 3600, 29)
  end)

  it("formats dates like the host over many years (leap days, 2000, 2100)", function()
    local e = 0 -- 1970-01-01
    while e < 4133980800 do -- 2101-01-01
      local clock, date = timefmt.clock_and_date(e, "UTC")
      local t = os.date("!*t", e)
      assert.are.equal(string.format("%04d-%02d-%02d", t.year, t.month, t.day), date)
      assert.are.equal(string.format("%02d:%02d:%02d", t.hour, t.min, t.sec), clock)
      e = e + 86400 + 61 -- every day, at a drifting time
    end
  end)

  it("labels Slack ts with and without the date, numbers and odd ts through the host", function()
    local e = 1731624067
    assert.are.equal("23:41:07", timefmt.label(ts_of(e, 100), "Test/Berlin"))
    assert.are.equal("2024-11-14 23:41:07", timefmt.label(ts_of(e, 100), "Test/Berlin", true))
    assert.are.equal("2024-11-14 22:41:07", timefmt.label(e + 0.5, "UTC", true))
    assert.are.equal("22:41:07", timefmt.label(tostring(e), "UTC"))
  end)
end)
