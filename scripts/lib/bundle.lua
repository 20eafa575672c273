-- The kept copy of a report: data_dir/reports/<channel>/<thread_ts>/vN/ holding the .md,
-- attachments/, timeline.json and a .zip of the .md + attachments/. bundle.prepare picks vN,
-- bundle.write renders and writes it, bundle.changes compares with the previous version. The
-- version numbers and the previous timeline come from lib/store.lua (files or the database).
-- Called by commands/autopsy.lua (and render_offline.lua for write_report); calls lib/report.lua,
-- lib/incident_picture.lua (attachments/incident-timeline.svg), cjson and host (files, zip).
local host = require "host"
local cjson = require "cjson"
local report = require "lib.report"
local incident_picture = require "lib.incident_picture"
local store = require "lib.store"
local store_files = require "lib.store_files"

local bundle = {}

function bundle.thread_dir(data_dir, channel, thread_ts)
  return store_files.thread_dir(data_dir, channel, thread_ts)
end

-- Complete versions of this thread, ascending (lib/store.lua: folders, or rows in database mode).
function bundle.versions(data_dir, channel, thread_ts)
  return store.report_versions(data_dir, channel, thread_ts)
end

-- Pick the next version (lib/store.lua) and create its folder. Returns { dir, version,
-- previous = N | nil, previous_dir = path | nil, channel, thread_ts }.
function bundle.prepare(channel, thread_ts, data_dir)
  return store.report_prepare(channel, thread_ts, data_dir)
end

-- The previous version's timeline (decoded timeline.json), or nil.
function bundle.load_timeline(dir)
  if not dir then return nil end
  local raw = host.read_file(dir .. "/timeline.json")
  if not raw then return nil end
  local ok, t = pcall(cjson.decode, raw)
  if ok and type(t) == "table" then return t end
  return nil
end

-- The timeline of the version before slot's (wherever the store keeps it), or nil.
function bundle.previous_timeline(slot)
  return store.report_previous_timeline(slot)
end

-- The timeline's JSON without its entries, as an object left open ("{...," or "{") for them.
local function timeline_head(timeline)
  local head = {}
  for k, v in pairs(timeline) do
    if k ~= "entries" then head[k] = v end
  end
  local ok, json = pcall(cjson.encode, head)
  if not ok then
    -- a sparse array somewhere: keep what readers need rather than nothing
    host.log("warn", "timeline.json: full encode failed, writing entries only", { err = tostring(json) })
    json = cjson.encode({ channel = timeline.channel, thread_ts = timeline.thread_ts,
                          complete = timeline.complete })
  end
  if json == "{}" then return "{" end
  return json:sub(1, -2) .. ","
end

local JSON_BATCH = 256 -- entries encoded at a time

-- timeline.json written in pieces (host.file_writer): the timeline, then its entries a few hundred
-- at a time, so the whole document is never one string (20,000 entries: about 10 MB). The same
-- JSON value as cjson.encode(timeline). Returns true or nil, err.
local function write_timeline_json(path, timeline)
  local writer, err = host.file_writer(path)
  if not writer then return nil, err end
  local entries = timeline.entries or {}
  local ok
  ok, err = writer:write(timeline_head(timeline) .. '"entries":')
  if ok and #entries == 0 then
    ok, err = writer:write(cjson.encode(entries) .. "}")
  elseif ok then
    ok, err = writer:write("[")
    local batch = {}
    for first = 1, #entries, JSON_BATCH do
      if not ok then break end
      for i = 1, JSON_BATCH do batch[i] = entries[first + i - 1] end
      local json = cjson.encode(batch)
      ok, err = writer:write((first > 1 and "," or "") .. json:sub(2, -2))
    end
    if ok then ok, err = writer:write("]}") end
  end
  if not ok then return nil, err end
  return writer:close()
end

-- Render the report for `timeline` into `slot.dir` (from bundle.prepare, or { dir = out_dir } for
-- an offline render) and zip it. opts: zip and json (default true: write the .zip and
-- timeline.json), template, config.
-- The .md is written as it is rendered (host.file_writer: a temporary file renamed into place when
-- whole), never held as one string; out.markdown reads it back only when someone asks for it (the
-- database store keeps the text).
-- Returns { dir, md_path, md_name, zip_path, zip_name, json_path (with opts.json), file_base, view,
-- markdown }.
function bundle.write(timeline, slot, opts)
  opts = opts or {}
  local dir = slot.dir
  local writer, open_err, write_err
  local function write(chunk)
    if writer and not write_err then
      local ok, err = writer:write(chunk)
      if not ok then write_err = err end
    end
  end
  local view = report.render_to(write, timeline, {
    version = slot.version, previous = slot.previous, template = opts.template, config = opts.config,
    before_render = function(v)
      incident_picture.write(v, dir)
      writer, open_err = host.file_writer(dir .. "/" .. v.file_base .. ".md")
    end,
  })
  if not writer then return nil, open_err end
  if write_err then return nil, write_err end
  local ok, err = writer:close()
  if not ok then return nil, err end
  local md_name = view.file_base .. ".md"
  local out = setmetatable({ dir = dir, md_name = md_name, md_path = dir .. "/" .. md_name, file_base = view.file_base,
                             view = view }, {
    __index = function(t, key)
      if key == "markdown" then return host.read_file(t.md_path) end
      return nil
    end,
  })
  if opts.zip ~= false then
    local members = { md_name }
    if host.exists(dir .. "/attachments") == "dir" then members[#members + 1] = "attachments" end
    out.zip_name = view.file_base .. ".zip"
    out.zip_path = dir .. "/" .. out.zip_name
    ok, err = host.zip(out.zip_path, dir, members)
    if not ok then return nil, err end
  end
  -- last: timeline.json is what makes the folder a version (bundle.versions)
  out.json_path = nil
  if opts.json ~= false then
    ok, err = bundle.complete(timeline, slot, out)
    if not ok then return nil, err end
  end
  return out
end

-- Make slot's folder a version: its timeline.json (what bundle.versions looks for), then the
-- store's record (lib/store.lua). `written` is bundle.write's answer (with opts.json = false when
-- the caller does this itself, e.g. beside the upload); sets written.json_path. true or nil, err.
function bundle.complete(timeline, slot, written)
  local path = slot.dir .. "/timeline.json"
  local ok, err = write_timeline_json(path, timeline)
  if not ok then return nil, err end
  written.json_path = path
  if slot.version and slot.channel then
    -- the file store has it on disk already; another store (the database) is handed the text
    local json = store.backend() ~= store_files and host.read_file(path) or nil
    ok, err = store.report_complete(slot, written, json)
    if not ok then return nil, err end
  end
  return true
end

-- What changed between two timelines, by message ts: { added, edited, removed, files_added }.
function bundle.changes(previous, current)
  local before = {}
  for _, e in ipairs((previous or {}).entries or {}) do
    if e.ts then before[e.ts] = e end
  end
  local result = { added = 0, edited = 0, removed = 0, files_added = 0 }
  local seen = {}
  for _, e in ipairs(current.entries or {}) do
    local old = e.ts and before[e.ts]
    if not old then
      result.added = result.added + 1
    else
      seen[e.ts] = true
      local old_edit = type(old.edited) == "table" and old.edited.ts or nil
      local new_edit = type(e.edited) == "table" and e.edited.ts or nil
      if old_edit ~= new_edit or old.text_md ~= e.text_md then result.edited = result.edited + 1 end
      local had = {}
      for _, f in ipairs(old.files or {}) do if f.id then had[f.id] = true end end
      for _, f in ipairs(e.files or {}) do
        if f.id and not had[f.id] then result.files_added = result.files_added + 1 end
      end
    end
  end
  for ts in pairs(before) do
    if not seen[ts] then result.removed = result.removed + 1 end
  end
  return result
end

local function plural(n, one, many)
  return string.format("%d %s", n, n == 1 and one or many)
end

-- One sentence for the thread: "Version 2. Since version 1: 3 new entries, 1 edited."
function bundle.changes_text(version, previous, changes)
  if not previous then return nil end
  local parts = {}
  if changes.added > 0 then parts[#parts + 1] = plural(changes.added, "new entry", "new entries") end
  if changes.edited > 0 then parts[#parts + 1] = plural(changes.edited, "entry edited", "entries edited") end
  if changes.removed > 0 then parts[#parts + 1] = plural(changes.removed, "entry gone", "entries gone") end
  if changes.files_added > 0 then parts[#parts + 1] = plural(changes.files_added, "new file", "new files") end
  if #parts == 0 then
    return string.format("Version %d. Nothing changed since version %d.", version, previous)
  end
  return string.format("Version %d. Since version %d: %s.", version, previous, table.concat(parts, ", "))
end

return bundle
