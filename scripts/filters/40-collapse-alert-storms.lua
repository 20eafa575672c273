-- Collapses alert storms: consecutive messages from the same bot with the same alert (attachment
-- title, else the first line of its text) within config timeline.alert_storm_window seconds of the
-- first one become one entry, marked "× N, first … last …" (entry.merged). Run by lib/filters.lua.
-- To change what counts as "the same alert", edit alert_key below.
local function first_line(s)
  if type(s) ~= "string" then return nil end
  local line = s:match("^%s*([^\n]*)")
  if line and line:match("%S") then return line end
  return nil
end

-- nil for messages that are not from a bot.
local function alert_key(entry)
  local m = entry.raw or {}
  if not (entry.author and entry.author.is_bot) then return nil end
  local a = type(m.attachments) == "table" and m.attachments[1]
  if type(a) ~= "table" then a = {} end
  local what = first_line(a.title) or first_line(a.text) or first_line(a.fallback) or first_line(m.text)
  if not what then return nil end
  return tostring(m.bot_id or entry.author.id) .. "\n" .. what
end

return {
  name = "40-collapse-alert-storms",
  description = "Collapses repeated alerts from the same bot into one entry.",
  -- (each entry's key is worked out as it is read, from entry.raw; the storms once all are read)
  prepare = function(entry)
    return alert_key(entry)
  end,
  apply = function(entries, env)
    local key_of = env.prepared
    local t = env.config.timeline or {}
    local window = tonumber(t.alert_storm_window) or 600
    local out, storm = {}, nil

    local function close()
      if storm and #storm.members > 1 then
        local first, last = storm.members[1], storm.members[#storm.members]
        first.merged = { count = #storm.members, first_ts = first.ts, last_ts = last.ts,
                         first_label = first.time_label, last_label = last.time_label }
        env.merge(first, storm.members, string.format("alert repeated: %d messages folded into the one at %s",
          #storm.members, first.time_label or first.ts))
      end
      storm = nil
    end

    for _, entry in ipairs(entries) do
      local key = key_of[entry]
      if storm and key == storm.key and entry.time - storm.members[1].time <= window then
        storm.members[#storm.members + 1] = entry
      else
        close()
        out[#out + 1] = entry
        if key then storm = { key = key, members = { entry } } end
      end
    end
    close()
    return out
  end,
}
