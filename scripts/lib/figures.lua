-- The computed figures of a postmortem: start (first message), first human response, mitigation
-- and resolution (from the marks set by scripts/filters/50-mark-status.lua, or the incident record
-- of lib/incidents.lua), the durations between them, each linked to its message. Called by
-- lib/timeline.lua after the filter rules; calls lib/timefmt.lua, lib/tsutil.lua and, when it
-- exists, lib/incidents.lua (incidents.load).
local timefmt = require "lib.timefmt"
local tsutil = require "lib.tsutil"

local figures = {}

-- The incident record for the thread, or nil (no record, no incidents module, or a broken one).
function figures.load_incident(channel, thread_ts)
  local ok, incidents = pcall(require, "lib.incidents")
  if not ok or type(incidents) ~= "table" or type(incidents.load) ~= "function" then return nil end
  local ok2, record = pcall(incidents.load, channel, thread_ts)
  if ok2 and type(record) == "table" then return record end
  return nil
end

local function point(entry, zone, extra)
  local p = {
    ts = entry.ts,
    time = entry.time,
    label = timefmt.label(entry.ts, zone, true),
    permalink = entry.permalink,
  }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local function first_where(entries, fn)
  for _, e in ipairs(entries) do
    if fn(e) then return e end
  end
  return nil
end

local function is_human(e)
  return e.author ~= nil and not e.author.is_bot and e.author.id ~= nil
end

-- The resolution: the incident record, then an `incident resolve` command, then a reaction,
-- then a phrase; within one source, the first marked message.
local SOURCES = { "incident resolve", "reaction", "phrase" }

local function resolution_of(entries, zone, incident, opts)
  if incident and (incident.resolution_ts or incident.resolved_at) then
    local e = incident.resolution_ts and first_where(entries, function(x) return x.ts == incident.resolution_ts end)
    if e then return point(e, zone, { source = "incident resolve" }) end
    local ts = incident.resolution_ts or incident.resolved_at
    local time = tsutil.to_number(ts) or tonumber(incident.resolved_at)
    if time then
      return {
        ts = incident.resolution_ts,
        time = time,
        label = timefmt.label(time, zone, true),
        permalink = incident.resolution_ts and opts.permalink and opts.permalink(incident.resolution_ts) or nil,
        source = "incident resolve",
      }
    end
  end
  local first_by_source = {}
  for _, x in ipairs(entries) do
    if x.marks and x.marks.resolution then
      local source = x.marks.sources and x.marks.sources.resolution or "phrase"
      first_by_source[source] = first_by_source[source] or x
    end
  end
  for _, source in ipairs(SOURCES) do
    local e = first_by_source[source]
    if e then return point(e, zone, { source = source }) end
  end
  return nil
end

-- entries: the filtered timeline entries in order. opts: zone, thread_ts, channel,
-- incident (record or nil; loaded when opts.load_incident), permalink(ts) for record-only points.
function figures.compute(entries, opts)
  opts = opts or {}
  local zone = opts.zone or "UTC"
  local f = { durations = {} }
  local start = entries[1]
  if not start then return f end
  f.start = point(start, zone)

  local parent = first_where(entries, function(e) return e.ts == opts.thread_ts end) or start
  local parent_author = parent.author and parent.author.id
  -- entries are in ts order: the replies are everything after the first one
  local replies_after_start = function(fn)
    for i = 2, #entries do
      if fn(entries[i]) then return entries[i] end
    end
    return nil
  end
  local responder = replies_after_start(function(e) return is_human(e) and e.author.id ~= parent_author end)
    or replies_after_start(is_human)
  if responder then
    f.first_response = point(responder, zone, { by = responder.author.name or responder.author.id })
  end

  local mitigation = first_where(entries, function(e) return e.marks and e.marks.mitigation end)
  if mitigation then f.mitigation = point(mitigation, zone) end

  local incident = opts.incident
  if incident == nil and opts.load_incident then
    incident = figures.load_incident(opts.channel, opts.thread_ts)
  end
  f.resolution = resolution_of(entries, zone, incident, opts)

  local function add(from, to)
    local a, b = f[from], f[to]
    if not (a and b and a.time and b.time) then return end
    local seconds
    if a.ts and b.ts then
      seconds = tsutil.seconds_between(a.ts, b.ts)
    else
      seconds = math.floor(b.time - a.time)
    end
    if seconds < 0 then return end
    f.durations[#f.durations + 1] = { from = from, to = to, seconds = seconds, label = timefmt.duration(seconds) }
  end
  add("start", "first_response")
  add("start", "mitigation")
  add("start", "resolution")
  add("mitigation", "resolution")
  return f
end

return figures
