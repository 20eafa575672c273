-- Specs for scripts/lib/subtypes.lua through the real timeline, report and default template: the
-- export shapes of issue 13 written from Slack's documented message subtypes (bot_message with
-- username and icons, me_message, channel_topic / channel_purpose, pinned_item, tombstone,
-- thread_broadcast with root), each checked in the rendered document with cmark; and `render`'s
-- input reader keeping the broadcast copy of a reply that comes twice.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local stub = require "helpers.host_stub"
local cmark = require "helpers.cmark"

local FILES = {} -- path -> contents, for render_input
package.loaded.host = {
  log = function() end,
  now = function() return 1731700000 end,
  config = function() return { timezone = "UTC" } end,
  bot = function() return nil end,
  generation = function() return 1 end,
  templates = stub.disk_templates,
  time_parts = stub.utc_time_parts,
  format_time = stub.utc_format_time,
  list_scripts = function()
    return { "filters.10-drop-bot-self", "filters.20-drop-joins", "filters.30-drop-command",
             "filters.40-collapse-alert-storms", "filters.50-mark-status" }
  end,
  exists = function(path) return FILES[path] and "file" or nil end,
  read_file = function(path) return FILES[path] end,
}

local timeline = require "lib.timeline"
local report = require "lib.report"
local render_input = require "lib.render_input"

local THREAD = "1731624600.000100"
local BASE = "https://acme.slack.com/"
local PEOPLE = {
  U1 = { id = "U1", name = "ada", profile = { display_name = "Ada Lovelace" } },
  U2 = { id = "U2", name = "bob", profile = { display_name = "Bob" } },
}

local function ts(n) return string.format("17316246%02d.000200", n) end

local function parent(extra)
  local m = { type = "message", user = "U2", ts = THREAD, thread_ts = THREAD, reply_count = 3,
              text = "Checkout returns 502s" }
  for k, v in pairs(extra or {}) do m[k] = v end
  return m
end

-- The thread built and rendered as `render` does, with the default filter rules. Returns the
-- timeline, the document, its HTML and its cmark structure.
local function render(messages)
  local t = timeline.build(messages, { people = PEOPLE, channel = "C0INC", thread_ts = THREAD,
    base_url = BASE, config = { timezone = "UTC" }, incident = false })
  local doc = report.render(t, { config = { timezone = "UTC" } })
  return t, doc, cmark.html(doc), cmark.structure(doc)
end

-- The document's timeline line of the entry with this ts (its header: time, author, marks).
local function header_of(doc, t, when)
  for _, e in ipairs(t.entries) do
    if e.ts == when then
      for line in doc:gmatch("[^\n]+") do
        if line:find("**" .. e.time_label .. "**", 1, true) then return line end
      end
    end
  end
  error("no entry " .. when)
end

local function entry(t, when)
  for _, e in ipairs(t.entries) do
    if e.ts == when then return e end
  end
  error("no entry " .. when)
end

-- Every document here parses into one list item per entry and no raw HTML.
local function assert_whole(t, s)
  assert.are.equal(#t.entries, s.items["Timeline"])
  assert.are.equal(0, s.html)
end

describe("bot_message with username and icons", function()
  it("is shown under the username, marked as a bot, whatever the app is called", function()
    local t, doc, html, s = render({ parent(),
      { type = "message", subtype = "bot_message", bot_id = "B0DEPLOY", username = "deploy-bot",
        icons = { emoji = ":rocket:" }, bot_profile = { id = "B0DEPLOY", name = "Deploys app" },
        ts = ts(10), thread_ts = THREAD, text = "Rolled back api to v41" },
      { type = "message", subtype = "bot_message", bot_id = "B0HOOK", username = "grafana",
        icons = { image_64 = "https://grafana.example/icon.png" }, ts = ts(11), thread_ts = THREAD,
        text = "[FIRING] 5xx ratio" } })
    assert_whole(t, s)
    assert.are.same({ id = "B0DEPLOY", name = "deploy-bot", is_bot = true }, entry(t, ts(10)).author)
    assert.truthy(header_of(doc, t, ts(10)):find("· **deploy-bot** (bot)", 1, true))
    assert.truthy(header_of(doc, t, ts(11)):find("· **grafana** (bot)", 1, true))
    assert.falsy(doc:find("Deploys app", 1, true))
    assert.falsy(html:find("icon.png", 1, true), "icons are not shown: the report has no avatars")
  end)

  it("without a username falls back on the app's name", function()
    local t = render({ parent(), { type = "message", subtype = "bot_message", bot_id = "B0DEPLOY",
      bot_profile = { name = "Deploys app" }, ts = ts(10), thread_ts = THREAD, text = "done" } })
    assert.are.equal("Deploys app", entry(t, ts(10)).author.name)
  end)
end)

describe("me_message", function()
  it("shows the author's name, then the text in italics", function()
    local t, doc, html, s = render({ parent(), { type = "message", subtype = "me_message", user = "U1",
      ts = ts(10), thread_ts = THREAD, text = "is rolling back *api* now" } })
    assert_whole(t, s)
    assert.are.equal("Ada Lovelace *is rolling back **api** now*", entry(t, ts(10)).text_md)
    assert.truthy(html:find("Ada Lovelace <em>is rolling back <strong>api</strong> now</em>", 1, true), html)
    assert.truthy(header_of(doc, t, ts(10)):find("· **Ada Lovelace**", 1, true))
  end)

  it("keeps a multi-line action and hostile text in one italic line of its own entry", function()
    local t, _, html, s = render({ parent(), { type = "message", subtype = "me_message", user = "U1",
      ts = ts(10), thread_ts = THREAD, text = "waves\n- forged item\n```\n<script>x</script>" } })
    assert_whole(t, s)
    assert.falsy(html:find("<script>", 1, true))
    assert.truthy(html:find("<em>waves - forged item", 1, true), html)
  end)
end)

describe("channel_topic and channel_purpose", function()
  it("say what the topic and purpose were set to, with links and mentions resolved", function()
    local t, doc, html, s = render({ parent(),
      { type = "message", subtype = "channel_topic", user = "U1", ts = ts(10), thread_ts = THREAD,
        text = "<@U1|ada> set the channel topic: SEV1 <https://status.example/1|status page>",
        topic = "SEV1 <https://status.example/1|status page>" },
      { type = "message", subtype = "channel_purpose", user = "U2", ts = ts(11), thread_ts = THREAD,
        text = "<@U2|bob> set the channel purpose: Checkout outage, IC <@U1>",
        purpose = "Checkout outage, IC <@U1>" } })
    assert_whole(t, s)
    assert.are.equal("set the channel topic: SEV1 [status page](https://status.example/1)", entry(t, ts(10)).text_md)
    assert.are.equal("set the channel purpose: Checkout outage, IC @Ada Lovelace", entry(t, ts(11)).text_md)
    assert.truthy(header_of(doc, t, ts(10)):find("**Ada Lovelace**", 1, true))
    assert.falsy(html:find("&lt;@U", 1, true))
  end)

  it("read the value from Slack's sentence when there is no field, and say when it was cleared", function()
    local t = render({ parent(),
      { type = "message", subtype = "channel_topic", user = "U1", ts = ts(10), thread_ts = THREAD,
        text = "<@U1|ada> set the channel topic: rollback in progress" },
      { type = "message", subtype = "channel_purpose", user = "U1", ts = ts(11), thread_ts = THREAD,
        text = "<@U1|ada> cleared the channel purpose", purpose = "" } })
    assert.are.equal("set the channel topic: rollback in progress", entry(t, ts(10)).text_md)
    assert.are.equal("cleared the channel purpose", entry(t, ts(11)).text_md)
  end)
end)

describe("pinned_item", function()
  it("links the pinned message when it is known, and only says what was pinned when not", function()
    local t, doc, _, s = render({ parent(),
      { type = "message", user = "U2", ts = ts(5), thread_ts = THREAD, text = "Runbook: restart the pods" },
      { type = "message", subtype = "pinned_item", user = "U1", item_type = "C", ts = ts(10), thread_ts = THREAD,
        text = "<@U1|ada> pinned a message to this channel.", item = { ts = ts(5), thread_ts = THREAD } },
      { type = "message", subtype = "pinned_item", user = "U1", item_type = "C", ts = ts(11), thread_ts = THREAD,
        text = "<@U1|ada> pinned a message to this channel.",
        attachments = { { from_url = "https://acme.slack.com/archives/C0OPS/p1731620000000100", text = "deploy frozen",
                          is_msg_unfurl = true } } },
      { type = "message", subtype = "pinned_item", user = "U1", item_type = "G", ts = ts(12), thread_ts = THREAD,
        text = "<@U1|ada> pinned a message to this channel.", item = {} },
      { type = "message", subtype = "pinned_item", user = "U1", item_type = "F", ts = ts(13), thread_ts = THREAD,
        text = "<@U1|ada> pinned their Image <https://files.example/x.png|x.png> to this channel.",
        item = { id = "F1", name = "x.png", permalink = "https://acme.slack.com/files/U1/F1/x.png" } },
      { type = "message", subtype = "pinned_item", user = "U1", item_type = "C", ts = ts(14), thread_ts = THREAD,
        text = "pinned", item = { permalink = "javascript:alert(1)" } } })
    assert_whole(t, s)
    assert.are.equal("pinned [a message](" .. entry(t, ts(5)).permalink .. ")", entry(t, ts(10)).text_md)
    assert.are.equal("pinned [a message](https://acme.slack.com/archives/C0OPS/p1731620000000100)",
      entry(t, ts(11)).text_md)
    assert.are.equal("pinned a message", entry(t, ts(12)).text_md)
    assert.are.equal("pinned [a file](https://acme.slack.com/files/U1/F1/x.png)", entry(t, ts(13)).text_md)
    assert.are.equal("pinned a message", entry(t, ts(14)).text_md)
    assert.falsy(doc:find("javascript", 1, true))
    assert.truthy(header_of(doc, t, ts(10)):find("**Ada Lovelace**", 1, true))
  end)
end)

describe("tombstone", function()
  -- a deleted parent, as conversations.replies returns it (posted by USLACKBOT, hidden)
  local function deleted_parent()
    return { type = "message", subtype = "tombstone", user = "USLACKBOT", hidden = true, ts = THREAD,
             thread_ts = THREAD, reply_count = 1, text = "This message was deleted." }
  end

  it("keeps the parent as \"This message was deleted.\" with no author", function()
    local t, doc, html, s = render({ deleted_parent(),
      { type = "message", user = "U1", ts = ts(10), thread_ts = THREAD, text = "still broken?" } })
    assert_whole(t, s)
    assert.are.equal(2, #t.entries)
    local e = t.entries[1]
    assert.are.equal(THREAD, e.ts)
    assert.is_nil(e.author.id)
    assert.is_nil(e.author.name)
    assert.is_false(e.author.is_bot)
    assert.truthy(html:find("<em>This message was deleted.</em>", 1, true), html)
    local header = header_of(doc, t, THREAD)
    assert.falsy(header:find("USLACKBOT", 1, true), header)
    assert.falsy(header:find("unknown", 1, true), header)
    assert.falsy(header:find("****", 1, true), header)
    -- the thread still starts at the parent; the first response is the first person who replied
    assert.are.equal(THREAD, t.figures.start.ts)
    assert.are.equal("Ada Lovelace", t.figures.first_response.by)
    assert.is_nil(t.people.USLACKBOT)
  end)
end)

describe("thread_broadcast with root", function()
  local function broadcast()
    return { type = "message", subtype = "thread_broadcast", user = "U1", ts = ts(10), thread_ts = THREAD,
             text = "Mitigated: traffic moved to eu-west", root = parent({ text = "ROOT COPY of the parent" }) }
  end
  local function reply_copy()
    return { type = "message", user = "U1", ts = ts(10), thread_ts = THREAD,
             text = "Mitigated: traffic moved to eu-west" }
  end

  it("is marked \"also sent to the channel\" and shown once, whichever copy comes first", function()
    for _, order in ipairs({ { reply_copy(), broadcast() }, { broadcast(), reply_copy() } }) do
      local t, doc, _, s = render({ parent(), order[1], order[2] })
      assert_whole(t, s)
      assert.are.equal(2, #t.entries)
      assert.is_true(entry(t, ts(10)).broadcast)
      assert.truthy(header_of(doc, t, ts(10)):find("_also sent to the channel_", 1, true))
      assert.are.equal(1, cmark.count(doc, "Mitigated: traffic moved"))
    end
  end)

  it("does not render its root again, with or without the parent in the thread", function()
    local t, doc = render({ parent(), broadcast() })
    assert.are.equal(2, #t.entries)
    assert.falsy(doc:find("ROOT COPY", 1, true))
    local timeline_part = doc:match("\n## Timeline\n.*$")
    assert.are.equal(1, cmark.count(timeline_part, "Checkout returns 502s"))
    local alone_t, alone_doc = render({ broadcast() })
    assert.are.equal(1, #alone_t.entries)
    assert.falsy(alone_doc:find("ROOT COPY", 1, true))
  end)

  it("keeps the broadcast copy when `render` reads both copies from its input", function()
    FILES["in.json"] = cjson.encode({ parent(), reply_copy(), broadcast() })
    local got = render_input.load({ input = "in.json" })
    local n = 0
    for _, m in ipairs(got.messages) do
      if m.ts == ts(10) then
        n = n + 1
        assert.are.equal("thread_broadcast", m.subtype)
      end
    end
    assert.are.equal(1, n)
  end)
end)

describe("subtypes.one_copy", function()
  local one_copy = require("lib.subtypes").one_copy

  it("copies messages already in ts order, each once (a new array, the same messages)", function()
    local input = { { ts = "1731700000.000100" }, { ts = "1731700000.000200" }, { ts = "1731700001.000000" } }
    local got = one_copy(input)
    assert.are_not.equal(input, got)
    assert.are.same({ input[1], input[2], input[3] }, got)
    assert.are.equal(input[3], got[3])
  end)

  it("keeps the first copy of a ts (the broadcast one) and leaves out what has no string ts", function()
    local first, odd = { ts = "1731700000.000100" }, { ts = "17.5" }
    local plain = { ts = "1731700000.000200", text = "reply" }
    local bc = { ts = "1731700000.000200", subtype = "thread_broadcast" }
    local got = one_copy({ first, plain, "odd", { ts = 5 }, bc, odd })
    assert.are.equal(3, #got)
    assert.is_true(got[1] == first and got[2] == bc and got[3] == odd)
    local late, early = { ts = "1731700000.000300" }, { ts = "1731700000.000100" }
    got = one_copy({ late, early })
    assert.is_true(#got == 2 and got[1] == late and got[2] == early) -- the order is sort_by_ts's job
  end)
end)
