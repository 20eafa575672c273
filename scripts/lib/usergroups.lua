-- User group handles (`<!subteam^S123>` and rich_text `usergroup` elements show as `@oncall-db`):
-- one `usergroups.list` call per report at most, kept in a module-level cache for config
-- timeline.user_cache_ttl seconds like the people (lib/people.lua). Called by lib/timeline.lua;
-- calls host.api, host.now, host.log. Needs the `usergroups:read` scope; without it ids stay ids.
local host = require "host"

local usergroups = {}

local DEFAULT_TTL = 3600

-- { handles = { [id] = handle }, at = host.now() } of the last good answer
local cache = nil

function usergroups.reset()
  cache = nil
end

-- id -> handle (without "@") for every group of a usergroups.list response (or a saved one, or
-- a plain array of group objects).
function usergroups.handles(response)
  local groups = type(response) == "table" and (response.usergroups or response) or {}
  local handles = {}
  for _, g in ipairs(type(groups) == "table" and groups or {}) do
    if type(g) == "table" and type(g.id) == "string" then
      local handle = type(g.handle) == "string" and g.handle ~= "" and g.handle
        or type(g.name) == "string" and g.name ~= "" and g.name or nil
      if handle then
        handles[g.id] = (handle:gsub("^@", ""))
      end
    end
  end
  return handles
end

-- The handles for `ids` (the groups a thread mentions): from the cache while it is fresh and knows
-- them all, else from one usergroups.list call. No ids, no call. A failed call logs and returns
-- what is known (the ids then show as ids).
function usergroups.ensure(ids, opts)
  if not ids or #ids == 0 then
    return {}
  end
  local ttl = (opts and tonumber(opts.ttl)) or DEFAULT_TTL
  if cache and host.now() - cache.at <= ttl then
    local all_known = true
    for _, id in ipairs(ids) do
      if not cache.handles[id] then
        all_known = false
      end
    end
    if all_known then
      return cache.handles
    end
  end
  local resp, err = host.api("usergroups.list", { include_disabled = true })
  if not resp then
    local code = type(err) == "table" and err.code or tostring(err)
    host.log("warn", "usergroups.list failed, user groups show as ids", { error = code or "no answer" })
    return cache and cache.handles or {}
  end
  cache = { handles = usergroups.handles(resp), at = host.now() }
  return cache.handles
end

return usergroups
