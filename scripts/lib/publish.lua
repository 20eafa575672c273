-- Publishing a kept report to a Git repository (config publish.git): publish.report(channel,
-- thread_ts) commits the latest version's .md and attachments/ under the folder of publish.git.path
-- and pushes it, one publish per repository at a time; a push that someone else's push beat is
-- re-applied on the new head and tried again (never forced). Git runs as a child process (host.run,
-- no shell); credentials come from POSTMORTEMBOT_GIT_TOKEN (an HTTP header given through git's
-- GIT_CONFIG_* environment, never argv or a file) or POSTMORTEMBOT_GIT_SSH_KEY. Called by
-- commands/publish.lua; calls lib/bundle.lua, lib/mustache.lua and host.
local host = require "host"
local bundle = require "lib.bundle"
local mustache = require "lib.mustache"

local publish = {}

local DEFAULTS = {
  branch = "main",
  path = "postmortems/{{year}}/{{date}}-{{slug}}",
  author_name = "postmortembot",
  author_email = "postmortembot@localhost",
  username = "x-access-token",
  message = "Postmortem: {{title}} (version {{version}})",
  timeout = 120,
  attempts = 5,
}
local STALE_LOCK = 900 -- seconds after which a lock left by a killed publish is ignored

local locks = {} -- [repository url] = host.monotonic() of the publish holding it

function publish.config(config)
  local p = ((config or {}).publish or {}).git
  if type(p) ~= "table" or type(p.url) ~= "string" or p.url == "" then return nil end
  local c = {}
  for k, v in pairs(DEFAULTS) do c[k] = v end
  for k, v in pairs(p) do c[k] = v end
  return c
end

-- The URL without user:password@ (a password there is refused: credentials come from the environment).
local function check_url(url)
  local userinfo = url:match("^%a[%w+.-]*://([^/@]*)@")
  if userinfo and userinfo:find(":", 1, true) then
    return nil, "publish.git.url holds a password: put the token in POSTMORTEMBOT_GIT_TOKEN instead"
  end
  return url
end

-- Replace every secret (and its Basic form) in text: git's messages are shown in the thread.
local function redactor(secrets)
  return function(text)
    text = tostring(text or "")
    for _, s in ipairs(secrets) do
      if s ~= "" then
        local start = 1
        while true do
          local i, j = text:find(s, start, true)
          if not i then break end
          text = text:sub(1, i - 1) .. "[redacted]" .. text:sub(j + 1)
          start = i + 10
        end
      end
    end
    return text
  end
end

-- The environment of every git command: no system or user config, no prompts, the author, the
-- credentials.
local function git_env(c, cache_dir)
  local env = {
    GIT_CONFIG_NOSYSTEM = "1", GIT_CONFIG_GLOBAL = "/dev/null", GIT_TERMINAL_PROMPT = "0",
    GIT_ASKPASS = "/bin/false", SSH_ASKPASS = "/bin/false", LC_ALL = "C",
    GIT_AUTHOR_NAME = c.author_name, GIT_AUTHOR_EMAIL = c.author_email,
    GIT_COMMITTER_NAME = c.author_name, GIT_COMMITTER_EMAIL = c.author_email,
    GIT_INDEX_FILE = cache_dir .. "/publish.index",
  }
  local secrets = {}
  local token = host.getenv("POSTMORTEMBOT_GIT_TOKEN")
  local key = host.getenv("POSTMORTEMBOT_GIT_SSH_KEY")
  if token and token ~= "" and c.url:match("^https?://") then
    local basic = host.base64(c.username .. ":" .. token)
    env.GIT_CONFIG_COUNT = "1"
    env.GIT_CONFIG_KEY_0 = "http." .. c.url .. ".extraHeader" -- sent to this repository only
    env.GIT_CONFIG_VALUE_0 = "Authorization: Basic " .. basic
    secrets = { token, basic }
  elseif key and key ~= "" then
    local q = function(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    env.GIT_SSH_COMMAND = "ssh -i " .. q(key) .. " -o IdentitiesOnly=yes -o BatchMode=yes"
      .. " -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=" .. q(cache_dir .. "/known_hosts")
  end
  return env, secrets
end

-- Run git in the cache dir. Returns the result table (status 0) or nil, err (code "git",
-- "auth", "race" or host.run's codes) with a redacted message.
local function git(job, args, stdin)
  local argv = { "git" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local res, err = host.run{ argv = argv, cwd = job.dir, env = job.env, stdin = stdin,
                             timeout = job.c.timeout, max_output = 4 * 1024 * 1024 }
  if not res then
    return nil, { code = err.code, message = job.redact(err.message) }
  end
  if res.status == 0 then return res end
  local text = job.redact(res.stderr .. res.stdout)
  local code = "git"
  local lower = text:lower()
  if lower:find("authentication failed", 1, true) or lower:find("could not read username", 1, true)
      or lower:find("permission denied", 1, true) or lower:find(" 401", 1, true)
      or lower:find(" 403", 1, true) or lower:find("access denied", 1, true) then
    code = "auth"
  elseif lower:find("[rejected]", 1, true) or lower:find("non-fast-forward", 1, true)
      or lower:find("fetch first", 1, true) or lower:find("cannot lock ref", 1, true)
      or lower:find("failed to update ref", 1, true) or lower:find("stale info", 1, true)
      or lower:find("failed to lock", 1, true) then
    code = "race"
  end
  local first = text:match("fatal: ([^\n]+)") or text:match("error: ([^\n]+)") or text:match("[^\n]+") or "failed"
  return nil, { code = code, message = "git " .. args[1] .. ": " .. first,
                detail = text:sub(1, 2000) }
end

-- A relative folder from the path pattern: segments of [%w._-], no "." or "..".
local function folder(pattern, vars)
  local raw = mustache.render(pattern, vars, {}, function(s) return s end)
  local parts = {}
  for seg in raw:gmatch("[^/]+") do
    seg = seg:gsub("[^%w%._%-]", "-")
    if seg ~= "." and seg ~= ".." and seg ~= "" then parts[#parts + 1] = seg end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, "/")
end

-- The latest kept version of a thread: { dir, version, md_name, files = { relative paths } } or nil.
function publish.latest(data_dir, channel, thread_ts)
  local versions = bundle.versions(data_dir, channel, thread_ts)
  local v = versions[#versions]
  if not v then return nil end
  local dir = bundle.thread_dir(data_dir, channel, thread_ts) .. "/v" .. v
  local md_name
  for _, name in ipairs(host.list_dir(dir) or {}) do
    if name:match("%.md$") then md_name = name end
  end
  if not md_name then return nil end
  local files = { md_name }
  local function walk(rel)
    for _, name in ipairs(host.list_dir(dir .. "/" .. rel) or {}) do
      local path = rel .. "/" .. name
      local kind = host.exists(dir .. "/" .. path)
      if kind == "dir" then walk(path) elseif kind == "file" then files[#files + 1] = path end
    end
  end
  if host.exists(dir .. "/attachments") == "dir" then walk("attachments") end
  return { dir = dir, version = v, md_name = md_name, files = files }
end

-- The report's title: its first heading without "Postmortem: " (else the file's name).
function publish.title(report)
  local md = host.read_file(report.dir .. "/" .. report.md_name) or ""
  local heading = md:match("^#%s+([^\n]+)")
  return heading and (heading:gsub("^Postmortem:%s*", "")) or (report.md_name:gsub("%.md$", ""))
end

-- Fetch the branch; true when it exists (false for an empty repository), or nil, err.
local function fetch(job)
  local res, err = git(job, { "fetch", "--quiet", "--no-tags", job.c.url,
                              "+refs/heads/" .. job.c.branch .. ":refs/remotes/origin/" .. job.c.branch })
  if res then return true end
  if err.code == "git" and (err.detail or ""):lower():find("couldn't find remote ref", 1, true) then
    return false
  end
  return nil, err
end

-- One attempt: the remote head (or nothing), our files on top of it, a commit, a push.
-- Returns { commit, parent, unchanged } or nil, err.
local function attempt(job)
  local exists, err = fetch(job)
  if exists == nil then return nil, err end
  local parent
  if exists then
    local res
    res, err = git(job, { "rev-parse", "--verify", "refs/remotes/origin/" .. job.c.branch })
    if not res then return nil, err end
    parent = res.stdout:match("%x+")
    res, err = git(job, { "read-tree", parent })
    if not res then return nil, err end
  else
    local res
    res, err = git(job, { "read-tree", "--empty" })
    if not res then return nil, err end
  end
  -- what the folder held before goes (a file of an older version that is gone now)
  local res
  res, err = git(job, { "ls-files", "-z", "--", job.folder })
  if not res then return nil, err end
  local lines = {}
  for path in res.stdout:gmatch("([^%z]+)") do
    lines[#lines + 1] = "0 0000000000000000000000000000000000000000\t" .. path
  end
  -- the files, written into the object store straight from the report's folder
  local paths = {}
  for _, f in ipairs(job.report.files) do paths[#paths + 1] = job.report.dir .. "/" .. f end
  res, err = git(job, { "hash-object", "-w", "--stdin-paths" }, table.concat(paths, "\n") .. "\n")
  if not res then return nil, err end
  local i = 0
  for sha in res.stdout:gmatch("%x+") do
    i = i + 1
    lines[#lines + 1] = "100644 " .. sha .. "\t" .. job.folder .. "/" .. job.report.files[i]
  end
  res, err = git(job, { "update-index", "-z", "--index-info" }, table.concat(lines, "\0") .. "\0")
  if not res then return nil, err end
  res, err = git(job, { "write-tree" })
  if not res then return nil, err end
  local tree = res.stdout:match("%x+")
  if parent then
    local ptree
    ptree, err = git(job, { "rev-parse", parent .. "^{tree}" })
    if not ptree then return nil, err end
    if ptree.stdout:match("%x+") == tree then
      return { commit = parent, parent = parent, unchanged = true }
    end
  end
  local args = { "commit-tree", tree, "-F", "-" }
  if parent then table.insert(args, 3, "-p"); table.insert(args, 4, parent) end
  res, err = git(job, args, job.message .. "\n")
  if not res then return nil, err end
  local commit = res.stdout:match("%x+")
  res, err = git(job, { "push", "--quiet", job.c.url, commit .. ":refs/heads/" .. job.c.branch })
  if not res then return nil, err end
  return { commit = commit, parent = parent }
end

-- Publish the latest report of a thread. opts: config (default host.config()), title.
-- Returns { commit, url (or false), path, file, version, unchanged, attempts } or nil, err with
-- err.code: "not_configured", "no_report", "bad_url", "auth", "race", "git", "timeout", "spawn".
function publish.report(channel, thread_ts, opts)
  opts = opts or {}
  local config = opts.config or host.config() or {}
  local c = publish.config(config)
  if not c then
    return nil, { code = "not_configured", message = "publish.git.url is not set in the config" }
  end
  local url, why = check_url(c.url)
  if not url then return nil, { code = "bad_url", message = why } end
  local data_dir = config.data_dir
  local report = publish.latest(data_dir, channel, thread_ts)
  if not report then
    return nil, { code = "no_report", message = "this thread has no report yet" }
  end
  local y, m, d, slug = report.md_name:match("^postmortem%-(%d%d%d%d)%-(%d%d)%-(%d%d)%-(.-)%.md$")
  local vars = { year = y or "", month = m or "", day = d or "",
                 date = y and (y .. "-" .. m .. "-" .. d) or "",
                 slug = slug or report.md_name:gsub("%.md$", ""), channel = channel, thread_ts = thread_ts,
                 version = report.version, title = opts.title or publish.title(report),
                 branch = c.branch }
  local dir_name = host.sha256(c.url):sub(1, 16)
  local job = { c = c, report = report, dir = data_dir .. "/publish/" .. dir_name }
  job.folder = folder(c.path, vars)
  if not job.folder then return nil, { code = "bad_path", message = "publish.git.path gives an empty folder" } end
  job.message = mustache.render(c.message, vars, {}, function(s) return s end)
  local secrets
  job.env, secrets = git_env(c, job.dir)
  job.redact = redactor(secrets)

  -- one publish per repository at a time (in this generation)
  while locks[c.url] and host.monotonic() - locks[c.url] < STALE_LOCK do host.sleep(0.05) end
  locks[c.url] = host.monotonic()
  local ok, result, err = pcall(function()
    if host.exists(job.dir .. "/.git") ~= "dir" then
      local res, e = git(job, { "init", "--quiet" })
      if not res then return nil, e end
    end
    local out, e
    for n = 1, c.attempts do
      out, e = attempt(job)
      if out then out.attempts = n; return out end
      if e.code ~= "race" then return nil, e end
      host.log("info", "publish: the push was beaten by another, trying again on the new head",
               { attempt = n })
      host.sleep(0.2 * n)
    end
    return nil, e
  end)
  locks[c.url] = nil
  if not ok then error(result, 0) end
  if not result then return nil, err end
  vars.path = job.folder
  vars.file = report.md_name
  vars.page = report.md_name:gsub("%.md$", "")
  vars.commit = result.commit
  local page_url = false
  if type(c.page_url) == "string" and c.page_url ~= "" then
    page_url = mustache.render(c.page_url, vars, {}, function(s)
      return (tostring(s):gsub("[^%w%-%._~/]", function(ch) return string.format("%%%02X", ch:byte()) end))
    end)
  end
  result.url = page_url
  result.path = job.folder
  result.file = report.md_name
  result.version = report.version
  return result
end

return publish
