-- Web API helpers on host.api: reading a whole thread (slack.replies, cursor pagination to the end),
-- names (slack.user_names, cached by lib/people.lua), message permalinks built without a call,
-- files.info and chat.postMessage. Called by lib/timeline.lua and the commands; calls host.api,
-- host.bot, lib/people.lua and lib/tsutil.lua. Rate limits and retries are the core's job:
-- host.api simply answers later, or nil, err when it gave up.
local host = require "host"
local cjson = require "cjson"
local tsutil = require "lib.tsutil"
local people = require "lib.people"

local slack = {}

-- Page sizes for conversations.replies, largest first: the most Slack accepts (1000: the fewest
-- calls), then slackdump's 200 (1000 "may fail" on huge threads), then the 15 of the 2025
-- non-Marketplace regime. See slack.read_pages for when the size goes down.
slack.REPLIES_SIZES = { 1000, 200, 15 }

-- Errors after which the same page is worth asking again, smaller (the core has already retried
-- it as it was): rate limits, timeouts, Slack's own failures, a limit it refuses.
local RETRY_SMALLER = { ratelimited = true, timeout = true, connect = true, http_status = true,
                        internal_error = true, fatal_error = true, request_timeout = true,
                        service_unavailable = true, invalid_limit = true }

local function nonempty(v)
  return type(v) == "string" and v ~= ""
end

-- Cursor pagination of a Web API method that lists messages: calls host.api(method, params) page
-- after page, adds each new message (by ts) to `out` in the order read (out = false: keeps none,
-- for a caller whose work takes each page), and calls on_page(resp, info) after each page;
-- on_page returning true stops early. info = { complete, pages, calls, limit, error, count (new
-- messages read) }. When the first page fails there is nothing to build on: returns
-- nil, err. When a later page fails (after the core's retries), returns info with complete = false.
-- sizes (optional): page sizes to ask for (params.limit), largest first. A page that comes back
-- shorter than asked while more follow sets the size to what Slack gave (it caps pages); a page
-- that fails with a rate limit, a timeout or a server error is asked again at the next smaller size
-- before the read gives up.
-- work (optional): work(batch) -> function, called with each page's new messages; that function
-- runs while the next page is on the wire (host.all), the last page's after it, before the return.
function slack.read_pages(method, params, out, on_page, sizes, work)
  local seen, seen_cursors = {}, {}
  for _, m in ipairs(out or {}) do seen[m.ts] = true end
  local info = { complete = true, pages = 0, calls = 0, count = 0 }
  local size_at = 1
  local limit = sizes and sizes[1] or params.limit
  local cursor
  local pending -- the work of the page before, done while this one is asked for
  while true do
    local page_params = {}
    for k, v in pairs(params) do page_params[k] = v end
    page_params.cursor = cursor
    page_params.limit = limit
    local resp, err
    if pending then
      local done = host.all({ function() resp, err = host.api(method, page_params) end, pending })
      pending = nil
      for _, r in ipairs(done) do
        if not r.ok then error(r.error, 0) end
      end
    else
      resp, err = host.api(method, page_params)
    end
    info.calls = info.calls + 1
    if not resp and sizes and type(err) == "table" and RETRY_SMALLER[err.code] then
      -- the same page again, smaller, while a smaller size is left
      while sizes[size_at] and sizes[size_at] >= limit do size_at = size_at + 1 end
      if sizes[size_at] then
        host.log("info", "page failed, asking again for fewer messages",
          { method = method, channel = params.channel, limit = sizes[size_at], error = tostring(err) })
        limit = sizes[size_at]
        goto again
      end
    end
    if not resp then
      if info.pages == 0 then return nil, err end
      info.complete, info.error = false, err
      host.log("warn", "page failed, building from what was read",
        { method = method, channel = params.channel, pages = info.pages, error = tostring(err) })
      break
    end
    info.pages = info.pages + 1
    local messages = type(resp.messages) == "table" and resp.messages or {}
    local batch = {}
    for _, m in ipairs(messages) do
      if type(m) == "table" and type(m.ts) == "string" and not seen[m.ts] then
        seen[m.ts] = true
        if out then out[#out + 1] = m end
        batch[#batch + 1] = m
      end
    end
    info.count = info.count + #batch
    if work then pending = work(batch) end
    local meta = resp.response_metadata
    local next_cursor = type(meta) == "table" and meta.next_cursor or nil
    if sizes and nonempty(next_cursor) and #messages > 0 and #messages < limit then
      limit = math.max(#messages, sizes[#sizes]) -- Slack gives fewer a page than asked: ask for that
    end
    info.limit = limit
    if on_page and on_page(resp, info, nonempty(next_cursor)) then break end
    if not nonempty(next_cursor) then break end
    if seen_cursors[next_cursor] then
      -- Slack handed back a cursor we already followed: stop instead of looping forever.
      info.complete = false
      info.error = { code = "cursor_loop", message = "the same cursor came back twice" }
      break
    end
    seen_cursors[next_cursor] = true
    cursor = next_cursor
    ::again::
  end
  if pending then pending() end
  return info
end

-- The pages of a thread read into `out` (a list, or false: kept by nobody but work). Returns
-- info with fetched, expected and parent (the parent message, when read), or nil, err.
local function read_thread(channel, ts, out, on_page, work)
  local expected, parent = nil, nil
  local info, err = slack.read_pages("conversations.replies",
    { channel = channel, ts = ts }, out, function(resp, page_info)
      for _, m in ipairs(type(resp.messages) == "table" and resp.messages or {}) do
        if type(m) == "table" and m.ts == ts then
          parent = parent or m
          if type(m.reply_count) == "number" then expected = m.reply_count + 1 end
        end
      end
      if on_page then on_page(page_info.count, expected, page_info.pages) end
    end, slack.REPLIES_SIZES, work)
  if not info then return nil, err end
  info.fetched, info.expected, info.parent = info.count, expected, parent
  if info.expected and info.fetched < info.expected and info.complete then
    -- Every page came back but fewer messages than reply_count: deleted replies or a race with a
    -- new reply. Not an error; the counts stay visible to the timeline.
    info.short = true
  end
  return info
end

-- Every message of the thread `ts` in `channel`, parent first, in ts order, each ts once.
-- on_page(fetched_so_far, expected_or_nil, page_number) is called after every page.
-- Returns messages, info; info = { complete, fetched, expected, pages, error }.
-- When the first page fails there is nothing to build on: returns nil, err.
-- When a later page fails (after the core's retries), returns what was read with complete = false.
-- work: as slack.read_pages' (each page's new messages, handled while the next is read).
function slack.replies(channel, ts, on_page, work)
  local order = {}
  local info, err = read_thread(channel, ts, order, on_page, work)
  if not info then return nil, err end
  tsutil.sort_by_ts(order)
  return order, info
end

-- The thread as slack.replies reads it, each page handed to work(batch) (as read_pages') and kept
-- by nobody else: a 20,000-message thread is never held whole. Returns info (as slack.replies'),
-- with parent = the parent message when it was read; or nil, err.
function slack.replies_each(channel, ts, on_page, work)
  return read_thread(channel, ts, false, on_page, work)
end

-- id -> display name, through the people cache (TTL config timeline.user_cache_ttl).
function slack.user_names(ids)
  return people.names(ids)
end

-- The message link, built from the workspace URL (host.bot().url) without an API call:
-- <url>archives/<channel>/p<ts digits>?thread_ts=<thread_ts>&cid=<channel>
-- base_url may be given (tests, offline render); nil when no workspace URL is known.
function slack.permalink(channel, ts, thread_ts, base_url)
  if not base_url then
    local bot = host.bot()
    base_url = bot and bot.url
  end
  if not nonempty(base_url) or not channel or not ts then return nil end
  if base_url:sub(-1) ~= "/" then base_url = base_url .. "/" end
  local link = base_url .. "archives/" .. channel .. "/p" .. (tsutil.digits(ts) or ts)
  if thread_ts then
    link = link .. "?thread_ts=" .. thread_ts .. "&cid=" .. channel
  end
  return link
end

-- A function ts -> permalink for many messages of one thread (the timeline's entries): the same
-- link as slack.permalink, with the constant parts joined once. nil when no workspace URL is known.
function slack.permalink_builder(channel, thread_ts, base_url)
  if not base_url then
    local bot = host.bot()
    base_url = bot and bot.url
  end
  if not nonempty(base_url) or not channel then return nil end
  if base_url:sub(-1) ~= "/" then base_url = base_url .. "/" end
  local head = base_url .. "archives/" .. channel .. "/p"
  local tail = thread_ts and ("?thread_ts=" .. thread_ts .. "&cid=" .. channel) or ""
  local sub, is_canonical = string.sub, tsutil.is_canonical
  return function(ts)
    if is_canonical(ts) then -- the usual ts: its digits without the dot, in one concatenation
      return head .. sub(ts, 1, 10) .. sub(ts, 12) .. tail
    end
    return head .. (tsutil.digits(ts) or ts) .. tail
  end
end

-- The full file object for a stub (Slack Connect files come as mode=file_access,
-- file_access=check_file_info). Returns file or nil, err.
function slack.file_info(file_id)
  local resp, err = host.api("files.info", { file = file_id })
  if not resp then return nil, err end
  if type(resp.file) ~= "table" then
    return nil, { code = "bad_response", message = "files.info without a file" }
  end
  return resp.file
end

-- chat.postMessage; opts: blocks (table), broadcast (bool), unfurl (bool). Returns ts or nil, err.
function slack.post(channel, text, thread_ts, opts)
  opts = opts or {}
  local params = { channel = channel, text = text }
  if thread_ts then params.thread_ts = thread_ts end
  if opts.blocks then params.blocks = opts.blocks end
  if opts.broadcast then params.reply_broadcast = true end
  if opts.unfurl == false then
    params.unfurl_links = false
    params.unfurl_media = false
  end
  local resp, err = host.api("chat.postMessage", params)
  if not resp then return nil, err end
  return resp.ts
end

-- True when v is JSON null or nil.
function slack.is_null(v)
  return v == nil or v == cjson.null
end

return slack
