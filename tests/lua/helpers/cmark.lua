-- Runs Markdown through the `cmark` binary for the Lua specs (markdown_spec, mrkdwn_spec,
-- richtext_spec, report_spec, convert_property_spec) and tests/fuzz/converters.lua: HTML or a structure read from `cmark -t xml`, pattern counts, and the
-- "no forbidden tag" check. Calls the real lib/markdown.lua (indent) and luassert; nothing else.
local assert = require "luassert"
local markdown = require "lib.markdown"

local M = {}

-- cmark reads a file; the Markdown goes through a temporary one so any byte survives the shell.
local function run(args, md)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(md)
  f:close()
  local p = assert(io.popen("cmark " .. args .. " " .. path))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

-- HTML for md. cmark renders raw HTML as "<!-- raw HTML omitted -->", so a leak shows up either way.
function M.html(md)
  return run("", md)
end

-- cmark's XML tree for md (the structure and property checks read it).
function M.xml(md)
  return run("-t xml", md)
end

-- HTML for md placed as the only item of a bullet list, continuation lines indented two spaces.
function M.list_item_html(md)
  return M.html("- " .. markdown.indent(md, "  ") .. "\n")
end

-- How many times the Lua pattern occurs in s.
function M.count(s, pattern)
  local _, n = s:gsub(pattern, "")
  return n
end

-- One assertion per pattern: none of them occurs in html (the message names the pattern).
function M.assert_absent(html, patterns)
  for _, tag in ipairs(patterns) do
    assert.are.equal(0, M.count(html, tag), tag .. " in " .. html)
  end
end

-- Parse `cmark -t xml` output: counts of top-level list items per level-2 section (items),
-- level-2 and level-3 heading texts (headings, h3), and raw HTML nodes anywhere (html).
function M.structure(md)
  local xml = run("-t xml", md)
  local stack, section, heading_text, in_h2 = {}, nil, nil, false
  local result = { items = {}, headings = {}, html = 0, h3 = {} }
  local in_h3, h3_text = false, nil
  local pos = 1
  while true do
    local s, e, close, name, attrs, selfclose = xml:find("<(/?)([%w_:]+)([^>]-)(/?)>", pos)
    if not s then break end
    local text = xml:sub(pos, s - 1)
    if in_h2 and text ~= "" then heading_text = heading_text .. text end
    if in_h3 and text ~= "" then h3_text = h3_text .. text end
    pos = e + 1
    if name == "html_block" or name == "html_inline" then
      if close == "" then result.html = result.html + 1 end
    end
    if close == "/" then
      if name == "heading" and in_h2 then
        in_h2 = false
        section = heading_text:gsub("^%s+", ""):gsub("%s+$", "")
        result.headings[#result.headings + 1] = section
      elseif name == "heading" and in_h3 then
        in_h3 = false
        result.h3[#result.h3 + 1] = (h3_text:gsub("^%s+", ""):gsub("%s+$", ""))
      end
      stack[#stack] = nil
    elseif selfclose == "/" or name == "?xml" or name == "!DOCTYPE" then
      -- a leaf or the XML prologue: nothing to track
    else
      if name == "heading" and #stack == 1 and attrs:find('level="2"') then
        in_h2, heading_text = true, ""
      elseif name == "heading" and #stack == 1 and attrs:find('level="3"') then
        in_h3, h3_text = true, ""
      end
      if name == "item" and #stack == 2 and stack[2] == "list" and section then
        result.items[section] = (result.items[section] or 0) + 1
      end
      stack[#stack + 1] = name
    end
  end
  return result
end

return M
