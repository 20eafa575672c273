-- Specs for scripts/lib/blockkit.lua: each displayable Block Kit block -> Markdown (section text,
-- fields and accessory; header; context; divider; image; actions; call, video, file, input;
-- rich_text; unknown types), emoji in plain_text, and hostile blocks kept inside one list item
-- (checked with cmark).
package.path = "tests/lua/?.lua;" .. package.path
local blockkit = require "lib.blockkit"
local emoji = require "lib.emoji"
local cmark = require "helpers.cmark"
local count = cmark.count

local RESOLVE = {
  user = function(id) return ({ U1 = "Ada" })[id] end,
  emoji = emoji.char,
}

local function mrk(text) return { type = "mrkdwn", text = text } end
local function plain(text) return { type = "plain_text", text = text, emoji = true } end

local CASES = {
  { "section text", { { type = "section", text = mrk("*Poll title*\n") } }, "**Poll title**" },
  { "section fields two to a row, title and value on one line", { { type = "section", fields = {
    mrk("*Priority*\nHigh"), plain("Type"), mrk("*Service:*\napi") } } }, "**Priority** High · Type\n\n**Service:** api" },
  { "a longer field is its own paragraph", { { type = "section", fields = { mrk("a"), mrk("*Voters*\n\n<@U1>\nx"), mrk("b") } } },
    "a\n\n**Voters**\n\n@Ada\\\nx\n\nb" },
  { "section button accessory", { { type = "section", text = mrk(":one: one `8`"),
    accessory = { type = "button", text = plain(":one:") } } }, "1\239\184\143\226\131\163 one `8`\n\n\\[1\239\184\143\226\131\163\\]" },
  { "section image accessory", { { type = "section", text = plain("graph"),
    accessory = { type = "image", image_url = "https://g.example/p.png", alt_text = "5xx ratio" } } },
    "graph\n\n![5xx ratio](https://g.example/p.png)" },
  { "overflow menu shows nothing", { { type = "section", text = mrk("*t*"), accessory = { type = "overflow",
    options = { { text = plain("Delete") } } } } }, "**t**" },
  { "header", { { type = "header", text = plain("Checkout down ") } }, "**Checkout down**" },
  { "empty header shows nothing", { { type = "header", text = plain("  ") } }, "" },
  { "context text and image alt", { { type = "context", elements = {
    { type = "image", image_url = "https://a.example/i.png", alt_text = "Grafana" }, mrk("Created by <@U1>") } } },
    "Grafana · Created by @Ada" },
  { "divider", { { type = "section", text = plain("a") }, { type = "divider" }, { type = "section", text = plain("b") } },
    "a\n\n---\n\nb" },
  { "image with title", { { type = "image", image_url = "https://g.example/p.png", alt_text = "graph",
    title = plain("Error rate") } }, "Error rate\\\n![graph](https://g.example/p.png)" },
  { "image from Slack without URL shows its alt", { { type = "image", slack_file = { id = "F1" }, alt_text = "graph" } },
    "graph" },
  { "image with an unsafe URL shows its alt", { { type = "image", image_url = "javascript:alert(1)", alt_text = "x" } }, "x" },
  { "actions: button labels, link buttons as links, menus with their choice",
    { { type = "actions", elements = { { type = "button", text = plain("Ack") },
      { type = "button", text = plain("Runbook"), url = "https://r.example" },
      { type = "static_select", placeholder = plain("Pick"), initial_option = { text = plain("P1") } },
      { type = "datepicker", initial_date = "2024-11-14" } } } },
    "\\[Ack\\] [Runbook](https://r.example) P1 2024-11-14" },
  { "call", { { type = "call", call_id = "R1" }, { type = "section", text = mrk("Meeting passcode: yyyyy") } },
    "_Call_\n\nMeeting passcode: yyyyy" },
  { "call with name and link", { { type = "call", call = { v1 = { name = "war room", join_url = "https://z.example/j" } } } },
    "_Call_: war room · [join](https://z.example/j)" },
  { "video", { { type = "video", title = plain("Demo"), title_url = "https://v.example/1", alt_text = "d" } },
    "_Video_: [Demo](https://v.example/1)" },
  { "file", { { type = "file", external_id = "ABC", source = "remote" } }, "_File_: ABC" },
  { "input", { { type = "input", label = plain("Reason"), element = { type = "plain_text_input" } } }, "_Input_: Reason" },
  { "rich_text", { { type = "rich_text", elements = { { type = "rich_text_section",
    elements = { { type = "text", text = "hi ", style = { bold = true } }, { type = "user", user_id = "U1" } } } } } },
    "**hi** @Ada" },
  { "markdown block shown as its text", { { type = "markdown", text = "**x** <b>" } }, "\\*\\*x\\*\\* \\<b\\>" },
  { "unknown block with text", { { type = "future", text = mrk("*new*") } }, "**new**" },
  { "unknown block without text", { { type = "future" } }, "" },
  { "junk", { "x", 5, { type = "section" } }, "" },
  { "plain_text emoji off stays as typed", { { type = "section", text = { type = "plain_text", text = ":tada:", emoji = false } } },
    ":tada:" },
  { "plain_text emoji with skin tone", { { type = "section", text = plain(":wave::skin-tone-2: hi") } },
    "\240\159\145\139\240\159\143\187 hi" },
}

describe("blockkit.to_markdown", function()
  for _, case in ipairs(CASES) do
    it(case[1], function()
      assert.are.equal(case[3], blockkit.to_markdown(case[2], RESOLVE))
    end)
  end

  it("returns an empty string for no blocks", function()
    assert.are.equal("", blockkit.to_markdown(nil))
    assert.are.equal("", blockkit.to_markdown({}))
  end)
end)

describe("blockkit through cmark as one list item", function()
  local HOSTILE = {
    { { type = "section", text = plain("# h\n- l\r<script>x</script>\r\n---"), fields = { mrk("```\n</pre>"), plain("1. x") } } },
    { { type = "header", text = plain("<img src=x onerror=alert(1)>\n# h") } },
    { { type = "context", elements = { mrk("<javascript:alert(1)|x>"), { type = "image", alt_text = "<b>\n# h" } } } },
    { { type = "actions", elements = { { type = "button", text = plain("]("), url = "javascript:x" },
      { type = "button", text = plain("<b>"), url = "https://e.example/a b)" } } } },
    { { type = "image", image_url = "https://e.example/x.png)<b>", alt_text = "]\n# h", title = plain("`") } },
    { { type = "video", title = plain("[x](javascript:y)"), title_url = "data:text/html,x" } },
    { { type = "markdown", text = "<div>\n\n- forged" }, { type = "divider" }, { type = "divider" } },
  }
  for i, blocks in ipairs(HOSTILE) do
    it("keeps one item and no raw HTML or unsafe link, case " .. i, function()
      local html = cmark.list_item_html(blockkit.to_markdown(blocks, RESOLVE))
      assert.are.equal(1, count(html, "<li>"), html)
      cmark.assert_absent(html, { "<h%d", "<ol", "<table", "<b>", "<script", "<img src=\"x", "<div",
        "raw HTML omitted", "href=\"javascript", "href=\"data", "src=\"javascript" })
    end)
  end
end)
