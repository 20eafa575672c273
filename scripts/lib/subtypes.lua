-- The message subtypes Slack shows differently from a plain message (docs/timeline-model.md,
-- "Subtypes"): /me actions, topic and purpose changes, pins, deleted parents (tombstones), and
-- replies also sent to the channel (one copy of each). Called by lib/timeline.lua (apply on each
-- new entry, one_copy when messages come in) and lib/render_input.lua (one_copy); calls
-- lib/mrkdwn.lua, lib/markdown.lua and lib/tsutil.lua. To change what a subtype shows, edit its
-- function below.
local mrkdwn = require "lib.mrkdwn"
local markdown = require "lib.markdown"
local tsutil = require "lib.tsutil"

local subtypes = {}

local str = require("lib.values").text

-- The message's text as one line of Markdown; a converter failure shows it escaped instead.
local function inline(text, resolve)
  local ok, md = pcall(mrkdwn.to_inline, text, resolve)
  if not ok or type(md) ~= "string" then md = markdown.escape(type(text) == "string" and text or "") end
  return (md:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- "/me is rolling back": Slack shows the name, then the text in italics. The text becomes one
-- line so the emphasis cannot span blocks.
local function me_message(e, m, env)
  local name = markdown.escape(e.author and e.author.name or "")
  local md = inline(m.text, env.resolve)
  if md == "" then
    e.text_md = name
  else
    e.text_md = name .. " *" .. md .. "*"
  end
end

-- Topic and purpose: the new value (Slack's `topic` / `purpose`, else what follows the colon of
-- Slack's own sentence "<@U1> set the channel topic: …"), or "cleared" when it is empty.
local function set_channel(what, field)
  return function(e, m, env)
    local value = m[field]
    if type(value) ~= "string" then
      value = type(m.text) == "string" and m.text:match("set the channel " .. what .. ": (.*)$") or ""
    end
    local md = inline(value, env.resolve)
    if md == "" then
      e.text_md = "cleared the channel " .. what
    else
      e.text_md = "set the channel " .. what .. ": " .. md
    end
  end
end

-- Where the pinned thing is, when the message says: the item's own permalink, a message of this
-- thread (linked like the entries), or the pinned message's unfurl.
local function pinned_link(m, env)
  local item = type(m.item) == "table" and m.item or {}
  local file = type(item.file) == "table" and item.file or item
  local link = str(item.permalink) or str(file.permalink)
  if not link and str(item.ts) and env.permalink and env.thread_ts
    and (item.ts == env.thread_ts or item.thread_ts == env.thread_ts) then
    link = env.permalink(item.ts)
  end
  if not link and type(m.attachments) == "table" and type(m.attachments[1]) == "table" then
    link = str(m.attachments[1].from_url)
  end
  return link
end

-- item_type (Slack): C / G a message, F a file, Fc a file comment.
local PINNED_WHAT = { C = "a message", G = "a message", F = "a file", Fc = "a file comment" }

local function pinned_item(e, m, env)
  local what = PINNED_WHAT[m.item_type] or "a message"
  local link = pinned_link(m, env)
  if link and markdown.safe_url(link) then
    e.text_md = "pinned " .. markdown.link(what, link)
  else
    e.text_md = "pinned " .. what
  end
end

-- A deleted parent that still has replies: Slack keeps it as "This message was deleted.", posted
-- by nobody. It stays so the replies keep their parent.
local function tombstone(e)
  e.text_md = "_This message was deleted._"
  e.author = { id = nil, name = nil, is_bot = false }
end

local BY_SUBTYPE = {
  me_message = me_message,
  channel_topic = set_channel("topic", "topic"),
  group_topic = set_channel("topic", "topic"),
  channel_purpose = set_channel("purpose", "purpose"),
  group_purpose = set_channel("purpose", "purpose"),
  pinned_item = pinned_item,
  tombstone = tombstone,
}

-- Rewrites entry e (built by lib/timeline.lua from message m) as Slack shows m's subtype. env:
-- resolve (the converters' resolver), permalink(ts) and thread_ts.
function subtypes.apply(e, m, env)
  local fn = BY_SUBTYPE[m.subtype]
  if fn then fn(e, m, env) end
end

-- One copy per ts, in the order first seen (messages without a string ts are left out). A reply
-- also sent to the channel can come twice (a thread and an export's channel file): the
-- thread_broadcast copy is the one kept, so the reply is shown once and marked.
function subtypes.one_copy(messages)
  -- The usual input, every ts canonical and after the one before (Slack's order): no ts comes
  -- twice, and the copy needs no index of them (for canonical ts, string order is ts order).
  local is_canonical = tsutil.is_canonical
  local copy, prev = {}, nil
  for i, m in ipairs(messages) do
    local ts = type(m) == "table" and m.ts
    if not (is_canonical(ts) and (prev == nil or ts > prev)) then
      copy = nil
      break
    end
    copy[i], prev = m, ts
  end
  if copy then return copy end
  local at, out = {}, {}
  for _, m in ipairs(messages) do
    if type(m) == "table" and type(m.ts) == "string" then
      local i = at[m.ts]
      if not i then
        out[#out + 1] = m
        at[m.ts] = #out
      elseif m.subtype == "thread_broadcast" and out[i].subtype ~= "thread_broadcast" then
        out[i] = m
      end
    end
  end
  return out
end

return subtypes
