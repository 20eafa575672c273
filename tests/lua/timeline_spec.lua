-- Specs for lib/timeline.lua (collect and the offline build) and lib/tsutil.lua, with host stubbed:
-- a thread served page by page, names fetched once, every file mode, attachments and unfurls,
-- edit/broadcast marks, permalinks, dates when the day changes, two zones, incomplete threads.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local stub = require "helpers.host_stub"

local H = {}
package.loaded.host = H

local OFFSETS = { UTC = 0, ["Europe/Berlin"] = 3600, ["America/New_York"] = -18000 }

local function reset_host()
  for k in pairs(H) do H[k] = nil end
  H.calls = {}
  H.logs = {}
  H.log = function(level, msg) H.logs[#H.logs + 1] = level .. ": " .. msg end
  H.now = function() return 1731700000 end
  H.config = function() return {} end
  H.bot = function() return { user_id = "U0PMBOT", bot_id = "B0PMBOT", team_id = "T1", url = "https://acme.slack.com/" } end
  H.time_parts = function(epoch, zone)
    local offset = assert(OFFSETS[zone], "unknown zone " .. tostring(zone))
    local t = os.date("!*t", math.floor(tonumber(tostring(epoch):match("^%d+"))) + offset)
    t.offset, t.abbrev, t.zone = offset, zone, zone
    return t
  end
  H.format_time = function(epoch, zone, fmt)
    return os.date("!" .. fmt, math.floor(tonumber(tostring(epoch):match("^%d+"))) + OFFSETS[zone])
  end
  H.signal = stub.signal
  H.all = function(fns, limit)
    H.all_limits = H.all_limits or {}
    H.all_limits[#H.all_limits + 1] = limit
    return stub.run_all(fns)
  end
  H.list_scripts = function()
    return { "filters.10-drop-bot-self", "filters.20-drop-joins", "filters.30-drop-command",
             "filters.40-collapse-alert-storms", "filters.50-mark-status" }
  end
  H.mkdir = function() return true end
  H.exists = function() return nil end
  H.downloads = {}
  H.download = function(url, dest)
    H.downloads[#H.downloads + 1] = { url = url, dest = dest }
    if url:find("login") then return nil, { code = "login_page" } end
    return { path = dest, size = 10, sha256 = "cafe", content_type = "image/png" }
  end
end
reset_host()

local tsutil = require "lib.tsutil"
local people = require "lib.people"
local timeline = require "lib.timeline"

local CONFIG = {
  timezone = "Europe/Berlin",
  downloads = { concurrency = 3, max_bytes = 1000 },
  timeline = { alert_storm_window = 600, resolution_phrases = { "all clear" }, mitigation_phrases = { "rolled back" },
               resolution_reaction = "white_check_mark", user_cache_ttl = 3600 },
}

-- 2024-11-14 22:50:00 UTC = 23:50 in Berlin; +20 minutes crosses midnight in Berlin.
local T0 = 1731624600
local THREAD = T0 .. ".000100"
local function ts(sec, micro) return string.format("%d.%06d", T0 + sec, micro or 200) end

local USERS = {
  U1 = { id = "U1", name = "alice", profile = { display_name = "alice", real_name = "Alice M" } },
  U2 = { id = "U2", name = "bob", profile = { display_name = "", real_name = "Bob O" } },
}

local function thread()
  return {
    { type = "message", user = "U1", ts = THREAD, thread_ts = THREAD, reply_count = 9,
      text = "*Checkout down* <!here>, IC <@U1> in <#C0INC>" },
    { type = "message", subtype = "bot_message", bot_id = "B0ALERTS", username = "Grafana", ts = ts(60), text = "",
      attachments = { { title = "[FIRING] 5xx", title_link = "https://grafana.example/a", text = "ratio *31%*",
                        pretext = "alert", fields = { { title = "severity", value = "`critical`" } },
                        footer = "Grafana v10" } } },
    { type = "message", subtype = "bot_message", bot_id = "B0ALERTS", username = "Grafana", ts = ts(70), text = "",
      attachments = { { title = "[FIRING] 5xx", text = "ratio *32%*" } } },
    { type = "message", user = "U2", ts = ts(120), text = "looking, ping <@U1> and <@U9>",
      edited = { user = "U2", ts = ts(200, 0) } },
    { type = "message", user = "U2", ts = ts(180), text = "graph and files:", subtype = "file_share",
      files = {
        { id = "F1", name = "graph.png", title = "Graph", mimetype = "image/png", mode = "hosted", size = 10,
          url_private = "https://files.slack.com/a", url_private_download = "https://files.slack.com/dl/graph.png",
          permalink = "https://acme.slack.com/files/U2/F1/graph.png" },
        { id = "F2", name = "page.html", mimetype = "text/html", mode = "hosted", size = 10,
          url_private_download = "https://files.slack.com/login/page.html" },
        { id = "F3", mode = "hidden_by_limit" },
        { id = "F4", mode = "tombstone" },
        { id = "F5", name = "doc", mimetype = "application/pdf", mode = "external", is_external = true,
          external_type = "gdrive", url_private = "https://drive.example/doc" },
        { id = "F6", mode = "file_access", file_access = "check_file_info", created = 0, user = "" },
        { id = "F7", name = "run.sh", mimetype = "text/x-sh", mode = "snippet", preview = "echo hi", size = 7,
          url_private_download = "https://files.slack.com/dl/run.sh" },
        { id = "F8", name = "huge.bin", mimetype = "application/octet-stream", mode = "hosted", size = 5000,
          url_private_download = "https://files.slack.com/dl/huge.bin" },
      } },
    { type = "message", user = "U1", ts = ts(240), subtype = "thread_broadcast", text = "we rolled back",
      blocks = { { type = "rich_text", elements = { { type = "rich_text_section", elements = {
        { type = "text", text = "We " }, { type = "text", text = "rolled back", style = { bold = true } } } } } } },
      attachments = { { from_url = "https://git.example/pr/1", original_url = "https://git.example/pr/1",
                        service_name = "git.example", title = "PR #1 &amp; fix", text = "Drops TLS 1.2" } } },
    { type = "message", user = "U3", subtype = "channel_join", ts = ts(300), text = "<@U3> has joined the channel" },
    { type = "message", user = "U0PMBOT", bot_id = "B0PMBOT", subtype = "bot_message", ts = ts(400), text = "Status update posted" },
    { type = "message", user = "U2", ts = ts(1200), text = "all clear",
      reactions = { { name = "white_check_mark", count = 2, users = { "U1", "U2" } } } },
    { type = "message", user = "U1", ts = ts(1300), text = "<@U0PMBOT> autopsy this" },
  }
end

local function serve(messages, per_page, opts)
  opts = opts or {}
  H.api = function(method, params)
    H.calls[#H.calls + 1] = { method = method, params = params }
    if method == "conversations.replies" then
      local page = params.cursor and tonumber(params.cursor:match("(%d+)")) or 1
      if opts.fail_on == page then return nil, { code = "timeout", message = "gave up" } end
      local out = { messages[1] }
      local first = 2 + (page - 1) * per_page
      for i = first, math.min(#messages, first + per_page - 1) do out[#out + 1] = messages[i] end
      local more = first + per_page <= #messages
      return { ok = true, messages = out, response_metadata = { next_cursor = more and ("p" .. (page + 1) .. "=") or "" } }
    elseif method == "users.info" then
      if USERS[params.user] then return { ok = true, user = USERS[params.user] } end
      return nil, { code = "user_not_found" }
    elseif method == "bots.info" then
      return { ok = true, bot = { id = params.bot, name = "bot " .. params.bot } }
    elseif method == "files.info" then
      return { ok = true, file = { id = params.file, name = "shared.txt", mimetype = "text/plain", mode = "hosted",
                                   size = 5, url_private_download = "https://files.slack.com/dl/shared.txt" } }
    elseif method == "conversations.info" then
      return { ok = true, channel = { id = params.channel, name = "incidents" } }
    elseif method == "pins.list" then
      return { ok = true, items = H.pins or {} }
    end
    error("unexpected call " .. method)
  end
end

local CTX = { channel = "C0INC", thread_ts = THREAD, ts = ts(1300), user = "U1", config = CONFIG }

local function by_ts(t, wanted)
  for _, e in ipairs(t.entries) do
    if e.ts == wanted then return e end
  end
  return nil
end

local function count_calls(method)
  local n = 0
  for _, c in ipairs(H.calls) do
    if c.method == method then n = n + 1 end
  end
  return n
end

describe("tsutil", function()
  it("orders ts by seconds then microseconds, never as floats", function()
    assert.is_true(tsutil.less("999999999.999999", "1000000000.000000"))
    assert.is_true(tsutil.less("1700000000.000009", "1700000000.000010"))
    assert.is_false(tsutil.less("1700000000.000010", "1700000000.000010"))
    assert.are.equal(0, tsutil.compare("1700000000.0001", "1700000000.000100"))
    assert.are.equal("1700000000000100", tsutil.digits("1700000000.000100"))
    assert.are.equal(3, tsutil.seconds_between("1700000000.000100", "1700000003.000100"))
  end)
end)

describe("timeline.collect", function()
  before_each(function()
    reset_host()
    people.reset()
    require("lib.filters").reset()
  end)

  it("builds the timeline of a thread read 2 messages a page", function()
    serve(thread(), 2)
    local stages = {}
    local t = timeline.collect(CTX, { out_dir = "/data/r/v1", progress = function(stage, n, total)
      stages[#stages + 1] = stage .. ":" .. tostring(n) .. "/" .. tostring(total)
    end })
    assert.are.equal(5, count_calls("conversations.replies"))
    assert.is_true(t.complete)
    assert.are.equal(10, t.fetched)
    assert.are.equal(10, t.expected)
    assert.are.equal("incidents", t.channel_name)
    assert.are.equal("Europe/Berlin", t.zone)
    assert.are.same({ id = "U1", name = "alice" }, t.requested_by)

    -- kept: parent, storm (2 alerts -> 1), U2 reply, files, broadcast, all clear
    local kept = {}
    for i, e in ipairs(t.entries) do kept[i] = e.ts end
    assert.are.same({ THREAD, ts(60), ts(120), ts(180), ts(240), ts(1200) }, kept)
    for _, e in ipairs(t.entries) do assert.is_nil(e.raw) end

    local parent = t.entries[1]
    assert.are.equal("alice", parent.author.name)
    assert.are.equal("23:50:00", parent.time_label)
    assert.are.equal("2024-11-14", parent.date_label)
    assert.truthy(parent.text_md:find("**Checkout down**", 1, true))
    assert.truthy(parent.text_md:find("@alice", 1, true))
    assert.truthy(parent.text_md:find("#incidents", 1, true))
    assert.are.equal("https://acme.slack.com/archives/C0INC/p" .. tsutil.digits(THREAD) .. "?thread_ts=" .. THREAD
      .. "&cid=C0INC", parent.permalink)

    local storm = by_ts(t, ts(60))
    assert.are.equal(2, storm.merged.count)
    assert.are.equal("Grafana", storm.author.name)
    assert.is_true(storm.author.is_bot)
    local a = storm.attachments[1]
    assert.are.equal("[FIRING] 5xx", a.title)
    assert.are.equal("https://grafana.example/a", a.title_link)
    assert.truthy(a.text_md:find("**31%**", 1, true))
    assert.are.equal("alert", a.pretext_md)
    assert.are.equal("severity", a.fields[1].title)
    assert.are.equal("`critical`", a.fields[1].value_md)
    assert.is_false(a.is_unfurl)

    local reply = by_ts(t, ts(120))
    assert.are.equal("Bob O", reply.author.name)
    assert.truthy(reply.text_md:find("@alice", 1, true))
    assert.truthy(reply.text_md:find("U9", 1, true))
    assert.are.equal(ts(200, 0), reply.edited.ts)
    assert.are.equal("23:53", reply.edited.label)
    assert.is_nil(reply.date_label)

    local broadcast = by_ts(t, ts(240))
    assert.is_true(broadcast.broadcast)
    assert.are.equal("We **rolled back**", broadcast.text_md)
    assert.is_true(broadcast.marks.mitigation)
    local unfurl = broadcast.attachments[1]
    assert.is_true(unfurl.is_unfurl)
    assert.are.equal("PR #1 & fix", unfurl.title)
    assert.are.equal("https://git.example/pr/1", unfurl.title_link)

    local done = by_ts(t, ts(1200))
    assert.are.equal("2024-11-15", done.date_label)
    assert.are.equal("00:10:00", done.time_label)
    assert.is_true(done.marks.resolution)
    assert.are.same({ { name = "white_check_mark", count = 2, char = "\u{2705}" } }, done.reactions)

    assert.are.equal(ts(120), t.figures.first_response.ts)
    assert.are.equal(ts(240), t.figures.mitigation.ts)
    assert.are.equal(ts(1200), t.figures.resolution.ts)
    assert.are.equal("reaction", t.figures.resolution.source)

    local rules = {}
    for _, d in ipairs(t.dropped) do rules[d.rule] = (rules[d.rule] or 0) + #d.items end
    assert.are.same({ ["10-drop-bot-self"] = 1, ["20-drop-joins"] = 1, ["30-drop-command"] = 1,
                      ["40-collapse-alert-storms"] = 1 }, rules)

    local read = {}
    for _, stage in ipairs(stages) do
      if stage:find("^messages:") then read[#read + 1] = stage end
    end
    assert.are.same({ "messages:3/10", "messages:5/10", "messages:7/10", "messages:9/10", "messages:10/10" }, read)
    -- each page is named (and converted) while the next one is read: the first page's names are
    -- asked for before the second page's messages are counted
    assert.are.same({ "messages:3/10", "people:0/2", "people:2/2", "messages:5/10" },
      { stages[1], stages[2], stages[3], stages[4] })
    assert.truthy(table.concat(stages, " "):find("files:4/4", 1, true))
  end)

  it("names each person with one call, ids it cannot name shown as ids", function()
    serve(thread(), 50)
    timeline.collect(CTX, { out_dir = "/d" })
    assert.are.equal(1, count_calls("conversations.replies"))
    local asked = {}
    for _, c in ipairs(H.calls) do
      if c.method == "users.info" then
        assert.is_nil(asked[c.params.user])
        asked[c.params.user] = true
      end
    end
    -- authors (U3 joined), mentions (U9, the bot U0PMBOT); Grafana carries a username, our own
    -- bot message has neither username nor bot_profile: one bots.info
    assert.are.same({ U0PMBOT = true, U1 = true, U2 = true, U3 = true, U9 = true }, asked)
    assert.are.equal(1, count_calls("bots.info"))
    for _, c in ipairs(H.calls) do
      if c.method == "bots.info" then assert.are.equal("B0PMBOT", c.params.bot) end
    end
    -- a second command within the TTL asks nobody again (U9 is remembered as unknown)
    H.calls = {}
    local t = timeline.collect(CTX, { out_dir = "/d" })
    assert.are.equal(0, count_calls("users.info"))
    assert.are.equal(0, count_calls("bots.info"))
    assert.truthy(by_ts(t, ts(120)).text_md:find("U9", 1, true))
  end)

  it("handles every file mode and downloads the rest concurrently", function()
    serve(thread(), 50)
    local t = timeline.collect(CTX, { out_dir = "/data/r/v1" })
    local e = by_ts(t, ts(180))
    local f = {}
    for _, fe in ipairs(e.files) do f[fe.id] = fe end
    assert.are.equal("image", f.F1.kind)
    assert.are.equal("attachments/F1-graph.png", f.F1.local_path)
    assert.are.equal("cafe", f.F1.sha256)
    assert.are.equal("login page instead of the file", f.F2.missing_reason)
    assert.truthy(f.F3.missing_reason:find("history limit"))
    assert.truthy(f.F4.missing_reason:find("deleted"))
    assert.truthy(f.F5.missing_reason:find("outside Slack"))
    assert.are.equal("shared.txt", f.F6.name)                -- files.info gave the real object
    assert.are.equal("attachments/F6-shared.txt", f.F6.local_path)
    assert.are.equal("snippet", f.F7.kind)
    assert.are.equal("echo hi", f.F7.preview)
    assert.truthy(f.F8.missing_reason:find("too large"))
    assert.are.equal(1, count_calls("files.info"))
    local dests = {}
    for _, d in ipairs(H.downloads) do dests[#dests + 1] = d.dest end
    table.sort(dests)
    assert.are.same({ "/data/r/v1/attachments/F1-graph.png", "/data/r/v1/attachments/F2-page.html",
                      "/data/r/v1/attachments/F6-shared.txt", "/data/r/v1/attachments/F7-run.sh" }, dests)
    assert.are.equal(3, H.all_limits[#H.all_limits])
    assert.are.same({ downloaded = 3, missing = 5, bytes = 30 }, t.files)
  end)

  it("does not download the files of dropped messages", function()
    local messages = thread()
    messages[8].files = { { id = "F9", name = "report.md", mimetype = "text/markdown", mode = "hosted",
                             url_private_download = "https://files.slack.com/dl/report.md" } }
    serve(messages, 50)
    timeline.collect(CTX, { out_dir = "/d" })
    for _, d in ipairs(H.downloads) do assert.is_nil(d.url:find("report.md", 1, true)) end
  end)

  it("marks the timeline incomplete with the counts when a page fails for good", function()
    serve(thread(), 2, { fail_on = 3 })
    local t = timeline.collect(CTX, { out_dir = "/d" })
    assert.is_false(t.complete)
    assert.are.equal(5, t.fetched)
    assert.are.equal(10, t.expected)
    assert.are.equal("5 of 10 messages", timeline.incomplete_label(t))
    assert.are.equal(4, #t.entries) -- parent, storm, reply, files
  end)

  it("returns nil, err when the thread cannot be read at all", function()
    serve(thread(), 2, { fail_on = 1 })
    local t, err = timeline.collect(CTX, { out_dir = "/d" })
    assert.is_nil(t)
    assert.are.equal("timeout", err.code)
  end)

  it("shows a second zone when configured", function()
    serve(thread(), 50)
    local conf = {}
    for k, v in pairs(CONFIG) do conf[k] = v end
    conf.second_timezone = "America/New_York"
    local ctx = { channel = "C0INC", thread_ts = THREAD, ts = ts(1300), user = "U1", config = conf }
    local t = timeline.collect(ctx, { out_dir = "/d" })
    assert.are.equal("America/New_York", t.second_zone)
    assert.are.equal("17:50:00", t.entries[1].time2_label)
  end)
end)

describe("timeline.build (offline)", function()
  before_each(function()
    reset_host()
    people.reset()
    require("lib.filters").reset()
    H.api = function() error("no network offline") end
    H.bot = function() return nil end
  end)

  it("builds without any call, naming people from opts.people and user_profile", function()
    local messages = thread()
    messages[4].user_profile = { display_name = "", real_name = "Bobby", name = "bob" }
    local t = timeline.build({ ok = true, messages = messages }, {
      people = { U1 = USERS.U1 }, channel = "C0INC", config = CONFIG })
    assert.are.equal(THREAD, t.thread_ts)
    assert.are.equal("alice", t.entries[1].author.name)
    assert.are.equal("Bobby", by_ts(t, ts(120)).author.name)
    assert.are.equal("U2", by_ts(t, ts(180)).author.name)
    -- the bot is inferred from the request: its own message and the request are dropped
    assert.is_nil(by_ts(t, ts(400)))
    assert.is_nil(by_ts(t, ts(1300)))
    assert.truthy(t.entries[1].permalink:find("/archives/C0INC/p", 1, true))
  end)

  it("infers the bot from a request only: the word autopsy whole, in any case", function()
    assert.are.same({}, timeline.infer_bot({ { ts = ts(1), user = "U1", text = "<@U0OTHER> autopsying is fun" } }))
    assert.are.same({ user_id = "U0PMBOT", bot_id = "B0PMBOT" }, timeline.infer_bot({
      { ts = ts(1), user = "U1", text = "<@U0PMBOT> AUTOPSY this" },
      { ts = ts(2), user = "U0PMBOT", bot_id = "B0PMBOT", text = "working on it" },
    }))
  end)

  it("takes the last request, in any case, as the command and an earlier one as an earlier request", function()
    local messages = thread()
    messages[#messages + 1] = { type = "message", user = "U2", ts = ts(1400), text = "<@U0PMBOT> autopsying is fun" }
    messages[#messages + 1] = { type = "message", user = "U2", ts = ts(1500), text = "  <@U0PMBOT>  AUTOPSY" }
    local t = timeline.build(messages, { people = { U1 = USERS.U1 }, channel = "C0INC", config = CONFIG })
    local reasons = {}
    for _, d in ipairs(t.dropped) do
      for _, it in ipairs(d.items) do reasons[it.ts] = d.reason end
    end
    assert.are.equal("the request for this report", reasons[ts(1500)])
    assert.are.equal("an earlier request for a report", reasons[ts(1300)])
    assert.truthy(by_ts(t, ts(1400)))
  end)

  it("uses files already under out_dir/attachments and marks the others 'offline render'", function()
    H.exists = function(p) return p == "/out/attachments/F1-graph.png" and "file" or nil end
    H.file_size = function() return 10 end
    local t = timeline.build(thread(), { channel = "C0INC", config = CONFIG, out_dir = "/out" })
    local f = {}
    for _, fe in ipairs(by_ts(t, ts(180)).files) do f[fe.id] = fe end
    assert.are.equal("attachments/F1-graph.png", f.F1.local_path)
    assert.are.equal("offline render", f.F7.missing_reason)
    assert.truthy(f.F3.missing_reason:find("history limit"))
    assert.are.equal(1, t.files.downloaded)
  end)

  it("leaves files undecided for the caller when there is no out_dir", function()
    local t = timeline.build(thread(), { channel = "C0INC", config = CONFIG })
    local f1 = by_ts(t, ts(180)).files[1]
    assert.is_nil(f1.local_path)
    assert.is_nil(f1.missing_reason)
  end)

  it("keeps each ts once and in order whatever order the input has", function()
    local messages = thread()
    local shuffled = { messages[5], messages[1], messages[4], messages[1], messages[2] }
    local t = timeline.build(shuffled, { channel = "C0INC", config = CONFIG })
    local order = {}
    for i, e in ipairs(t.entries) do order[i] = e.ts end
    assert.are.same({ THREAD, ts(60), ts(120), ts(180) }, order)
  end)

  it("survives JSON nulls where Slack usually sends tables or strings", function()
    local null = cjson.null
    local messages = { { ts = THREAD, user = "U1", text = null, attachments = null, files = { null }, edited = null,
                         reactions = { null }, blocks = null, bot_profile = null, user_profile = null },
                       { ts = ts(10), subtype = "bot_message", bot_id = "B0X", username = null, text = "x",
                         attachments = { null, { title = null, text = "alert", fields = { null } } } } }
    local t = timeline.build(messages, { channel = "C0INC", config = CONFIG })
    assert.are.equal(2, #t.entries)
    assert.are.equal("", t.entries[1].text_md)
    assert.are.equal("B0X", t.entries[2].author.name)
    assert.are.equal("alert", t.entries[2].attachments[1].text_md)
    for _, line in ipairs(H.logs) do assert.is_nil(line:find("failed", 1, true), line) end
  end)

  it("converts a text that several messages repeat once, each entry with its Markdown", function()
    local mrkdwn = require "lib.mrkdwn"
    local convert, seen = mrkdwn.to_markdown, {}
    mrkdwn.to_markdown = function(text, resolve)
      seen[text] = (seen[text] or 0) + 1
      return convert(text, resolve)
    end
    local messages = { { type = "message", user = "U1", ts = THREAD, text = "root" } }
    for i = 1, 4 do
      messages[#messages + 1] = { type = "message", user = "U2", ts = ts(i), text = i % 2 == 0 and "*ack*" or "<@U1> _on it_" }
    end
    local ok, t = pcall(timeline.build, messages, { channel = "C0INC", config = CONFIG, people = USERS })
    mrkdwn.to_markdown = convert
    assert(ok, t)
    assert.are.same({ root = 1, ["*ack*"] = 1, ["<@U1> _on it_"] = 1 }, seen)
    local md = {}
    for _, e in ipairs(t.entries) do md[#md + 1] = e.text_md end
    assert.are.same({ "root", "@alice _on it_", "**ack**", "@alice _on it_", "**ack**" }, md)
  end)

  it("encodes to JSON (timeline.json)", function()
    local t = timeline.build(thread(), { channel = "C0INC", config = CONFIG })
    local decoded = cjson.decode(cjson.encode(t))
    assert.are.equal(#t.entries, #decoded.entries)
  end)
end)

describe("timeline.collect_messages", function()
  it("collects the heap once a thread of 1,000 messages or more is let go of, not for a small one", function()
    reset_host()
    local modes = {}
    H.collect_garbage = function(mode) modes[#modes + 1] = mode end
    timeline.collect_messages(999)
    timeline.collect_messages(nil)
    assert.are.same({}, modes)
    timeline.collect_messages(1000)
    timeline.collect_messages(20000)
    -- and the collector generational for the rest of the report
    assert.are.same({ "generational", "generational" }, modes)
  end)
end)
