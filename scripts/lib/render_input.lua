-- What `render` reads: a saved conversations.replies response (or pages of it in an array), a JSON
-- array of messages, or a Slack export (a channel's day file, a channel folder, a whole export
-- folder; core/offline.c unpacks an export .zip into a folder first), narrowed to one thread
-- (--thread TS|LINK) or a time window (--since/--until). Called by lib/render_offline.lua; reads
-- files through host; keeps one copy of each message with lib/subtypes.lua. Errors are tables
-- { message, exit } (exit 2 usage, 3 input).
local host = require "host"
local cjson = require "cjson"
local tsutil = require "lib.tsutil"
local links = require "lib.links"
local subtypes = require "lib.subtypes"

local input = {}

local EXIT_USAGE, EXIT_INPUT = 2, 3

function input.fail(exit, fmt, ...)
  error({ message = string.format(fmt, ...), exit = exit }, 0)
end
local fail = input.fail

-- The decoded JSON of a file (a UTF-8 byte order mark is skipped); `what` names it in errors.
function input.read_json(path, what)
  local raw, err = host.read_file(path)
  if not raw then fail(EXIT_INPUT, "cannot read %s %s: %s", what, path, tostring(err and err.message or err)) end
  if raw:sub(1, 3) == "\239\187\191" then raw = raw:sub(4) end
  if not raw:match("%S") then fail(EXIT_INPUT, "%s %s is empty", what, path) end
  local ok, data = pcall(cjson.decode, raw)
  if not ok then
    fail(EXIT_INPUT, "%s %s is not JSON (%s)", what, path, tostring(data):gsub("^.-: ", ""))
  end
  return data
end

local function is_array(t)
  return type(t) == "table" and (next(t) == nil or t[1] ~= nil)
end

local function is_message(m)
  return type(m) == "table" and type(m.ts) == "string"
end

-- { channel = "C…", ts = "1731624067.001900" } from a message link, or { ts = … } from a ts.
function input.parse_thread(arg)
  if arg:match("^%d+%.%d+$") then return { ts = arg } end
  local link = links.message(arg)
  if link then return { channel = link.channel, ts = link.thread_ts or link.ts } end
  fail(EXIT_USAGE, "--thread %s is neither a message ts (1731624067.001900) nor a Slack message link", arg)
end

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- Seconds since the epoch from a ts, "2024-11-14", "2024-11-14T22:40" or "…T22:40:05" (UTC).
function input.parse_time(arg, flag)
  if arg:match("^%d+%.?%d*$") then return tonumber(arg) end
  local y, mo, d, rest = arg:match("^(%d%d%d%d)-(%d%d)-(%d%d)(.*)$")
  if y then
    local h, mi, s = 0, 0, 0
    if rest ~= "" then
      h, mi, s = rest:match("^[T ](%d%d):(%d%d):?(%d*)Z?$")
      if not h then y = nil end
    end
    if y then
      return days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
        + tonumber(h) * 3600 + tonumber(mi) * 60 + (tonumber(s) or 0)
    end
  end
  fail(EXIT_USAGE, "%s %s is not a time: give a ts, 2024-11-14 or 2024-11-14T22:40 (UTC)", flag, arg)
end

-- The messages of one decoded document: a replies response, pages of it, or a message array.
local function messages_of(data, path)
  if type(data) ~= "table" then
    fail(EXIT_INPUT, "%s holds a JSON %s, not a thread", path, type(data))
  end
  if data.ok == false then
    fail(EXIT_INPUT, "%s is a saved error response from Slack (%s), not a thread", path,
      tostring(data.error or "no error code"))
  end
  if not is_array(data) then
    if data.messages == nil then
      fail(EXIT_INPUT, "%s is a JSON object without \"messages\": save a conversations.replies "
        .. "response, or an array of messages", path)
    end
    if not is_array(data.messages) then fail(EXIT_INPUT, "%s: \"messages\" is not an array", path) end
    return data.messages
  end
  if data[1] ~= nil and not is_message(data[1]) and type(data[1]) == "table" and data[1].messages then
    local all = {}
    for i, page in ipairs(data) do
      if type(page) ~= "table" or page.ok == false or not is_array(page.messages) then
        fail(EXIT_INPUT, "%s: page %d is not a conversations.replies response%s", path, i,
          type(page) == "table" and page.error and (" (Slack said " .. tostring(page.error) .. ")") or "")
      end
      for _, m in ipairs(page.messages) do all[#all + 1] = m end
    end
    return all
  end
  for i, m in ipairs(data) do
    if not is_message(m) then
      fail(EXIT_INPUT, "%s: entry %d is not a Slack message (no \"ts\")", path, i)
    end
  end
  return data
end

-- Every message once (pages overlap on their boundary message; a reply also sent to the channel
-- is in the thread and the channel file: lib/subtypes.lua keeps its broadcast copy), in ts order.
local function unique_sorted(messages)
  local out = {}
  for _, m in ipairs(messages) do
    if is_message(m) then out[#out + 1] = m end
  end
  out = subtypes.one_copy(out)
  tsutil.sort_by_ts(out)
  return out
end

local function root_of(m)
  return m.thread_ts or m.ts
end

local function day_files(dir)
  local names = {}
  for _, name in ipairs(host.list_dir(dir) or {}) do
    if name:match("^%d%d%d%d%-%d%d%-%d%d%.json$") then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

local function read_folder(dir)
  local all = {}
  for _, name in ipairs(day_files(dir)) do
    for _, m in ipairs(messages_of(input.read_json(dir .. "/" .. name, "export day file"), dir .. "/" .. name)) do
      all[#all + 1] = m
    end
  end
  return all
end

local function basename(path)
  return (path:gsub("/+$", ""):match("([^/]+)$")) or path
end

-- channels.json (an array of { id, name }) of an export: { by_id, by_name }.
local function read_channels(path)
  local data = input.read_json(path, "channels file")
  if not is_array(data) then fail(EXIT_INPUT, "%s is not an array of channels", path) end
  local by_id, by_name = {}, {}
  for _, c in ipairs(data) do
    if type(c) == "table" and c.id then
      by_id[c.id] = c
      if c.name then by_name[c.name] = c end
    end
  end
  return { by_id = by_id, by_name = by_name }
end

-- Reads opts.input and picks what to render. Returns { messages, thread_ts, channel = { id, name }
-- | nil, users_path | nil, window = true | nil, source_dir }.
function input.load(opts)
  local path = opts.input
  local kind = host.exists(path)
  if not kind then fail(EXIT_INPUT, "%s: no such file or directory", path) end
  local result = { source_dir = path:match("^(.*)/[^/]*$") or "." }
  local messages
  local thread = opts.thread and input.parse_thread(opts.thread) or nil
  if kind == "dir" then
    local export_root, channel_dir = nil, nil
    if host.exists(path .. "/channels.json") == "file" then
      export_root = path
    elseif host.exists(path .. "/../channels.json") == "file" then
      export_root, channel_dir = path .. "/..", path
    elseif #day_files(path) > 0 then
      channel_dir = path
    else
      fail(EXIT_INPUT, "%s is neither a Slack export (no channels.json) nor a channel folder "
        .. "(no YYYY-MM-DD.json files)", path)
    end
    local channels = export_root and read_channels(export_root .. "/channels.json") or nil
    if export_root and host.exists(export_root .. "/users.json") == "file" then
      result.users_path = export_root .. "/users.json"
    end
    if not channel_dir then
      local c = thread and thread.channel and channels.by_id[thread.channel]
      if thread and thread.channel and not c then
        fail(EXIT_INPUT, "the export %s has no channel %s", path, thread.channel)
      end
      if not c then
        fail(EXIT_USAGE, "%s is a whole export: pick a thread with --thread LINK (the link names the "
          .. "channel), or give the channel's folder (%s/<channel name>)", path, path)
      end
      channel_dir = export_root .. "/" .. c.name
    end
    if channels then
      local c = channels.by_name[basename(channel_dir)]
      if c then result.channel = { id = c.id, name = c.name } end
    end
    messages = read_folder(channel_dir)
    result.source_dir = channel_dir
  else
    messages = messages_of(input.read_json(path, "thread file"), path)
  end
  messages = unique_sorted(messages)
  if #messages == 0 then fail(EXIT_INPUT, "%s holds no messages: there is nothing to report", path) end

  local roots = {}
  for _, m in ipairs(messages) do roots[root_of(m)] = true end
  local n_roots = 0
  for _ in pairs(roots) do n_roots = n_roots + 1 end

  if thread then
    local picked = {}
    for _, m in ipairs(messages) do
      if root_of(m) == thread.ts or m.ts == thread.ts then picked[#picked + 1] = m end
    end
    if #picked == 0 then fail(EXIT_INPUT, "%s has no message with ts %s", path, thread.ts) end
    local parent = picked[1]
    for _, m in ipairs(picked) do
      if m.ts == thread.ts and m.thread_ts and m.thread_ts ~= m.ts then parent = m end
    end
    -- a link to a reply picks the reply's thread
    if parent.ts == thread.ts and parent.thread_ts and parent.thread_ts ~= parent.ts then
      return input.load({ input = opts.input, thread = parent.thread_ts, since = nil, until_ = nil })
    end
    result.messages, result.thread_ts = picked, thread.ts
  elseif opts.since or opts.until_ then
    local from = opts.since and input.parse_time(opts.since, "--since") or -math.huge
    local to = opts.until_ and input.parse_time(opts.until_, "--until") or math.huge
    local picked = {}
    for _, m in ipairs(messages) do
      local t = tsutil.to_number(root_of(m))
      if t >= from and t <= to then picked[#picked + 1] = m end
    end
    if #picked == 0 then fail(EXIT_INPUT, "%s has no message between %s and %s", path,
      opts.since or "the start", opts.until_ or "the end") end
    result.messages, result.window, result.thread_ts = picked, true, picked[1].ts
  elseif n_roots > 1 then
    fail(EXIT_USAGE, "%s holds %d threads and messages of a channel (a Slack export?): pick one "
      .. "with --thread TS|LINK, or a window with --since/--until", path, n_roots)
  else
    result.messages, result.thread_ts = messages, root_of(messages[1])
  end
  return result
end

return input
