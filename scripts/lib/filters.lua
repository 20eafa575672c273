-- The filter engine: loads the rules in scripts/filters/*.lua (file-name order), runs them over the
-- timeline's entries and records, per rule, what each one removed or merged (timeline.dropped, the
-- report's "explain" appendix). Called by lib/timeline.lua (and init.lua at load, to fail a bad
-- reload early); calls host.list_scripts, host.log and require.
--
-- A rule is one file, scripts/filters/NN-what-it-does.lua, that returns:
--
--   return {
--     name = "20-drop-joins",                     -- shown in the appendix; use the file name
--     description = "Drops 'joined/left the channel' messages.",
--     apply = function(entries, env)              -- entries: array in ts order
--       return env.drop_where(entries, function(entry)
--         if entry.subtype == "channel_join" then return "joined the channel" end
--       end)
--     end,
--   }
--
-- apply returns the entries to keep, in order. It may drop (leave out), keep, rewrite (change an
-- entry's fields, e.g. entry.marks.resolution = true) or merge (keep one entry standing for several).
-- Every entry has the fields of docs/timeline-model.md plus entry.raw, the Slack message as read
-- (text, user, bot_id, subtype, attachments, reactions...). env offers:
--   env.bot         { user_id =, bot_id = } of this bot (may be empty offline)
--   env.command_ts  ts of the `autopsy this` message (nil offline)
--   env.thread_ts, env.channel, env.config (the whole config; env.config.timeline is the usual part)
--   env.pinned      { [ts] = true } for the channel's pinned messages (pins.list; empty offline)
--   env.name_of(id) the display name of a user id, or nil
--   env.drop_where(entries, fn)   -> kept entries; fn(entry) returns a reason string (or true) to drop
--   env.drop(entry, reason)       record a drop when you build the returned list yourself
--   env.merge(into, others, reason)  record that the entries in `others` were folded into `into`
-- Entries that a rule leaves out without recording them are recorded with its description.
-- A rule that raises is skipped (its input passes through) and the failure is shown in the appendix.
local host = require "host"

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
  if type(rule.apply) ~= "function" then
    error(module_name .. ": the rule has no apply function", 0)
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

-- Run `rules` over `entries`. base_env: bot, command_ts, thread_ts, channel, config.
-- Returns kept entries and dropped = { {rule=, reason=, items = { {ts, author, summary, permalink} }} }.
function filters.run(entries, rules, base_env)
  local dropped = {}
  local current = entries
  for _, rule in ipairs(rules) do
    local first_group = #dropped + 1
    local groups = {}      -- reason -> group in `dropped`
    local recorded = {}    -- entry -> true, for entries this rule accounted for
    local n_recorded = 0
    local function record(entry, reason)
      if recorded[entry] then return end
      recorded[entry] = true
      n_recorded = n_recorded + 1
      reason = (type(reason) == "string" and reason ~= "") and reason or rule.description
      local g = groups[reason]
      if not g then
        g = { rule = rule.name, reason = reason, items = {} }
        groups[reason] = g
        dropped[#dropped + 1] = g
      end
      g.items[#g.items + 1] = item_of(entry)
    end
    local env = {}
    for k, v in pairs(base_env or {}) do env[k] = v end
    env.bot = env.bot or {}
    env.config = env.config or {}
    env.drop = record
    env.merge = function(into, others, reason)
      for _, o in ipairs(others) do
        if o ~= into then record(o, reason or ("merged into the entry at " .. tostring(into.ts))) end
      end
    end
    env.drop_where = function(list, fn)
      local kept = {}
      for _, e in ipairs(list) do
        local why = fn(e)
        if why then
          record(e, why ~= true and why or nil)
        else
          kept[#kept + 1] = e
        end
      end
      return kept
    end
    local ok, result = pcall(rule.apply, current, env)
    if not ok or type(result) ~= "table" then
      local why = ok and "apply did not return a list of entries" or tostring(result)
      host.log("error", "filter rule failed, skipped", { rule = rule.name, error = why })
      for i = #dropped, first_group, -1 do dropped[i] = nil end
      dropped[#dropped + 1] = { rule = rule.name, reason = "rule failed and was skipped: " .. why, items = {} }
    else
      -- every entry either returned or recorded: nothing left to find (the usual case, and
      -- the cheap one on big threads)
      if #result + n_recorded ~= #current then
        local still = {}
        for _, e in ipairs(result) do still[e] = true end
        for _, e in ipairs(current) do
          if not still[e] then record(e, nil) end
        end
      end
      current = result
    end
  end
  return current, dropped
end

return filters
