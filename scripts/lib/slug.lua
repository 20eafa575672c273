-- File names for reports: slug.of(title) and slug.file_base(title, epoch, zone)
-- ("postmortem-2024-11-14-checkout-errors"). Called by lib/report.lua, lib/bundle.lua and
-- lib/upload.lua; calls host.time_parts for the date of the thread start in the report's zone.
local host = require "host"

local slug = {}

local MAX = 40

-- lowercase ASCII letters and digits joined by single dashes, at most 40 characters (cut at a dash
-- when there is one), "incident" when nothing is left.
function slug.of(title)
  local s = tostring(title or ""):lower():gsub("[^a-z0-9]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  if #s > MAX then
    local cut = s:sub(1, MAX + 1):match("^(.*)%-")
    if cut and #cut >= 10 then
      s = cut
    else
      s = s:sub(1, MAX)
    end
    s = s:gsub("%-+$", "")
  end
  if s == "" then return "incident" end
  return s
end

-- "postmortem-YYYY-MM-DD-<slug>" with the date of `epoch` (number or Slack ts) in `zone`.
function slug.file_base(title, epoch, zone)
  local p = host.time_parts(epoch, zone or "UTC")
  return string.format("postmortem-%04d-%02d-%02d-%s", p.year, p.month, p.day, slug.of(title))
end

return slug
