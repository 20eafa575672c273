-- Who may broadcast (statusupdate, incident start/resolve): config status.broadcasters =
-- { users = {...}, usergroups = {...} }; both empty means everyone. Called by the status and
-- incident commands; calls host.api("usergroups.users.list") and keeps each group's members for
-- CACHE_SECONDS, so a burst of updates costs one lookup.
local host = require "host"

local permissions = {}

local CACHE_SECONDS = 60

-- group id -> { members = {[user]=true}, at = monotonic seconds }
local group_cache = {}

local function list_or_empty(v)
  if type(v) == "table" then return v end
  return {}
end

-- Members of a user group as a set, or nil, err when Slack would not tell us.
local function group_members(group)
  local now = host.monotonic()
  local cached = group_cache[group]
  if cached and now - cached.at < CACHE_SECONDS then
    return cached.members
  end
  local res, err = host.api("usergroups.users.list", { usergroup = group })
  if not res then
    return nil, err
  end
  local members = {}
  for _, id in ipairs(list_or_empty(res.users)) do
    members[id] = true
  end
  group_cache[group] = { members = members, at = now }
  return members
end

-- Forget cached group members (tests; an operator who just edited a group can also wait a minute).
function permissions.clear_cache()
  group_cache = {}
end

-- true when `user` may broadcast under `config`, else false plus a reason for the log.
function permissions.may_broadcast(user, config)
  local b = ((config or {}).status or {}).broadcasters or {}
  local users = list_or_empty(b.users)
  local groups = list_or_empty(b.usergroups)
  if #users == 0 and #groups == 0 then
    return true
  end
  for _, id in ipairs(users) do
    if id == user then
      return true
    end
  end
  local failures = {}
  for _, group in ipairs(groups) do
    local members, err = group_members(group)
    if members and members[user] then
      return true
    elseif not members then
      host.log("warn", "usergroup lookup failed", { usergroup = group, err = tostring(err) })
      failures[#failures + 1] = group .. ": " .. tostring(err)
    end
  end
  if #failures > 0 then
    return false, "not a listed broadcaster (lookup failed for " .. table.concat(failures, ", ") .. ")"
  end
  return false, "not a listed broadcaster"
end

-- The polite answer for someone who may not broadcast. Nothing has been sent when it is given.
-- The check a broadcasting command makes first: true when ctx.user may broadcast; otherwise logs
-- the refusal, answers it politely in the thread, and returns false (nothing is sent).
function permissions.allow(ctx, what)
  local allowed, why = permissions.may_broadcast(ctx.user, ctx.config)
  if allowed then return true end
  ctx.log("info", (ctx.command or "command") .. " refused", { user = ctx.user, reason = why })
  ctx.reply(permissions.refusal(ctx.user, what))
  return false
end

function permissions.refusal(user, what)
  return string.format(
    "Sorry <@%s>, only the configured broadcasters may %s (status.broadcasters in the bot's config). "
      .. "Nothing was sent. Please ask the incident lead or one of them.",
    user, what or "send status updates")
end

return permissions
