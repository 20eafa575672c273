-- The timeline of a thread (shape: docs/timeline-model.md). timeline.collect(ctx, opts) reads the
-- thread from Slack, names its people and user groups, runs the filter rules, computes the figures
-- and downloads the files; timeline.build(messages, opts) does the same offline (`render`), without
-- any call. Called by commands/autopsy.lua (collect) and lib/render_offline.lua (build); calls
-- lib/slack.lua, lib/people.lua, lib/usergroups.lua, lib/mentions.lua, lib/files.lua,
-- lib/early_downloads.lua, lib/filters.lua, lib/figures.lua, lib/timefmt.lua, lib/tsutil.lua, the
-- converters (lib/blockkit.lua, lib/mrkdwn.lua, lib/attachments.lua, lib/emoji.lua),
-- lib/subtypes.lua, lib/markdown.lua and host.
local host = require "host"
local tsutil = require "lib.tsutil"
local timefmt = require "lib.timefmt"
local people = require "lib.people"
local usergroups = require "lib.usergroups"
local mentions = require "lib.mentions"
local slack = require "lib.slack"
local slackfmt = require "lib.slackfmt"
local files = require "lib.files"
local early_downloads = require "lib.early_downloads"
local filters = require "lib.filters"
local figures = require "lib.figures"
local mrkdwn = require "lib.mrkdwn"
local blockkit = require "lib.blockkit"
local attachments = require "lib.attachments"
local emoji = require "lib.emoji"
local markdown = require "lib.markdown"
local history = require "lib.history"
local subtypes = require "lib.subtypes"

local timeline = {}

local find = string.find

local str = require("lib.values").text

local function list(v)
  if type(v) == "table" then return v end
  return {}
end

local function config_part(config, name)
  return type(config) == "table" and type(config[name]) == "table" and config[name] or {}
end

---------------------------------------------------------------------------- messages in, in order

-- Accepts a conversations.replies response or an array of messages; returns the messages with a
-- string ts, each ts once (subtypes.one_copy), sorted by ts.
function timeline.normalize(messages)
  if type(messages) == "table" and type(messages.messages) == "table" then messages = messages.messages end
  return tsutil.sort_by_ts(subtypes.one_copy(list(messages)))
end

-- Offline there is no auth.test: the bot is whoever `autopsy this` was addressed to.
function timeline.infer_bot(messages)
  local user_id
  for _, m in ipairs(messages) do
    local who = slackfmt.report_request_to(m.text)
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
    local who = slackfmt.report_request_to(m.text)
    if who and (not bot.user_id or who == bot.user_id) then
      found = m.ts
    end
  end
  return found
end

---------------------------------------------------------------------------- people

local function is_bot_message(m)
  return m.subtype == "bot_message" or (str(m.bot_id) ~= nil and not str(m.user))
end

-- Who typed it: the user, or for an export's file_comment the commenter.
local function user_of(m)
  local user = str(m.user)
  if not user and type(m.comment) == "table" then user = str(m.comment.user) end
  return user
end

-- `bot_add` / `bot_remove` carry the bot's id but were typed by the person who added it.
local BY_A_PERSON = { bot_add = true, bot_remove = true }

-- Every user and bot id the timeline will need a name for: authors and every mention (text,
-- blocks, attachments).
function timeline.ids_to_name(messages, refs)
  local ids, seen = {}, {}
  local function add(id)
    if str(id) and not seen[id] then
      seen[id] = true
      ids[#ids + 1] = id
    end
  end
  for _, m in ipairs(messages) do
    if is_bot_message(m) then
      local profile = type(m.bot_profile) == "table" and m.bot_profile or {}
      if not str(profile.name) and not str(m.username) then add(m.bot_id) end
    else
      add(user_of(m))
    end
  end
  for _, id in ipairs((refs or mentions.of(messages)).users) do add(id) end
  return ids
end

-- One author table per person and name in a timeline (authors = the build's cache, id -> the
-- first made): 20,000 entries of a few people hold a few tables, not 20,000 (docs/timeline-model.md:
-- an entry's author is shared, replaced rather than edited).
local function author(authors, id, name, is_bot)
  local key = id or ""
  local a = authors[key]
  if a and a.name == name and a.is_bot == is_bot then return a end
  a = { id = id, name = name, is_bot = is_bot }
  if authors[key] == nil then authors[key] = a end
  return a
end

local function author_of(m, book, authors)
  -- the usual message, by a person the book names, without subtype or bot_id: what the general
  -- path below gives, without its calls
  local user = m.user
  if m.subtype == nil and m.bot_id == nil and type(user) == "string" then
    local p = book[user]
    if p and user ~= "" then return author(authors, user, p.name or user, p.is_bot == true) end
  end
  if is_bot_message(m) then
    local id = str(m.bot_id) or str(m.user) or "bot"
    local profile = type(m.bot_profile) == "table" and m.bot_profile or {}
    local known = book[id]
    return author(authors, id, str(m.username) or str(profile.name) or (known and known.name) or id, true)
  end
  local id = user_of(m)
  if not id then return author(authors, nil, "unknown", false) end
  local p = book[id]
  if not p and type(m.user_profile) == "table" then
    p = people.from_user(m.user_profile)
  end
  local bot_id = not BY_A_PERSON[m.subtype] and str(m.bot_id) ~= nil
  if p then
    return author(authors, id, p.name or id, p.is_bot == true or bot_id)
  end
  return author(authors, id, id, bot_id)
end

---------------------------------------------------------------------------- one entry

-- groups: { [usergroup id] = handle }; emoji_mode: config timeline.emoji.
local function make_resolver(book, zone, channel, channel_name, channel_names, groups, emoji_mode)
  channel_names = channel_names or {}
  groups = groups or {}
  return {
    user = function(id) return book[id] and book[id].name or nil end,
    channel = function(id) return (id == channel and channel_name) or channel_names[id] or nil end,
    -- the label Slack gives (`<!subteam^S1|@oncall>`) wins: it is what the reader saw
    usergroup = function(id, label)
      if label and label ~= "" then return nil end
      return groups[id]
    end,
    emoji = emoji.resolver(emoji_mode),
    date = function(ts)
      local ok, s = pcall(host.format_time, ts, zone, "%Y-%m-%d %H:%M %Z")
      return ok and s or nil
    end,
  }
end

-- A message with blocks shows its blocks (its `text` is the notification fallback); one whose
-- blocks show nothing shows its text. Never both, never neither. memo: text -> Markdown for this
-- timeline: bots and people repeat the same text, each is converted once (as lib/attachments.lua
-- does for attachment text). The resolvers answer the same for a text wherever it comes: offline
-- the names are all known at the start; a report read from Slack names what a batch mentions
-- before it converts the batch (new_reader's absorb), and asks for a person or a channel once.
-- User groups are the exception (a later batch that mentions a group the cache lacks reads them
-- all again): a text with one is converted each time.
local function convert(m, resolve, memo)
  local blocks = m.blocks
  if blocks ~= nil and type(blocks) == "table" and blocks[1] ~= nil then
    local md = blockkit.to_markdown(blocks, resolve)
    if md ~= "" then return md end
  end
  local text = m.text
  if type(text) ~= "string" or find(text, "<!subteam", 1, true) then return mrkdwn.to_markdown(text, resolve) end
  local md = memo[text]
  if md == nil then
    md = mrkdwn.to_markdown(text, resolve)
    memo[text] = md
  end
  return md
end

-- Markdown of a message's text. A converter failure shows the text escaped rather than losing the
-- message.
local function text_markdown(m, resolve, memo)
  local ok, md = pcall(convert, m, resolve, memo)
  if ok and type(md) == "string" then return md end
  host.log("warn", "text conversion failed, showing escaped text", { ts = m.ts, error = tostring(md) })
  return markdown.escape(type(m.text) == "string" and m.text or "")
end

-- The attachments that show something (an empty one would leave a blank quote), or nil.
local function attachments_of(m, env)
  local out = {}
  for _, a in ipairs(m.attachments) do
    if type(a) == "table" then
      local ok, model = pcall(attachments.of, a, env.resolve, env.attachment_md)
      if not ok then
        host.log("warn", "attachment conversion failed, showing its fallback", { ts = m.ts, error = tostring(model) })
        model = { fields = {}, md = markdown.escape(str(a.fallback) or str(a.text) or "") }
      end
      if model.md ~= "" or model.pretext_md then out[#out + 1] = model end
    end
  end
  if out[1] then return out end
  return nil
end

-- An export's `file_share` / `file_comment` carries one `file` instead of `files`.
local function files_of(m)
  if m.files ~= nil and type(m.files) == "table" and m.files[1] then return m.files end
  if m.subtype == "file_share" and type(m.file) == "table" then return { m.file } end
  return nil
end

-- files, attachments and reactions are set only when the message has some (hot path: most
-- messages have none; `x ~= nil` is checked before type(x), which is a function call).
local function entry_of(m, env)
  local clock, date = env.clock(m.ts)
  local e = {
    ts = m.ts,
    time = tsutil.to_number(m.ts),
    time_label = clock,
    author = author_of(m, env.book, env.authors),
    text_md = text_markdown(m, env.resolve, env.text_md),
    permalink = env.permalink and env.permalink(m.ts),
    marks = {},
    raw = m,
  }
  -- (set apart: a constructor of eight fields makes a table of eight slots, nine would make 16;
  -- most messages have no subtype, and 20,000 entries are 5 MB lighter)
  local subtype = str(m.subtype)
  if subtype then e.subtype = subtype end
  if env.channel_mode then
    -- a channel report: each message links to itself, a reply to its place in its thread
    local reply_to = str(m.pmb_reply_to)
    e.reply_to = reply_to
    e.permalink = env.permalink_of(m.ts, reply_to or ((tonumber(m.reply_count) or 0) > 0 and m.ts or nil))
  end
  env.day_of[e] = date
  if env.second_clock then e.time2_label = (env.second_clock(m.ts)) end
  if m.edited ~= nil and type(m.edited) == "table" and str(m.edited.ts) then
    local el = timefmt.labels(m.edited.ts, env.zone)
    e.edited = { ts = m.edited.ts, time = tsutil.to_number(m.edited.ts),
                 label = (el.date ~= date) and (el.date .. " " .. el.short) or el.short }
  end
  if m.subtype == "thread_broadcast" then e.broadcast = true end
  local message_files = (m.files ~= nil or m.file ~= nil) and files_of(m)
  if message_files then
    e.files = {}
    for _, f in ipairs(message_files) do
      if type(f) == "table" then
        local fe, url = files.describe(f, env.max_bytes)
        e.files[#e.files + 1] = fe
        if url then env.jobs[#env.jobs + 1] = { entry = fe, url = url, owner = e } end
      end
    end
  end
  if m.attachments ~= nil and type(m.attachments) == "table" and m.attachments[1] then
    e.attachments = attachments_of(m, env)
  end
  if m.reactions ~= nil and type(m.reactions) == "table" and m.reactions[1] then
    e.reactions = {}
    for _, r in ipairs(m.reactions) do
      if type(r) == "table" and str(r.name) then
        e.reactions[#e.reactions + 1] = { name = r.name, count = tonumber(r.count) or #list(r.users),
                                          char = env.resolve.emoji and env.resolve.emoji(r.name) or nil }
      end
    end
  end
  if m.subtype ~= nil then subtypes.apply(e, m, env) end
  return e
end

---------------------------------------------------------------------------- the whole timeline

-- What entry_of needs for every message of one thread (see assemble for o).
local function make_env(o)
  local config = o.config or {}
  local zone = o.zone or config.timezone or "UTC"
  local second_zone = o.second_zone or config.second_timezone
  local env = {
    zone = zone,
    second_zone = str(second_zone),
    clock = timefmt.clocks(zone), -- ts -> clock, date (entry_of)
    channel = o.channel,
    thread_ts = o.thread_ts,
    permalink = slack.permalink_builder(o.channel, o.thread_ts, o.base_url),
    book = o.book or {},
    authors = {}, -- id -> its author table (author_of)
    day_of = {},
    jobs = {},
    attachment_md = {}, -- text -> Markdown, shared by the attachments (see lib/attachments.lua)
    text_md = {}, -- a message's text -> Markdown (convert)
    max_bytes = config_part(config, "downloads").max_bytes,
    channel_mode = o.channel_mode,
    permalink_of = function(ts, in_thread) return slack.permalink(o.channel, ts, in_thread, o.base_url) end,
  }
  if env.second_zone then env.second_clock = timefmt.clocks(env.second_zone) end
  env.resolve = make_resolver(env.book, zone, o.channel, o.channel_name, o.channel_names, o.usergroups,
    config_part(config, "timeline").emoji)
  return env
end

-- The filter rules of one report (lib/filters.lua's stream): each page's entries are handed to it
-- as they are made, so that the rules' per-entry work is done while the next page is on the wire.
-- o: bot, command_ts, channel, config, pinned, rules.
local function rules_stream(env, o)
  return filters.stream(o.rules or filters.rules(), {
    bot = o.bot or {},
    command_ts = o.command_ts,
    thread_ts = env.thread_ts,
    channel = o.channel,
    config = o.config or {},
    pinned = o.pinned or {},
    name_of = function(id) return env.book[id] and env.book[id].name or nil end,
  })
end

-- A page's entries to the rules; their messages let go of when no rule reads them later.
local function add_to_rules(stream, entries)
  stream.add(entries)
  if not stream.keeps_raw then
    for _, e in ipairs(entries) do e.raw = nil end
  end
end

-- The steps that need the whole thread, once every message is an entry and has been through
-- add_to_rules: the rules that look across messages (alert storms, and the marks, which are worked
-- out as each entry is read and set on the entries kept), the day headings (the first kept entry
-- of a day), the figures (first response, mitigation, resolution among the kept entries), the
-- downloads still to do (only for kept entries). o: as assemble's, plus fetched (messages read)
-- and parent (the thread's parent message, for its reply_count). Returns timeline, jobs.
local function complete(stream, env, o)
  local zone, thread_ts = env.zone, env.thread_ts
  local kept, dropped = stream.finish(not o.channel_mode) -- (a channel's replies follow their parent)

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

  for _, e in ipairs(kept) do
    e.raw = nil
  end
  local jobs = {}
  if env.jobs[1] then -- (the set of kept entries only for a thread with files to download)
    local is_kept = {}
    for _, e in ipairs(kept) do
      is_kept[e] = true
    end
    for _, job in ipairs(env.jobs) do
      if is_kept[job.owner] then jobs[#jobs + 1] = job end
    end
  end

  local parent = not o.channel_mode and o.parent or nil
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
    fetched = o.fetched,
    expected = expected,
    entries = kept,
    dropped = dropped,
    figures = fig,
    people = people_used,
    files = files.stats(kept),
    command_ts = o.command_ts,
    scope = o.channel_mode and "channel" or nil,
  }
  return t, jobs
end

-- Builds the timeline from messages (no network). o: book, channel, channel_name, thread_ts, bot,
-- base_url, config, zone, second_zone, command_ts, rules, incident. Returns timeline, jobs (the
-- downloads still to do: { entry = file entry, url = }, only for entries the rules kept).
local function assemble(messages, o)
  o.thread_ts = o.thread_ts or (messages[1] and (str(messages[1].thread_ts) or messages[1].ts))
  local env = make_env(o)
  local stream = rules_stream(env, o)
  local entries = {}
  for i, m in ipairs(messages) do entries[i] = entry_of(m, env) end
  add_to_rules(stream, entries)
  o.fetched = #messages
  o.parent = messages[1] and messages[1].ts == o.thread_ts and messages[1] or nil
  return complete(stream, env, o)
end

-- Offline build for `render` (see docs/timeline-model.md). opts: people = {[id] = user object or
-- person}, usergroups = {[id] = handle}, channel, channel_name, thread_ts, bot (host.bot() or nil: inferred from the thread),
-- out_dir (files already under out_dir/attachments/ are used; others get "offline render"; without
-- out_dir files are left for the caller to attach), config, zone, second_zone, rules.
function timeline.build(messages, opts)
  opts = opts or {}
  local config = opts.config or {}
  messages = timeline.normalize(messages)
  if opts.channel_mode then messages = history.nest_flat(messages) end
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
    usergroups = opts.usergroups, bot = bot, base_url = base_url, config = config, zone = opts.zone, second_zone = opts.second_zone,
    command_ts = opts.command_ts or last_request_ts(messages, bot), rules = opts.rules,
    incident = opts.incident, channel_mode = opts.channel_mode, pinned = opts.pinned,
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

-- Channel ids mentioned without a name, other than `own`: their names are looked up once per
-- report (at most 20).
local MAX_CHANNEL_LOOKUPS = 20

local function unnamed_channels(refs, own)
  local ids = {}
  for _, id in ipairs(refs.channels) do
    if id ~= own and #ids < MAX_CHANNEL_LOOKUPS then ids[#ids + 1] = id end
  end
  return ids
end

-- The reading of one report, batch by batch: reader.prefetch(batch) hands the batch's files to
-- the early downloads (lib/early_downloads.lua) as soon as it is read; reader.absorb(batch) names
-- what a batch of messages needs (people, user groups, channels mentioned without a name; with the
-- first batch also this channel's name and its pins) and converts its messages into entries;
-- reader.finish(messages, r) does what needs the whole thread (lib.timeline's complete: the filter
-- rules, day headings, figures) and tells the early downloads which files the kept entries need;
-- reader.run(fn) runs fn (the reading, absorb, finish) beside those downloads, and
-- reader.download(t) ends them (files nobody kept removed, the rest fetched). A thread report
-- absorbs each page while the next one is on the wire (slack.replies' work); a channel report
-- absorbs everything once.
local function new_reader(ctx, opts, channel_mode)
  local progress = opts.progress or function() end
  local config = ctx.config or host.config() or {}
  local downloads = config_part(config, "downloads")
  local tl_conf = config_part(config, "timeline")
  local ttl = tonumber(tl_conf.user_cache_ttl)
  local bot = ctx.bot or host.bot() or {}
  local reader = { batches = 0 }
  local book, groups, channel_names = {}, {}, {}
  local asked, channels_asked, named = {}, 0, 0
  local channel_name, pinned, env, rules
  local early = opts.out_dir and early_downloads.new(opts.out_dir, {
    concurrency = downloads.concurrency or 4,
    max_bytes = downloads.max_bytes,
    progress = function(n, total) progress("files", n, total) end,
    on_file = opts.on_file,
  }) or nil

  -- The files the batch's messages carry, as download jobs, except the bot's own uploads (an
  -- earlier report: rule 10 drops them) and what cannot be downloaded (lib/files.lua's describe).
  function reader.prefetch(batch)
    if not early then return end
    local jobs = {}
    for _, m in ipairs(batch) do
      local own = (bot.user_id and m.user == bot.user_id) or (bot.bot_id and m.bot_id == bot.bot_id)
      local message_files = not own and files_of(m)
      for _, f in ipairs(message_files or {}) do
        if type(f) == "table" then
          local fe, url = files.describe(f, downloads.max_bytes)
          if url then jobs[#jobs + 1] = { entry = fe, url = url } end
        end
      end
    end
    early.add(jobs)
  end

  function reader.run(fn)
    if early then return early.run(fn) end
    return fn()
  end

  function reader.absorb(batch, thread_ts)
    reader.batches = reader.batches + 1
    local first = reader.batches == 1
    expand_file_stubs(batch, downloads.concurrency or 4)
    local refs = mentions.of(batch)
    local ids = {}
    for _, id in ipairs(timeline.ids_to_name(batch, refs)) do
      if not asked[id] then ids[#ids + 1] = id end
    end
    if first and ctx.user and not asked[ctx.user] then ids[#ids + 1] = ctx.user end
    for _, id in ipairs(ids) do asked[id] = true end
    progress("people", named, named + #ids)
    -- names of people, of user groups, of this channel and of channels mentioned without a name
    -- need nothing from each other: ask for all of them at once
    local jobs = {
      function()
        for id, p in pairs(people.ensure(ids, { ttl = ttl })) do book[id] = p end
      end,
      function()
        for id, handle in pairs(usergroups.ensure(refs.usergroups, { ttl = ttl })) do groups[id] = handle end
      end,
    }
    if first then
      jobs[#jobs + 1] = function() pinned = timeline.pinned(ctx.channel) end
      jobs[#jobs + 1] = function()
        local ch = host.api("conversations.info", { channel = ctx.channel })
        if ch and type(ch.channel) == "table" then channel_name = str(ch.channel.name) end
      end
    end
    for _, id in ipairs(unnamed_channels(refs, ctx.channel)) do
      if not channel_names[id] and channels_asked < MAX_CHANNEL_LOOKUPS then
        channels_asked = channels_asked + 1
        channel_names[id] = false -- asked (a name that cannot be read stays unknown)
        jobs[#jobs + 1] = function()
          local ch = host.api("conversations.info", { channel = id })
          if ch and type(ch.channel) == "table" then channel_names[id] = str(ch.channel.name) end
        end
      end
    end
    local done = host.all(jobs, 8)
    for _, r2 in ipairs(done) do
      if not r2.ok then error(r2.error, 0) end
    end
    named = named + #ids
    progress("people", named, named)
    if not env then
      env = make_env({
        book = book, channel = ctx.channel, channel_name = channel_name, channel_names = channel_names,
        usergroups = groups, thread_ts = thread_ts, base_url = bot.url, config = config,
        channel_mode = channel_mode,
      })
      rules = rules_stream(env, { bot = bot, command_ts = ctx.ts or nil, channel = ctx.channel,
                                  config = config, pinned = pinned, rules = opts.rules })
    end
    local entries = {}
    for i, m in ipairs(batch) do entries[i] = entry_of(m, env) end
    add_to_rules(rules, entries)
  end

  -- r: thread_ts, info (complete, fetched, expected, bounded, parent: the thread's parent message
  -- when it was read). Called after absorb (every page is absorbed, an empty one too). Returns the
  -- timeline (its files not downloaded yet: reader.download) and the kept file jobs.
  function reader.finish(r)
    local info = r.info
    for id, name in pairs(channel_names) do
      if name == false then channel_names[id] = nil end
    end
    local t, file_jobs = complete(rules, env, {
      channel = ctx.channel, channel_name = channel_name, thread_ts = r.thread_ts, bot = bot,
      base_url = bot.url, config = config, command_ts = ctx.ts or nil,
      incident = opts.incident, channel_mode = channel_mode, fetched = info.fetched, parent = info.parent,
    })
    rules = nil
    t.complete = info.complete
    t.fetched = info.fetched
    t.expected = info.expected or t.expected
    t.bounded = info.bounded
    if not info.complete then
      host.log("warn", "timeline incomplete", { channel = ctx.channel, thread_ts = r.thread_ts,
        fetched = info.fetched, expected = info.expected or "?", error = tostring(info.error) })
    end
    if ctx.user then
      local p = book[ctx.user]
      t.requested_by = { id = ctx.user, name = p and p.name or ctx.user }
    end
    t.requested_at = host.now()

    if early then
      -- opts.ahead(t, unchanged): t as it will be if the downloads still running end as announced
      -- (lib/early_downloads.lua's keep)
      early.keep(file_jobs, opts.ahead and function(unchanged)
        t.files = files.stats(t.entries)
        opts.ahead(t, unchanged)
      end)
    end
    return t, file_jobs
  end

  -- After run: the kept files downloaded (or why not) and counted in t.files.
  function reader.download(t, file_jobs)
    if early then
      early.finish()
    else
      for _, job in ipairs(file_jobs) do job.entry.missing_reason = "not downloaded (no report folder)" end
    end
    t.files = files.stats(t.entries)
    return t
  end

  return reader
end

-- Once a big thread is read: the reading's garbage collected before the report's render allocates
-- beside it, the ts answers tsutil remembered let go of (20,000 of them), and the collector in
-- generational mode for the rest of the command (host.collect_garbage): the entries are old from
-- here on, and the render, the JSON and the uploads make short-lived garbage that minor
-- collections take without marking every entry again. Below BIG_THREAD messages none of it pays.
local BIG_THREAD = 1000
function timeline.collect_messages(count)
  if (count or 0) >= BIG_THREAD then
    tsutil.forget()
    host.collect_garbage("generational")
  end
end

-- The ts of the pinned messages of a channel (pins.list), as a set; empty when pins cannot be
-- read (a missing pins:read scope must not cost the report).
function timeline.pinned(channel)
  local resp, err = host.api("pins.list", { channel = channel })
  local set = {}
  if not resp then
    host.log("info", "pins.list failed, no pinned key events", { channel = channel, error = tostring(err) })
    return set
  end
  for _, item in ipairs(list(resp.items)) do
    local m = type(item) == "table" and item.message
    if type(m) == "table" and str(m.ts) then set[m.ts] = true end
  end
  return set
end

-- Read the thread of ctx (channel, thread_ts, ts = the request, user, config) from Slack and build
-- its timeline, downloading kept files into opts.out_dir/attachments/.
-- opts: out_dir (required for downloads), progress(stage, n, total) with stage "messages",
-- "people", "files", on_file(local_path) for each kept file downloaded (lib/early_downloads.lua),
-- ahead(t, unchanged): called at most once, while the last downloads are on the wire, with the
-- timeline as it will be if they end as announced (the report can be rendered meanwhile); once
-- collect returned, unchanged() says whether it is (else render the timeline returned).
-- Returns timeline, or nil, err when not even the first page could be read.
function timeline.collect(ctx, opts)
  opts = opts or {}
  local progress = opts.progress or function() end
  local thread_ts = ctx.thread_ts or ctx.ts
  local reader = new_reader(ctx, opts, false)
  local info, err, t, file_jobs
  reader.run(function()
    -- each page's files start downloading as it arrives; it is named and converted while the next
    -- one is on the wire
    info, err = slack.replies_each(ctx.channel, thread_ts, function(n, expected)
      progress("messages", n, expected)
    end, function(batch)
      reader.prefetch(batch)
      return function() reader.absorb(batch, thread_ts) end
    end)
    if not info then return end
    t, file_jobs = reader.finish({ thread_ts = thread_ts, info = info })
  end)
  if not info then return nil, err end
  return reader.download(t, file_jobs)
end

-- A channel report: the channel's messages (conversations.history, from opts.oldest or the start,
-- to opts.latest or now, at most config channel.max_messages), each thread's replies under its
-- parent, the same rules, figures and files as a thread. opts as collect, plus oldest, latest,
-- thread_ts (the report's key: the incident's root, else the first message). Progress stages
-- "pages", "messages", "threads". Returns timeline (scope = "channel") or nil, err.
function timeline.collect_channel(ctx, opts)
  opts = opts or {}
  local progress = opts.progress or function() end
  local config = ctx.config or host.config() or {}
  local ch_conf = config_part(config, "channel")
  local roots, info = history.messages(ctx.channel, {
    oldest = opts.oldest, latest = opts.latest, max_messages = ch_conf.max_messages,
    deadline = ch_conf.max_read_seconds and (host.monotonic() + ch_conf.max_read_seconds) or nil,
    on_page = function(n, pages, small)
      progress("pages", pages, nil, small)
      progress("messages", n)
    end,
  })
  if not roots then return nil, info end
  local by_root, incomplete_threads, n_threads = history.replies(ctx.channel, roots, {
    limit = config_part(config, "downloads").concurrency or 4,
    skip = ctx.ts or nil, -- the command's own thread holds only the bot's answers
    on_thread = function(n, total) progress("threads", n, total) end,
  })
  local messages = history.nest(roots, by_root)
  if incomplete_threads > 0 then info.complete = false end
  info.fetched = #messages
  info.threads, info.incomplete_threads = n_threads, incomplete_threads
  local key = opts.thread_ts or (messages[1] and messages[1].ts) or ctx.ts
  local reader = new_reader(ctx, opts, true)
  local t, file_jobs
  reader.prefetch(messages)
  reader.run(function()
    reader.absorb(messages, key)
    t, file_jobs = reader.finish({ thread_ts = key, info = info })
    -- (before the downloads end: opts.ahead renders the report while the last ones are on the wire)
    t.window = { oldest = opts.oldest, latest = opts.latest }
    t.threads = n_threads
  end)
  reader.download(t, file_jobs)
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
