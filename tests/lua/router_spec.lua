-- Specs for scripts/lib/router.lua: mention stripping, longest command match, unknown commands,
-- the bot's own messages ignored, the ctx a command receives, and a failing command's reply.
-- The C-provided `host` module is stubbed: host.api records calls instead of reaching Slack.

local calls, logs, reply_targets

local BOT = { user_id = "U0BOT", bot_id = "B0BOT", team_id = "T1", team = "Team", url = "https://t.slack.com/" }
local CONFIG = { timezone = "UTC", data_dir = "/tmp/x" }

package.loaded.host = {
  api = function(method, params)
    calls[#calls + 1] = { method = method, params = params }
    return { ok = true, ts = "1700000009.000100" }
  end,
  bot = function() return BOT end,
  config = function() return CONFIG end,
  log = function(level, msg, fields) logs[#logs + 1] = { level = level, msg = msg, fields = fields or {} } end,
  monotonic = function() return 0 end,
  task_reply_to = function(channel, thread, label)
    reply_targets[#reply_targets + 1] = { channel = channel, thread = thread, label = label }
    return true
  end,
}

local router = require "lib.router"

local function envelope(event, etype)
  return { type = etype or "events_api", envelope_id = "E1", payload = { event = event } }
end

local function mention(text, extra)
  local ev = { type = "app_mention", user = "U0ALICE", text = text, ts = "1700000001.000200", channel = "C1" }
  for k, v in pairs(extra or {}) do ev[k] = v end
  return ev
end

describe("router", function()
  local seen

  before_each(function()
    calls, logs, reply_targets, seen = {}, {}, {}, {}
    router.reset()
    router.add({ name = "help", help = "help — list", run = function(ctx, args) seen[#seen + 1] = { "help", ctx, args } end }, "help.lua")
    router.add({ name = "incident", help = "incident — x", run = function(ctx, args) seen[#seen + 1] = { "incident", ctx, args } end }, "incident.lua")
    router.add({ name = "incident start", help = "incident start <t>", run = function(ctx, args) seen[#seen + 1] = { "incident start", ctx, args } end }, "incident_start.lua")
    router.add({ name = "autopsy this", aliases = { "autopsy" }, help = "autopsy this", run = function(ctx, args) seen[#seen + 1] = { "autopsy this", ctx, args } end }, "autopsy.lua")
  end)

  describe("strip_mention", function()
    it("removes the bot's mention and trims", function()
      assert.are.equal("autopsy this", router.strip_mention("<@U0BOT>   autopsy this  ", "U0BOT"))
    end)
    it("removes a labelled mention", function()
      assert.are.equal("help", router.strip_mention("<@U0BOT|postmortembot> help", "U0BOT"))
    end)
    it("keeps other users' mentions in the text", function()
      assert.are.equal("statusupdate ask <@U0CAROL>", router.strip_mention("<@U0BOT> statusupdate ask <@U0CAROL>", "U0BOT"))
    end)
    it("uses the text before the mention when nothing follows it", function()
      assert.are.equal("help", router.strip_mention("help <@U0BOT>", "U0BOT"))
    end)
    it("strips a leading mention when the bot id is unknown", function()
      assert.are.equal("help me", router.strip_mention("<@U0XYZ> help me", nil))
    end)
  end)

  describe("match", function()
    it("picks the longest registered name", function()
      local cmd, args = router.match("incident start DB is down")
      assert.are.equal("incident start", cmd.name)
      assert.are.equal("DB is down", args)
    end)
    it("falls back to the shorter name", function()
      local cmd, args = router.match("incident   stop now")
      assert.are.equal("incident", cmd.name)
      assert.are.equal("stop now", args)
    end)
    it("is case-insensitive and keeps the args' case", function()
      local cmd, args = router.match("INCIDENT Start Big Outage")
      assert.are.equal("incident start", cmd.name)
      assert.are.equal("Big Outage", args)
    end)
    it("matches whole words only", function()
      assert.is_nil(router.match("helpme"))
      assert.is_nil(router.match("incidents start"))
    end)
    it("matches aliases to their command", function()
      local cmd, args = router.match("autopsy")
      assert.are.equal("autopsy this", cmd.name)
      assert.are.equal("", args)
    end)
    it("refuses a duplicate name at registration", function()
      assert.has_error(function()
        router.add({ name = "Help", help = "x", run = function() end }, "dup.lua")
      end)
    end)
    it("refuses a command without run", function()
      local ok, err = pcall(router.add, { name = "x", help = "x" }, "scripts/commands/x.lua")
      assert.is_false(ok)
      assert.matches("scripts/commands/x.lua", err, 1, true)
    end)
  end)

  describe("on_envelope", function()
    it("runs the matched command with the args", function()
      router.on_envelope(envelope(mention("<@U0BOT> incident start Payments down")))
      assert.are.equal(1, #seen)
      assert.are.equal("incident start", seen[1][1])
      assert.are.equal("Payments down", seen[1][3])
    end)

    it("builds ctx as documented", function()
      router.on_envelope(envelope(mention("<@U0BOT> help", { thread_ts = "1700000000.000100" })))
      local ctx = seen[1][2]
      assert.are.equal("C1", ctx.channel)
      assert.are.equal("1700000001.000200", ctx.ts)
      assert.are.equal("1700000000.000100", ctx.thread_ts)
      assert.are.equal("U0ALICE", ctx.user)
      assert.are.equal("help", ctx.text)
      assert.are.equal("help", ctx.command)
      assert.are.equal(CONFIG, ctx.config)
      assert.are.equal(BOT, ctx.bot)
      assert.are.equal("app_mention", ctx.event.type)
      for _, f in ipairs({ "reply", "update", "react", "unreact", "log" }) do
        assert.are.equal("function", type(ctx[f]), f)
      end
      assert.are.same({ channel = "C1", thread = "1700000000.000100", label = "help" }, reply_targets[1])
    end)

    it("uses the message ts as thread_ts for a top-level mention", function()
      router.on_envelope(envelope(mention("<@U0BOT> help")))
      assert.are.equal("1700000001.000200", seen[1][2].thread_ts)
    end)

    it("ctx.reply posts in the thread and returns the ts", function()
      router.on_envelope(envelope(mention("<@U0BOT> help", { thread_ts = "1700000000.000100" })))
      local ts = seen[1][2].reply("hi", { broadcast = true })
      assert.are.equal("1700000009.000100", ts)
      local last = calls[#calls]
      assert.are.equal("chat.postMessage", last.method)
      assert.are.same({ channel = "C1", thread_ts = "1700000000.000100", text = "hi", reply_broadcast = true }, last.params)
    end)

    it("ctx.react and ctx.update call the right methods on the command message", function()
      router.on_envelope(envelope(mention("<@U0BOT> help")))
      local ctx = seen[1][2]
      ctx.react("eyes")
      assert.are.same({ channel = "C1", timestamp = "1700000001.000200", name = "eyes" }, calls[#calls].params)
      assert.are.equal("reactions.add", calls[#calls].method)
      ctx.unreact("eyes")
      assert.are.equal("reactions.remove", calls[#calls].method)
      assert.is_true(ctx.update("1700000002.000100", "new"))
      assert.are.same({ channel = "C1", ts = "1700000002.000100", text = "new" }, calls[#calls].params)
    end)

    it("answers an unknown command with a pointer to help", function()
      router.on_envelope(envelope(mention("<@U0BOT> frobnicate now", { thread_ts = "1700000000.000100" })))
      assert.are.equal(0, #seen)
      assert.are.equal(1, #calls)
      assert.are.equal("chat.postMessage", calls[1].method)
      assert.are.equal("1700000000.000100", calls[1].params.thread_ts)
      assert.matches("frobnicate", calls[1].params.text, 1, true)
      assert.matches("<@U0BOT> help", calls[1].params.text, 1, true)
    end)

    it("quotes an unknown command so that nothing in it can close the code span or mention anyone", function()
      local hostile = { "x`<!channel>", "`<!here>`", "``<!everyone>", "x`<@U0BOSS>", "a`<!subteam^S1|@ops>",
                        "x`&lt;!channel&gt;", "x`<https://evil.test|click>", "```<!channel>" }
      for _, word in ipairs(hostile) do
        calls = {}
        router.on_envelope(envelope(mention("<@U0BOT> " .. word .. " more")))
        local text = calls[1].params.text
        local quoted = text:match("^I don't know `(.-)`%. Try `<@U0BOT> help`")
        assert.is_not_nil(quoted, word .. " -> " .. text)
        assert.is_nil(quoted:find("`"), word .. " -> " .. text)
        assert.is_nil(quoted:find("<"), word .. " -> " .. text)
        -- the rest of the reply is the bot's own: exactly two code spans, one mention (the bot's)
        local _, ticks = text:gsub("`", "")
        assert.are.equal(4, ticks, text)
        local _, marks = text:gsub("<", "")
        assert.are.equal(1, marks, text)
      end
      calls = {}
      router.on_envelope(envelope(mention("<@U0BOT> " .. string.rep("é", 100))))
      assert.truthy(utf8.len(calls[1].params.text), "cut on a character boundary")
    end)

    it("ignores messages from the bot user itself", function()
      router.on_envelope(envelope(mention("<@U0BOT> help", { user = "U0BOT" })))
      assert.are.equal(0, #seen)
      assert.are.equal(0, #calls)
    end)

    it("ignores messages carrying the bot's bot_id", function()
      router.on_envelope(envelope(mention("<@U0BOT> help", { user = "U0OTHER", bot_id = "B0BOT" })))
      assert.are.equal(0, #seen)
      assert.are.equal(0, #calls)
    end)

    it("handles messages from other bots", function()
      router.on_envelope(envelope(mention("<@U0BOT> help", { bot_id = "B0ALERTS" })))
      assert.are.equal(1, #seen)
    end)

    it("ignores other envelope and event types", function()
      router.on_envelope(envelope(mention("<@U0BOT> help"), "slash_commands"))
      router.on_envelope(envelope({ type = "reaction_added", user = "U0ALICE" }))
      assert.are.equal(0, #seen)
      assert.are.equal(0, #calls)
      assert.are.equal("debug", logs[#logs].level)
    end)

    it("leaves a failing command to the host: names it first, then lets the error go", function()
      router.add({ name = "boom", help = "boom", run = function() error("kaboom") end }, "boom.lua")
      local ok, err = pcall(router.on_envelope,
        envelope(mention("<@U0BOT> boom", { thread_ts = "1700000000.000100" })))
      assert.is_false(ok)
      assert.matches("kaboom", tostring(err), 1, true)
      -- the host knows which command failed and where it was asked before it ran
      assert.are.same({ channel = "C1", thread = "1700000000.000100", label = "boom" }, reply_targets[1])
      -- and the router posted nothing itself: the host's reply is the only one
      for _, c in ipairs(calls) do assert.are_not.equal("chat.postMessage", c.method) end
    end)
  end)

  it("lists commands sorted by name", function()
    local names = {}
    for _, c in ipairs(router.list()) do names[#names + 1] = c.name end
    assert.are.same({ "autopsy this", "help", "incident", "incident start" }, names)
  end)
end)
