-- Sends one outage update (status update, incident started, resolved) to every configured
-- destination through lib/destinations.lua (scripts/destinations/*.lua: Slack channels, webhooks,
-- WhatsApp, email, Teams, a status page), and words the one summary reply.
-- Called by commands/statusupdate.lua, incident_start.lua, incident_resolve.lua; calls
-- lib/destinations.lua, lib/slackfmt.lua and host.
local host = require "host"
local slackfmt = require "lib.slackfmt"
local destinations = require "lib.destinations"

local broadcast = {}

local HEADLINES = {
  status = "Status update",
  started = "Incident started",
  resolved = "Resolved",
}

-- "Bearer ${TOKEN_NAME}" -> "Bearer <value of TOKEN_NAME>". Returns the string, or nil and the
-- name of the first variable that is not set (so nothing half-filled is ever sent).
function broadcast.expand_env(value, getenv)
  getenv = getenv or host.getenv
  local missing
  local out = tostring(value):gsub("%${([%w_]+)}", function(name)
    local v = getenv(name)
    if v == nil then
      missing = missing or name
      return ""
    end
    return v
  end)
  if missing then
    return nil, missing
  end
  return out
end

-- Display names for user ids (users.info each; the id itself when Slack does not answer).
function broadcast.user_names(ids)
  local names = {}
  for _, id in ipairs(ids) do
    if not names[id] then
      local res = host.api("users.info", { user = id })
      local user = res and res.user
      local name
      if type(user) == "table" then
        local profile = type(user.profile) == "table" and user.profile or {}
        for _, candidate in ipairs({ profile.display_name, profile.real_name, user.real_name, user.name }) do
          if type(candidate) == "string" and candidate ~= "" then
            name = candidate
            break
          end
        end
      end
      names[id] = name or id
    end
  end
  return names
end

-- The first line of the thread's parent message as plain text (at most 80 characters), for a
-- title when the thread has no incident record; nil when it cannot be read.
function broadcast.thread_title(channel, thread_ts)
  local res = host.api("conversations.replies", { channel = channel, ts = thread_ts, limit = 1 })
  local parent = res and type(res.messages) == "table" and res.messages[1]
  if type(parent) ~= "table" or type(parent.text) ~= "string" then
    return nil
  end
  local line = slackfmt.to_plain(parent.text):match("^%s*([^\n]*)") or ""
  line = line:gsub("%s+$", "")
  if line == "" then
    return nil
  end
  if utf8.len(line) and utf8.len(line) > 80 then
    line = line:sub(1, utf8.offset(line, 78) - 1) .. "…"
  end
  return line
end

-- The link to a thread: built from the workspace URL (auth.test) when known, else asked of Slack.
function broadcast.thread_url(bot, channel, thread_ts)
  bot = bot or host.bot()
  local url = slackfmt.permalink(bot and bot.url, channel, thread_ts)
  if url then
    return url
  end
  local res = host.api("chat.getPermalink", { channel = channel, message_ts = thread_ts })
  return res and res.permalink or nil
end

-- Mentions in what a user typed are relayed as text, never as pings, unless the config says
-- status.allow_mentions = true: a status update reaches whole channels and outside consumers, and
-- anyone may send one when status.broadcasters is empty.
local ZWSP = "\u{200B}" -- after "@" or "<": the word stays readable, no consumer parses it
local MASS = { channel = true, here = true, everyone = true, all = true, group = true }

-- Slack-encoded text -> Slack-encoded text without live mentions: <!channel>, <!here>,
-- <!everyone>, <!subteam^…|@team> become "@​channel", "@​team"; <@U1> becomes "@Name" (names
-- from `names`, else the label or the id). Other markup (links, <#C…>, <!date…>) is kept.
function broadcast.defuse_slack(text, names)
  names = names or {}
  return (tostring(text or ""):gsub("<([!@])([^<>]*)>", function(sigil, inner)
    local target, label = inner:match("^([^|]*)|(.*)$")
    target = target or inner
    if sigil == "@" then
      return "@" .. slackfmt.escape(names[target] or label or target)
    end
    local special = target:match("^[%w_]+") or ""
    if special == "subteam" then
      local team = (label or ""):gsub("^@", "")
      return "@" .. ZWSP .. slackfmt.escape(team ~= "" and team or "group")
    end
    if MASS[special] then
      return "@" .. ZWSP .. special
    end
    return nil
  end))
end

-- Plain text for webhooks -> the same text that no Slack- or Mattermost-compatible consumer
-- reads as markup: a "<" that would open a mention, a channel or a link (<!…, <@…, <#…,
-- <scheme:…; only ever a literal one here: to_plain decoded it from &lt;) is followed by a
-- zero-width space, and so is the "@" of @channel, @here, @everyone, @all.
function broadcast.defuse_plain(text)
  local out = tostring(text or ""):gsub("<([!@#])", "<" .. ZWSP .. "%1")
  out = out:gsub("<(%a[%w+.-]*:)", "<" .. ZWSP .. "%1")
  out = out:gsub("@(%a+)", function(word)
    if MASS[word:lower()] then return "@" .. ZWSP .. word end
    return nil
  end)
  return out
end

-- Build the view both templates render. `update`:
--   { kind = "status"|"started"|"resolved", title, text (Slack-encoded, as typed), user,
--     at (epoch), thread_url, duration (resolved only), zone, allow_mentions }
function broadcast.view(update)
  local ids = { update.user }
  for _, id in ipairs(slackfmt.mentioned_users(update.text)) do
    ids[#ids + 1] = id
  end
  local names = update.names or broadcast.user_names(ids)
  local zone = update.zone or "UTC"
  local text_slack = update.text or ""
  local title = update.title or ""
  if not update.allow_mentions then
    text_slack = broadcast.defuse_slack(text_slack, names)
    title = broadcast.defuse_plain(title)
  end
  local text_plain = slackfmt.to_plain(text_slack, names)
  if not update.allow_mentions then
    text_plain = broadcast.defuse_plain(text_plain)
  end
  local kind = update.kind or "status"
  return {
    kind = kind,
    is_status = kind == "status",
    is_started = kind == "started",
    is_resolved = kind == "resolved",
    headline = HEADLINES[kind] or "Update",
    title = title,  -- "" when the update belongs to no titled thread
    has_title = title ~= "",
    text = text_plain,
    text_slack = text_slack,
    has_text = text_plain ~= "",
    user = update.user,
    user_mention = "<@" .. tostring(update.user) .. ">",
    user_name = names[update.user] or update.user,
    at = math.floor(update.at),
    at_iso = host.format_time(update.at, "UTC", "%Y-%m-%dT%H:%M:%SZ"),
    when = host.format_time(update.at, zone, "%Y-%m-%d %H:%M %Z"),
    zone = zone,
    thread_url = update.thread_url or "",
    thread_link = update.thread_url and slackfmt.link(update.thread_url, "incident thread") or nil,
    duration = update.duration,
  }
end

-- Send `update` everywhere configured (lib/destinations.lua: status.channels, status.webhooks,
-- status.destinations). `update.record` is the thread's incident record, if any. Returns an
-- array of results in config order, { kind, name, ok, error }, and the view.
function broadcast.send(config, update)
  update.zone = update.zone or (config or {}).timezone or "UTC"
  local status = type((config or {}).status) == "table" and config.status or {}
  update.allow_mentions = status.allow_mentions == true
  local view = broadcast.view(update)
  return destinations.send(config, view, update.record), view
end

-- The lines of the one reply: where the update went, each with ok or the error.
function broadcast.summary(results, what)
  what = what or "Status update"
  if #results == 0 then
    return what .. ": no status destinations are configured (status.channels, status.webhooks, "
      .. "status.destinations), "
      .. "so nothing was sent outside this thread."
  end
  local ok_count = 0
  local lines = {}
  for _, r in ipairs(results) do
    local label = destinations.label(r, slackfmt.escape)
    if r.ok then
      ok_count = ok_count + 1
      local detail = type(r.detail) == "string" and (" (" .. slackfmt.escape(r.detail) .. ")") or ""
      lines[#lines + 1] = "• " .. label .. ": ok" .. detail
    else
      lines[#lines + 1] = "• " .. label .. ": failed: " .. slackfmt.escape(r.error or "unknown error")
    end
  end
  local head = string.format("%s sent to %d of %d destinations:", what, ok_count, #results)
  return head .. "\n" .. table.concat(lines, "\n")
end

return broadcast
