-- Marks action items, drops nothing: a message carrying one of config
-- timeline.action_item_reactions (default :memo: and :ballot_box_with_check:) or starting with one
-- of timeline.action_item_prefixes (default TODO:, Action:, AI:, Follow-up:; any case). The report
-- lists each as a task "- [ ] text — @owner"; the owner is the first person the message mentions.
-- To change the words, edit the config lists; to change what counts, edit this file.

-- The prefixes lowercased, once per report: { {prefix, lowercased}, … }, the longest's length, and
-- the set of their first bytes in either case (nil when a prefix is empty: it starts any text).
local function lowered(prefixes)
  local out, longest, first = {}, 0, {}
  for i, p in ipairs(prefixes) do
    local lp = tostring(p):lower()
    out[i] = { p, lp }
    if #lp > longest then longest = #lp end
    if lp == "" then
      first = nil
    elseif first then
      first[lp:byte(1)] = true
      first[lp:sub(1, 1):upper():byte(1)] = true
    end
  end
  return out, longest, first
end

-- The prefix the text starts with (case-insensitive, after leading spaces, quotes and emphasis
-- marks), or nil. This runs on every message: a text whose first character starts no prefix is
-- answered without making any string, and only the text's first characters are lowercased.
local function prefix_of(text, prefixes, longest, first)
  local start = text:find("[^%s>*_]")
  if first and not (start and first[text:byte(start)]) then return nil end
  local head = start and text:sub(start, start + longest - 1):lower() or ""
  for _, p in ipairs(prefixes) do
    local lp = p[2]
    if head:sub(1, #lp) == lp then return p[1] end
  end
  return nil
end

-- The task text: the message's Markdown on one line, without the prefix.
local function task_text(entry, prefix)
  local md = (entry.text_md or ""):gsub("%s*\n%s*", " "):gsub("^%s+", "")
  if prefix then
    local cut = md:lower():find(tostring(prefix):lower(), 1, true)
    if cut and cut <= 4 then md = md:sub(cut + #prefix):gsub("^%s+", "") end
  end
  return md
end

-- The first person mentioned (not the bot), by name.
local function owner_of(text, env)
  local bot_id = env.bot and env.bot.user_id
  for id in text:gmatch("<@([UW][%w]+)[|>]") do
    if id ~= bot_id then return env.name_of and env.name_of(id) or id end
  end
  return nil
end

-- The action item one entry is, as it is read (entry.raw's text and reactions), or nil.
local function item_of(entry, env)
  local c = env.words
  if not c then
    local t = env.config.timeline or {}
    c = { wanted = {} }
    for _, name in ipairs(t.action_item_reactions or { "memo", "ballot_box_with_check" }) do c.wanted[name] = true end
    c.prefixes, c.longest, c.first = lowered(t.action_item_prefixes or { "TODO:", "Action:", "AI:", "Follow-up:" })
    env.words = c
  end
  local raw = entry.raw or {}
  local text = type(raw.text) == "string" and raw.text or ""
  local prefix = prefix_of(text, c.prefixes, c.longest, c.first)
  local by_reaction = false
  if type(raw.reactions) == "table" then
    for _, r in ipairs(raw.reactions) do
      if type(r) == "table" and c.wanted[r.name] then by_reaction = true end
    end
  end
  if not (prefix or by_reaction) then return nil end
  return { text = task_text(entry, prefix), owner = owner_of(text, env), source = prefix and "prefix" or "reaction" }
end

return {
  name = "70-mark-action-items",
  description = "Marks action items (reactions, TODO:/Action:/AI:/Follow-up: prefixes); drops nothing.",
  prepare = item_of,
  apply = function(entries, env)
    local item_for = env.prepared
    for _, entry in ipairs(entries) do
      local item = item_for[entry]
      if item then
        entry.marks = entry.marks or {}
        entry.marks.action_item = item
      end
    end
    return entries
  end,
}
