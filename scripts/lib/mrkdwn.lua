-- Slack mrkdwn (a message's `text`) -> CommonMark-safe Markdown for a timeline entry.
-- Called by lib/timeline.lua (via lib/richtext.lua when a message has no rich_text block) and by
-- whoever renders attachment text; calls lib/markdown.lua only. The result may be multi-line;
-- every line is safe after the list-item indent the caller adds (markdown.indent does that).
-- Never raises on odd input: what cannot be parsed is shown as literal text.
local markdown = require "lib.markdown"

local mrkdwn = {}

-- This file runs on every message of a thread (10,000 in a big one), so the string functions
-- are local and the hot paths prefer plain finds (`find(s, "x", 1, true)`, a byte search) over
-- character sets like "[*_~]", which Lua's matcher scans slowly.
local find, sub, byte, gsub, match = string.find, string.sub, string.byte, string.gsub, string.match
local concat = table.concat

local ENTITIES = { amp = "&", lt = "<", gt = ">" }

-- `&amp;` `&lt;` `&gt;` back to characters; any other `&` stays as it is.
local function decode_entity(name)
  local c = ENTITIES[name]
  if c then
    return c
  end
  return nil
end

local function decode_entities(s)
  if not find(s, "&", 1, true) then
    return s
  end
  return (gsub(s, "&(%a+);", decode_entity))
end
mrkdwn.decode_entities = decode_entities

local function call_resolver(resolve, kind, id, label)
  local fn = resolve and resolve[kind]
  if fn == nil or type(fn) ~= "function" then
    return nil
  end
  local name = fn(id, label)
  if type(name) == "string" and name ~= "" then
    return name
  end
  return nil
end

-- shared with richtext.lua: a name from resolve[kind](id, label), or nil
mrkdwn.call_resolver = call_resolver

local function nonempty(s)
  if s and s ~= "" then
    return s
  end
  return nil
end

local function format_date(resolve, ts, format)
  local fn = resolve and resolve.date
  if type(fn) == "function" then
    local s = fn(ts, format)
    if type(s) == "string" and s ~= "" then
      return s
    end
  end
  local n = tonumber(ts)
  if not n then
    return nil
  end
  return os.date("!%Y-%m-%d %H:%M UTC", math.floor(n))
end
mrkdwn.format_date = format_date

-- What the inside of `<...>` stands for: the text to show, and the link target or nil.
-- Follows Slack's rule: `@` user, `#` channel, `!subteam` user group, `!date`, other `!`
-- special mention, a scheme means a URL; the part after `|` is the label. Anything else is
-- literal text (nil).
local function parse_angle(inner, resolve)
  local body, label = inner, nil
  local bar = find(inner, "|", 1, true)
  if bar then
    body, label = sub(inner, 1, bar - 1), sub(inner, bar + 1)
    if find(label, "&", 1, true) then
      label = decode_entities(label)
    end
  end
  local first = byte(body, 1)
  if first == 64 then -- "@"
    local id = match(body, "^@(%w+)$")
    if not id then
      return nil
    end
    local name = call_resolver(resolve, "user", id, label) or nonempty(label and gsub(label, "^@", "")) or id
    return "@" .. name
  elseif first == 35 then -- "#"
    local id = match(body, "^#(%w+)$")
    if not id then
      return nil
    end
    local name = call_resolver(resolve, "channel", id, label) or nonempty(label) or id
    return "#" .. gsub(name, "^#", "")
  elseif first == 33 then -- "!"
    local id = match(body, "^!subteam%^(%w+)$")
    if id then
      local name = call_resolver(resolve, "usergroup", id, label) or nonempty(label) or id
      return "@" .. gsub(name, "^@", "")
    end
    local ts, format = match(body, "^!date%^([^%^]*)%^([^%^]*)")
    if ts then
      return nonempty(label) or format_date(resolve, ts, format) or ts
    end
    local special = match(body, "^!(%w+)$")
    if not special then
      return nil
    end
    return "@" .. (nonempty(label and gsub(label, "^@", "")) or special)
  elseif find(body, "^%a[%w+.-]*:") then
    local url = body
    if find(url, "&", 1, true) then
      url = decode_entities(url)
    end
    return nonempty(label) or url, url
  end
  return nil
end

-- Plain text of `<...>` for code, where nothing is formatted.
local function angle_plain(inner, resolve)
  local text = parse_angle(inner, resolve)
  if not text then
    return "<" .. decode_entities(inner) .. ">"
  end
  return text
end

-- Markdown of `<...>`, and the plain text it shows as code (the resolvers run once).
local function angle_markdown(inner, resolve)
  local text, url = parse_angle(inner, resolve)
  if not text then
    local literal = "<" .. decode_entities(inner) .. ">"
    return markdown.escape_chars(literal), literal
  end
  if url then
    return markdown.link(markdown.escape_chars(text), url), text
  end
  return markdown.escape_chars(text), text
end

-- Code text: links and mentions shown as text, entities decoded, nothing else touched.
local function code_plain(s, resolve)
  if s:find("<", 1, true) then
    s = s:gsub("<([^<>\n]*)>", function(inner)
      return angle_plain(inner, resolve)
    end)
  end
  return decode_entities(s)
end

-- An emoji shortcode is kept as it is when it cannot form emphasis: `_` only between letters
-- or digits (`:white_check_mark:`, `:+1:`, `:skin-tone-2:`).
local function emoji_safe(name)
  return not name:find("[^%w_+-]") and not name:find("^_") and not name:find("_$")
    and not name:find("[^%w]_") and not name:find("_[^%w]")
end

-- Markdown of a paired marker, by byte: `*` bold, `_` italic, `~` strike.
local MARK_MD = { [42] = "**", [95] = "_", [126] = "~~" }

-- Byte classes for style_line, built once from the patterns they stand for:
-- IS_SPACE[b] for `%s`, IS_EDGE[b] for `[%s%p%c]` (what may sit outside a marker).
local IS_SPECIAL = markdown.IS_SPECIAL
local IS_SPACE, IS_EDGE = {}, {}
for b = 0, 255 do
  local c = string.char(b)
  IS_SPACE[b] = find(c, "%s") ~= nil
  IS_EDGE[b] = find(c, "[%s%p%c]") ~= nil
end

-- Scratch arrays of style_line, reused from line to line: nine new tables per line were most of
-- what a timeline's conversion allocated, and the collector's work grows with that. Each is read
-- only up to its count for the current line (what lies beyond is a former line's). A set is used
-- by one call at a time: a command's coroutine can be suspended in the middle of style_line
-- (core/host/budget.c yields it when its time slice is over) while another command's converts a
-- line, so a call takes the spare set, or makes one when another call holds it, and puts it back
-- when done (a call that raised puts nothing back: the next one makes a new set). In each set:
-- [1] marks: positions of marker characters, in order; -position once paired
-- [2] mark_byte: mark_byte[k] = the marker at marks[k]
-- [3] stack: the k of markers that may still open a pair
-- [4] openers: openers[c] = the depths in `stack` of the openers of marker c, bottom to top
--     (tops[c] of them): a closer finds its opener without walking over the others (walking made
--     `*a ` x n then `a~ ` x n quadratic)
-- [5] tops
-- [6] specials: positions of the bytes escape_chars escapes, in order
-- [7] pieces: the output, emptied after each line (it holds its strings)
local function new_scratch()
  return { {}, {}, {}, { [42] = {}, [95] = {}, [126] = {} }, {}, {}, {} }
end
local spare = new_scratch()

local function joined(pieces, n)
  local s = concat(pieces, "", 1, n)
  for j = 1, n do pieces[j] = nil end
  return s
end

-- Styles in one line of decoded text where \1N\2 stand for already-built Markdown pieces.
-- A marker opens after start/space/punctuation and before a non-space; it closes after a
-- non-space and before end/space/punctuation; doubled markers (`**`) are literal, as in Slack.
-- Pairs are found with a stack; whatever stays unpaired is escaped literal text (escape_chars
-- escapes a lone `*` `_` `~` as `\*` `\_` `\~`, so only the paired markers need cutting out).
-- The markers are found by hopping over punctuation ("%p"; every special and "&" is one), and
-- the specials are escaped on the way.
local function style_marked(s, scratch)
  local marks, mark_byte, stack, openers, tops, specials, pieces =
    scratch[1], scratch[2], scratch[3], scratch[4], scratch[5], scratch[6], scratch[7]
  local n_marks, n_stack, n_specials = 0, 0, 0
  tops[42], tops[95], tops[126] = 0, 0, 0
  local amp = false     -- an "&" seen (then the pieces go through escape_chars)
  local any = false
  local i = find(s, "%p")
  while i do
    local prev, c, nxt
    if i > 1 then
      prev, c, nxt = byte(s, i - 1, i + 1)
    else
      c, nxt = byte(s, 1, 2)
    end
    if IS_SPECIAL[c] then
      n_specials = n_specials + 1
      specials[n_specials] = i
    elseif c == 38 then
      amp = true
    end
    if MARK_MD[c] then
      local k = n_marks + 1
      n_marks = k
      marks[k], mark_byte[k] = i, c
      if prev ~= c and nxt ~= c then
        local can_open = (not prev or IS_EDGE[prev]) and nxt ~= nil and not IS_SPACE[nxt]
        local can_close = prev ~= nil and not IS_SPACE[prev] and (not nxt or IS_EDGE[nxt])
        local closed = false
        if can_close then
          local top = tops[c]
          if top > 0 then
            local depth = openers[c][top]
            local opener = stack[depth]
            marks[opener], marks[k] = -marks[opener], -i
            any = true
            -- the opener and every opener above it are used up (each is popped once: linear)
            for d = n_stack, depth, -1 do
              local b = mark_byte[stack[d]]
              tops[b] = tops[b] - 1
            end
            n_stack = depth - 1
            closed = true
          end
        end
        if not closed and can_open then
          n_stack = n_stack + 1
          stack[n_stack] = k
          local top = tops[c] + 1
          tops[c] = top
          openers[c][top] = n_stack
        end
      end
    end
    i = find(s, "%p", i + 1)
  end
  if not amp then
    -- What the code below gives, without scanning the pieces again: every special gets a
    -- backslash (as escape_chars does), except paired markers, which become Markdown.
    local n = 0
    local last = 1
    local k = 1 -- the next of marks (every mark is a special)
    for j = 1, n_specials do
      local pos = specials[j]
      local mark = k <= n_marks and marks[k]
      if mark == pos or mark == -pos then
        k = k + 1
      end
      if pos > last then
        n = n + 1
        pieces[n] = sub(s, last, pos - 1)
      end
      if mark == -pos then -- paired
        n = n + 1
        pieces[n] = MARK_MD[mark_byte[k - 1]]
        last = pos + 1
      else
        n = n + 1
        pieces[n] = "\\"
        last = pos
      end
    end
    if n == 0 then
      return s
    end
    if last <= #s then
      n = n + 1
      pieces[n] = sub(s, last)
    end
    return joined(pieces, n)
  end
  if not any then
    return markdown.escape_chars(s)
  end
  local escape_chars = markdown.escape_chars
  local n = 0
  local last = 1
  for k = 1, n_marks do
    local pos = -marks[k]
    if pos > 0 then -- paired
      if pos > last then -- (an empty piece escapes to "")
        n = n + 1
        pieces[n] = escape_chars(sub(s, last, pos - 1))
      end
      n = n + 1
      pieces[n] = MARK_MD[mark_byte[k]]
      last = pos + 1
    end
  end
  if last <= #s then
    n = n + 1
    pieces[n] = escape_chars(sub(s, last))
  end
  return joined(pieces, n)
end

local function style_line(s)
  if not (find(s, "*", 1, true) or find(s, "_", 1, true) or find(s, "~", 1, true)) then
    return markdown.escape_chars(s)
  end
  local scratch = spare or new_scratch()
  spare = nil
  local out = style_marked(s, scratch)
  spare = scratch
  return out
end

-- While one line is converted, code spans, links, mentions and emoji are built first and stand
-- in the line as placeholders \1N\2 (held[placeholder] = Markdown) while the styles are worked
-- out, then are put back. PLACEHOLDERS[n] caches the strings.
local PLACEHOLDERS = {}

-- The end of a hold_* pass: s when nothing was held, else the pieces cut so far (out) and the
-- rest of s from `last`, joined.
local function spliced(out, s, last)
  if not out then
    return s
  end
  out[#out + 1] = sub(s, last)
  return table.concat(out)
end

local function hold(held, md)
  local n = held.n + 1
  held.n = n
  local placeholder = PLACEHOLDERS[n]
  if not placeholder then
    placeholder = "\1" .. n .. "\2"
    PLACEHOLDERS[n] = placeholder
  end
  held[placeholder] = md
  return placeholder
end

-- s with every `code` span held, as s:gsub("`([^`]+)`", ...) finds them: "``" is no span.
-- Runs after hold_angles, as Slack reads `<...>` before styles: a `<!date^…|`>` inside backticks is
-- a token, and what it shows is code text (`plain` maps its placeholder to that text). Spans that
-- touch (`a``b`) become one: two spans side by side would merge their backtick runs.
local function hold_code_spans(s, held, plain)
  local out, last, pos = nil, 1, 1
  local prev_code -- the code text of the span that ends right at `last`, if any
  while true do
    local i = find(s, "`", pos, true)
    local j = i and find(s, "`", i + 1, true)
    if not j then
      break
    end
    if j == i + 1 then
      pos = j -- the second backtick may open a span
    else
      local code = decode_entities(sub(s, i + 1, j - 1))
      if plain.n > 0 and find(code, "\1", 1, true) then
        code = gsub(code, "\1%d+\2", plain)
      end
      out = out or {}
      if prev_code and i == last then
        code = prev_code .. code
        out[#out] = nil
      else
        out[#out + 1] = sub(s, last, i - 1)
      end
      out[#out + 1] = hold(held, markdown.code_span(code))
      prev_code = code
      last, pos = j + 1, j + 1
    end
  end
  return spliced(out, s, last)
end

-- s with every `<...>` held, as s:gsub("<([^<>]*)>", ...) finds them: a `<` is literal when
-- another `<` comes before the next `>`. plain[placeholder] = what the token shows as code text
-- (plain is nil when the line has no code span to need it).
local function hold_angles(s, held, resolve, plain)
  local out, last, pos = nil, 1, 1
  local close -- the first ">" at or after pos, once looked up
  while true do
    local i = find(s, "<", pos, true)
    if not i then
      break
    end
    if not close or close < i then
      close = find(s, ">", i + 1, true)
      if not close then
        break -- no ">" left: nothing more to hold
      end
    end
    local again = find(s, "<", i + 1, true)
    if again and again < close then
      pos = again
    else
      local inner = sub(s, i + 1, close - 1)
      out = out or {}
      out[#out + 1] = sub(s, last, i - 1)
      local md, shown = angle_markdown(inner, resolve)
      local placeholder = hold(held, md)
      out[#out + 1] = placeholder
      if plain then
        plain[placeholder] = shown
        plain.n = plain.n + 1
      end
      last, pos = close + 1, close + 1
    end
  end
  return spliced(out, s, last)
end

-- s with every emoji shortcode held: as its Unicode character when resolve.emoji knows it
-- (`:wave::skin-tone-2:` is one emoji), else as typed when emphasis cannot break it; found as
-- s:gsub(":([%w_+-]+):", ...) finds them (a shortcode left as text is skipped whole).
local function hold_emoji(s, held, resolve)
  local to_char = resolve and resolve.emoji
  if type(to_char) ~= "function" then
    to_char = nil
  end
  local out, last, pos = nil, 1, 1
  while true do
    local i = find(s, ":", pos, true)
    if not i then
      break
    end
    local _, j, name = find(s, "^:([%w_+-]+):", i)
    if not j then
      pos = i + 1
    else
      local char
      if to_char then
        local _, tj, tone = find(s, "^:skin%-tone%-(%d):", j + 1)
        char = to_char(name, tone and tonumber(tone))
        if type(char) ~= "string" or char == "" then
          char = nil
        elseif tj then
          j = tj
        end
      end
      if char or emoji_safe(name) then
        out = out or {}
        out[#out + 1] = sub(s, last, i - 1)
        out[#out + 1] = hold(held, char and markdown.escape_chars(char) or (":" .. name .. ":"))
        last = j + 1
      end
      pos = j + 1
    end
  end
  return spliced(out, s, last)
end

-- One line of mrkdwn (no fences, no quote marker) -> Markdown, not yet made safe at its start.
local function convert_line(line, resolve)
  local s = line
  if find(s, "\1", 1, true) or find(s, "\2", 1, true) then
    s = gsub(s, "[\1\2]", "\239\191\189") -- U+FFFD: these bytes mark held pieces below
  end
  local has_code, has_angle, has_colon = find(s, "`", 1, true), find(s, "<", 1, true), find(s, ":", 1, true)
  -- a ":" that starts no shortcode ("at 23:31") holds nothing: hold_emoji would find none (holding
  -- angles and code spans only puts placeholders in, which no shortcode can span)
  if has_colon then
    has_colon = find(s, ":[%w_+-]+:", has_colon)
  end
  if not (has_code or has_angle or has_colon) then
    if find(s, "&", 1, true) then
      s = decode_entities(s)
    end
    return style_line(s) -- nothing to hold
  end
  -- (made with room for four pieces: growing a table costs more than these keys; the pieces
  -- not held stay false, which the gsub below leaves alone; they are not in s anyway)
  local held = { n = 0, ["\0011\2"] = false, ["\0012\2"] = false, ["\0013\2"] = false }
  local plain = has_code and { n = 0 } or nil -- (read by hold_code_spans only)
  if has_angle then
    s = hold_angles(s, held, resolve, plain)
  end
  if has_code then
    s = hold_code_spans(s, held, plain)
  end
  if has_colon then
    s = hold_emoji(s, held, resolve)
  end
  if find(s, "&", 1, true) then
    s = decode_entities(s)
  end
  s = style_line(s)
  if held.n > 0 then
    s = gsub(s, "\1%d+\2", held)
  end
  return s
end

-- Split the text at ``` into text and code parts: { {code=bool, text=...}, ... }. An odd
-- ``` at the end (unclosed) stays in the text.
local function split_fences(text)
  local parts = {}
  local pos = 1
  while true do
    local open = text:find("```", pos, true)
    local close = open and text:find("```", open + 3, true)
    if not close then
      parts[#parts + 1] = { code = false, text = text:sub(pos) }
      break
    end
    parts[#parts + 1] = { code = false, text = text:sub(pos, open - 1) }
    parts[#parts + 1] = { code = true, text = text:sub(open + 3, close - 1) }
    pos = close + 3
  end
  return parts
end

-- One line of a text part -> kind ("text" | "quote" | "blank"), Markdown.
-- `state.quote_rest` is set by `>>>`, which quotes everything after it (state is nil for a
-- text of one line: nothing comes after it).
local function line_of(line, resolve, state)
  local kind = "text"
  local body = line
  local first = byte(line, 1)
  if state and state.quote_rest then
    kind = "quote"
  elseif first == 62 then -- ">"
    kind = "quote"
    if find(body, "^>>>") then
      if state then
        state.quote_rest = true
      end
      body = sub(body, 4)
    else
      body = sub(body, 2)
    end
  elseif first == 38 then -- "&": may be the marker as an entity
    local rest = match(body, "^&gt;&gt;&gt;(.*)$")
    if rest then
      if state then
        state.quote_rest = true
      end
      kind, body = "quote", rest
    else
      rest = match(body, "^&gt;(.*)$")
      if rest then
        kind, body = "quote", rest
      end
    end
  end
  if kind == "quote" and byte(body, 1) == 32 then
    body = sub(body, 2) -- one space after the marker
  end
  local md = markdown.line_start(convert_line(body, resolve))
  local last = byte(md, -1)
  if last == 32 or last == 9 then -- a space or a tab at the end
    md = md:gsub("[ \t]+$", "")
  end
  if md == "" and kind == "text" then
    kind = "blank"
  end
  return kind, md
end

-- Append the lines of a text part as {kind = "text"|"quote"|"blank", md = ...} to `lines`.
local function add_text_lines(lines, text, resolve, state)
  local pos = 1
  while true do
    local nl = text:find("\n", pos, true)
    local kind, md = line_of(nl and text:sub(pos, nl - 1) or text:sub(pos), resolve, state)
    lines[#lines + 1] = { kind = kind, md = md }
    if not nl then
      break
    end
    pos = nl + 1
  end
end

-- Join the collected lines: hard breaks inside a paragraph, one blank line between
-- paragraphs, a blank line after a quote so the next text is not pulled into it.
local function join_lines(lines)
  local out = {}
  local n = #lines
  for i = 1, n do
    local line = lines[i]
    local kind = line.kind
    local nxt = lines[i + 1]
    if kind == "blank" then
      if #out > 0 and out[#out] ~= "" then
        out[#out + 1] = ""
      end
    elseif kind == "fence" then
      out[#out + 1] = line.md
    else
      local md = line.md
      local same_next = nxt and nxt.kind == kind
      if kind == "quote" then
        if md == "" then
          md = ">"
        else
          md = "> " .. md
        end
        same_next = same_next and line.md ~= "" and nxt.md ~= ""
      end
      if same_next then
        md = md .. "\\"
      end
      out[#out + 1] = md
      if kind == "quote" and nxt and nxt.kind == "text" then
        out[#out + 1] = ""
      end
    end
  end
  while out[#out] == "" do
    out[#out] = nil
  end
  return table.concat(out, "\n")
end

-- Line `md` of `kind` appended to out[1..n] as join_lines does it, knowing the next line's
-- kind and md (nil at the end). Returns the new n.
local function put_line(out, n, kind, md, next_kind, next_md)
  if kind == "fence" then
    n = n + 1
    out[n] = md
    return n
  end
  if kind == "blank" then
    if n > 0 and out[n] ~= "" then
      n = n + 1
      out[n] = ""
    end
    return n
  end
  local line_md = md
  local same_next = next_kind == kind
  if kind == "quote" then
    if md == "" then
      line_md = ">"
    else
      line_md = "> " .. md
    end
    same_next = same_next and md ~= "" and next_md ~= ""
  end
  if same_next then
    line_md = line_md .. "\\"
  end
  n = n + 1
  out[n] = line_md
  if kind == "quote" and next_kind == "text" then
    n = n + 1
    out[n] = ""
  end
  return n
end

-- The lines of `text` put out after the line waiting (kind, md; nil when none), each once the
-- next one is known. Returns n and the line left waiting.
local function put_text_lines(out, n, kind, md, text, resolve, state)
  local pos = 1
  while true do
    local nl = find(text, "\n", pos, true)
    local next_kind, next_md = line_of(sub(text, pos, nl and nl - 1 or -1), resolve, state)
    if kind then
      n = put_line(out, n, kind, md, next_kind, next_md)
    end
    kind, md = next_kind, next_md
    if not nl then
      break
    end
    pos = nl + 1
  end
  return n, kind, md
end

-- The line left waiting put out, the blank lines at the end dropped, the lines joined.
local function finish_lines(out, n, kind, md)
  if kind then
    n = put_line(out, n, kind, md, nil, nil)
  end
  while n > 0 and out[n] == "" do
    out[n] = nil
    n = n - 1
  end
  return concat(out, "\n")
end

-- join_lines(collect_lines(text)) for a text of several lines without "\r" or code blocks,
-- without the table per line: each line is put out once the next one is known.
local function join_text_lines(text, resolve)
  local out = {}
  return finish_lines(out, put_text_lines(out, 0, nil, nil, text, resolve, {}))
end

-- join_lines(collect_lines(text)) for a text with code blocks and without "\r", without
-- split_fences' table per part and collect_lines' per line: text parts and code blocks are put
-- out in order, as join_text_lines does.
local function join_fenced_lines(s, resolve)
  local out, n, kind, md = {}, 0, nil, nil
  local state = {}
  local pos = 1
  while true do
    local open = find(s, "```", pos, true)
    local close = open and find(s, "```", open + 3, true)
    -- the text before the block (without a block after it: the rest, an odd ``` included); the
    -- newline next to a fence belongs to the fence
    local text = sub(s, pos, close and open - 1 or -1)
    if pos > 1 and byte(text, 1) == 10 then
      text = sub(text, 2)
    end
    if close and byte(text, -1) == 10 then
      text = sub(text, 1, -2)
    end
    if text ~= "" then
      n, kind, md = put_text_lines(out, n, kind, md, text, resolve, state)
    end
    if not close then
      break
    end
    local code = sub(s, open + 3, close - 1)
    if byte(code, 1) == 10 then
      code = sub(code, 2)
    end
    if byte(code, -1) == 10 then
      code = sub(code, 1, -2)
    end
    local fence_md = markdown.fence(code_plain(code, resolve))
    if kind then
      n = put_line(out, n, kind, md, "fence", fence_md)
    end
    kind, md = "fence", fence_md
    pos = close + 3
  end
  return finish_lines(out, n, kind, md)
end

-- Text and code parts of a message -> the collected lines (see add_text_lines).
local function collect_lines(text, resolve)
  local s = text
  if s:find("\r", 1, true) then
    s = s:gsub("\r\n?", "\n")
  end
  local lines = {}
  local state = {}
  if not s:find("```", 1, true) then
    if s ~= "" then
      add_text_lines(lines, s, resolve, state) -- no code blocks: one text part
    end
    return lines
  end
  local parts = split_fences(s)
  for i, part in ipairs(parts) do
    if not part.code then
      -- the newline next to a fence belongs to the fence
      if i > 1 then
        part.text = part.text:gsub("^\n", "")
      end
      if i < #parts then
        part.text = part.text:gsub("\n$", "")
      end
    end
    if part.code then
      local code = code_plain(part.text:gsub("^\n", ""):gsub("\n$", ""), resolve)
      lines[#lines + 1] = { kind = "fence", code = code, md = markdown.fence(code) }
    elseif part.text ~= "" then
      add_text_lines(lines, part.text, resolve, state)
    end
  end
  return lines
end

-- Convert Slack mrkdwn to Markdown. `resolve` (optional) holds functions
-- user(id, label), channel(id, label), usergroup(id, label) -> name | nil and
-- date(ts, format) -> string | nil (used only when a <!date> has no fallback).
-- The resolvers run inside string.gsub callbacks, so they must not yield.
function mrkdwn.to_markdown(text, resolve)
  if type(text) ~= "string" or text == "" then
    return ""
  end
  if find(text, "\r", 1, true) then
    return join_lines(collect_lines(text, resolve))
  end
  if find(text, "```", 1, true) then
    return join_fenced_lines(text, resolve)
  end
  if not find(text, "\n", 1, true) then
    -- one line, no code block (most messages): what join_lines would make of that one line
    local kind, md = line_of(text, resolve, nil)
    if kind == "quote" then
      return md == "" and ">" or "> " .. md
    end
    return md
  end
  return join_text_lines(text, resolve)
end

-- The same conversion on one line, for places like a table cell or an attachment field:
-- line breaks become spaces, code blocks become code spans, quote markers are dropped.
function mrkdwn.to_inline(text, resolve)
  if type(text) ~= "string" or text == "" then
    return ""
  end
  if not (find(text, "\n", 1, true) or find(text, "\r", 1, true) or find(text, "```", 1, true)) then
    -- one line, no code block (a footer, a title): its Markdown, without the tables below
    local _, md = line_of(text, resolve, nil)
    return md
  end
  local out = {}
  for _, line in ipairs(collect_lines(text, resolve)) do
    local md = line.md
    if line.kind == "fence" then
      md = markdown.code_span(line.code)
    end
    if md ~= "" then
      out[#out + 1] = md
    end
  end
  return table.concat(out, " ")
end

return mrkdwn
