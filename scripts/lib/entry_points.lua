-- The ways into a command other than a mention: the message shortcut "Autopsy this thread"
-- (`interactive` envelope, type message_action, callback_id autopsy_thread), the slash command
-- `/postmortem [this | since … | LINK | help]` (`slash_commands` envelope) and a direct message to
-- the bot (`message` event, channel_type im). Each becomes the same command run as a mention,
-- with a ctx that answers in the right place. Called by lib/router.lua (on_envelope); calls
-- host (api, http, task_reply_to), lib/autopsy_scope.lua, lib/jobs.lua (database mode: the answers
-- and the anchor message are job steps) and the router's ctx and match.
local host = require "host"
local cjson = require "cjson"
local scope_lib = require "lib.autopsy_scope"
local jobs = require "lib.jobs"

local entry_points = {}

entry_points.SHORTCUT = "autopsy_thread"
entry_points.SLASH = "/postmortem"

-- Slack may deliver one click twice under different envelope ids; its trigger_id is the click.
local SEEN_SECONDS, SEEN_MAX = 600, 2000
local seen, seen_order = {}, {}

function entry_points.first_time(key)
  if type(key) ~= "string" or key == "" then return true end
  local now = host.monotonic()
  if seen[key] and now - seen[key] < SEEN_SECONDS then return false end
  seen[key] = now
  seen_order[#seen_order + 1] = key
  if #seen_order > SEEN_MAX then
    seen[table.remove(seen_order, 1)] = nil
  end
  return true
end

-- POST a message to an interaction's response_url (ephemeral unless in_channel). True or nil, err.
-- Database mode: a job step (lib/jobs.lua), so a takeover does not answer twice.
function entry_points.respond(url, text, in_channel)
  if type(url) ~= "string" or not url:match("^https?://") then return nil, "no response_url" end
  return jobs.step(jobs.reply_step("response_url " .. text), function()
    local res, err = host.http({ method = "POST", url = url, timeout = 10, retries = 2,
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ text = text, response_type = in_channel and "in_channel" or "ephemeral" }) })
    if not res or res.status >= 300 then
      host.log("warn", "response_url answer failed", { error = tostring(err or res.status) })
      return nil, err
    end
    return true
  end)
end

-- A ctx whose replies fall back on the response_url when the bot cannot post in the channel.
local function with_fallback(ctx, response_url)
  local post = ctx.reply
  function ctx.reply(text, opts)
    local ts, err = post(text, opts)
    if not ts and response_url then entry_points.respond(response_url, text) end
    return ts, err
  end
  return ctx
end

local function no_reactions(ctx)
  function ctx.react() end
  function ctx.unreact() end
  return ctx
end

local function help_text(router)
  local lines = { "*/postmortem* runs the bot's commands without a mention:",
    "• `/postmortem` or `/postmortem this` — a postmortem of this channel, posted in a new thread",
    "• `/postmortem since 14:05`, `/postmortem since <message link>`, `/postmortem last 2h` — a window of it",
    "• `/postmortem <thread link>` — the postmortem of that thread, posted here",
    "• the message menu's *Autopsy this thread* — the postmortem of that message's thread",
    "Mention commands:" }
  for _, cmd in ipairs(router.list()) do lines[#lines + 1] = "• " .. cmd.help end
  return table.concat(lines, "\n")
end

-- The message shortcut: autopsy of the clicked message's thread, answered in that thread.
function entry_points.shortcut(router, payload)
  if payload.type ~= "message_action" or payload.callback_id ~= entry_points.SHORTCUT then
    host.log("debug", "interaction ignored", { type = tostring(payload.type), callback = tostring(payload.callback_id) })
    return
  end
  if not entry_points.first_time("trigger:" .. tostring(payload.trigger_id)) then
    host.log("info", "repeated shortcut skipped", { trigger_id = tostring(payload.trigger_id) })
    return
  end
  local channel = type(payload.channel) == "table" and payload.channel.id or nil
  local message = type(payload.message) == "table" and payload.message or {}
  local user = type(payload.user) == "table" and payload.user.id or nil
  local root = message.thread_ts or message.ts
  if not channel or not root then
    host.log("warn", "shortcut without channel or message", {})
    return
  end
  local cmd = router.match("autopsy this")
  local event = { channel = channel, thread_ts = root, user = user }
  local ctx = no_reactions(with_fallback(router.build_ctx(event, cmd, "autopsy this"), payload.response_url))
  ctx.in_thread, ctx.entry = true, "shortcut"
  ctx.log("info", "command", { user = user, via = "shortcut" })
  return router.run(cmd, ctx, "this")
end

-- The slash command: help (and anything not understood) privately through the response_url; the
-- rest is `autopsy <text>`, answered in a thread under a message the bot posts in the channel.
function entry_points.slash(router, payload)
  if payload.command ~= entry_points.SLASH then
    host.log("debug", "slash command ignored", { command = tostring(payload.command) })
    return
  end
  if not entry_points.first_time("trigger:" .. tostring(payload.trigger_id)) then return end
  local channel, user, url = payload.channel_id, payload.user_id, payload.response_url
  local text = tostring(payload.text or ""):gsub("^%s+", ""):gsub("%s+$", "")
  host.task_reply_to(channel or "", "", entry_points.SLASH)
  if text:lower() == "help" then
    entry_points.respond(url, help_text(router))
    return
  end
  local cmd = router.match("autopsy this")
  local ok_scope, why = scope_lib.parse(text, { in_thread = false, config = host.config() })
  if not ok_scope then
    entry_points.respond(url, ":warning: " .. why .. ".\n" .. help_text(router))
    return
  end
  local anchor = (":mag: <@%s> asked for a postmortem (`/postmortem %s`): it comes in this thread.")
    :format(tostring(user), text)
  -- a job step: a takeover finds the thread the first run anchored, and answers there
  local res, err = jobs.step("anchor", function()
    return host.api("chat.postMessage", { channel = channel, text = anchor })
  end)
  if not res then
    local code = type(err) == "table" and err.code or tostring(err)
    entry_points.respond(url, ":x: I cannot post in this channel (`" .. tostring(code) .. "`). "
      .. "Invite me with `/invite @postmortembot`, or use `/postmortem <thread link>` in a DM with me.")
    return
  end
  local event = { channel = channel, ts = res.ts, user = user }
  local ctx = with_fallback(router.build_ctx(event, cmd, "autopsy " .. text), url)
  ctx.in_thread, ctx.entry = false, "slash"
  ctx.thread_ts = res.ts
  ctx.log("info", "command", { user = user, via = "slash", args = text:sub(1, 200) })
  return router.run(cmd, ctx, text)
end

-- A direct message to the bot: its text is a command (a leading mention is allowed).
function entry_points.direct_message(router, event, bot)
  if event.subtype ~= nil or event.bot_id ~= nil or router.is_self(event, bot) then return end
  local text = router.strip_mention(event.text, bot and bot.user_id)
  return router.command(event, text)
end

return entry_points
