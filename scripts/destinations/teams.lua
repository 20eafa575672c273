-- Destination `teams`: the update as an Adaptive Card (title, text, who, when, a button to the
-- incident thread) posted to a Microsoft Teams Workflows webhook ("When a Teams webhook request is
-- received"). Its URL carries a signature, so it comes from the environment (`url_env`), never the
-- config file, and replies and logs never show it. To change the card, edit card_of below.
local cjson = require "cjson"
local destinations = require "lib.destinations"

local function card_of(update)
  local body = {
    { type = "TextBlock", text = update.headline .. (update.has_title and (": " .. update.title) or ""),
      weight = "Bolder", size = "Medium", wrap = true,
      color = update.moment == "resolved" and "Good" or "Attention" },
  }
  if update.has_text then
    body[#body + 1] = { type = "TextBlock", text = update.text, wrap = true }
  end
  local facts = { { title = "By", value = update.user_name }, { title = "When", value = update.when } }
  if update.duration then facts[#facts + 1] = { title = "Duration", value = update.duration } end
  body[#body + 1] = { type = "FactSet", facts = facts }
  local card = {
    ["$schema"] = "http://adaptivecards.io/schemas/adaptive-card.json",
    type = "AdaptiveCard", version = "1.4", body = body,
  }
  if update.thread_url ~= "" then
    card.actions = { { type = "Action.OpenUrl", title = "Open the incident thread", url = update.thread_url } }
  end
  return card
end

local function send(ctx, update)
  local url, secret_err = ctx.required_secret("url_env")
  if not url then return nil, secret_err end
  local payload = {
    type = "message",
    attachments = { { contentType = "application/vnd.microsoft.card.adaptive", contentUrl = cjson.null,
      content = card_of(update) } },
  }
  local res, err = ctx.http({
    method = "POST", url = url, body = cjson.encode(payload),
    headers = { ["Content-Type"] = "application/json" },
  })
  if not res then return nil, tostring(err) end
  if res.status < 200 or res.status > 299 then
    return nil, destinations.http_error(res, tonumber(ctx.dest.retries) or 0)
  end
  return true
end

return {
  name = "teams",
  send = send,
}
