-- Slack message links: links.message(text) finds the first
-- https://<workspace>/archives/<channel>/p<digits>[?thread_ts=…] in text (bare, or as Slack sends
-- it, <url> / <url|label>) and returns { channel, ts, thread_ts | nil, url }. Called by
-- lib/autopsy_scope.lua and lib/render_input.lua; calls nothing.
local links = {}

function links.message(text)
  if type(text) ~= "string" then return nil end
  local url = text:match("[^%s<|>]*/archives/[%w]+/p%d+[^%s|>]*")
  if not url then return nil end
  local channel, digits = url:match("/archives/([%w]+)/p(%d+)")
  if #digits <= 6 then return nil end
  local thread_ts = url:match("[?&]thread_ts=(%d+%.%d+)")
  return { channel = channel, ts = digits:sub(1, -7) .. "." .. digits:sub(-6), thread_ts = thread_ts,
           url = url:gsub("&amp;", "&") }
end

return links
