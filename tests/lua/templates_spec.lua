-- Specs for scripts/lib/templates.lua: escape chosen by the name's suffix, partial lookup,
-- missing templates, and check_all() finding parse errors and missing partials. host is stubbed.
describe("templates", function()
  local templates
  local sources

  before_each(function()
    sources = {}
    package.loaded.host = { templates = function() return sources end }
    -- dispatch test: a recognisable escape stands in for lib/markdown.lua
    package.loaded["lib.markdown"] = { escape = function(s) return "md(" .. s .. ")" end }
    package.loaded["lib.templates"] = nil
    templates = require "lib.templates"
  end)

  after_each(function()
    package.loaded["lib.markdown"] = nil
    package.loaded.host = nil
  end)

  it("escapes .md templates with markdown.escape", function()
    sources["r.md"] = "{{x}} {{{x}}}"
    assert.are.equal("md(*a*) *a*", templates.render("r.md", { x = "*a*" }))
  end)

  it("escapes .json templates as JSON string content", function()
    sources["hook.webhook.json"] = '{"text": "{{text}}"}'
    local out = templates.render("hook.webhook.json", { text = 'say "hi"\nnow\\' })
    assert.are.same({ text = 'say "hi"\nnow\\' }, require("cjson").decode(out))
  end)

  it("escapes .slack templates for Slack: only & < >", function()
    sources["s.slack"] = "{{x}}"
    assert.are.equal("&lt;@U1&gt; &amp; \"q\" *b*", templates.render("s.slack", { x = '<@U1> & "q" *b*' }))
  end)

  it("escapes anything else as HTML", function()
    sources["page.html"] = "{{x}}"
    assert.are.equal("&lt;i&gt;&quot;", templates.render("page.html", { x = '<i>"' }))
  end)

  it("finds partials by name, under partials/, and with the parent's suffix", function()
    sources["r.md"] = "{{>a}}|{{>b}}|{{>c}}"
    sources["a"] = "A"
    sources["partials/b"] = "B"
    sources["partials/c.md"] = "C{{x}}"
    assert.are.equal("A|B|Cmd(1)", templates.render("r.md", { x = "1" }))
  end)

  it("raises naming a missing template", function()
    local ok, err = pcall(templates.render, "nope.md", {})
    assert.is_false(ok)
    assert.matches("no template 'nope.md'", err)
  end)

  it("check_all passes on good templates", function()
    sources["r.md"] = "{{#xs}}{{>entry}}{{/xs}}"
    sources["partials/entry.md"] = "{{x}}"
    assert.is_true(templates.check_all())
  end)

  it("check_all reports a parse error with the file and line, and a missing partial", function()
    sources["bad.md"] = "ok\n{{#open}}\n"
    sources["r.md"] = "{{>ghost}}"
    local ok, errs = templates.check_all()
    assert.is_false(ok)
    assert.are.equal(2, #errs)
    assert.matches("^bad%.md%.mustache:2: section", errs[1])
    assert.matches("^r%.md%.mustache: partial 'ghost' not found", errs[2])
  end)

  it("reads the sources on every call (a reload changes the next render)", function()
    sources["r.md"] = "one"
    assert.are.equal("one", templates.render("r.md", {}))
    sources["r.md"] = "two"
    assert.are.equal("two", templates.render("r.md", {}))
  end)
end)
