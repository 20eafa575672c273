-- The files of a thread: what each Slack file object becomes in the timeline (image, file or
-- snippet; or why it cannot be downloaded), the safe local name "<FILEID>-<name>", and the
-- pieces of the downloads into the report's attachments/ folder (one fetch, its outcome on the
-- entries; lib/early_downloads.lua runs them several at once). Called by lib/timeline.lua and
-- lib/early_downloads.lua (namer, group_by_id, fetch, apply); calls host.download, host.exists,
-- host.file_size.
-- A download failure is never an error of the report: it becomes the file's missing_reason.
local host = require "host"

local files = {}

files.MAX_NAME_BYTES = 100
files.DIR = "attachments"

local str = require("lib.values").text

local function mb(n)
  return string.format("%.1f MB", n / (1024 * 1024))
end

-- Characters that are path separators, shell or Windows trouble, or invisible reordering marks.
local REPLACED_ASCII = { ["/"] = true, ["\\"] = true, [":"] = true, ["*"] = true, ["?"] = true,
                         ['"'] = true, ["<"] = true, [">"] = true, ["|"] = true }

local function is_control(cp)
  return cp < 0x20 or cp == 0x7f or (cp >= 0x80 and cp <= 0x9f)
    or (cp >= 0x200e and cp <= 0x200f) or (cp >= 0x202a and cp <= 0x202e)
    or (cp >= 0x2066 and cp <= 0x2069) or cp == 0xfeff
end

-- Each UTF-8 character kept, each bad byte, control or separator replaced by "_".
local function clean_chars(s)
  local out = {}
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or (c >= 0xc2 and c <= 0xdf) and 2 or (c >= 0xe0 and c <= 0xef) and 3
      or (c >= 0xf0 and c <= 0xf4) and 4 or 0
    local ch = len > 0 and s:sub(i, i + len - 1) or nil
    local cp = ch and #ch == len and utf8.len(ch) == 1 and utf8.codepoint(ch) or nil
    if not cp then
      out[#out + 1] = "_"
      i = i + 1
    else
      if is_control(cp) or REPLACED_ASCII[ch] then
        out[#out + 1] = "_"
      else
        out[#out + 1] = ch
      end
      i = i + len
    end
  end
  return table.concat(out)
end

-- The longest prefix of s that is at most n bytes and ends on a character boundary.
local function cut_utf8(s, n)
  if #s <= n then return s end
  local cut = s:sub(1, n)
  while #cut > 0 and not utf8.len(cut) do cut = cut:sub(1, -2) end
  return cut
end
files.cut_utf8 = cut_utf8

local function trim_dots(s)
  return (s:gsub("^[%s%.]+", ""):gsub("[%s%.]+$", ""))
end

-- "<FILEID>-<sanitised name>": no path separators, no "..", no control characters, no leading
-- dot, at most MAX_NAME_BYTES bytes cut on a UTF-8 boundary (the extension kept), unicode kept.
function files.safe_name(id, name)
  local safe_id = tostring(id or ""):gsub("[^%w]", "")
  if safe_id == "" then safe_id = "F" end
  local s = clean_chars(tostring(name or ""))
  s = s:gsub("%.%.+", ".")
  s = trim_dots(s)
  if s == "" then s = "file" end
  local room = files.MAX_NAME_BYTES - #safe_id - 1
  if #s > room then
    local ext = s:match("(%.[%w]+)$")
    if not ext or #ext > 16 or #ext >= room then ext = "" end
    local stem = s:sub(1, #s - #ext)
    stem = trim_dots(cut_utf8(stem, room - #ext))
    if stem == "" then stem = "file" end
    s = stem .. ext
  end
  return safe_id .. "-" .. s
end

function files.kind(f)
  local mimetype = str(f.mimetype) or ""
  if mimetype:match("^image/") then return "image" end
  if f.mode == "snippet" then return "snippet" end
  return "file"
end

-- Why a file cannot be downloaded, from its object alone; nil when it can be tried.
function files.unavailable_reason(f, max_bytes)
  local mode = f.mode
  if mode == "hidden_by_limit" then
    return "hidden by Slack's message history limit for this workspace's plan"
  elseif mode == "tombstone" then
    return "deleted from Slack"
  elseif mode == "external" or f.is_external == true then
    local where = str(f.external_type)
    return "stored outside Slack" .. (where and (" (" .. where .. ")") or "") .. ", not copied"
  elseif f.file_access == "check_file_info" then
    return "Slack Connect file whose details Slack did not give (files.info failed)"
  elseif f.file_access == "access_denied" then
    return "access denied by Slack"
  end
  if not (str(f.url_private_download) or str(f.url_private)) then
    return "no download link from Slack"
  end
  if max_bytes and type(f.size) == "number" and f.size > max_bytes then
    return "too large (" .. mb(f.size) .. ", limit " .. mb(max_bytes) .. ")"
  end
  return nil
end

-- The timeline's file entry for a Slack file object (see docs/timeline-model.md) and the URL to
-- download it from (nil when not downloadable; then missing_reason says why).
function files.describe(f, max_bytes)
  local fe = {
    id = str(f.id),
    name = str(f.name),
    title = str(f.title),
    mimetype = str(f.mimetype),
    size = type(f.size) == "number" and f.size or nil,
    kind = files.kind(f),
    slack_permalink = str(f.permalink),
  }
  if not fe.name and not fe.title then fe.name = fe.id or "file" end
  if fe.kind == "snippet" then fe.preview = str(f.preview) end
  local reason = files.unavailable_reason(f, max_bytes)
  if reason then
    fe.missing_reason = reason
    return fe, nil
  end
  return fe, str(f.url_private_download) or str(f.url_private)
end

-- A host.download error as a reader understands it. Each code says what happened and nothing
-- else: a redirect to another host is followed without the token, so no reason speaks of one.
local REASONS = {
  login_page = "login page instead of the file",
  redirect_refused = "redirected to a URL that is not http(s) (refused)",
  too_many_redirects = "too many redirects (a redirect loop?)",
  address_refused = "refused: the file server is on an internal address "
    .. "(allow it with downloads.allow_private)",
  truncated = "the file server ended the download early",
  timeout = "download timed out",
  io = "could not be written to disk",
}

function files.reason(err, max_bytes)
  local code = type(err) == "table" and err.code or tostring(err)
  if code == "too_large" then
    return "too large" .. (max_bytes and (" (limit " .. mb(max_bytes) .. ")") or "")
  end
  if code == "http_status" then return "HTTP status " .. tostring(err.status or "?") end
  if REASONS[code] then return REASONS[code] end
  local message = type(err) == "table" and err.message or nil
  if code == "connect" then
    return "connection to the file server failed" .. (message and (" (" .. message .. ")") or "")
  end
  return "download failed: " .. tostring(code) .. (message and (" (" .. message .. ")") or "")
end

-- A namer: namer(id, name) gives files.safe_name(id, name), made unique among the names this namer
-- gave with "-2", "-3"... before the extension (two files without an id and with the same name,
-- or ids that differ only in characters safe_name drops).
function files.namer()
  local used = {}
  return function(id, name_in)
    local name = files.safe_name(id, name_in)
    local n = 1
    local candidate = name
    while used[candidate] do
      n = n + 1
      local stem, ext = name:match("^(.-)(%.[%w]+)$")
      if not stem or #ext > 16 then stem, ext = name, "" end
      local suffix = "-" .. n
      stem = cut_utf8(stem, files.MAX_NAME_BYTES - #ext - #suffix)
      candidate = stem .. suffix .. ext
    end
    used[candidate] = true
    return candidate
  end
end

-- Local names for the groups, in order (files.namer over them).
function files.unique_names(groups, order)
  local name_of, names = files.namer(), {}
  for _, key in ipairs(order) do
    local g = groups[key]
    names[key] = name_of(g.id, g.name)
  end
  return names
end

-- Whether file transfers (downloads, and the upload to the URL Slack gives) may reach internal
-- addresses: opts.allow_private, else the config's downloads.allow_private (default false:
-- loopback, private, link-local... are refused). Also called by lib/upload.lua.
function files.allow_private(opts)
  if opts and opts.allow_private ~= nil then return opts.allow_private == true end
  local ok, config = pcall(host.config)
  local downloads = ok and type(config) == "table" and type(config.downloads) == "table" and config.downloads
  return downloads and downloads.allow_private == true or false
end

-- The jobs by file ({ url, id, name, entries }; the key is the file id, else its URL) and the
-- keys in the order of their first job: the same file shared twice is fetched once.
function files.group_by_id(jobs)
  local groups, order = {}, {}
  for i, job in ipairs(jobs) do
    local key = job.entry.id or job.url or ("#" .. i)
    if not groups[key] then
      groups[key] = { url = job.url, id = job.entry.id, name = job.entry.name or job.entry.title, entries = {} }
      order[#order + 1] = key
    end
    table.insert(groups[key].entries, job.entry)
  end
  return groups, order
end
local group_by_id = files.group_by_id

-- The report-relative path of a downloaded file named safe (files.unique_names).
function files.local_path(safe)
  return files.DIR .. "/" .. safe
end

-- Download url into out_dir/attachments/<safe> (the folder exists). Returns what the file entries
-- get: { local_path, sha256, size } or { reason }. opts: max_bytes, allow_private (resolved).
function files.fetch(url, out_dir, safe, opts)
  local dl_opts = { max_bytes = opts.max_bytes, allow_private = opts.allow_private or nil }
  local res, err = host.download(url, out_dir .. "/" .. files.local_path(safe), dl_opts)
  if not res then return { reason = files.reason(err, opts.max_bytes) } end
  return { local_path = files.local_path(safe), sha256 = res.sha256, size = res.size }
end

-- A host.all result of a files.fetch as that outcome (a fetch that raised is a failed download).
function files.outcome_of(r)
  if r and r.ok and type(r.value) == "table" then return r.value end
  return { reason = "download failed: " .. tostring(r and r.error or "no result") }
end

-- Set an outcome (files.fetch's) on file entries: local_path, sha256, size, or missing_reason (and
-- no local_path nor sha256: a failure replaces a predicted arrival, lib/early_downloads.lua).
function files.apply(entries, outcome)
  for _, fe in ipairs(entries) do
    if outcome.local_path then
      fe.local_path = outcome.local_path
      fe.sha256 = outcome.sha256
      fe.size = outcome.size or fe.size
    else
      fe.local_path, fe.sha256 = nil, nil
      fe.missing_reason = outcome.reason
    end
  end
end

-- The missing_reason of every file when attachments/ cannot be made.
files.NO_FOLDER = "could not create the attachments folder"

-- Offline render: use a file already present under out_dir/attachments/, else say why it is absent.
function files.attach_offline(jobs, out_dir)
  local groups, order = group_by_id(jobs)
  local names = files.unique_names(groups, order) -- the names the bot's downloads use
  for _, key in ipairs(order) do
    local safe = names[key]
    local path = (out_dir or ".") .. "/" .. files.local_path(safe)
    local present = out_dir and host.exists(path) == "file"
    for _, fe in ipairs(groups[key].entries) do
      if present then
        fe.local_path = files.local_path(safe)
        fe.size = host.file_size(path) or fe.size
      else
        fe.missing_reason = "offline render"
      end
    end
  end
end

-- { downloaded = n, missing = n, bytes = n } over every file of the entries.
function files.stats(entries)
  local s = { downloaded = 0, missing = 0, bytes = 0 }
  for _, e in ipairs(entries) do
    if e.files then -- most entries have none
      for _, fe in ipairs(e.files) do
        if fe.local_path and not fe.missing_reason then
          s.downloaded = s.downloaded + 1
          s.bytes = s.bytes + (fe.size or 0)
        else
          s.missing = s.missing + 1
        end
      end
    end
  end
  return s
end

return files
