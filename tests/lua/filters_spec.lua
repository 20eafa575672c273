-- Specs for lib/filters.lua (the engine: order, explain data, rules that fail) and every default
-- rule in scripts/filters/: bot's own messages, joins/leaves, the request, alert storms, marks.
local H = {}
package.loaded.host = H
H.log = function(level, msg, fields) H.last_log = { level = level, msg = msg, fields = fields } end
H.list_scripts = function(sub)
  assert.are.equal("filters", sub)
  return { "filters.10-drop-bot-self", "filters.20-drop-joins", "filters.30-drop-command",
           "filters.40-collapse-alert-storms", "filters.50-mark-status" }
end

local filters = require "lib.filters"

local THREAD = "1700000000.000100"
local CONFIG = { timeline = { alert_storm_window = 600, resolution_phrases = { "resolved", "all clear" },
                              mitigation_phrases = { "mitigated", "rolled back" },
                              resolution_reaction = "white_check_mark" } }
local BOT = { user_id = "U0PMBOT", bot_id = "B0PMBOT" }

local function entry(sec, raw, author)
  raw.ts = raw.ts or string.format("%d.%06d", 1700000000 + sec, 100)
  author = author or { id = raw.user or raw.bot_id, name = raw.user or raw.bot_id, is_bot = raw.bot_id ~= nil }
  return { ts = raw.ts, time = 1700000000 + sec, time_label = string.format("t+%d", sec), author = author,
           text_md = raw.text or "", subtype = raw.subtype, permalink = "https://x/" .. raw.ts, marks = {},
           raw = raw }
end

local function run_rule(name, entries, env)
  local rule = filters.load({ "filters." .. name })
  env = env or {}
  env.config = env.config or CONFIG
  env.thread_ts = env.thread_ts or THREAD
  env.bot = env.bot or BOT
  return filters.run(entries, rule, env)
end

local function ts_list(entries)
  local out = {}
  for i, e in ipairs(entries) do out[i] = e.ts end
  return out
end

describe("the filter engine", function()
  before_each(filters.reset)

  it("loads the rules of scripts/filters in file-name order", function()
    local rules = filters.rules()
    local names = {}
    for i, r in ipairs(rules) do names[i] = r.name end
    assert.are.same({ "10-drop-bot-self", "20-drop-joins", "30-drop-command", "40-collapse-alert-storms",
                      "50-mark-status" }, names)
    for _, r in ipairs(rules) do assert.is_string(r.description) end
  end)

  it("refuses a rule without apply, naming the file", function()
    package.loaded["filters.broken"] = { name = "broken" }
    assert.has_error(function() filters.load({ "filters.broken" }) end,
      "filters.broken: the rule has no apply function (nor each)")
    package.loaded["filters.both"] = { each = function() end, apply = function(e) return e end }
    assert.has_error(function() filters.load({ "filters.both" }) end,
      "filters.both: a rule has either each or apply, not both")
    package.loaded["filters.lone"] = { each = function() end, prepare = function() end }
    assert.has_error(function() filters.load({ "filters.lone" }) end,
      "filters.lone: prepare must be a function, beside apply")
  end)

  it("records entries a rule leaves out without saying why, under its description", function()
    local rule = filters.validate({ name = "x", description = "drops odd ones",
      apply = function(entries) return { entries[2] } end }, "filters.x")
    local a, b, c = entry(1, { text = "a" }), entry(2, { text = "b" }), entry(3, { text = "c" })
    local kept, dropped = filters.run({ a, b, c }, { rule }, {})
    assert.are.same({ b }, kept)
    assert.are.equal(1, #dropped)
    assert.are.equal("x", dropped[1].rule)
    assert.are.equal("drops odd ones", dropped[1].reason)
    assert.are.same({ a.ts, c.ts }, ts_list(dropped[1].items))
    assert.are.equal("a", dropped[1].items[1].summary)
    assert.are.equal("https://x/" .. a.ts, dropped[1].items[1].permalink)
  end)

  it("skips a rule that raises, keeps its input and shows the failure", function()
    local bad = filters.validate({ name = "bad", apply = function(entries, env)
      env.drop_where(entries, function() return "half done" end)
      error("boom")
    end }, "filters.bad")
    local a = entry(1, { text = "a" })
    local kept, dropped = filters.run({ a }, { bad }, {})
    assert.are.same({ a }, kept)
    assert.are.equal(1, #dropped)
    assert.truthy(dropped[1].reason:find("boom"))
    assert.are.equal(0, #dropped[1].items)
    assert.are.equal("error", H.last_log.level)
  end)

  it("keeps an entry an each rule fails on, drops the others it names, and says on how many it failed", function()
    local rule = filters.validate({ name = "shaky", each = function(e)
      if e.text_md == "boom" then error("no text") end
      if e.text_md == "x" then return "an x" end
    end }, "filters.shaky")
    local a, b, c, d = entry(1, { text = "x" }), entry(2, { text = "boom" }), entry(3, { text = "y" }),
      entry(4, { text = "boom" })
    local kept, dropped = filters.run({ a, b, c, d }, { rule }, {})
    assert.are.same({ b, c, d }, kept)
    assert.are.equal(2, #dropped)
    assert.are.equal("an x", dropped[1].reason)
    assert.are.equal("shaky", dropped[2].rule)
    assert.truthy(dropped[2].reason:find("failed on 2 entries", 1, true))
    assert.truthy(dropped[2].reason:find("no text", 1, true))
    assert.are.equal(0, #dropped[2].items)
  end)

  it("gives apply what prepare returned for each entry as it was read, and skips a rule whose prepare fails", function()
    local seen_raw = {}
    local tag = filters.validate({ name = "tag",
      prepare = function(e) seen_raw[#seen_raw + 1] = e.raw.text; return e.raw.text == "b" and "B" or nil end,
      apply = function(entries, env)
        for _, e in ipairs(entries) do e.tag = env.prepared[e] end
        return entries
      end }, "filters.tag")
    local broken = filters.validate({ name = "broken",
      prepare = function(e) if e.raw.text == "c" then error("bad c") end end,
      apply = function() return {} end }, "filters.broken2")
    local a, b, c = entry(1, { text = "a" }), entry(2, { text = "b" }), entry(3, { text = "c" })
    local stream = filters.stream({ tag, broken }, {})
    assert.is_false(stream.keeps_raw)
    stream.add({ a, b })
    for _, e in ipairs({ a, b }) do e.raw = nil end -- what the timeline does when keeps_raw is false
    stream.add({ c })
    local kept, dropped = stream.finish()
    assert.are.same({ "a", "b", "c" }, seen_raw)
    assert.are.same({ a, b, c }, kept) -- the broken rule's apply (drop everything) never ran
    assert.is_nil(a.tag)
    assert.are.equal("B", b.tag)
    assert.are.equal(1, #dropped)
    assert.are.equal("broken", dropped[1].rule)
    assert.truthy(dropped[1].reason:find("skipped: ", 1, true))
    assert.truthy(dropped[1].reason:find("bad c", 1, true))
  end)

  it("runs early each rules page by page, and later ones with the whole list, in file order", function()
    local order = {}
    local function each(name, drop)
      return filters.validate({ name = name, each = function(e)
        order[#order + 1] = name .. ":" .. e.text_md
        if e.text_md == drop then return "not " .. drop end
      end }, "filters." .. name)
    end
    local whole = filters.validate({ name = "whole", apply = function(entries)
      order[#order + 1] = "whole:" .. #entries
      return entries
    end }, "filters.whole")
    local stream = filters.stream({ each("e1", "a"), whole, each("e2", "b") }, {})
    assert.is_true(stream.keeps_raw) -- an apply without prepare and a late each read the entries at the end
    local a, b, c = entry(1, { text = "a" }), entry(2, { text = "b" }), entry(3, { text = "c" })
    stream.add({ a, b })
    assert.are.same({ "e1:a", "e1:b" }, order)
    stream.add({ c })
    local kept, dropped = stream.finish()
    assert.are.same({ "e1:a", "e1:b", "e1:c", "whole:2", "e2:b", "e2:c" }, order)
    assert.are.same({ c }, kept)
    assert.are.same({ "e1", "e2" }, { dropped[1].rule, dropped[2].rule })
  end)

  it("gives the same kept list and explanation for pages out of order as for the sorted thread", function()
    local rules = filters.rules()
    local env = { bot = BOT, thread_ts = THREAD, config = CONFIG }
    local function thread()
      local out = { entry(0, { ts = THREAD, user = "U1", text = "down" }, { id = "U1", name = "ada" }) }
      for i = 1, 12 do
        local sub = (i % 3 == 0) and "channel_join" or nil
        local raw = (i >= 10) and { bot_id = "B0ALERTS", subtype = "bot_message", text = "CPU high" }
          or { user = "U" .. i, subtype = sub, text = "step " .. i }
        out[#out + 1] = entry(i * 10, raw)
      end
      return out
    end
    local sorted = thread()
    local kept1, dropped1 = filters.run(sorted, rules, env)
    local shuffled = thread()
    local stream = filters.stream(rules, env)
    stream.add({ shuffled[9], shuffled[10], shuffled[11], shuffled[12], shuffled[13] })
    stream.add({ shuffled[1], shuffled[2], shuffled[3], shuffled[4] })
    stream.add({ shuffled[5], shuffled[6], shuffled[7], shuffled[8] })
    local kept2, dropped2 = stream.finish(true)
    assert.are.same(ts_list(kept1), ts_list(kept2))
    assert.are.same(dropped1, dropped2)
    assert.is_true(#dropped1 >= 2) -- joins and an alert storm, so the order of groups was at stake
    -- without by_ts (a channel: replies after their parent) the order added is the order kept
    local as_added = filters.stream(rules, env)
    as_added.add({ shuffled[2], shuffled[1] })
    assert.are.same({ shuffled[2].ts, shuffled[1].ts }, ts_list((as_added.finish(false))))
  end)

  it("cuts the summary to 80 bytes on a character boundary", function()
    local e = entry(1, { text = string.rep("é", 100) })
    local s = filters.summary(e)
    assert.is_truthy(utf8.len(s))
    assert.is_true(#s <= 84)
  end)
end)

describe("10-drop-bot-self", function()
  it("drops the bot's messages by user id or bot id, keeps other bots and the parent", function()
    local parent = entry(0, { ts = THREAD, user = "U0PMBOT", bot_id = "B0PMBOT", text = "Incident: x" })
    local mine1 = entry(1, { user = "U0PMBOT", text = "Status update posted" })
    local mine2 = entry(2, { bot_id = "B0PMBOT", subtype = "bot_message", text = "upload" })
    local other = entry(3, { bot_id = "B0ALERTS", subtype = "bot_message", text = "alert" })
    local human = entry(4, { user = "U1", text = "hi" })
    local kept, dropped = run_rule("10-drop-bot-self", { parent, mine1, mine2, other, human })
    assert.are.same({ parent, other, human }, kept)
    assert.are.equal("10-drop-bot-self", dropped[1].rule)
    assert.are.equal("posted by this bot", dropped[1].reason)
    assert.are.same({ mine1.ts, mine2.ts }, ts_list(dropped[1].items))
  end)
end)

describe("20-drop-joins", function()
  it("drops joins and leaves with the reason", function()
    local join = entry(1, { user = "U1", subtype = "channel_join", text = "<@U1> has joined the channel" })
    local leave = entry(2, { user = "U2", subtype = "channel_leave", text = "left" })
    local human = entry(3, { user = "U1", text = "hi" })
    local kept, dropped = run_rule("20-drop-joins", { join, human, leave })
    assert.are.same({ human }, kept)
    assert.are.equal("joined the channel", dropped[1].reason)
    assert.are.equal("left the channel", dropped[2].reason)
  end)
end)

describe("30-drop-command", function()
  it("drops the request (command_ts) and earlier report requests to this bot only", function()
    local old = entry(1, { user = "U1", text = "<@U0PMBOT> autopsy this" })
    local other_bot = entry(2, { user = "U1", text = "<@U0OTHER> autopsy this" })
    local talk = entry(3, { user = "U1", text = "autopsy this later please" })
    local request = entry(4, { user = "U2", text = "<@U0PMBOT> autopsy this" })
    local kept, dropped = run_rule("30-drop-command", { old, other_bot, talk, request }, { command_ts = request.ts })
    assert.are.same({ other_bot, talk }, kept)
    local reasons = {}
    for _, d in ipairs(dropped) do reasons[d.reason] = ts_list(d.items) end
    assert.are.same({ request.ts }, reasons["the request for this report"])
    assert.are.same({ old.ts }, reasons["an earlier request for a report"])
  end)

  it("knows a request in any case, after spaces and a labelled mention, and only the whole word", function()
    local upper = entry(1, { user = "U1", text = "  <@U0PMBOT|pmb>   AUTOPSY this" })
    local mixed = entry(2, { user = "U1", text = "<@U0PMBOT> Autopsy" })
    local longer = entry(3, { user = "U1", text = "<@U0PMBOT> autopsying is fun" })
    local later = entry(4, { user = "U1", text = "<@U0PMBOT> please autopsy this" })
    local kept = run_rule("30-drop-command", { upper, mixed, longer, later }, {})
    assert.are.same({ longer, later }, kept)
  end)
end)

describe("40-collapse-alert-storms", function()
  local function alert(sec, title, bot)
    return entry(sec, { bot_id = bot or "B0ALERTS", subtype = "bot_message", text = "",
                        attachments = { { title = title, text = "details" } } },
                 { id = bot or "B0ALERTS", name = "Grafana", is_bot = true })
  end

  it("folds consecutive same-bot same-title alerts within the window into the first", function()
    local a1, a2, a3 = alert(0, "[FIRING] HighErrorRate"), alert(10, "[FIRING] HighErrorRate"), alert(20, "[FIRING] HighErrorRate")
    local resolved = alert(30, "[RESOLVED] HighErrorRate")
    local kept, dropped = run_rule("40-collapse-alert-storms", { a1, a2, a3, resolved })
    assert.are.same({ a1, resolved }, kept)
    assert.are.same({ count = 3, first_ts = a1.ts, last_ts = a3.ts, first_label = "t+0", last_label = "t+20" }, a1.merged)
    assert.is_nil(resolved.merged)
    assert.are.equal("40-collapse-alert-storms", dropped[1].rule)
    assert.are.same({ a2.ts, a3.ts }, ts_list(dropped[1].items))
    assert.truthy(dropped[1].reason:find("3 messages"))
  end)

  it("does not fold across a human message, another bot, or past the window", function()
    local human = entry(5, { user = "U1", text = "looking" }, { id = "U1", name = "ada", is_bot = false })
    local list = { alert(0, "A"), human, alert(10, "A"), alert(20, "A", "B0OTHER"), alert(30, "A"), alert(700, "A") }
    local kept = run_rule("40-collapse-alert-storms", list)
    assert.are.equal(6, #kept)
    local window = run_rule("40-collapse-alert-storms", { alert(0, "A"), alert(599, "A"), alert(601, "A") })
    assert.are.equal(2, #window)
    assert.are.equal(2, window[1].merged.count)
  end)

  it("uses the configured window", function()
    local conf = { timeline = { alert_storm_window = 5 } }
    local kept = run_rule("40-collapse-alert-storms", { alert(0, "A"), alert(10, "A") }, { config = conf })
    assert.are.equal(2, #kept)
  end)
end)

describe("50-mark-status", function()
  it("marks status updates, resolutions and mitigations, drops nothing", function()
    local status = entry(1, { user = "U1", text = "<@U0PMBOT> statusupdate Card payments are failing" })
    local mitig = entry(2, { user = "U1", text = "*Mitigated:* rolled back to v2.13" })
    local react = entry(3, { user = "U2", text = "looks fine now", reactions = { { name = "white_check_mark", count = 2 } } })
    local phrase = entry(4, { user = "U3", text = "All clear from support" })
    local resolve = entry(5, { user = "U1", text = "<@U0PMBOT> incident resolve done",
                               reactions = { { name = "white_check_mark", count = 1 } } })
    local plain = entry(6, { user = "U1", text = "unresolved questions remain" })
    local list = { status, mitig, react, phrase, resolve, plain }
    local kept, dropped = run_rule("50-mark-status", list)
    assert.are.equal(6, #kept)
    assert.are.equal(0, #dropped)
    assert.is_true(status.marks.status_update)
    assert.is_true(mitig.marks.mitigation)
    assert.are.equal("reaction", react.marks.sources.resolution)
    assert.are.equal("phrase", phrase.marks.sources.resolution)
    assert.are.equal("incident resolve", resolve.marks.sources.resolution)
    assert.is_nil(plain.marks.resolution)
    assert.is_nil(status.marks.resolution)
  end)

  it("ignores commands addressed to someone else and phrases from bots", function()
    local other = entry(1, { user = "U1", text = "<@U0OTHER> statusupdate hi" })
    local bot = entry(2, { bot_id = "B0ALERTS", text = "[RESOLVED] all clear" }, { id = "B0ALERTS", name = "G", is_bot = true })
    run_rule("50-mark-status", { other, bot })
    assert.is_nil(other.marks.status_update)
    assert.is_nil(bot.marks.resolution)
  end)
end)

describe("the default rules together", function()
  before_each(filters.reset)

  it("run in order and explain every removal", function()
    local parent = entry(0, { ts = THREAD, user = "U1", text = "checkout down" }, { id = "U1", name = "ada", is_bot = false })
    local join = entry(1, { user = "U2", subtype = "channel_join", text = "joined" })
    local bot = entry(2, { user = "U0PMBOT", bot_id = "B0PMBOT", subtype = "bot_message", text = ":white_check_mark: resolved" })
    local request = entry(3, { user = "U1", text = "<@U0PMBOT> autopsy this" })
    local kept, dropped = filters.run({ parent, join, bot, request }, filters.rules(),
      { bot = BOT, command_ts = request.ts, thread_ts = THREAD, config = CONFIG })
    assert.are.same({ parent }, kept)
    local rules = {}
    for _, d in ipairs(dropped) do rules[#rules + 1] = d.rule end
    assert.are.same({ "10-drop-bot-self", "20-drop-joins", "30-drop-command" }, rules)
  end)
end)
