-- Specs for scripts/lib/emoji.lua and its generated table (scripts/lib/emoji_data.lua, from
-- tools/emoji_table.py): Slack's shortcodes and aliases, skin tones both ways Slack writes them,
-- custom emoji left alone, the config switch; and that the committed table is what the tool makes.
package.path = "tests/lua/?.lua;" .. package.path
local emoji = require "lib.emoji"

describe("emoji.char", function()
  it("knows Slack's names and aliases", function()
    assert.are.equal("\u{1F6A8}", emoji.char("rotating_light"))
    assert.are.equal("\u{1F389}", emoji.char("tada"))
    assert.are.equal("\u{1F44D}", emoji.char("+1"))
    assert.are.equal("\u{1F44D}", emoji.char("thumbsup"))
    assert.are.equal("\u{2705}", emoji.char("white_check_mark"))
  end)

  it("applies skin tones, given apart or in the name", function()
    assert.are.equal("\u{1F44B}\u{1F3FB}", emoji.char("wave", 2))
    assert.are.equal("\u{1F44B}\u{1F3FF}", emoji.char("wave::skin-tone-6"))
    assert.are.equal("\u{1F3E0}\u{1F3FD}", emoji.char("house", 4)) -- no toned form: the swatch follows
    assert.are.equal("\u{1F44B}", emoji.char("wave", 9))
  end)

  it("leaves custom and odd names to the caller", function()
    assert.is_nil(emoji.char("party-parrot"))
    assert.is_nil(emoji.char(nil))
    assert.is_nil(emoji.char("x_<b>_"))
  end)

  it("is off when config timeline.emoji is shortcode", function()
    assert.is_nil(emoji.resolver("shortcode"))
    assert.are.equal(emoji.char, emoji.resolver("unicode"))
    assert.are.equal(emoji.char, emoji.resolver(nil))
  end)
end)

describe("the generated table", function()
  it("is what tools/emoji_table.py makes from the vendored data", function()
    local function read(path)
      local f = assert(io.open(path, "rb"))
      local s = f:read("a")
      f:close()
      return s
    end
    local committed = read("scripts/lib/emoji_data.lua")
    local tmp = os.tmpname()
    local ok = os.execute("PMB_EMOJI_OUT=" .. tmp .. " python3 tools/emoji_table.py > /dev/null")
    assert.is_true(ok)
    local made = read(tmp)
    os.remove(tmp)
    assert.are.equal(#committed, #made)
    assert.is_true(committed == made, "scripts/lib/emoji_data.lua differs from what tools/emoji_table.py makes")
  end)
end)
