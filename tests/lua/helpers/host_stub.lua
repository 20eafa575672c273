-- Pieces of the fake C `host` module shared by the Lua specs (tests/lua/*_spec.lua) and
-- bench/render_bench.lua: host.all run one function after another, UTC clock functions, files and
-- templates read from disk, error values, a whole offline host (offline_host), a thread saved by
-- bench/gen_thread.py (saved_thread, for the Lua benches). Most specs still build their own stub
-- table from these. Uses the Lua standard library (and the `find` and `cd` commands for
-- templates); saved_thread also lua-cjson and lib/render_offline.lua.
local M = {}

-- The whole file at path; raises when it cannot be opened.
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- host.base64: coreutils' base64 (an independent encoder, not ours), through a temporary file.
function M.base64(s)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(s)
  f:close()
  local p = assert(io.popen("base64 -w0 < '" .. tmp .. "'"))
  local out = p:read("a")
  p:close()
  os.remove(tmp)
  return out
end

-- The whole file at path, or nil when it cannot be opened.
function M.read_or_nil(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Every templates/**/*.mustache as { [name without .mustache] = source }, what host.templates() gives.
function M.disk_templates()
  local all = {}
  local p = io.popen("cd templates && find . -name '*.mustache'")
  for path in p:lines() do
    path = path:gsub("^%./", "")
    all[path:gsub("%.mustache$", "")] = M.read("templates/" .. path)
  end
  p:close()
  return all
end

-- Only the named templates (names without .mustache), read from templates/.
function M.named_templates(names)
  local sources = {}
  for _, name in ipairs(names) do
    sources[name] = M.read("templates/" .. name .. ".mustache")
  end
  return sources
end

-- host.signal for run_all below: there a function runs only once the one before it returned, so a
-- wait could never be woken (and raises); notify wakes nobody.
function M.signal()
  return {
    wait = function() error("host.signal: a wait under the specs' one-after-another host.all") end,
    notify = function() return 0 end,
  }
end

-- Empties H (the specs' host) and gives it what lib/files.lua and lib/early_downloads.lua call,
-- each recording what it was asked: mkdir (H.mkdirs), remove (H.removed), all with run_all below
-- (H.limits: each call's limit, or its count), download (H.downloads: a URL holding "fail" answers
-- HTTP 403), signal (M.signal), log and config doing nothing.
function M.download_host(H)
  for k in pairs(H) do H[k] = nil end
  H.log = function() end
  H.config = function() return {} end
  H.mkdirs, H.removed, H.downloads, H.limits = {}, {}, {}, {}
  H.mkdir = function(p) H.mkdirs[#H.mkdirs + 1] = p return true end
  H.remove = function(p) H.removed[#H.removed + 1] = p return true end
  H.all = function(fns, limit)
    H.limits[#H.limits + 1] = limit or #fns
    return M.run_all(fns)
  end
  H.signal = M.signal
  H.download = function(url, dest)
    H.downloads[#H.downloads + 1] = dest
    if url:find("fail") then return nil, { code = "http_status", status = 403 } end
    return { path = dest, size = #url, sha256 = "sum-" .. url }
  end
  return H
end

-- host.all as docs/lua-api.md describes it, but one function after another (the bot runs them
-- concurrently; the results are the same).
function M.run_all(fns)
  local results = {}
  for i, fn in ipairs(fns) do
    local ok, v, err = pcall(fn)
    results[i] = ok and { ok = true, value = v, err = err } or { ok = false, error = v }
  end
  return results
end

-- host.time_parts for a host whose every zone is UTC.
function M.utc_time_parts(epoch, zone)
  local t = os.date("!*t", math.floor(tonumber(epoch)))
  t.offset, t.abbrev, t.zone = 0, "UTC", zone
  return t
end

-- host.format_time for a host whose every zone is UTC; %Z prints "UTC".
function M.utc_format_time(epoch, _, fmt)
  return (os.date("!" .. fmt:gsub("%%Z", "UTC"), math.floor(tonumber(epoch))))
end

-- host.format_time in UTC, but %Z prints the zone name it was given.
function M.utc_format_time_named(epoch, zone, fmt)
  return (os.date("!" .. fmt:gsub("%%Z", zone), math.floor(tonumber(epoch))))
end

-- The whole host of an offline timeline and report, as bench/profile_render.lua,
-- bench/rules_bench.lua and slack_real_spec.lua use it: UTC, no bot, no files, a fixed clock,
-- generation 1, the templates of templates/ (read once) and `scripts` as the filter rules
-- (module names, e.g. "filters.10-drop-bot-self"; none when nil).
function M.offline_host(scripts)
  local templates = M.disk_templates()
  return {
    log = function() end,
    now = function() return 1731700000 end,
    config = function() return { timezone = "UTC" } end,
    bot = function() return nil end,
    exists = function() return nil end,
    generation = function() return 1 end,
    templates = function() return templates end,
    time_parts = M.utc_time_parts,
    format_time = M.utc_format_time,
    list_scripts = function() return scripts or {} end,
  }
end

-- A thread saved by bench/gen_thread.py in dir: its messages (thread.json, pages of
-- conversations.replies, flattened) and its people for timeline.build (users.json). Call it once the
-- host stub is in package.loaded (lib/render_offline.lua requires it).
function M.saved_thread(dir)
  local cjson = require "cjson"
  local pages = cjson.decode(M.read(dir .. "/thread.json"))
  local messages = {}
  for _, p in ipairs(pages.messages and { pages } or pages) do
    for _, m in ipairs(p.messages or { p }) do messages[#messages + 1] = m end
  end
  local people = require("lib.render_offline").people_from_users(cjson.decode(M.read(dir .. "/users.json")))
  return messages, people
end

-- The error value host.api and host.http return: a table with .code whose tostring is text
-- (default: the code).
function M.host_error(code, text)
  return setmetatable({ code = code }, { __tostring = function() return text or code end })
end

return M
