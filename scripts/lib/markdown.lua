-- CommonMark-safe building blocks: escaping user text, code spans, fenced blocks, links, images.
-- Called by lib/mrkdwn.lua, lib/richtext.lua, lib/templates.lua (the escape of .md templates) and
-- the report code. Pure Lua, but for escape_chars, which the host does in C when it can
-- (host.escape_markdown, core/host/md_escape.c: the same result). Rule: nothing user-supplied that
-- goes through here can change the document's block structure or become raw HTML.
local markdown = {}

-- Every character that can start inline Markdown (emphasis, code, links, images, raw HTML,
-- autolinks, tables, strikethrough, headings) gets a backslash; CommonMark allows a backslash
-- before any ASCII punctuation, so this never shows in the rendered text. IS_SPECIAL: the same
-- characters as bytes; ESCAPED: each as a string -> itself escaped, for gsub(s, "%p", ESCAPED),
-- which leaves the other punctuation as it is (and scans much faster than the set
-- "[\\`*_%[%]<>#|!~]" would).
local IS_SPECIAL, ESCAPED = {}, {}
for c in ("\\`*_[]<>#|!~"):gmatch(".") do
  IS_SPECIAL[c:byte()] = true
  ESCAPED[c] = "\\" .. c
end
markdown.IS_SPECIAL = IS_SPECIAL -- (read-only: lib/mrkdwn.lua escapes with it while it styles)

local find, sub, byte, gsub = string.find, string.sub, string.byte, string.gsub

-- escape_chars' pieces, reused from call to call rather than a new table for each text with a
-- special (a timeline escapes several pieces of every message); emptied after each call, as they
-- hold its strings. One call at a time uses the spare table: a command's coroutine can be
-- suspended in the middle of escape_chars (core/host/budget.c yields it when its time slice is
-- over) while another command's escapes a text, so a call takes the spare, or makes a table when
-- another call holds it, and puts it back when done (one that raised puts nothing back: the next
-- call makes a new one).
local spare = {}

-- Backslash-escape the inline specials and turn `&` into `&amp;` only where it would start an
-- entity reference (`&copy;`, `&#60;`). Does not look at line starts or newlines.
-- Hot path (every piece of every message): hop from one punctuation character to the next ("%p"
-- scans faster than a set of the specials; every special and "&" is punctuation) and cut the
-- text at the specials. Text with many of them goes through one gsub instead.
local function escape_chars_lua(text)
  local s = text
  local pieces = spare or {}
  spare = nil
  local n, last, hops = 0, 1, 0
  local amp = false -- an "&" seen on the way (every "&" is a hop when the loop runs to the end)
  local i = find(s, "%p")
  while i do
    local c = byte(s, i)
    if IS_SPECIAL[c] then
      pieces[n + 1], pieces[n + 2] = sub(s, last, i - 1), "\\"
      n = n + 2
      last = i
    elseif c == 38 then
      amp = true
    end
    hops = hops + 1
    if hops > 16 then
      for j = 1, n do pieces[j] = nil end
      n = 0
      s = gsub(s, "%p", ESCAPED)
      amp = true -- not known: look below
      break
    end
    i = find(s, "%p", i + 1)
  end
  if n > 0 then
    pieces[n + 1] = sub(s, last)
    s = table.concat(pieces, "", 1, n + 1)
    for j = 1, n + 1 do pieces[j] = nil end
  end
  spare = pieces
  if amp and find(s, "&", 1, true) then
    s = gsub(s, "&(#?%w+;)", "&amp;%1")
  end
  return s
end
markdown.escape_chars_lua = escape_chars_lua -- (what defines the result: the specs and tests/c compare)

-- The host's C escaping when there is a host that has it (not in the specs, which load no host).
local c_escape
do
  local ok, host = pcall(require, "host")
  c_escape = ok and type(host) == "table" and rawget(host, "escape_markdown") or nil
end

function markdown.escape_chars(text)
  if c_escape and type(text) == "string" then return c_escape(text) end
  return escape_chars_lua(text)
end

-- Make one line of already-escaped Markdown safe at the start of a block: drop the leading
-- indentation (4 spaces would make a code block; Markdown drops it anyway) and escape what
-- would start a list, a setext underline or a thematic break.
-- (Bytes, not one-character strings: this runs on every line of every message.)
function markdown.line_start(line)
  local s = line
  local first = byte(s, 1)
  if first == 32 or first == 9 then -- " " or "\t"
    s = s:gsub("^[ \t]+", "")
    first = s:byte(1)
  end
  if first == 45 or first == 43 then -- "-" or "+"
    local second = s:byte(2)
    if second == nil or second == 32 or second == 9 or second == 45 then
      s = "\\" .. s
    end
  elseif first == 61 then -- "="
    s = "\\" .. s
  elseif first and first >= 48 and first <= 57 then -- a digit
    local digits, mark, rest = s:match("^(%d+)([.)])(.*)$")
    if digits and (rest == "" or rest:find("^[ \t]")) then
      s = digits .. "\\" .. mark .. rest
    end
  end
  return s
end

local function to_text(value)
  if value == nil then
    return ""
  end
  if type(value) ~= "string" then
    return tostring(value)
  end
  return value
end

-- Inline text (one line): line breaks become spaces, specials are escaped, and the start is
-- safe even when a template puts the value at the start of a line. This is the escape used
-- for {{x}} in .md templates.
function markdown.escape(text)
  local s = to_text(text)
  if s:find("\n", 1, true) or s:find("\r", 1, true) then
    s = s:gsub("\r?\n", " "):gsub("\r", " ")
  end
  return markdown.line_start(markdown.escape_chars(s))
end

-- Multi-line text for a list item: every line escaped and made safe at its start, lines joined
-- with hard breaks (a trailing `\`), blank lines kept as one paragraph break, continuation
-- lines prefixed with `indent` (e.g. "  " after "- ").
function markdown.escape_block(text, indent)
  indent = indent or ""
  local s = to_text(text):gsub("\r\n?", "\n")
  local out = {}
  local prev_blank = true
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    local md = markdown.line_start(markdown.escape_chars(line)):gsub("[ \t]+$", "")
    if md == "" then
      if not prev_blank then
        out[#out + 1] = ""
      end
      prev_blank = true
    else
      if not prev_blank then
        out[#out] = out[#out] .. "\\"
      end
      out[#out + 1] = md
      prev_blank = false
    end
  end
  if out[#out] == "" then
    out[#out] = nil
  end
  return markdown.indent(table.concat(out, "\n"), indent)
end

-- Prefix every non-empty line after the first with `indent` (the list-item continuation).
function markdown.indent(md, indent)
  if not indent or indent == "" or not md:find("\n", 1, true) then
    return md
  end
  return (md:gsub("\n([^\n])", "\n" .. indent .. "%1"))
end

local function longest_run(s, char_pattern)
  local longest = 0
  for run in s:gmatch(char_pattern .. "+") do
    if #run > longest then
      longest = #run
    end
  end
  return longest
end

-- An inline code span whose backtick fence is longer than any backtick run inside. Line breaks
-- become spaces (a code span cannot hold a block boundary).
function markdown.code_span(text)
  local s = to_text(text)
  if s ~= "" and not find(s, "[`\r\n]") and not (byte(s, 1) == 32 and byte(s, -1) == 32) then
    return "`" .. s .. "`"
  end
  s = s:gsub("\r?\n", " "):gsub("\r", " ")
  if s == "" then
    return "` `"
  end
  local fence = string.rep("`", longest_run(s, "`") + 1)
  -- CommonMark strips one space on both sides; pad so backticks at the ends and real edge
  -- spaces survive.
  if s:find("^`") or s:find("`$") or (s:find("^ ") and s:find(" $")) then
    s = " " .. s .. " "
  end
  return fence .. s .. fence
end

-- A fenced code block (no trailing newline) whose fence is longer than any backtick run in the
-- text, so nothing inside can close it. `lang` keeps only characters safe in an info string.
function markdown.fence(text, lang)
  local s = to_text(text):gsub("\r\n?", "\n"):gsub("\n$", "")
  local fence = string.rep("`", math.max(3, longest_run(s, "`") + 1))
  local info = ""
  if type(lang) == "string" then
    info = lang:gsub("[^%w_+#.-]", "")
  end
  return fence .. info .. "\n" .. s .. "\n" .. fence
end

-- Does an "&" in s start an entity reference ("&amp;", "&#60;")? Each "&" is looked at where it is
-- (a pattern searched from every position of a long URL costs more than the rest of safe_url).
local function entity_at_amp(s)
  local at = find(s, "&", 1, true)
  while at do
    if find(s, "^#?%w+;", at + 1) then return true end
    at = find(s, "&", at + 1, true)
  end
  return false
end

-- The URL as a link destination, or nil when it must not become a link. Allowed: http(s),
-- mailto and relative paths (no scheme, not `//host`). Spaces, parentheses, angle brackets,
-- backslashes and control characters are percent-encoded; `&` that would read as an entity
-- becomes `&amp;`.
function markdown.safe_url(url)
  if type(url) ~= "string" then
    return nil
  end
  -- The usual link (http(s), then only characters nothing below changes) is returned as it is.
  if find(url, "^[Hh][Tt][Tt][Pp][Ss]?://[%w.-][%w./_?=#%%:+~&-]*$") and not entity_at_amp(url) then
    return url -- (a permalink's "&cid=" is no entity: nothing to change)
  end
  local u = url
  if u:find("^%s") or u:find("^%s", -1) then
    u = u:gsub("^%s+", ""):gsub("%s+$", "")
  end
  if u == "" then
    return nil
  end
  local allowed = u:find("^[Hh][Tt][Tt][Pp][Ss]?://[^/]") or u:find("^[Mm][Aa][Ii][Ll][Tt][Oo]:.")
  if not allowed then
    -- relative: no scheme before the first / ? or #, and not protocol-relative
    local head = u:match("^[^/?#]*")
    allowed = not head:find(":", 1, true) and not u:find("^//") and not u:find("^\\")
  end
  if not allowed then
    return nil
  end
  -- (one plain find per character: cheaper than scanning with the set "[%c ()<>\\]")
  if u:find("%c") or u:find(" ", 1, true) or u:find("(", 1, true) or u:find(")", 1, true)
    or u:find("<", 1, true) or u:find(">", 1, true) or u:find("\\", 1, true) then
    u = u:gsub("[%c ()<>\\]", function(c)
      return string.format("%%%02X", c:byte())
    end)
  end
  if u:find("&", 1, true) then
    u = u:gsub("&(#?%w+;)", "&amp;%1")
  end
  return u
end

-- A label shows text as Slack showed it, never as something else: NUL and the invisible controls
-- that reorder text on screen (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C) are dropped,
-- so "exe.txt" cannot be made to read as "txt.exe" or hide behind a NUL.
local function clean_label(label)
  if find(label, "[%z\xE2\xD8]") then
    label = gsub(label, "%z", "")
    label = gsub(label, "\xE2\x80[\x8E\x8F\xAA-\xAE]", "")
    label = gsub(label, "\xE2\x81[\xA6-\xA9]", "")
    label = gsub(label, "\xD8\x9C", "")
  end
  return label
end
markdown.clean_label = clean_label

-- [label](url) for a safe URL. `label_md` is Markdown already (escape it first); an empty label
-- shows the URL. An unsafe URL (javascript:, data:, ...) is shown as escaped text, not a link.
function markdown.link(label_md, url)
  label_md = clean_label(to_text(label_md))
  if find(label_md, "\n", 1, true) or find(label_md, "\r", 1, true) then
    label_md = label_md:gsub("[\r\n]+", " ")
  end
  local safe = markdown.safe_url(url)
  if safe and label_md ~= "" then
    return "[" .. label_md .. "](" .. safe .. ")"
  end
  local shown_url = markdown.escape(url)
  if not safe then
    if label_md == "" or label_md == shown_url then
      return shown_url
    end
    return label_md .. " (" .. shown_url .. ")"
  end
  return "[" .. shown_url .. "](" .. safe .. ")"
end

-- ![alt](relpath) for an image stored next to the report; an unsafe path shows the alt text.
function markdown.image(alt, relpath)
  local alt_md = clean_label(markdown.escape(alt))
  local safe = markdown.safe_url(relpath)
  if not safe then
    return alt_md
  end
  return "![" .. alt_md .. "](" .. safe .. ")"
end

return markdown
