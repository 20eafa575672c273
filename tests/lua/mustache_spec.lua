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

-- lib/mustache_compile.lua writes templates out as Lua code: what a template holds must never
-- become code, and no template is too deep or too wide to compile.
describe("mustache compiled to code", function()
  it("keeps names and text that look like Lua as plain data", function()
    local key = "a]]error('x')--[[\"b"
    local text = "\"]] end error('boom') --[[\n\0\r\\ \226\130\172"
    local view = { [key] = "v\"'\n" }
    local out = mustache.render(text .. "{{{" .. key .. "}}}{{#" .. key .. "}}!{{/" .. key .. "}}", view)
    assert.are.equal(text .. "v\"'\n!", out)
  end)

  it("compiles sections nested deeper than one function holds, lists and inverted alike", function()
    local depth = 300
    local open, close, view = {}, {}, {}
    for i = 1, depth do
      local name = "s" .. i
      open[#open + 1] = (i % 3 == 0 and "{{^" or "{{#") .. name .. "}}" .. (i % 50 == 0 and "{{x}}," or "")
      table.insert(close, 1, "{{/" .. name .. "}}")
      if i % 3 == 0 then
        view[name] = false -- inverted: runs
      elseif i % 3 == 1 then
        view[name] = { { x = i } } -- a list of one
      else
        view[name] = { x = -i } -- a table pushed once
      end
    end
    local out = mustache.render(table.concat(open) .. "." .. table.concat(close), view)
    -- {{x}} at level 50k is the innermost context's x: that level's table or list item, or for an
    -- inverted level (no push) the level under it
    assert.are.equal("-50,100,-149,-200,250,-299,.", out)
  end)

  it("renders a deep template the same as its shallow equivalent", function()
    -- the same content nested 12 levels (past the levels one function writes out in place)
    local parts, view = {}, {}
    local cur = view
    for i = 1, 12 do
      parts[#parts + 1] = "{{#l" .. i .. "}}<{{v}}{{^missing}}-{{/missing}}"
      local child = { v = i }
      cur["l" .. i] = { child, { v = i * 10 } }
      cur = child
    end
    local tpl = table.concat(parts)
    for i = 12, 1, -1 do tpl = tpl .. "{{/l" .. i .. "}}" end
    local out = mustache.render(tpl, view)
    assert.are.equal("<1-<2-<3-<4-<5-<6-<7-<8-<9-<10-<11-<12-<120-<110-<100-<90-<80-<70-<60-<50-<40-<30-<20-<10-",
      out)
  end)

  it("prepare compiles a template and its partials, in sections and indented, so a render compiles nothing", function()
    local compile = require "lib.mustache_compile"
    local real, calls = compile.tree, 0
    compile.tree = function(...) calls = calls + 1 return real(...) end
    -- sources no other spec uses: the parse cache is keyed by the text
    local partials = { item = "<{{name}}> (prepare spec)\n", head = "== {{title}} == (prepare spec)\n" }
    local template = "{{>head}}\n{{#items}}\n  {{>item}}\n{{/items}}\nend of the prepare spec\n"
    local view = { title = "T", items = { { name = "a" }, { name = "b" } } }
    local ok, err = pcall(function()
      mustache.prepare(template, partials, "prepare-spec")
      assert.are.equal(3, calls) -- the template, head, and item as indented under its tag
      assert.are.equal("== T == (prepare spec)\n  <a> (prepare spec)\n  <b> (prepare spec)\nend of the prepare spec\n",
        mustache.render(template, view, partials))
      assert.are.equal(3, calls)
      -- (the count sees compilation: a template not prepared compiles at its render)
      mustache.render("{{x}} not prepared (prepare spec)", { x = 1 })
      assert.are.equal(4, calls)
    end)
    compile.tree = real
    assert(ok, err)
  end)

  it("prepare stops at a partial that includes itself, indented deeper at each level", function()
    local partials = { node = "{{name}} (recursive prepare spec)\n{{#kids}}\n  {{>node}}\n{{/kids}}\n" }
    local template = "{{>node}}"
    local compile = require "lib.mustache_compile"
    local real, calls = compile.tree, 0
    compile.tree = function(...)
      calls = calls + 1
      if calls > 50 then error("prepare does not stop") end -- (without a bound it never would)
      return real(...)
    end
    local ok, err = pcall(mustache.prepare, template, partials, "recursive")
    compile.tree = real
    assert(ok, err)
    assert.is_true(calls <= 10, calls)
    assert.are.equal("a (recursive prepare spec)\n  b (recursive prepare spec)\n    c (recursive prepare spec)\n",
      mustache.render(template, { name = "a", kids = { { name = "b", kids = { { name = "c", kids = {} } } } } }, partials))
  end)

  it("prepare raises on a broken template, as a render would", function()
    assert.has_error(function() mustache.prepare("{{#open}} never closed", {}, "broken") end)
  end)

  it("hands a long list to the sink in pieces, the same text as one string", function()
    local items = {}
    for i = 1, 5000 do items[i] = { n = i } end
    local chunks = {}
    mustache.render_to(function(c) chunks[#chunks + 1] = c end, "{{#items}}[{{n}}]{{/items}}", { items = items })
    local whole = mustache.render("{{#items}}[{{n}}]{{/items}}", { items = items })
    assert.is_true(#chunks > 1)
    assert.are.equal(whole, table.concat(chunks))
    assert.are.equal("[1][2]", whole:sub(1, 6))
  end)
end)
