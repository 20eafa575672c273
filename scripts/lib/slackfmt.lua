-- Slack text helpers: escape text we send (& < > only), links <url|label>, message permalinks,
-- turning Slack-encoded text into plain text for outside destinations (webhooks), short
-- bold marks, trimming typed arguments and telling a report request. Called by lib/broadcast.lua,
-- the status/incident commands, lib/timeline.lua and filters/30-drop-command.lua; calls nothing.
local slackfmt = {}

-- Text without leading and trailing white space; nil becomes "".
function slackfmt.trim(text)
  return (tostring(text or ""):gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Slack needs only these three escaped; quotes and asterisks are left alone on purpose.
function slackfmt.escape(text)
  return (tostring(text or ""):gsub("[&<>]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;" }))
end

-- The reverse of escape, for text that came from Slack and leaves it.
function slackfmt.unescape(text)
  return (tostring(text or ""):gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&amp;", "&"))
end

-- <url|label>; a label is escaped and may not contain "|" or ">" (Slack would cut it there).
function slackfmt.link(url, label)
  url = tostring(url or "")
  if label == nil or label == "" then
    return "<" .. url .. ">"
  end
  label = slackfmt.escape(label):gsub("|", "/")
  return "<" .. url .. "|" .. label .. ">"
end

-- https://acme.slack.com/archives/C1/p1700000000000100[?thread_ts=…&cid=C1] (as Slack builds them).
-- base_url is the workspace URL from auth.test; nil when it is unknown.
function slackfmt.permalink(base_url, channel, ts, thread_ts)
  if not base_url or base_url == "" or not channel or not ts then
    return nil
  end
  if base_url:sub(-1) ~= "/" then
    base_url = base_url .. "/"
  end
  local url = base_url .. "archives/" .. channel .. "/p" .. tostring(ts):gsub("%.", "")
  if thread_ts and thread_ts ~= ts then
    url = url .. "?thread_ts=" .. thread_ts .. "&cid=" .. channel
  end
  return url
end

-- Slack-encoded text -> plain text: <@U1> -> @name (names[U1] or the id), <#C1|general> ->
-- #general, <!here> -> @here, <url|label> -> "label (url)", <url> -> url, entities decoded.
function slackfmt.to_plain(text, names)
  names = names or {}
  local out = tostring(text or ""):gsub("<([^<>]*)>", function(inner)
    local target, label = inner:match("^([^|]*)|(.*)$")
    target = target or inner
    local kind = target:sub(1, 1)
    if kind == "@" then
      local id = target:sub(2)
      return "@" .. (names[id] or label or id)
    elseif kind == "#" then
      return "#" .. (label or target:sub(2))
    elseif kind == "!" then
      local special = target:sub(2):match("^[%w_]+") or target:sub(2)
      if special == "subteam" then
        return label or "@group"
      end
      return "@" .. (label or special)
    elseif label and label ~= "" and label ~= target then
      return label .. " (" .. target .. ")"
    end
    return target
  end)
  return slackfmt.unescape(out)
end

-- The user ids mentioned as <@U…> in Slack text, each once, in order.
function slackfmt.mentioned_users(text)
  local ids, seen = {}, {}
  for id in tostring(text or ""):gmatch("<@([%w]+)[|>]") do
    if not seen[id] then
      seen[id] = true
      ids[#ids + 1] = id
    end
  end
  return ids
end

-- The user id a report request is addressed to, or nil: a message that starts with a mention
-- followed by the word "autopsy" in any case ("<@U0BOT> autopsy this", "<@U0BOT|bot> Autopsy"; not
-- "autopsying", not a mention later in the text). Matched where it is: most messages are not
-- requests, and their text is not copied. The one reading of a request for the offline render
-- (lib/timeline.lua) and filters/30-drop-command.lua.
function slackfmt.report_request_to(text)
  if type(text) ~= "string" then return nil end
  return text:match("^%s*<@([%w]+)[^>]*>%s*[Aa][Uu][Tt][Oo][Pp][Ss][Yy]%f[%W]")
end

-- The text without Slack's bold marks (*word*), for a title put inside a bold line of our own:
-- "*Resolved: *Checkout down**" would show the asterisks.
function slackfmt.unbold(s)
  return (tostring(s or ""):gsub("%*([^*\n]+)%*", "%1"))
end

return slackfmt
