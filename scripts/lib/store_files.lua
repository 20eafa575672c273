-- The file backend of lib/store.lua (file mode, the default: one instance, state under data_dir).
-- Incident records: data_dir/incidents/<channel>-<thread_ts>.json, written atomically. Report
-- versions: data_dir/reports/<channel>/<thread_ts>/vN/, a version being complete once its
-- timeline.json exists. Called only by lib/store.lua; calls host (files) and cjson.
-- host is looked up at each call, not kept from load time: whoever loads lib.incidents or lib.bundle
-- again with another host (the busted specs do) gets a store that uses that one.
local function host() return require "host" end

local files = { name = "files" }

-- ---- incident records ----

-- Channel ids are letters and digits, ts are digits and one dot: anything else could walk out of
-- the incidents directory, so it is refused.
local function valid_key(channel, thread_ts)
  return type(channel) == "string" and channel:match("^[%w]+$") ~= nil
    and type(thread_ts) == "string" and thread_ts:match("^%d+%.?%d*$") ~= nil
end

function files.incident_dir()
  local data_dir = host().config().data_dir or "var"
  return data_dir .. "/incidents"
end

-- The file of one incident, or nil plus a message when channel/ts are not well-formed.
function files.incident_path(channel, thread_ts)
  if not valid_key(channel, thread_ts) then
    return nil, "bad incident key: channel=" .. tostring(channel) .. " thread_ts=" .. tostring(thread_ts)
  end
  return files.incident_dir() .. "/" .. channel .. "-" .. thread_ts .. ".json"
end

-- The raw JSON of a record, or nil when there is none. Unreadable is logged and absent.
function files.incident_read(channel, thread_ts)
  local path = files.incident_path(channel, thread_ts)
  if not path or host().exists(path) ~= "file" then
    return nil
  end
  local data, err = host().read_file(path)
  if not data then
    host().log("warn", "incident record unreadable", { path = path, err = tostring(err) })
    return nil
  end
  return data, path
end

function files.incident_write(record, json)
  local path, perr = files.incident_path(record.channel, record.thread_ts)
  if not path then
    return nil, perr
  end
  return host().write_file(path, json .. "\n")
end

-- ---- report versions ----

-- Channel ids and ts are safe already; anything else is reduced to a safe path segment.
local function segment(s)
  s = tostring(s or "unknown"):gsub("[^%w%.%-_]", "_")
  if s == "" or s == "." or s == ".." then s = "_" end
  return s
end

function files.thread_dir(data_dir, channel, thread_ts)
  return data_dir .. "/reports/" .. segment(channel) .. "/" .. segment(thread_ts)
end

-- Versions already written for this thread, ascending. A version is complete when its
-- timeline.json exists (bundle.write writes it last): the folder of a report that failed half-way
-- is no version, and the next report reuses its number.
function files.report_versions(data_dir, channel, thread_ts)
  local base = files.thread_dir(data_dir, channel, thread_ts)
  local found = {}
  for _, name in ipairs(host().list_dir(base) or {}) do
    local n = name:match("^v(%d+)$")
    if n and host().exists(base .. "/" .. name .. "/timeline.json") == "file" then
      found[#found + 1] = tonumber(n)
    end
  end
  table.sort(found)
  return found
end

-- The next version's number and the latest complete one (or nil).
function files.report_allocate(data_dir, channel, thread_ts)
  local versions = files.report_versions(data_dir, channel, thread_ts)
  local last = versions[#versions]
  return (last or 0) + 1, last
end

-- The previous version's timeline (its timeline.json, as text), or nil.
function files.report_timeline(slot)
  if not slot.previous_dir then return nil end
  return host().read_file(slot.previous_dir .. "/timeline.json")
end

-- timeline.json, written last by bundle.write, already makes the folder a version.
function files.report_complete()
  return true
end

return files
