-- The `render` subcommand: builds the report from saved Slack data without Slack, to preview a
-- layout change or write up an old incident. Called by init.lua's render(opts); reads its input
-- with lib/render_input.lua, builds with lib/timeline.lua, writes with lib/bundle.lua. Names come
-- from --users (or the export's users.json), else the messages' user_profile, else ids; the
-- channel from --channel (or the export's channels.json); file bytes from --files DIR/<FILEID>;
-- user group handles from a usergroups.json (a saved usergroups.list response) beside the input.
local host = require "host"
local timeline_lib = require "lib.timeline"
local bundle = require "lib.bundle"
local files_lib = require "lib.files"
local input = require "lib.render_input"

local EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT = 2, 3, 4
local usergroups = require "lib.usergroups"

local render_offline = {}

local str = require("lib.values").text

-- { [id] = { id, name, is_bot } } from a users.list response or an array of user objects.
function render_offline.people_from_users(data, path)
  local members = data
  if type(data) == "table" and data.members then members = data.members end
  if type(data) == "table" and data.ok == false then
    input.fail(EXIT_INPUT, "users file %s is a saved error response from Slack (%s)", path or "",
      tostring(data.error))
  end
  if type(members) ~= "table" or (next(members) ~= nil and (members[1] == nil or
      type(members[1]) ~= "table" or members[1].id == nil)) then
    input.fail(EXIT_INPUT, "users file %s is neither a users.list response nor an array of user "
      .. "objects", path or "")
  end
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

-- Slack file ids are letters and digits; anything else (../../etc/passwd) is never a path.
local function safe_id(id)
  return type(id) == "string" and id:match("^[%w]+$") ~= nil
end

-- Copy saved file bytes (files_dir/<FILEID>, from --files) into out_dir/attachments/ for the
-- timeline's file entries that have none; the rest get a reason.
local function attach_saved_files(timeline, files_dir, out_dir)
  for _, e in ipairs(timeline.entries or {}) do
    for _, f in ipairs(e.files or {}) do
      if not f.local_path and not f.missing_reason and f.id then
        local src = files_dir and safe_id(f.id) and (files_dir .. "/" .. f.id) or nil
        local data = src and host.exists(src) == "file" and host.read_file(src) or nil
        if data then
          local rel = files_lib.local_path(files_lib.safe_name(f.id, f.name or f.title))
          host.write_file(out_dir .. "/" .. rel, data)
          f.local_path, f.size, f.sha256 = rel, #data, host.sha256(data)
        elseif not safe_id(f.id) then
          f.missing_reason = "not a Slack file id"
        else
          f.missing_reason = files_dir and "not in the --files folder" or "not available offline (see --files)"
        end
      end
    end
  end
  timeline.files = files_lib.stats(timeline.entries or {})
end

-- The channel's id and name from --channel: a conversations.info response or the channel object.
local function read_channel(path)
  local data = input.read_json(path, "channel file")
  if type(data) == "table" and data.ok == false then
    input.fail(EXIT_INPUT, "channel file %s is a saved error response from Slack (%s)", path, tostring(data.error))
  end
  local c = type(data) == "table" and (type(data.channel) == "table" and data.channel or data) or nil
  if not c or type(c.id) ~= "string" then
    input.fail(EXIT_INPUT, "channel file %s is neither a conversations.info response nor a channel "
      .. "object with an \"id\"", path)
  end
  return { id = c.id, name = str(c.name) }
end

-- opts = { input, users, thread, since, until, channel, files, out_dir } (core/offline.c). Returns
-- the path of the .md; raises { message, exit } for what the user can fix.
function render_offline.run(opts)
  local config = host.config() or {}
  local got = input.load({ input = opts.input, thread = opts.thread, since = opts.since,
                           until_ = opts["until"] })
  local people = {}
  local users_path = opts.users or got.users_path
  if users_path then
    people = render_offline.people_from_users(input.read_json(users_path, "users file"), users_path)
  end
  render_offline.people_from_messages(got.messages, people)

  local channel = opts.channel and read_channel(opts.channel) or got.channel or {}
  if opts.files and host.exists(opts.files) ~= "dir" then
    input.fail(EXIT_USAGE, "--files %s is not a folder", opts.files)
  end
  local groups = {}
  local groups_path = (got.source_dir or ".") .. "/usergroups.json"
  if host.exists(groups_path) == "file" then
    groups = usergroups.handles(input.read_json(groups_path, "user groups file"))
  end
  local out_dir = opts.out_dir or "."

  -- no out_dir here: files are attached below from the saved bytes
  local timeline = timeline_lib.build(got.messages, {
    channel = channel.id or "unknown",
    thread_ts = got.thread_ts,
    channel_name = channel.name,
    people = people,
    usergroups = groups,
    zone = config.timezone,
    second_zone = config.second_timezone,
    config = config,
    offline = true,
    channel_mode = got.window, -- a window is a channel report: threads nested under their parent
  })
  -- the messages as read are not needed any more (entries keep what they show): they are
  -- collected before the report is rendered, the largest allocation of all (a big thread)
  local read = #got.messages
  got.messages = nil
  timeline_lib.collect_messages(read)
  if got.window then
    timeline.window = { oldest = opts.since and input.parse_time(opts.since, "--since") or nil,
                        latest = opts["until"] and input.parse_time(opts["until"], "--until") or nil }
  end
  attach_saved_files(timeline, opts.files, out_dir)
  local written, err = bundle.write(timeline, { dir = out_dir }, { zip = false, json = false, config = config })
  if not written then
    input.fail(EXIT_OUTPUT, "cannot write the report into %s: %s", out_dir, tostring(err and err.message or err))
  end
  return written.md_path
end

return render_offline
