-- Who wrote what: display names of users (users.info) and bots (bots.info), fetched once per id,
-- several at a time (host.all), and kept in a module-level cache for config
-- timeline.user_cache_ttl seconds (the cache lives as long as the script generation). Called by
-- lib/timeline.lua and lib/slack.lua (slack.user_names); calls host.api, host.all, host.now.
-- A person is { id =, name =, is_bot = }; an id nobody can resolve is shown as the id itself.
local host = require "host"

local people = {}

local DEFAULT_TTL = 3600
local FETCH_LIMIT = 8

-- id -> { person = {...}, at = host.now() }
local cache = {}

local str = require("lib.values").text

-- Test hook and "forget everything" for operators.
function people.reset()
  cache = {}
end

local function ttl_of(opts)
  if opts and opts.ttl then return opts.ttl end
  local ok, config = pcall(host.config)
  local t = ok and type(config) == "table" and config.timeline or nil
  return (t and tonumber(t.user_cache_ttl)) or DEFAULT_TTL
end

-- A person from a users.info / users.list member (or a message's user_profile).
function people.from_user(u)
  local profile = type(u.profile) == "table" and u.profile or {}
  local name = str(profile.display_name) or str(u.display_name)
    or str(u.real_name) or str(profile.real_name)
    or str(u.name) or str(u.id) or "unknown"
  return { id = str(u.id), name = name, is_bot = u.is_bot == true }
end

-- A person from a bots.info bot or a message's bot_profile.
function people.from_bot(b)
  return { id = str(b.id), name = str(b.name) or str(b.id) or "bot", is_bot = true }
end

function people.unknown(id)
  return { id = id, name = id, is_bot = id:sub(1, 1) == "B", unknown = true }
end

-- The cached person for id, or nil when absent or older than the TTL.
function people.cached(id, opts)
  local c = cache[id]
  if not c then return nil end
  if host.now() - c.at > ttl_of(opts) then
    cache[id] = nil
    return nil
  end
  return c.person
end

-- Put a person into the cache (e.g. from a message's bot_profile, which costs no call).
function people.remember(person)
  if person and person.id then cache[person.id] = { person = person, at = host.now() } end
end

-- Slack says these ids do not exist (or are not visible): remember that, it will not change soon.
local PERMANENT = { user_not_found = true, user_not_visible = true, bot_not_found = true }

local function fetch_one(id)
  local is_bot_id = id:sub(1, 1) == "B"
  local resp, err
  if is_bot_id then
    resp, err = host.api("bots.info", { bot = id })
  else
    resp, err = host.api("users.info", { user = id })
  end
  if resp and is_bot_id and type(resp.bot) == "table" then
    local p = people.from_bot(resp.bot)
    p.id = id
    return p, true
  end
  if resp and not is_bot_id and type(resp.user) == "table" then
    local p = people.from_user(resp.user)
    p.id = id
    return p, true
  end
  local code = type(err) == "table" and err.code or nil
  host.log("warn", "name lookup failed, showing the id", { id = id, error = code or "no answer" })
  return people.unknown(id), PERMANENT[code] == true
end

-- Make sure every id in `ids` (array, duplicates and nils allowed) is known. Fetches the missing
-- ones concurrently. Returns a book: { [id] = person } for every id asked for (unknown ids map to a
-- person named by the id). opts: ttl (seconds), limit (calls at once).
function people.ensure(ids, opts)
  local book, missing, seen = {}, {}, {}
  for _, id in ipairs(ids or {}) do
    if type(id) == "string" and id ~= "" and not seen[id] then
      seen[id] = true
      local p = people.cached(id, opts)
      if p then
        book[id] = p
      else
        missing[#missing + 1] = id
      end
    end
  end
  if #missing == 0 then return book end
  local fns = {}
  for i, id in ipairs(missing) do
    fns[i] = function()
      local p, keep = fetch_one(id)
      return { person = p, keep = keep }
    end
  end
  local results = host.all(fns, (opts and opts.limit) or FETCH_LIMIT)
  for i, id in ipairs(missing) do
    local r = results[i]
    local p, keep
    if r and r.ok and type(r.value) == "table" then
      p, keep = r.value.person, r.value.keep
    else
      p, keep = people.unknown(id), false
    end
    book[id] = p
    if keep then people.remember(p) end
  end
  return book
end

-- id -> display name for each id (cached, TTL): the slack.user_names helper.
function people.names(ids, opts)
  local book = people.ensure(ids, opts)
  local names = {}
  for id, p in pairs(book) do names[id] = p.name end
  return names
end

return people
