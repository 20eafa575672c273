-- Reading a channel: slack.history-like paging of conversations.history (newest page first, to
-- the start of the channel or to `oldest`), bounded by config channel.max_messages / max_age, and
-- the replies of every thread in it. Called by lib/timeline.lua (timeline.collect_channel); calls
-- host.api, host.all and lib/slack.lua (slack.replies). 429 and retries are the core's job.
local host = require "host"
local slack = require "lib.slack"
local tsutil = require "lib.tsutil"

local history = {}

history.LIMIT = 200
-- Apps outside the Marketplace created after May 2025 get at most 15 messages a page (and one
-- call a minute, which the core's 429 handling absorbs): a full page of exactly this size while
-- more was asked is that regime.
history.SMALL_PAGE = 15

-- The channel's top-level messages (and thread broadcasts) in ts order, oldest first.
-- o: oldest (ts string or nil), latest (nil: now), max_messages and deadline (host.monotonic()
-- value) bound the reading (the newest messages are kept), on_page(n, pages, small).
-- Returns messages, info = { complete, fetched, pages, bounded, small_pages, error } or nil, err
-- when the first page failed.
function history.messages(channel, o)
  o = o or {}
  local out = {}
  local max = tonumber(o.max_messages)
  local params = { channel = channel, limit = history.LIMIT }
  if o.oldest then params.oldest, params.inclusive = o.oldest, true end
  if o.latest then params.latest, params.inclusive = o.latest, true end
  local small, bounded = false, false
  local info, err = slack.read_pages("conversations.history", params, out, function(resp, page_info, more)
    local page = type(resp.messages) == "table" and resp.messages or {}
    if more and #page <= history.SMALL_PAGE and not small then
      small = true
      host.log("warn", "conversations.history answers 15 messages a page: the app is under the "
        .. "non-Marketplace rate limits; reading a long channel will take minutes", { channel = channel })
    end
    if o.on_page then o.on_page(#out, page_info.pages, small) end
    if more and ((max and #out >= max) or (o.deadline and host.monotonic() >= o.deadline)) then
      bounded = true
      return true
    end
  end)
  if not info then return nil, err end
  tsutil.sort_by_ts(out)
  if max and #out > max then
    -- pages come newest first: the bound keeps the newest max messages
    local keep = {}
    for i = #out - max + 1, #out do keep[#keep + 1] = out[i] end
    out, bounded = keep, true
  end
  info.small_pages, info.bounded, info.fetched = small, bounded, #out
  if bounded then info.complete = false end
  return out, info
end

-- The replies of every thread among `roots` (messages with reply_count > 0), o.limit threads at
-- a time, except the thread of o.skip. o.on_thread(done, total) after each. Returns
-- { [root ts] = { replies in ts order, without the root } }, the number of threads that could not
-- be read completely, and the number of threads.
function history.replies(channel, roots, o)
  local limit, on_thread = o.limit, o.on_thread
  local parents = {}
  for _, m in ipairs(roots) do
    if (tonumber(m.reply_count) or 0) > 0 and (m.thread_ts == nil or m.thread_ts == m.ts) and m.ts ~= o.skip then
      parents[#parents + 1] = m
    end
  end
  local fns, done = {}, 0
  for i, p in ipairs(parents) do
    fns[i] = function()
      local msgs, info = slack.replies(channel, p.ts)
      done = done + 1
      if on_thread then on_thread(done, #parents) end
      return msgs, info
    end
  end
  local results = host.all(fns, limit or 4)
  local by_root, incomplete = {}, 0
  for i, p in ipairs(parents) do
    local r = results[i]
    local replies = {}
    if r and r.ok and type(r.value) == "table" then
      for _, m in ipairs(r.value) do
        if m.ts ~= p.ts then replies[#replies + 1] = m end
      end
      if type(r.value2) == "table" and r.value2.complete == false then incomplete = incomplete + 1 end
    else
      incomplete = incomplete + 1
      host.log("warn", "thread replies could not be read", { channel = channel, thread_ts = p.ts,
        error = tostring(r and (r.value2 or r.error) or "no result") })
    end
    by_root[p.ts] = replies
  end
  return by_root, incomplete, #parents
end

-- Parents in ts order, each followed by its replies (reply_to = parent ts). A thread_broadcast
-- that also arrived as a reply shows once, as the reply.
function history.nest(roots, by_root)
  local as_reply = {}
  for _, replies in pairs(by_root) do
    for _, m in ipairs(replies) do as_reply[m.ts] = true end
  end
  local out = {}
  for _, m in ipairs(roots) do
    if not as_reply[m.ts] then
      out[#out + 1] = m
      for _, r in ipairs(by_root[m.ts] or {}) do
        r.pmb_reply_to = m.ts
        out[#out + 1] = r
      end
    end
  end
  return out
end

-- The same order from a flat list of a channel's messages and replies (an export, a saved
-- history plus replies): offline, for `render --since/--until`.
function history.nest_flat(messages)
  local roots, by_root = {}, {}
  for _, m in ipairs(messages) do
    local root = m.thread_ts
    if root == nil or root == m.ts or type(root) ~= "string" then
      roots[#roots + 1] = m
    else
      by_root[root] = by_root[root] or {}
      table.insert(by_root[root], m)
    end
  end
  local have = {}
  for _, m in ipairs(roots) do have[m.ts] = true end
  -- replies whose parent is outside the window stand alone, in their place in time
  for root, replies in pairs(by_root) do
    if not have[root] then
      for _, m in ipairs(replies) do roots[#roots + 1] = m end
      by_root[root] = nil
    end
  end
  tsutil.sort_by_ts(roots)
  for _, replies in pairs(by_root) do tsutil.sort_by_ts(replies) end
  return history.nest(roots, by_root)
end

return history
