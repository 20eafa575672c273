-- Marks key events, drops nothing: a message pinned in the channel (pins.list, read by
-- lib/timeline.lua into env.pinned) or carrying one of config timeline.key_event_reactions
-- (default :pushpin:). The report lists them in "Key events" and marks them in the timeline.
-- To count another reaction, add its name (without colons) to that list in the config.
-- "pinned", "reaction" or nil for one entry, as it is read (entry.raw.reactions).
local function source_of(entry, env)
  local wanted = env.wanted
  if not wanted then
    wanted = {}
    for _, name in ipairs((env.config.timeline or {}).key_event_reactions or { "pushpin" }) do wanted[name] = true end
    env.wanted = wanted
  end
  if env.pinned and env.pinned[entry.ts] then return "pinned" end
  local reactions = entry.raw and entry.raw.reactions
  if type(reactions) == "table" then
    for _, r in ipairs(reactions) do
      if type(r) == "table" and wanted[r.name] then return "reaction" end
    end
  end
  return nil
end

return {
  name = "60-mark-key-events",
  description = "Marks pinned messages and messages with a key-event reaction; drops nothing.",
  prepare = source_of,
  apply = function(entries, env)
    local source_for = env.prepared
    for _, entry in ipairs(entries) do
      local source = source_for[entry]
      if source then
        entry.marks = entry.marks or {}
        entry.marks.key_event = true
        entry.marks.sources = entry.marks.sources or {}
        entry.marks.sources.key_event = source
      end
    end
    return entries
  end,
}
