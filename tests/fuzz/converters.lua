-- Fuzz driver for the converters (READ-ONLY use of scripts/lib/mrkdwn.lua, richtext.lua,
-- markdown.lua): random Slack mrkdwn and rich_text built from hostile tokens, each result placed
-- as one bullet item of a list and the whole batch run through `cmark -t xml`. Structure oracle:
-- exactly one top-level item per input (nothing escapes its entry), no raw HTML node, no link or
-- image whose destination is not http(s)/mailto/relative. Text oracle: the letters of the plain
-- words of an input appear, in order, in its output. A failure is shrunk token by token and
-- printed as a Lua string. Usage: lua5.4 tests/fuzz/converters.lua [--seconds N | --runs N]
-- [--seed S] [--kinds mrkdwn,inline,richtext]. Run by `make fuzz` and, briefly, by tests/run_all.py (suite fuzz-short).
package.path = "scripts/?.lua;tests/lua/?.lua;" .. package.path
package.loaded.host = package.loaded.host or {}
local mrkdwn = require "lib.mrkdwn"
local richtext = require "lib.richtext"

local report = require "lib.report"

-- Each converted text sits in a list item under a header line, indented by report.lua's own
-- prefix_lines, as a timeline entry is laid out ("- **time** · author", a blank line, the text):
-- an item never begins with the text itself, so blank lines alone cannot end it before it started.
local function entry(md)
  return "- **entry**\n\n" .. report.prefix_lines(md, "  ")
end

local opts = { seconds = nil, runs = 2000, seed = os.time(), batch = 200, kinds = "mrkdwn,inline,richtext" }
do
  local i = 1
  while arg[i] do
    local k, v = arg[i], arg[i + 1]
    if k == "--seconds" then opts.seconds = tonumber(v); opts.runs = math.huge
    elseif k == "--runs" then opts.runs = tonumber(v)
    elseif k == "--seed" then opts.seed = tonumber(v)
    elseif k == "--kinds" then opts.kinds = v end
    i = i + 2
  end
end
math.randomseed(opts.seed)

-- Tokens: markup a Slack client sends, Markdown that must stay text, HTML, odd characters.
local MARKUP = {
  "*", "_", "~", "`", "```", ">", "&gt;", "&lt;", "&amp;", "<", "|", "\n", "\n\n", " ", "  ", "\t",
  "<@U1>", "<@U2|bob>", "<#C1|general>", "<#C2>", "<!channel>", "<!here|here>", "<!subteam^S1|@ops>",
  "<!date^1700000000^{date_short}|Nov 14>", "<http://a.example/x?y=1|label>", "<https://b.example>",
  "<javascript:alert(1)|click>", "<data:text/html,x|d>", "<mailto:a@b.example|mail>", "<vbscript:x|v>",
  "#", "##", "-", "+", "1.", "1)", "[", "]", "(", ")", "!", "![", "](", "\\", ":smile:", ":+1:", ":x-y_z:",
  "<script>", "</div>", "<img src=x onerror=y>", "<!--", "-->", "&#60;", "&#x3c;", "---", "===", "    ",
  "é", "\u{202E}", "\u{200B}", "\0", "\r", "\r\n", "|", "•", "*bold*", "_it_", "~s~", "`c`",
  "[x](javascript:y)", "<a href=x>", "http://c.example/(p)", "www.d.example", "|-|", "\\*", "&quot;",
}
local WORDS = { "alpha", "Beta", "gamma", "DeLta", "eps", "zeta", "Eta", "theta", "iota", "kappa" }

local function random_text()
  local toks, words = {}, {}
  for _ = 1, math.random(1, 14) do
    if math.random() < 0.3 then
      local w = WORDS[math.random(#WORDS)]
      toks[#toks + 1] = { text = w, word = true }
    else
      toks[#toks + 1] = { text = MARKUP[math.random(#MARKUP)] }
    end
  end
  return toks, words
end

local function join(toks)
  local out = {}
  for i, t in ipairs(toks) do out[i] = t.text end
  return table.concat(out)
end

local function resolver()
  return {
    user = function(id) return id end, channel = function(id) return id end,
    usergroup = function(id) return id end, date = function() return nil end,
  }
end

-- A rich_text block built from the same tokens: sections, quotes, code, lists with indent.
local function random_block(toks)
  local elements, i = {}, 1
  local kinds = { "rich_text_section", "rich_text_quote", "rich_text_preformatted", "rich_text_list" }
  while i <= #toks do
    local n = math.random(1, 3)
    local inner = {}
    for j = i, math.min(#toks, i + n - 1) do
      local t = toks[j].text
      local r = math.random()
      if r < 0.6 or toks[j].word then
        inner[#inner + 1] = { type = "text", text = t,
          style = math.random() < 0.3 and { bold = true, code = math.random() < 0.3, italic = true } or nil }
      elseif r < 0.8 then
        inner[#inner + 1] = { type = "link", url = t, text = t }
      elseif r < 0.9 then
        inner[#inner + 1] = { type = "emoji", name = t }
      else
        inner[#inner + 1] = { type = "user", user_id = t }
      end
    end
    local kind = kinds[math.random(#kinds)]
    if kind == "rich_text_list" then
      elements[#elements + 1] = { type = kind, style = math.random() < 0.5 and "bullet" or "ordered",
        indent = math.random(0, 3), elements = { { type = "rich_text_section", elements = inner } } }
    else
      elements[#elements + 1] = { type = kind, elements = inner }
    end
    i = i + n
  end
  return { type = "rich_text", elements = elements }
end

local function letters(s)
  return (s:gsub("[^%a]", ""))
end

-- Text oracle: the words' letters, in order, are a subsequence of the output's letters.
local function letters_kept(toks, md)
  local want = {}
  for _, t in ipairs(toks) do if t.word then want[#want + 1] = t.text end end
  local have = letters(md)
  local pos = 1
  for _, c in ipairs({ letters(table.concat(want)):byte(1, -1) }) do
    local at = have:find(string.char(c), pos, true)
    if not at then return false end
    pos = at + 1
  end
  return true
end

local cmark_xml = require("helpers.cmark").xml

local SAFE_DEST = { "^https?://", "^mailto:", "^#", "^attachments/", "^%./" }
local function safe_dest(d)
  if d == "" then return true end
  for _, p in ipairs(SAFE_DEST) do if d:lower():find(p) then return true end end
  return not d:find("^[%a][%w+.-]*:") -- relative, no scheme
end

-- Top-level blocks of a cmark XML document: lists, items of those lists, anything else.
local function top_level(xml)
  local lists, items, others = 0, 0, 0
  for name in xml:gmatch("\n  <(%a+)") do
    if name == "list" then lists = lists + 1 else others = others + 1 end
  end
  for _ in xml:gmatch("\n    <item>") do items = items + 1 end
  return lists, items, others
end

-- Structure oracle over a batch: returns nil, or the index of the first offending entry and why.
local function check_batch(mds)
  local doc = {}
  for i, md in ipairs(mds) do doc[i] = entry(md) end
  local xml = cmark_xml(table.concat(doc, "\n") .. "\n")
  if xml:find("<html_block") or xml:find("<html_inline") then
    for i, md in ipairs(mds) do
      local one = cmark_xml(entry(md) .. "\n")
      if one:find("<html_") then return i, "raw HTML" end
    end
    return 0, "raw HTML (only together)"
  end
  for dest in xml:gmatch('destination="([^"]*)"') do
    local d = dest:gsub("&amp;", "&"):gsub("&quot;", '"'):gsub("&lt;", "<"):gsub("&gt;", ">")
    if not safe_dest(d) then
      for i, md in ipairs(mds) do
        if cmark_xml(md):find('destination="' .. dest, 1, true) then
          return i, "unsafe link " .. d
        end
      end
      return 0, "unsafe link " .. d
    end
  end
  -- one list, one item per input, nothing else at the top level
  local lists, items, others = top_level(xml)
  if lists ~= 1 or items ~= #mds or others > 0 then
    for i, md in ipairs(mds) do
      local one = cmark_xml(entry(md) .. "\n")
      local l, it, ot = top_level(one)
      if l ~= 1 or it ~= 1 or ot > 0 then return i, "escapes its entry" end
    end
    return 0, string.format("entries interfere (%d lists, %d items for %d inputs)", lists, items, #mds)
  end
  return nil
end

local function convert(kind, toks)
  if kind == "mrkdwn" then return mrkdwn.to_markdown(join(toks), resolver()) end
  if kind == "inline" then return mrkdwn.to_inline(join(toks), resolver()) end
  math.randomseed(#toks * 7919 + #join(toks)) -- the same block for the same tokens while shrinking
  return richtext.to_markdown(random_block(toks), resolver())
end

local function fails(kind, toks)
  local ok, md = pcall(convert, kind, toks)
  if not ok then return "Lua error: " .. tostring(md) end
  if kind ~= "richtext" and not letters_kept(toks, md) then return "letters lost" end
  local i, why = check_batch({ md })
  return i and why or nil
end

local function shrink(kind, toks)
  local changed = true
  while changed do
    changed = false
    for i = #toks, 1, -1 do
      local fewer = {}
      for j, t in ipairs(toks) do if j ~= i then fewer[#fewer + 1] = t end end
      if #fewer > 0 and fails(kind, fewer) then
        toks, changed = fewer, true
      end
    end
  end
  return toks
end

local runs, failures, seen = 0, 0, {}
local deadline = opts.seconds and (os.clock() + opts.seconds) or math.huge
local KINDS = {}
for k in opts.kinds:gmatch("[%w]+") do KINDS[#KINDS + 1] = k end
while runs < opts.runs and os.clock() < deadline do
  local batch, inputs = {}, {}
  for b = 1, opts.batch do
    local kind = KINDS[(b % #KINDS) + 1]
    local toks = random_text()
    local ok, md = pcall(convert, kind, toks)
    runs = runs + 1
    if not ok or (kind ~= "richtext" and not letters_kept(toks, md)) then
      local small = shrink(kind, toks)
      local key = kind .. join(small)
      if not seen[key] then
        seen[key] = true
        failures = failures + 1
        print(string.format("FAIL %s (%s): %q", kind, fails(kind, small) or "?", join(small)))
      end
    else
      batch[#batch + 1] = md
      inputs[#inputs + 1] = { kind, toks }
    end
  end
  local i, why = check_batch(batch)
  while i do
    if i == 0 then
      print("FAIL batch: " .. why)
      failures = failures + 1
      break
    end
    local kind, toks = inputs[i][1], inputs[i][2]
    local small = shrink(kind, toks)
    local key = kind .. join(small)
    if not seen[key] then
      seen[key] = true
      failures = failures + 1
      print(string.format("FAIL %s (%s): %q", kind, fails(kind, small) or why, join(small)))
    end
    table.remove(batch, i)
    table.remove(inputs, i)
    i, why = check_batch(batch)
  end
end
print(string.format("converters: %d executions, %d distinct failures, seed %d", runs, failures, opts.seed))
os.exit(failures == 0 and 0 or 1)
