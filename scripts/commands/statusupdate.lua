-- `statusupdate <text>`: sends an outage update to every status channel and webhook in the config
-- (status.channels, status.webhooks), then answers in the thread with ONE reply listing each
-- destination with ok or the error, and records the update in the thread's incident record.
-- To change the message, edit templates/statusupdate.*.mustache; to change where it goes, the
-- config. Calls lib/permissions.lua, lib/broadcast.lua, lib/incidents.lua, lib/slackfmt.lua, host.
local host = require "host"
local permissions = require "lib.permissions"
local broadcast = require "lib.broadcast"
local incidents = require "lib.incidents"
local slackfmt = require "lib.slackfmt"

local statusupdate = {}

-- Quotes around the whole text are dropped: `statusupdate "We are back"` sends We are back.
-- Curly quotes count too (phones and macOS type them).
local QUOTE_PAIRS = { { '"', '"' }, { "'", "'" }, { "“", "”" }, { "‘", "’" }, { "„", "“" } }

function statusupdate.strip_quotes(text)
  text = slackfmt.trim(text)
  for _, pair in ipairs(QUOTE_PAIRS) do
    local open, close = pair[1], pair[2]
    if #text >= #open + #close and text:sub(1, #open) == open and text:sub(-#close) == close then
      local inner = text:sub(#open + 1, #text - #close)
      -- "a" and "b" is not one quoted text: leave it alone
      if not inner:find(close, 1, true) then
        return slackfmt.trim(inner)
      end
    end
  end
  return text
end

function statusupdate.run(ctx, args)
  local text = statusupdate.strip_quotes(args)
  if text == "" then
    ctx.reply("Usage: `statusupdate &lt;text&gt;`, e.g. `statusupdate Payments are failing for 5% of users; rollback under way`.")
    return
  end
  if not permissions.allow(ctx, "send status updates") then return end

  local record = incidents.load(ctx.channel, ctx.thread_ts)
  local in_thread = ctx.thread_ts ~= ctx.ts
  -- The title: the incident's, else the first line of the thread's parent, else none (typed
  -- outside a thread, the "parent" is this very command).
  local title = record and record.title
    or (in_thread and broadcast.thread_title(ctx.channel, ctx.thread_ts))
    or ""
  local at = host.now()
  local results, view = broadcast.send(ctx.config, {
    kind = "status",
    title = title,
    text = text,
    user = ctx.user,
    at = at,
    thread_url = in_thread and broadcast.thread_url(ctx.bot, ctx.channel, ctx.thread_ts) or nil,
    record = record,  -- a status page destination keeps its incident id in it
  })

  if record then
    incidents.add_update(record, { ts = ctx.ts, user = ctx.user, text = view.text, at = at })
    incidents.save_or_log(record, ctx.log)
  end
  ctx.reply(broadcast.summary(results, "Status update"))
end

return {
  name = "statusupdate",
  help = "statusupdate <text> — post an update to the status channel(s) and webhooks",
  run = statusupdate.run,
  -- exposed for the specs
  strip_quotes = statusupdate.strip_quotes,
}
