-- The kept copy of a report: data_dir/reports/<channel>/<thread_ts>/vN/ holding the .md,
-- attachments/, timeline.json, entries-digest.json (what the next version compares with) and a .zip
-- of the .md + attachments/. bundle.prepare picks vN, bundle.write renders and writes it,
-- bundle.changes compares with the previous version (its digest, else its timeline). The version
-- numbers and the previous timeline come from lib/store.lua (files or the database).
-- bundle.zip_start begins the zip before the report is written, so the attachments go in as they
-- arrive. Called by commands/autopsy.lua (and render_offline.lua for write_report); calls
-- lib/report.lua, lib/templates.lua, lib/incident_picture.lua (attachments/incident-timeline.svg),
-- cjson and host (files, zip, zip_writer).
local host = require "host"
local cjson = require "cjson"
local report = require "lib.report"
local templates = require "lib.templates"
local incident_picture = require "lib.incident_picture"
local store = require "lib.store"
local store_files = require "lib.store_files"

local bundle = {}

-- Compile the report templates ahead of their first render (lib/templates.lua's prepare): the
-- default one, each channel's, and the picture's when one is drawn. init.lua calls it when a
-- generation is built, so that the first report after a start or a reload does not compile them
-- after its last page (~6 ms more per reload). A broken template is left for the self-check and
-- the render to report.
function bundle.prepare_templates(config)
  local r = (config or {}).report or {}
  local names = { report.template_name(config, nil) }
  if incident_picture.config(config).format ~= "none" then names[#names + 1] = incident_picture.TEMPLATE end
  for _, name in pairs(type(r.templates_by_channel) == "table" and r.templates_by_channel or {}) do
    names[#names + 1] = name
  end
  for _, name in ipairs(names) do
    if type(name) == "string" then pcall(templates.prepare, name) end
  end
end

-- Beside timeline.json in a version's folder: what the next version compares with.
local DIGEST_FILE = "entries-digest.json"
bundle.DIGEST_FILE = DIGEST_FILE

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

-- The zip of slot's version, begun before the report is written (host.zip_writer), or nil when it
-- cannot be: zip.add(local_path) puts a downloaded attachment in at once (the first also puts
-- "attachments/" itself); bundle.write finishes it with the rest of attachments/ (the incident
-- picture...) in name order and the .md last. The members are then, in order: attachments/, the
-- attachments added (lib/early_downloads.lua adds the kept downloads in name order), the rest of
-- attachments/ in name order, the .md. zip.abort() drops it; when an add or the finish fails,
-- bundle.write makes the whole zip at once as before (host.zip: the .md, then attachments/).
function bundle.zip_start(slot)
  local writer, err = host.zip_writer(slot.dir)
  if not writer then
    host.log("warn", "zip: written at the end (no zip writer)", { err = tostring(err) })
    return nil
  end
  local zip = { added = {} }
  local folder_added = false
  function zip.add(local_path)
    if not writer then return end
    local ok, add_err = true, nil
    if not folder_added then
      ok, add_err = writer:add(local_path:match("^[^/]+/") or local_path)
      folder_added = ok == true
    end
    if ok then ok, add_err = writer:add(local_path) end
    if ok then
      zip.added[local_path] = true
    else
      host.log("warn", "zip: written at the end (an attachment could not be added)", { err = tostring(add_err) })
      zip.abort()
    end
  end
  -- The rest of dir/attachments/ and md_name, then the zip is renamed to zip_path. true or nil, err.
  function zip.finish(dir, zip_path, md_name)
    local rest = {}
    local folder = "attachments"
    if host.exists(dir .. "/" .. folder) == "dir" then
      if not folder_added then rest[#rest + 1] = folder .. "/" end
      for _, name in ipairs(host.list_dir(dir .. "/" .. folder) or {}) do
        local rel = folder .. "/" .. name
        if not zip.added[rel] then rest[#rest + 1] = rel end
      end
    end
    rest[#rest + 1] = md_name
    local w = writer
    writer = nil
    return w:close(zip_path, rest)
  end
  function zip.usable() return writer ~= nil end
  function zip.abort()
    if writer then writer:abort() end
    writer = nil
  end
  return zip
end

local JSON_BATCH = 256 -- array elements encoded at a time

-- Writes a JSON array of n elements (row(i) gives the i-th) to writer, JSON_BATCH elements per
-- encode, so the whole array is never one string nor one table (20,000 entries: about 10 MB of
-- timeline, 1.7 MB of digest): the same text as cjson.encode of the whole array, which for an
-- empty one is "{}" (cjson cannot tell an empty array from an empty object). true or nil, err.
local function write_json_array(writer, n, row)
  if n == 0 then return writer:write(cjson.encode({})) end
  local ok, err = writer:write("[")
  local batch = {}
  for first = 1, n, JSON_BATCH do
    if not ok then break end
    local count = math.min(JSON_BATCH, n - first + 1)
    for i = 1, count do batch[i] = row(first + i - 1) end
    for i = count + 1, JSON_BATCH do batch[i] = nil end
    local json = cjson.encode(batch)
    -- (the batch without its brackets, written from the encoded string itself: no copy of it)
    if first > 1 then ok, err = writer:write(",") end
    if ok then ok, err = writer:write(json, 2, -2) end
  end
  if ok then ok, err = writer:write("]") end
  return ok, err
end

-- timeline.json written in pieces (host.file_writer): the timeline, then its entries a few hundred
-- at a time. The same JSON value as cjson.encode(timeline). Returns the writer, not closed yet
-- (close() puts the file in place), or nil, err.
local function timeline_json_writer(path, timeline)
  local writer, err = host.file_writer(path)
  if not writer then return nil, err end
  local entries = timeline.entries or {}
  local ok
  ok, err = writer:write(timeline_head(timeline) .. '"entries":')
  if ok then ok, err = write_json_array(writer, #entries, function(i) return entries[i] end) end
  if ok then ok, err = writer:write("}") end
  if not ok then
    writer:abort()
    return nil, err
  end
  return writer
end

-- Render the report for `timeline` into `slot.dir` (from bundle.prepare, or { dir = out_dir } for
-- an offline render) and zip it. opts: zip and json (default true: write the .zip and
-- timeline.json), zip_stream (bundle.zip_start's, finished here), template, config, defer_zip
-- (the caller finishes the zip with out.finish_zip(), e.g. while the .md goes up; json must then
-- be false: timeline.json comes last).
-- The .md is written as it is rendered (host.file_writer: a temporary file renamed into place when
-- whole), never held as one string; out.markdown reads it back only when someone asks for it (the
-- database store keeps the text).
-- Returns { dir, md_path, md_name, zip_path, zip_name, finish_zip, json_path (with opts.json),
-- file_base, view, markdown }.
function bundle.write(timeline, slot, opts)
  opts = opts or {}
  if opts.defer_zip and opts.json ~= false then
    error("bundle.write: defer_zip needs json = false (timeline.json comes after the zip)", 2)
  end
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
    out.zip_name = view.file_base .. ".zip"
    out.zip_path = dir .. "/" .. out.zip_name
    local stream = opts.zip_stream
    local finished
    -- true or nil, err; the zip is finished once, by the first call
    function out.finish_zip()
      if finished then return table.unpack(finished, 1, 2) end
      local zipped, zip_err
      if stream and stream.usable() then
        zipped, zip_err = stream.finish(dir, out.zip_path, md_name)
        if not zipped then host.log("warn", "zip: written again at the end", { err = tostring(zip_err) }) end
      end
      if not zipped then
        local members = { md_name }
        if host.exists(dir .. "/attachments") == "dir" then members[#members + 1] = "attachments" end
        zipped, zip_err = host.zip(out.zip_path, dir, members)
      end
      finished = { zipped, zip_err }
      return zipped, zip_err
    end
    if not opts.defer_zip then
      ok, err = out.finish_zip()
      if not ok then return nil, err end
    end
  elseif opts.zip_stream then
    opts.zip_stream.abort()
  end
  -- last: timeline.json is what makes the folder a version (bundle.versions)
  out.json_path = nil
  if opts.json ~= false then
    ok, err = bundle.complete(timeline, slot, out)
    if not ok then return nil, err end
  end
  return out
end

-- What a later version compares with (bundle.changes), per entry of `timeline`: { ts, the ts of
-- its edit or false, its text (Markdown), its file ids joined by "," }. Kept beside timeline.json
-- as DIGEST_FILE: decoding it is a fraction of decoding the whole timeline (20,000 entries:
-- 1.7 MB instead of 7 MB of JSON, 39 ms instead of 97 ms in lua5.4), and a report asked for again
-- in a big thread waits for it after its last page.
local function digest_row(e)
  local joined = "" -- (most entries have no file: no list to join)
  if e.files then
    local ids = {}
    for _, f in ipairs(e.files) do
      if f.id then ids[#ids + 1] = tostring(f.id) end
    end
    joined = table.concat(ids, ",")
  end
  return { e.ts or false, type(e.edited) == "table" and e.edited.ts or false, e.text_md or false, joined }
end

function bundle.digest(timeline)
  local out = {}
  for i, e in ipairs((timeline or {}).entries or {}) do out[i] = digest_row(e) end
  return { kind = "digest", entries = out }
end

-- The digest's rows made and encoded a batch at a time (write_json_array), not all at once.
local function write_digest(path, timeline)
  local writer, err = host.file_writer(path)
  if not writer then return nil, err end
  local entries = (timeline or {}).entries or {}
  local ok
  ok, err = write_json_array(writer, #entries, function(i) return digest_row(entries[i]) end)
  if not ok then
    writer:abort()
    return nil, err
  end
  return writer:close()
end

-- The previous version's digest (bundle.digest's shape), or nil: its DIGEST_FILE when the folder
-- is here and has one, else made from its timeline (lib/store.lua: a version written before the
-- digest existed, or by another instance in database mode).
function bundle.previous_digest(slot)
  if slot.previous_dir then
    local raw = host.read_file(slot.previous_dir .. "/" .. DIGEST_FILE)
    local ok, list = pcall(cjson.decode, raw or "")
    if raw and ok and type(list) == "table" then
      local valid = true
      for _, d in ipairs(list) do
        if type(d) ~= "table" then valid = false break end
      end
      if valid then return { kind = "digest", entries = list } end
    end
  end
  local previous = bundle.previous_timeline(slot)
  return previous and bundle.digest(previous) or nil
end

-- Make slot's folder a version in two steps, so that the slow part can run beside the upload
-- while the zip is finished: begin writes the digest and timeline.json (not yet in place); the
-- returned job's finish(written) puts timeline.json in place (what makes the folder a version,
-- bundle.versions) and records the version in the store (lib/store.lua), once the .md and the zip
-- are there; sets written.json_path; true or nil, err. job.abort() drops timeline.json.
-- Returns job or nil, err.
function bundle.complete_begin(timeline, slot)
  local path = slot.dir .. "/timeline.json"
  -- the digest first: a version (timeline.json) written by this code always has one
  local ok, err = write_digest(slot.dir .. "/" .. DIGEST_FILE, timeline)
  if not ok then return nil, err end
  local writer
  writer, err = timeline_json_writer(path, timeline)
  if not writer then return nil, err end
  local job = {}
  function job.finish(written)
    ok, err = writer:close()
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
  function job.abort() writer:abort() end
  return job
end

-- Both steps at once: slot's folder becomes a version. `written` is bundle.write's answer. true or
-- nil, err.
function bundle.complete(timeline, slot, written)
  local job, err = bundle.complete_begin(timeline, slot)
  if not job then return nil, err end
  return job.finish(written)
end

-- A digest's joined file ids as a set.
local function file_ids(joined)
  local set = {}
  for id in tostring(joined or ""):gmatch("[^,]+") do set[id] = true end
  return set
end

-- What changed since an earlier version, by message ts: { added, edited, removed, files_added }.
-- previous: that version's digest (bundle.previous_digest) or its timeline; current: a timeline.
function bundle.changes(previous, current)
  if previous and previous.kind ~= "digest" then previous = bundle.digest(previous) end
  local before = {}
  for _, d in ipairs((previous or {}).entries or {}) do
    if type(d[1]) == "string" then before[d[1]] = d end
  end
  local result = { added = 0, edited = 0, removed = 0, files_added = 0 }
  local seen = {}
  for _, e in ipairs(current.entries or {}) do
    local old = e.ts and before[e.ts]
    if not old then
      result.added = result.added + 1
    else
      seen[e.ts] = true
      local old_edit = old[2] or nil
      local new_edit = type(e.edited) == "table" and e.edited.ts or nil
      if old_edit ~= new_edit or (old[3] or nil) ~= e.text_md then result.edited = result.edited + 1 end
      if e.files and e.files[1] then
        local had = file_ids(old[4])
        for _, f in ipairs(e.files) do
          if f.id and not had[tostring(f.id)] then result.files_added = result.files_added + 1 end
        end
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
