-- The command router: the registry of commands (scripts/commands/*.lua, filled by init.load),
-- and what happens to each Socket Mode envelope: app_mention events from people become a command
-- run with a ctx (docs/lua-api.md "The command context"); direct messages, the message shortcut
-- and the slash command go through lib/entry_points.lua to the same runs; everything else is
-- ignored. Called by init.lua; calls host.api/host.log/host.bot and each command's run. A command
-- that fails (raises, or is killed by its budget) is answered by the host (C) where router.run
-- told it (host.task_reply_to).
local host = require "host"
local entry_points = require "lib.entry_points"
local jobs = require "lib.jobs"
local slackfmt = require "lib.slackfmt"

local router = {}

local commands = {} -- sorted by name: { name=, help=, run=, words = {...}, source = }
local by_words = {} -- { { words = {"incident","start"}, cmd = cmd }, ... } names and aliases

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function words_of(s)
  local words = {}
  for w in s:lower():gmatch("%S+") do words[#words + 1] = w end
  return words
end

function router.reset()
  commands = {}
  by_words = {}
end

-- Validate and register a command table returned by a command file (source: its module name).
function router.add(cmd, source)
  source = source or "?"
  if type(cmd) ~= "table" then
    error(source .. ": a command file must return a table {name=, help=, run=}", 0)
  end
  if type(cmd.name) ~= "string" or trim(cmd.name) == "" then
    error(source .. ": command has no name (a non-empty string)", 0)
  end
  if type(cmd.help) ~= "string" then
    error(source .. ": command '" .. cmd.name .. "' has no help line (a string)", 0)
  end
  if type(cmd.run) ~= "function" then
    error(source .. ": command '" .. cmd.name .. "' has no run function", 0)
  end
  local names = { cmd.name }
  for _, alias in ipairs(type(cmd.aliases) == "table" and cmd.aliases or {}) do
    if type(alias) == "string" and trim(alias) ~= "" then names[#names + 1] = alias end
  end
  for _, name in ipairs(names) do
    local words = words_of(name)
    local key = table.concat(words, " ")
    for _, entry in ipairs(by_words) do
      if table.concat(entry.words, " ") == key then
        error(source .. ": command name '" .. name .. "' is already used by " .. entry.cmd.source, 0)
      end
    end
    by_words[#by_words + 1] = { words = words, cmd = cmd }
  end
  cmd.source = source
  commands[#commands + 1] = cmd
  table.sort(commands, function(a, b) return a.name < b.name end)
end

-- The registered commands, sorted by name.
function router.list()
  local out = {}
  for i, cmd in ipairs(commands) do out[i] = cmd end
  return out
end

-- Problems with the registry (for init.self_check): an empty list when all is well.
function router.check()
  local problems = {}
  for _, cmd in ipairs(commands) do
    if type(cmd.name) ~= "string" or type(cmd.help) ~= "string" or type(cmd.run) ~= "function" then
      problems[#problems + 1] = tostring(cmd.source) .. ": command needs name, help (strings) and run (function)"
    end
  end
  if #commands == 0 then problems[#problems + 1] = "no commands registered (scripts/commands/*.lua)" end
  return problems
end

-- The text after the bot's mention, trimmed. "<@U1> autopsy this" -> "autopsy this".
-- Without a known bot id, a leading mention of anyone is stripped.
function router.strip_mention(text, bot_user_id)
  text = text or ""
  if bot_user_id and bot_user_id ~= "" then
    local s, e = text:find("<@" .. bot_user_id .. "|?[^>]*>")
    if s then
      local after = trim(text:sub(e + 1))
      if after ~= "" then return after end
      return trim(text:sub(1, s - 1))
    end
    return trim(text)
  end
  return trim((text:gsub("^%s*<@[%w]+|?[^>]*>", "", 1)))
end

-- Longest registered name matching the first words of text (case-insensitive, whole words).
-- Returns cmd, args (the rest of the original text, trimmed) or nil.
function router.match(text)
  local spans = {} -- spans[i] = { word_lower, end_position }
  for s, w, e in text:gmatch("()(%S+)()") do spans[#spans + 1] = { w:lower(), s, e } end
  local best, best_n = nil, 0
  for _, entry in ipairs(by_words) do
    local n = #entry.words
    if n > best_n and n <= #spans then
      local ok = true
      for i = 1, n do
        if spans[i][1] ~= entry.words[i] then ok = false break end
      end
      if ok then best, best_n = entry.cmd, n end
    end
  end
  if not best then return nil end
  return best, trim(text:sub(spans[best_n][3]))
end

-- Is this event from the bot itself?
function router.is_self(event, bot)
  if not bot then return false end
  if event.user and event.user ~= "" and event.user == bot.user_id then return true end
  if event.bot_id and event.bot_id ~= "" and event.bot_id == bot.bot_id then return true end
  return false
end

-- The ctx a command's run receives.
function router.build_ctx(event, cmd, text)
  local channel = event.channel
  local thread_ts = event.thread_ts or event.ts
  local bot = host.bot()
  local ctx = {
    channel = channel,
    ts = event.ts,
    thread_ts = thread_ts,
    user = event.user,
    text = text,
    event = event,
    command = cmd.name,
    config = host.config(),
    bot = bot,
  }

  function ctx.log(level, msg, fields)
    local all = { command = cmd.name, channel = channel, thread = thread_ts }
    for k, v in pairs(fields or {}) do all[k] = v end
    host.log(level, msg, all)
  end

  function ctx.reply(reply_text, opts)
    opts = opts or {}
    local params = { channel = channel, thread_ts = thread_ts, text = reply_text }
    if opts.blocks then params.blocks = opts.blocks end
    if opts.broadcast then params.reply_broadcast = true end
    -- database mode: a job step (lib/jobs.lua), so a takeover does not say it twice
    return jobs.step(jobs.reply_step(reply_text), function()
      local res, err = host.api("chat.postMessage", params)
      if not res then
        ctx.log("warn", "reply failed", { error = tostring(err) })
        return nil, err
      end
      return res.ts
    end, function()
      -- a takeover: the dead instance may have posted it already
      local m = jobs.find_mine_in_thread(channel, thread_ts, function(msg) return msg.text == reply_text end)
      if m then return true, m.ts end
      return false
    end)
  end

  function ctx.update(ts, new_text)
    jobs.check() -- database mode: only while this instance holds the request's job
    local res, err = host.api("chat.update", { channel = channel, ts = ts, text = new_text })
    if not res then return nil, err end
    return true
  end

  local function reaction(method, name)
    jobs.held() -- database mode: nothing more from an instance that lost the request's job
    local res, err = host.api(method, { channel = channel, timestamp = event.ts, name = name })
    if not res then
      local code = type(err) == "table" and err.code or tostring(err)
      if code ~= "already_reacted" and code ~= "no_reaction" then
        ctx.log("warn", method .. " failed", { reaction = name, error = tostring(err) })
      end
    end
  end
  function ctx.react(name) reaction("reactions.add", name) end
  function ctx.unreact(name) reaction("reactions.remove", name) end

  return ctx
end

-- Run cmd with ctx. The host answers a failure (an error, a budget or memory kill) in the thread
-- the mention came from, logs it with its traceback and counts it: one path for every failure,
-- that no command can bypass. The router only names the command for it.
function router.run(cmd, ctx, args)
  host.task_reply_to(ctx.channel, ctx.thread_ts, cmd.name)
  local started = host.monotonic()
  cmd.run(ctx, args)
  ctx.log("info", "command done", { ms = string.format("%.0f", (host.monotonic() - started) * 1000) })
  return true
end

-- A word the user typed, for a reply that shows it inside a code span: its markup as plain text
-- (a mention is not live, a link not a link), no backtick (it would close the span and let the
-- rest be read as markup), no control character, & < > escaped, at most 40 characters.
function router.quote_word(word)
  local plain = slackfmt.to_plain(word):gsub("`", "'"):gsub("%c", " ")
  if #plain > 40 then
    local cut = plain:sub(1, 40)
    while #cut > 0 and not utf8.len(cut) do cut = cut:sub(1, -2) end
    plain = cut .. "…"
  end
  return slackfmt.escape(plain)
end

-- A command typed by a person (a mention, a direct message): run it, or say it is unknown.
function router.command(event, text)
  local bot = host.bot()
  local cmd, args = router.match(text)
  if not cmd then
    local ctx = router.build_ctx(event, { name = "unknown" }, text)
    local word = text:match("^(%S+)")
    local what = word and ("I don't know `" .. router.quote_word(word) .. "`.")
      or "You mentioned me without a command."
    local help = (bot and bot.user_id ~= "") and ("<@" .. bot.user_id .. "> help") or "@postmortembot help"
    ctx.reply(what .. " Try `" .. help .. "` for the list of commands.")
    host.log("info", "unknown command", { channel = event.channel, text = text:sub(1, 80) })
    return
  end
  local ctx = router.build_ctx(event, cmd, text)
  ctx.log("info", "command", { user = event.user, args = args:sub(1, 200) })
  return router.run(cmd, ctx, args)
end

-- One Socket Mode envelope (already acked by the C core): events_api (app_mention, a direct
-- message), interactive (the message shortcut) and slash_commands; lib/entry_points.lua turns the
-- last three into the same command runs as a mention.
function router.on_envelope(envelope)
  local kind = type(envelope) == "table" and envelope.type or nil
  local payload = type(envelope) == "table" and type(envelope.payload) == "table" and envelope.payload or {}
  if kind == "interactive" then return entry_points.shortcut(router, payload) end
  if kind == "slash_commands" then return entry_points.slash(router, payload) end
  if kind ~= "events_api" then
    host.log("debug", "envelope ignored", { type = tostring(kind) })
    return
  end
  local event = payload.event
  local bot = host.bot()
  if type(event) == "table" and event.type == "message" and event.channel_type == "im" then
    return entry_points.direct_message(router, event, bot)
  end
  if type(event) ~= "table" or event.type ~= "app_mention" then
    host.log("debug", "event ignored", { event = type(event) == "table" and tostring(event.type) or "?" })
    return
  end
  if router.is_self(event, bot) then
    host.log("debug", "own message ignored", { ts = event.ts })
    return
  end
  return router.command(event, router.strip_mention(event.text, bot and bot.user_id))
end

return router
