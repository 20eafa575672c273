-- Uploads report files into a thread with Slack's current flow: for each file
-- files.getUploadURLExternal (exact byte length), a POST of the bytes to upload_url (must answer
-- 200), then ONE files.completeUploadExternal for all of them with channel_id, the parent
-- thread_ts and an initial comment. upload.send is steps 1 and 2 for one file, upload.share step 3:
-- commands/autopsy.lua sends the files side by side and shares once every one went up. In
-- database mode the share is a job step (lib/jobs.lua): at most one per request. Calls host.api,
-- host.http, host.file_size, lib/jobs.lua and cjson.
local host = require "host"
local cjson = require "cjson"
local files = require "lib.files"
local jobs = require "lib.jobs"

local upload = {}

local function fail(code, message, extra)
  local err = { code = code, message = message }
  for k, v in pairs(extra or {}) do err[k] = v end
  return setmetatable(err, { __tostring = function(e) return e.code .. ": " .. e.message end })
end

-- Step 1 and 2 for one file ({ path =, filename = }): returns file_id or nil, err.
local function send_one(f)
  local length, err = host.file_size(f.path)
  if not length then return nil, err end
  local r
  r, err = host.api("files.getUploadURLExternal", { filename = f.filename, length = length })
  if not r then return nil, err end
  if type(r.upload_url) ~= "string" or type(r.file_id) ~= "string" then
    return nil, fail("bad_response", "files.getUploadURLExternal gave no upload_url/file_id")
  end
  local res
  -- an upload URL on an internal address (a test's fake behind a proxy) only when file transfers
  -- may reach one (downloads.allow_private)
  res, err = host.http { method = "POST", url = r.upload_url, body_file = f.path, retries = 2,
                         allow_private = files.allow_private() or nil }
  if not res then return nil, err end
  if res.status ~= 200 then
    return nil, fail("upload_failed", "the upload of " .. f.filename .. " answered HTTP " .. tostring(res.status),
                     { status = res.status })
  end
  return r.file_id
end

-- Step 1 and 2 for one file ({ path =, filename = }), when the caller runs the files itself:
-- file_id or nil, err; what raises comes back as an upload_failed err.
function upload.send(f)
  local ok, id, err = pcall(send_one, f)
  if not ok then return nil, fail("upload_failed", tostring(id)) end
  return id, err
end

-- Step 3: shares the files sent (array of { id =, title = }) into the thread with
-- initial_comment (a string, or nil). Returns the completeUploadExternal response or nil, err.
function upload.share(channel, thread_ts, sent, initial_comment)
  local params = { files = cjson.encode(sent), channel_id = channel, thread_ts = thread_ts }
  if initial_comment and initial_comment ~= "" then params.initial_comment = initial_comment end
  -- the share into the thread is the visible step: once per request, even across instances
  return jobs.step("upload:" .. tostring(channel) .. ":" .. tostring(thread_ts),
    function() return host.api("files.completeUploadExternal", params) end,
    function() return upload.already_shared(channel, thread_ts) end)
end

-- Database mode, a takeover: did the instance that died share a report into this thread after
-- the request (a file titled "Postmortem..." from the bot)?
function upload.already_shared(channel, thread_ts)
  local m = jobs.find_mine_in_thread(channel, thread_ts, function(msg)
    for _, f in ipairs(msg.files or {}) do
      if tostring(f.title or ""):find("^Postmortem") then return true end
    end
    return false
  end)
  if m then return true, { ok = true, already_shared = m.ts } end
  return false
end

local function plural(n, one, many)
  return string.format("%d %s", n, n == 1 and one or many)
end

-- The initial comment: entries, files, missing files, complete or not; `extra` (e.g. what changed
-- since the previous version) is added as a second line.
function upload.summary(view, extra)
  local c = view.counts or {}
  local text = string.format("Postmortem: %s, %s attached", plural(c.entries or 0, "entry", "entries"),
                             plural(c.files_downloaded or 0, "file", "files"))
  if (c.files_missing or 0) > 0 then
    text = text .. string.format(", %d could not be downloaded", c.files_missing)
  end
  if view.incomplete then
    text = text .. string.format(". *Incomplete:* only %d of %d messages could be read",
                                 view.incomplete.fetched or 0, view.incomplete.expected or 0)
  end
  text = text .. "."
  if extra and extra ~= "" then text = text .. "\n" .. extra end
  return text
end

return upload
