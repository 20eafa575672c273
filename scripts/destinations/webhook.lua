-- Destination `webhook`: one HTTP request per update to any URL, its body rendered from a template
-- (default templates/statusupdate.webhook.json.mustache), headers with ${NAME} taken from the
-- environment. Each of status.webhooks is one of these. The URL may come from the environment
-- (`url_env`) when it carries a secret; replies and logs name the webhook, never its URL.
local templates = require "lib.templates"
local broadcast = require "lib.broadcast"

local function send(ctx, update)
  local hook = ctx.dest
  local url = hook.url
  if hook.url_env then
    local secret_err
    url, secret_err = ctx.required_secret("url_env")
    if not url then return nil, secret_err end
  end
  if type(url) ~= "string" or url == "" then
    return nil, "no url configured"
  end
  local template = hook.body_template or "statusupdate.webhook.json"
  local ok, body = pcall(templates.render, template, update)
  if not ok then
    return nil, "template " .. template .. ": " .. tostring(body)
  end
  local headers = {}
  local has_type = false
  for key, value in pairs(hook.headers or {}) do
    local expanded, missing = broadcast.expand_env(value, ctx.secret)
    if not expanded then
      return nil, "environment variable " .. missing .. " is not set (header " .. key .. ")"
    end
    headers[key] = expanded
    if key:lower() == "content-type" then has_type = true end
  end
  if not has_type and templates.kind(template) == "json" then
    headers["Content-Type"] = "application/json"
  end
  local retries = tonumber(hook.retries) or 0
  local res, err = ctx.http({
    method = hook.method or "POST", url = url, headers = headers, body = body, retries = retries,
    timeout = tonumber(hook.timeout) or 10,
  })
  if not res then
    return nil, tostring(err)
  end
  if res.status < 200 or res.status > 299 then
    local e = "HTTP " .. tostring(res.status)
    if retries > 0 then
      e = e .. " after " .. retries .. (retries == 1 and " retry" or " retries")
    end
    return nil, e
  end
  return true, { status = res.status }
end

return {
  name = "webhook",
  send = send,
}
