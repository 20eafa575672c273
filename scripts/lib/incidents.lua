-- Incident records: one per incident thread, kept by lib/store.lua (a JSON file under
-- data_dir/incidents/, or a row in PostgreSQL in database mode) so a record survives restarts,
-- crashes and, with a database, the instance that wrote it. Called by the incident commands,
-- commands/statusupdate.lua and lib/timeline.lua (incidents.load for the resolution figure);
-- calls lib/store.lua.
--   record = { channel, thread_ts, title, started_by, started_at, resolved_at, resolved_by,
--              resolution_text, resolution_ts, status_updates = { {ts, user, text, at} } }
local store = require "lib.store"
local files = require "lib.store_files"

local incidents = {}

-- Where file mode keeps the records (the database backend has no files).
incidents.dir = files.incident_dir
incidents.path = files.incident_path

-- The record of the incident whose thread is (channel, thread_ts), or nil when there is none.
-- A record that cannot be read or parsed is logged and treated as absent.
function incidents.load(channel, thread_ts)
  return store.incident_load(channel, thread_ts)
end

-- Write the record (atomically). Returns true or nil, err.
function incidents.save(record)
  if type(record) ~= "table" then
    error("incidents.save: record must be a table", 2)
  end
  return store.incident_save(record)
end

-- incidents.save, and a failed save logged through `log` (the command's ctx.log) as
-- "incident record not saved". Returns what incidents.save returns: the caller words the reply.
function incidents.save_or_log(record, log)
  local ok, err = incidents.save(record)
  if not ok then
    log("error", "incident record not saved", { err = tostring(err) })
  end
  return ok, err
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
