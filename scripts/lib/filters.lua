-- The filter engine: loads the rules in scripts/filters/*.lua (file-name order), runs them over the
-- timeline's entries and records, per rule, what each one removed or merged (timeline.dropped, the
-- report's "explain" appendix). Called by lib/timeline.lua, which hands it each page of entries as
-- the page is read (filters.stream) so that per-entry work is done while the next page is on the
-- wire, and by init.lua at load, to fail a bad reload early; calls host.log and require.
--
-- A rule is one file, scripts/filters/NN-what-it-does.lua, returning a table with a name (shown in
-- the appendix; use the file name), a description, and one of two shapes:
--
--   each = function(entry, env)        -- a rule about one entry at a time
--     if entry.subtype == "channel_join" then return "joined the channel" end
--   end,
--
-- each returns a reason (a string, or true for the description) to drop the entry, or nil to keep
-- it; it may change the entry (entry.marks.x = true). A rule of this shape that comes before every
-- rule of the other shape runs on each page as it is read.
--
--   prepare = function(entry, env) return what_apply_needs end,   -- optional
--   apply = function(entries, env)     -- a rule about the whole list (entries in ts order)
--     return env.drop_where(entries, function(entry) ... end)
--   end,
--
-- apply runs once the whole thread is read, in file order after the rules before it, and returns
-- the entries to keep, in order. It may drop (leave out), keep, rewrite or merge (keep one entry
-- standing for several). prepare, when given, runs on each entry as it is read (after the each
-- rules that run then), sees entry.raw, and what it returns (when not nil) is env.prepared[entry]
-- in apply. When every rule is an early `each` or has a prepare, entry.raw is let go of as each
-- page is read (20,000 messages: ~8 MB less); otherwise it stays until the rules are done.
--
-- Every entry has the fields of docs/timeline-model.md plus entry.raw, the Slack message as read
-- (text, user, bot_id, subtype, attachments, reactions...). env offers:
--   env.bot         { user_id =, bot_id = } of this bot (may be empty offline)
--   env.command_ts  ts of the `autopsy this` message (nil offline)
--   env.thread_ts, env.channel, env.config (the whole config; env.config.timeline is the usual part)
--   env.pinned      { [ts] = true } for the channel's pinned messages (pins.list; empty offline)
--   env.name_of(id) the display name of a user id, or nil
-- and to apply:
--   env.prepared    { [entry] = what prepare returned }
--   env.drop_where(entries, fn)   -> kept entries; fn(entry) returns a reason string (or true) to drop
--   env.drop(entry, reason)       record a drop when you build the returned list yourself
--   env.merge(into, others, reason)  record that the entries in `others` were folded into `into`
-- env is the rule's own for one report: a rule may keep what it works out once in it.
-- Entries that apply leaves out without recording them are recorded with its description.
-- Failures: an apply or a prepare that raises skips its rule (its input passes through) and the
-- failure is shown in the appendix; an each that raises keeps that entry and the appendix says on
-- how many entries it failed.
local host = require "host"
local tsutil = require "lib.tsutil"

local filters = {}

local loaded -- the rules of this generation, loaded once

local SUMMARY_BYTES = 80

local function cut_utf8(s, n)
  if #s <= n then return s end
  local cut = s:sub(1, n)
  while #cut > 0 and not utf8.len(cut) do cut = cut:sub(1, -2) end
  return cut .. "…"
end

-- A one-line description of an entry for the appendix: its text, else what it carries.
function filters.summary(entry)
  local text = entry.text_md or ""
  if not text:match("%S") then
    local a = entry.attachments and entry.attachments[1]
    local f = entry.files and entry.files[1]
    text = (a and (a.title or a.text_md or a.pretext_md)) or (f and ("file: " .. (f.name or f.title or f.id or "")))
      or ""
  end
  text = text:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  return cut_utf8(text, SUMMARY_BYTES)
end

local function item_of(entry)
  return {
    ts = entry.ts,
    author = entry.author and (entry.author.name or entry.author.id) or "unknown",
    summary = filters.summary(entry),
    permalink = entry.permalink,
  }
end

-- Check one rule table; returns the rule or raises with the module name in the message.
function filters.validate(rule, module_name)
  if type(rule) ~= "table" then
    error(module_name .. ": a filter rule file must return a table", 0)
  end
  if rule.each ~= nil and rule.apply ~= nil then
    error(module_name .. ": a rule has either each or apply, not both", 0)
  end
  if rule.each ~= nil and type(rule.each) ~= "function" then
    error(module_name .. ": each must be a function", 0)
  end
  if rule.each == nil and type(rule.apply) ~= "function" then
    error(module_name .. ": the rule has no apply function (nor each)", 0)
  end
  if rule.prepare ~= nil and (type(rule.prepare) ~= "function" or rule.apply == nil) then
    error(module_name .. ": prepare must be a function, beside apply", 0)
  end
  if rule.name ~= nil and type(rule.name) ~= "string" then
    error(module_name .. ": name must be a string", 0)
  end
  rule.name = rule.name or module_name:gsub("^filters%.", "")
  rule.description = rule.description or rule.name
  return rule
end

-- Load the rules from module names (e.g. {"filters.10-drop-bot-self"}), in the given order.
-- Raises on a broken rule (a reload must fail loudly, not run half the rules).
function filters.load(module_names)
  local rules = {}
  for _, m in ipairs(module_names) do
    rules[#rules + 1] = filters.validate(require(m), m)
  end
  return rules
end

-- The rules of scripts/filters/, loaded once per generation.
function filters.rules()
  if not loaded then
    loaded = filters.load(host.list_scripts("filters") or {})
  end
  return loaded
end

-- Forget the loaded rules (tests).
function filters.reset()
  loaded = nil
end

-- What one rule recorded: its groups of dropped entries, one per reason, in the order the reasons
-- first came up.
local function new_record(rule)
  local r = { groups = {}, by_reason = {}, count = 0 }
  function r.add(entry, reason)
    r.count = r.count + 1
    reason = (type(reason) == "string" and reason ~= "") and reason or rule.description
    local g = r.by_reason[reason]
    if not g then
      g = { rule = rule.name, reason = reason, items = {} }
      r.by_reason[reason] = g
      r.groups[#r.groups + 1] = g
    end
    g.items[#g.items + 1] = item_of(entry)
  end
  return r
end

local is_canonical = tsutil.is_canonical

local function ts_less(a, b) return tsutil.less(a.ts, b.ts) end

-- Entries given out of ts order: each group's items in ts order, the groups by their first item,
-- as a run over the sorted list would have recorded them.
local function sort_groups(groups)
  for _, g in ipairs(groups) do table.sort(g.items, ts_less) end
  table.sort(groups, function(a, b) return tsutil.less(a.items[1].ts, b.items[1].ts) end)
end

-- Run an each rule over `list`: returns the entries it keeps. An entry it fails on is kept and
-- counted. (One protected call for the whole list, the usual case; after a failure, the call
-- resumes at the next entry.)
local function run_each(rule, state, list)
  local kept, each, env, record = {}, rule.each, state.env, state.record
  local i, n = 1, #list
  local function from_i()
    while i <= n do
      local entry = list[i]
      local why = each(entry, env)
      if why then
        record.add(entry, why ~= true and why or nil)
      else
        kept[#kept + 1] = entry
      end
      i = i + 1
    end
  end
  while i <= n do
    local ok, err = pcall(from_i)
    if not ok then
      kept[#kept + 1] = list[i] -- the entry it failed on
      state.failures = state.failures + 1
      if state.failures == 1 then
        state.first_error = tostring(err)
        host.log("error", "filter rule failed on an entry, kept it", { rule = rule.name, ts = list[i].ts,
                                                                       error = state.first_error })
      end
      i = i + 1
    end
  end
  return kept
end

-- Run a rule's prepare over `list` (what it returns kept in state.prepared). A failure skips the rule.
local function run_prepare(rule, state, list)
  local prepare, env, prepared = rule.prepare, state.env, state.prepared
  local ok, err = pcall(function()
    for _, entry in ipairs(list) do
      local value = prepare(entry, env)
      if value ~= nil then prepared[entry] = value end
    end
  end)
  if not ok then state.skipped = tostring(err) end
end

-- Run an apply rule over `current` (old semantics: a failure skips it). Returns its result.
local function run_apply(rule, state, current)
  local env = state.env
  local recorded, record = {}, state.record
  local function add(entry, reason)
    if recorded[entry] then return end
    recorded[entry] = true
    record.add(entry, reason)
  end
  env.prepared = state.prepared
  env.drop = add
  env.merge = function(into, others, reason)
    for _, o in ipairs(others) do
      if o ~= into then add(o, reason or ("merged into the entry at " .. tostring(into.ts))) end
    end
  end
  env.drop_where = function(list, fn)
    local kept = {}
    for _, e in ipairs(list) do
      local why = fn(e)
      if why then
        add(e, why ~= true and why or nil)
      else
        kept[#kept + 1] = e
      end
    end
    return kept
  end
  local ok, result = pcall(rule.apply, current, env)
  if not ok or type(result) ~= "table" then
    state.skipped = ok and "apply did not return a list of entries" or tostring(result)
    return current
  end
  -- every entry either returned or recorded: nothing left to find (the usual case, and the cheap
  -- one on big threads)
  if #result + record.count ~= #current then
    local still = {}
    for _, e in ipairs(result) do still[e] = true end
    for _, e in ipairs(current) do
      if not still[e] then add(e, nil) end
    end
  end
  return result
end

-- Rules over a timeline read a page at a time. base_env: bot, command_ts, thread_ts, channel,
-- config, pinned, name_of. Returns a stream:
--   stream.add(entries)   a page's entries: the early each rules and every prepare run on them
--   stream.keeps_raw      false when no rule will read entry.raw after add (the caller may drop it)
--   stream.finish(by_ts)  -> kept entries, dropped = { {rule=, reason=, items = {…}} }; the entries
--                         in the order added, or with by_ts in ts order (a thread's pages, should
--                         one come out of order: the rules then see them, and record them, as if
--                         they had been added in order)
function filters.stream(rules, base_env)
  local states = {}
  local early = 0 -- rules 1..early are each rules run as entries are added
  local keeps_raw = false
  for i, rule in ipairs(rules) do
    local env = {}
    for k, v in pairs(base_env or {}) do env[k] = v end
    env.bot = env.bot or {}
    env.config = env.config or {}
    states[i] = { env = env, record = new_record(rule), failures = 0, prepared = {} }
    if rule.each and early == i - 1 then
      early = i
    elseif rule.each or not rule.prepare then
      keeps_raw = true -- a rule that reads the entries as they are when it runs, raw included
    end
  end

  local survivors, last_ts, in_order = {}, nil, true
  local stream = { keeps_raw = keeps_raw }

  function stream.add(entries)
    if in_order then
      -- (for canonical ts, string order is ts order; anything else is sorted at the end)
      for _, entry in ipairs(entries) do
        local ts = entry.ts
        if not (is_canonical(ts) and (last_ts == nil or last_ts < ts)) then
          in_order = false
          break
        end
        last_ts = ts
      end
    end
    local list = entries
    for i = 1, early do list = run_each(rules[i], states[i], list) end
    for i = early + 1, #rules do
      if rules[i].prepare and not states[i].skipped then run_prepare(rules[i], states[i], list) end
    end
    for _, entry in ipairs(list) do survivors[#survivors + 1] = entry end
  end

  function stream.finish(by_ts)
    local current = survivors
    survivors = nil
    if by_ts and not in_order then
      tsutil.sort_by_ts(current)
      for i = 1, early do sort_groups(states[i].record.groups) end
    end
    for i = early + 1, #rules do
      local rule, state = rules[i], states[i]
      if rule.each then
        current = run_each(rule, state, current)
      elseif not state.skipped then
        current = run_apply(rule, state, current)
      end
      state.prepared = nil
    end
    local dropped = {}
    for i, rule in ipairs(rules) do
      local state = states[i]
      if state.skipped then
        host.log("error", "filter rule failed, skipped", { rule = rule.name, error = state.skipped })
        dropped[#dropped + 1] = { rule = rule.name, reason = "rule failed and was skipped: " .. state.skipped,
                                  items = {} }
      else
        for _, g in ipairs(state.record.groups) do dropped[#dropped + 1] = g end
        if state.failures > 0 then
          dropped[#dropped + 1] = { rule = rule.name, items = {}, reason = string.format(
            "rule failed on %d %s, kept: %s", state.failures, state.failures == 1 and "entry" or "entries",
            state.first_error) }
        end
      end
    end
    return current, dropped
  end

  return stream
end

-- Run `rules` over `entries` (all of them at once: the offline render, specs). base_env as
-- filters.stream. Returns kept entries and dropped (as stream.finish).
function filters.run(entries, rules, base_env)
  local stream = filters.stream(rules, base_env)
  stream.add(entries)
  return stream.finish(false)
end

return filters
