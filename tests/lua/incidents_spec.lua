-- Specs for scripts/lib/incidents.lua: one JSON file per incident under data_dir/incidents/,
-- written with host.write_file, read back by incidents.load (the timeline's resolution figure),
-- bad keys refused, broken files treated as absent. host is a fake with an in-memory disk.
local cjson = require "cjson"

describe("incidents", function()
  local incidents, disk, writes, logs

  before_each(function()
    disk, writes, logs = {}, {}, {}
    package.loaded.host = {
      config = function() return { data_dir = "/data" } end,
      exists = function(p) return disk[p] and "file" or nil end,
      read_file = function(p)
        if disk[p] then return disk[p] end
        return nil, "io: no such file"
      end,
      write_file = function(p, data)
        writes[#writes + 1] = p
        disk[p] = data
        return true
      end,
      log = function(level, msg) logs[#logs + 1] = level .. " " .. msg end,
    }
    package.loaded["lib.incidents"] = nil
    incidents = require "lib.incidents"
  end)

  after_each(function()
    package.loaded.host = nil
  end)

  it("keeps one file per incident thread under data_dir/incidents", function()
    assert.are.equal("/data/incidents/C0INC-1700000000.000100.json",
      incidents.path("C0INC", "1700000000.000100"))
  end)

  it("refuses keys that could leave the incidents directory", function()
    assert.is_nil((incidents.path("../etc", "1.2")))
    assert.is_nil((incidents.path("C1", "1.2/../../x")))
    assert.is_nil((incidents.path(nil, "1.2")))
    local ok, err = incidents.save({ channel = "C1/..", thread_ts = "1.2" })
    assert.is_nil(ok)
    assert.matches("bad incident key", err)
    assert.are.equal(0, #writes)
    assert.is_nil(incidents.load("../C1", "1.2"))
  end)

  it("saves and loads a record with the documented fields", function()
    local record = incidents.new("C0INC", "1700000000.000100",
      { title = "Checkout down", started_by = "U1", started_at = 1700000000.5 })
    incidents.add_update(record, { ts = "1700000100.000200", user = "U1", text = "rolling back", at = 1700000100 })
    record.resolved_at = 1700003600.25
    record.resolved_by = "U2"
    record.resolution_text = "fixed"
    record.resolution_ts = "1700003600.000300"
    assert.is_true(incidents.save(record))
    assert.are.same({ "/data/incidents/C0INC-1700000000.000100.json" }, writes)

    local loaded = incidents.load("C0INC", "1700000000.000100")
    assert.are.same({
      channel = "C0INC", thread_ts = "1700000000.000100", title = "Checkout down",
      started_by = "U1", started_at = 1700000000.5,
      resolved_at = 1700003600.25, resolved_by = "U2", resolution_text = "fixed",
      resolution_ts = "1700003600.000300",
      status_updates = { { ts = "1700000100.000200", user = "U1", text = "rolling back", at = 1700000100 } },
    }, loaded)
  end)

  it("keeps ts values as strings in the file", function()
    incidents.save(incidents.new("C1", "1700000000.000100", { started_at = 5 }))
    local raw = cjson.decode(disk["/data/incidents/C1-1700000000.000100.json"])
    assert.are.equal("string", type(raw.thread_ts))
    assert.are.equal("1700000000.000100", raw.thread_ts)
  end)

  it("starts a new record at the thread's parent ts unless told otherwise", function()
    local record = incidents.new("C1", "1700000000.000100")
    assert.are.equal(1700000000.0001, record.started_at)
    assert.are.same({}, record.status_updates)
  end)

  it("returns nil for a thread without a record", function()
    assert.is_nil(incidents.load("C1", "1700000000.000100"))
  end)

  it("treats a broken file as absent and logs it", function()
    disk["/data/incidents/C1-1.2.json"] = "{not json"
    assert.is_nil(incidents.load("C1", "1.2"))
    assert.are.equal(1, #logs)
    assert.matches("not valid JSON", logs[1])
  end)

  it("gives an empty status_updates table for a record saved without updates", function()
    incidents.save({ channel = "C1", thread_ts = "1.2", title = "t" })
    local loaded = incidents.load("C1", "1.2")
    assert.are.same({}, loaded.status_updates)
    assert.is_nil(loaded.resolved_at)
  end)
end)
