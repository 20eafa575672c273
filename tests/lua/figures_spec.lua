-- Specs for lib/figures.lua and lib/timefmt.lua: start, first human response (not the parent's
-- author first), mitigation and resolution from the marks or the incident record, durations with
-- human labels, each linked to its message.
local H = {}
package.loaded.host = H
H.log = function() end
H.time_parts = function(epoch, zone)
  local offset = ({ UTC = 0, ["Europe/Berlin"] = 3600 })[zone]
  local t = os.date("!*t", math.floor(tonumber(tostring(epoch):match("^%d+"))) + offset)
  t.offset, t.abbrev, t.zone = offset, zone == "UTC" and "UTC" or "CET", zone
  return t
end

local figures = require "lib.figures"
local timefmt = require "lib.timefmt"

local T0 = 1731624067 -- 2024-11-14 22:41:07 UTC
local THREAD = T0 .. ".001900"

local function e(sec, who, opts)
  opts = opts or {}
  local ts = sec == 0 and THREAD or string.format("%d.%06d", T0 + sec, 100 + sec)
  return { ts = ts, time = T0 + sec, author = { id = who, name = "name-" .. who, is_bot = who:sub(1, 1) == "B" },
           permalink = "https://acme.slack.com/archives/C1/p" .. ts:gsub("%.", ""), marks = opts.marks or {} }
end

describe("timefmt.duration", function()
  it("says durations as people do", function()
    assert.are.equal("0s", timefmt.duration(0))
    assert.are.equal("45s", timefmt.duration(45))
    assert.are.equal("5m", timefmt.duration(300))
    assert.are.equal("2m 19s", timefmt.duration(139))
    assert.are.equal("1h 05m", timefmt.duration(3900))
    assert.are.equal("1h 00m", timefmt.duration(3600 + 59))
    assert.are.equal("2d 03h 10m", timefmt.duration(2 * 86400 + 3 * 3600 + 600))
  end)

  it("gives clock and date per message, across midnight", function()
    local c1, d1 = timefmt.clock_and_date("1731625199.000100", "Europe/Berlin") -- 23:59:59 CET
    local c2, d2 = timefmt.clock_and_date("1731625170.999999", "Europe/Berlin")
    local c3, d3 = timefmt.clock_and_date(1731625200, "Europe/Berlin")          -- midnight
    local c4, d4 = timefmt.clock_and_date("1731625199.000100", "UTC")
    assert.are.same({ "23:59:59", "2024-11-14" }, { c1, d1 })
    assert.are.same({ "23:59:30", "2024-11-14" }, { c2, d2 })
    assert.are.same({ "00:00:00", "2024-11-15" }, { c3, d3 })
    assert.are.same({ "22:59:59", "2024-11-14" }, { c4, d4 })
  end)

  it("labels times in the zone with the date when asked", function()
    assert.are.equal("23:41:07", timefmt.label(THREAD, "Europe/Berlin"))
    assert.are.equal("2024-11-14 22:41:07", timefmt.label(THREAD, "UTC", true))
  end)
end)

describe("figures.compute", function()
  it("finds start, first response by someone other than the parent's author, mitigation, resolution", function()
    local entries = {
      e(0, "U1"),
      e(60, "B0ALERTS"),
      e(90, "U1"),                                   -- the parent's author again: not a response
      e(139, "U2"),                                  -- first response
      e(899, "U3", { marks = { mitigation = true, sources = { mitigation = "phrase" } } }),
      e(1200, "U4", { marks = { resolution = true, sources = { resolution = "phrase" } } }),
      e(3600, "U1", { marks = { resolution = true, sources = { resolution = "incident resolve" } } }),
    }
    local f = figures.compute(entries, { zone = "Europe/Berlin", thread_ts = THREAD, incident = false })
    assert.are.equal(THREAD, f.start.ts)
    assert.are.equal("2024-11-14 23:41:07", f.start.label)
    assert.are.equal(entries[1].permalink, f.start.permalink)
    assert.are.equal(entries[4].ts, f.first_response.ts)
    assert.are.equal("name-U2", f.first_response.by)
    assert.are.equal(entries[5].ts, f.mitigation.ts)
    assert.are.equal(entries[7].ts, f.resolution.ts)
    assert.are.equal("incident resolve", f.resolution.source)
    assert.are.equal(entries[7].permalink, f.resolution.permalink)
    assert.are.same({
      { from = "start", to = "first_response", seconds = 139, label = "2m 19s" },
      { from = "start", to = "mitigation", seconds = 899, label = "14m 59s" },
      { from = "start", to = "resolution", seconds = 3600, label = "1h 00m" },
      { from = "mitigation", to = "resolution", seconds = 2701, label = "45m 01s" },
    }, f.durations)
  end)

  it("falls back to the first human reply when only the parent's author answered", function()
    local entries = { e(0, "U1"), e(30, "B0ALERTS"), e(60, "U1") }
    local f = figures.compute(entries, { zone = "UTC", thread_ts = THREAD, incident = false })
    assert.are.equal(entries[3].ts, f.first_response.ts)
    assert.is_nil(f.mitigation)
    assert.is_nil(f.resolution)
    assert.are.equal(1, #f.durations)
  end)

  it("prefers a reaction over a phrase for the resolution", function()
    local entries = { e(0, "U1"),
      e(100, "U2", { marks = { resolution = true, sources = { resolution = "phrase" } } }),
      e(200, "U3", { marks = { resolution = true, sources = { resolution = "reaction" } } }) }
    local f = figures.compute(entries, { zone = "UTC", thread_ts = THREAD, incident = false })
    assert.are.equal("reaction", f.resolution.source)
    assert.are.equal(entries[3].ts, f.resolution.ts)
  end)

  it("takes the resolution from the incident record when there is one", function()
    local entries = { e(0, "U1"), e(100, "U2", { marks = { resolution = true, sources = { resolution = "phrase" } } }) }
    local gone = string.format("%d.%06d", T0 + 5000, 1)
    local f = figures.compute(entries, { zone = "UTC", thread_ts = THREAD, channel = "C1",
      incident = { resolution_ts = gone, resolved_at = T0 + 5000 },
      permalink = function(ts) return "link:" .. ts end })
    assert.are.equal("incident resolve", f.resolution.source)
    assert.are.equal(gone, f.resolution.ts)
    assert.are.equal("link:" .. gone, f.resolution.permalink)
    assert.are.equal(5000, f.durations[2].seconds)
  end)

  it("loads the record through lib/incidents.lua and treats its absence as nil", function()
    package.loaded["lib.incidents"] = { load = function(channel, ts)
      assert.are.equal("C1", channel)
      assert.are.equal(THREAD, ts)
      return { resolved_at = T0 + 120 }
    end }
    local f = figures.compute({ e(0, "U1") }, { zone = "UTC", thread_ts = THREAD, channel = "C1", load_incident = true })
    assert.are.equal(T0 + 120, f.resolution.time)
    package.loaded["lib.incidents"] = { load = function() error("disk on fire") end }
    f = figures.compute({ e(0, "U1") }, { zone = "UTC", thread_ts = THREAD, channel = "C1", load_incident = true })
    assert.is_nil(f.resolution)
    package.loaded["lib.incidents"] = nil
  end)

  it("gives nothing for an empty timeline", function()
    local f = figures.compute({}, { zone = "UTC" })
    assert.is_nil(f.start)
    assert.are.same({}, f.durations)
  end)
end)
