-- The converters under the budget's time slices: a command's coroutine can be suspended at any
-- instruction of lib/mrkdwn.lua or lib/markdown.lua (core/host/budget.c yields it when its slice
-- is over) while another command's coroutine converts text with the same functions. Their
-- reused scratch tables must not carry one conversion's state into the other. string.find is
-- wrapped before the modules load (they keep it as a local), so that a chosen call yields: the
-- first conversion is suspended at each of its find calls in turn while a second one runs whole.
describe("conversion suspended in the middle by a time slice", function()
  local real_find = string.find
  local suspend_at, calls, watched -- yield watched's suspend_at-th find
  local mrkdwn, blockkit

  setup(function()
    string.find = function(...) -- luacheck: ignore 122 (the point of this spec)
      if coroutine.running() == watched then
        calls = calls + 1
        if calls == suspend_at then coroutine.yield("suspended") end
      end
      return real_find(...)
    end
    package.loaded["lib.mrkdwn"], package.loaded["lib.markdown"] = nil, nil
    package.loaded["lib.richtext"], package.loaded["lib.blockkit"] = nil, nil
    mrkdwn = require "lib.mrkdwn"
    blockkit = require "lib.blockkit"
  end)

  teardown(function()
    string.find = real_find -- luacheck: ignore 122
    package.loaded["lib.mrkdwn"], package.loaded["lib.markdown"] = nil, nil
    package.loaded["lib.richtext"], package.loaded["lib.blockkit"] = nil, nil
  end)

  -- Suspends convert(a) at each of its find calls in turn while convert(b) runs whole.
  local function interleaved(convert, a, b)
    watched = nil
    local alone_a, alone_b = convert(a), convert(b)
    assert.are_not.equal(alone_a, alone_b)
    calls, suspend_at = 0, -1
    watched = coroutine.create(function() return convert(a) end)
    assert.is_true(coroutine.resume(watched))
    local total = calls
    assert.is_true(total > 20, "find calls: " .. total)
    for k = 1, total do
      calls, suspend_at = 0, k
      watched = coroutine.create(function() return convert(a) end)
      local ok, first = coroutine.resume(watched)
      assert.is_true(ok)
      assert.are.equal("suspended", first)
      -- meanwhile, another command converts its own text, whole
      local other = coroutine.wrap(function() return convert(b) end)()
      assert.are.equal(alone_b, other, "the other conversion, with the first suspended at find " .. k)
      local done, out = coroutine.resume(watched)
      assert.is_true(done)
      assert.are.equal(alone_a, out, "the first conversion, suspended at find " .. k)
    end
    watched = nil
  end

  it("gives each of two interleaved mrkdwn conversions what it gives alone", function()
    -- styles (style_line's scratch), specials and entities (escape_chars'), several lines
    interleaved(mrkdwn.to_markdown,
      "*deploy* of _payments-api_ ~rolled~ back [x] #1 & 2 < 3 a*b* c_d_e\n" ..
      "second *line* with _more_ ~of~ it: `code` 1. <https://x.example|link> &copy;\n" ..
      "> quoted *bold* _it_ + - = | { } ! # ` ~ x_y_z *a *b* c*",
      "other *text* entirely _here_ ~and~ [there] (1) # * _ ~ a_b*c~d &amp; x\n" ..
      "*one* _two_ ~three~ *four* _five_ ~six~ *seven* _eight_ ~nine~")
  end)

  it("gives each of two interleaved rich_text conversions what it gives alone", function()
    local function T(text, style) return { type = "text", text = text, style = style } end
    local function message(...)
      return { { type = "rich_text", elements = {
        { type = "rich_text_section", elements = { ... } },
        { type = "rich_text_list", style = "bullet", elements = {
          { type = "rich_text_section", elements = { T("item "), T("one", { bold = true }) } },
          { type = "rich_text_section", elements = { T("code ", { code = true }), T("two", { italic = true }) } },
        } },
        { type = "rich_text_preformatted", elements = { T("pre *formatted*\nlines") } },
      } } }
    end
    interleaved(function(blocks) return blockkit.to_markdown(blocks) end,
      message(T("Deploy "), T("rolled back", { bold = true, italic = true }), T(" in "), T("eu-west", { code = true }),
        { type = "link", url = "https://x.example/a", text = "dash" }, T(" [x] #1 & 2 < 3")),
      message(T("Other "), T("text", { strike = true }), T(" here "), T("`code`", { code = true, bold = true }),
        { type = "user", user_id = "U1" }, T(" * _ ~ done")))
  end)
end)
