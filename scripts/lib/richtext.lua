-- Slack `rich_text` blocks (SLACK-FACTS 6.2) -> CommonMark-safe Markdown for a timeline entry.
-- Called by lib/timeline.lua, which prefers a message's rich_text block over its mrkdwn `text`;
-- calls lib/markdown.lua (escaping) and lib/mrkdwn.lua (date formatting). Like mrkdwn, the result
-- is block-safe: each line may follow the caller's list-item indent. Unknown elements show their
-- text, if any; odd input never raises.
local markdown = require "lib.markdown"
local mrkdwn = require "lib.mrkdwn"

local richtext = {}

local find, concat = string.find, table.concat

local function str(v)
  if type(v) == "string" then
    return v
  end
  if type(v) == "number" then
    return tostring(v)
  end
  return nil
end

local function list_of(v)
  if type(v) == "table" then
    return v
  end
  return {}
end

local function resolved(resolve, kind, id)
  if not id then
    return nil
  end
  return mrkdwn.call_resolver(resolve, kind, id)
end

local function emoji_text(e)
  local name = str(e.name)
  if not name or name == "" then
    return str(e.unicode) or ""
  end
  return ":" .. name .. ":"
end

-- The plain text an inline element shows, and the URL when it is a link.
local function element_text(e, resolve)
  local t = e.type
  if t == "text" then
    local v = e.text
    if type(v) == "string" then
      return v -- (the usual case, without the call to str)
    end
    return str(v) or ""
  elseif t == "link" then
    local url = str(e.url) or ""
    local label = str(e.text)
    if not label or label == "" then
      label = url
    end
    return label, url
  elseif t == "user" then
    local id = str(e.user_id)
    return "@" .. (resolved(resolve, "user", id) or id or "unknown")
  elseif t == "channel" then
    local id = str(e.channel_id)
    return "#" .. ((resolved(resolve, "channel", id) or id or "unknown"):gsub("^#", ""))
  elseif t == "usergroup" then
    local id = str(e.usergroup_id)
    return "@" .. ((resolved(resolve, "usergroup", id) or id or "unknown"):gsub("^@", ""))
  elseif t == "broadcast" then
    return "@" .. (str(e.range) or "here")
  elseif t == "emoji" then
    return emoji_text(e)
  elseif t == "date" then
    local fallback = str(e.fallback)
    if fallback and fallback ~= "" then
      return fallback
    end
    return mrkdwn.format_date(resolve, e.timestamp, str(e.format)) or ""
  elseif t == "color" then
    return str(e.value) or ""
  end
  return str(e.text) or ""
end

-- Emoji as Unicode when resolve.emoji knows the name (lib/emoji.lua), else as a shortcode that
-- emphasis cannot break (`_` only between letters/digits), else escaped.
local function emoji_markdown(e, resolve)
  local name = str(e.name)
  if name and name ~= "" then
    local fn = resolve and resolve.emoji
    if type(fn) == "function" then
      local char = fn(name, e.skin_tone)
      if type(char) == "string" and char ~= "" then
        return markdown.escape_chars(char)
      end
    end
    local text = ":" .. name .. ":"
    if not name:find("[^%w_+:-]") and not name:find("[^%w]_") and not name:find("_[^%w]")
      and not name:find("^_") and not name:find("_$") then
      return text
    end
    return markdown.escape_chars(text)
  end
  return markdown.escape_chars(str(e.unicode) or "")
end

-- The 16 possible styles, made once: STYLES[n] with n = bold 1 + italic 2 + strike 4 + code 8.
-- Runs compare styles by identity; `no_code` is the same style without code.
local STYLES = {}
for n = 0, 15 do
  STYLES[n] = { bold = n & 1 ~= 0, italic = n & 2 ~= 0, strike = n & 4 ~= 0, code = n & 8 ~= 0 }
end
for n = 0, 15 do
  STYLES[n].no_code = STYLES[n & 7]
end

-- The emphasis markers in the order they nest (outermost first), with the style flag each needs.
local MARKERS = { { flag = "bold", md = "**" }, { flag = "italic", md = "_" }, { flag = "strike", md = "~~" } }

local function style_of(style)
  if style == nil or type(style) ~= "table" then
    return STYLES[0]
  end
  return STYLES[(style.bold == true and 1 or 0) + (style.italic == true and 2 or 0)
    + (style.strike == true and 4 or 0) + (style.code == true and 8 or 0)]
end

-- Builds the Markdown lines of inline elements. Markers are opened lazily (right before the first
-- non-space content that needs them) and closed as soon as the style drops them, with edge spaces
-- kept outside (CommonMark emphasis cannot start or end with a space). So two runs of one style
-- share one pair of markers whatever the elements (`**~~:x:[l](u)~~**`, never `~~****~~`), and
-- adjacent code pieces become one code span: two spans side by side would merge their backtick
-- runs and leave code text outside any span.
local writer_mt = {}
writer_mt.__index = writer_mt

local function new_writer()
  return setmetatable({ lines = {}, buf = {}, open = {}, code = nil }, writer_mt)
end

-- Move trailing spaces of the current line out of the way of a closing marker.
function writer_mt:close_markers(keep)
  local open, buf = self.open, self.buf
  local n = #open
  local cut = n + 1
  for i = 1, n do
    if not keep or not keep[open[i].flag] then
      cut = i
      break
    end
  end
  if cut > n then
    return
  end
  local last = buf[#buf] or ""
  local trail = last:match("%s*$")
  if trail ~= "" then
    buf[#buf] = last:sub(1, #last - #trail)
  end
  for i = n, cut, -1 do
    buf[#buf + 1] = open[i].md
    open[i] = nil
  end
  if trail ~= "" then
    buf[#buf + 1] = trail
  end
end

-- Append Markdown `md` (one line, already escaped) in `style` (no code bit).
function writer_mt:put(md, style)
  if md == "" then
    return
  end
  self:close_markers(style)
  local lead, body = md:match("^(%s*)(.*)$")
  local buf = self.buf
  if lead ~= "" then
    buf[#buf + 1] = lead
  end
  if body == "" then
    return
  end
  local open = self.open
  for _, m in ipairs(MARKERS) do
    if style[m.flag] then
      local found = false
      for i = 1, #open do
        if open[i] == m then
          found = true
        end
      end
      if not found then
        open[#open + 1] = m
        buf[#buf + 1] = m.md
      end
    end
  end
  buf[#buf + 1] = body
end

function writer_mt:flush_code()
  local code = self.code
  if code then
    self.code = nil
    self:put(markdown.code_span(concat(code.parts)), code.style)
  end
end

-- Plain `text` as code in `style` (its no_code part wraps the span); joins a code run in progress.
function writer_mt:put_code(text, style)
  local code = self.code
  if code and code.style ~= style then
    self:flush_code()
    code = nil
  end
  if not code then
    code = { parts = {}, style = style }
    self.code = code
  end
  code.parts[#code.parts + 1] = text
end

function writer_mt:end_line()
  self:flush_code()
  self:close_markers(nil)
  self.lines[#self.lines + 1] = concat(self.buf)
  self.buf = {}
end

-- Text that may hold line breaks (a lone CR is one too: CommonMark ends a line there).
function writer_mt:text(text, style, to_md)
  if find(text, "\r", 1, true) then
    text = text:gsub("\r\n?", "\n")
  end
  local pos = 1
  while true do
    local nl = find(text, "\n", pos, true)
    local piece = nl and text:sub(pos, nl - 1) or text:sub(pos)
    if style.code then
      if piece ~= "" then
        self:put_code(piece, style.no_code)
      end
    else
      self:flush_code()
      self:put(to_md(piece), style)
    end
    if not nl then
      break
    end
    self:end_line()
    pos = nl + 1
  end
end

function writer_mt:finish()
  self:end_line()
  return self.lines
end

-- Inline elements -> array of Markdown lines (not yet safe at their starts).
-- `plain` = true for preformatted blocks: text only, no styles, no escaping.
local function inline_lines(elements, resolve, plain)
  local list = list_of(elements)
  if plain then
    local parts = {}
    for k = 1, #list do
      local e = list[k]
      if type(e) == "table" then
        parts[#parts + 1] = (element_text(e, resolve))
      end
    end
    return { concat(parts) }
  end
  local w = new_writer()
  local escape_chars = markdown.escape_chars
  for k = 1, #list do
    local e = list[k]
    if e == nil then
      break -- (where ipairs would stop)
    end
    if type(e) == "table" then
      local style = style_of(e.style)
      local t = e.type
      if t == "link" and e.unsafe ~= true and markdown.safe_url(str(e.url)) then
        local text, url = element_text(e, resolve)
        text = text:gsub("[\r\n]+", " ")
        w:flush_code()
        local label_md = style.code and markdown.code_span(text) or escape_chars(text)
        w:put(markdown.link(label_md, url), style.no_code)
      elseif t == "link" then
        local text, url = element_text(e, resolve)
        w:text(text ~= url and (text .. " (" .. url .. ")") or url, style, escape_chars)
      elseif t == "color" then
        w:put_code((element_text(e, resolve):gsub("[\r\n]+", " ")), style.no_code)
      elseif t == "emoji" and not style.code then
        w:flush_code()
        w:put(emoji_markdown(e, resolve), style)
      else
        w:text((element_text(e, resolve)), style, escape_chars)
      end
    end
  end
  return w:finish()
end

-- Lines of one paragraph-like element: safe starts, trailing spaces gone, hard breaks between
-- non-empty lines, empty lines as paragraph breaks (collapsed), no empty lines at the ends.
local function paragraph(lines, prefix)
  local out = {}
  for k = 1, #lines do -- (lines is built by inline_lines: no holes)
    local md = markdown.line_start(lines[k])
    local last = md:byte(-1)
    if last == 32 or last == 9 then -- a space or a tab at the end
      md = md:gsub("[ \t]+$", "")
    end
    if md == "" then
      if #out > 0 and out[#out] ~= "" then
        out[#out + 1] = ""
      end
    else
      if #out > 0 and out[#out] ~= "" then
        out[#out] = out[#out] .. "\\"
      end
      out[#out + 1] = md
    end
  end
  while out[#out] == "" do
    out[#out] = nil
  end
  if prefix then
    for i, md in ipairs(out) do
      if md == "" then
        out[i] = prefix:gsub("%s+$", "")
      else
        out[i] = prefix .. md
      end
    end
  end
  return out
end

local function is_list(e)
  return type(e) == "table" and e.type == "rich_text_list"
end

-- Slack's composer nests lists at most 8 deep; deeper `indent` values (a hostile payload: 1e7, or
-- thousands of stair-stepped lists) are shown at that depth, so the output stays linear in size.
local MAX_LIST_DEPTH = 8

-- A run of consecutive rich_text_list elements (nesting is expressed by `indent`) -> lines.
-- Each item's marker sits at the content column of the last item one level up.
local function list_lines(lists, resolve)
  local out = {}
  local content_col = {} -- content_col[level] = column where the last item's text starts
  for _, list in ipairs(lists) do
    local level = math.min(MAX_LIST_DEPTH, math.max(0, math.floor(tonumber(list.indent) or 0)))
    local base = 0
    for l = level - 1, 0, -1 do
      if content_col[l] then
        base = content_col[l]
        break
      end
    end
    for l in pairs(content_col) do
      if l > level then
        content_col[l] = nil
      end
    end
    local ordered = list.style == "ordered"
    local number = math.max(0, math.floor(tonumber(list.offset) or 0))
    local pad = string.rep(" ", base)
    for i, item in ipairs(list_of(list.elements)) do
      local marker = "- "
      if ordered then
        number = number + 1
        marker = number .. ". "
      end
      -- an ordered list not starting at 1 cannot interrupt a paragraph: give it a blank line
      if ordered and i == 1 and number ~= 1 and #out > 0 then
        out[#out + 1] = ""
      end
      local body = {}
      if type(item) == "table" then
        body = paragraph(inline_lines(item.elements or (item.type == "text" and { item }) or {}, resolve))
      end
      local cont = string.rep(" ", base + #marker)
      out[#out + 1] = pad .. marker .. (body[1] or "")
      for j = 2, #body do
        out[#out + 1] = body[j] == "" and "" or cont .. body[j]
      end
      content_col[level] = base + #marker
    end
  end
  return out
end

-- A rich_text block -> Markdown. `resolve` as for mrkdwn.to_markdown: user(id), channel(id),
-- usergroup(id) -> name | nil, date(ts, format) -> string | nil.
function richtext.to_markdown(block, resolve)
  if type(block) ~= "table" then
    return ""
  end
  local blocks = {}
  local elements = list_of(block.elements)
  local i = 1
  while i <= #elements do
    local e = elements[i]
    local lines
    if is_list(e) then
      local run = {}
      while is_list(elements[i]) do
        run[#run + 1] = elements[i]
        i = i + 1
      end
      i = i - 1
      lines = list_lines(run, resolve)
    elseif type(e) ~= "table" then
      lines = {}
    elseif e.type == "rich_text_preformatted" then
      local code = table.concat(inline_lines(e.elements, resolve, true), "\n")
      lines = { markdown.fence(code, str(e.language)) }
    elseif e.type == "rich_text_quote" then
      lines = paragraph(inline_lines(e.elements, resolve), "> ")
    elseif e.type == "rich_text_section" then
      lines = paragraph(inline_lines(e.elements, resolve))
    elseif type(e.elements) == "table" then
      lines = paragraph(inline_lines(e.elements, resolve))
    else
      lines = paragraph(inline_lines({ e }, resolve))
    end
    if #lines == 1 then
      blocks[#blocks + 1] = lines[1]
    elseif #lines > 0 then
      blocks[#blocks + 1] = concat(lines, "\n")
    end
    i = i + 1
  end
  if #blocks == 1 then
    return blocks[1]
  end
  return concat(blocks, "\n\n")
end

-- The first rich_text block of a message, or nil.
function richtext.find_block(message)
  if type(message) ~= "table" then
    return nil
  end
  local blocks = message.blocks
  if blocks == nil or type(blocks) ~= "table" then -- (nil first: most messages have no blocks)
    return nil
  end
  for _, b in ipairs(blocks) do
    if type(b) == "table" and b.type == "rich_text" then
      return b
    end
  end
  return nil
end

return richtext
