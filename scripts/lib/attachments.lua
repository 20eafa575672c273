-- Legacy message attachments (alerts, link previews, integrations) -> the timeline's attachment
-- model (docs/timeline-model.md), whole: pretext, severity colour, service and author, title, text,
-- fields, blocks, image, footer with its time, buttons. Called by lib/timeline.lua; calls
-- lib/mrkdwn.lua, lib/blockkit.lua and lib/markdown.lua. `md` is the part Slack draws beside the
-- coloured bar, as block-safe Markdown ("" when nothing would show: the report skips it).
local markdown = require "lib.markdown"
local mrkdwn = require "lib.mrkdwn"
local blockkit = require "lib.blockkit"

local attachments = {}

local concat = table.concat
local find, byte = string.find, string.byte

local str = require("lib.values").visible

local list = blockkit.list

-- Slack's named colours are severities; a hex colour says nothing a reader can name.
local SEVERITY = { danger = "danger", warning = "warning", good = "good" }

-- memo: text -> Markdown for this timeline. Alert storms repeat the same text and field values
-- hundreds of times; each is converted once.
local function converted(text, resolve, memo)
  if not str(text) then
    return nil
  end
  local md = memo[text]
  if md == nil then
    md = mrkdwn.to_markdown(text, resolve)
    memo[text] = md
  end
  if md:find("%S") then
    return md
  end
  return nil
end

-- %s as bytes (space, \t, \n, \v, \f, \r).
local IS_SPACE = { [32] = true, [9] = true, [10] = true, [11] = true, [12] = true, [13] = true }

-- Plain text on one line (titles, names): entities decoded, edges trimmed. (Most are one line
-- already, without space at their edges: then the three gsubs would change nothing.)
local function plain_line(text)
  if not str(text) then
    return nil
  end
  local s = mrkdwn.decode_entities(text)
  if find(s, "\n", 1, true) or find(s, "\r", 1, true) or IS_SPACE[byte(s, 1)] or IS_SPACE[byte(s, -1)] then
    s = s:gsub("[\r\n]+", " "):gsub("^%s+", ""):gsub("%s+$", "")
  end
  return s
end

-- Fields: short one-line fields share a line ("**severity:** critical · **service:** api"); a field
-- with a multi-line value, or a long one, gets its own paragraph. A field without a title is just
-- its value.
local function fields_md(fields)
  if fields[1] == nil then
    return "" -- (most attachments have none)
  end
  local paragraphs, row = {}, {}
  local function end_row()
    if #row > 0 then
      paragraphs[#paragraphs + 1] = concat(row, " · ")
      row = {}
    end
  end
  for _, f in ipairs(fields) do
    local title = f.title ~= "" and blockkit.strong(markdown.escape(f.title .. ":")) or ""
    local value = f.value_md
    if value:find("\n", 1, true) or not f.short then
      end_row()
      if title ~= "" and value ~= "" then
        paragraphs[#paragraphs + 1] = title .. "\\\n" .. value
      else
        paragraphs[#paragraphs + 1] = title .. value
      end
    elseif title ~= "" or value ~= "" then
      row[#row + 1] = (title ~= "" and value ~= "") and (title .. " " .. value) or (title .. value)
    end
  end
  end_row()
  return concat(paragraphs, "\n\n")
end

-- "service · [author](link)" above the title; a preview without a title still says whose it is.
local function byline(a)
  if a.service_name == nil and a.author_name == nil then
    return "" -- (what the parts below join to when neither is there)
  end
  local parts = {}
  local service = plain_line(a.service_name)
  if service then
    parts[#parts + 1] = markdown.escape(service)
  end
  local author = plain_line(a.author_name)
  if author then
    local subname = plain_line(a.author_subname)
    local shown = markdown.escape(author .. (subname and (" " .. subname) or ""))
    parts[#parts + 1] = str(a.author_link) and markdown.link(shown, a.author_link) or shown
  end
  return concat(parts, " · ")
end

local function footer_md(a, resolve)
  local parts = {}
  local footer = str(a.footer) and mrkdwn.to_inline(a.footer, resolve) or ""
  if footer ~= "" then
    parts[#parts + 1] = footer
  end
  local ts = tonumber(a.ts)
  if ts and ts > 0 then
    parts[#parts + 1] = markdown.escape(mrkdwn.format_date(resolve, string.format("%d", ts // 1), "") or "")
  end
  return concat(parts, " · ")
end

local function buttons_md(a, resolve)
  if type(a.actions) ~= "table" then
    return ""
  end
  local labels = {}
  for _, action in ipairs(list(a.actions)) do
    if type(action) == "table" and str(action.text) then
      local label = blockkit.inline({ type = "plain_text", text = plain_line(action.text) }, resolve)
      labels[#labels + 1] = (str(action.url) and markdown.safe_url(action.url)) and markdown.link(label, action.url)
        or ("\\[" .. label .. "\\]")
    end
  end
  return concat(labels, " ")
end

-- One attachment -> its model. resolve as for mrkdwn.to_markdown (emoji and date too).
function attachments.of(a, resolve, memo)
  memo = memo or {}
  local fields = {}
  for _, f in ipairs(list(a.fields)) do
    if type(f) == "table" then
      fields[#fields + 1] = { title = plain_line(f.title) or "", value_md = converted(f.value, resolve, memo) or "",
                              short = f.short == true }
    end
  end
  local is_unfurl = str(a.from_url) ~= nil or str(a.original_url) ~= nil or a.is_app_unfurl == true
  local title = plain_line(a.title)
  local title_link = str(a.title_link) or (is_unfurl and title and (str(a.from_url) or str(a.original_url))) or nil
  local color = str(a.color) and SEVERITY[a.color:lower()] or nil
  local model = {
    pretext_md = converted(a.pretext, resolve, memo),
    title = title,
    title_link = title_link,
    text_md = converted(a.text, resolve, memo),
    fields = fields,
    footer = plain_line(a.footer),
    from_url = str(a.from_url) or str(a.original_url),
    service_name = plain_line(a.service_name),
    author_name = plain_line(a.author_name),
    author_link = str(a.author_link),
    image_url = str(a.image_url),
    thumb_url = str(a.thumb_url),
    severity = color,
    is_unfurl = is_unfurl,
  }
  local title_md
  if title then
    -- a title is plain text, but Slack still reads its `<url|label>` links (a link inside cannot
    -- sit inside the title's own link: then the title is not linked)
    local has_links = a.title:find("<", 1, true) ~= nil
    title_md = has_links and mrkdwn.to_inline(a.title, resolve) or markdown.escape(title)
    if title_link and not title_md:find("](", 1, true) then title_md = markdown.link(title_md, title_link) end
    title_md = blockkit.strong(title_md)
  end
  local heading_parts = {}
  if color then
    heading_parts[1] = "_" .. color .. "_"
  end
  local by = byline(a)
  if by ~= "" then
    heading_parts[#heading_parts + 1] = by
  end
  local heading = concat(heading_parts, " · ")
  local image = model.image_url or model.thumb_url
  if heading ~= "" and title_md then
    heading, title_md = heading .. "\\\n" .. title_md, nil -- one paragraph, two lines
  end
  local parts = {
    heading,
    title_md or "",
    model.text_md or "",
    fields_md(fields),
    a.blocks ~= nil and blockkit.to_markdown(a.blocks, resolve) or "",
    buttons_md(a, resolve),
    image and blockkit.image(image, title or "image") or "",
    footer_md(a, resolve),
  }
  local shown = {}
  for _, p in ipairs(parts) do
    if p:find("%S") then
      shown[#shown + 1] = p
    end
  end
  -- the severity alone is no content: an attachment that shows only its colour is left out
  if #shown == 1 and color and by == "" then
    shown = {}
  end
  model.md = concat(shown, "\n\n")
  return model
end

return attachments
