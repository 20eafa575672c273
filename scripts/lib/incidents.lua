-- Incident records: one JSON file per incident thread, data_dir/incidents/<channel>-<thread_ts>.json,
-- written atomically so a record survives restarts and crashes. Called by the incident commands,
-- commands/statusupdate.lua and lib/timeline.lua (incidents.load for the resolution figure);
-- calls host.read_file / host.write_file / host.config and cjson.
--   record = { channel, thread_ts, title, started_by, started_at, resolved_at, resolved_by,
--              resolution_text, resolution_ts, status_updates = { {ts, user, text, at} } }
local host = require "host"
local cjson = require "cjson"

local incidents = {}

-- Channel ids are letters and digits, ts are digits and one dot: anything else could walk out of
-- the incidents directory, so it is refused.
local function valid_key(channel, thread_ts)
  return type(channel) == "string" and channel:match("^[%w]+$") ~= nil
    and type(thread_ts) == "string" and thread_ts:match("^%d+%.?%d*$") ~= nil
end

function incidents.dir()
  local data_dir = host.config().data_dir or "var"
  return data_dir .. "/incidents"
end

-- The file of one incident, or nil plus a message when channel/ts are not well-formed.
function incidents.path(channel, thread_ts)
  if not valid_key(channel, thread_ts) then
    return nil, "bad incident key: channel=" .. tostring(channel) .. " thread_ts=" .. tostring(thread_ts)
  end
  return incidents.dir() .. "/" .. channel .. "-" .. thread_ts .. ".json"
end

local function nil_if_null(v)
  if v == cjson.null then return nil end
  return v
end

-- The record of the incident whose thread is (channel, thread_ts), or nil when there is none.
-- A record that cannot be read or parsed is logged and treated as absent.
function incidents.load(channel, thread_ts)
  local path = incidents.path(channel, thread_ts)
  if not path or host.exists(path) ~= "file" then
    return nil
  end
  local data, err = host.read_file(path)
  if not data then
    host.log("warn", "incident record unreadable", { path = path, err = tostring(err) })
    return nil
  end
  local ok, record = pcall(cjson.decode, data)
  if not ok or type(record) ~= "table" then
    host.log("warn", "incident record is not valid JSON", { path = path })
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

-- Write the record atomically. Returns true or nil, err.
function incidents.save(record)
  if type(record) ~= "table" then
    error("incidents.save: record must be a table", 2)
  end
  local path, perr = incidents.path(record.channel, record.thread_ts)
  if not path then
    return nil, perr
  end
  record.status_updates = record.status_updates or {}
  return host.write_file(path, cjson.encode(record) .. "\n")
end

-- A new record for a thread (not saved). `fields` may set title, started_by, started_at.
function incidents.new(channel, thread_ts, fields)
  fields = fields or {}
  return {
    channel = channel,
    thread_ts = thread_ts,
    title = fields.title,
    started_by = fields.started_by,
    started_at = fields.started_at or tonumber(thread_ts),
    status_updates = {},
  }
end

-- Append a status update {ts, user, text, at} to the record (the caller saves).
function incidents.add_update(record, update)
  record.status_updates = record.status_updates or {}
  record.status_updates[#record.status_updates + 1] = {
    ts = update.ts, user = update.user, text = update.text, at = update.at,
  }
  return record
end

return incidents
