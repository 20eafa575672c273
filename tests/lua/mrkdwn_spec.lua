-- Specs for scripts/lib/mrkdwn.lua: a table of Slack mrkdwn -> Markdown cases (every form the
-- converter handles, plus malformed input), then a structural check: hostile messages rendered
-- as one list item through the cmark binary stay one item with no raw HTML.
package.path = "tests/lua/?.lua;" .. package.path
local mrkdwn = require "lib.mrkdwn"
local cmark = require "helpers.cmark"
local count = cmark.count

local PEOPLE = { U1 = "Ada Lovelace", W2 = "Grace Hopper" }
local CHANNELS = { C1 = "incidents" }
local GROUPS = { S1 = "sre-team" }
local RESOLVE = {
  user = function(id) return PEOPLE[id] end,
  channel = function(id) return CHANNELS[id] end,
  usergroup = function(id) return GROUPS[id] end,
}

-- { name, mrkdwn input, expected Markdown }
local CASES = {
  -- entities
  { "entities decoded", "a &amp; b &lt;c&gt;", "a & b \\<c\\>" },
  { "stray ampersand kept", "AT&T & friends", "AT&T & friends" },
  { "double-encoded entity shows the entity", "&amp;lt;", "&amp;lt;" },
  { "unknown entity left alone", "&nbsp;x", "&amp;nbsp;x" },
  -- mentions
  { "user resolved", "ping <@U1>", "ping @Ada Lovelace" },
  { "W user resolved", "<@W2> here", "@Grace Hopper here" },
  { "user with label, resolver wins", "<@U1|ada>", "@Ada Lovelace" },
  { "unknown user uses the label", "<@U9|bob>", "@bob" },
  { "unknown user without label uses the id", "<@U9>", "@U9" },
  { "user name is escaped", "<@U8|_evil_ *x*>", "@\\_evil\\_ \\*x\\*" },
  { "channel with label", "<#C2|general>", "\\#general" },
  { "channel resolved", "<#C1>", "\\#incidents" },
  { "channel unknown", "<#C3>", "\\#C3" },
  { "here", "<!here> look", "@here look" },
  { "channel broadcast", "<!channel>", "@channel" },
  { "everyone with label", "<!everyone|@everyone>", "@everyone" },
  { "subteam with label", "<!subteam^S2|@devs> please", "@devs please" },
  { "subteam resolved", "<!subteam^S1>", "@sre-team" },
  { "date uses the fallback", "at <!date^1392734382^{date_num} {time}^http://e.example|Feb 18, 6:39 AM>",
    "at Feb 18, 6:39 AM" },
  { "date without fallback formatted in UTC", "<!date^1392734382^{date_num}>", "2014-02-18 14:39 UTC" },
  -- links
  { "bare url", "<https://e.example/a>", "[https://e.example/a](https://e.example/a)" },
  { "url with label", "see <https://e.example/runbook|the runbook>", "see [the runbook](https://e.example/runbook)" },
  { "url entities decoded", "<https://e.example/?a=1&amp;b=2|q>", "[q](https://e.example/?a=1&b=2)" },
  { "url parentheses encoded", "<https://w.example/A_(b)|wiki>", "[wiki](https://w.example/A_%28b%29)" },
  { "label markup escaped", "<https://e.example|*[x]*>", "[\\*\\[x\\]\\*](https://e.example)" },
  { "mailto", "<mailto:oncall@e.example|Email>", "[Email](mailto:oncall@e.example)" },
  { "javascript url stays text", "<javascript:alert(1)|click me>", "click me (javascript:alert(1))" },
  { "not a url stays literal", "<b>hi</b>", "\\<b\\>hi\\</b\\>" },
  -- styles
  { "bold", "*bold* text", "**bold** text" },
  { "italic", "_italic_ text", "_italic_ text" },
  { "strike", "~gone~", "~~gone~~" },
  { "nested bold italic", "*_both_*", "**_both_**" },
  { "bold inside punctuation", "(*x*).", "(**x**)." },
  { "bold around a mention", "*<@U1>*", "**@Ada Lovelace**" },
  { "snake_case is not italic", "snake_case_name", "snake\\_case\\_name" },
  { "lone asterisk literal", "2 * 3 = 6", "2 \\* 3 = 6" },
  { "asterisk without partner", "*oops", "\\*oops" },
  { "double asterisks are literal", "**x**", "\\*\\*x\\*\\*" },
  { "marker before a space does not open", "* x *", "\\* x \\*" },
  { "crossed markers keep one pair", "*a _b* c_", "**a \\_b** c\\_" },
  -- code
  { "inline code has no formatting", "run `*x* <@U1> &lt;y&gt;` now", "run `*x* @Ada Lovelace <y>` now" },
  { "inline code with a lone backtick pair", "`a` and `b`", "`a` and `b`" },
  { "unclosed backtick", "it`s", "it\\`s" },
  { "fenced block", "```\nls -la\n*x*\n```", "```\nls -la\n*x*\n```" },
  { "fenced block starting inline", "see:```tail -f log```done", "see:\n```\ntail -f log\n```\ndone" },
  { "fenced block holding backticks", "```a ``` b```", "```\na \n```\nb\\`\\`\\`" },
  { "fenced block decodes entities", "```&lt;html&gt; &amp;```", "```\n<html> &\n```" },
  { "unclosed fence is literal", "```oops *b*", "\\`\\`\\`oops **b**" },
  { "a >>> quote goes on past a fence", ">>> quoted\n```code```\nafter the block",
    "> quoted\n```\ncode\n```\n> after the block" },
  { "fences next to each other", "a\n```x``````y```\nb",
    "a\n```\nx\n```\n```\ny\n```\nb" },
  { "empty fenced block", "```\n```",
    "```\n\n```" },
  { "a fence between a quote and a list-like line", "> quote\n```<@U1> &lt;b&gt;```\n- item",
    "> quote\n```\n@Ada Lovelace <b>\n```\n\\- item" },
  { "paragraphs around a fence", "*bold*\n\n```a```\n\n_it_",
    "**bold**\n\n```\na\n```\n\n_it_" },
  { "an odd fence after a block stays literal", "```a```\nnext ``` odd\nlast",
    "```\na\n```\nnext \\`\\`\\` odd\\\nlast" },
  -- quotes and lines
  { "quote with entity marker", "&gt; quoted", "> quoted" },
  { "quote with raw marker", ">raw", "> raw" },
  { "quote lines then text", "&gt; one\n&gt; two\nafter", "> one\\\n> two\n\nafter" },
  { "text then quote", "before\n&gt; q", "before\n> q" },
  { "triple quote quotes the rest", "&gt;&gt;&gt; a\nb", "> a\\\n> b" },
  { "quote content cannot become a list", "&gt; - item", "> \\- item" },
  { "line breaks are hard breaks", "one\ntwo\nthree", "one\\\ntwo\\\nthree" },
  { "blank lines make one paragraph break", "a\n\n\n\nb", "a\n\nb" },
  { "trailing spaces removed", "a  \nb   ", "a\\\nb" },
  { "CRLF newlines", "a\r\nb", "a\\\nb" },
  { "dash list lines stay text", "- one\n- two", "\\- one\\\n\\- two" },
  { "bullet lines stay text", "• one\n• two", "• one\\\n• two" },
  { "numbered lines stay text", "1. one\n2) two", "1\\. one\\\n2\\) two" },
  -- looks like Markdown
  { "heading", "# not a heading", "\\# not a heading" },
  { "table", "| a | b |\n|---|---|", "\\| a \\| b \\|\\\n\\|---\\|---\\|" },
  { "markdown link", "[x](https://e.example)", "\\[x\\](https://e.example)" },
  { "markdown image", "![i](x.png)", "\\!\\[i\\](x.png)" },
  { "thematic break", "---", "\\---" },
  { "setext", "title\n===", "title\\\n\\===" },
  { "indented code", "    code", "code" },
  { "html comment", "&lt;!-- x --&gt;", "\\<\\!-- x --\\>" },
  -- emoji and odd input
  { "emoji kept", ":white_check_mark: done :+1:", ":white_check_mark: done :+1:" },
  { "emoji with skin tone", ":wave::skin-tone-2:", ":wave::skin-tone-2:" },
  { "clock times are text", "at 10:30:45", "at 10:30:45" },
  { "unclosed angle", "a <https://e.example b", "a \\<https://e.example b" },
  { "empty angle", "a <> b", "a \\<\\> b" },
  { "bad user id", "<@>", "\\<@\\>" },
  -- issue 13: tokens are read before code spans (11); touching spans stay one span (15)
  { "date token inside a code span shows its fallback as code text",
    "`<!date^00000000^{_}|`>code<!date^00000000^{_}|`>`", "`` `code` ``" },
  { "touching code spans are one span", "`a``b`", "`ab`" },
  { "code html then a code span stays code", "`<img src=x onerror=alert(1)>``x`", "`<img src=x onerror=alert(1)>x`" },
  { "a link inside code shows its label", "`see <https://e.example|docs>`", "`see docs`" },
  { "control bytes used internally are replaced", "a\1b\2c", "a\239\191\189b\239\191\189c" },
  { "empty", "", "" },
}

describe("mrkdwn.to_markdown cases", function()
  for _, case in ipairs(CASES) do
    it(case[1], function()
      assert.are.equal(case[3], mrkdwn.to_markdown(case[2], RESOLVE))
    end)
  end

  it("works without resolvers", function()
    assert.are.equal("@bob \\#general @U1", mrkdwn.to_markdown("<@U1|bob> <#C1|general> <@U1>"))
  end)

  it("returns an empty string for non-strings", function()
    assert.are.equal("", mrkdwn.to_markdown(nil))
    assert.are.equal("", mrkdwn.to_markdown(42))
  end)

  it("passes ids and labels to the resolvers and uses a date resolver", function()
    local seen = {}
    local out = mrkdwn.to_markdown("<#C7|ops> <!date^1700000000^{time}>", {
      channel = function(id, label) seen[#seen + 1] = id .. "/" .. label; return "ops-room" end,
      date = function(ts, fmt) return "at " .. ts .. " " .. fmt end,
    })
    assert.are.same({ "C7/ops" }, seen)
    assert.are.equal("\\#ops-room at 1700000000 {time}", out)
  end)

  it("ignores resolvers that return nothing useful", function()
    local out = mrkdwn.to_markdown("<@U5|eve>", { user = function() return "" end })
    assert.are.equal("@eve", out)
  end)
end)

-- cmark turns raw HTML into "<!-- raw HTML omitted -->", so a leak shows up as that or a tag.
local FORBIDDEN = { "<h%d", "<ol", "<hr", "<table", "<b>", "<script", "<img", "<i>", "<iframe",
  "raw HTML omitted", "href=\"javascript", "<a href=\"data" }

describe("mrkdwn through cmark as one list item", function()
  local HOSTILE = {
    "# heading\n## two", "- a\n- b\n* c\n+ d", "1. one\n2. two\n10) ten", "&gt; quote\nafter",
    "```\ncode\n```\n# after fence", "~~~\nx\n~~~", "line\n\n    indented code\n\n- list after blank",
    "para\n---\nmore\n===", "***\n___", "| a | b |\n|---|---|\n| 1 | 2 |", "<b>bold</b> &lt;b&gt;x&lt;/b&gt;",
    "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;", "<javascript:alert(1)|click>",
    "[x](javascript:alert(1)) ![i](http://e.example/i.png)", "[ref]: http://e.example\n[ref]",
    "&lt;!-- comment --&gt;", "a\\\n\\", "**x** __y__", "*unclosed _mixed ~all",
    "text ```inline fence``` then\n\n\n# h", "&gt;&gt;&gt; all\n# quoted\n- rest", "<!date^x^{date}|<b>fallback</b>>",
    "<https://e.example/a b|label> <mailto:x@y.example|m>", "tab\tstart\n\t\tdeep",
  }
  for _, text in ipairs(HOSTILE) do
    it("keeps the structure for " .. string.format("%q", text), function()
      local converted = mrkdwn.to_markdown(text, RESOLVE)
      local html = cmark.list_item_html(converted)
      assert.are.equal(1, count(html, "<li>"), html)
      assert.are.equal(1, count(html, "<ul>"), html)
      cmark.assert_absent(html, FORBIDDEN)
      if not text:find("```", 1, true) then
        assert.are.equal(0, count(html, "<pre"), html)
      end
      if not text:find("&gt;") then
        assert.are.equal(0, count(html, "<blockquote"), html)
      end
    end)
  end

  it("renders quotes, fences and links where the input has them", function()
    local md = mrkdwn.to_markdown("&gt; q\nsee <https://e.example|x>\n```a\nb```", RESOLVE)
    local html = cmark.list_item_html(md)
    assert.are.equal(1, count(html, "<blockquote>"))
    assert.are.equal(1, count(html, "<pre>"))
    assert.are.equal(1, count(html, "<a href=\"https://e.example\">x</a>"))
    assert.are.equal(1, count(html, "<li>"))
  end)

  it("renders literal Markdown look-alikes as the same text", function()
    local html = cmark.html(mrkdwn.to_markdown("# x | a | [x](y) **z** 1. <b>", RESOLVE))
    assert.are.equal("<p># x | a | [x](y) **z** 1. &lt;b&gt;</p>\n", html)
  end)
end)

describe("mrkdwn speed", function()
  it("stays linear on long input", function()
    -- not a timing assertion: a quadratic scan would make this spec visibly slow
    local text = string.rep("*a* _b_ <@U1> `c` &amp; ", 20000)
    local out = mrkdwn.to_markdown(text, RESOLVE)
    assert.are.equal(20000, count(out, "@Ada Lovelace"))
  end)
end)

describe("mrkdwn closers find their opener directly", function()
  -- issue 13 item 17: each `~` closer used to walk the whole stack of `*` openers
  it("pairs the last opener of the same marker across others", function()
    assert.are.equal("**a \\_b \\_c d**", mrkdwn.to_markdown("*a _b _c d*"))
    assert.are.equal("\\*a **b c** d\\~", mrkdwn.to_markdown("*a *b c* d~"))
  end)
  it("drops openers inside a closed pair", function()
    assert.are.equal("**a \\_b** c\\_", mrkdwn.to_markdown("*a _b* c_"))
  end)
  it("handles 6,666 openers then 6,666 other closers (the adversarial pattern)", function()
    local text = string.rep("*a ", 6666) .. string.rep("a~ ", 6666)
    local out = mrkdwn.to_markdown(text)
    assert.are.equal(6666, count(out, "\\%*"))
    assert.are.equal(6666, count(out, "\\~"))
  end)
end)

describe("mrkdwn emoji", function()
  local EMOJI = { emoji = function(name, tone)
    local chars = { tada = "\u{1F389}", wave = "\u{1F44B}" }
    local tones = { [2] = "\u{1F3FB}" }
    return chars[name] and chars[name] .. (tones[tone] or "") or nil
  end }
  it("turns known shortcodes into characters, with skin tones", function()
    assert.are.equal("\u{1F389} ok \u{1F44B}\u{1F3FB}", mrkdwn.to_markdown(":tada: ok :wave::skin-tone-2:", EMOJI))
  end)
  it("keeps unknown (custom) ones as typed", function()
    assert.are.equal(":party-parrot: \u{1F389}", mrkdwn.to_markdown(":party-parrot: :tada:", EMOJI))
  end)
  it("leaves shortcodes inside code alone", function()
    assert.are.equal("`:tada:`", mrkdwn.to_markdown("`:tada:`", EMOJI))
  end)
end)

describe("mrkdwn.to_inline", function()
  local INLINE_CASES = {
    { "lines joined with spaces", "one\ntwo\n\nthree", "one two three" },
    { "fence becomes a code span", "run ```ls\n<b>``` now", "run `ls <b>` now" },
    { "quote marker dropped", "&gt; quoted *b*\nnext", "quoted **b** next" },
    { "line starts still escaped", "- a\n# b", "\\- a \\# b" },
    { "empty", "", "" },
  }
  for _, case in ipairs(INLINE_CASES) do
    it(case[1], function()
      assert.are.equal(case[3], mrkdwn.to_inline(case[2], RESOLVE))
    end)
  end

  it("stays on one line with no raw HTML", function()
    local cell = mrkdwn.to_inline("a | b\n```x\n```\n&gt; c\n<b>", RESOLVE)
    local html = cmark.html("| h |\n| - |\n| " .. cell .. " |\n")
    assert.are.equal(0, count(html, "raw HTML omitted"), html)
    assert.is_nil(cell:find("\n", 1, true))
  end)
end)
