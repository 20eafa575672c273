-- Specs for scripts/lib/markdown.lua: a table of escape/code/fence/link/image cases (input ->
-- exact Markdown), then a structural check through the cmark binary that hostile values put
-- into a one-item list stay one item with no raw HTML. Pure Lua: no host stub needed.
package.path = "tests/lua/?.lua;" .. package.path
local markdown = require "lib.markdown"
local cmark = require "helpers.cmark"

-- { name, function, args..., expected }
local CASES = {
  { "plain text is unchanged", markdown.escape, "disk full on db-3", "disk full on db-3" },
  { "emphasis markers", markdown.escape, "*a* _b_ ~c~", "\\*a\\* \\_b\\_ \\~c\\~" },
  { "backslash first", markdown.escape, "C:\\tmp\\*", "C:\\\\tmp\\\\\\*" },
  { "brackets, bang and link syntax", markdown.escape, "![x](y) [a](b)", "\\!\\[x\\](y) \\[a\\](b)" },
  { "raw HTML", markdown.escape, "<script>alert(1)</script>", "\\<script\\>alert(1)\\</script\\>" },
  { "heading marker", markdown.escape, "# Title", "\\# Title" },
  { "table pipes", markdown.escape, "| a | b |", "\\| a \\| b \\|" },
  { "backticks", markdown.escape, "`code`", "\\`code\\`" },
  { "stray ampersand kept", markdown.escape, "AT&T & co", "AT&T & co" },
  { "entity-like ampersand encoded", markdown.escape, "&copy; &#60; &amp;", "&amp;copy; &\\#60; &amp;amp;" },
  { "leading bullet", markdown.escape, "- item", "\\- item" },
  { "leading plus", markdown.escape, "+ item", "\\+ item" },
  { "leading ordered 1.", markdown.escape, "1. item", "1\\. item" },
  { "leading ordered 2)", markdown.escape, "2) item", "2\\) item" },
  { "a number is not a list", markdown.escape, "3.5 GB free", "3.5 GB free" },
  { "leading quote", markdown.escape, "> quoted", "\\> quoted" },
  { "thematic break", markdown.escape, "---", "\\---" },
  { "setext underline", markdown.escape, "===", "\\===" },
  { "dash inside a word stays", markdown.escape, "-v flag", "-v flag" },
  { "indented code indent dropped", markdown.escape, "    indented", "indented" },
  { "newlines become spaces in inline text", markdown.escape, "a\n# b\r\nc", "a \\# b c" },
  { "tilde fence", markdown.escape, "~~~", "\\~\\~\\~" },
  { "number becomes text", markdown.escape, 42, "42" },
  { "block: hard breaks and escaped line starts", markdown.escape_block, "one\n- two\n# three", "  ",
    "one\\\n  \\- two\\\n  \\# three" },
  { "block: blank lines collapse to one paragraph break", markdown.escape_block, "a\n\n\n\nb\n\n", "  ",
    "a\n\n  b" },
  { "block: without indent", markdown.escape_block, "1. x\n2. y", "", "1\\. x\\\n2\\. y" },
  { "indent skips the first and blank lines", markdown.indent, "a\n\nb\nc", "  ", "a\n\n  b\n  c" },
  { "code span simple", markdown.code_span, "ls -la", "`ls -la`" },
  { "code span with backticks inside", markdown.code_span, "a `b` c", "``a `b` c``" },
  { "code span with a double run", markdown.code_span, "x``y", "```x``y```" },
  { "code span with backtick at the edge", markdown.code_span, "`x", "`` `x ``" },
  { "code span keeps markers literal", markdown.code_span, "*a* <b>", "`*a* <b>`" },
  { "code span newline to space", markdown.code_span, "a\n# b", "`a # b`" },
  { "code span empty", markdown.code_span, "", "` `" },
  { "fence plain", markdown.fence, "x = 1\n", "", "```\nx = 1\n```" },
  { "fence with language", markdown.fence, "ls", "bash", "```bash\nls\n```" },
  { "fence longer than a fence inside", markdown.fence, "```\ninner\n```", "md", "````md\n```\ninner\n```\n````" },
  { "fence language sanitised", markdown.fence, "x", "js`<b> x", "```jsbx\nx\n```" },
  { "link http", markdown.link, "docs", "https://example.com/a", "[docs](https://example.com/a)" },
  { "link spaces and parentheses encoded", markdown.link, "wiki", "https://w.example/a b_(c)",
    "[wiki](https://w.example/a%20b_%28c%29)" },
  { "link angle brackets encoded", markdown.link, "x", "https://e.example/<x>", "[x](https://e.example/%3Cx%3E)" },
  { "link entity-like ampersand", markdown.link, "q", "https://e.example/?a=1&copy;=2",
    "[q](https://e.example/?a=1&amp;copy;=2)" },
  { "link mailto", markdown.link, "mail", "mailto:oncall@example.com", "[mail](mailto:oncall@example.com)" },
  { "link relative", markdown.link, "graph", "attachments/F1-graph.png", "[graph](attachments/F1-graph.png)" },
  { "link javascript is text", markdown.link, "click", "javascript:alert(1)", "click (javascript:alert(1))" },
  { "link JavaScript mixed case is text", markdown.link, "x", "JaVaScRiPt:alert(1)", "x (JaVaScRiPt:alert(1))" },
  { "link data: is text", markdown.link, "", "data:text/html,<b>", "data:text/html,\\<b\\>" },
  { "link protocol-relative is text", markdown.link, "x", "//evil.example/a", "x (//evil.example/a)" },
  { "link empty label shows the url", markdown.link, "", "https://e.example/a_b", "[https://e.example/a\\_b](https://e.example/a_b)" },
  { "image", markdown.image, "graph [1]", "attachments/F1 graph.png", "![graph \\[1\\]](attachments/F1%20graph.png)" },
  { "image with unsafe path shows alt", markdown.image, "x", "javascript:alert(1)", "x" },
}

describe("markdown cases", function()
  for _, case in ipairs(CASES) do
    it(case[1], function()
      local fn, expected = case[2], case[#case]
      assert.are.equal(expected, fn(table.unpack(case, 3, #case - 1)))
    end)
  end
end)

describe("markdown.safe_url", function()
  it("accepts http(s), mailto and relative paths", function()
    assert.are.equal("https://a.example/x", markdown.safe_url("https://a.example/x"))
    assert.are.equal("HTTP://A.example", markdown.safe_url("HTTP://A.example"))
    assert.are.equal("mailto:a@b.example", markdown.safe_url("mailto:a@b.example"))
    assert.are.equal("attachments/a.png", markdown.safe_url("attachments/a.png"))
    assert.are.equal("./x:y", markdown.safe_url("./x:y"))
  end)
  it("refuses other schemes, empties and non-strings", function()
    assert.is_nil(markdown.safe_url("javascript:alert(1)"))
    assert.is_nil(markdown.safe_url(" javascript:alert(1)"))
    assert.is_nil(markdown.safe_url("java\tscript:alert(1)"))
    assert.is_nil(markdown.safe_url("vbscript:x"))
    assert.is_nil(markdown.safe_url("file:///etc/passwd"))
    assert.is_nil(markdown.safe_url("https://"))
    assert.is_nil(markdown.safe_url(""))
    assert.is_nil(markdown.safe_url(nil))
  end)
  it("escape turns nil into an empty string", function()
    assert.are.equal("", markdown.escape(nil))
  end)
end)

describe("markdown.escape through cmark", function()
  local HOSTILE = {
    "# heading", "## h2", "- list", "* star", "+ plus", "1. one", "10) ten", "> quote", "```", "~~~",
    "    code", "---", "===", "***", "___", "| a | b |", "<b>bold</b>", "<script>x</script>",
    "<img src=x onerror=alert(1)>", "<!-- c -->", "[x](javascript:alert(1))", "![i](http://e.example/i.png)",
    "[ref]: http://e.example", "<http://e.example>", "&lt;b&gt;", "line\n\n# two", "a\\", "**x**",
  }
  for _, value in ipairs(HOSTILE) do
    it("keeps one list item for " .. string.format("%q", value), function()
      local html = cmark.html("- " .. markdown.escape(value) .. "\n- second\n")
      assert.are.equal(2, cmark.count(html, "<li>"))
      assert.are.equal(1, cmark.count(html, "<ul>"))
      cmark.assert_absent(html, { "<h%d", "<ol", "<blockquote", "<pre", "<hr", "<table", "<b>", "<script",
        "<img", "<a ", "<strong", "<em", "raw HTML omitted" })
    end)
  end

  it("renders escaped text back to the same characters", function()
    local html = cmark.html(markdown.escape("# *a* [b](c) | d ~e~ `f` \\ !g"))
    assert.are.equal("<p># *a* [b](c) | d ~e~ `f` \\ !g</p>\n", html)
  end)

  it("drops NUL and the invisible reordering controls from link labels and image alts (issue 14 item 10)", function()
    local link = markdown.link("invoice\u{202E}fdp.exe\0 \u{2066}x\u{2069}\u{200F}", "https://x.example/")
    assert.are.equal("[invoicefdp.exe x](https://x.example/)", link)
    assert.is_nil(markdown.image("a\u{202D}b\0c", "attachments/a.png"):find("\u{202D}", 1, true))
    assert.are.equal("![abc](attachments/a.png)", markdown.image("a\u{202D}b\0c", "attachments/a.png"))
  end)
end)
