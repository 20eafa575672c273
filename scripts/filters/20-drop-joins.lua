-- Drops "X has joined the channel" / "X has left the channel" messages: they say nothing about the
-- incident. Run by lib/filters.lua. To keep them, delete this file (or a subtype below) and SIGHUP.
local SUBTYPES = {
  channel_join = "joined the channel",
  channel_leave = "left the channel",
  group_join = "joined the channel",
  group_leave = "left the channel",
}

return {
  name = "20-drop-joins",
  description = "Drops joins and leaves.",
  each = function(entry)
    return SUBTYPES[entry.subtype or ""]
  end,
}
