-- Specs for scripts/lib/attachments.lua: a legacy attachment shown whole (issue 13 items 2-7, 10,
-- 13): pretext, severity, service and author, title trimmed, text, fields (empty titles, multi-line
-- values), blocks, buttons, image and thumb linked from their URL, footer with its time; nothing
-- for an attachment with nothing to show; hostile attachments stay inside one list item (cmark).
package.path = "tests/lua/?.lua;" .. package.path
local attachments = require "lib.attachments"
local emoji = require "lib.emoji"
local cmark = require "helpers.cmark"
local count = cmark.count

local RESOLVE = {
  user = function(id) return ({ U1 = "Ada" })[id] end,
  emoji = emoji.char,
  date = function(ts) return "date(" .. ts .. ")" end,
}

local function md_of(a)
  return attachments.of(a, RESOLVE, {}).md
end

describe("attachments.of", function()
  it("keeps the model fields the report and the filters read", function()
    local m = attachments.of({ pretext = "*alert*", title = " [FIRING] 5xx ", title_link = "https://g.example/a",
      text = "ratio *31%*", fields = { { title = "severity", value = "`critical`", short = true } },
      footer = "Grafana", color = "danger", author_name = "Grafana", image_url = "https://g.example/p.png" }, RESOLVE, {})
    assert.are.equal("**alert**", m.pretext_md)
    assert.are.equal("[FIRING] 5xx", m.title)
    assert.are.equal("https://g.example/a", m.title_link)
    assert.are.equal("ratio **31%**", m.text_md)
    assert.are.same({ title = "severity", value_md = "`critical`", short = true }, m.fields[1])
    assert.are.equal("danger", m.severity)
    assert.are.equal("https://g.example/p.png", m.image_url)
    assert.is_false(m.is_unfurl)
  end)

  it("shows an alert whole, in Slack's order", function()
    assert.are.equal(table.concat({
      "_danger_ · Grafana",
      "**[\\[FIRING\\] 5xx](https://g.example/a)**",
    }, "\\\n") .. "\n\n" .. table.concat({
      "ratio **31%**",
      "**severity:** `critical` · **service:** api",
      "![\\[FIRING\\] 5xx](https://g.example/p.png)",
      "Grafana v10 · date(1700000000)",
    }, "\n\n"), md_of({ title = "[FIRING] 5xx", title_link = "https://g.example/a", text = "ratio *31%*",
      fields = { { title = "severity", value = "`critical`", short = true }, { title = "service", value = "api", short = true } },
      footer = "Grafana v10", ts = 1700000000, color = "danger", author_name = "Grafana",
      image_url = "https://g.example/p.png" }))
  end)

  it("item 2: an attachment of blocks only shows the blocks", function()
    local md = md_of({ blocks = { { type = "section", text = { type = "mrkdwn", text = "<https://c.example/t|asd>" } },
      { type = "context", elements = { { type = "mrkdwn", text = "in dds" }, { type = "mrkdwn", text = "To Do" } } } } })
    assert.are.equal("[asd](https://c.example/t)\n\nin dds · To Do", md)
  end)

  it("item 3: the footer, with its link, is shown", function()
    assert.are.equal("Simple Poll [Edit Settings](https://p.example/s)",
      md_of({ footer = "Simple Poll <https://p.example/s|Edit Settings>" }))
  end)

  it("item 4: author name and link", function()
    assert.are.equal("[Edward Odell](https://t.example/e)\\\n**t**",
      md_of({ author_name = "Edward Odell", author_link = "https://t.example/e", title = "t" }))
  end)

  it("item 5: image and thumb linked from their URL, never anything else", function()
    assert.are.equal("![image](https://i.example/a.jpg)", md_of({ image_url = "https://i.example/a.jpg" }))
    assert.are.equal("![image](https://i.example/t.jpg)", md_of({ thumb_url = "https://i.example/t.jpg" }))
    assert.are.equal("image", md_of({ image_url = "javascript:alert(1)" }))
    assert.are.equal("image", md_of({ image_url = "attachments/F1-x.png" }))
  end)

  it("item 6: a field with an empty title and a multi-line value", function()
    assert.are.equal("1\239\184\143\226\131\163 `1`\\\n@Ada", md_of({ fields = { { title = "", value = ":one: `1`\n<@U1>", short = true } } }))
  end)

  it("item 6: a titled multi-line field gets its own paragraph", function()
    assert.are.equal("**a:** x\n\n**Notes:**\\\none\\\ntwo", md_of({ fields = {
      { title = "a", value = "x", short = true }, { title = "Notes", value = "one\ntwo", short = true } } }))
  end)

  it("item 7: a title ending in a space keeps its markers closed", function()
    assert.are.equal("**Please make a choice...**", md_of({ title = "Please make a choice... " }))
  end)

  it("item 10: a preview without a title says whose it is, then the text", function()
    assert.are.equal("twitter · [Edward (@e)](https://t.example/e)\n\nNEVER LEAVE",
      md_of({ service_name = "twitter", author_name = "Edward (@e)", author_link = "https://t.example/e",
              text = "NEVER LEAVE", from_url = "https://t.example/s/1" }))
  end)

  it("item 13: nothing to show gives nothing", function()
    assert.are.equal("", md_of({}))
    assert.are.equal("", md_of({ color = "danger", fallback = "x", text = "  ", fields = {} }))
    assert.are.equal("", md_of({ image_url = "", footer = "", blocks = {} }))
  end)

  it("legacy buttons show their labels", function()
    assert.are.equal("\\[1\239\184\143\226\131\163\\] [Open](https://e.example)", md_of({ actions = {
      { type = "button", text = ":one:" }, { type = "button", text = "Open", url = "https://e.example" } } }))
  end)

  it("a hex colour is not a severity", function()
    assert.is_nil(attachments.of({ color = "#E01E5A", text = "x" }, RESOLVE, {}).severity)
  end)

  it("converts a repeated text once per memo", function()
    local memo = {}
    attachments.of({ text = "*x*" }, RESOLVE, memo)
    assert.are.equal("**x**", memo["*x*"])
  end)
end)

describe("attachments through cmark, quoted as the report quotes them", function()
  package.loaded.host = package.loaded.host or {} -- report.lua's prefix_lines and close_fences need none of it
  local report = require "lib.report"
  local HOSTILE = {
    { pretext = "```\n# h", title = "<img src=x>\n# t", title_link = "javascript:x", text = "- a\r<div>\r\n```",
      fields = { { title = "*]", value = "1. a\n```", short = true }, { title = "", value = "<b>" } },
      footer = "<javascript:x|f>", author_name = "[x](javascript:y)", author_link = "data:x", image_url = "https://e.example/)<b>" },
    { blocks = { { type = "section", text = { type = "plain_text", text = "---\n===\n<script>" } } }, color = "good",
      actions = { { text = "](", url = "vbscript:x" } } },
  }
  for i, a in ipairs(HOSTILE) do
    it("keeps one item and no raw HTML or unsafe link, case " .. i, function()
      local md = report.prefix_lines(report.close_fences(md_of(a)), "  > ", "  >")
      local html = cmark.html("- entry\n\n" .. md .. "\n")
      assert.are.equal(1, count(html, "<li>"), html)
      cmark.assert_absent(html, { "<h%d", "<ol", "<table", "<b>", "<script", "<div", "raw HTML omitted",
        "href=\"javascript", "href=\"data", "href=\"vbscript" })
    end)
  end
end)
