-- What `autopsy …` should report on, from its arguments: this thread, the whole channel (typed
-- outside a thread), a window (`since 14:05`, `since <message link>`, `last 2h`) or a linked
-- thread (`autopsy <thread link>`, anywhere). Called by commands/autopsy.lua; calls lib/links.lua
-- and host (time). Returns a scope table or nil, message (shown to the user with the help line).
local host = require "host"
local links = require "lib.links"

local scope = {}

local UNITS = { m = 60, min = 60, mins = 60, minute = 60, minutes = 60,
                h = 3600, hr = 3600, hrs = 3600, hour = 3600, hours = 3600,
                d = 86400, day = 86400, days = 86400 }

-- Epoch seconds of "14:05" (today in zone; yesterday when that is still to come) or
-- "2024-11-14 14:05" (in zone). nil when the text is neither.
function scope.clock_time(text, zone, now)
  local y, mo, d, h, mi = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d?):(%d%d)$")
  if not y then h, mi = text:match("^(%d%d?):(%d%d)$") end
  if not h then return nil end
  h, mi = tonumber(h), tonumber(mi)
  if h > 23 or mi > 59 then return nil end
  local p = host.time_parts(now, zone)
  local midnight = now - (p.hour * 3600 + p.min * 60 + p.sec)
  if y then
    -- whole days between that date and today, by the civil calendar (os.time on UTC fields)
    local days = (os.time({ year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = 12 })
      - os.time({ year = p.year, month = p.month, day = p.day, hour = 12 })) / 86400
    days = math.floor(days + 0.5)
    return midnight + days * 86400 + h * 3600 + mi * 60
  end
  local t = midnight + h * 3600 + mi * 60
  if t > now then t = t - 86400 end
  return t
end

-- ctx: channel, event (thread_ts tells whether it was typed in a thread), config.
-- Returns { kind = "thread" } | { kind = "channel" } | { kind = "window", oldest = epoch,
-- label = "since 14:05" } | { kind = "link", channel, thread_ts, url }, or nil, why.
function scope.parse(args, ctx, now)
  now = now or host.now()
  local zone = (ctx.config or {}).timezone or "UTC"
  local text = (args or ""):gsub("^%s+", ""):gsub("%s+$", "")
  local lower = text:lower()
  if lower == "" or lower == "this" then
    local in_thread = ctx.in_thread
    if in_thread == nil then in_thread = ctx.event ~= nil and ctx.event.thread_ts ~= nil end
    return { kind = in_thread and "thread" or "channel" }
  end
  local rest = lower:match("^since%s+(.+)$")
  if rest then
    local link = links.message(text)
    if link then
      return { kind = "window", oldest = tonumber(link.ts), channel = link.channel,
               label = "since the linked message" }
    end
    local t = scope.clock_time(rest, zone, now)
    if not t then return nil, "`since` takes a time (`14:05`, `2024-11-14 14:05`) or a message link" end
    return { kind = "window", oldest = t, label = "since " .. rest }
  end
  rest = lower:match("^last%s+(.+)$")
  if rest then
    local n, unit = rest:match("^(%d+%.?%d*)%s*(%a+)$")
    local seconds = n and UNITS[unit] and tonumber(n) * UNITS[unit]
    if not seconds or seconds <= 0 then
      return nil, "`last` takes a duration: `last 30m`, `last 2h`, `last 1d`"
    end
    return { kind = "window", oldest = now - seconds, label = "last " .. rest }
  end
  local link = links.message(text)
  if link then
    return { kind = "link", channel = link.channel, thread_ts = link.thread_ts or link.ts, url = link.url }
  end
  return nil, "I don't understand `" .. text:sub(1, 80) .. "`"
end

return scope
