-- The incident picture: incident_picture.data(timeline, opts) computes what the picture shows (time
-- axis, phases, messages per time bucket, markers, lanes of the people who spoke) with its geometry,
-- for report.view (view.picture, so a template can draw its own); incident_picture.svg(view) renders
-- templates/incident-timeline.svg.mustache (restyle it there) and checks the result is a safe SVG;
-- incident_picture.write(view, dir) writes attachments/incident-timeline.svg (and the PNG through
-- rsvg-convert when config report.picture.format asks). Calls lib/timefmt.lua, lib/templates.lua, host.
local host = require "host"
local timefmt = require "lib.timefmt"
local templates = require "lib.templates"
local tsutil = require "lib.tsutil"

local picture = {}

picture.SVG_PATH = "attachments/incident-timeline.svg"
picture.PNG_PATH = "attachments/incident-timeline.png"
picture.TEMPLATE = "incident-timeline.svg"

-- Geometry (pixels). The template places everything from these numbers.
local WIDTH, LEFT, RIGHT = 960, 150, 24
local TITLE_Y, LABEL_ROWS, LABEL_ROW_H = 24, 3, 14
local PHASE_Y, PHASE_H = 84, 26
local AXIS_Y = PHASE_Y + PHASE_H + 16
local BARS_Y, BARS_H = AXIS_Y + 26, 56
local LANES_Y, LANE_H = BARS_Y + BARS_H + 22, 16
local CHAR_W = 6.6 -- rough width of one character of the 11px label font
local MAX_MARKERS = 60

local TICK_STEPS = { 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800 }

local PHASES = {
  { from = "start", to = "first_response", key = "response", name = "to first response" },
  { from = "first_response", to = "mitigation", key = "mitigation", name = "to mitigation" },
  { from = "mitigation", to = "resolution", key = "resolution", name = "to resolution" },
}

-- Light-theme colours, written on the elements (the template's <style> may override them).
local COLOURS = {
  response = "#f6c177", mitigation = "#f4a29b", resolution = "#9fd8ab",
  start = "#57606a", ["first-response"] = "#9a6700", ["status-update"] = "#0969da",
  ["alert-storm"] = "#8250df", ["key-event"] = "#bc4c00",
}
COLOURS["mitigation-marker"], COLOURS["resolution-marker"] = "#cf222e", "#1a7f37"

local FIGURE_MARKERS = {
  start = "Start", first_response = "First response", mitigation = "Mitigation", resolution = "Resolution",
}

-- Text for the SVG: one line, no control characters (they are not XML).
local function clean(s)
  return (tostring(s or ""):gsub("[%z\1-\31\127]+", " "))
end

local function round(x)
  return math.floor(x * 10 + 0.5) / 10
end

local function picture_config(config)
  local r = (config or {}).report or {}
  local p = type(r.picture) == "table" and r.picture or {}
  local format = p.format
  if format ~= "png" and format ~= "both" and format ~= "none" then format = "svg" end
  return {
    format = format,
    mermaid = p.mermaid == true,
    max_lanes = tonumber(p.max_lanes) or 12,
    buckets = tonumber(p.buckets) or 60,
  }
end
picture.config = picture_config

-- The first step that gives at most `max` ticks over `span` seconds.
local function tick_step(span, max)
  for _, s in ipairs(TICK_STEPS) do
    if span / s <= max then return s end
  end
  return TICK_STEPS[#TICK_STEPS]
end

-- Zone offset (seconds east of UTC) at epoch, or 0 when the host does not know the zone.
local function offset_at(epoch, zone)
  local ok, p = pcall(host.time_parts, epoch, zone)
  return ok and p.offset or 0
end

local function axis_ticks(t0, t1, zone, x_of)
  local step = tick_step(t1 - t0, 10)
  local off = offset_at(t0, zone)
  local first = math.ceil((t0 + off) / step) * step - off
  local ticks, last_date = {}, nil
  local t = first
  while t <= t1 and #ticks < 16 do
    local clock, date = timefmt.clock_and_date(math.floor(t), zone)
    local show_date = date ~= last_date and (last_date ~= nil or step >= 86400 or #ticks == 0)
    ticks[#ticks + 1] = { x = round(x_of(t)), label = clock:sub(1, 5), date = show_date and date or false }
    last_date = date
    t = t + step
  end
  return ticks
end

-- Markers get a label row where they do not overlap the previous label; else only the line and
-- its <title> (a tooltip) show.
local function place_labels(markers)
  local row_end = {}
  for r = 1, LABEL_ROWS do row_end[r] = -math.huge end
  for _, m in ipairs(markers) do
    local w = #m.label * CHAR_W + 8
    m.label_y = false
    for r = 1, LABEL_ROWS do
      if m.x - 2 > row_end[r] then
        m.label_y = TITLE_Y + 12 + r * LABEL_ROW_H
        m.label_anchor = (m.x + w > WIDTH - RIGHT) and "end" or "start"
        m.label_x = m.label_anchor == "end" and round(m.x - 3) or round(m.x + 3)
        row_end[r] = m.label_anchor == "end" and m.x + 4 or m.x + w
        break
      end
    end
    m.show_label = m.label_y ~= false
  end
end

local function mermaid_block(phases, figs, zone)
  local lines = { "```mermaid", "gantt", "    title Incident phases (" .. zone .. ")",
                  "    dateFormat YYYY-MM-DD HH:mm:ss", "    axisFormat %H:%M", "    section Incident" }
  for _, p in ipairs(phases) do
    local a, b = figs[p.from_key], figs[p.to_key]
    local name = p.name:gsub("[:;#]", " ")
    lines[#lines + 1] = string.format("    %s (%s) :%s, %s, %s", name, p.duration_label, p.key,
      timefmt.label(math.floor(a.time), zone, true), timefmt.label(math.floor(b.time), zone, true))
  end
  lines[#lines + 1] = "```"
  return table.concat(lines, "\n")
end

-- The picture's data from a timeline (entries with time, author, marks, merged; figures with
-- start / first_response / mitigation / resolution {time, label}). opts: zone, config, title.
-- Returns false when the timeline has no entries.
function picture.data(timeline, opts)
  opts = opts or {}
  local cfg = picture_config(opts.config)
  local entries = timeline.entries or {}
  local zone = opts.zone or timeline.zone or "UTC"
  local figs = timeline.figures or {}
  if cfg.format == "none" or #entries == 0 then return false end

  -- time range: the start to the last message or the resolution, whichever is later
  local t0 = (figs.start and figs.start.time) or entries[1].time or 0
  local t1 = t0
  for _, e in ipairs(entries) do
    local t = e.time
    if t then
      if t < t0 then t0 = t end
      if t > t1 then t1 = t end
    end
  end
  for key in pairs(FIGURE_MARKERS) do
    local f = figs[key]
    if f and f.time and f.time > t1 then t1 = f.time end
  end
  if t1 - t0 < 60 then t1 = t0 + 60 end
  local pad = (t1 - t0) * 0.01
  local a, b = t0 - pad, t1 + pad
  local plot_w = WIDTH - LEFT - RIGHT
  local function x_of(t) return LEFT + (t - a) / (b - a) * plot_w end

  -- phases: consecutive spans between the figures that exist
  local phases = {}
  local prev = figs.start and figs.start.time and "start" or nil
  for _, p in ipairs(PHASES) do
    local to = figs[p.to]
    if to and to.time and prev and figs[prev].time and to.time >= figs[prev].time then
      local from_t, to_t = figs[prev].time, to.time
      local from = figs[prev]
      local seconds = (from.ts and to.ts) and tsutil.seconds_between(from.ts, to.ts) or math.floor(to_t - from_t)
      local x1, x2 = x_of(from_t), x_of(to_t)
      local label = p.name .. " · " .. timefmt.duration(seconds)
      phases[#phases + 1] = {
        key = p.key, name = p.name, from_key = prev, to_key = p.to, colour = COLOURS[p.key],
        seconds = seconds, duration_label = timefmt.duration(seconds),
        from_label = figs[prev].label or "", to_label = to.label or "",
        x = round(x1), width = round(math.max(x2 - x1, 1)), y = PHASE_Y, height = PHASE_H,
        label = label, label_x = round(x1 + 4), label_y = PHASE_Y + PHASE_H / 2 + 4,
      }
      local room = x2 - x1 - 8
      if room < utf8.len(label) * CHAR_W then
        phases[#phases].label = timefmt.duration(seconds) -- the name stays in the <title>
      end
      phases[#phases].show_label = room >= utf8.len(phases[#phases].label) * CHAR_W
      prev = p.to
    elseif to and to.time then
      prev = p.to
    end
  end

  -- activity: messages per bucket (a merged alert storm counts each of its messages)
  local bucket_s = 60
  local span = b - a
  for _, s in ipairs(TICK_STEPS) do
    bucket_s = s
    if span / s <= cfg.buckets then break end
  end
  local first_bucket = math.floor(a / bucket_s) * bucket_s
  local counts, max_count = {}, 0
  local people, order = {}, {}
  local markers = {}
  local n_entries = #entries
  for i = 1, n_entries do
    local e = entries[i]
    local t = e.time
    if t then
      local k = (t - first_bucket) // bucket_s
      local n = (e.merged and e.merged.count) or 1
      local c = (counts[k] or 0) + n
      counts[k] = c
      if c > max_count then max_count = c end
      local author = e.author
      if author and author.id and not author.is_bot then
        local p = people[author.id]
        if not p then
          p = { name = clean(author.name or author.id), count = 0, seen = {}, first = i }
          people[author.id] = p
          order[#order + 1] = p
        end
        p.count = p.count + 1
        p.seen[k] = true
      end
      local marks = e.marks
      if marks and marks.status_update then
        markers[#markers + 1] = { kind = "status-update", name = "Status update", time = t }
      end
      if e.merged and e.merged.count and e.merged.count > 1 then
        markers[#markers + 1] = { kind = "alert-storm", name = "Alerts ×" .. e.merged.count, time = t }
      end
      if marks and marks.key_event then
        markers[#markers + 1] = { kind = "key-event", name = "Key event", time = t }
      end
    end
  end
  local buckets = {}
  local bw = plot_w * bucket_s / (b - a)
  local k_last = (b - first_bucket) // bucket_s
  for k = 0, k_last do
    local c = counts[k]
    if c then
      local h = math.max(2, BARS_H * c / max_count)
      local x = x_of(first_bucket + k * bucket_s)
      local w = math.max(bw - 1, 1)
      if x < LEFT then w, x = w - (LEFT - x), LEFT end
      if x + w > WIDTH - RIGHT then w = WIDTH - RIGHT - x end
      buckets[#buckets + 1] = {
        count = c, x = round(x), width = round(math.max(w, 1)), y = round(BARS_Y + BARS_H - h), height = round(h),
        from_label = timefmt.label(math.floor(first_bucket + k * bucket_s), zone),
      }
    end
  end

  -- markers: the figures, then the others by time (at most MAX_MARKERS in all)
  table.sort(markers, function(m1, m2) return m1.time < m2.time end)
  local list = {}
  for _, key in ipairs({ "start", "first_response", "mitigation", "resolution" }) do
    local f = figs[key]
    if f and f.time then
      list[#list + 1] = { kind = key:gsub("_", "-"), name = FIGURE_MARKERS[key], time = f.time, figure = true,
                          time_label = f.label or timefmt.label(math.floor(f.time), zone, true) }
    end
  end
  local hidden = 0
  for _, m in ipairs(markers) do
    if #list < MAX_MARKERS then list[#list + 1] = m else hidden = hidden + 1 end
  end
  table.sort(list, function(m1, m2)
    if m1.time ~= m2.time then return m1.time < m2.time end
    return (m1.figure and 0 or 1) < (m2.figure and 0 or 1)
  end)
  for _, m in ipairs(list) do
    m.x = round(x_of(m.time))
    m.time_label = m.time_label or timefmt.label(math.floor(m.time), zone, true)
    m.label = m.name
    m.title = m.name .. " " .. m.time_label
    m.colour = COLOURS[m.kind .. "-marker"] or COLOURS[m.kind] or "#57606a"
  end
  place_labels(list)

  -- lanes: the people who spoke, in order of their first message, when few enough to read
  local lanes = {}
  local show_lanes = #order > 0 and #order <= cfg.max_lanes
  if show_lanes then
    for i, p in ipairs(order) do
      local y = LANES_Y + (i - 1) * LANE_H
      local dots = {}
      for k in pairs(p.seen) do
        dots[#dots + 1] = { x = round(x_of(first_bucket + k * bucket_s + bucket_s / 2)) }
      end
      table.sort(dots, function(d1, d2) return d1.x < d2.x end)
      lanes[#lanes + 1] = { name = p.name, count = p.count, y = y, text_y = y + 12, dot_y = y + 8, dots = dots,
                            even = i % 2 == 0 }
    end
  end
  local bottom = show_lanes and (LANES_Y + #lanes * LANE_H) or (BARS_Y + BARS_H + 16)
  local height = bottom + 12

  local phase_words = {}
  for _, p in ipairs(phases) do phase_words[#phase_words + 1] = p.label end
  local desc = string.format("Incident timeline in %s from %s to %s. %s. %d messages; at most %d in %s.",
    zone, timefmt.label(math.floor(t0), zone, true), timefmt.label(math.floor(t1), zone, true),
    #phase_words > 0 and ("Phases: " .. table.concat(phase_words, ", ")) or "No phases could be computed",
    n_entries, max_count, timefmt.duration(bucket_s))

  local data = {
    svg_path = picture.SVG_PATH,
    png_path = (cfg.format == "png" or cfg.format == "both") and picture.PNG_PATH or false,
    format = cfg.format,
    embed_path = picture.SVG_PATH, alt_path = false, -- picture.write may switch to the PNG
    title = clean("Incident timeline: " .. (opts.title or "")),
    desc = clean(desc),
    zone = clean(zone),
    width = WIDTH, height = height, left = LEFT, right_x = WIDTH - RIGHT, plot_width = plot_w,
    title_y = TITLE_Y, label_x = LEFT - 10,
    phase_y = PHASE_Y, phase_h = PHASE_H, phase_text_y = PHASE_Y + PHASE_H / 2 + 4,
    axis_y = AXIS_Y, axis_line_y = PHASE_Y + PHASE_H + 3,
    bars_y = BARS_Y, bars_h = BARS_H, bars_base_y = BARS_Y + BARS_H, bars_text_y = BARS_Y + BARS_H / 2 + 4,
    marker_top = TITLE_Y + 16, marker_bottom = bottom,
    start_epoch = t0, end_epoch = t1,
    phases = phases, has_phases = #phases > 0,
    bucket_seconds = bucket_s, bucket_label = timefmt.duration(bucket_s), max_count = max_count,
    buckets = buckets,
    ticks = axis_ticks(a, b, zone, x_of),
    markers = list, hidden_markers = hidden,
    lanes = lanes, has_lanes = #lanes > 0,
    people = #order,
    lanes_hidden = (not show_lanes and #order > 0) and { people = #order, max = cfg.max_lanes } or false,
    lanes_label_y = show_lanes and (LANES_Y - 8) or false,
  }
  data.mermaid_block = cfg.mermaid and #phases > 0 and mermaid_block(phases, figs, zone) or false
  return data
end

-- Problems that make an SVG unsafe to publish (scripts, event attributes, anything that loads
-- from elsewhere); an empty list when it is clean. The default template passes; a team's edit may not.
function picture.problems(svg)
  local found = {}
  local lower = svg:lower()
  local markup = lower:gsub(">[^<]*<", "><") -- text nodes removed: what a person said is not markup
  if lower:find("<script", 1, true) then found[#found + 1] = "a <script> element" end
  if lower:find("<foreignobject", 1, true) then found[#found + 1] = "a <foreignObject> element" end
  if markup:find("[%s\"']on%a+%s*=") then found[#found + 1] = "an event attribute (on...=)" end
  if markup:find("href%s*=") then found[#found + 1] = "a link or external reference (href)" end
  if lower:find("url%s*%(%s*[\"']?[^#%s\"')]") then found[#found + 1] = "an external url(...)" end
  if lower:find("@import", 1, true) then found[#found + 1] = "a CSS @import" end
  if lower:find("<!entity", 1, true) or lower:find("<!doctype", 1, true) then
    found[#found + 1] = "a DOCTYPE or entity declaration"
  end
  return found
end

-- The SVG text for a report view (view.picture from picture.data), or nil, why.
function picture.svg(view)
  local data = view.picture
  if not data then return nil, "no picture" end
  -- a templates_dir without the picture's template (or a broken one) costs the picture, not the report
  local ok, svg = pcall(templates.render, picture.TEMPLATE, data)
  if not ok then return nil, tostring(svg) end
  local problems = picture.problems(svg)
  if #problems > 0 then
    return nil, picture.TEMPLATE .. ".mustache makes an unsafe SVG: " .. table.concat(problems, ", ")
  end
  return svg
end

-- Write the picture of `view` under `dir` (the report's folder): the SVG always, the PNG when the
-- config asks (rsvg-convert, a child process). A PNG that fails is logged and left out (the view
-- then embeds the SVG). Returns the relative paths written, or nil, err.
function picture.write(view, dir)
  local data = view.picture
  if not data then return {} end
  local svg, why = picture.svg(view)
  if not svg then
    host.log("warn", "incident picture left out", { err = why })
    view.picture = false
    return nil, why
  end
  local ok, err = host.write_file(dir .. "/" .. data.svg_path, svg)
  if not ok then
    host.log("warn", "incident picture could not be written", { err = tostring(err) })
    view.picture = false
    return nil, err
  end
  local written = { data.svg_path }
  if data.png_path then
    local res, perr = host.run{ argv = { "rsvg-convert", "--format=png", "--output=" .. dir .. "/" .. data.png_path,
                                         dir .. "/" .. data.svg_path },
                                cwd = dir, timeout = 30, max_output = 65536 }
    if res and res.status == 0 and host.exists(dir .. "/" .. data.png_path) == "file" then
      written[#written + 1] = data.png_path
    else
      host.log("warn", "incident picture: the PNG could not be made",
               { err = res and ("rsvg-convert exit " .. tostring(res.status or res.signal) .. ": " .. res.stderr:sub(1, 200))
                       or tostring(perr) })
      data.png_path = false
    end
  end
  -- what the template embeds: the PNG only when asked for png alone
  data.embed_path = (data.format == "png" and data.png_path) or data.svg_path
  data.alt_path = (data.format == "both" and data.png_path) or (data.format == "png" and data.png_path and data.svg_path) or false
  data.alt_label = data.alt_path and (data.alt_path == data.png_path and "PNG" or "SVG") or false
  return written
end

return picture
