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

return {
  name = "50-mark-status",
  description = "Marks status updates, mitigation and resolution; drops nothing.",
  apply = function(entries, env)
    local t = env.config.timeline or {}
    local reaction = t.resolution_reaction or "white_check_mark"
    local bot_user_id = env.bot and env.bot.user_id
    local resolution_patterns = phrase_patterns(t.resolution_phrases)
    local mitigation_patterns = phrase_patterns(t.mitigation_phrases)
    local any_phrase = resolution_patterns[1] ~= nil or mitigation_patterns[1] ~= nil
    for _, entry in ipairs(entries) do
      local m = entry.raw or {}
      local text = type(m.text) == "string" and m.text or ""
      local command = command_text(text, bot_user_id)
      if command and command:match("^statusupdate%f[%W]") then mark(entry, "status_update", "phrase") end
      if command and command:match("^incident%s+resolve%f[%W]") then
        mark(entry, "resolution", "incident resolve")
      end
      if m.reactions ~= nil and type(m.reactions) == "table" then
        for _, r in ipairs(m.reactions) do
          if type(r) == "table" and r.name == reaction then mark(entry, "resolution", "reaction") end
        end
      end
      if any_phrase and text ~= "" and not (entry.author and entry.author.is_bot) then
        local lower = text:lower()
        if has_phrase(lower, resolution_patterns) then mark(entry, "resolution", "phrase") end
        if has_phrase(lower, mitigation_patterns) then mark(entry, "mitigation", "phrase") end
      end
    end
    return entries
  end,
}
