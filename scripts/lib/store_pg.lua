-- The PostgreSQL backend of lib/store.lua (database mode: several instances, one database; the
-- schema is db/migrations/*.sql). Incident records are rows of pmb_incidents (saved through
-- pmb_incident_save, which keeps status updates another instance appended meanwhile); report
-- versions are allocated by pmb_report_allocate, so no two instances write the same vN, and the
-- Markdown and timeline of each complete version are kept in pmb_reports. Called only by
-- lib/store.lua; calls host.db. A database error raises: the command fails and says why, rather
-- than acting on state it could not read.
-- host is looked up at each call, not kept from load time: whoever loads lib.incidents or lib.bundle
-- again with another host (the busted specs do) gets a store that uses that one.
local function host() return require "host" end

local pg = { name = "postgresql" }

local function db(sql, ...)
  local rows, err = host().db(sql, ...)
  if not rows then
    error("database: " .. tostring(type(err) == "table" and err.message or err), 0)
  end
  return rows
end

function pg.incident_read(channel, thread_ts)
  local rows = db("SELECT record::text AS record FROM pmb_incidents WHERE channel = $1 AND thread_ts = $2",
                  channel, thread_ts)
  if rows[1] then return rows[1].record, "pmb_incidents" end
  return nil
end

function pg.incident_write(record, json)
  db("SELECT pmb_incident_save($1, $2, $3::jsonb)", record.channel, record.thread_ts, json)
  return true
end

function pg.report_versions(_data_dir, channel, thread_ts)
  local found = {}
  for _, row in ipairs(db("SELECT version FROM pmb_reports WHERE channel = $1 AND thread_ts = $2 "
                          .. "AND state = 'complete' ORDER BY version", channel, thread_ts)) do
    found[#found + 1] = tonumber(row.version)
  end
  return found
end

function pg.report_allocate(_data_dir, channel, thread_ts)
  local row = db("SELECT version, previous FROM pmb_report_allocate($1, $2, $3)", channel, thread_ts,
                 nil)[1]
  return tonumber(row.version), tonumber(row.previous)
end

function pg.report_timeline(slot)
  if not slot.previous then return nil end
  local row = db("SELECT timeline FROM pmb_reports WHERE channel = $1 AND thread_ts = $2 AND version = $3",
                 slot.channel, slot.thread_ts, slot.previous)[1]
  return row and row.timeline
end

function pg.report_complete(slot, written, timeline_json)
  db("UPDATE pmb_reports SET state = 'complete', md_name = $4, markdown = $5, timeline = $6, "
     .. "completed_at = now() WHERE channel = $1 AND thread_ts = $2 AND version = $3",
     slot.channel, slot.thread_ts, slot.version, written.md_name, written.markdown, timeline_json)
  return true
end

return pg
