-- Where the bot's state lives, behind one API: incident records and report versions. Two
-- backends: files under data_dir (lib/store_files.lua, the default) and PostgreSQL
-- (lib/store_pg.lua, when config `database.url` or POSTMORTEMBOT_DATABASE_URL is set). Commands
-- and filters never ask which one runs: they use lib/incidents.lua and lib/bundle.lua, which call
-- this. Calls host (config, files) and cjson.
-- host is looked up at each call, not kept from load time: whoever loads lib.incidents or lib.bundle
-- again with another host (the busted specs do) gets a store that uses that one.
local function host() return require "host" end
local cjson = require "cjson"
local files = require "lib.store_files"
local pg = require "lib.store_pg"

local store = {}

-- The backend of this generation's config.
function store.backend()
  local cfg = host().config() or {}
  if type(cfg.database) == "table" and cfg.database.url then return pg end
  return files
end

local function nil_if_null(v)
  if v == cjson.null then return nil end
  return v
end

-- ---- incident records ----

-- The record of the incident whose thread is (channel, thread_ts), or nil when there is none.
-- A record that cannot be parsed is logged and treated as absent.
function store.incident_load(channel, thread_ts)
  local data, where = store.backend().incident_read(channel, thread_ts)
  if not data then return nil end
  local ok, record = pcall(cjson.decode, data)
  if not ok or type(record) ~= "table" then
    host().log("warn", "incident record is not valid JSON", { path = where })
    return nil
  end
  for k, v in pairs(record) do
    record[k] = nil_if_null(v)
  end
  -- cjson writes an empty array as {}; either way it comes back as a table.
  if type(record.status_updates) ~= "table" then
    record.status_updates = {}
  end
  return record
end

-- Write the record. Returns true or nil, err.
function store.incident_save(record)
  record.status_updates = record.status_updates or {}
  return store.backend().incident_write(record, cjson.encode(record))
end

-- ---- report versions ----

-- Complete versions of a thread, ascending.
function store.report_versions(data_dir, channel, thread_ts)
  return store.backend().report_versions(data_dir, channel, thread_ts)
end

-- Allocate the next version and create its folder. Returns { dir, version, previous = N | nil,
-- previous_dir = path | nil, channel, thread_ts }.
function store.report_prepare(channel, thread_ts, data_dir)
  data_dir = data_dir or host().config().data_dir
  local version, previous = store.backend().report_allocate(data_dir, channel, thread_ts)
  local base = files.thread_dir(data_dir, channel, thread_ts)
  local dir = base .. "/v" .. version
  host().mkdir(dir)
  return { dir = dir, version = version, previous = previous, channel = channel, thread_ts = thread_ts,
           previous_dir = previous and (base .. "/v" .. previous) or nil }
end

-- The previous version's timeline (decoded), or nil.
function store.report_previous_timeline(slot)
  local raw = store.backend().report_timeline(slot)
  if not raw then return nil end
  local ok, t = pcall(cjson.decode, raw)
  if ok and type(t) == "table" then return t end
  return nil
end

-- The version in slot is written (written: bundle.write's result; timeline_json its timeline).
function store.report_complete(slot, written, timeline_json)
  return store.backend().report_complete(slot, written, timeline_json)
end

return store
