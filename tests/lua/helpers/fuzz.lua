-- Random Slack payloads for the "nothing in a message can break the document" property
-- (tests/lua/convert_property_spec.lua, and bench/convert_property.lua with a larger count): mrkdwn
-- text, rich_text, Block Kit blocks, legacy attachments and export subtypes built from the tokens
-- that have broken Markdown converters (backtick runs, CR, `<…>` tokens, HTML, unsafe schemes,
-- line-start markers),
-- converted through the real timeline, then checked with `cmark -t xml`. Seeded: a failure names
-- its seed and input, and the same seed gives the same input again.
local cjson = require "cjson"

local M = {}

-- xorshift-style generator on 32 bits, so a seed means the same inputs on every Lua build
local function rng(seed)
  local state = (seed * 2654435761 + 1) & 0xffffffff
  return function(n)
    state = state ~ ((state << 13) & 0xffffffff)
    state = state ~ (state >> 17)
    state = state ~ ((state << 5) & 0xffffffff)
    return state % n + 1
  end
end

local TOKENS = {
  "*", "_", "~", "`", "``", "```", "````", "<", ">", "&lt;", "&gt;", "&amp;", "&", "&#60;", "&lt;b&gt;",
  "\n", "\n", "\r", "\r\n", "\n\n", " ", " ", "  ", "    ", "\t", "#", "## ", "-", "- ", "+ ", "* ", "1. ",
  "2) ", "|", "[", "]", "(", ")", "![", "](", "!", "\\", "=", "===", "---", "***", ">>>", "> ", "&gt; ",
  "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<b>", "</pre>", "<!--", "-->", "<div>",
  "javascript:alert(1)", "<http://e.example/a|lbl>", "<javascript:alert(1)|x>", "<data:text/html,x>",
  "<mailto:a@b.example|mail>", "<https://e.example/a b)|x>", "<@U1>", "<@U1|ada>", "<#C1>", "<#C1|ops>",
  "<!here>", "<!subteam^S1>", "<!subteam^S1|@db>", "<!date^1700000000^{date}|`>", "<!date^1^{x}>",
  ":tada:", ":wave::skin-tone-3:", ":white_check_mark:", ":x_<b>_:", ":", "a", "word", "ok ", "é", "日本",
  "\0", "\1", "\2", "www.e.example", "http://e.example", "<", "a*b*c", "_x_", "~y~", "*z*",
}

local URLS = {
  "https://e.example/p", "http://e.example/a b", "javascript:alert(1)", "JAVASCRIPT:x", "data:text/html,<b>",
  "vbscript:x", "//evil.example/x", "relative/path", "mailto:a@b.example", "https://e.example/)(<>",
  "file:///etc/passwd", " javascript:x", "https://e.example/\n# h", "", "\\\\host\\x",
}

local function pick(r, t)
  return t[r(#t)]
end

function M.text(r, max_tokens)
  local n = r(max_tokens or 12)
  local out = {}
  for i = 1, n do
    out[i] = pick(r, TOKENS)
  end
  return table.concat(out)
end

local function style(r)
  if r(3) == 1 then return nil end
  return { bold = r(2) == 1, italic = r(2) == 1, strike = r(2) == 1, code = r(2) == 1 }
end

local function inline_element(r)
  local k = r(10)
  if k <= 4 then
    return { type = "text", text = M.text(r, 6), style = style(r) }
  elseif k == 5 then
    return { type = "link", url = pick(r, URLS), text = r(2) == 1 and M.text(r, 3) or nil, style = style(r),
             unsafe = r(5) == 1 or nil }
  elseif k == 6 then
    return { type = pick(r, { "user", "channel", "usergroup" }), user_id = "U" .. r(3),
             channel_id = "C" .. r(3), usergroup_id = "S" .. r(3), style = style(r) }
  elseif k == 7 then
    return { type = "emoji", name = pick(r, { "tada", "wave::skin-tone-2", "x_<b>_", "custom-one", "`" }),
             style = style(r) }
  elseif k == 8 then
    return { type = "date", timestamp = 1700000000, format = "{date}", fallback = r(2) == 1 and M.text(r, 3) or nil }
  elseif k == 9 then
    return { type = "color", value = M.text(r, 2) }
  end
  return { type = "broadcast", range = pick(r, { "here", "channel", "<b>" }) }
end

local function inline_elements(r)
  local out = {}
  for i = 1, r(6) do
    out[i] = inline_element(r)
  end
  return out
end

function M.rich_text(r)
  local elements = {}
  for i = 1, r(4) do
    local k = r(5)
    if k == 1 then
      local items = {}
      for j = 1, r(3) do
        items[j] = { type = "rich_text_section", elements = inline_elements(r) }
      end
      elements[i] = { type = "rich_text_list", style = pick(r, { "bullet", "ordered" }), indent = r(6) - 1,
                      offset = r(3) - 1, elements = items }
    elseif k == 2 then
      elements[i] = { type = "rich_text_quote", elements = inline_elements(r) }
    elseif k == 3 then
      elements[i] = { type = "rich_text_preformatted", elements = inline_elements(r), language = M.text(r, 2) }
    else
      elements[i] = { type = "rich_text_section", elements = inline_elements(r) }
    end
  end
  return { type = "rich_text", elements = elements }
end

local function text_object(r)
  return { type = pick(r, { "mrkdwn", "plain_text" }), text = M.text(r, 10), emoji = r(2) == 1 }
end

local function element(r)
  local k = r(4)
  if k == 1 then
    return { type = "image", image_url = pick(r, URLS), alt_text = M.text(r, 3) }
  elseif k == 2 then
    return { type = "static_select", placeholder = text_object(r) }
  end
  return { type = "button", text = text_object(r), url = r(2) == 1 and pick(r, URLS) or nil }
end

function M.blocks(r)
  local out = {}
  for i = 1, r(5) do
    local k = r(12)
    local b
    if k == 1 then
      b = { type = "section", text = text_object(r), fields = { text_object(r), text_object(r) }, accessory = element(r) }
    elseif k == 2 then
      b = { type = "header", text = text_object(r) }
    elseif k == 3 then
      b = { type = "context", elements = { text_object(r), element(r), text_object(r) } }
    elseif k == 4 then
      b = { type = "divider" }
    elseif k == 5 then
      b = { type = "image", image_url = pick(r, URLS), alt_text = M.text(r, 3), title = text_object(r) }
    elseif k == 6 then
      b = { type = "actions", elements = { element(r), element(r) } }
    elseif k == 7 then
      b = { type = pick(r, { "call", "file", "markdown", "future_block" }), text = M.text(r, 5),
            external_id = M.text(r, 2), call = { v1 = { name = M.text(r, 3), join_url = pick(r, URLS) } } }
    elseif k == 8 then
      b = { type = "video", title = text_object(r), title_url = pick(r, URLS), description = text_object(r) }
    elseif k == 9 then
      b = { type = "input", label = text_object(r), element = element(r) }
    else
      b = M.rich_text(r)
    end
    out[i] = b
  end
  return out
end

function M.attachment(r)
  local a = {}
  local function maybe(key, value)
    if r(2) == 1 then a[key] = value end
  end
  maybe("pretext", M.text(r, 8))
  maybe("title", M.text(r, 5))
  maybe("title_link", pick(r, URLS))
  maybe("text", M.text(r, 12))
  maybe("author_name", M.text(r, 3))
  maybe("author_link", pick(r, URLS))
  maybe("service_name", M.text(r, 2))
  maybe("from_url", pick(r, URLS))
  maybe("image_url", pick(r, URLS))
  maybe("thumb_url", pick(r, URLS))
  maybe("footer", M.text(r, 4))
  maybe("ts", r(2) == 1 and 1700000000 or M.text(r, 1))
  maybe("color", pick(r, { "danger", "good", "warning", "#ff0000", "<b>" }))
  if r(2) == 1 then
    a.fields = {}
    for i = 1, r(4) do
      a.fields[i] = { title = M.text(r, 3), value = M.text(r, 6), short = r(2) == 1 }
    end
  end
  if r(3) == 1 then a.blocks = M.blocks(r) end
  if r(4) == 1 then a.actions = { { type = "button", text = M.text(r, 2), url = pick(r, URLS) } } end
  return a
end

-- One random message (a table Slack could send) for seed.
function M.message(seed)
  local r = rng(seed)
  local m = { type = "message", user = "U1", ts = string.format("%d.%06d", 1700000000 + seed, seed % 1000000) }
  local k = r(4)
  if k == 1 then
    m.text = M.text(r, 24)
  elseif k == 2 then
    m.text, m.blocks = "fallback", { M.rich_text(r) }
  elseif k == 3 then
    m.text, m.blocks = M.text(r, 4), M.blocks(r)
  else
    m.text, m.attachments = M.text(r, 6), { M.attachment(r), r(2) == 1 and M.attachment(r) or nil }
  end
  return m
end

-- The subtypes lib/subtypes.lua and lib/timeline.lua show differently (issue 13's export shapes).
local SUBTYPES = { "bot_message", "me_message", "channel_topic", "channel_purpose", "pinned_item", "tombstone",
                   "thread_broadcast" }

-- One random message of one of those subtypes for seed: M.message(seed) plus the subtype's fields
-- (username, topic, purpose, pinned item, root), as hostile as the text.
function M.subtype_message(seed)
  local m = M.message(seed)
  local r = rng(seed + 0x5eed)
  m.subtype = pick(r, SUBTYPES)
  if m.subtype == "bot_message" then
    m.user, m.bot_id, m.username, m.icons = nil, "B1", M.text(r, 4), { emoji = M.text(r, 2) }
  elseif m.subtype == "channel_topic" and r(2) == 1 then
    m.topic = M.text(r, 12)
  elseif m.subtype == "channel_purpose" and r(2) == 1 then
    m.purpose = M.text(r, 12)
  elseif m.subtype == "pinned_item" then
    m.item_type = pick(r, { "C", "G", "F", "Fc", "?" })
    m.item = { permalink = r(2) == 1 and pick(r, URLS) or nil, ts = m.ts, thread_ts = m.ts }
  elseif m.subtype == "thread_broadcast" then
    m.root = { type = "message", user = "U1", ts = "1700000000.000000", text = M.text(r, 8) }
  end
  return m
end

-- A scheme a link or image may not have (javascript:, data:, file:, ...), else nil.
local function bad_scheme(dest)
  local d = dest:gsub("&amp;", "&"):gsub("&quot;", "\""):gsub("&lt;", "<"):gsub("&gt;", ">")
  local scheme = d:match("^([%a][%w+.-]*):")
  if not scheme then
    return nil
  end
  scheme = scheme:lower()
  if scheme == "http" or scheme == "https" or scheme == "mailto" then
    return nil
  end
  return scheme
end

-- Check `cmark -t xml` output of a document made of n entries "- ENTRY-i" (each followed by its
-- converted Markdown, indented as the template does). Returns nil, or a message naming the first
-- broken entry: raw HTML, an unsafe link, or an entry whose content left its list item.
function M.check_xml(xml, n)
  local depth, top_blocks, items = 0, 0, 0
  local expected = 1
  local pos = 1
  local current = 0 -- the entry whose item we are in
  while true do
    local s, e, close, name, attrs, selfclose = xml:find("<(/?)([%w_:?!]+)([^>]-)(/?)>", pos)
    if not s then break end
    if name == "html_block" or name == "html_inline" then
      return "raw HTML node in entry " .. current
    end
    if (name == "link" or name == "image") and close == "" then
      local dest = attrs:match('destination="([^"]*)"') or ""
      local scheme = bad_scheme(dest)
      if scheme then
        return "a " .. scheme .. ": " .. name .. " in entry " .. current
      end
    end
    if name == "text" and close == "" and selfclose == "" then
      local te = xml:find("</text>", e + 1, true)
      local text = xml:sub(e + 1, te - 1)
      local k = text:match("^ENTRY%-(%d+)$")
      if k then
        if tonumber(k) ~= expected or depth ~= 4 then
          return "entry " .. k .. " marker out of place (expected entry " .. expected .. " at depth 4, depth " .. depth .. ")"
        end
        current, expected = expected, expected + 1
      end
      pos = te + 7
    else
      pos = e + 1
      if name:find("^[?!]") then
        -- the prologue
      elseif close == "/" then
        depth = depth - 1
      elseif selfclose ~= "/" then
        depth = depth + 1
        if depth == 2 then top_blocks = top_blocks + 1 end
        if depth == 3 and name == "item" then items = items + 1 end
      end
    end
  end
  if top_blocks ~= 1 then
    return top_blocks .. " top-level blocks instead of the one list (content left entry " .. current .. ")"
  end
  if items ~= n or expected ~= n + 1 then
    return items .. " items and " .. (expected - 1) .. " markers for " .. n .. " entries"
  end
  return nil
end

-- The message as JSON, for a failure message.
function M.describe(m)
  local ok, s = pcall(cjson.encode, m)
  return ok and s or tostring(m)
end

return M
