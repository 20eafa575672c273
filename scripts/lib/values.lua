-- Checks on the fields of Slack's JSON, where a field may be absent, null (cjson.null), a number or
-- an empty string: values.text(v) is v when v is a non-empty string, values.visible(v) when it also
-- holds something besides whitespace; else nil. One definition for the converters and the timeline
-- (lib/timeline.lua, lib/subtypes.lua, lib/blockkit.lua, lib/attachments.lua, lib/files.lua,
-- lib/people.lua, lib/render_offline.lua), which each had their own copy. Calls nothing.
local values = {}

function values.text(v)
  if v == nil then return nil end -- (the usual case for optional fields, without a call to type)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

function values.visible(v)
  if type(v) == "string" and v:find("%S") then return v end
  return nil
end

return values
