-- Specs for what issue 15 added on the Lua side: the key-event and action-item rules
-- (scripts/filters/60-, 70-), message links (lib/links.lua), what `autopsy …` reports on
-- (lib/autopsy_scope.lua), channel paging and nesting (lib/history.lua) and the report's new
-- sections (lib/report.lua).
local H = {}
package.loaded.host = H
H.log = function() end
H.calls = {}
H.monotonic = function() return 0 end
H.now = function() return 1700000000 end
-- UTC only: enough for the specs (the real host checks zones)
H.time_parts = function(t, _)
  local d = os.date("!*t", math.floor(t))
  return { year = d.year, month = d.month, day = d.day, hour = d.hour, min = d.min, sec = d.sec, offset = 0 }
end
H.format_time = function(t, _, fmt) return os.date("!" .. fmt, math.floor(tonumber(t))) end

local filters = require "lib.filters"
local links = require "lib.links"
local scope = require "lib.autopsy_scope"
local history = require "lib.history"

local function entry(sec, raw, author)
  raw.ts = raw.ts or string.format("%d.%06d", 1700000000 + sec, 100)
  return { ts = raw.ts, time = 1700000000 + sec, author = author or { id = raw.user, name = raw.user },
           text_md = raw.text or "", permalink = "https://x/" .. raw.ts, marks = {}, raw = raw }
end

local function run_rule(name, entries, env)
  env = env or {}
  env.config = env.config or {}
  env.bot = env.bot or { user_id = "U0BOT" }
  return filters.run(entries, filters.load({ "filters." .. name }), env)
end

describe("60-mark-key-events", function()
  it("marks pinned messages and :pushpin: reactions, nothing else, and drops nothing", function()
    local es = {
      entry(1, { user = "U1", text = "pinned" }),
      entry(2, { user = "U1", text = "pushpin", reactions = { { name = "pushpin", count = 1 } } }),
      entry(3, { user = "U1", text = "other", reactions = { { name = "eyes", count = 1 } } }),
    }
    local kept, dropped = run_rule("60-mark-key-events", es, { pinned = { [es[1].ts] = true } })
    assert.are.equal(3, #kept)
    assert.are.equal(0, #dropped)
    assert.is_true(es[1].marks.key_event)
    assert.are.equal("pinned", es[1].marks.sources.key_event)
    assert.are.equal("reaction", es[2].marks.sources.key_event)
    assert.is_nil(es[3].marks.key_event)
  end)

  it("takes its reactions from config timeline.key_event_reactions", function()
    local es = { entry(1, { user = "U1", text = "x", reactions = { { name = "pushpin" } } }),
                 entry(2, { user = "U1", text = "y", reactions = { { name = "star" } } }) }
    run_rule("60-mark-key-events", es, { config = { timeline = { key_event_reactions = { "star" } } } })
    assert.is_nil(es[1].marks.key_event)
    assert.is_true(es[2].marks.key_event)
  end)
end)

describe("70-mark-action-items", function()
  local names = { U2 = "Grace" }
  local env = function(config)
    return { config = config, name_of = function(id) return names[id] end }
  end

  it("marks prefixes (any case) and reactions, with the text and the first person mentioned", function()
    local es = {
      entry(1, { user = "U1", text = "TODO: add an alert on card errors <@U0BOT> <@U2>" }),
      entry(2, { user = "U1", text = "action: rotate the key", }),
      entry(3, { user = "U1", text = "Follow-up: postmortem review" }),
      entry(4, { user = "U1", text = "AI: nope", }),
      entry(5, { user = "U1", text = "we should fix the runbook", reactions = { { name = "memo" } } }),
      entry(6, { user = "U1", text = "ballot", reactions = { { name = "ballot_box_with_check" } } }),
      entry(7, { user = "U1", text = "a TODO: in the middle is not one" }),
      entry(8, { user = "U1", text = "AIM: not a prefix" }),
    }
    es[1].text_md = "TODO: add an alert on card errors @postmortembot @Grace"
    local kept = run_rule("70-mark-action-items", es, env({}))
    assert.are.equal(8, #kept)
    local a = es[1].marks.action_item
    assert.are.equal("add an alert on card errors @postmortembot @Grace", a.text)
    assert.are.equal("Grace", a.owner)
    assert.are.equal("prefix", a.source)
    assert.are.equal("rotate the key", es[2].marks.action_item.text)
    assert.is_nil(es[2].marks.action_item.owner)
    assert.are.equal("postmortem review", es[3].marks.action_item.text)
    assert.are.equal("nope", es[4].marks.action_item.text)
    assert.are.equal("reaction", es[5].marks.action_item.source)
    assert.are.equal("we should fix the runbook", es[5].marks.action_item.text)
    assert.is_table(es[6].marks.action_item)
    assert.is_nil(es[7].marks.action_item)
    assert.is_nil(es[8].marks.action_item)
  end)

  it("finds a prefix after spaces, quote and emphasis marks, in any case; an empty one starts any text", function()
    local es = {
      entry(1, { user = "U1", text = "  > *todo:* call the bank" }),
      entry(2, { user = "U1", text = "_FOLLOW-UP:_ capacity plan" }),
      entry(3, { user = "U1", text = "tomorrow: nothing" }),
      entry(4, { user = "U1", text = "" }),
    }
    run_rule("70-mark-action-items", es, env({}))
    assert.is_table(es[1].marks.action_item)
    assert.is_table(es[2].marks.action_item)
    assert.is_nil(es[3].marks.action_item)
    assert.is_nil(es[4].marks.action_item)
    local all = { entry(1, { user = "U1", text = "anything" }), entry(2, { user = "U1", text = "" }) }
    run_rule("70-mark-action-items", all, env({ timeline = { action_item_prefixes = { "Zz:", "" } } }))
    assert.is_table(all[1].marks.action_item)
    assert.is_table(all[2].marks.action_item)
  end)

  it("takes its words from config timeline.action_item_prefixes", function()
    local es = { entry(1, { user = "U1", text = "TODO: x" }), entry(2, { user = "U1", text = "Aufgabe: y" }) }
    run_rule("70-mark-action-items", es, env({ timeline = { action_item_prefixes = { "Aufgabe:" } } }))
    assert.is_nil(es[1].marks.action_item)
    assert.are.equal("y", es[2].marks.action_item.text)
  end)
end)

describe("links.message", function()
  it("reads a link as Slack sends it, a reply's link and junk", function()
    local l = links.message("see <https://acme.slack.com/archives/C0INC/p1700000000000100|this>")
    assert.are.same({ "C0INC", "1700000000.000100" }, { l.channel, l.ts })
    assert.is_nil(l.thread_ts)
    l = links.message("https://acme.slack.com/archives/C0INC/p1700000005000200?thread_ts=1700000000.000100&amp;cid=C0INC")
    assert.are.equal("1700000000.000100", l.thread_ts)
    assert.are.equal("1700000005.000200", l.ts)
    assert.is_nil(links.message("https://acme.slack.com/archives/C0INC"))
    assert.is_nil(links.message("no link"))
  end)
end)

describe("autopsy_scope.parse", function()
  local now = 1700000000 -- 2023-11-14 22:13:20 UTC
  local function parse(args, in_thread) return scope.parse(args, { in_thread = in_thread, config = {} }, now) end

  it("this: the thread in a thread, the channel outside one", function()
    assert.are.equal("thread", parse("this", true).kind)
    assert.are.equal("channel", parse("", false).kind)
    assert.are.equal("channel", parse("THIS", false).kind)
  end)

  it("since a clock time: today, or yesterday when that time is still to come", function()
    local s = parse("since 14:05")
    assert.are.equal("window", s.kind)
    assert.are.equal(now - (22 * 3600 + 13 * 60 + 20) + 14 * 3600 + 5 * 60, s.oldest)
    s = parse("since 23:00")
    assert.are.equal(now - (22 * 3600 + 13 * 60 + 20) + 23 * 3600 - 86400, s.oldest)
    s = parse("since 2023-11-13 08:00")
    assert.are.equal(now - (22 * 3600 + 13 * 60 + 20) - 86400 + 8 * 3600, s.oldest)
  end)

  it("since a message link, last a duration, a thread link", function()
    local s = parse("since <https://a.slack.com/archives/C0X/p1699999000000100>")
    assert.are.same({ "window", 1699999000.0001, "C0X" }, { s.kind, s.oldest, s.channel })
    assert.are.equal(now - 7200, parse("last 2h").oldest)
    assert.are.equal(now - 1800, parse("last 30 minutes").oldest)
    assert.are.equal(now - 86400, parse("last 1d").oldest)
    s = parse("<https://a.slack.com/archives/C0X/p1699999100000100?thread_ts=1699999000.000100&cid=C0X>")
    assert.are.same({ "link", "C0X", "1699999000.000100" }, { s.kind, s.channel, s.thread_ts })
  end)

  it("refuses what it does not understand, saying why", function()
    for _, bad in ipairs({ "since lunch", "last week", "last 0h", "since 25:00", "frobnicate" }) do
      local s, why = parse(bad)
      assert.is_nil(s, bad)
      assert.is_string(why)
    end
  end)
end)

describe("history", function()
  before_each(function() H.calls = {} end)

  -- a channel of n messages, newest first in pages of `page`
  local function serve(n, page)
    H.api = function(method, params)
      H.calls[#H.calls + 1] = { method = method, params = params }
      assert.are.equal("conversations.history", method)
      local offset = tonumber((params.cursor or "c0"):match("%d+"))
      local out = {}
      for i = n - offset, math.max(1, n - offset - page + 1), -1 do
        out[#out + 1] = { ts = string.format("%d.000100", 1700000000 + i), text = "m" .. i }
      end
      local more = offset + page < n
      return { ok = true, messages = out, has_more = more,
               response_metadata = { next_cursor = more and ("c" .. (offset + page)) or "" } }
    end
  end

  it("pages to the start and returns the messages oldest first, each once", function()
    serve(450, 200)
    local msgs, info = history.messages("C1", {})
    assert.are.equal(450, #msgs)
    assert.are.equal(3, info.pages)
    assert.is_true(info.complete)
    assert.are.equal("1700000001.000100", msgs[1].ts)
    assert.are.equal("1700000450.000100", msgs[450].ts)
    assert.are.equal(200, H.calls[1].params.limit)
  end)

  it("stops at max_messages, keeps the newest and says the report is incomplete", function()
    serve(450, 200)
    local msgs, info = history.messages("C1", { max_messages = 300 })
    assert.are.equal(300, #msgs)
    assert.is_true(info.bounded)
    assert.is_false(info.complete)
    assert.are.equal("1700000151.000100", msgs[1].ts)
  end)

  it("notices the 15-a-page regime", function()
    serve(40, 15)
    local pages = {}
    local msgs, info = history.messages("C1", { on_page = function(_, p, small) pages[p] = small end })
    assert.are.equal(40, #msgs)
    assert.is_true(info.small_pages)
    assert.is_true(pages[1])
  end)

  it("nests each thread's replies under its parent, a broadcast once, an orphan reply in its place", function()
    local flat = {
      { ts = "10.000000" }, { ts = "20.000000", thread_ts = "20.000000", reply_count = 2 },
      { ts = "21.000000", thread_ts = "20.000000" }, { ts = "30.000000" },
      { ts = "25.000000", thread_ts = "20.000000", subtype = "thread_broadcast" },
      { ts = "26.000000", thread_ts = "5.000000" },
    }
    local out = history.nest_flat(flat)
    local order, parents = {}, {}
    for i, m in ipairs(out) do order[i], parents[i] = m.ts, m.pmb_reply_to or "-" end
    assert.are.same({ "10.000000", "20.000000", "21.000000", "25.000000", "26.000000", "30.000000" }, order)
    assert.are.same({ "-", "-", "20.000000", "20.000000", "-", "-" }, parents)
  end)
end)
