-- `incident resolve [text]` in an incident thread: records the resolution (time, who, text, ts of
-- this message) in the incident record, broadcasts it like a status update, and answers in the
-- thread with the duration since the start and where the news went. A thread without a record
-- gets one built from the thread (start = the parent message). The report's resolution figure
-- reads the record (lib/incidents.lua). Calls lib/permissions, lib/broadcast, lib/incidents, host.
local host = require "host"
local permissions = require "lib.permissions"
local broadcast = require "lib.broadcast"
local incidents = require "lib.incidents"
local templates = require "lib.templates"
local slackfmt = require "lib.slackfmt"
local timefmt = require "lib.timefmt"

-- The broadcast text when none is given.
local DEFAULT_TEXT = "The incident is resolved."

local function run(ctx, args)
  local text_raw = slackfmt.trim(args)
  if ctx.thread_ts == ctx.ts then
    ctx.reply("`incident resolve` works inside the incident's thread: type it there as a reply.")
    return
  end
  if not permissions.allow(ctx, "resolve incidents") then return end
  local config = ctx.config or {}
  local zone = config.timezone or "UTC"
  local function when(epoch)
    return host.format_time(epoch, zone, "%Y-%m-%d %H:%M %Z")
  end

  local record = incidents.load(ctx.channel, ctx.thread_ts)
  if record and record.resolved_at then
    ctx.reply("This incident was already resolved at " .. when(record.resolved_at) .. " by <@"
      .. tostring(record.resolved_by) .. ">. Nothing was sent again.")
    return
  end
  if not record then
    -- Resolving a thread nobody opened with `incident start`: the thread itself is the incident.
    record = incidents.new(ctx.channel, ctx.thread_ts, {
      title = broadcast.thread_title(ctx.channel, ctx.thread_ts) or "Incident",
      started_at = tonumber(ctx.thread_ts),
    })
    record.created_by_resolve = true
  end

  local at = host.now()
  local started_at = tonumber(record.started_at) or tonumber(record.thread_ts) or at
  local duration = timefmt.duration(at - started_at)  -- the report says durations the same way
  local names = broadcast.user_names(slackfmt.mentioned_users(text_raw))
  record.resolved_at = at
  record.resolved_by = ctx.user
  record.resolution_text = slackfmt.to_plain(text_raw, names)
  record.resolution_ts = ctx.ts
  record.duration_seconds = math.floor(at - started_at)

  local results, view = broadcast.send(config, {
    kind = "resolved",
    title = record.title,
    text = text_raw ~= "" and text_raw or DEFAULT_TEXT,
    user = ctx.user,
    at = at,
    thread_url = broadcast.thread_url(ctx.bot, ctx.channel, ctx.thread_ts),
    duration = duration,
    record = record,
  })
  if #results > 0 then
    incidents.add_update(record, { ts = ctx.ts, user = ctx.user, text = view.text, at = at })
  end
  local saved, err = incidents.save_or_log(record, ctx.log)

  -- the thread reply relays the typed text too: no live mentions in it either (status.allow_mentions)
  local allow_mentions = type(config.status) == "table" and config.status.allow_mentions == true
  local lines = {}
  lines[1] = slackfmt.trim(templates.render("incident.resolve.slack", {
    title = slackfmt.unbold(record.title),
    text_slack = allow_mentions and text_raw or broadcast.defuse_slack(text_raw, names),
    has_text = text_raw ~= "",
    user_mention = "<@" .. ctx.user .. ">",
    when = when(at),
    started_when = when(started_at),
    duration = duration,
  }))
  if not saved then
    lines[#lines + 1] = "Warning: the resolution could not be recorded (" .. slackfmt.escape(tostring(err))
      .. "); the postmortem will not show it as a figure."
  end
  lines[#lines + 1] = broadcast.summary(results, "Resolution")
  ctx.reply(table.concat(lines, "\n"))
end

return {
  name = "incident resolve",
  help = "incident resolve [text] — mark this outage resolved, broadcast it, give the duration",
  run = run,
}
