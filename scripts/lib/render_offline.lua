-- The `render` subcommand: builds the report from a saved conversations.replies response (or a JSON
-- array of messages) without Slack, to preview a layout change. Called by init.lua's render(opts);
-- calls lib/timeline.lua (build), lib/bundle.lua (write), lib/files.lua (safe names) and host.
-- Names come from --users (users.list response or array of users), else the messages'
-- user_profile, else ids; user group handles from a usergroups.json (a saved usergroups.list
-- response) next to THREAD.json, else ids. Files are copied from a files/<FILEID> folder next to THREAD.json
-- when there is one (the fixtures' layout); otherwise they are listed as not available offline.
local host = require "host"
local cjson = require "cjson"
local timeline_lib = require "lib.timeline"
local bundle = require "lib.bundle"
local files_lib = require "lib.files"
local usergroups = require "lib.usergroups"

local render_offline = {}

local function read_json(path, what)
  local raw, err = host.read_file(path)
  if not raw then error("cannot read " .. what .. " " .. path .. ": " .. tostring(err), 0) end
  local ok, data = pcall(cjson.decode, raw)
  if not ok then error(what .. " " .. path .. " is not JSON: " .. tostring(data), 0) end
  return data
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

-- { [id] = { id, name, is_bot } } from a users.list response or an array of user objects.
function render_offline.people_from_users(data)
  local members = data
  if type(data) == "table" and data.members then members = data.members end
  local people = {}
  for _, u in ipairs(type(members) == "table" and members or {}) do
    if type(u) == "table" and u.id then
      local p = type(u.profile) == "table" and u.profile or {}
      people[u.id] = { id = u.id, is_bot = u.is_bot == true,
                       name = str(p.display_name) or str(p.real_name) or str(u.real_name) or str(u.name) or u.id }
    end
  end
  return people
end

-- Names carried by the messages themselves (user_profile), for ids not known yet.
function render_offline.people_from_messages(messages, people)
  people = people or {}
  for _, m in ipairs(messages) do
    local p = type(m.user_profile) == "table" and m.user_profile or nil
    if m.user and p and not people[m.user] then
      people[m.user] = { id = m.user, is_bot = false,
                         name = str(p.display_name) or str(p.real_name) or str(p.name) or m.user }
    end
    if m.bot_id and not people[m.bot_id] and str(m.username) then
      people[m.bot_id] = { id = m.bot_id, is_bot = true, name = m.username }
    end
  end
  return people
end

-- Copy saved file bytes (files/<FILEID> next to the thread file) into out_dir/attachments/ for the
-- timeline's file entries that have none; the rest get an "offline" reason.
local function attach_saved_files(timeline, source_dir, out_dir)
  local downloaded, missing, bytes = 0, 0, 0
  for _, e in ipairs(timeline.entries or {}) do
    for _, f in ipairs(e.files or {}) do
      if not f.local_path and not f.missing_reason and f.id then
        local data = host.exists(source_dir .. "/files/" .. f.id) == "file"
          and host.read_file(source_dir .. "/files/" .. f.id) or nil
        if data then
          local rel = files_lib.DIR .. "/" .. files_lib.safe_name(f.id, f.name or f.title)
          host.write_file(out_dir .. "/" .. rel, data)
          f.local_path, f.size, f.sha256 = rel, #data, host.sha256(data)
        else
          f.missing_reason = "not available offline"
        end
      end
      if f.local_path and not f.missing_reason then
        downloaded, bytes = downloaded + 1, bytes + (f.size or 0)
      else
        missing = missing + 1
      end
    end
  end
  timeline.files = { downloaded = downloaded, missing = missing, bytes = bytes }
end

-- opts = { thread = path, users = path | nil, out_dir = path }. Returns the path of the .md.
function render_offline.run(opts)
  local config = host.config() or {}
  local data = read_json(opts.thread, "thread file")
  local messages = type(data) == "table" and data.messages or data
  if type(messages) ~= "table" or (messages[1] == nil and next(messages) ~= nil) then
    error("thread file " .. opts.thread .. " holds neither a conversations.replies response nor an array of messages", 0)
  end
  local source_dir = dirname(opts.thread)
  local people = {}
  if opts.users then people = render_offline.people_from_users(read_json(opts.users, "users file")) end
  render_offline.people_from_messages(messages, people)

  local channel, channel_name = nil, nil
  if host.exists(source_dir .. "/channel.json") == "file" then
    local c = read_json(source_dir .. "/channel.json", "channel file")
    channel, channel_name = c.id, c.name
  end
  local groups = {}
  if host.exists(source_dir .. "/usergroups.json") == "file" then
    groups = usergroups.handles(read_json(source_dir .. "/usergroups.json", "user groups file"))
  end
  local out_dir = opts.out_dir or "."
  host.mkdir(out_dir)

  local thread_ts
  for _, m in ipairs(messages) do
    if type(m) == "table" and m.ts and (m.thread_ts == nil or m.thread_ts == m.ts) then
      if not thread_ts or tonumber(m.ts) < tonumber(thread_ts) then thread_ts = m.ts end
    end
  end
  thread_ts = thread_ts or (messages[1] and messages[1].thread_ts)

  -- no out_dir here: files are attached below from the saved bytes
  local timeline = timeline_lib.build(messages, {
    channel = channel or "unknown",
    thread_ts = thread_ts,
    channel_name = channel_name,
    people = people,
    usergroups = groups,
    zone = config.timezone or "UTC",
    second_zone = config.second_timezone,
    config = config,
    offline = true,
  })
  attach_saved_files(timeline, source_dir, out_dir)
  local written, err = bundle.write(timeline, { dir = out_dir }, { zip = false, json = false, config = config })
  if not written then error("cannot write the report into " .. out_dir .. ": " .. tostring(err), 0) end
  return written.md_path
end

return render_offline
