-- Specs for scripts/lib/destinations.lua, scripts/lib/mail_message.lua and the destination
-- scripts with a recording fake host: redaction, the message's headers and parts, header
-- injection, Statuspage's create-then-update with the id in the record, WhatsApp parameters.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local stub = require "helpers.host_stub"

local MODULES = { "lib.destinations", "lib.mail_message", "destinations.statuspage", "destinations.whatsapp",
                  "destinations.teams", "destinations.email", "lib.config_schema" }

local function fake_host()
  local h = { http_calls = {}, logs = {}, env = {}, answers = {} }
  function h.http(req)
    h.http_calls[#h.http_calls + 1] = req
    local a = table.remove(h.answers, 1)
    return a or { status = 200, headers = {}, body = "{}" }
  end
  h.all = stub.run_all
  function h.getenv(name) return h.env[name] end
  function h.log(level, msg, fields) h.logs[#h.logs + 1] = { level = level, msg = msg, fields = fields } end
  h.base64 = stub.base64
  function h.sha256(s) local n = 0 for i = 1, #s do n = (n * 31 + s:byte(i)) % 2^52 end return string.format("%064x", math.floor(n)) end
  return h
end

local function view(fields)
  local v = { kind = "status", headline = "Status update", title = "Checkout down", has_title = true,
              text = "Identified: bad deploy, partial outage", has_text = true, user_name = "Ada",
              when = "2023-11-14 22:13 UTC", at = 1700000000, thread_url = "https://acme.slack.com/archives/C1/p1" }
  for k, x in pairs(fields or {}) do v[k] = x end
  return v
end

describe("destinations", function()
  local h, destinations, mail

  before_each(function()
    h = fake_host()
    package.loaded.host = h
    for _, m in ipairs(MODULES) do package.loaded[m] = nil end
    destinations = require "lib.destinations"
    mail = require "lib.mail_message"
  end)

  after_each(function() package.loaded.host = nil end)

  it("redacts URLs down to scheme and host, and scrubs secrets out of text", function()
    assert.are.equal("https://hooks.slack.com/…", destinations.redact_url("https://hooks.slack.com/services/T1/B2/s3cr3t"))
    assert.are.equal("https://x.test/…", destinations.redact_url("https://user:pw@x.test/a?sig=1"))
    assert.are.equal("bad [redacted] here [redacted]", destinations.scrub("bad s3cr3t here s3cr3t", { "s3cr3t" }))
  end)

  it("builds a multipart/alternative mail whose headers cannot be injected", function()
    local text, id = mail.build({ from = "Bot <bot@example.com>", to = { "a@example.com" }, cc = { "b@example.com" },
      subject = "Down\r\nBcc: evil@example.com", text = "line 1\nline 2", html = "<p>x</p>", at = 1700000000, id_seed = "s" })
    assert.matches("^<%x+@example%.com>$", id)
    assert.truthy(text:find("Subject: Down Bcc: evil@example.com\r\n", 1, true))
    assert.falsy(text:find("\r\nBcc:", 1, true))
    assert.truthy(text:find("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n", 1, true))
    assert.truthy(text:find("Cc: b@example.com\r\n", 1, true))
    assert.truthy(text:find("Content-Type: multipart/alternative;", 1, true))
    assert.truthy(text:find("bGluZSAxDQpsaW5lIDI=", 1, true)) -- "line 1\r\nline 2"
    assert.are.equal("=?UTF-8?B?U3TDtnJ1bmc=?=", mail.encode_subject("Störung"))
  end)

  it("statuspage creates an incident, keeps its id in the record, then updates the same one", function()
    h.env.SP_KEY = "key123456"
    local record = { channel = "C1", thread_ts = "1.2" }
    local config = { status = { destinations = { { kind = "statuspage", name = "page", page_id = "pg1",
      api_key_env = "SP_KEY", components = { c1 = "major_outage" }, retries = 1 } } } }
    h.answers = { { status = 201, headers = {}, body = '{"id":"inc42"}' } }
    local results = destinations.send(config, view({ kind = "started", text = "We are investigating." }), record)
    assert.is_true(results[1].ok, results[1].error)
    assert.are.same({ pg1 = "inc42" }, record.statuspage)
    local first = h.http_calls[1]
    assert.are.equal("POST", first.method)
    assert.are.equal("https://api.statuspage.io/v1/pages/pg1/incidents", first.url)
    assert.are.equal("OAuth key123456", first.headers.Authorization)
    local body = cjson.decode(first.body).incident
    assert.are.equal("investigating", body.status)
    assert.are.same({ c1 = "major_outage" }, body.components)

    results = destinations.send(config, view(), record)
    assert.is_true(results[1].ok)
    local second = h.http_calls[2]
    assert.are.equal("PATCH", second.method)
    assert.are.equal("https://api.statuspage.io/v1/pages/pg1/incidents/inc42", second.url)
    body = cjson.decode(second.body).incident
    assert.are.equal("identified", body.status)
    assert.are.same({ c1 = "partial_outage" }, body.components)

    h.answers = { { status = 401, headers = {}, body = '{"error":"Could not authenticate"}' } }
    results = destinations.send(config, view({ kind = "resolved" }), record)
    assert.are.equal("the API key was refused (HTTP 401)", results[1].error)
  end)

  it("whatsapp sends one template per recipient with parameters WhatsApp accepts", function()
    h.env.WA = "tok-abcdef"
    local config = { status = { destinations = { { kind = "whatsapp", name = "g", phone_number_id = "99",
      to = { "+4911", "+4922" }, token_env = "WA", template = "t", language = "de",
      parameters = { "title", "text" } } } } }
    local results = destinations.send(config, view({ text = "a\nb\tc      d" }), nil)
    assert.is_true(results[1].ok)
    assert.are.equal(2, #h.http_calls)
    local body = cjson.decode(h.http_calls[2].body)
    assert.are.equal("+4922", body.to)
    assert.are.equal("https://graph.facebook.com/v21.0/99/messages", h.http_calls[2].url)
    assert.are.same({ { type = "text", text = "Checkout down" }, { type = "text", text = "a b c d" } },
      body.template.components[1].parameters)
  end)

  it("names a kind without a script and never lets a secret into the result", function()
    h.env.TEAMS = "https://x.test/hook?sig=supersecret"
    h.answers = { function() end }
    h.http = function() return nil, setmetatable({ code = "connect" },
      { __tostring = function() return "connect: could not reach https://x.test/hook?sig=supersecret" end }) end
    local config = { status = { destinations = { { kind = "teams", name = "t", url_env = "TEAMS", retries = 0 },
      { kind = "pager" } } } }
    local results = destinations.send(config, view(), nil)
    assert.are.equal("connect: could not reach [redacted]", results[1].error)
    assert.are.equal("no destination script scripts/destinations/pager.lua", results[2].error)
    assert.are.same({ "status.destinations[2]: no destination script scripts/destinations/pager.lua" },
      destinations.check(config))
  end)
end)
