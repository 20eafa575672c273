-- Specs for the outage commands: scripts/commands/statusupdate.lua, incident_start.lua and
-- incident_resolve.lua, with the real templates and libraries and a recording fake host (Slack
-- calls, webhook requests, an in-memory data dir). Checks what is sent, the one reply, refusals
-- (nothing sent), quote stripping and the incident record each command leaves.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local stub = require "helpers.host_stub"

local TEMPLATE_NAMES = { "statusupdate.slack", "statusupdate.webhook.json", "incident.start.slack",
                         "incident.howto.slack", "incident.resolve.slack" }

local function fake_host()
  local h = { api_calls = {}, http_calls = {}, disk = {}, env = {}, now_value = 1700000600.5,
              next_ts = 1700000700, parent_text = nil }
  local sources = stub.named_templates(TEMPLATE_NAMES)
  function h.templates() return sources end
  function h.api(method, params)
    h.api_calls[#h.api_calls + 1] = { method = method, params = params }
    if method == "users.info" then
      return { ok = true, user = { id = params.user, profile = { display_name = "name-" .. params.user } } }
    elseif method == "usergroups.users.list" then
      return { ok = true, users = { "U0LEAD" } }
    elseif method == "conversations.replies" then
      if h.parent_text then
        return { ok = true, messages = { { ts = params.ts, text = h.parent_text } } }
      end
      return nil, stub.host_error("thread_not_found")
    elseif method == "chat.postMessage" then
      h.next_ts = h.next_ts + 1
      return { ok = true, channel = params.channel, ts = tostring(h.next_ts) .. ".000100" }
    end
    return { ok = true }
  end
  function h.http(req)
    h.http_calls[#h.http_calls + 1] = req
    return { status = 200, headers = {}, body = "" }
  end
  h.all = stub.run_all
  function h.now() return h.now_value end
  function h.monotonic() return 1 end
  function h.getenv(name) return h.env[name] end
  function h.log() end
  h.format_time = stub.utc_format_time_named
  function h.bot() return { url = "https://acme.slack.com/", user_id = "U0BOT" } end
  function h.config() return { data_dir = "/data" } end
  function h.exists(p) return h.disk[p] and "file" or nil end
  function h.read_file(p) return h.disk[p] end
  function h.write_file(p, data)
    h.disk[p] = data
    return true
  end
  return h
end

local function make_ctx(fields)
  local ctx = {
    channel = "C0WAR", ts = "1700000500.000200", thread_ts = "1700000000.000100", user = "U0LEAD",
    config = {
      timezone = "UTC",
      status = {
        channels = { "C0STATUS" },
        broadcasters = { users = {}, usergroups = {} },
        webhooks = { { name = "relay", url = "http://relay.test/send", retries = 2,
                       headers = { Authorization = "Bearer ${RELAY_TOKEN}" },
                       body_template = "statusupdate.webhook.json" } },
      },
      incident = { channel = "C0INC", runbook_url = "https://wiki.test/runbook", first_status_update = true },
    },
    replies = {},
    logs = {},
  }
  for k, v in pairs(fields or {}) do ctx[k] = v end
  ctx.reply = function(text)
    ctx.replies[#ctx.replies + 1] = text
    return "1700000900.000100"
  end
  ctx.log = function(level, msg) ctx.logs[#ctx.logs + 1] = level .. " " .. msg end
  return ctx
end

local function calls_of(h, method)
  local out = {}
  for _, c in ipairs(h.api_calls) do
    if c.method == method then out[#out + 1] = c.params end
  end
  return out
end

local MODULES = { "lib.broadcast", "lib.templates", "lib.mustache", "lib.slackfmt", "lib.incidents",
                  "lib.permissions", "commands.statusupdate", "commands.incident_start",
                  "commands.incident_resolve", "lib.destinations", "destinations.slack", "destinations.webhook" }

describe("outage commands", function()
  local h

  before_each(function()
    h = fake_host()
    h.env.RELAY_TOKEN = "test-relay-token"
    package.loaded.host = h
    for _, m in ipairs(MODULES) do package.loaded[m] = nil end
  end)

  after_each(function()
    package.loaded.host = nil
  end)

  describe("statusupdate", function()
    local cmd

    before_each(function()
      cmd = require "commands.statusupdate"
    end)

    it("is registered as `statusupdate`", function()
      assert.are.equal("statusupdate", cmd.name)
      assert.is_string(cmd.help)
    end)

    it("strips quotes around the whole text only", function()
      assert.are.equal("We are back", cmd.strip_quotes('"We are back"'))
      assert.are.equal("We are back", cmd.strip_quotes("  “We are back”  "))
      assert.are.equal("it's 'fine'", cmd.strip_quotes("it's 'fine'"))
      assert.are.equal('"a" and "b"', cmd.strip_quotes('"a" and "b"'))
      assert.are.equal("no quotes", cmd.strip_quotes("no quotes"))
    end)

    it("sends to the status channel and the webhook, then replies once listing both", function()
      h.parent_text = "Checkout is down"
      local ctx = make_ctx()
      cmd.run(ctx, '"Rollback done, error rate falling"')
      local posts = calls_of(h, "chat.postMessage")
      assert.are.equal(1, #posts)
      assert.are.equal("C0STATUS", posts[1].channel)
      assert.are.equal(":mega: *Status update: Checkout is down*\n"
        .. "Rollback done, error rate falling\n"
        .. "<@U0LEAD> · 2023-11-14 22:23 UTC · <https://acme.slack.com/archives/C0WAR/p1700000000000100|incident thread>",
        posts[1].text)
      assert.are.equal(1, #h.http_calls)
      assert.are.equal("Bearer test-relay-token", h.http_calls[1].headers.Authorization)
      local body = cjson.decode(h.http_calls[1].body)
      assert.are.equal("Rollback done, error rate falling", body.text)
      assert.are.equal("name-U0LEAD", body.by)
      assert.are.same({ "Status update sent to 2 of 2 destinations:\n• <#C0STATUS>: ok\n• webhook relay: ok" },
        ctx.replies)
    end)

    it("uses the incident record's title and appends the update to the record", function()
      local incidents = require "lib.incidents"
      incidents.save(incidents.new("C0WAR", "1700000000.000100", { title = "Payments 500", started_by = "U1" }))
      local ctx = make_ctx()
      cmd.run(ctx, "Mitigated <@U7>")
      assert.matches("Status update: Payments 500", calls_of(h, "chat.postMessage")[1].text, 1, true)
      local record = incidents.load("C0WAR", "1700000000.000100")
      assert.are.same({ { ts = "1700000500.000200", user = "U0LEAD", text = "Mitigated @name-U7", at = 1700000600.5 } },
        record.status_updates)
      assert.are.equal(0, #calls_of(h, "conversations.replies"))
    end)

    it("refuses a user who is not a broadcaster and sends nothing", function()
      local ctx = make_ctx({ user = "U0INTERN" })
      ctx.config.status.broadcasters = { users = { "U0LEAD" }, usergroups = {} }
      cmd.run(ctx, "everything is fine")
      assert.are.equal(0, #calls_of(h, "chat.postMessage"))
      assert.are.equal(0, #h.http_calls)
      assert.are.equal(1, #ctx.replies)
      assert.matches("^Sorry <@U0INTERN>", ctx.replies[1])
    end)

    it("lets a member of a listed user group broadcast", function()
      local ctx = make_ctx()
      ctx.config.status.broadcasters = { users = {}, usergroups = { "S0ONCALL" } }
      cmd.run(ctx, "update")
      assert.are.equal(1, #calls_of(h, "usergroups.users.list"))
      assert.are.equal(1, #calls_of(h, "chat.postMessage"))
    end)

    it("typed outside a thread: no title, no thread link, the parent is not read", function()
      local ctx = make_ctx({ ts = "1700000500.000200", thread_ts = "1700000500.000200" })
      cmd.run(ctx, "Deploys frozen")
      assert.are.equal(0, #calls_of(h, "conversations.replies"))
      assert.are.equal(":mega: *Status update*\nDeploys frozen\n<@U0LEAD> · 2023-11-14 22:23 UTC",
        calls_of(h, "chat.postMessage")[1].text)
      local body = cjson.decode(h.http_calls[1].body)
      assert.are.equal("", body.title)
      assert.are.equal("", body.thread)
      assert.are.equal("Status update - Deploys frozen (name-U0LEAD, 2023-11-14 22:23 UTC)", body.message)
    end)

    it("answers with usage when the text is empty", function()
      local ctx = make_ctx()
      cmd.run(ctx, '  ""  ')
      assert.are.equal(0, #calls_of(h, "chat.postMessage"))
      assert.matches("^Usage: `statusupdate &lt;text&gt;`", ctx.replies[1])
    end)
  end)

  describe("incident start", function()
    local cmd

    before_each(function()
      cmd = require "commands.incident_start"
    end)

    it("posts the root message, the how-to reply, records it, broadcasts and links back", function()
      local ctx = make_ctx()
      cmd.run(ctx, "Checkout returns 502 &lt;for EU&gt;")
      local posts = calls_of(h, "chat.postMessage")
      assert.are.equal(3, #posts)
      -- 1: the root message in the incident channel
      assert.are.equal("C0INC", posts[1].channel)
      assert.is_nil(posts[1].thread_ts)
      local root = posts[1].text
      assert.matches("^:rotating_light: %*Incident: Checkout returns 502 &lt;for EU&gt;%*\n", root)
      assert.matches("Started by <@U0LEAD> at 2023-11-14 22:23 UTC", root, 1, true)
      assert.matches("Runbook: <https://wiki.test/runbook|runbook>", root, 1, true)
      assert.matches("*Checklist*", root, 1, true)
      -- 2: how to use the bot, in the new thread
      assert.are.equal("C0INC", posts[2].channel)
      assert.are.equal("1700000701.000100", posts[2].thread_ts)
      assert.matches("<@U0BOT> `statusupdate &lt;text&gt;`", posts[2].text, 1, true)
      -- 3: the first status update in the status channel
      assert.are.equal("C0STATUS", posts[3].channel)
      assert.matches("Incident started: Checkout returns 502 &lt;for EU&gt;", posts[3].text, 1, true)
      assert.are.equal("started", cjson.decode(h.http_calls[1].body).event)

      local record = require("lib.incidents").load("C0INC", "1700000701.000100")
      assert.are.equal("Checkout returns 502 <for EU>", record.title)
      assert.are.equal("U0LEAD", record.started_by)
      assert.are.equal(1700000600.5, record.started_at)
      assert.are.equal(1, #record.status_updates)

      assert.are.equal(1, #ctx.replies)
      assert.matches("Incident opened: <https://acme.slack.com/archives/C0INC/p1700000701000100|Checkout returns 502 &lt;for EU&gt;> in <#C0INC>",
        ctx.replies[1], 1, true)
      assert.matches("First status update sent to 2 of 2 destinations", ctx.replies[1], 1, true)
    end)

    it("skips the first status update when incident.first_status_update is false", function()
      local ctx = make_ctx()
      ctx.config.incident.first_status_update = false
      cmd.run(ctx, "DNS")
      assert.are.equal(2, #calls_of(h, "chat.postMessage"))
      assert.are.equal(0, #h.http_calls)
      assert.not_matches("First status update", ctx.replies[1], 1, true)
    end)

    it("refuses a user who is not a broadcaster and posts nothing", function()
      local ctx = make_ctx({ user = "U0INTERN" })
      ctx.config.status.broadcasters = { users = { "U0LEAD" } }
      cmd.run(ctx, "DNS")
      assert.are.equal(0, #calls_of(h, "chat.postMessage"))
      assert.are.same({}, h.disk)
      assert.matches("^Sorry <@U0INTERN>", ctx.replies[1])
    end)

    it("says what failed when the incident channel cannot be posted to", function()
      h.api = function(method)
        if method == "chat.postMessage" then
          return nil, stub.host_error("not_in_channel", "not_in_channel: not a member")
        end
        return { ok = true }
      end
      local ctx = make_ctx()
      cmd.run(ctx, "DNS")
      assert.matches("Could not open the incident: posting in <#C0INC> failed: not_in_channel", ctx.replies[1], 1, true)
      assert.are.same({}, h.disk)
    end)
  end)

  describe("incident resolve", function()
    local cmd, incidents

    before_each(function()
      cmd = require "commands.incident_resolve"
      incidents = require "lib.incidents"
    end)

    it("records the resolution, broadcasts it and gives the duration", function()
      incidents.save(incidents.new("C0INC", "1700000000.000100",
        { title = "Checkout down", started_by = "U1", started_at = 1700000000 }))
      h.now_value = 1700005400.75 -- 1h 30m later
      local ctx = make_ctx({ channel = "C0INC", ts = "1700005400.000900" })
      cmd.run(ctx, "Rolled back release 42")

      local record = incidents.load("C0INC", "1700000000.000100")
      assert.are.equal(1700005400.75, record.resolved_at)
      assert.are.equal("U0LEAD", record.resolved_by)
      assert.are.equal("Rolled back release 42", record.resolution_text)
      assert.are.equal("1700005400.000900", record.resolution_ts)
      assert.are.equal(1700000000, record.started_at)

      local posts = calls_of(h, "chat.postMessage")
      assert.are.equal(1, #posts)
      assert.matches("Resolved: Checkout down", posts[1].text, 1, true)
      assert.matches("Duration: 1h 30m", posts[1].text, 1, true)
      local body = cjson.decode(h.http_calls[1].body)
      assert.are.equal("resolved", body.event)
      assert.are.equal("1h 30m", body.duration)
      assert.are.equal("Rolled back release 42", body.text)

      assert.are.equal(1, #ctx.replies)
      assert.matches("^:white_check_mark: %*Resolved: Checkout down%*\nRolled back release 42\n", ctx.replies[1])
      assert.matches("Started 2023-11-14 22:13 UTC · duration 1h 30m", ctx.replies[1], 1, true)
      assert.matches("Resolution sent to 2 of 2 destinations", ctx.replies[1], 1, true)
    end)

    it("says a long duration as the report does, and never nests bold around a bold title", function()
      incidents.save(incidents.new("C0INC", "1700000000.000100",
        { title = ":rotating_light: *Checkout down*", started_by = "U1", started_at = 1700000000 }))
      h.now_value = 1700000000 + 86400 + 3600
      local ctx = make_ctx({ channel = "C0INC", ts = "1700090000.000900" })
      cmd.run(ctx, "")
      assert.matches("duration 1d 01h 00m", ctx.replies[1], 1, true)
      assert.are.equal(require("lib.timefmt").duration(90000), "1d 01h 00m")
      assert.matches("^:white_check_mark: %*Resolved: :rotating_light: Checkout down%*\n", ctx.replies[1])
    end)

    it("builds a record from the thread when there is none (start = the parent ts)", function()
      h.parent_text = "API latency alarms firing"
      h.now_value = 1700000000.0001 + 600
      local ctx = make_ctx({ channel = "C0WAR" })
      cmd.run(ctx, "")
      local record = incidents.load("C0WAR", "1700000000.000100")
      assert.are.equal("API latency alarms firing", record.title)
      assert.are.equal(1700000000.0001, record.started_at)
      assert.are.equal("1700000500.000200", record.resolution_ts)
      assert.matches("duration 10m", ctx.replies[1], 1, true)
      assert.are.equal("The incident is resolved.", cjson.decode(h.http_calls[1].body).text)
    end)

    it("asks to be used inside the incident thread when typed outside one", function()
      local ctx = make_ctx({ ts = "1700000500.000200", thread_ts = "1700000500.000200" })
      cmd.run(ctx, "done")
      assert.are.same({}, h.disk)
      assert.are.equal(0, #h.api_calls)
      assert.matches("works inside the incident's thread", ctx.replies[1], 1, true)
    end)

    it("does not resolve twice", function()
      local record = incidents.new("C0WAR", "1700000000.000100", { title = "x" })
      record.resolved_at = 1700000100
      record.resolved_by = "U1"
      incidents.save(record)
      local ctx = make_ctx()
      cmd.run(ctx, "again")
      assert.are.equal(0, #calls_of(h, "chat.postMessage"))
      assert.matches("already resolved at 2023-11-14 22:15 UTC by <@U1>", ctx.replies[1], 1, true)
    end)

    it("refuses a user who is not a broadcaster and records nothing", function()
      local ctx = make_ctx({ user = "U0INTERN" })
      ctx.config.status.broadcasters = { users = { "U0LEAD" } }
      cmd.run(ctx, "fixed")
      assert.are.same({}, h.disk)
      assert.are.equal(0, #h.http_calls)
      assert.matches("^Sorry <@U0INTERN>", ctx.replies[1])
    end)
  end)
end)
