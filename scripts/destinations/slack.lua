-- Destination `slack`: posts the update in one channel (chat.postMessage; the core retries 5xx
-- and waits out rate limits). Each of status.channels is one of these; so is an entry
-- { kind = "slack", channel = "C…" } of status.destinations. To change the message, edit
-- templates/statusupdate.slack.mustache (or name another with `template`).
local host = require "host"
local templates = require "lib.templates"

local function send(ctx, update)
  local template = ctx.dest.template or "statusupdate.slack"
  local ok, text = pcall(templates.render, template, update)
  if not ok then
    return nil, "template " .. template .. ": " .. tostring(text)
  end
  text = text:gsub("%s+$", "")
  local res, err = host.api("chat.postMessage", {
    channel = ctx.dest.channel, text = text, unfurl_links = false, unfurl_media = false,
  })
  if not res then
    return nil, tostring(err)
  end
  return true, { ts = res.ts }
end

return {
  name = "slack",
  send = send,
}
