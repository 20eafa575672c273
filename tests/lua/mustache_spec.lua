-- Runs every test of the official Mustache spec suite (JSON files in MUSTACHE_SPEC_DIR, default
-- tests/fixtures/mustache-spec, a copy of ../shared/testdata/mustache-spec) against scripts/lib/mustache.lua, plus the
-- project's own rules: escape parameter, parse errors with name and line, partial listing.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local mustache = require "lib.mustache"
local read = require("helpers.host_stub").read_or_nil

-- the suite is vendored (with its LICENSE) so a fresh clone tests itself; the variable points the
-- run at another copy, e.g. a newer release of the spec
local SPEC_DIR = os.getenv("MUSTACHE_SPEC_DIR") or "tests/fixtures/mustache-spec"
local SPEC_FILES = { "comments", "delimiters", "interpolation", "inverted", "partials", "sections" }

describe("mustache spec suite", function()
  local total = 0
  for _, file in ipairs(SPEC_FILES) do
    local path = SPEC_DIR .. "/" .. file .. ".json"
    local raw = read(path)
    if not raw then
      it("finds " .. path, function()
        error("Mustache spec file " .. path .. " is missing: set MUSTACHE_SPEC_DIR to the spec's specs/ directory")
      end)
    else
      local suite = cjson.decode(raw)
      describe(file, function()
        for _, t in ipairs(suite.tests) do
          total = total + 1
          it(t.name .. ": " .. t.desc, function()
            local out = mustache.render(t.template, t.data, t.partials)
            assert.are.equal(t.expected, out)
          end)
        end
      end)
    end
  end
  it("ran all 136 spec tests", function()
    assert.are.equal(136, total)
  end)
end)

describe("mustache project rules", function()
  it("uses the escape function given for {{x}} but never for {{{x}}} or {{&x}}", function()
    local esc = function(s) return "[" .. s .. "]" end
    assert.are.equal("[a*b] a*b a*b", mustache.render("{{x}} {{{x}}} {{&x}}", { x = "a*b" }, nil, esc))
  end)

  it("escapes HTML by default", function()
    assert.are.equal("&lt;b&gt; &amp; &quot;", mustache.render("{{x}}", { x = '<b> & "' }))
  end)

  it("prints integral floats without a decimal point", function()
    assert.are.equal("3 2.5", mustache.render("{{a}} {{b}}", { a = 3.0, b = 2.5 }))
  end)

  it("raises with the template name and line on an unclosed section", function()
    local ok, err = pcall(mustache.parse, "line1\n{{#items}}\nx\n", "report.md")
    assert.is_false(ok)
    assert.matches("^report%.md:2: section '{{#items}}' is never closed", err)
  end)

  it("raises on a mismatched closing tag, naming both lines", function()
    local ok, err = pcall(mustache.parse, "{{#a}}\n\n{{/b}}", "t.md")
    assert.is_false(ok)
    assert.matches("^t%.md:3: closing tag '{{/b}}' does not match '{{#a}}' opened on line 1", err)
  end)

  it("raises on an unclosed tag and on a closing tag without opening", function()
    local ok, err = pcall(mustache.parse, "a\nb {{name", "x")
    assert.is_false(ok)
    assert.matches("^x:2: unclosed tag", err)
    ok, err = pcall(mustache.parse, "{{/a}}", "y")
    assert.is_false(ok)
    assert.matches("^y:1: closing tag '{{/a}}' without an opening tag", err)
  end)

  it("counts lines across multi-line comments", function()
    local ok, err = pcall(mustache.parse, "{{! one\ntwo\nthree }}\n{{#a}}", "c")
    assert.is_false(ok)
    assert.matches("^c:4:", err)
  end)

  it("lists the partials a template uses, nested ones included", function()
    local used = mustache.partials_used("{{>a}}{{#x}}{{> b }}{{/x}}{{>a}}", "t")
    assert.are.same({ "a", "b" }, used)
  end)

  it("treats cjson.null as missing and calls functions for their value", function()
    assert.are.equal("|", mustache.render("{{a}}|{{#a}}x{{/a}}", { a = cjson.null }))
    assert.are.equal("7", mustache.render("{{f}}", { f = function() return 7 end }))
  end)

  it("indents every line of a standalone partial, blank lines included", function()
    local out = mustache.render("  {{>p}}\n", {}, { p = "a\n\nb\n" })
    assert.are.equal("  a\n  \n  b\n", out)
  end)

  it("stops runaway partial recursion with an error", function()
    local ok, err = pcall(mustache.render, "{{>p}}", {}, { p = "{{>p}}" })
    assert.is_false(ok)
    assert.matches("deeper than 100", err)
  end)
end)
