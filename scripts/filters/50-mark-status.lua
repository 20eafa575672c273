-- Marks entries for the figures and the report, drops nothing: `@bot statusupdate …` is a status
-- update; `@bot incident resolve` a resolution; a config timeline.resolution_reaction (default
-- :white_check_mark:) on a message, or a config timeline.resolution_phrases / mitigation_phrases
-- phrase in it, a resolution or mitigation. Run by lib/filters.lua; lib/figures.lua reads the marks.
-- Priority of the sources of one mark: the command, then the reaction, then a phrase.
local RANK = { ["incident resolve"] = 3, reaction = 2, phrase = 1 }

local function mark(entry, what, source)
  entry.marks = entry.marks or {}
  entry.marks.sources = entry.marks.sources or {}
  local old = entry.marks.sources[what]
  if old and RANK[old] >= RANK[source] then return end
  entry.marks[what] = true
  entry.marks.sources[what] = source
end

-- "<@BOT> statusupdate ..." -> "statusupdate ..." (lowercase); nil when not addressed to the bot.
local function command_text(text, bot_user_id)
  local who, at = text:match("^%s*<@([%w]+)[^>]*>%s*()")
  if not who or (bot_user_id and who ~= bot_user_id) then return nil end
  return text:sub(at):lower() -- (only a message to the bot is copied and lowercased)
end

-- Each phrase lowercased, with a Lua pattern matching it as whole words only.
local function phrase_patterns(phrases)
  local out = {}
  for i, phrase in ipairs(phrases or {}) do
    local plain = tostring(phrase):lower()
    local escaped = plain:gsub("%p", "%%%0")
    out[i] = { plain = plain, pattern = "%f[%w]" .. escaped .. "%f[%W]" }
  end
  return out
end

local function has_phrase(lower_text, patterns)
  for i = 1, #patterns do
    local p = patterns[i]
    if lower_text:find(p.plain, 1, true) and lower_text:find(p.pattern) then return true end
  end
  return false
end

-- The marks one message earns, in the order they are given (mark() keeps the strongest source):
-- { what, source, what, source, ... }, or nil. From entry.raw: worked out as the entry is read.
local function marks_of(entry, env)
  local p = env.patterns
  if not p then
    local t = env.config.timeline or {}
    p = { reaction = t.resolution_reaction or "white_check_mark",
          resolution = phrase_patterns(t.resolution_phrases), mitigation = phrase_patterns(t.mitigation_phrases) }
    p.any_phrase = p.resolution[1] ~= nil or p.mitigation[1] ~= nil
    env.patterns = p
  end
  local out
  local function add(what, source)
    out = out or {}
    out[#out + 1] = what
    out[#out + 1] = source
  end
  local m = entry.raw or {}
  local text = type(m.text) == "string" and m.text or ""
  local command = command_text(text, env.bot.user_id)
  if command and command:match("^statusupdate%f[%W]") then add("status_update", "phrase") end
  if command and command:match("^incident%s+resolve%f[%W]") then add("resolution", "incident resolve") end
  if m.reactions ~= nil and type(m.reactions) == "table" then
    for _, r in ipairs(m.reactions) do
      if type(r) == "table" and r.name == p.reaction then add("resolution", "reaction") end
    end
  end
  if p.any_phrase and text ~= "" and not (entry.author and entry.author.is_bot) then
    local lower = text:lower()
    if has_phrase(lower, p.resolution) then add("resolution", "phrase") end
    if has_phrase(lower, p.mitigation) then add("mitigation", "phrase") end
  end
  return out
end

return {
  name = "50-mark-status",
  description = "Marks status updates, mitigation and resolution; drops nothing.",
  prepare = marks_of,
  apply = function(entries, env)
    local marks_for = env.prepared
    for _, entry in ipairs(entries) do
      local list = marks_for[entry]
      if list then
        for i = 1, #list, 2 do mark(entry, list[i], list[i + 1]) end
      end
    end
    return entries
  end,
}
