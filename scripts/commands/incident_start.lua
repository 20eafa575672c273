-- `incident start <title>`: opens an outage. Posts the incident's root message in incident.channel
-- (templates/incident.start.slack.mustache: title, who, when, runbook, checklist), replies in its
-- thread with how to use the bot there, records the incident (lib/incidents.lua), optionally sends
-- a first status update (incident.first_status_update), and answers where it was typed with a link
-- to the new thread. Calls lib/permissions, lib/broadcast, lib/incidents, lib/templates, host.
local host = require "host"
local permissions = require "lib.permissions"
local broadcast = require "lib.broadcast"
local incidents = require "lib.incidents"
local templates = require "lib.templates"
local slackfmt = require "lib.slackfmt"

-- The text of the first status update; the headline ("Incident started") and title come from
-- the template.
local FIRST_UPDATE_TEXT = "We are investigating."

local function run(ctx, args)
  local title_raw = slackfmt.trim(args)
  if title_raw == "" then
    ctx.reply("Usage: `incident start &lt;title&gt;`, e.g. `incident start Checkout returns 502 for EU users`.")
    return
  end
  if not permissions.allow(ctx, "start incidents") then return end

  local config = ctx.config or {}
  local incident_config = config.incident or {}
  -- Without a configured incident channel the incident lives where it was started.
  local channel = incident_config.channel or ctx.channel
  local zone = config.timezone or "UTC"
  local at = host.now()
  local bot = ctx.bot or host.bot()
  local bot_mention = (bot and bot.user_id) and ("<@" .. bot.user_id .. ">") or "@postmortembot"
  local title = slackfmt.to_plain(title_raw, broadcast.user_names(slackfmt.mentioned_users(title_raw)))

  local root_text = slackfmt.trim(templates.render(incident_config.template or "incident.start.slack", {
    title = title,
    user = ctx.user,
    user_mention = "<@" .. ctx.user .. ">",
    bot_mention = bot_mention,
    when = host.format_time(at, zone, "%Y-%m-%d %H:%M %Z"),
    runbook_url = incident_config.runbook_url,
    runbook_link = incident_config.runbook_url and slackfmt.link(incident_config.runbook_url, "runbook") or nil,
  }))
  local posted, err = host.api("chat.postMessage", {
    channel = channel, text = root_text, unfurl_links = false, unfurl_media = false,
  })
  if not posted then
    ctx.log("error", "incident root message failed", { incident_channel = channel, err = tostring(err) })
    ctx.reply("Could not open the incident: posting in <#" .. channel .. "> failed: "
      .. slackfmt.escape(tostring(err)) .. ". Is the bot a member of that channel (`/invite @postmortembot`)?")
    return
  end
  local root_ts = posted.ts

  local record = incidents.new(channel, root_ts, { title = title, started_by = ctx.user, started_at = at })
  record.started_from = { channel = ctx.channel, ts = ctx.ts }
  local saved, save_err = incidents.save_or_log(record, ctx.log)

  local howto = slackfmt.trim(templates.render("incident.howto.slack", { title = title, bot_mention = bot_mention }))
  local _, howto_err = host.api("chat.postMessage", {
    channel = channel, thread_ts = root_ts, text = howto, unfurl_links = false,
  })
  if howto_err then
    ctx.log("warn", "incident how-to reply failed", { err = tostring(howto_err) })
  end

  local thread_url = broadcast.thread_url(ctx.bot, channel, root_ts)
  local lines = {}
  lines[1] = "Incident opened: " .. (thread_url and slackfmt.link(thread_url, title) or slackfmt.escape(title))
    .. " in <#" .. channel .. ">. Post updates in that thread."
  if not saved then
    lines[#lines + 1] = "Warning: the incident record could not be saved (" .. slackfmt.escape(tostring(save_err))
      .. "); `incident resolve` will rebuild it from the thread."
  end

  if incident_config.first_status_update ~= false then
    local results, view = broadcast.send(config, {
      kind = "started", title = title, text = FIRST_UPDATE_TEXT, user = ctx.user, at = at,
      thread_url = thread_url, record = record,
    })
    if #results > 0 then
      incidents.add_update(record, { ts = root_ts, user = ctx.user, text = view.text, at = at })
      if saved then
        incidents.save_or_log(record, ctx.log)
      end
    end
    lines[#lines + 1] = broadcast.summary(results, "First status update")
  end

  ctx.reply(table.concat(lines, "\n"))
end

return {
  name = "incident start",
  help = "incident start <title> — open an outage: a root message in the incident channel, records it",
  run = run,
}
