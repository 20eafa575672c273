-- Where an outage update goes: the config's status.channels and status.webhooks (each one a `slack`
-- or `webhook` destination) and status.destinations, each sent by scripts/destinations/<kind>.lua,
-- all at once (host.all), each on its own; one result per destination for the summary reply.
-- Called by lib/broadcast.lua (send, label) and init.lua (check, when scripts load); calls the
-- destination scripts, lib/config_schema.lua (their schemas) and host. A new kind is a new file.
local host = require "host"
local jobs = require "lib.jobs"
local schema = require "lib.config_schema"

local destinations = {}

-- The three moments a destination hears about: the view's kind says which.
local MOMENTS = { started = "started", status = "update", resolved = "resolved" }

-- The script of one kind, or nil and why. Kinds are plain names, so nothing outside
-- scripts/destinations/ can be required through one.
function destinations.script(kind)
  if type(kind) ~= "string" or not kind:match("^[%a][%w_]*$") then
    return nil, "kind " .. string.format("%q", tostring(kind)) .. " is not a destination name"
  end
  local ok, mod = pcall(require, "destinations." .. kind)
  if not ok then
    if tostring(mod):find("module 'destinations." .. kind .. "' not found", 1, true) then
      return nil, "no destination script scripts/destinations/" .. kind .. ".lua"
    end
    error(mod, 0)
  end
  if type(mod) ~= "table" or type(mod.send) ~= "function" or mod.name ~= kind then
    return nil, "scripts/destinations/" .. kind .. ".lua must return { name = \"" .. kind
      .. "\", send = function(ctx, update) … }"
  end
  return mod
end

-- Every configured destination in order: the channels, the webhooks, then status.destinations.
-- Each is { kind, name, conf }: name is what replies and logs call it (never a URL).
function destinations.list(config)
  local status = (config or {}).status or {}
  local out = {}
  for _, channel in ipairs(type(status.channels) == "table" and status.channels or {}) do
    out[#out + 1] = { kind = "slack", name = channel,
      conf = { kind = "slack", channel = channel, template = status.template, retries = 0 } }
  end
  for index, hook in ipairs(type(status.webhooks) == "table" and status.webhooks or {}) do
    local conf = {}
    for k, v in pairs(hook) do conf[k] = v end
    conf.kind = "webhook"
    conf.retries = hook.retries or 0
    out[#out + 1] = { kind = "webhook", name = hook.name or ("webhook " .. index), conf = conf }
  end
  for index, conf in ipairs(type(status.destinations) == "table" and status.destinations or {}) do
    local kind = type(conf) == "table" and conf.kind or "?"
    out[#out + 1] = { kind = kind, name = conf.name or (tostring(kind) .. " " .. index), conf = conf }
  end
  return out
end

-- Problems with status.destinations that only the scripts can see: a kind without a script, and
-- the keys of a kind the schema does not know, checked against its script's `schema`.
function destinations.check(config)
  local problems = {}
  local status = (config or {}).status or {}
  for i, conf in ipairs(type(status.destinations) == "table" and status.destinations or {}) do
    local path = "status.destinations[" .. i .. "]"
    local mod, err = destinations.script(conf.kind)
    if not mod then
      problems[#problems + 1] = path .. ": " .. err
    elseif not schema.destination_fields(conf.kind) and type(mod.schema) == "table" then
      for _, e in ipairs(schema.check(conf, mod.schema, path .. ".")) do
        problems[#problems + 1] = e
      end
    end
  end
  return problems
end

-- "https://hooks.example.com/…": what a log or reply may say of a URL whose path or query may
-- carry a secret (Slack and Discord webhooks keep theirs in the path, Teams in the query).
function destinations.redact_url(url)
  local head = tostring(url):match("^(%a[%w+.-]*://[^/?#]*)")
  if not head then return "(a URL)" end
  head = head:gsub("^(%a[%w+.-]*://)[^@]*@", "%1")
  return head .. "/…"
end

-- text with every secret in it replaced by "[redacted]" (plain find, no patterns).
function destinations.scrub(text, secrets)
  text = tostring(text)
  for _, secret in ipairs(secrets or {}) do
    if type(secret) == "string" and #secret >= 4 then
      local out, from = {}, 1
      while true do
        local a, b = text:find(secret, from, true)
        if not a then break end
        out[#out + 1] = text:sub(from, a - 1) .. "[redacted]"
        from = b + 1
      end
      out[#out + 1] = text:sub(from)
      text = table.concat(out)
    end
  end
  return text
end

-- The ctx a destination's send gets. Secrets it reads through ctx.secret are remembered, so that
-- nothing the destination returns or logs can carry them.
local function make_ctx(config, dest, record, idempotency_key)
  local ctx = { config = config, dest = dest.conf, name = dest.name, record = record, secrets = {} }
  function ctx.secret(env_name)
    local value = type(env_name) == "string" and host.getenv(env_name) or nil
    if value and value ~= "" then
      ctx.secrets[#ctx.secrets + 1] = value
      return value
    end
    return nil
  end
  -- ctx.secret of the environment variable that the destination's setting `field` names (e.g.
  -- "token_env"), or nil and the error every destination words the same way.
  function ctx.required_secret(field)
    local env_name = ctx.dest[field]
    local value = ctx.secret(env_name)
    if not value then
      return nil, "environment variable " .. tostring(env_name) .. " is not set (" .. field .. ")"
    end
    return value
  end
  function ctx.log(level, msg, fields)
    local f = { kind = dest.kind, destination = dest.name }
    for k, v in pairs(fields or {}) do f[k] = destinations.scrub(v, ctx.secrets) end
    host.log(level, msg, f)
  end
  -- host.http with the destination's retries and timeout; returns the answer or nil, err.
  function ctx.http(req)
    req.retries = req.retries or tonumber(dest.conf.retries) or 2
    req.timeout = req.timeout or tonumber(dest.conf.timeout) or 15
    -- an internal service (loopback, a private range) must be allow-listed per destination
    if req.allow_private == nil and dest.conf.allow_private == true then req.allow_private = true end
    -- database mode: the same key on a send a takeover repeats, so a receiver can drop the repeat
    if idempotency_key then
      req.headers = req.headers or {}
      req.headers["Idempotency-Key"] = req.headers["Idempotency-Key"] or idempotency_key
    end
    return host.http(req)
  end
  return ctx
end

-- "HTTP 503 after 2 retries", or "HTTP 400".
function destinations.http_error(res, retries)
  local e = "HTTP " .. tostring(res.status)
  if res.status >= 500 and (retries or 0) > 0 then
    e = e .. " after " .. retries .. (retries == 1 and " retry" or " retries")
  end
  return e
end

local function send_one(config, dest, view, record, idempotency_key)
  local result = { kind = dest.kind, name = dest.name, ok = false }
  local mod, err = destinations.script(dest.kind)
  if not mod then
    result.error = err
    return result
  end
  local ctx = make_ctx(config, dest, record, idempotency_key)
  local ok, res, detail = pcall(mod.send, ctx, view)
  if not ok then
    result.error = "the script failed: " .. tostring(res)
  elseif res == true then
    result.ok = true
    if type(detail) == "table" then
      for k, v in pairs(detail) do result[k] = v end
    else
      result.detail = detail
    end
  else
    result.error = tostring(detail or res or "unknown error")
  end
  if result.error then result.error = destinations.scrub(result.error, ctx.secrets) end
  if type(result.detail) == "string" then
    result.detail = destinations.scrub(result.detail, ctx.secrets)
  end
  return result
end

-- Send `view` (lib/broadcast.lua's view, with `moment` added: started, update or resolved) to
-- every destination. `record` is the thread's incident record or nil; a destination may note in
-- it what it must find again (the status page's incident id) and the caller saves it.
-- Returns { { kind, name, ok, error | detail } } in config order.
function destinations.send(config, view, record)
  view.moment = MOMENTS[view.kind] or "update"
  local list = destinations.list(config)
  if #list == 0 then return {} end
  local tasks = {}
  for i, dest in ipairs(list) do
    -- database mode: each destination is a job step (lib/jobs.lua), sent once per request
    local step = "status:" .. view.moment .. ":" .. tostring(dest.kind) .. ":" .. tostring(dest.name or i)
    tasks[i] = function()
      local job = jobs.current()
      local key = job and (job.id .. "/" .. step) or nil
      local sent, failed = jobs.step(step, function()
        local r = send_one(config, dest, view, record, key)
        if r.ok then return r end
        return nil, r
      end)
      return sent or failed
    end
  end
  local results = {}
  for i, r in ipairs(host.all(tasks)) do
    if r.ok and type(r.value) == "table" then
      results[i] = r.value
    else
      results[i] = { kind = list[i].kind, name = list[i].name, ok = false, error = tostring(r.error) }
    end
  end
  for _, r in ipairs(results) do
    host.log(r.ok and "info" or "warn", "broadcast destination",
      { kind = r.kind == "slack" and "channel" or r.kind, destination = r.name,
        ok = tostring(r.ok), error = r.error })
  end
  return results
end

-- How the summary reply names a result: a channel as a link, the rest as "kind name".
function destinations.label(result, escape)
  if result.kind == "slack" or result.kind == "channel" then
    return "<#" .. result.name .. ">"
  end
  if result.kind == "webhook" then
    return "webhook " .. escape(result.name)
  end
  if result.name == result.kind or result.name:find("^" .. result.kind .. " %d+$") then
    return escape(result.name)
  end
  return result.kind .. " " .. escape(result.name)
end

return destinations
