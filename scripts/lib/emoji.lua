-- Emoji shortcodes (`:tada:`, `:+1::skin-tone-3:`) -> the Unicode characters Slack draws, from the
-- table tools/emoji_table.py generates into lib/emoji_data.lua (iamcal's emoji-data, Slack's own
-- names and aliases). Called through the resolver lib/timeline.lua builds (resolve.emoji), by
-- lib/mrkdwn.lua, lib/richtext.lua and lib/blockkit.lua. A name it does not know (a workspace's
-- custom emoji) gives nil: the caller keeps `:name:`.
local emoji = {}

local data -- lib.emoji_data, loaded on the first emoji (most messages have none)

-- The character(s) for `name`, with skin tone 2..6 when given (or written `name::skin-tone-N`,
-- as rich_text names it), or nil. An emoji without skin-tone forms gets the tone's swatch after
-- it, as Slack shows it.
function emoji.char(name, tone)
  if type(name) ~= "string" then
    return nil
  end
  local base, t = name:match("^(.-)::skin%-tone%-(%d)$")
  if base then
    name, tone = base, tonumber(t)
  end
  data = data or require "lib.emoji_data"
  local char = data.chars[name]
  if not char then
    return nil
  end
  tone = tonumber(tone)
  if tone and tone >= 2 and tone <= 6 then
    local forms = data.tones[name]
    if forms then
      return forms[tone - 1]
    end
    return char .. data.chars["skin-tone-" .. math.floor(tone)]
  end
  return char
end

-- The resolve.emoji function for config timeline.emoji: "unicode" (the default) or "shortcode"
-- (nil: shortcodes stay as typed).
function emoji.resolver(mode)
  if mode == "shortcode" then
    return nil
  end
  return emoji.char
end

return emoji
