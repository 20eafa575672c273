-- Benchmark (issue 13 item 17): conversion time against message size for adversarial inputs, from
-- 10 KB to 1 MB: mrkdwn with unclosed style markers of one kind and closers of another (the pattern
-- that was quadratic), backtick runs, `<` without `>`, colons, entities, quote lines; rich_text with
-- thousands of alternating styles and code pieces; Block Kit sections; the report title of such a
-- line. Prints, per pattern and size, the time and the time per KB: linear growth keeps the last
-- column flat. Run from the repo root:  lua5.4 bench/convert_linear.lua [MAX_KB]   (no assertions)
package.path = "scripts/?.lua;scripts/?/init.lua;" .. package.path
package.loaded.host = {
  log = function() end,
  now = os.time,
  config = function() return {} end,
  format_time = function(e, _, fmt) return os.date("!" .. fmt, math.floor(tonumber(e) or 0)) end,
  time_parts = function(e) local t = os.date("!*t", math.floor(tonumber(e) or 0)); t.offset = 0; return t end,
  generation = function() return 1 end,
}

local mrkdwn = require "lib.mrkdwn"
local richtext = require "lib.richtext"
local blockkit = require "lib.blockkit"
local report = require "lib.report"
local emoji = require "lib.emoji"

local MAX_KB = tonumber(arg and arg[1]) or 1024
local RESOLVE = { user = function(id) return "user-" .. id end, emoji = emoji.char }

-- n bytes of `unit` repeated (then cut)
local function fill(unit, bytes)
  return string.rep(unit, bytes // #unit + 1):sub(1, bytes)
end

local function rich(bytes, make)
  local elements, size, i = {}, 0, 0
  while size < bytes do
    i = i + 1
    local e = make(i)
    elements[#elements + 1] = e
    size = size + #(e.text or "") + 8
  end
  return { type = "rich_text", elements = { { type = "rich_text_section", elements = elements } } }
end

local PATTERNS = {
  { "mrkdwn *a x n then a~ x n", function(b) return fill("*a ", b // 2) .. fill("a~ ", b // 2) end, mrkdwn.to_markdown },
  { "mrkdwn _*~ openers only", function(b) return fill("_a *b ~c ", b) end, mrkdwn.to_markdown },
  { "mrkdwn backtick runs", function(b) return fill("`a``b```c", b) end, mrkdwn.to_markdown },
  { "mrkdwn < without >", function(b) return fill("<a <@U1 ", b) end, mrkdwn.to_markdown },
  { "mrkdwn <…> tokens", function(b) return fill("<@U1> <https://e.example|x> ", b) end, mrkdwn.to_markdown },
  { "mrkdwn colons and emoji", function(b) return fill(":a:tada::b ", b) end, mrkdwn.to_markdown },
  { "mrkdwn entities", function(b) return fill("&lt;&amp;&gt; ", b) end, mrkdwn.to_markdown },
  { "mrkdwn quote lines", function(b) return fill("&gt; *q* _x_\n", b) end, mrkdwn.to_markdown },
  { "mrkdwn CRs and fences", function(b) return fill("a\r```b\r", b) end, mrkdwn.to_markdown },
  { "rich_text alternating styles", function(b)
      return rich(b, function(i) return { type = "text", text = "word ", style = { bold = i % 2 == 0, italic = i % 3 == 0 } } end)
    end, richtext.to_markdown },
  { "rich_text code pieces", function(b)
      return rich(b, function(i) return { type = "text", text = i % 2 == 0 and "`" or "<x>", style = { code = true } } end)
    end, richtext.to_markdown },
  { "blockkit sections", function(b)
      local blocks = {}
      for i = 1, b // 40 do
        blocks[i] = { type = "section", text = { type = "mrkdwn", text = "*alert* " .. i .. " <@U1> :tada:" } }
      end
      return blocks
    end, blockkit.to_markdown },
  { "report title of [a]( x n", function(b) return fill("[a](", b) end, function(s)
      return report.title({ entries = { { text_md = s } } })
    end },
}

local SIZES = { 10, 40, 120, 240, 500, 1024 }

local function time_of(fn, input)
  fn(input, RESOLVE) -- warm up
  local runs, t0 = 0, os.clock()
  repeat
    fn(input, RESOLVE)
    runs = runs + 1
  until os.clock() - t0 > 0.2 or runs >= 20
  return (os.clock() - t0) / runs
end

print(string.format("%-32s %8s %10s %10s", "pattern", "size KB", "ms", "ms per KB"))
for _, p in ipairs(PATTERNS) do
  for _, kb in ipairs(SIZES) do
    if kb <= MAX_KB then
      local input = p[2](kb * 1024)
      local t = time_of(p[3], input)
      print(string.format("%-32s %8d %10.2f %10.4f", p[1], kb, t * 1000, t * 1000 / kb))
    end
  end
end
