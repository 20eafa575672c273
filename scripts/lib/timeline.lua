-- The timeline of a thread (shape: docs/timeline-model.md). timeline.collect(ctx, opts) reads the
-- thread from Slack, names its people, runs the filter rules, computes the figures and downloads the
-- files; timeline.build(messages, opts) does the same offline (`render`), without any call.
-- Called by commands/autopsy.lua (collect) and lib/render_offline.lua (build); calls lib/slack.lua,
-- lib/people.lua, lib/files.lua, lib/filters.lua, lib/figures.lua, lib/timefmt.lua, lib/tsutil.lua,
-- lib/mrkdwn.lua, lib/richtext.lua, lib/markdown.lua and host.
local host = require "host"
local tsutil = require "lib.tsutil"
local timefmt = require "lib.timefmt"
local people = require "lib.people"
local slack = require "lib.slack"
local files = require "lib.files"
local filters = require "lib.filters"
local figures = require "lib.figures"
local mrkdwn = require "lib.mrkdwn"
local markdown = require "lib.markdown"

local has_richtext, richtext = pcall(require, "lib.richtext")
if not has_richtext then richtext = nil end

local timeline = {}

local function str(v)
  if v == nil then return nil end -- (the usual case for optional fields, without a call to type)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

local function list(v)
  if type(v) == "table" then return v end
  return {}
end

local function config_part(config, name)
  return type(config) == "table" and type(config[name]) == "table" and config[name] or {}
end

---------------------------------------------------------------------------- messages in, in order

-- Accepts a conversations.replies response or an array of messages; returns the messages with a
-- string ts, each ts once (first copy wins), sorted by ts.
function timeline.normalize(messages)
  if type(messages) == "table" and type(messages.messages) == "table" then messages = messages.messages end
  local seen, out = {}, {}
  for _, m in ipairs(list(messages)) do
    if type(m) == "table" and type(m.ts) == "string" and not seen[m.ts] then
      seen[m.ts] = true
      out[#out + 1] = m
    end
  end
  return tsutil.sort_by_ts(out)
end

-- Offline there is no auth.test: the bot is whoever `autopsy this` was addressed to.
function timeline.infer_bot(messages)
  local user_id
  for _, m in ipairs(messages) do
    local who = type(m.text) == "string" and m.text:match("^%s*<@([%w]+)[^>]*>%s*[Aa]utopsy")
    if who then user_id = who end
  end
  if not user_id then return {} end
  local bot = { user_id = user_id }
  for _, m in ipairs(messages) do
    if m.user == user_id and str(m.bot_id) then bot.bot_id = m.bot_id end
  end
  return bot
end

-- The ts of the last `autopsy this` request in the thread (offline stand-in for ctx.ts).
local function last_request_ts(messages, bot)
  local found
  for _, m in ipairs(messages) do
    local who, rest = (type(m.text) == "string" and m.text or ""):match("^%s*<@([%w]+)[^>]*>%s*(.*)$")
    if who and (not bot.user_id or who == bot.user_id) and rest:lower():match("^autopsy%f[%W]") then
      found = m.ts
    end
  end
  return found
end

---------------------------------------------------------------------------- people

local function is_bot_message(m)
  return m.subtype == "bot_message" or (str(m.bot_id) ~= nil and not str(m.user))
end

-- Every user and bot id the timeline will need a name for: authors, mentions, rich_text users.
function timeline.ids_to_name(messages)
  local ids, seen = {}, {}
  local function add(id)
    if str(id) and not seen[id] then
      seen[id] = true
      ids[#ids + 1] = id
    end
  end
  local function scan_elements(elements)
    for _, el in ipairs(list(elements)) do
      if type(el) == "table" then
        if el.type == "user" then add(el.user_id) end
        scan_elements(el.elements)
      end
    end
  end
  for _, m in ipairs(messages) do
    if is_bot_message(m) then
      local profile = type(m.bot_profile) == "table" and m.bot_profile or {}
      if not str(profile.name) and not str(m.username) then add(m.bot_id) end
    else
      add(m.user)
    end
    local texts = { m.text }
    for _, a in ipairs(list(m.attachments)) do
      if type(a) == "table" then
        texts[#texts + 1] = a.text
        texts[#texts + 1] = a.pretext
      end
    end
    for _, text in ipairs(texts) do
      if type(text) == "string" and text:find("<@", 1, true) then
        for id in text:gmatch("<@([%w]+)") do add(id) end
      end
    end
    for _, block in ipairs(list(m.blocks)) do
      if type(block) == "table" then scan_elements(block.elements) end
    end
  end
  return ids
end

local function author_of(m, book)
  if is_bot_message(m) then
    local id = str(m.bot_id) or str(m.user) or "bot"
    local profile = type(m.bot_profile) == "table" and m.bot_profile or {}
    local known = book[id]
    return { id = id, name = str(profile.name) or str(m.username) or (known and known.name) or id, is_bot = true }
  end
  local id = str(m.user)
  if not id then return { id = nil, name = "unknown", is_bot = false } end
  local p = book[id]
  if not p and type(m.user_profile) == "table" then
    p = people.from_user(m.user_profile)
  end
  if p then
    return { id = id, name = p.name or id, is_bot = p.is_bot == true or str(m.bot_id) ~= nil }
  end
  return { id = id, name = id, is_bot = str(m.bot_id) ~= nil }
end

---------------------------------------------------------------------------- one entry

local function make_resolver(book, zone, channel, channel_name, channel_names)
  channel_names = channel_names or {}
  return {
    user = function(id) return book[id] and book[id].name or nil end,
    channel = function(id) return (id == channel and channel_name) or channel_names[id] or nil end,
    usergroup = function() return nil end,
    date = function(ts)
      local ok, s = pcall(host.format_time, ts, zone, "%Y-%m-%d %H:%M %Z")
      return ok and s or nil
    end,
  }
end

local function convert(m, resolve)
  if richtext then
    local block = richtext.find_block(m)
    if block then return richtext.to_markdown(block, resolve) end
  end
  return mrkdwn.to_markdown(m.text, resolve)
end

-- Markdown of a message's text: its rich_text block when there is one, else its mrkdwn text.
-- A converter failure shows the text escaped rather than losing the message.
local function text_markdown(m, resolve)
  local ok, md = pcall(convert, m, resolve)
  if ok and type(md) == "string" then return md end
  host.log("warn", "text conversion failed, showing escaped text", { ts = m.ts, error = tostring(md) })
  return markdown.escape(type(m.text) == "string" and m.text or "")
end

-- memo: text -> Markdown for this timeline. Alert storms repeat the same attachment text and
-- field values hundreds of times; each is converted once.
local function mrkdwn_or_nil(text, resolve, memo)
  if not str(text) then return nil end
  local md = memo[text]
  if md then return md end
  local ok
  ok, md = pcall(mrkdwn.to_markdown, text, resolve)
  if not ok then md = markdown.escape(text) end
  memo[text] = md
  return md
end

local function attachment_of(a, resolve, memo)
  local fields = {}
  for _, f in ipairs(list(a.fields)) do
    if type(f) == "table" then
      fields[#fields + 1] = { title = str(f.title) and mrkdwn.decode_entities(f.title) or "",
                              value_md = mrkdwn_or_nil(f.value, resolve, memo) or "" }
    end
  end
  local is_unfurl = str(a.from_url) ~= nil or str(a.original_url) ~= nil or a.is_app_unfurl == true
  local title = str(a.title) and mrkdwn.decode_entities(a.title) or nil
  return {
    pretext_md = mrkdwn_or_nil(a.pretext, resolve, memo),
    title = title,
    title_link = str(a.title_link) or (is_unfurl and title and (str(a.from_url) or str(a.original_url))) or nil,
    text_md = mrkdwn_or_nil(a.text, resolve, memo),
    fields = fields,
    footer = str(a.footer) and mrkdwn.decode_entities(a.footer) or nil,
    from_url = str(a.from_url) or str(a.original_url),
    service_name = str(a.service_name),
    is_unfurl = is_unfurl,
  }
end

-- files, attachments and reactions are set only when the message has some (hot path: most
-- messages have none; `x ~= nil` is checked before type(x), which is a function call).
local function entry_of(m, env)
  local clock, date = timefmt.clock_and_date(m.ts, env.zone)
  local e = {
    ts = m.ts,
    time = tsutil.to_number(m.ts),
    time_label = clock,
    author = author_of(m, env.book),
    text_md = text_markdown(m, env.resolve),
    permalink = env.permalink and env.permalink(m.ts),
    subtype = str(m.subtype),
    marks = {},
    raw = m,
  }
  env.day_of[e] = date
  if env.second_zone then e.time2_label = timefmt.label(m.ts, env.second_zone) end
  if m.edited ~= nil and type(m.edited) == "table" and str(m.edited.ts) then
    local el = timefmt.labels(m.edited.ts, env.zone)
    e.edited = { ts = m.edited.ts, time = tsutil.to_number(m.edited.ts),
                 label = (el.date ~= date) and (el.date .. " " .. el.short) or el.short }
  end
  if m.subtype == "thread_broadcast" then e.broadcast = true end
  if m.files ~= nil and type(m.files) == "table" and m.files[1] then
    e.files = {}
    for _, f in ipairs(m.files) do
      if type(f) == "table" then
        local fe, url = files.describe(f, env.max_bytes)
        e.files[#e.files + 1] = fe
        if url then env.jobs[#env.jobs + 1] = { entry = fe, url = url, owner = e } end
      end
    end
  end
  if m.attachments ~= nil and type(m.attachments) == "table" and m.attachments[1] then
    e.attachments = {}
    for _, a in ipairs(m.attachments) do
      if type(a) == "table" then e.attachments[#e.attachments + 1] = attachment_of(a, env.resolve, env.attachment_md) end
    end
  end
  if m.reactions ~= nil and type(m.reactions) == "table" and m.reactions[1] then
    e.reactions = {}
    for _, r in ipairs(m.reactions) do
      if type(r) == "table" and str(r.name) then
        e.reactions[#e.reactions + 1] = { name = r.name, count = tonumber(r.count) or #list(r.users) }
      end
    end
  end
  return e
end

---------------------------------------------------------------------------- the whole timeline

-- Builds the timeline from messages (no network). o: book, channel, channel_name, thread_ts, bot,
-- base_url, config, zone, second_zone, command_ts, rules, incident. Returns timeline, jobs (the
-- downloads still to do: { entry = file entry, url = }, only for entries the rules kept).
local function assemble(messages, o)
  local config = o.config or {}
  local zone = o.zone or config.timezone or "UTC"
  local second_zone = o.second_zone or config.second_timezone
  local thread_ts = o.thread_ts or (messages[1] and (str(messages[1].thread_ts) or messages[1].ts))
  local env = {
    zone = zone,
    second_zone = str(second_zone),
    channel = o.channel,
    thread_ts = thread_ts,
    permalink = slack.permalink_builder(o.channel, thread_ts, o.base_url),
    book = o.book or {},
    day_of = {},
    jobs = {},
    attachment_md = {}, -- see mrkdwn_or_nil
    max_bytes = config_part(config, "downloads").max_bytes,
  }
  env.resolve = make_resolver(env.book, zone, o.channel, o.channel_name, o.channel_names)

  local entries = {}
  for i, m in ipairs(messages) do entries[i] = entry_of(m, env) end

  local rules = o.rules or filters.rules()
  local kept, dropped = filters.run(entries, rules, {
    bot = o.bot or {},
    command_ts = o.command_ts,
    thread_ts = thread_ts,
    channel = o.channel,
    config = config,
  })

  local prev_day
  for _, e in ipairs(kept) do
    local day = env.day_of[e]
    if day ~= prev_day then e.date_label = day end
    prev_day = day
  end

  local fig = figures.compute(kept, {
    zone = zone, thread_ts = thread_ts, channel = o.channel,
    incident = o.incident, load_incident = o.incident == nil,
    permalink = function(ts) return slack.permalink(o.channel, ts, thread_ts, o.base_url) end,
  })

  local is_kept = {}
  for _, e in ipairs(kept) do
    is_kept[e] = true
  end
  for _, e in ipairs(entries) do
    e.raw = nil
  end
  local jobs = {}
  for _, job in ipairs(env.jobs) do
    if is_kept[job.owner] then jobs[#jobs + 1] = job end
  end

  local parent = messages[1] and messages[1].ts == thread_ts and messages[1] or nil
  local expected = parent and type(parent.reply_count) == "number" and parent.reply_count + 1 or nil
  local people_used = {}
  for _, e in ipairs(kept) do
    if e.author and e.author.id then people_used[e.author.id] = e.author end
  end
  for id, p in pairs(env.book) do
    if not people_used[id] then people_used[id] = { id = id, name = p.name, is_bot = p.is_bot == true } end
  end
  local t = {
    channel = o.channel,
    channel_name = o.channel_name,
    thread_ts = thread_ts,
    zone = zone,
    second_zone = env.second_zone,
    complete = true,
    fetched = #messages,
    expected = expected,
    entries = kept,
    dropped = dropped,
    figures = fig,
    people = people_used,
    files = files.stats(kept),
    command_ts = o.command_ts,
  }
  return t, jobs
end

-- Offline build for `render` (see docs/timeline-model.md). opts: people = {[id] = user object or
-- person}, channel, channel_name, thread_ts, bot (host.bot() or nil: inferred from the thread),
-- out_dir (files already under out_dir/attachments/ are used; others get "offline render"; without
-- out_dir files are left for the caller to attach), config, zone, second_zone, rules.
function timeline.build(messages, opts)
  opts = opts or {}
  local config = opts.config or {}
  messages = timeline.normalize(messages)
  local book = {}
  for id, u in pairs(opts.people or {}) do
    if type(u) == "table" then
      local p = (u.profile or u.real_name or u.display_name) and people.from_user(u) or
        { id = id, name = u.name or id, is_bot = u.is_bot == true }
      p.id = id
      book[id] = p
    end
  end
  local bot = opts.bot or timeline.infer_bot(messages)
  local base_url = (opts.bot and opts.bot.url) or opts.base_url or config.workspace_url or "https://slack.com/"
  local t, jobs = assemble(messages, {
    book = book, channel = opts.channel, channel_name = opts.channel_name, thread_ts = opts.thread_ts,
    bot = bot, base_url = base_url, config = config, zone = opts.zone, second_zone = opts.second_zone,
    command_ts = opts.command_ts or last_request_ts(messages, bot), rules = opts.rules,
    incident = opts.incident,
  })
  if opts.out_dir then
    files.attach_offline(jobs, opts.out_dir)
    t.files = files.stats(t.entries)
  end
  return t
end

-- Slack Connect stubs (file_access = check_file_info) replaced by files.info's real object.
local function expand_file_stubs(messages, limit)
  local stubs = {}
  for _, m in ipairs(messages) do
    for i, f in ipairs(list(m.files)) do
      if type(f) == "table" and f.file_access == "check_file_info" and str(f.id) then
        stubs[#stubs + 1] = { message = m, index = i, id = f.id }
      end
    end
  end
  if #stubs == 0 then return end
  local fns = {}
  for i, s in ipairs(stubs) do
    fns[i] = function() return slack.file_info(s.id) end
  end
  local results = host.all(fns, limit)
  for i, s in ipairs(stubs) do
    local r = results[i]
    if r and r.ok and type(r.value) == "table" then
      s.message.files[s.index] = r.value
    else
      host.log("warn", "files.info failed for a Slack Connect file", { file = s.id,
        error = tostring(r and (r.err or r.error) or "no result") })
    end
  end
end

-- Channel ids mentioned without a name (`<#C123>` in text, `channel` elements of rich_text),
-- other than `own`: their names are looked up once per report (at most 20).
local MAX_CHANNEL_LOOKUPS = 20

local function rich_channels(node, found)
  if type(node) ~= "table" then return end
  if node.type == "channel" and type(node.channel_id) == "string" then found[node.channel_id] = true end
  if type(node.elements) == "table" then
    for _, child in ipairs(node.elements) do rich_channels(child, found) end
  end
end

local function mentioned_channels(messages, own)
  local found = {}
  for _, m in ipairs(messages) do
    if type(m.text) == "string" and m.text:find("<#", 1, true) then
      for id in m.text:gmatch("<#([CG][%w]+)>") do found[id] = true end
    end
    if type(m.blocks) == "table" then
      for _, block in ipairs(m.blocks) do rich_channels(block, found) end
    end
  end
  found[own or ""] = nil
  local ids = {}
  for id in pairs(found) do ids[#ids + 1] = id end
  table.sort(ids)
  while #ids > MAX_CHANNEL_LOOKUPS do ids[#ids] = nil end
  return ids
end

-- Read the thread of ctx (channel, thread_ts, ts = the request, user, config) from Slack and build
-- its timeline, downloading kept files into opts.out_dir/attachments/.
-- opts: out_dir (required for downloads), progress(stage, n, total) with stage "messages",
-- "people", "files". Returns timeline, or nil, err when not even the first page could be read.
function timeline.collect(ctx, opts)
  opts = opts or {}
  local progress = opts.progress or function() end
  local config = ctx.config or host.config() or {}
  local downloads = config_part(config, "downloads")
  local tl_conf = config_part(config, "timeline")
  local thread_ts = ctx.thread_ts or ctx.ts

  local messages, info = slack.replies(ctx.channel, thread_ts, function(n, expected)
    progress("messages", n, expected)
  end)
  if not messages then return nil, info end

  expand_file_stubs(messages, downloads.concurrency or 4)

  local ids = timeline.ids_to_name(messages)
  if ctx.user then ids[#ids + 1] = ctx.user end
  progress("people", 0, #ids)
  -- names of people, of this channel and of channels mentioned without a name need nothing from
  -- each other: ask for all of them at once
  local book, channel_name
  local channel_names = {}
  local jobs = {
    function() book = people.ensure(ids, { ttl = tonumber(tl_conf.user_cache_ttl) }) end,
    function()
      local ch = host.api("conversations.info", { channel = ctx.channel })
      if ch and type(ch.channel) == "table" then channel_name = str(ch.channel.name) end
    end,
  }
  for _, id in ipairs(mentioned_channels(messages, ctx.channel)) do
    jobs[#jobs + 1] = function()
      local ch = host.api("conversations.info", { channel = id })
      if ch and type(ch.channel) == "table" then channel_names[id] = str(ch.channel.name) end
    end
  end
  local done = host.all(jobs, 8)
  for _, r in ipairs(done) do
    if not r.ok then error(r.error, 0) end
  end
  progress("people", #ids, #ids)

  local bot = ctx.bot or host.bot() or {}
  local t, jobs = assemble(messages, {
    book = book, channel = ctx.channel, channel_name = channel_name, channel_names = channel_names,
    thread_ts = thread_ts,
    bot = bot, base_url = bot.url, config = config, command_ts = ctx.ts, rules = opts.rules,
    incident = opts.incident,
  })
  t.complete = info.complete
  t.fetched = info.fetched
  t.expected = info.expected or t.expected
  if not info.complete then
    host.log("warn", "timeline incomplete", { channel = ctx.channel, thread_ts = thread_ts,
      fetched = info.fetched, expected = info.expected or "?", error = tostring(info.error) })
  end
  if ctx.user then
    local p = book[ctx.user]
    t.requested_by = { id = ctx.user, name = p and p.name or ctx.user }
  end
  t.requested_at = host.now()

  if opts.out_dir and #jobs > 0 then
    progress("files", 0, #jobs)
    files.download_all(jobs, opts.out_dir, {
      concurrency = downloads.concurrency or 4,
      max_bytes = downloads.max_bytes,
      progress = function(n, total) progress("files", n, total) end,
    })
  elseif #jobs > 0 then
    for _, job in ipairs(jobs) do job.entry.missing_reason = "not downloaded (no report folder)" end
  end
  t.files = files.stats(t.entries)
  return t
end

-- "812 of 1,040 messages" for an incomplete timeline (nil when complete).
function timeline.incomplete_label(t)
  if t.complete ~= false then return nil end
  local function thousands(n)
    local s = tostring(math.floor(n or 0))
    local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
    return (out:gsub("^,", ""))
  end
  if t.expected then
    return thousands(t.fetched) .. " of " .. thousands(t.expected) .. " messages"
  end
  return thousands(t.fetched) .. " messages (the thread could not be read to the end)"
end

return timeline
