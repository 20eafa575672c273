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

-- An emoji shortcode whose `_` sit between letters/digits cannot form emphasis: keep it as is.
local function emoji_markdown(text)
  local name = text:match("^:([%w_+:-]+):$")
  if name and not name:find("[^%w]_") and not name:find("_[^%w]") and not name:find("^_")
    and not name:find("_$") then
    return text
  end
  return markdown.escape_chars(text)
end

-- The 16 possible styles, made once: STYLES[n] with n = bold 1 + italic 2 + strike 4 + code 8.
-- Runs compare styles by identity; `no_code` is the same style without code (for link labels).
local STYLES = {}
for n = 0, 15 do
  STYLES[n] = { bold = n & 1 ~= 0, italic = n & 2 ~= 0, strike = n & 4 ~= 0, code = n & 8 ~= 0 }
end
for n = 0, 15 do
  STYLES[n].no_code = STYLES[n & 7]
end

-- open/close: the markers wrap puts around a run of that style ("**_" ... "_**").
for n = 0, 15 do
  local s = STYLES[n]
  s.open = (s.bold and "**" or "") .. (s.italic and "_" or "") .. (s.strike and "~~" or "")
  s.close = (s.strike and "~~" or "") .. (s.italic and "_" or "") .. (s.bold and "**" or "")
end

-- IS_SPACE[b] for the bytes of `%s`.
local IS_SPACE = {}
for b = 0, 255 do
  IS_SPACE[b] = string.char(b):find("%s") ~= nil
end

local function style_of(style)
  if style == nil or type(style) ~= "table" then
    return STYLES[0]
  end
  return STYLES[(style.bold == true and 1 or 0) + (style.italic == true and 2 or 0)
    + (style.strike == true and 4 or 0) + (style.code == true and 8 or 0)]
end

-- Wrap one line of inline Markdown in style markers, with edge spaces kept outside the markers
-- (CommonMark emphasis cannot start or end with a space).
local function wrap(md, style)
  if not (style.bold or style.italic or style.strike) then
    return md
  end
  local b1 = md:byte(1)
  if b1 and not IS_SPACE[b1] and not IS_SPACE[md:byte(-1)] then
    return style.open .. md .. style.close -- no edge spaces (the usual case)
  end
  local first = md:find("%S")
  if not first then
    return md
  end
  local last = #md
  while md:find("^%s", last) do
    last = last - 1
  end
  local lead, body, trail = md:sub(1, first - 1), md:sub(first, last), md:sub(last + 1)
  if style.strike then
    body = "~~" .. body .. "~~"
  end
  if style.italic then
    body = "_" .. body .. "_"
  end
  if style.bold then
    body = "**" .. body .. "**"
  end
  return lead .. body .. trail
end

-- One styled run (text that may hold newlines) -> Markdown lines appended to `lines`.
-- `lines` always has a current (last) line that inline pieces are appended to.
local function add_run(lines, text, style, to_md)
  if not find(text, "\n", 1, true) then
    if text ~= "" then
      local md = style.code and markdown.code_span(text) or to_md(text)
      if style.open ~= "" then
        md = wrap(md, style)
      end
      lines[#lines] = lines[#lines] .. md
    end
    return
  end
  local pos = 1
  while true do
    local nl = text:find("\n", pos, true)
    local piece = nl and text:sub(pos, nl - 1) or text:sub(pos)
    if pos > 1 then
      lines[#lines + 1] = ""
    end
    if piece ~= "" then
      local md
      if style.code then
        md = markdown.code_span(piece)
      else
        md = to_md(piece)
      end
      lines[#lines] = lines[#lines] .. wrap(md, style)
    end
    if not nl then
      break
    end
    pos = nl + 1
  end
end

-- Inline elements -> array of Markdown lines (not yet safe at their starts).
-- Consecutive text elements with the same style are merged first, so `**a****b**` never occurs.
-- `plain` = true for preformatted blocks: text only, no styles, no escaping.
local function inline_lines(elements, resolve, plain)
  local lines = { "" }
  local plain_parts = plain and {}
  -- the current same-style run of texts, when there is one: its first text, then (from the
  -- second text on) all of its texts in `more`
  local pending, more, pending_style = nil, nil, nil
  local escape_chars = markdown.escape_chars
  local list = list_of(elements)
  for k = 1, #list do
    local e = list[k]
    if e == nil then
      break -- (where ipairs would stop)
    end
    if type(e) == "table" then
      local text, url = element_text(e, resolve)
      if plain then
        plain_parts[#plain_parts + 1] = text
      else
        local style = style_of(e.style)
        if e.type == "text" then
          if pending and pending_style ~= style then
            add_run(lines, more and concat(more) or pending, pending_style, escape_chars)
            pending, more = nil, nil
          end
          if not pending then
            pending, pending_style = text, style
          elseif more then
            more[#more + 1] = text
          else
            more = { pending, text }
          end
        else
          if pending then
            add_run(lines, more and concat(more) or pending, pending_style, escape_chars)
            pending, more = nil, nil
          end
          if e.type == "link" and e.unsafe ~= true then
            local label_md = style.code and markdown.code_span(text) or markdown.escape_chars(text)
            lines[#lines] = lines[#lines] .. wrap(markdown.link(label_md, url), style.no_code)
          elseif e.type == "link" then
            local shown = text ~= url and (text .. " (" .. url .. ")") or url
            add_run(lines, shown, style, markdown.escape_chars)
          elseif e.type == "color" then
            lines[#lines] = lines[#lines] .. markdown.code_span(text)
          elseif e.type == "emoji" then
            add_run(lines, text, style, emoji_markdown)
          else
            add_run(lines, text, style, markdown.escape_chars)
          end
        end
      end
    end
  end
  if pending then
    add_run(lines, more and concat(more) or pending, pending_style, escape_chars)
  end
  if plain then
    return { table.concat(plain_parts) }
  end
  return lines
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

-- A run of consecutive rich_text_list elements (nesting is expressed by `indent`) -> lines.
-- Each item's marker sits at the content column of the last item one level up.
local function list_lines(lists, resolve)
  local out = {}
  local content_col = {} -- content_col[level] = column where the last item's text starts
  for _, list in ipairs(lists) do
    local level = math.max(0, math.floor(tonumber(list.indent) or 0))
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
