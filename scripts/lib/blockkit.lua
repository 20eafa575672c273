-- Slack Block Kit `blocks` (of a message or of a legacy attachment) -> CommonMark-safe Markdown:
-- what a reader saw in Slack, block by block (SLACK-FACTS 6). Called by lib/timeline.lua (a message
-- with blocks shows its blocks; its `text` is only the fallback) and lib/attachments.lua; calls
-- lib/mrkdwn.lua (mrkdwn text objects), lib/richtext.lua (rich_text blocks) and lib/markdown.lua.
-- Like them, every line of the result stays inside the caller's list item; odd input never raises.
local markdown = require "lib.markdown"
local mrkdwn = require "lib.mrkdwn"
local richtext = require "lib.richtext"

local blockkit = {}

local find, concat = string.find, table.concat

local str = require("lib.values").text

-- v when it is a table, else an empty one (payload fields are often absent or odd)
local function list(v)
  if type(v) == "table" then
    return v
  end
  return {}
end
blockkit.list = list

-- plain_text with its emoji shortcodes as characters (Slack draws them when `emoji` is not false;
-- unknown names stay as typed). `:wave::skin-tone-2:` works because the tone is an emoji too.
local function plain_emoji(text, obj, resolve)
  local to_char = resolve and resolve.emoji
  if type(to_char) ~= "function" or obj.emoji == false or not text:find(":", 1, true) then
    return text
  end
  return (text:gsub(":([%w_+-]+):", function(name)
    local char = to_char(name)
    if type(char) == "string" and char ~= "" then
      return char
    end
    return nil
  end))
end

-- A text object (`{type = "mrkdwn" | "plain_text", text =}`) -> Markdown: possibly multi-line
-- (blockkit.text), or on one line (blockkit.inline: button labels, context elements, headers).
local function text_object(obj, resolve, inline)
  local text = type(obj) == "table" and obj.text
  if type(text) ~= "string" or (text == "" and not inline) then
    return ""
  end
  if obj.type == "mrkdwn" then
    if inline then return mrkdwn.to_inline(text, resolve) end
    return mrkdwn.to_markdown(text, resolve)
  end
  local plain = plain_emoji(text, obj, resolve)
  if inline then return (markdown.escape(plain):gsub("%s+$", "")) end
  return markdown.escape_block(plain)
end

function blockkit.text(obj, resolve)
  return text_object(obj, resolve, false)
end

function blockkit.inline(obj, resolve)
  return text_object(obj, resolve, true)
end

-- **md** for one line of Markdown; nothing for an empty one (`****` would show).
local function strong(md)
  md = md:gsub("^%s+", ""):gsub("%s+$", "")
  if md == "" then
    return ""
  end
  return "**" .. md .. "**"
end
blockkit.strong = strong

-- An image from another host, linked as an image (never downloaded: the token never goes there).
-- Only http(s): a relative URL would point into the report's own folder.
function blockkit.image(url, alt)
  alt = str(alt) or "image"
  if type(url) == "string" and url:find("^[Hh][Tt][Tt][Pp][Ss]?://") then
    return markdown.image(alt, url)
  end
  return markdown.escape(alt)
end

-- What an interactive element shows: a button's label (a link when it opens a URL), a menu's
-- chosen option or placeholder, a date picker's date. Overflow menus show nothing until opened.
function blockkit.element(e, resolve)
  if type(e) ~= "table" then
    return ""
  end
  local t = e.type
  if t == "button" or t == "workflow_button" then
    local label = blockkit.inline(e.text, resolve)
    if label == "" then
      return ""
    end
    if str(e.url) and markdown.safe_url(e.url) then
      return markdown.link(label, e.url)
    end
    return "\\[" .. label .. "\\]"
  elseif t == "image" then
    return blockkit.image(e.image_url, e.alt_text)
  elseif t == "overflow" then
    return ""
  end
  local chosen = type(e.initial_option) == "table" and e.initial_option.text
  if chosen then
    return blockkit.inline(chosen, resolve)
  end
  local value = str(e.initial_date) or str(e.initial_time) or str(e.initial_value)
  if value then
    return markdown.escape(value)
  end
  return blockkit.inline(e.placeholder, resolve)
end

local function join_nonempty(parts, sep)
  local out = {}
  for _, p in ipairs(parts) do
    if p ~= "" then
      out[#out + 1] = p
    end
  end
  return concat(out, sep)
end

-- Section fields: Slack lays them out two to a row. A field of one line, or of a title line and a
-- value line (`*Service:*\ncheckout-api`), becomes "title value" and shares its row with the next
-- such field; a longer field is a paragraph of its own.
local function fields_md(fields, resolve)
  local parts, row = {}, {}
  for _, f in ipairs(list(fields)) do
    local md = blockkit.text(f, resolve)
    local first, second = md:match("^([^\n]*)\\\n([^\n]*)$")
    if first then
      md = first .. " " .. second
    end
    if md == "" then
      -- an empty field takes no room
    elseif first or not md:find("\n", 1, true) then
      row[#row + 1] = md
      if #row == 2 then
        parts[#parts + 1] = concat(row, " · ")
        row = {}
      end
    else
      if #row > 0 then -- (the order of the fields is kept)
        parts[#parts + 1] = row[1]
        row = {}
      end
      parts[#parts + 1] = md
    end
  end
  if #row > 0 then
    parts[#parts + 1] = row[1]
  end
  return concat(parts, "\n\n")
end

local function section(b, resolve)
  local parts = { blockkit.text(b.text, resolve), fields_md(b.fields, resolve) }
  parts[#parts + 1] = blockkit.element(b.accessory, resolve)
  return join_nonempty(parts, "\n\n")
end

local function context(b, resolve)
  local parts = {}
  for _, e in ipairs(list(b.elements)) do
    if type(e) == "table" then
      if e.type == "image" then
        parts[#parts + 1] = markdown.escape(str(e.alt_text) or "")
      else
        parts[#parts + 1] = blockkit.inline(e, resolve)
      end
    end
  end
  return join_nonempty(parts, " · ")
end

local function actions(b, resolve)
  local parts = {}
  for _, e in ipairs(list(b.elements)) do
    parts[#parts + 1] = blockkit.element(e, resolve)
  end
  return join_nonempty(parts, " ")
end

-- Blocks that hold no text a reader could copy are one line saying what they were.
local function call(b)
  local v1 = type(b.call) == "table" and type(b.call.v1) == "table" and b.call.v1 or {}
  local line = "_Call_"
  if str(v1.name) then
    line = line .. ": " .. markdown.escape(v1.name)
  end
  if str(v1.join_url) and markdown.safe_url(v1.join_url) then
    line = line .. " · " .. markdown.link("join", v1.join_url)
  end
  return line
end

local function video(b, resolve)
  local title = blockkit.inline(b.title, resolve)
  local url = str(b.title_url) or str(b.video_url)
  if title == "" then
    title = markdown.escape(str(b.alt_text) or "video")
  end
  local line = "_Video_: " .. (url and markdown.link(title, url) or title)
  local description = blockkit.inline(b.description, resolve)
  if description ~= "" then
    line = line .. " · " .. description
  end
  return line
end

local function image_block(b, resolve)
  local title = blockkit.inline(b.title, resolve)
  local url = b.image_url or (type(b.slack_file) == "table" and b.slack_file.url)
  return join_nonempty({ title, blockkit.image(url, b.alt_text) }, "\\\n")
end

local function input(b, resolve)
  local label = blockkit.inline(b.label, resolve)
  local shown = blockkit.element(b.element, resolve)
  return "_Input_" .. (label ~= "" and (": " .. label) or "") .. (shown ~= "" and (" · " .. shown) or "")
end

local BLOCKS = {
  section = section,
  context = context,
  actions = actions,
  call = call,
  video = video,
  image = image_block,
  input = input,
  rich_text = function(b, resolve) return richtext.to_markdown(b, resolve) end,
  header = function(b, resolve) return strong(blockkit.inline(b.text, resolve)) end,
  divider = function() return "---" end,
  file = function(b)
    return "_File_" .. (str(b.external_id) and (": " .. markdown.escape(b.external_id)) or "")
  end,
  -- Markdown written by an app is shown as the text it is: passing it through could inject HTML.
  markdown = function(b) return markdown.escape_block(str(b.text) or "") end,
}

-- One block -> Markdown ("" when it shows nothing). Unknown types show their text, if any.
function blockkit.block(b, resolve)
  if type(b) ~= "table" then
    return ""
  end
  local fn = BLOCKS[b.type]
  if fn then
    return fn(b, resolve)
  end
  if type(b.text) == "table" then
    return blockkit.text(b.text, resolve)
  end
  return ""
end

-- Blocks -> Markdown, one paragraph (or list, quote, code block) per block that shows something.
function blockkit.to_markdown(blocks, resolve)
  if type(blocks) == "table" and blocks[2] == nil and blocks[1] ~= nil then -- (one block: no table)
    local md = blockkit.block(blocks[1], resolve)
    return find(md, "%S") and md or ""
  end
  local parts = {}
  for _, b in ipairs(list(blocks)) do
    local md = blockkit.block(b, resolve)
    if md:find("%S") then
      parts[#parts + 1] = md
    end
  end
  return concat(parts, "\n\n")
end

return blockkit
