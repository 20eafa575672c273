-- Specs for scripts/lib/broadcast.lua and scripts/lib/slackfmt.lua: ${ENV} expansion, the view,
-- the real statusupdate templates, each destination tried on its own (a failing one does not stop
-- the others), webhook retries and errors, and the one-reply summary. host is a recording fake.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local stub = require "helpers.host_stub"

local TEMPLATE_NAMES = { "statusupdate.slack", "statusupdate.webhook.json" }

local function fake_host()
  local h = { api_calls = {}, http_calls = {}, logs = {}, env = {}, http_answers = {}, api_errors = {} }
  local sources = stub.named_templates(TEMPLATE_NAMES)
  h.sources = sources
  function h.templates() return sources end
  function h.api(method, params)
    h.api_calls[#h.api_calls + 1] = { method = method, params = params }
    if method == "users.info" then
      local names = { U1 = "Ada", U2 = "Grace" }
      if names[params.user] then
        return { ok = true, user = { id = params.user, name = "x", profile = { display_name = names[params.user] } } }
      end
      return nil, stub.host_error("user_not_found", "user_not_found: no")
    end
    if method == "chat.postMessage" and h.api_errors[params.channel] then
      local code = h.api_errors[params.channel]
      return nil, stub.host_error(code, code .. ": Slack said so")
    end
    return { ok = true, ts = "1700000999.000100", channel = params.channel }
  end
  function h.http(req)
    h.http_calls[#h.http_calls + 1] = req
    local answer = h.http_answers[req.url]
    if type(answer) == "function" then return answer(req) end
    return answer or { status = 200, headers = {}, body = "ok" }
  end
  h.all = stub.run_all
  function h.getenv(name) return h.env[name] end
  function h.log(level, msg, fields) h.logs[#h.logs + 1] = { level = level, msg = msg, fields = fields } end
  h.format_time = stub.utc_format_time_named
  function h.bot() return { url = "https://acme.slack.com/" } end
  return h
end

describe("slackfmt", function()
  local slackfmt

  before_each(function()
    package.loaded["lib.slackfmt"] = nil
    slackfmt = require "lib.slackfmt"
  end)

  it("tells a report request and whom it is addressed to: a leading mention, then the word autopsy in any case", function()
    assert.are.equal("U0BOT", slackfmt.report_request_to("<@U0BOT> autopsy this"))
    assert.are.equal("U0BOT", slackfmt.report_request_to("  <@U0BOT|postmortembot>   AUTOPSY"))
    assert.are.equal("U0BOT", slackfmt.report_request_to("<@U0BOT> Autopsy since 14:05"))
    assert.is_nil(slackfmt.report_request_to("<@U0BOT> autopsying is fun"))
    assert.is_nil(slackfmt.report_request_to("<@U0BOT> please autopsy this"))
    assert.is_nil(slackfmt.report_request_to("autopsy this, <@U0BOT>"))
    assert.is_nil(slackfmt.report_request_to(nil))
    assert.is_nil(slackfmt.report_request_to({}))
  end)

  it("escapes only & < >", function()
    assert.are.equal('a &amp; &lt;b&gt; "c" *d*', slackfmt.escape('a & <b> "c" *d*'))
  end)

  it("builds links and escapes their label", function()
    assert.are.equal("<https://x.test/a|a &lt;b&gt; / c>", slackfmt.link("https://x.test/a", "a <b> | c"))
    assert.are.equal("<https://x.test/a>", slackfmt.link("https://x.test/a"))
  end)

  it("builds thread permalinks like Slack", function()
    assert.are.equal("https://acme.slack.com/archives/C1/p1700000000000100",
      slackfmt.permalink("https://acme.slack.com/", "C1", "1700000000.000100"))
    assert.are.equal("https://acme.slack.com/archives/C1/p1700000001000200?thread_ts=1700000000.000100&cid=C1",
      slackfmt.permalink("https://acme.slack.com", "C1", "1700000001.000200", "1700000000.000100"))
    assert.is_nil(slackfmt.permalink(nil, "C1", "1.2"))
  end)

  it("turns Slack-encoded text into plain text", function()
    local text = "<@U1> &amp; <@U9> see <https://x.test/a|the graph> and <https://y.test> in <#C1|ops> <!here> &lt;3"
    assert.are.equal("@Ada & @U9 see the graph (https://x.test/a) and https://y.test in #ops @here <3",
      slackfmt.to_plain(text, { U1 = "Ada" }))
    assert.are.same({ "U1", "U9" }, slackfmt.mentioned_users("<@U1> <@U9|x> <@U1>"))
  end)

  it("has no duration formatter of its own (timefmt.duration is the one) and drops bold marks", function()
    assert.is_nil(slackfmt.duration)
    assert.are.equal(":rotating_light: Checkout down in eu_west", slackfmt.unbold(":rotating_light: *Checkout down* in eu_west"))
    assert.are.equal("2 * 3 = 6", slackfmt.unbold("2 * 3 = 6"))
  end)
end)

describe("broadcast", function()
  local broadcast, h

  local function config(status)
    return { timezone = "UTC", status = status }
  end

  local function update(fields)
    local u = { kind = "status", title = "Checkout down", text = "Rollback <@U2> &amp; co", user = "U1",
                at = 1700000000.25, thread_url = "https://acme.slack.com/archives/C9/p1700000000000100" }
    for k, v in pairs(fields or {}) do u[k] = v end
    return u
  end

  before_each(function()
    h = fake_host()
    package.loaded.host = h
    for _, m in ipairs({ "lib.broadcast", "lib.templates", "lib.mustache", "lib.slackfmt", "lib.destinations",
                          "destinations.slack", "destinations.webhook" }) do
      package.loaded[m] = nil
    end
    broadcast = require "lib.broadcast"
  end)

  after_each(function()
    package.loaded.host = nil
  end)

  it("expands ${ENV} in header values and refuses when one is missing", function()
    local env = { TOKEN = "s3cret" }
    local get = function(n) return env[n] end
    assert.are.equal("Bearer s3cret", broadcast.expand_env("Bearer ${TOKEN}", get))
    assert.are.equal("plain", broadcast.expand_env("plain", get))
    local v, missing = broadcast.expand_env("Bearer ${NOPE} ${TOKEN}", get)
    assert.is_nil(v)
    assert.are.equal("NOPE", missing)
  end)

  it("renders the Slack message to every status channel", function()
    local results = broadcast.send(config({ channels = { "C0STATUS", "C0OTHER" } }), update())
    assert.are.equal(2, #results)
    assert.is_true(results[1].ok)
    assert.is_true(results[2].ok)
    local posts = {}
    for _, c in ipairs(h.api_calls) do
      if c.method == "chat.postMessage" then posts[#posts + 1] = c.params end
    end
    assert.are.equal(2, #posts)
    assert.are.equal("C0STATUS", posts[1].channel)
    assert.are.equal("C0OTHER", posts[2].channel)
    assert.are.equal(":mega: *Status update: Checkout down*\n"
      .. "Rollback @Grace &amp; co\n"
      .. "<@U1> · 2023-11-14 22:13 UTC · <https://acme.slack.com/archives/C9/p1700000000000100|incident thread>",
      posts[1].text)
  end)

  it("escapes the title for Slack and keeps the typed text as Slack sent it when mentions are allowed", function()
    broadcast.send(config({ channels = { "C0STATUS" }, allow_mentions = true }), update({ title = "a <b> & c" }))
    local text = h.api_calls[#h.api_calls].params.text
    assert.matches("Status update: a &lt;b&gt; &amp; c", text, 1, true)
    assert.matches("Rollback <@U2> &amp; co", text, 1, true)
  end)

  local MASS = { "<!channel>", "<!here>", "<!everyone>", "<!channel|channel>", "<!here|@here>",
                 "<!subteam^S0ONCALL|@oncall>", "<!subteam^S0ONCALL>", "<@U2>", "<@U2|grace>" }

  it("relays no live mention to the status channels unless status.allow_mentions", function()
    for _, m in ipairs(MASS) do
      h.api_calls = {}
      broadcast.send(config({ channels = { "C0STATUS" } }), update({ text = "go " .. m .. " now", title = m }))
      local text = h.api_calls[#h.api_calls].params.text
      local body = text:match("\n(.-)\n<@U1> ·")
      assert.is_nil(body:find("<[!@]"), m .. " -> " .. text)
      assert.matches("^go @.+ now$", body)
    end
    h.api_calls = {}
    broadcast.send(config({ channels = { "C0STATUS" }, allow_mentions = true }), update({ text = "go <!channel>" }))
    assert.matches("go <!channel>", h.api_calls[#h.api_calls].params.text, 1, true)
  end)

  it("gives webhooks no markup the user did not type as markup: mentions and &lt;!channel&gt; stay text", function()
    local hook = { name = "relay", url = "http://relay.test/send" }
    local typed = { "&lt;!channel&gt;", "&lt;@U2&gt;", "&lt;#C1&gt;", "&lt;https://evil.test|click&gt;",
                    "@channel", "@here", "@everyone" }
    for _, m in ipairs(MASS) do typed[#typed + 1] = m end
    for _, m in ipairs(typed) do
      h.http_calls = {}
      broadcast.send(config({ webhooks = { hook } }), update({ text = "go " .. m .. " now", title = "t " .. m }))
      local body = cjson.decode(h.http_calls[1].body)
      for _, field in ipairs({ "text", "title", "message" }) do
        local v = body[field]
        assert.is_nil(v:find("<[!@#]"), m .. " -> " .. field .. " " .. v)
        assert.is_nil(v:find("<https?:"), m .. " -> " .. field .. " " .. v)
        assert.is_nil(v:lower():find("@channel") or v:lower():find("@here") or v:lower():find("@everyone"),
          m .. " -> " .. field .. " " .. v)
      end
      -- no letter of what was typed is lost
      local letters = body.text:gsub("[^%a]", "")
      assert.truthy(letters:find("go", 1, true) and letters:find("now", 1, true), body.text)
    end
  end)

  it("passes a webhook's allow_private to host.http, and nothing else does", function()
    local hooks = { { name = "a", url = "http://10.0.0.5/x", allow_private = true },
                    { name = "b", url = "http://relay.test/y" },
                    { name = "c", url = "http://relay.test/z", allow_private = "yes" } }
    broadcast.send(config({ webhooks = hooks }), update())
    table.sort(h.http_calls, function(x, y) return x.url < y.url end)
    assert.is_true(h.http_calls[1].allow_private)
    assert.is_nil(h.http_calls[2].allow_private)
    assert.is_nil(h.http_calls[3].allow_private)
  end)

  it("sends the JSON webhook body with plain text, names and expanded headers", function()
    h.env.RELAY_TOKEN = "test-relay-token"
    local hook = { name = "relay", url = "http://relay.test/send", retries = 2,
                   headers = { Authorization = "Bearer ${RELAY_TOKEN}" },
                   body_template = "statusupdate.webhook.json" }
    local results = broadcast.send(config({ webhooks = { hook } }), update())
    assert.are.same({ kind = "webhook", name = "relay", ok = true, status = 200 }, results[1])
    local req = h.http_calls[1]
    assert.are.equal("POST", req.method)
    assert.are.equal("http://relay.test/send", req.url)
    assert.are.equal(2, req.retries)
    assert.are.equal("Bearer test-relay-token", req.headers.Authorization)
    assert.are.equal("application/json", req.headers["Content-Type"])
    assert.are.same({
      event = "status",
      title = "Checkout down",
      text = "Rollback @Grace & co",
      by = "Ada",
      at = "2023-11-14T22:13:20Z",
      when = "2023-11-14 22:13 UTC",
      duration = "",
      thread = "https://acme.slack.com/archives/C9/p1700000000000100",
      message = "Status update: Checkout down - Rollback @Grace & co (Ada, 2023-11-14 22:13 UTC)",
    }, cjson.decode(req.body))
  end)

  it("JSON-escapes quotes and newlines in the webhook body", function()
    local hook = { name = "relay", url = "http://relay.test/send" }
    broadcast.send(config({ webhooks = { hook } }), update({ text = 'he said "go"\nnow \\ ok', title = 'T "1"' }))
    local body = cjson.decode(h.http_calls[1].body)
    assert.are.equal('he said "go"\nnow \\ ok', body.text)
    assert.are.equal('T "1"', body.title)
  end)

  it("reports a webhook that keeps failing and still delivers the others", function()
    h.http_answers["http://bad.test/"] = { status = 500, headers = {}, body = "boom" }
    h.api_errors.C0GONE = "channel_not_found"
    local status = {
      channels = { "C0GONE", "C0STATUS" },
      webhooks = { { name = "bad", url = "http://bad.test/", retries = 3 },
                   { name = "good", url = "http://good.test/" } },
    }
    local results = broadcast.send(config(status), update())
    assert.are.equal(4, #results)
    assert.are.same({ false, true, false, true },
      { results[1].ok, results[2].ok, results[3].ok, results[4].ok })
    assert.are.equal("HTTP 500 after 3 retries", results[3].error)
    assert.matches("channel_not_found", results[1].error)
    assert.are.equal(2, #h.http_calls)
    local summary = broadcast.summary(results, "Status update")
    assert.are.equal("Status update sent to 2 of 4 destinations:\n"
      .. "• <#C0GONE>: failed: channel_not_found: Slack said so\n"
      .. "• <#C0STATUS>: ok\n"
      .. "• webhook bad: failed: HTTP 500 after 3 retries\n"
      .. "• webhook good: ok", summary)
  end)

  it("does not send a webhook whose header names an unset variable, and says which", function()
    local hook = { name = "relay", url = "http://relay.test/", headers = { Authorization = "Bearer ${MISSING_TOKEN}" } }
    local results = broadcast.send(config({ webhooks = { hook } }), update())
    assert.is_false(results[1].ok)
    assert.are.equal("environment variable MISSING_TOKEN is not set (header Authorization)", results[1].error)
    assert.are.equal(0, #h.http_calls)
  end)

  it("labels a webhook without a name by its position, never by its URL", function()
    h.http_answers["http://relay.test/?key=secret"] = { status = 403, headers = {}, body = "" }
    local hooks = { { name = "ok", url = "http://ok.test/" }, { url = "http://relay.test/?key=secret" } }
    local results = broadcast.send(config({ webhooks = hooks }), update())
    assert.are.equal("webhook 2", results[2].name)
    assert.are.equal("HTTP 403", results[2].error)
    assert.not_matches("secret", broadcast.summary(results), 1, true)
  end)

  it("reports a transport error from host.http", function()
    h.http_answers["http://down.test/"] = function()
      return nil, stub.host_error("connect", "connect: refused")
    end
    local results = broadcast.send(config({ webhooks = { { name = "down", url = "http://down.test/" } } }), update())
    assert.is_false(results[1].ok)
    assert.are.equal("connect: refused", results[1].error)
  end)

  it("turns a destination that raises into a failed result, not a failed broadcast", function()
    local hook = { name = "broken", url = "http://relay.test/", body_template = "no.such.json" }
    local results = broadcast.send(config({ channels = { "C0STATUS" }, webhooks = { hook } }), update())
    assert.is_true(results[1].ok)
    assert.is_false(results[2].ok)
    assert.matches("no template 'no.such.json'", results[2].error, 1, true)
  end)

  it("says when nothing is configured", function()
    local results = broadcast.send(config({}), update())
    assert.are.same({}, results)
    assert.matches("no status destinations are configured", broadcast.summary(results))
  end)

  it("takes a title from the thread's parent message", function()
    h.api = function(method, params)
      assert.are.equal("conversations.replies", method)
      assert.are.same({ channel = "C1", ts = "1.2", limit = 1 }, params)
      return { ok = true, messages = { { text = "  *Checkout* &amp; cart 502s\nmore detail" } } }
    end
    assert.are.equal("*Checkout* & cart 502s", broadcast.thread_title("C1", "1.2"))
  end)
end)
