-- Every thread of the shared real-data corpus (shared/testdata/slack-real: 303 real messages,
-- sources and licences in its sources/SOURCES.md; read from where it lies, not copied: data from
-- other projects stays in shared/, beside the checkout, or where PMB_SLACK_REAL names) through
-- the real timeline and the default template: the document parses with no raw HTML and one list
-- item per message; no raw `<@U`, `<#C`, `<!`, `<http` is left for a reader to see; every word a
-- reader sees in Slack (text, or the blocks when there are some, and the attachments) is in the
-- message's entry; and, per message, what the issue 13 losses were about, written from the payloads.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local stub = require "helpers.host_stub"
local cmark = require "helpers.cmark"

package.loaded.host = stub.offline_host()

local timeline = require "lib.timeline"
local report = require "lib.report"
local usergroups = require "lib.usergroups"

local function corpus_dir()
  for _, dir in ipairs({ os.getenv("PMB_SLACK_REAL") or "", "../shared/testdata/slack-real",
                         "../../shared/testdata/slack-real" }) do
    if dir ~= "" and stub.read_or_nil(dir .. "/threads/sdk/thread.json") then return dir .. "/threads/" end
  end
end
local DIR = corpus_dir()
-- user groups of the mrkdwn tests: our own fixture (the corpus has none)
local GROUPS = "tests/fixtures/slack-real-usergroups/"
local THREADS = { "mrkdwn-tests", "sdk", "sev-enrique", "sev-traveling-sailor", "slackchannel2pdf", "slackdump", "zulip" }

local function json_file(path)
  local raw = stub.read_or_nil(path)
  return raw and cjson.decode(raw) or nil
end

-- cjson.null -> nil, so the converters see what a Lua script sees from host.api
local function denull(v)
  if v == cjson.null then return nil end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = denull(x) end
  end
  return v
end

-- The thread built as `render` builds it (no filter rules: every message is an entry), with each
-- entry's Markdown as the template lays it out and the visible text of that Markdown.
local loaded = {}
local function load(name)
  if loaded[name] then return loaded[name] end
  local data = denull(json_file(DIR .. name .. "/thread.json"))
  local messages = data.messages or data
  local people = {}
  local users = json_file(DIR .. name .. "/users.json")
  for _, u in ipairs(users and (users.members or users) or {}) do
    if type(u) == "table" and u.id then people[u.id] = denull(u) end
  end
  local groups = usergroups.handles(json_file(GROUPS .. name .. ".json") or {})
  local t = timeline.build(messages, { people = people, usergroups = groups, channel = "C0REAL",
    rules = {}, config = { timezone = "UTC" }, incident = false })
  local doc = report.render(t, { config = { timezone = "UTC" } })
  local views = report.view(t, { config = { timezone = "UTC" } }).entries
  local by_ts = {}
  for i, e in ipairs(t.entries) do
    local v = views[i]
    local parts = { v.text_block or "" }
    for _, a in ipairs(v.attachments) do
      parts[#parts + 1] = a.pretext_block or ""
      parts[#parts + 1] = a.quote_block or ""
    end
    local md = table.concat(parts, "\n\n")
    local html = cmark.html("- entry\n\n" .. md .. "\n")
    local seen = html:gsub("<[^>]*>", ""):gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", "\"")
      :gsub("&amp;", "&")
    by_ts[e.ts] = { entry = e, md = md, html = html, seen = seen }
  end
  loaded[name] = { messages = messages, timeline = t, doc = doc, by_ts = by_ts }
  return loaded[name]
end

-- The words a reader sees in Slack for message m: the blocks when there are some (the text is
-- then only the notification fallback), else the text; and the attachments. Mentions, links'
-- URLs and emoji shortcodes are left out (they show as names, labels and characters).
local function slack_words(m)
  local texts = {}
  local function walk(node, depth)
    if type(node) ~= "table" or depth > 20 then return end
    if (node.type == "mrkdwn" or node.type == "plain_text") and type(node.text) == "string" then
      texts[#texts + 1] = node.text
    elseif node.type == "text" and type(node.text) == "string" then
      texts[#texts + 1] = node.text
    end
    for k, v in pairs(node) do
      if k ~= "options" and k ~= "accessory" or (k == "accessory" and v.type ~= "overflow") then walk(v, depth + 1) end
    end
  end
  if type(m.blocks) == "table" and m.blocks[1] then
    walk(m.blocks, 1)
  else
    texts[#texts + 1] = m.text
  end
  for _, a in ipairs(type(m.attachments) == "table" and m.attachments or {}) do
    for _, key in ipairs({ "pretext", "title", "text", "footer", "author_name", "service_name" }) do
      texts[#texts + 1] = a[key]
    end
    for _, f in ipairs(a.fields or {}) do
      texts[#texts + 1] = f.title
      texts[#texts + 1] = f.value
    end
    walk(a.blocks, 1)
  end
  local words = {}
  for _, s in ipairs(texts) do
    if type(s) == "string" then
      s = s:gsub("<[^<>|]*|([^<>]*)>", "%1"):gsub("<[^<>]*>", " "):gsub(":[%w_+-]+:", " ")
        :gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&amp;", "&")
      for w in s:gmatch("%w%w%w%w+") do words[#words + 1] = w end
    end
  end
  return words
end

if not DIR then
  describe("real Slack threads", function()
    pending("the shared corpus is not here: set PMB_SLACK_REAL to shared/testdata/slack-real")
  end)
  return
end

describe("real Slack threads", function()
  for _, name in ipairs(THREADS) do
    describe(name, function()
      it("renders one list item per message, no raw HTML, nothing raw left to see", function()
        local r = load(name)
        assert.are.equal(#r.messages, #r.timeline.entries)
        local s = cmark.structure(r.doc)
        assert.are.equal(#r.messages, s.items["Timeline"])
        assert.are.equal(0, s.html)
        local html = cmark.html(r.doc)
        for _, raw in ipairs({ "&lt;@U", "&lt;#C", "&lt;!", "&lt;http", "&lt;mailto" }) do
          assert.are.equal(0, cmark.count(html, raw:gsub("%p", "%%%0")), raw .. " left in " .. name)
        end
      end)

      it("shows every word of every message", function()
        local r = load(name)
        for _, m in ipairs(r.messages) do
          local got = r.by_ts[m.ts]
          for _, w in ipairs(slack_words(m)) do
            assert.truthy(got.seen:find(w, 1, true), ("%s: %q missing from the entry of %s:\n%s"):format(name, w, m.ts, got.md))
          end
        end
      end)
    end)
  end
end)

-- entry(thread, ts) -> what the reader sees of that message (HTML text) and its Markdown
local function entry(name, ts)
  local got = load(name).by_ts[ts]
  assert.is_not_nil(got, "no entry " .. ts .. " in " .. name)
  return got.seen, got.md, got.entry
end

describe("what issue 13 saw lost, message by message", function()
  it("1: a Polly poll shows its blocks: title, options, votes, voters, total", function()
    local seen, md = entry("slackdump", "1737160363.583369")
    for _, w in ipairs({ "Test Poll #406", "[Monday]", "[Friday]", "100% (1)", "@Slackdump Author", "Total Votes: 1",
                         "[View All Responses]" }) do
      assert.truthy(seen:find(w, 1, true), w .. " in\n" .. md)
    end
    assert.falsy(seen:find("has a polly for you", 1, true), "the fallback text is not shown as well")
  end)

  it("1: a /poll message shows the options and votes, not only \"Some question?\"", function()
    local seen = entry("slackdump", "1677029631.029259")
    for _, w in ipairs({ "Poll title", "\u{31}\u{FE0F}\u{20E3} this is one", "8", "two", "Created by" }) do
      assert.truthy(seen:find(w, 1, true), w)
    end
    assert.falsy(seen:find("Some question?", 1, true))
  end)

  it("1: a started meeting shows the call and its passcode", function()
    local seen = entry("slackdump", "1710000000.000000")
    assert.truthy(seen:find("Call", 1, true))
    assert.truthy(seen:find("Meeting passcode: yyyyy", 1, true))
  end)

  it("2: a ClickUp attachment of blocks only shows the link, the list and the status", function()
    local r = load("zulip")
    local found
    for _, got in pairs(r.by_ts) do
      if got.md:find("app.clickup.com", 1, true) and got.entry.attachments then found = got end
    end
    assert.is_not_nil(found)
    for _, w in ipairs({ "asd", "in dds", "To Do", "View task" }) do
      assert.truthy(found.seen:find(w, 1, true), w .. " in\n" .. found.md)
    end
  end)

  it("3, 7: Simple Poll's title without a stray space, its footer with the settings link", function()
    local r = load("slackchannel2pdf")
    local poll
    for _, got in pairs(r.by_ts) do
      if got.md:find("Please make a choice", 1, true) then poll = got end
    end
    assert.truthy(poll.md:find("**Please make a choice...**", 1, true), poll.md)
    assert.truthy(poll.md:find("Simple Poll", 1, true))
    assert.truthy(poll.md:find("[Edit Settings](https://simplepoll.rocks/dashboard/eve-sweg/settings/)", 1, true))
    -- 6: the fields have no title: no ": " before them, no "\" inside bold
    assert.falsy(poll.md:find("> : ", 1, true), poll.md)
    assert.falsy(poll.md:find("\\ @", 1, true), poll.md)
  end)

  it("4, 5: the tweet preview names its author and links its photo", function()
    local seen, md = entry("slackdump", "1700000060.000101")
    assert.truthy(md:find("twitter · [Edward Odell", 1, true), md)
    assert.truthy(md:find("](https://pbs.twimg.com/media/FhSGQsVXwAUpyU5.jpg)", 1, true), md)
    assert.truthy(seen:find("NEVER LEAVE, NEVER PAY", 1, true))
  end)

  it("5: an image-only preview shows the image", function()
    local _, md = entry("slackdump", "1700000240.000104")
    assert.truthy(md:find("![", 1, true) and md:find("https://pbs.twimg.com/media/FhTXW4bWAA4jqXk.jpg", 1, true), md)
  end)

  it("8: bold strike emoji and link share their markers", function()
    local r = load("sdk")
    local found
    for _, got in pairs(r.by_ts) do
      if got.md:find("Slack Platform Blog", 1, true) then found = got end
    end
    assert.falsy(found.md:find("****", 1, true), found.md)
    assert.truthy(found.md:find("**~~\u{1F3E0}[Slack Platform Blog](https://medium.com/slack-developer-blog)~~**", 1, true), found.md)
  end)

  it("9: a user group mention shows its handle", function()
    local r = load("mrkdwn-tests")
    local found
    for _, m in ipairs(r.messages) do
      if type(m.text) == "string" and m.text:find("subteam^S72345678", 1, true) then found = r.by_ts[m.ts] end
    end
    assert.truthy(found.seen:find("@marketing", 1, true), found.md)
  end)

  it("11: a date token inside a code span shows the code span as typed", function()
    local r = load("mrkdwn-tests")
    local found
    for _, m in ipairs(r.messages) do
      if m.text == "`<!date^00000000^{_}|`>code<!date^00000000^{_}|`>`" then found = r.by_ts[m.ts] end
    end
    assert.are.equal("  `` `code` ``", found.md)
  end)

  it("12: export shapes: a shared file is listed, a file comment has its author, a bot_add is a person", function()
    local _, _, shared = entry("sev-traveling-sailor", "1459052866.000012")
    assert.are.equal("F0VNAKDE2", shared.files[1].id)
    local r = load("slackchannel2pdf")
    for _, m in ipairs(r.messages) do
      if m.subtype == "file_comment" then
        assert.are.equal("Rosie Dunbar", r.by_ts[m.ts].entry.author.name)
      end
    end
    local _, _, added = entry("sev-enrique", "1452988746.000017")
    assert.are.equal("hamza", added.author.name)
    assert.is_false(added.author.is_bot)
  end)

  it("12: export shapes: a bot's username (with its icons) names it, a tombstone has no author", function()
    local seen, _, bot = entry("sdk", "1355517523.000011")
    assert.are.same({ id = "ABC1234", name = "seanbot", is_bot = true }, bot.author)
    assert.truthy(seen:find("Let's make a pact.", 1, true))
    local _, _, hook = entry("slackchannel2pdf", "1515045942.000110")
    assert.are.equal("magic-webhook", hook.author.name)
    assert.is_true(hook.author.is_bot)
    local deleted_seen, _, deleted = entry("slackdump", "1736554828.343759")
    assert.is_nil(deleted.author.name)
    assert.truthy(deleted_seen:find("This message was deleted.", 1, true))
    assert.falsy(load("slackdump").doc:find("**USLACKBOT**", 1, true))
  end)

  it("13: a GitHub commit attachment leaves no empty quote lines", function()
    local r = load("sev-traveling-sailor")
    for _, got in pairs(r.by_ts) do
      assert.falsy(got.md:find(">\n  >\n", 1, true), got.md)
      assert.falsy(got.md:find("^%s*>%s*$"), got.md)
    end
  end)

  it("14: emoji are characters", function()
    local seen = entry("zulip", "1719211249.499799")
    assert.falsy(seen:find(":bow:", 1, true))
    assert.truthy(seen:find("\u{1F647}", 1, true))
  end)
end)
