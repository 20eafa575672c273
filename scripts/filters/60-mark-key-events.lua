-- Marks key events, drops nothing: a message pinned in the channel (pins.list, read by
-- lib/timeline.lua into env.pinned) or carrying one of config timeline.key_event_reactions
-- (default :pushpin:). The report lists them in "Key events" and marks them in the timeline.
-- To count another reaction, add its name (without colons) to that list in the config.
return {
  name = "60-mark-key-events",
  description = "Marks pinned messages and messages with a key-event reaction; drops nothing.",
  apply = function(entries, env)
    local t = env.config.timeline or {}
    local wanted = {}
    for _, name in ipairs(t.key_event_reactions or { "pushpin" }) do wanted[name] = true end
    local pinned = env.pinned or {}
    for _, entry in ipairs(entries) do
      local source
      if pinned[entry.ts] then source = "pinned" end
      local reactions = entry.raw and entry.raw.reactions
      if not source and type(reactions) == "table" then
        for _, r in ipairs(reactions) do
          if type(r) == "table" and wanted[r.name] then source = "reaction" end
        end
      end
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
