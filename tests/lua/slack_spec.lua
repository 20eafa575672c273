-- Specs for lib/slack.lua: conversations.replies pagination (cursor to the end, parent repeated,
-- 15 per page, a page failing for good), permalinks without a call, user_names through the cache.
-- host is stubbed: host.api answers from a scripted list of pages.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local stub = require "helpers.host_stub"

local H = {}
package.loaded.host = H

local function reset_host()
  for k in pairs(H) do H[k] = nil end
  H.calls = {}
  H.log = function() end
  H.now = function() return 1000 end
  H.config = function() return { timeline = { user_cache_ttl = 3600 } } end
  H.bot = function() return { user_id = "U0PMBOT", bot_id = "B0PMBOT", url = "https://acme.slack.com/" } end
  H.all = stub.run_all
end
reset_host()

local slack = require "lib.slack"
local people = require "lib.people"

local PARENT = "1700000000.000100"

local function msg(i)
  return { type = "message", user = "U1", text = "m" .. i, ts = string.format("%d.%06d", 1700000000 + i, 200),
           thread_ts = PARENT }
end

-- A thread of `n` replies served `per_page` at a time; parent repeated on every page when `repeat_parent`.
-- fail_on: page number that fails for good (host.api returns nil, err).
local function serve(n, per_page, opts)
  opts = opts or {}
  local parent = { type = "message", user = "U0", text = "parent", ts = PARENT, thread_ts = PARENT,
                   reply_count = opts.reply_count or n }
  local replies = {}
  for i = 1, n do replies[i] = msg(i) end
  H.api = function(method, params)
    H.calls[#H.calls + 1] = { method = method, params = params }
    assert.are.equal("conversations.replies", method)
    local page = params.cursor and tonumber(params.cursor:match("^c(%d+)=$")) or 1
    if opts.fail_on == page then return nil, { code = "ratelimited", message = "gave up" } end
    local first = (page - 1) * per_page + 1
    local messages = {}
    if page == 1 or opts.repeat_parent then messages[#messages + 1] = parent end
    for i = first, math.min(n, first + per_page - 1) do messages[#messages + 1] = replies[i] end
    local more = first + per_page <= n
    local cursor = more and ("c" .. (page + 1) .. "=") or (opts.null_cursor and cjson.null or "")
    if opts.no_metadata and not more then return { ok = true, messages = messages } end
    return { ok = true, messages = messages, has_more = more, response_metadata = { next_cursor = cursor } }
  end
end

describe("slack.replies", function()
  before_each(reset_host)

  it("follows the cursor until it is empty and keeps every message once, in ts order", function()
    serve(450, 200, { repeat_parent = true })
    local messages, info = slack.replies("C1", PARENT)
    assert.are.equal(451, #messages)
    assert.are.equal(PARENT, messages[1].ts)
    for i = 2, #messages do
      assert.is_true(require("lib.tsutil").less(messages[i - 1].ts, messages[i].ts))
    end
    assert.are.equal(3, #H.calls)
    -- the most Slack accepts first; it gives 201 a page (200 replies and the parent again), so
    -- that is what is asked for after the first page
    assert.are.equal(1000, H.calls[1].params.limit)
    assert.are.equal(201, H.calls[2].params.limit)
    assert.are.equal(201, H.calls[3].params.limit)
    assert.is_nil(H.calls[1].params.cursor)
    assert.are.equal("c2=", H.calls[2].params.cursor)
    assert.is_true(info.complete)
    assert.are.equal(451, info.fetched)
    assert.are.equal(451, info.expected)
  end)

  it("does not stop on a short page while a cursor is given (15 per page, parent repeated)", function()
    serve(100, 15, { repeat_parent = true })
    local messages, info = slack.replies("C1", PARENT)
    assert.are.equal(101, #messages)
    assert.are.equal(7, #H.calls)
    assert.is_true(info.complete)
    local seen = {}
    for _, m in ipairs(messages) do
      assert.is_nil(seen[m.ts])
      seen[m.ts] = true
    end
  end)

  it("stops on a null cursor and on missing response_metadata", function()
    serve(30, 15, { null_cursor = true })
    local messages = slack.replies("C1", PARENT)
    assert.are.equal(31, #messages)
    assert.are.equal(2, #H.calls)
    reset_host()
    serve(30, 15, { no_metadata = true })
    messages = slack.replies("C1", PARENT)
    assert.are.equal(31, #messages)
  end)

  it("returns what it read, marked incomplete with the counts, when a later page fails", function()
    serve(100, 15, { fail_on = 4 })
    local messages, info = slack.replies("C1", PARENT)
    assert.are.equal(46, #messages)
    assert.is_false(info.complete)
    assert.are.equal(46, info.fetched)
    assert.are.equal(101, info.expected)
    assert.are.equal("ratelimited", info.error.code)
  end)

  it("returns nil, err when the first page fails", function()
    serve(10, 15, { fail_on = 1 })
    local messages, err = slack.replies("C1", PARENT)
    assert.is_nil(messages)
    assert.are.equal("ratelimited", err.code)
  end)

  it("sorts by ts compared as (seconds, micro), not as floats or plain strings", function()
    H.api = function()
      return { ok = true, messages = {
        { ts = "1700000000.000100", reply_count = 3 },
        { ts = "1700000010.000009" },
        { ts = "999999999.999999" },
        { ts = "1700000010.000010" },
      }, response_metadata = { next_cursor = "" } }
    end
    local messages = slack.replies("C1", "1700000000.000100")
    local order = {}
    for i, m in ipairs(messages) do order[i] = m.ts end
    assert.are.same({ "999999999.999999", "1700000000.000100", "1700000010.000009", "1700000010.000010" }, order)
  end)

  it("stops when Slack hands back a cursor it already gave", function()
    local n = 0
    H.api = function()
      n = n + 1
      return { ok = true, messages = { { ts = PARENT, reply_count = 5 }, { ts = "17000000" .. (10 + n) .. ".000001" } },
               response_metadata = { next_cursor = "same=" } }
    end
    local messages, info = slack.replies("C1", PARENT)
    assert.are.equal(2, n)
    assert.is_false(info.complete)
    assert.are.equal(3, #messages)
  end)

  it("reports progress after every page", function()
    serve(40, 15)
    local seen = {}
    slack.replies("C1", PARENT, function(n, expected) seen[#seen + 1] = { n, expected } end)
    assert.are.same({ { 16, 41 }, { 31, 41 }, { 41, 41 } }, seen)
  end)
end)

describe("slack.permalink", function()
  before_each(reset_host)

  it("builds the message link from the workspace URL without a call", function()
    H.api = function() error("no call expected") end
    assert.are.equal("https://acme.slack.com/archives/C0INC/p1700000000000100?thread_ts=1699999999.000001&cid=C0INC",
      slack.permalink("C0INC", "1700000000.000100", "1699999999.000001"))
  end)

  it("adds the missing slash and works offline with a given base", function()
    H.bot = function() return nil end
    assert.is_nil(slack.permalink("C1", "1.000001", "1.000001"))
    assert.are.equal("https://x.slack.com/archives/C1/p1000001",
      slack.permalink("C1", "1.000001", nil, "https://x.slack.com"))
  end)
end)

describe("slack.user_names", function()
  before_each(function()
    reset_host()
    people.reset()
  end)

  it("resolves names through users.info once per user", function()
    local calls = 0
    H.api = function(method, params)
      calls = calls + 1
      assert.are.equal("users.info", method)
      return { ok = true, user = { id = params.user, name = "n" .. params.user, profile = { display_name = "" } } }
    end
    local names = slack.user_names({ "U1", "U2", "U1" })
    assert.are.same({ U1 = "nU1", U2 = "nU2" }, names)
    slack.user_names({ "U1", "U2" })
    assert.are.equal(2, calls)
  end)
end)

describe("slack.file_info and slack.post", function()
  before_each(reset_host)

  it("returns the real file object or the error", function()
    H.api = function(method, params)
      assert.are.equal("files.info", method)
      if params.file == "F1" then return { ok = true, file = { id = "F1", mode = "hosted" } } end
      return nil, { code = "file_not_found" }
    end
    assert.are.equal("hosted", slack.file_info("F1").mode)
    local f, err = slack.file_info("F2")
    assert.is_nil(f)
    assert.are.equal("file_not_found", err.code)
  end)

  it("posts in the thread and returns the ts", function()
    H.api = function(method, params)
      assert.are.equal("chat.postMessage", method)
      assert.are.equal("1.000001", params.thread_ts)
      assert.is_true(params.reply_broadcast)
      return { ok = true, ts = "2.000002" }
    end
    assert.are.equal("2.000002", slack.post("C1", "hi", "1.000001", { broadcast = true }))
  end)
end)
