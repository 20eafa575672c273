-- Specs for scripts/lib/richtext.lua: a table of rich_text blocks -> Markdown cases (sections,
-- styles, links, mentions, lists with nesting and offsets, preformatted, quotes, unknown and
-- malformed elements), find_block, and a structural check of hostile blocks through cmark.
package.path = "tests/lua/?.lua;" .. package.path
local richtext = require "lib.richtext"
local markdown = require "lib.markdown"
local cmark = require "helpers.cmark"
local count = cmark.count

local RESOLVE = {
  user = function(id) return ({ U1 = "Ada Lovelace" })[id] end,
  channel = function(id) return ({ C1 = "incidents" })[id] end,
  usergroup = function(id) return ({ S1 = "sre-team" })[id] end,
}

local function T(text, style) return { type = "text", text = text, style = style } end
local function section(...) return { type = "rich_text_section", elements = { ... } } end
local function block(...) return { type = "rich_text", elements = { ... } } end
local function list(style, items, indent, offset)
  local elements = {}
  for i, text in ipairs(items) do
    elements[i] = section(T(text))
  end
  return { type = "rich_text_list", style = style, elements = elements, indent = indent, offset = offset }
end

-- { name, block, expected Markdown }
local CASES = {
  { "plain section", block(section(T("disk full"))), "disk full" },
  { "text is escaped", block(section(T("# *not* <b> | x"))), "\\# \\*not\\* \\<b\\> \\| x" },
  { "line start escaped", block(section(T("- not a list\n1. nor this"))), "\\- not a list\\\n1\\. nor this" },
  { "bold", block(section(T("a "), T("b", { bold = true }))), "a **b**" },
  { "italic", block(section(T("i", { italic = true }))), "_i_" },
  { "strike", block(section(T("s", { strike = true }))), "~~s~~" },
  { "code keeps markup literal", block(section(T("*x* <y>", { code = true }))), "`*x* <y>`" },
  { "bold italic strike combined", block(section(T("all", { bold = true, italic = true, strike = true }))),
    "**_~~all~~_**" },
  { "bold code combined", block(section(T("cmd", { bold = true, code = true }))), "**`cmd`**" },
  { "edge spaces stay outside markers", block(section(T("x"), T(" bold ", { bold = true }), T("y"))), "x **bold** y" },
  { "same-style runs merge", block(section(T("a", { bold = true }), T("b", { bold = true }))), "**ab**" },
  { "style across a newline", block(section(T("one\ntwo", { bold = true }))), "**one**\\\n**two**" },
  { "link with text", block(section({ type = "link", url = "https://e.example/r", text = "runbook" })),
    "[runbook](https://e.example/r)" },
  { "link without text", block(section({ type = "link", url = "https://e.example/r" })),
    "[https://e.example/r](https://e.example/r)" },
  { "bold link", block(section({ type = "link", url = "https://e.example", text = "x", style = { bold = true } })),
    "**[x](https://e.example)**" },
  { "unsafe link is text", block(section({ type = "link", url = "https://e.example", text = "x", unsafe = true })),
    "x (https://e.example)" },
  { "javascript link is text", block(section({ type = "link", url = "javascript:alert(1)", text = "go" })),
    "go (javascript:alert(1))" },
  { "user resolved", block(section({ type = "user", user_id = "U1" })), "@Ada Lovelace" },
  { "user unknown", block(section({ type = "user", user_id = "U9" })), "@U9" },
  { "bold user", block(section({ type = "user", user_id = "U1", style = { bold = true } })), "**@Ada Lovelace**" },
  { "channel", block(section({ type = "channel", channel_id = "C1" })), "\\#incidents" },
  { "usergroup", block(section({ type = "usergroup", usergroup_id = "S1" })), "@sre-team" },
  { "broadcast", block(section({ type = "broadcast", range = "channel" })), "@channel" },
  { "emoji", block(section({ type = "emoji", name = "white_check_mark", unicode = "2705" })), ":white_check_mark:" },
  { "emoji with skin tone", block(section({ type = "emoji", name = "wave::skin-tone-2" })), ":wave::skin-tone-2:" },
  { "date fallback", block(section({ type = "date", timestamp = 1392734382, format = "{date}", fallback = "Feb 18" })),
    "Feb 18" },
  { "date formatted", block(section({ type = "date", timestamp = 1392734382, format = "{date_num}" })),
    "2014-02-18 14:39 UTC" },
  { "color as code", block(section({ type = "color", value = "#FF0000" })), "`#FF0000`" },
  { "bullet list", block(list("bullet", { "a", "b" })), "- a\n- b" },
  { "ordered list", block(list("ordered", { "a", "b" })), "1. a\n2. b" },
  { "ordered list with offset", block(list("ordered", { "c" }, 0, 2)), "3. c" },
  { "nested lists", block(list("bullet", { "a" }), list("bullet", { "b" }, 1), list("bullet", { "c" }, 2),
    list("bullet", { "d" })), "- a\n  - b\n    - c\n- d" },
  { "ordered under bullet", block(list("bullet", { "a" }), list("ordered", { "b", "c" }, 1)), "- a\n  1. b\n  2. c" },
  { "bullet under ordered uses the wider column", block(list("ordered", { "a" }, 0, 9), list("bullet", { "b" }, 1)),
    "10. a\n    - b" },
  { "nested ordered with offset gets a blank line", block(list("bullet", { "a" }), list("ordered", { "x" }, 1, 4)),
    "- a\n\n  5. x" },
  { "list item text escaped", block(list("bullet", { "# h\n- x" })), "- \\# h\\\n  \\- x" },
  { "section then list then section", block(section(T("intro")), list("bullet", { "a" }), section(T("end"))),
    "intro\n\n- a\n\nend" },
  { "preformatted", block({ type = "rich_text_preformatted", elements = { T("ls *x*\n<b>") } }),
    "```\nls *x*\n<b>\n```" },
  { "preformatted with language and a fence inside", block({ type = "rich_text_preformatted", language = "sh",
    elements = { T("```\nx") } }), "````sh\n```\nx\n````" },
  { "preformatted link shows its text", block({ type = "rich_text_preformatted",
    elements = { { type = "link", url = "https://e.example", text = "e" } } }), "```\ne\n```" },
  { "quote", block({ type = "rich_text_quote", elements = { T("one\ntwo") } }), "> one\\\n> two" },
  { "quote then section", block({ type = "rich_text_quote", elements = { T("q") } }, section(T("after"))),
    "> q\n\nafter" },
  { "quote with blank line", block({ type = "rich_text_quote", elements = { T("a\n\nb") } }), "> a\n>\n> b" },
  { "unknown inline element shows its text", block(section({ type = "sparkle", text = "<i>x</i>" })), "\\<i\\>x\\</i\\>" },
  { "unknown inline element without text", block(section({ type = "sparkle" })), "" },
  { "unknown block element with elements", block({ type = "rich_text_future", elements = { T("f") } }), "f" },
  { "malformed elements are skipped", block(section("junk", 5, T("ok")), "junk"), "ok" },
  { "no elements", { type = "rich_text" }, "" },
  -- issue 13 item 8: one pair of markers around a same-style run, whatever its elements
  { "bold strike emoji then bold strike link share the markers",
    block(section({ type = "emoji", name = "house", style = { bold = true, strike = true } },
      { type = "link", url = "https://e.example", text = "home", style = { bold = true, strike = true } })),
    "**~~:house:[home](https://e.example)~~**" },
  { "bold then bold italic nests", block(section(T("a ", { bold = true }), T("b", { bold = true, italic = true }))),
    "**a _b_**" },
  { "bold mention then bold text", block(section({ type = "user", user_id = "U1", style = { bold = true } },
    T(" here", { bold = true }))), "**@Ada Lovelace here**" },
  -- item 15: code never leaves its span, whatever its neighbours
  { "adjacent code elements are one span", block(section(T("<img src=x onerror=alert(1)>", { code = true }),
    T("``", { code = true }))), "``` <img src=x onerror=alert(1)>`` ```" },
  { "code mention then code text are one span", block(section({ type = "user", user_id = "U1", style = { code = true } },
    T("!", { code = true }))), "`@Ada Lovelace!`" },
  -- item 16: a lone CR is a line break, not a way out of the entry
  { "lone CR in text", block(section(T("a\r# b\r- c"))), "a\\\n\\# b\\\n\\- c" },
}

describe("richtext.to_markdown cases", function()
  for _, case in ipairs(CASES) do
    it(case[1], function()
      assert.are.equal(case[3], richtext.to_markdown(case[2], RESOLVE))
    end)
  end

  it("returns an empty string for a non-table", function()
    assert.are.equal("", richtext.to_markdown(nil))
    assert.are.equal("", richtext.to_markdown("rich_text"))
  end)

  -- The converter reuses its line writers; one held by a conversion in progress is never lent out.
  it("gives the same Markdown when a resolver converts another block meanwhile, or raised in one before", function()
    local b = block(section(T("a", { bold = true }), { type = "user", user_id = "U1", style = { bold = true } },
      T(" x\ny", { code = true }), T(" z")), list("ordered", { "one", "two" }))
    local expected = richtext.to_markdown(b, RESOLVE)
    local inner = block(section(T("inner", { italic = true }), T(" `c`", { code = true })))
    local nested = setmetatable({ user = function(id)
      richtext.to_markdown(inner, RESOLVE)
      return RESOLVE.user(id)
    end }, { __index = RESOLVE })
    assert.are.equal(expected, richtext.to_markdown(b, nested))
    local failing = setmetatable({ user = function() error("resolver failed") end }, { __index = RESOLVE })
    assert.is_false(pcall(richtext.to_markdown, b, failing))
    assert.are.equal(expected, richtext.to_markdown(b, RESOLVE))
    assert.are.equal("_inner_``  `c` ``", richtext.to_markdown(inner, RESOLVE))
  end)

  -- found by bench/convert_property.sh past make check's seeds (1005794, 3002879): raw HTML and
  -- a data: link in the document, from backtick runs that changed after the code span was made
  it("keeps a code-styled link label a code span when its text is only what labels drop", function()
    local link = { type = "link", url = "https://e.example/p", text = "\0", style = { code = true } }
    local md = richtext.to_markdown(block(section(link, T(" then "), T("<b>", { code = true }))), RESOLVE)
    assert.is_nil(md:find("``", 1, true), md) -- no empty "``" fence left to pair with later backticks
    assert.matches("`<b>`$", md)
  end)

  it("joins code pieces with nothing between them into one code span, never two touching fences", function()
    local color = function(v) return { type = "color", value = v } end
    local empty_link = { type = "link", url = "", text = "" }
    local md = richtext.to_markdown(block(section(color("<data:text/html,x>"), empty_link, color("&lt;````"))), RESOLVE)
    assert.are.equal("````` <data:text/html,x>&lt;```` `````", md)
  end)

  it("works without resolvers", function()
    local b = block(section({ type = "user", user_id = "U1" }, T(" "), { type = "channel", channel_id = "C1" }))
    assert.are.equal("@U1 \\#C1", richtext.to_markdown(b))
  end)
end)

describe("richtext.find_block", function()
  it("finds the first rich_text block", function()
    local rt = block(section(T("x")))
    local msg = { blocks = { { type = "section" }, rt, block(section(T("y"))) } }
    assert.are.equal(rt, richtext.find_block(msg))
  end)
  it("returns nil without one", function()
    assert.is_nil(richtext.find_block({ blocks = { { type = "section" } } }))
    assert.is_nil(richtext.find_block({ text = "x" }))
    assert.is_nil(richtext.find_block(nil))
    assert.is_nil(richtext.find_block({ blocks = "nope" }))
  end)
end)

describe("richtext through cmark as one list item", function()
  local HOSTILE = {
    block(section(T("# h\n- l\n1. o\n> q\n```\n    code\n---\n| t |"))),
    block(section(T("<script>alert(1)</script>", { bold = true }), T("<b>x</b>", { italic = true }))),
    block(section({ type = "link", url = "javascript:alert(1)", text = "<img src=x>" })),
    block(section({ type = "user", user_id = "U7" }, { type = "emoji", name = "x_<b>_" })),
    block(section(T("a\n\n\n\n# b"))),
    block({ type = "rich_text_quote", elements = { T("q\n- x\n\n# y") } }, section(T("# after"))),
    block({ type = "rich_text_preformatted", elements = { T("```\n</code><b>\n```") } }, section(T("z"))),
    block({ type = "weird", text = "<iframe>" }),
    block(section(T("<img src=x onerror=alert(1)>", { code = true }), T("``", { code = true }),
      T(" <script>x</script> ", { code = true, bold = true }), T("`", { code = true }))),
    block(section(T("x\r<div>\r\r- forged\r***"))),
    block({ type = "rich_text_preformatted", elements = { T("a\r```\r<b>") } }, section(T("\r# h"))),
  }
  for i, b in ipairs(HOSTILE) do
    it("keeps one item and no raw HTML, case " .. i, function()
      local md = richtext.to_markdown(b, RESOLVE)
      local html = cmark.list_item_html(md)
      assert.are.equal(1, count(html, "<li>"), html)
      cmark.assert_absent(html, { "<h%d", "<ol", "<hr", "<table", "<b>", "<script", "<img", "<iframe",
        "raw HTML omitted", "href=\"javascript" })
    end)
  end

  it("nests lists inside the entry's list item", function()
    local md = richtext.to_markdown(block(section(T("steps")), list("ordered", { "a", "b" }),
      list("bullet", { "c" }, 1)), RESOLVE)
    local html = cmark.html("- entry " .. markdown.indent(md, "  ") .. "\n- next\n")
    assert.are.equal(1, count(html, "<ol>"), html)
    assert.are.equal(2, count(html, "<ul>"), html)
    assert.are.equal(5, count(html, "<li>"), html)
    assert.truthy(html:find("<li>b\n<ul>\n<li>c</li>", 1, true), html)
  end)

  it("keeps hostile list nesting linear: indent 1e7 and 4,000 stair-stepped lists (issue 14 item 10)", function()
    local function nested(indent, text)
      return { type = "rich_text_list", style = "bullet", indent = indent, elements = { section(T(text)) } }
    end
    local deep = richtext.to_markdown(block(nested(1e7, "deep")), RESOLVE)
    assert.truthy(deep:find("deep", 1, true))
    assert.is_true(#deep < 100, deep)
    local stairs = {}
    for i = 1, 4000 do stairs[i] = nested(i, "item " .. i) end
    local md = richtext.to_markdown({ type = "rich_text", elements = stairs }, RESOLVE)
    assert.is_true(#md < 200 * 1024, "4,000 nested lists gave " .. #md .. " bytes")
    assert.truthy(md:find("item 4000", 1, true))
  end)
end)
