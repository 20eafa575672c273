-- Specs for scripts/lib/config_schema.lua: unknown keys with "did you mean", types and ranges,
-- shapes (channel ids, URLs, host:port), the environment's place, paths, the templates the config
-- names; and that README.md's reference and the example config agree with the schema.
local schema = require "lib.config_schema"

local function resolve(cfg, ctx)
  ctx = ctx or {}
  ctx.config_dir = ctx.config_dir or "/etc/pmb"
  ctx.cwd = ctx.cwd or "/home/op"
  ctx.getenv = ctx.getenv or function() return nil end
  return schema.resolve(cfg, ctx)
end

local function problems(cfg, ctx)
  local ok, errs = resolve(cfg, ctx)
  assert.is_nil(ok, "expected problems")
  return table.concat(errs, "\n")
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("config_schema", function()
  it("wants a job lease renewed at least twice in its life, and a step margin inside it", function()
    assert.truthy(problems({ database = { lease = 10, renew = 6 } }):find("at most half", 1, true))
    assert.truthy(problems({ database = { lease = 4, step_margin = 4, renew = 1 } }):find("step_margin", 1, true))
    local cfg = assert(resolve({ database = { lease = 3, renew = 1, step_margin = 1 } }))
    assert.are.equal(0.5, cfg.database.ack_timeout)
  end)

  it("fills every default into an empty config", function()
    local cfg = assert(resolve({}))
    assert.are.equal(30, cfg.http.timeout)
    assert.are.equal(16, cfg.http.max_concurrent)
    assert.are.equal(1, cfg.socket.close_timeout)
    assert.are.equal(1048576, cfg.socket.max_frame)
    assert.are.equal(65536, cfg.socket.dedupe_max)
    assert.are.equal("postmortem.md", cfg.report.template)
    assert.are.same({ users = {}, usergroups = {} }, cfg.status.broadcasters)
    assert.are.equal("UTC", cfg.timezone)
    assert.is_nil(cfg.listen)
  end)

  it("keeps what the config says and copies defaults (no shared tables)", function()
    local a = assert(resolve({ http = { timeout = 5 } }))
    local b = assert(resolve({}))
    assert.are.equal(5, a.http.timeout)
    assert.are.equal(10, a.http.connect_timeout)
    a.downloads.allowed_hosts[1] = "evil"
    assert.are.equal("slack.com", b.downloads.allowed_hosts[1])
  end)

  it("names unknown keys, with did you mean, at every level", function()
    local e = problems({ timezon = "UTC", http = { timout = 5 }, status = { webhooks = { { url = "https://x.example/", retry = 1 } } } })
    assert.matches("timezon is not a known key %(did you mean timezone%?%)", e)
    assert.matches("http.timout is not a known key %(did you mean http.timeout%?%)", e)
    assert.matches("status.webhooks%[1%].retry is not a known key %(did you mean status.webhooks%[1%].retries%?%)", e)
    assert.matches("zzz is not a known key\n?", problems({ zzz = 1 }))
    assert.not_matches("did you mean", problems({ zzz = 1 }))
  end)

  it("checks types, ranges and shapes", function()
    assert.matches('listen must be "host:port"', problems({ listen = 9102 }))
    assert.matches("listen must be", problems({ listen = "localhost" }))
    assert.matches("admin_channel must be a channel id", problems({ admin_channel = 123 }))
    assert.matches("log_level must be one of debug, info, warn, error", problems({ log_level = "verbose" }))
    assert.matches("socket.max_frame must be a number", problems({ socket = { max_frame = "1MB" } }))
    assert.matches("http.max_concurrent must be at least 1", problems({ http = { max_concurrent = 0 } }))
    assert.matches("downloads.concurrency must be a whole number", problems({ downloads = { concurrency = 1.5 } }))
    assert.matches("report.upload must be true or false", problems({ report = { upload = "yes" } }))
    assert.matches("status.channels%[2%] must be a channel id", problems({ status = { channels = { "C01", "#x" } } }))
    assert.matches("status.channels must be a list", problems({ status = { channels = "C01" } }))
    assert.matches("http must be a table", problems({ http = 5 }))
    assert.matches("url must be an http", problems({ status = { webhooks = { { url = "ftp://x" } } } }))
    assert.matches("url is required", problems({ status = { webhooks = { { name = "x" } } } }))
    assert.matches("must return a table", table.concat(select(2, resolve(42)), ""))
  end)

  it("checks zones with the host's check", function()
    local ctx = { valid_zone = function(z) return z == "UTC" or z == "Europe/Berlin" end }
    assert.matches("timezone must be a known time zone", problems({ timezone = "Europe/Berln" }, ctx))
    assert(resolve({ timezone = "Europe/Berlin" }, { valid_zone = ctx.valid_zone }))
  end)

  it("environment: TZ only without a config timezone; data dir and listen from the environment win", function()
    local env = { TZ = ":Asia/Tokyo", POSTMORTEMBOT_DATA_DIR = "reports", POSTMORTEMBOT_LISTEN = "127.0.0.1:9" }
    local getenv = function(k) return env[k] end
    local cfg = assert(resolve({ data_dir = "/srv/x", listen = "0.0.0.0:1" }, { getenv = getenv }))
    assert.are.equal("Asia/Tokyo", cfg.timezone)
    assert.are.equal("/home/op/reports", cfg.data_dir)   -- relative to where the bot started
    assert.are.equal("127.0.0.1:9", cfg.listen)
    cfg = assert(resolve({ timezone = "UTC" }, { getenv = getenv }))
    assert.are.equal("UTC", cfg.timezone)
    env.POSTMORTEMBOT_LISTEN = "nonsense"
    assert.matches("listen %(from POSTMORTEMBOT_LISTEN%) must be", problems({}, { getenv = getenv }))
  end)

  it("paths: relative to the config file; data_dir's default under the current directory", function()
    local cfg = assert(resolve({ scripts_dir = "../scripts", templates_dir = "/opt/t" }))
    assert.are.equal("/etc/pmb/../scripts", cfg.scripts_dir)
    assert.are.equal("/opt/t", cfg.templates_dir)
    assert.are.equal("/home/op/var", cfg.data_dir)
    assert.are.equal("/etc/pmb/data", assert(resolve({ data_dir = "data" })).data_dir)
  end)

  it("checks that the templates the config names exist", function()
    local cfg = assert(resolve({ report = { template = "postmortem", templates_by_channel = { C01 = "short.md" } },
                                 status = { webhooks = { { url = "https://x.example/", body_template = "hook.json" } } } }))
    local have = { ["postmortem.md"] = "", ["statusupdate.slack"] = "", ["incident.start.slack"] = "",
                   ["statusupdate.webhook.json"] = "" }
    local e = table.concat(schema.check_templates(cfg, have), "\n")
    assert.matches('report.template names the template "postmortem"', e)
    assert.matches('report.templates_by_channel.C01 names the template "short.md"', e)
    assert.matches('status.webhooks%[1%].body_template names the template "hook.json"', e)
    assert.are.same({}, schema.check_templates(assert(resolve({})), have))
  end)

  it("README.md's config reference is the one generated from the schema (make readme)", function()
    local readme = read("README.md")
    local section = readme:match("<!%-%- config%-reference:[^\n]*%-%->\n\n(.-)\n<!%-%- end of config%-reference %-%->")
    assert.is_not_nil(section, "README.md lost its config-reference markers")
    assert.are.equal(schema.reference(), section, "README.md's config reference is out of date: run make readme")
  end)

  it("the example config passes and mentions every key", function()
    local text = read("config/postmortembot.lua")
    local cfg = assert(load(text, "=example", "t", {}))()
    local ok, errs = resolve(cfg)
    assert.is_not_nil(ok, errs and table.concat(errs, "\n"))
    for _, name in ipairs(schema.key_names()) do
      local last = name:match("([%w_]+)$")
      assert.is_truthy(text:find("%f[%w_]" .. last .. "%f[^%w_]"), "config/postmortembot.lua does not mention " .. name)
    end
  end)
end)
