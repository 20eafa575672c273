-- Slack `rich_text` blocks (SLACK-FACTS 6.2) -> CommonMark-safe Markdown for a timeline entry.
-- Called by lib/timeline.lua, which prefers a message's rich_text block over its mrkdwn `text`;
-- calls lib/markdown.lua (escaping) and lib/mrkdwn.lua (date formatting). Like mrkdwn, the result
-- is block-safe: each line may follow the caller's list-item indent. Unknown elements show their
-- text, if any; odd input never raises.
local markdown = require "lib.markdown"
local mrkdwn = require "lib.mrkdwn"

local richtext = {}

local find, sub, byte, match, concat = string.find, string.sub, string.byte, string.match, table.concat

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

-- The emphasis markers in the order they nest (outermost first), with the style flag each needs.
local MARKERS = { { flag = "bold", md = "**" }, { flag = "italic", md = "_" }, { flag = "strike", md = "~~" } }

-- The 16 possible styles, made once: STYLES[n] with n = bold 1 + italic 2 + strike 4 + code 8.
-- Runs compare styles by identity; `no_code` is the same style without code; `markers` the
-- MARKERS it needs, in order (empty for plain text, which then skips the marker loop).
local STYLES = {}
for n = 0, 15 do
  local style = { bold = n & 1 ~= 0, italic = n & 2 ~= 0, strike = n & 4 ~= 0, code = n & 8 ~= 0, markers = {} }
  for _, m in ipairs(MARKERS) do
    if style[m.flag] then style.markers[#style.markers + 1] = m end
  end
  STYLES[n] = style
end
for n = 0, 15 do
  STYLES[n].no_code = STYLES[n & 7]
end
local PLAIN = STYLES[0]

local function style_of(style)
  if style == nil or type(style) ~= "table" then
    return PLAIN
  end
  return STYLES[(style.bold == true and 1 or 0) + (style.italic == true and 2 or 0)
    + (style.strike == true and 4 or 0) + (style.code == true and 8 or 0)]
end

-- %s in a pattern: the bytes a piece's leading or trailing white space can be made of.
local IS_SPACE = { [9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true }

-- Builds the Markdown lines of inline elements. Markers are opened lazily (right before the first
-- non-space content that needs them) and closed as soon as the style drops them, with edge spaces
-- kept outside (CommonMark emphasis cannot start or end with a space). So two runs of one style
-- share one pair of markers whatever the elements (`**~~:x:[l](u)~~**`, never `~~****~~`), and
-- adjacent code pieces become one code span: two spans side by side would merge their backtick
-- runs and leave code text outside any span.
-- A writer is plain local functions on a table with counted arrays (nbuf, ncode): this runs for
-- every piece of every rich_text message, where method calls, a table per line and per code run,
-- and a match that copied each piece to split off its leading spaces cost the most: 36 µs per
-- message of bench/blocks_convert.lua's generated set with them, 21 µs without (text elements
-- also taken without element_text's call).
-- Writers are reused (a free list rather than one shared writer: a resolver called in between
-- could convert another block).
local free_writers, nfree = {}, 0

local function new_writer()
  if nfree > 0 then
    local w = free_writers[nfree]
    free_writers[nfree] = nil
    nfree = nfree - 1
    return w
  end
  return { lines = {}, nlines = 0, buf = {}, nbuf = 0, open = {}, code = {}, ncode = 0, code_style = nil }
end

-- Move trailing spaces of the current line out of the way of a closing marker.
local function close_markers(w, keep)
  local open = w.open
  local n = #open
  if n == 0 then
    return
  end
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
  local buf, nbuf = w.buf, w.nbuf
  local trail = ""
  local last = buf[nbuf]
  if last and IS_SPACE[byte(last, -1)] then
    trail = match(last, "%s*$")
    buf[nbuf] = sub(last, 1, #last - #trail)
  end
  for i = n, cut, -1 do
    nbuf = nbuf + 1
    buf[nbuf] = open[i].md
    open[i] = nil
  end
  if trail ~= "" then
    nbuf = nbuf + 1
    buf[nbuf] = trail
  end
  w.nbuf = nbuf
end

-- Append Markdown `md` (one line, already escaped) in `style` (no code bit).
local function put(w, md, style)
  if md == "" then
    return
  end
  if w.open[1] then -- (close_markers has nothing to do when no marker is open)
    close_markers(w, style)
  end
  local buf, nbuf = w.buf, w.nbuf
  local body = md
  if IS_SPACE[byte(md, 1)] then
    local lead
    lead, body = match(md, "^(%s*)(.*)$")
    nbuf = nbuf + 1
    buf[nbuf] = lead
    if body == "" then
      w.nbuf = nbuf
      return
    end
  end
  local markers = style.markers
  if markers[1] then
    local open = w.open
    for k = 1, #markers do
      local m = markers[k]
      local found = false
      for i = 1, #open do
        if open[i] == m then
          found = true
        end
      end
      if not found then
        open[#open + 1] = m
        nbuf = nbuf + 1
        buf[nbuf] = m.md
      end
    end
  end
  nbuf = nbuf + 1
  buf[nbuf] = body
  w.nbuf = nbuf
end

local function flush_code(w)
  local style = w.code_style
  if style then
    local code, n = w.code, w.ncode
    local text = n == 1 and code[1] or concat(code, "", 1, n)
    for i = 1, n do code[i] = nil end
    w.code_style, w.ncode = nil, 0
    put(w, markdown.code_span(text), style)
  end
end

-- Plain `text` as code in `style` (its no_code part wraps the span); joins a code run in progress.
local function put_code(w, text, style)
  local current = w.code_style
  if current ~= style then
    if current then
      flush_code(w)
    end
    w.code_style = style
  end
  local n = w.ncode + 1
  w.code[n] = text
  w.ncode = n
end

local function end_line(w)
  flush_code(w)
  close_markers(w, nil)
  local buf, nbuf = w.buf, w.nbuf
  local n = w.nlines + 1
  w.lines[n] = nbuf == 1 and buf[1] or concat(buf, "", 1, nbuf)
  w.nlines = n
  for i = 1, nbuf do buf[i] = nil end
  w.nbuf = 0
end

-- One line of plain text: code joins the code run, other text is escaped and put. An empty piece
-- puts nothing and leaves a code run open: closed for nothing, it would be followed by the next
-- code span, and two touching fences ("`a``b`") are one run of backticks to CommonMark.
local function put_piece(w, piece, style, to_md)
  if piece == "" then return end
  if style.code then
    put_code(w, piece, style.no_code)
  else
    if w.code_style then
      flush_code(w)
    end
    put(w, to_md(piece), style)
  end
end

-- Text that may hold line breaks (a lone CR is one too: CommonMark ends a line there).
local function put_text(w, text, style, to_md)
  if not find(text, "\n", 1, true) and not find(text, "\r", 1, true) then
    put_piece(w, text, style, to_md) -- (the usual case: one line, no copy of it)
    return
  end
  if find(text, "\r", 1, true) then
    text = text:gsub("\r\n?", "\n")
  end
  local pos = 1
  while true do
    local nl = find(text, "\n", pos, true)
    put_piece(w, nl and sub(text, pos, nl - 1) or sub(text, pos), style, to_md)
    if not nl then
      break
    end
    end_line(w)
    pos = nl + 1
  end
end

-- The writer's lines (handed over: the writer gets a new array); the writer goes back to the free list.
local function finish(w)
  end_line(w)
  local out = w.lines
  w.lines, w.nlines = {}, 0
  nfree = nfree + 1
  free_writers[nfree] = w
  return out
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
      local s = e.style
      local style = s == nil and PLAIN or style_of(s) -- (no call for unstyled elements, the most)
      local t = e.type
      if t == "text" then -- (most elements: element_text's answer without the call)
        local v = e.text
        if type(v) ~= "string" then
          v = str(v) or ""
        end
        put_text(w, v, style, escape_chars)
      elseif t == "link" and e.unsafe ~= true and markdown.safe_url(str(e.url)) then
        local text, url = element_text(e, resolve)
        -- cleaned before it is made a code span: markdown.link cleans the label it is given, and a
        -- NUL dropped from inside "`\0`" would leave "``", a fence that pairs with later backticks
        text = markdown.clean_label((text:gsub("[\r\n]+", " ")))
        flush_code(w)
        local label_md = style.code and markdown.code_span(text) or escape_chars(text)
        put(w, markdown.link(label_md, url), style.no_code)
      elseif t == "link" then
        local text, url = element_text(e, resolve)
        put_text(w, text ~= url and (text .. " (" .. url .. ")") or url, style, escape_chars)
      elseif t == "color" then
        put_code(w, (element_text(e, resolve):gsub("[\r\n]+", " ")), style.no_code)
      elseif t == "emoji" and not style.code then
        flush_code(w)
        put(w, emoji_markdown(e, resolve), style)
      else
        put_text(w, (element_text(e, resolve)), style, escape_chars)
      end
    end
  end
  return finish(w)
end

-- Lines of one paragraph-like element: safe starts, trailing spaces gone, hard breaks between
-- non-empty lines, empty lines as paragraph breaks (collapsed), no empty lines at the ends.
local function paragraph(lines, prefix)
  if lines[2] == nil then -- one line (most sections): no second table
    local md = markdown.line_start(lines[1])
    local last = byte(md, -1)
    if last == 32 or last == 9 then
      md = md:gsub("[ \t]+$", "")
    end
    if md == "" then
      return {}
    end
    lines[1] = prefix and prefix .. md or md
    return lines
  end
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
  local first, blocks -- (the table only from the second paragraph: most blocks have one)
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
    local md = lines[1]
    if lines[2] ~= nil then
      md = concat(lines, "\n")
    end
    if md == nil then -- (no lines)
    elseif not first then
      first = md
    elseif not blocks then
      blocks = { first, md }
    else
      blocks[#blocks + 1] = md
    end
    i = i + 1
  end
  if blocks then
    return concat(blocks, "\n\n")
  end
  return first or ""
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
