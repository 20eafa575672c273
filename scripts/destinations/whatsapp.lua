-- Destination `whatsapp`: the update to each phone number in `to` through Meta's WhatsApp Cloud
-- API (POST <api_url><phone_number_id>/messages, a bearer token from the environment). Outside
-- the 24-hour window WhatsApp takes only approved template messages, so by default the update
-- fills the body parameters of the configured template ({{1}}, {{2}}, … from `parameters`);
-- `free_form = true` sends plain text instead. Meta's error codes become plain replies (ERRORS).
local cjson = require "cjson"

-- Meta's error codes (Cloud API "Error codes" reference) and what the reply says of them.
local ERRORS = {
  [132001] = "template %s (%s) does not exist or is not approved in that language",
  [132000] = "template %s (%s) takes a different number of parameters",
  [132015] = "template %s (%s) is paused (low quality)",
  [132016] = "template %s (%s) is disabled",
  [131026] = "recipient not reachable (not on WhatsApp, or an old app or unaccepted terms)",
  [131047] = "more than 24 hours since the recipient last wrote: free-form text is refused (use a template)",
  [131030] = "recipient is not in the test number's allowed list",
  [130429] = "rate limited by WhatsApp (throughput); try again later",
  [131056] = "rate limited by WhatsApp (too many messages to this number); try again later",
  [80007] = "rate limited by WhatsApp (account); try again later",
  [190] = "the access token has expired or is not valid",
}

-- A body parameter: WhatsApp refuses new lines, tabs and runs of more than 4 spaces in one.
local function param_text(v)
  local s = tostring(v or ""):gsub("[\r\n\t]+", " "):gsub("  +", " "):gsub("^ ", ""):gsub(" $", "")
  if s == "" then s = "-" end
  return s
end

local function free_text(update)
  local s = update.headline .. (update.has_title and (": " .. update.title) or "")
  if update.has_text then s = s .. "\n" .. update.text end
  s = s .. "\n" .. update.user_name .. ", " .. update.when
  if update.thread_url ~= "" then s = s .. "\n" .. update.thread_url end
  return s
end

local function message_for(conf, to, update)
  local body = { messaging_product = "whatsapp", recipient_type = "individual", to = to }
  if conf.free_form then
    body.type = "text"
    body.text = { preview_url = false, body = free_text(update) }
    return body
  end
  local params = {}
  for i, field in ipairs(conf.parameters or { "headline", "title", "text", "user_name", "when" }) do
    params[i] = { type = "text", text = param_text(update[field]) }
  end
  body.type = "template"
  body.template = {
    name = conf.template,
    language = { code = conf.language or "en_US" },
    components = { { type = "body", parameters = params } },
  }
  return body
end

-- "…5678": enough of a number to tell recipients apart in a reply.
local function masked(number)
  local digits = tostring(number):gsub("%D", "")
  return "…" .. digits:sub(-4)
end

local function explain(conf, res)
  local ok, decoded = pcall(cjson.decode, res.body or "")
  local e = ok and type(decoded) == "table" and type(decoded.error) == "table" and decoded.error
  if not e then return "HTTP " .. tostring(res.status) end
  local code = math.tointeger(tonumber(e.code))
  local text = ERRORS[code]
  if text then
    text = text:format(conf.template or "-", conf.language or "en_US")
  else
    text = tostring(e.message or "error")
  end
  return text .. " (WhatsApp " .. tostring(code or e.code) .. ")"
end

local function send(ctx, update)
  local conf = ctx.dest
  local token, secret_err = ctx.required_secret("token_env")
  if not token then return nil, secret_err end
  if type(conf.to) ~= "table" or #conf.to == 0 then
    return nil, "no recipients (to)"
  end
  local base = conf.api_url or "https://graph.facebook.com/v21.0/"
  if base:sub(-1) ~= "/" then base = base .. "/" end
  local url = base .. conf.phone_number_id .. "/messages"
  local failures = {}
  for _, to in ipairs(conf.to) do
    local res, err = ctx.http({
      method = "POST", url = url, body = cjson.encode(message_for(conf, to, update)),
      headers = { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" },
    })
    local why
    if not res then
      why = tostring(err)
    elseif res.status < 200 or res.status > 299 then
      why = explain(conf, res)
    end
    if why then failures[#failures + 1] = masked(to) .. ": " .. why end
  end
  if #failures > 0 then
    return nil, string.format("%d of %d recipients failed: %s", #failures, #conf.to,
      table.concat(failures, "; "))
  end
  return true, { detail = #conf.to .. (#conf.to == 1 and " recipient" or " recipients") }
end

return {
  name = "whatsapp",
  send = send,
}
