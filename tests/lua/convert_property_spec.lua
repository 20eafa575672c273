-- Property (issue 13, items 15-16): nothing in a message can break the document. Random mrkdwn,
-- rich_text, Block Kit, attachments and export subtypes (tests/lua/helpers/fuzz.lua) go through the real timeline
-- (timeline.build, no filter rules) and report view, are laid out as the default template lays out
-- entries, and `cmark -t xml` must show no raw HTML, no link or image with a scheme other than
-- http(s)/mailto, and every entry's content inside its own list item. PMB_PROPERTY_COUNT inputs
-- (default 20,000 here; bench/convert_property.sh runs 200,000), PMB_PROPERTY_SEED the first seed.
package.path = "tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"
local fuzz = require "helpers.fuzz"

package.loaded.host = {
  log = function() end,
  now = function() return 1731700000 end,
  config = function() return {} end,
  bot = function() return nil end,
  exists = function() return nil end,
  generation = function() return 1 end,
  time_parts = stub.utc_time_parts,
  format_time = stub.utc_format_time,
  list_scripts = function() return {} end,
}

local timeline = require "lib.timeline"
local report = require "lib.report"
local markdown = require "lib.markdown"

local COUNT = tonumber(os.getenv("PMB_PROPERTY_COUNT")) or 20000
local FIRST = tonumber(os.getenv("PMB_PROPERTY_SEED")) or 1
local BATCH = 1000 -- messages per cmark run

local PEOPLE = { U1 = { id = "U1", name = "ada <b>", profile = { display_name = "ada <b>" } } }

-- The document the default entry partial would make of these entry views, with the entry's
-- header reduced to a marker (the header is template text, escaped by Mustache, not under test).
local function document(entries)
  local out = {}
  for i, e in ipairs(entries) do
    out[#out + 1] = "- ENTRY-" .. i
    if e.text_block then out[#out + 1] = "\n" .. e.text_block end
    for _, a in ipairs(e.attachments) do
      if a.pretext_block then out[#out + 1] = "\n" .. a.pretext_block end
      if a.quote_block then out[#out + 1] = "\n" .. a.quote_block end
    end
    for _, f in ipairs(e.files) do
      if f.preview_block then out[#out + 1] = "\n" .. f.preview_block end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local cmark_xml = require("helpers.cmark").xml

-- The message of the first failing entry, rechecked alone so the report names one input.
local function culprit(messages, views)
  for i, m in ipairs(messages) do
    local why = fuzz.check_xml(cmark_xml(document({ views[i] })), 1)
    if why then
      return "seed " .. m.ts:match("^%d+") - 1700000000 .. ": " .. why .. "\ninput: " .. fuzz.describe(m)
        .. "\nmarkdown:\n" .. document({ views[i] })
    end
  end
  return "(no single entry fails alone: the entries interfere)"
end

-- Checks `count` messages make_message(seed), seeds from FIRST on, in batches. Returns the number
-- of failing batches and the first failure.
local function run_batches(make_message, count)
  local failures = 0
  local first_failure
  local seed = FIRST
  while seed < FIRST + count do
    local messages = {}
    for i = 1, math.min(BATCH, FIRST + count - seed) do
      messages[i] = make_message(seed)
      seed = seed + 1
    end
    local t = timeline.build(messages, { people = PEOPLE, channel = "C1", thread_ts = messages[1].ts,
      rules = {}, config = {}, incident = false })
    assert.are.equal(#messages, #t.entries)
    local views = report.view(t, { config = {} }).entries
    local why = fuzz.check_xml(cmark_xml(document(views)), #views)
    if why then
      failures = failures + 1
      first_failure = first_failure or culprit(messages, views)
    end
  end
  return failures, first_failure
end

describe("converted messages through cmark", function()
  it(("keep raw HTML, unsafe links and their content out of the document (%d random inputs)"):format(COUNT), function()
    local failures, first_failure = run_batches(fuzz.message, COUNT)
    assert.are.equal(0, failures, first_failure)
  end)

  -- (a quarter as many: the subtypes rewrite little, the converters underneath are the same)
  it(("do the same for the export subtypes (%d random inputs)"):format(COUNT // 4), function()
    local failures, first_failure = run_batches(fuzz.subtype_message, COUNT // 4)
    assert.are.equal(0, failures, first_failure)
  end)

  it("catches what it is meant to catch (the checker on known-bad Markdown)", function()
    local bad = {
      "- ENTRY-1\n\n  <div>raw</div>\n",
      "- ENTRY-1\n\n  [x](javascript:alert(1))\n",
      "- ENTRY-1\n\n  ![x](data:text/html,x)\n",
      "- ENTRY-1\n\n```\n- ENTRY-2\n",
      "- ENTRY-1\n\n# out\n- ENTRY-2\n",
      "- ENTRY-1\n  a\r- ENTRY-2\r- forged\n",
    }
    for _, md in ipairs(bad) do
      local n = select(2, md:gsub("ENTRY%-", ""))
      assert.is_not_nil(fuzz.check_xml(cmark_xml(md), n), md)
    end
    assert.is_nil(fuzz.check_xml(cmark_xml("- ENTRY-1\n\n  " .. markdown.escape("<div>") .. "\n- ENTRY-2\n"), 2))
  end)
end)
