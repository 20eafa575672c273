-- Specs for scripts/lib/report.lua (the view) and the default template: what the view holds, and
-- that the rendered document is valid CommonMark in which every entry stays one list item whatever
-- its text holds (checked by parsing the output with `cmark -t xml`). host is stubbed; templates
-- are read from templates/ on disk; lib/markdown.lua is the real one.

package.path = "tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"
local cmark = require "helpers.cmark"

local function stub_host(overrides)
  local host = {
    templates = stub.disk_templates,
    generation = function() return 7 end,
    config = function() return { timezone = "UTC", report = { template = "postmortem.md" } } end,
    now = function() return 1731628000 end,
    time_parts = stub.utc_time_parts,
    format_time = stub.utc_format_time,
  }
  for k, v in pairs(overrides or {}) do host[k] = v end
  package.loaded.host = host
  for _, m in ipairs({ "lib.report", "lib.templates", "lib.slug" }) do package.loaded[m] = nil end
  return host
end

local HOSTILE = table.concat({
  "# Not a heading",
  "- [ ] not a checklist",
  "---",
  "",
  "",
  "| a | b |",
  -- the converter hands over HTML already entity-encoded (its contract); structure is ours
  "&lt;/li&gt;&lt;/ul&gt;&lt;script&gt;alert(1)&lt;/script&gt;",
  "```",
  "unclosed fence",
  "",
  "    indented code?",
  "> quote",
  "1. ordered",
  "=====",
}, "\n")

local function entry(n, text, extra)
  local e = {
    ts = string.format("1731624%03d.000100", n), time = 1731624000 + n,
    time_label = string.format("22:40:%02d", n % 60),
    author = { id = "U" .. n, name = "Person " .. n },
    text_md = text,
    permalink = "https://acme.slack.com/archives/C0INCIDENT/p1731624" .. string.format("%03d", n) .. "000100",
    files = {}, attachments = {}, marks = {}, reactions = {},
  }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function sample_timeline()
  return {
    channel = "C0INCIDENT", channel_name = "incidents", thread_ts = "1731624001.000100",
    zone = "UTC", complete = true, fetched = 9, expected = 9,
    entries = {
      entry(1, ":rotating_light: **Checkout errors: card payments _failing_** in eu\\-west\nsecond line",
            { date_label = "2024-11-14" }),
      entry(2, HOSTILE, { author = { id = "U2", name = "Eve\n# Heading | pipe ](x)" } }),
      entry(3, "files below", { files = {
        { id = "F1", name = "graph (1).png", title = "Graph [x]", kind = "image",
          local_path = "attachments/F1-graph (1).png", size = 172 },
        { id = "F2", name = "applog", title = "applog", kind = "file", local_path = "attachments/F2-app.log",
          size = 2976 },
        { id = "F3", name = "old.png", kind = "image", missing_reason = "hidden by the plan's history limit" },
        { id = "F4", name = "run.sh", kind = "snippet", local_path = "attachments/F4-run.sh", size = 10,
          preview = "echo ```\n</pre>\n# x" },
      } }),
      entry(4, "", { author = { id = "B1", name = "Grafana Alerts", is_bot = true },
        merged = { count = 6, first_label = "22:40:04", last_label = "22:41:04" },
        attachments = { { title = "[FIRING:1] HighErrorRate", title_link = "https://grafana.example.com/a",
                          text_md = "5xx above 5%\n\n# not a heading",
                          fields = { { title = "severity", value_md = "critical" },
                                     { title = "service", value_md = "checkout\napi" } } } } }),
      entry(5, "**Mitigated:** rolled back", { broadcast = true, marks = { mitigation = true },
        edited = { ts = "1", time = 1, label = "22:45" }, date_label = "2024-11-15",
        reactions = { { name = "white_check_mark", count = 2 } } }),
    },
    dropped = {
      { rule = "10-drop-bot-self", reason = "the bot's own messages",
        items = { { ts = "1731624100.000100", author = "postmortembot", summary = "Status update posted",
                    permalink = "https://acme.slack.com/archives/C0INCIDENT/p1731624100000100" } } },
      { rule = "40-collapse-alert-storms", reason = "same alert repeated",
        items = { { ts = "1731624010.000100", author = { name = "Grafana Alerts" }, summary = "[FIRING:1] x" },
                  { ts = "1731624020.000100", author = { name = "Grafana Alerts" }, summary = "[FIRING:1] x" } } },
    },
    figures = {
      start = { ts = "1731624001.000100", time = 1731624001, label = "22:40:01",
                permalink = "https://acme.slack.com/archives/C0INCIDENT/p1731624001000100" },
      first_response = { ts = "1731624002.000100", time = 1731624002, label = "22:40:02", by = "Eve" },
      durations = { { from = "start", to = "first_response", seconds = 1, label = "1s" } },
    },
    files = { downloaded = 3, missing = 1, bytes = 3158 },
    requested_by = { id = "U1", name = "Alice" }, requested_at = 1731627967,
  }
end

describe("report.view", function()
  local report
  before_each(function()
    stub_host()
    report = require "lib.report"
  end)

  it("takes the title from the first entry's first line, without Markdown marks or emoji", function()
    local view = report.view(sample_timeline())
    assert.are.equal("Checkout errors: card payments failing in eu-west", view.title)
    assert.are.equal("postmortem-2024-11-14-checkout-errors-card-payments-failing-in", view.file_base)
  end)

  it("makes Markdown plain for titles and summaries, keeping escaped characters", function()
    assert.are.equal("a *b* c_d [e] link x", report.plain("**a** \\*b\\* c\\_d \\[e\\] [link](http://x) `x`\\"))
    assert.are.equal("it failing :white_check_mark: snake_case", report.plain("it _failing_ :white_check_mark: snake_case"))
  end)

  it("strips links from plain text as the pattern would, in one pass (issue 13 item 17)", function()
    report = require "lib.report"
    local pieces = { "[", "]", "(", ")", "!", "a", "\\]", " " }
    local seed = 7
    for _ = 1, 3000 do
      local parts = {}
      for i = 1, seed % 12 + 1 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        parts[i] = pieces[seed % #pieces + 1]
      end
      local s = table.concat(parts)
      assert.are.equal((s:gsub("!?%[([^%]]*)%]%([^%)]*%)", "%1")), report.link_labels(s), s)
    end
    -- a 40 KB line of "[" then "](": a quadratic scan would take seconds here
    local title = report.title({ entries = { { text_md = string.rep("[", 40000) .. "](x" } } })
    assert.are.equal(100, #title)
  end)

  it("falls back to the channel for a title when there is no text", function()
    local t = sample_timeline()
    t.entries = {}
    assert.are.equal("Incident in #incidents", report.view(t).title)
  end)

  it("carries channel, thread link, requester, zone, counts and the generation", function()
    local view = report.view(sample_timeline())
    assert.are.equal("#incidents", view.channel_label)
    assert.are.equal("https://acme.slack.com/archives/C0INCIDENT/p1731624001000100", view.thread_url)
    assert.are.equal("Alice", view.requested_by)
    assert.are.equal("2024-11-14 23:46 UTC", view.requested_at_label)
    assert.are.equal("UTC (UTC, UTC+00:00)", view.zone_label)
    assert.are.equal(5, view.counts.entries)
    assert.are.equal(3, view.counts.dropped)
    assert.are.equal(5, view.counts.merged)
    assert.are.equal(1, view.counts.files_missing)
    assert.are.equal(7, view.generation)
    assert.is_true(view.complete)
    assert.is_false(view.incomplete)
  end)

  it("names figures and durations and keeps their links", function()
    local view = report.view(sample_timeline())
    assert.are.equal("Start", view.figures[1].name)
    assert.are.equal("https://acme.slack.com/archives/C0INCIDENT/p1731624001000100", view.figures[1].permalink)
    assert.are.equal("First response", view.figures[2].name)
    assert.are.equal("Eve", view.figures[2].by)
    assert.are.same({ from = "Start", to = "First response", label = "1s", seconds = 1 }, view.durations[1])
  end)

  it("describes files: image and file links percent-encoded, missing ones with the reason", function()
    local files = report.view(sample_timeline()).entries[3].files
    assert.is_true(files[1].is_image)
    assert.are.equal("attachments/F1-graph%20%281%29.png", files[1].url)
    assert.is_true(files[2].is_file)
    assert.are.equal("2.9 KB", files[2].size)
    assert.is_true(files[3].missing)
    assert.are.equal("hidden by the plan's history limit", files[3].missing_reason)
    assert.matches("^    ````\n    echo ```\n", files[4].preview_block)
  end)

  it("indents entry text so it stays inside the list item, and flattens one-line fields", function()
    local e = report.view(sample_timeline()).entries[2]
    for line in (e.text_block .. "\n"):gmatch("(.-)\n") do
      assert.is_true(line == "" or line:sub(1, 2) == "  ", "line not indented: " .. line)
    end
    assert.is_nil(e.author:find("\n"))
    local a = report.view(sample_timeline()).entries[4].attachments[1]
    assert.are.equal("  > 5xx above 5%\n  >\n  > # not a heading", a.text_block)
    assert.are.equal("checkout api", a.fields[2].value_md)
  end)

  it("closes a code fence the text left open", function()
    assert.are.equal("a\n```sh\nx\n```", report.close_fences("a\n```sh\nx\n"))
    assert.are.equal("~~~~\nx\n~~~\n~~~~", report.close_fences("~~~~\nx\n~~~"))
    assert.are.equal("```\nx\n```\ny", report.close_fences("```\nx\n```\ny"))
    assert.are.equal("``` a`b", report.close_fences("``` a`b"))
  end)

  it("links only safe URLs", function()
    local t = sample_timeline()
    t.entries[2].permalink = "javascript:alert(1)"
    t.entries[4].attachments[1].title_link = "https://x.example/a b)"
    local view = report.view(t)
    assert.is_false(view.entries[2].permalink)
    assert.are.equal("https://x.example/a%20b%29", view.entries[4].attachments[1].title_link)
  end)

  it("lists dropped messages per rule with time labels", function()
    local view = report.view(sample_timeline())
    assert.are.equal("10-drop-bot-self", view.dropped[1].rule)
    assert.are.equal(1, view.dropped[1].count)
    assert.are.equal("22:41:40", view.dropped[1].items[1].time_label)
    assert.are.equal("Grafana Alerts", view.dropped[2].items[1].author)
  end)

  it("marks an incomplete timeline with its counts", function()
    local t = sample_timeline()
    t.complete, t.fetched, t.expected = false, 200, 1040
    local view = report.view(t)
    assert.are.same({ fetched = 200, expected = 1040 }, view.incomplete)
    local md = report.render(t)
    assert.matches("only 200 of 1040 messages", md, 1, true)
  end)

  it("picks the template per channel, else report.template", function()
    local config = { report = { template = "a.md", templates_by_channel = { C1 = "b.md" } } }
    assert.are.equal("b.md", report.template_name(config, "C1"))
    assert.are.equal("a.md", report.template_name(config, "C2"))
    assert.are.equal("postmortem.md", report.template_name({}, "C2"))
  end)
end)

describe("the default postmortem template", function()
  local report
  before_each(function()
    stub_host()
    report = require "lib.report"
  end)

  it("passes the template self-check", function()
    local ok, errs = require("lib.templates").check_all()
    assert.is_true(ok, errs and table.concat(errs, "\n"))
  end)

  it("keeps every entry one top-level list item under Timeline, whatever the text holds", function()
    local t = sample_timeline()
    local md = report.render(t)
    local doc = cmark.structure(md)
    assert.are.equal(#t.entries, doc.items["Timeline"])
    assert.are.equal(0, doc.html)
  end)

  it("has exactly the expected sections, with day headings in the timeline", function()
    local doc = cmark.structure((report.render(sample_timeline())))
    assert.are.same({ "Key times", "Summary", "Impact", "Detection", "Root cause", "Trigger", "Resolution",
                      "Action items", "Lessons learned", "Timeline",
                      "Appendix: what the filter rules left out" }, doc.headings)
    assert.are.same({ "2024-11-14", "2024-11-15", "10-drop-bot-self (1)", "40-collapse-alert-storms (2)" },
                    doc.h3)
    assert.are.equal(3, doc.items["Appendix: what the filter rules left out"])
  end)

  it("survives hostile text in every entry at once, and hostile names", function()
    local t = sample_timeline()
    for i, e in ipairs(t.entries) do
      if i > 1 then
        e.text_md = HOSTILE
        e.author.name = "Mallory ** [x](y) <b>\n## h2"
      end
    end
    local doc = cmark.structure((report.render(t)))
    assert.are.equal(#t.entries, doc.items["Timeline"])
    assert.are.equal(0, doc.html)
    assert.are.equal(11, #doc.headings)
  end)

  it("keeps a snippet preview and entry text with lone CRs inside their entry (issue 13 item 16)", function()
    local t = sample_timeline()
    t.entries[3].files[4].preview = "a\r```\r<div>x</div>\r- forged\r## h"
    t.entries[2].text_md = "a\r\\<b\\>\r```\r- forged"
    local md = report.render(t)
    local doc = cmark.structure(md)
    assert.are.equal(#t.entries, doc.items["Timeline"])
    assert.are.equal(0, doc.html)
    assert.are.equal(11, #doc.headings)
  end)

  it("embeds images, links files, names missing files, links each message", function()
    local md = report.render(sample_timeline())
    assert.matches("![Graph \\[x\\]](attachments/F1-graph%20%281%29.png)", md, 1, true)
    assert.matches("[applog](attachments/F2-app.log)", md, 1, true)
    assert.matches("not included: hidden by the plan's history limit", md, 1, true)
    assert.matches("[link](https://acme.slack.com/archives/C0INCIDENT/p1731624002000100)", md, 1, true)
    assert.matches("_edited 22:45_", md, 1, true)
    assert.matches("_also sent to the channel_", md, 1, true)
    assert.matches("_repeated 6 times, until 22:41:04_", md, 1, true)
    assert.matches("scripts generation 7", md, 1, true)
  end)

  it("renders 10,000 entries", function()
    local t = sample_timeline()
    local base = t.entries[3]
    for i = 6, 10000 do
      t.entries[i] = entry(i, "line " .. i .. " with *text*", { files = base.files })
    end
    local md = report.render(t)
    local n = 0
    for _ in md:gmatch("\n%- %*%*22:") do n = n + 1 end
    assert.are.equal(10000, n)
  end)
end)

describe("slug", function()
  local slug
  before_each(function()
    stub_host()
    slug = require "lib.slug"
  end)

  it("makes lowercase ascii with single dashes, at most 40 chars cut at a dash", function()
    assert.are.equal("checkout-errors-card-payments-failing-in", slug.of("Checkout errors: card payments failing in eu-west"))
    assert.are.equal("db-failover-03-00", slug.of("  DB failover @ 03:00!! "))
    assert.are.equal(40, #slug.of(string.rep("x", 60)))
  end)

  it("falls back to incident when nothing is left", function()
    assert.are.equal("incident", slug.of("🔥🔥 ::: ---"))
    assert.are.equal("incident", slug.of(nil))
  end)

  it("names the file with the date of the start in the zone", function()
    assert.are.equal("postmortem-2024-11-14-x", slug.file_base("X", "1731624067.001900", "UTC"))
  end)
end)
