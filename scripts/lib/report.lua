-- The postmortem report: report.view(timeline, opts) builds the table a template sees (the ONE place
-- that decides what the report contains), report.render(timeline, opts) renders it with the template
-- named by config report.template / report.templates_by_channel. Called by lib/bundle.lua (autopsy)
-- and lib/render_offline.lua; calls lib/templates.lua, lib/slug.lua and host (time, generation).
-- The template decides how it looks; text arrives here already converted to Markdown by the timeline.
local host = require "host"
local templates = require "lib.templates"
local slug = require "lib.slug"
local markdown = require "lib.markdown"
local incident_picture = require "lib.incident_picture"

local report = {}

local find = string.find

local FIGURES = {
  { key = "start", name = "Start" },
  { key = "first_response", name = "First response" },
  { key = "mitigation", name = "Mitigation" },
  { key = "resolution", name = "Resolution" },
}
local FIGURE_NAMES = {}
for _, f in ipairs(FIGURES) do FIGURE_NAMES[f.key] = f.name end

local PREVIEW_LINES = 15

-- A value that must stay on one line of the document (names, titles, file names).
local function one_line(s)
  if s == nil then return nil end
  if type(s) ~= "string" then s = tostring(s) end
  -- (most names: no line break, no copy; two plain finds cost less than one set pattern)
  if not find(s, "\n", 1, true) and not find(s, "\r", 1, true) then return s end
  return (s:gsub("[\r\n]+", " "))
end

-- Prefix every line of Markdown `text`; blank lines get `blank` (default: nothing), so a list
-- item or a quote keeps everything that follows inside it.
-- A lone CR ends a line for CommonMark too: it is split on like LF, or the text after it would
-- start a line without the prefix.
local function prefix_lines(text, prefix, blank)
  -- one line (most messages): the loop below would give the same, for a fraction of the work
  if not text:find("\n", 1, true) and not text:find("\r", 1, true) then
    if text:find("%S") then return prefix .. text end
    return ""
  end
  local out = {}
  if text:find("\r", 1, true) then text = text:gsub("\r\n?", "\n") end
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if line:match("^%s*$") then
      out[#out + 1] = blank or ""
    else
      out[#out + 1] = prefix .. line
    end
  end
  while #out > 0 and out[#out] == (blank or "") do out[#out] = nil end
  return table.concat(out, "\n")
end
report.prefix_lines = prefix_lines

-- Close a fenced code block left open at the end of `text`, so it cannot swallow what the
-- template puts after the text (files, the next parts of the entry).
local function close_fences(text)
  -- no run of three backticks or tildes (and no CR to turn into LF): nothing to change
  if not text:find("```", 1, true) and not text:find("~~~", 1, true) and not text:find("\r", 1, true) then
    return text
  end
  local open_char, open_len
  if text:find("\r", 1, true) then text = text:gsub("\r\n?", "\n") end -- (see prefix_lines)
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local indent, fence = line:match("^( *)(```+)")
    if not fence then indent, fence = line:match("^( *)(~~~+)") end
    if fence and #indent <= 3 then
      local rest = line:sub(#indent + #fence + 1)
      if not open_char then
        if not (fence:sub(1, 1) == "`" and rest:find("`", 1, true)) then
          open_char, open_len = fence:sub(1, 1), #fence
        end
      elseif fence:sub(1, 1) == open_char and #fence >= open_len and rest:match("^%s*$") then
        open_char = nil
      end
    end
  end
  if open_char then
    return text:gsub("\n*$", "") .. "\n" .. string.rep(open_char, open_len)
  end
  return text
end
report.close_fences = close_fences

-- A URL the template may put in a link destination, or false (javascript:, data:, junk).
local function link_url(u)
  return type(u) == "string" and markdown.safe_url(u) or false
end

-- Relative link target for a local file: percent-encode all but unreserved characters and "/".
local function url_path(path)
  return (path:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end
report.url_path = url_path

-- A fenced code block whose fence is longer than any backtick run inside it.
local function fenced(text, indent)
  local longest = 2
  for run in text:gmatch("`+") do
    if #run > longest then longest = #run end
  end
  local fence = string.rep("`", longest + 1)
  local lines = { indent .. fence }
  if text:find("\r", 1, true) then text = text:gsub("\r\n?", "\n") end -- (see prefix_lines)
  for line in (text:gsub("\n$", "") .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = indent .. line
  end
  lines[#lines + 1] = indent .. fence
  return table.concat(lines, "\n")
end

local function size_label(n)
  if type(n) ~= "number" then return nil end
  if n < 1024 then return string.format("%d B", n) end
  if n < 1024 * 1024 then return string.format("%.1f KB", n / 1024) end
  return string.format("%.1f MB", n / (1024 * 1024))
end
report.size_label = size_label

-- t with every `[label](url)` and `![alt](url)` replaced by its label, as
-- t:gsub("!?%[([^%]]*)%]%([^%)]*%)", "%1") does, in one pass: that pattern retried from every `[`
-- scans to the end of the line each time (a 40 KB line of `[` took 13 s as a title).
local function link_labels(t)
  if not t:find("](", 1, true) then return t end
  local out, last, pos = {}, 1, 1
  local close, paren -- the first "]" after the current "[", the first ")" after that "]("
  while true do
    local i = t:find("[", pos, true)
    if not i then break end
    if not close or close <= i then close = t:find("]", i + 1, true) end
    if not close then break end -- no "]" left: no link left
    local matched = false
    if t:byte(close + 1) == 40 then -- "("
      if not paren or paren <= close + 1 then paren = t:find(")", close + 2, true) end
      if not paren then break end -- no ")" left: no link left
      matched = true
    end
    if matched then
      local start = (i > last and t:byte(i - 1) == 33) and i - 1 or i -- a "!" before it: an image
      out[#out + 1] = t:sub(last, start - 1)
      out[#out + 1] = t:sub(i + 1, close - 1)
      last, pos = paren + 1, paren + 1
    else
      pos = i + 1
    end
  end
  out[#out + 1] = t:sub(last)
  return table.concat(out)
end
report.link_labels = link_labels -- (for its spec)

-- Markdown of one line made plain text (links keep their label, marks and escapes removed), to
-- be escaped again by the template: for titles and the appendix summaries.
function report.plain(md)
  local kept = {}
  local t = tostring(md or "")
    :gsub("\\$", "")                               -- a hard line break at the end
    :gsub("\\(%p)", function(c)                    -- escaped characters are text: keep them
      kept[#kept + 1] = c
      return "\1"
    end)
  t = link_labels(t)                                -- links and images: keep the label
    :gsub("[*~`]", "")                              -- emphasis, strike, code marks
  -- "_" marks emphasis only at a word's edge (snake_case and :white_check_mark: stay)
  t = (" " .. t .. " "):gsub("([^%w])_+", "%1"):gsub("_+([^%w])", "%1")
    :gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  local i = 0
  return (t:gsub("\1", function()
    i = i + 1
    return kept[i]
  end))
end

-- Emoji (shortcodes, and the characters lib/emoji.lua puts in their place: the pictographs, the
-- symbols block, variation selector 16, the zero-width joiner) removed: a title names the incident.
local function strip_emoji(line)
  return (line:gsub(":[%w_%+%-]+:", "")
    :gsub("\240\159[\128-\191][\128-\191]", "")     -- U+1F000..U+1FFFF
    :gsub("\226[\152-\158][\128-\191]", "")          -- U+2600..U+27BF
    :gsub("\239\184\143", ""):gsub("\226\128\141", "")) -- U+FE0F, U+200D
end

-- The thread's title: the first line of the first entry, Markdown marks and emoji removed.
function report.title(timeline)
  local first = timeline.entries and timeline.entries[1]
  local text = first and first.text_md or ""
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local t = report.plain(strip_emoji(line))
      :gsub("^[#>%s%-%+]+", "")
    if t ~= "" then
      if #t > 100 then t = t:sub(1, 97):gsub("[\128-\191]*$", ""):gsub("[\192-\255]$", "") .. "..." end
      return t
    end
  end
  local where = timeline.channel_name and ("#" .. timeline.channel_name) or timeline.channel or "Slack"
  return "Incident in " .. where
end

-- The template name for this channel: report.templates_by_channel[channel] or report.template.
function report.template_name(config, channel)
  local r = (config or {}).report or {}
  local by = r.templates_by_channel or {}
  return by[channel] or r.template or "postmortem.md"
end

local function file_view(f)
  local v = {
    name = one_line(f.name or f.title or f.id or "file"),
    title = one_line(f.title or f.name or f.id or "file"),
    kind = f.kind,
    size = size_label(f.size),
    slack_permalink = link_url(f.slack_permalink),
    missing_reason = f.missing_reason and one_line(f.missing_reason) or false,
    is_image = false, is_file = false, url = false, local_path = false, preview_block = false,
  }
  if f.local_path and not f.missing_reason then
    v.url = url_path(f.local_path)
    v.local_path = f.local_path
    v.is_image = f.kind == "image"
    v.is_file = not v.is_image
  elseif not f.missing_reason then
    v.missing_reason = "not downloaded"
  end
  v.missing = v.missing_reason ~= false
  if f.kind == "snippet" and f.preview and f.preview ~= "" then
    local lines, n = {}, 0
    for line in (f.preview:gsub("\r\n?", "\n") .. "\n"):gmatch("(.-)\n") do
      n = n + 1
      if n <= PREVIEW_LINES then lines[#lines + 1] = line end
    end
    v.preview_block = fenced(table.concat(lines, "\n"), "    ")
  end
  return v
end

-- The default template shows `pretext_block` (above the bar, as in Slack) and `quote_block` (the
-- attachment as lib/attachments.lua composed it, quoted); the other fields are for templates that
-- lay attachments out themselves.
local function attachment_view(a)
  local fields = {}
  for i, f in ipairs(a.fields or {}) do
    fields[#fields + 1] = { title = one_line(f.title or ""), value_md = one_line(f.value_md or ""),
                            last = i == #a.fields }
  end
  local text = a.text_md and a.text_md:match("%S") and prefix_lines(close_fences(a.text_md), "  > ", "  >") or false
  local pretext = a.pretext_md and a.pretext_md:match("%S") and prefix_lines(close_fences(a.pretext_md), "  ") or false
  local quote = a.md and a.md:match("%S") and prefix_lines(close_fences(a.md), "  > ", "  >") or false
  local title = a.title and a.title:match("%S") and one_line(a.title) or false
  local service = a.service_name and a.service_name:match("%S") and one_line(a.service_name) or false
  -- fields are all set (false when absent) so a template never falls through to the entry's
  return {
    title = title,
    title_link = link_url(a.title_link),
    has_heading = (title or service) and true or false,
    text_block = text,
    pretext_block = pretext,
    quote_block = quote,
    fields = fields,
    has_fields = #fields > 0,
    footer = a.footer and one_line(a.footer) or false,
    service_name = service,
    author_name = a.author_name and one_line(a.author_name) or false,
    author_link = link_url(a.author_link),
    image_url = link_url(a.image_url),
    thumb_url = link_url(a.thumb_url),
    severity = a.severity or false,
    from_url = link_url(a.from_url),
    is_unfurl = a.is_unfurl or false,
  }
end

-- The empty list of an entry view without files, attachments or reactions (most entries): one
-- shared table instead of three new ones per entry. Nothing writes into a view's lists.
local NONE = setmetatable({}, { __newindex = function() error("report: an entry view's empty list is read-only", 2) end })

-- What an entry view says when the entry has nothing of it (most entries: no date heading, no
-- marks, no files): read through the view's metatable, so a view holds only what its entry has
-- (a table of 8 slots instead of 32 for 20,000 entries) and a template still never falls through
-- to an outer context (each name answers false or an empty list, never nil).
local VIEW_DEFAULTS = { __index = {
  date_label = false, time2_label = false, is_bot = false, edited = false, broadcast = false,
  merged = false, status_update = false, mitigation = false, resolution = false, key_event = false,
  action_item = false, nested = false, files = NONE, has_files = false, attachments = NONE,
  has_attachments = false, reactions = NONE, has_reactions = false,
} }

local function entry_view(e)
  local author = e.author or NONE
  local text = e.text_md
  if not text or not find(text, "%S") then
    text = false
  elseif not find(text, "\n", 1, true) and not find(text, "`", 1, true) and not find(text, "~", 1, true)
    and not find(text, "\r", 1, true) then -- (four plain finds cost less than one set pattern)
    text = "  " .. text -- one line, no fence, no CR: what prefix_lines(close_fences(text)) gives
  else
    text = prefix_lines(close_fences(text), "  ")
  end
  local v = setmetatable({
    ts = e.ts,
    time_label = e.time_label or "",
    author = one_line(author.name or author.id or "unknown"),
    has_author = author.name ~= nil or author.id ~= nil, -- false for a deleted parent (tombstone)
    author_id = author.id,
    permalink = link_url(e.permalink),
    text_block = text,
  }, VIEW_DEFAULTS)
  if e.date_label then v.date_label = e.date_label end
  if e.time2_label then v.time2_label = e.time2_label end
  if author.is_bot then v.is_bot = author.is_bot end
  if e.edited then v.edited = { label = e.edited.label or "" } end
  if e.broadcast then v.broadcast = e.broadcast end
  if e.merged then v.merged = e.merged end
  if e.reply_to ~= nil then v.nested = true end
  local marks = e.marks
  if marks and next(marks) ~= nil then
    if marks.status_update then v.status_update = marks.status_update end
    if marks.mitigation then v.mitigation = marks.mitigation end
    if marks.resolution then v.resolution = marks.resolution end
    if marks.key_event then v.key_event = marks.key_event end
    if marks.action_item then v.action_item = true end
  end
  if e.files and e.files[1] then
    local files = {}
    for _, f in ipairs(e.files) do files[#files + 1] = file_view(f) end
    v.files, v.has_files = files, #files > 0
  end
  if e.attachments and e.attachments[1] then
    local attachments = {}
    for _, a in ipairs(e.attachments) do attachments[#attachments + 1] = attachment_view(a) end
    v.attachments, v.has_attachments = attachments, #attachments > 0
  end
  if e.reactions and e.reactions[1] then
    local reactions = {}
    for i, r in ipairs(e.reactions) do
      reactions[#reactions + 1] = { name = one_line(r.name), char = r.char or false, count = r.count or 1,
                                    last = i == #e.reactions }
    end
    v.reactions, v.has_reactions = reactions, #reactions > 0
  end
  return v
end

-- A reply in a channel report: its entry, rendered alone and indented under its parent's item.
local function nested_view(ev)
  if ev.nested then
    ev.reply_block = prefix_lines((templates.render("partials/entry.md", ev):gsub("^\n+", "")), "  ")
  end
  return ev
end

-- view.entries: entries[i] is made when it is read, each time it is read, and kept by nobody, so a
-- 20,000-entry report never holds 20,000 entry views at once (the template reads each one once).
-- It reads as a list: #, ipairs and [i] work; nothing else is in it.
local function entries_view(list)
  local count = #list
  return setmetatable({}, {
    __len = function() return count end,
    __index = function(_, i)
      local e = list[i] -- (the list holds entries at 1..count and nothing else)
      if e == nil then return nil end
      return nested_view(entry_view(e))
    end,
  })
end

local function zone_label(zone, epoch)
  local ok, p = pcall(host.time_parts, epoch, zone)
  if not ok then return zone end
  local off = p.offset or 0
  local sign = off < 0 and "-" or "+"
  off = math.abs(off)
  return string.format("%s (%s, UTC%s%02d:%02d)", zone, p.abbrev or "", sign, off // 3600, (off % 3600) // 60)
end

local function dropped_view(timeline, zone)
  local rules, total, merged_total = {}, 0, 0
  for _, d in ipairs(timeline.dropped or {}) do
    local items = {}
    for _, it in ipairs(d.items or {}) do
      local author = it.author
      if type(author) == "table" then author = author.name or author.id end
      items[#items + 1] = {
        time_label = it.ts and host.format_time(it.ts, zone, "%H:%M:%S") or "",
        author = one_line(author or "unknown"),
        summary = report.plain(it.summary or ""),
        permalink = link_url(it.permalink),
      }
    end
    total = total + #items
    rules[#rules + 1] = { rule = one_line(d.rule), reason = one_line(d.reason or ""), count = #items,
                          items = items }
  end
  for _, e in ipairs(timeline.entries or {}) do
    if e.merged and e.merged.count then merged_total = merged_total + e.merged.count - 1 end
  end
  return rules, total, merged_total
end

local function figures_view(timeline)
  local figs = timeline.figures or {}
  local list = {}
  for _, f in ipairs(FIGURES) do
    local v = figs[f.key]
    if v then
      list[#list + 1] = { name = f.name, label = v.label or "", permalink = link_url(v.permalink),
                          by = v.by and one_line(v.by) or false,
                          source = v.source and one_line(v.source) or false }
    end
  end
  local durations = {}
  for _, d in ipairs(figs.durations or {}) do
    durations[#durations + 1] = { from = FIGURE_NAMES[d.from] or d.from, to = FIGURE_NAMES[d.to] or d.to,
                                  label = d.label, seconds = d.seconds }
  end
  return list, durations
end

-- Key events and action items, in timeline order (marks set by scripts/filters/60-, 70-).
local function marked_view(timeline, zone)
  local key_events, action_items = {}, {}
  for _, e in ipairs(timeline.entries or {}) do
    local marks = e.marks or NONE
    -- (only a marked entry needs its author's label: most entries have no mark)
    local author = (marks.key_event or marks.action_item)
      and one_line(e.author and (e.author.name or e.author.id) or "unknown")
    if marks.key_event then
      local first = (e.text_md or ""):match("[^\n]*%S[^\n]*") or ""
      key_events[#key_events + 1] = {
        time_label = host.format_time(e.ts, zone, "%Y-%m-%d %H:%M"),
        author = author,
        summary = report.plain(first),
        permalink = link_url(e.permalink),
        pinned = (marks.sources or NONE).key_event == "pinned",
      }
    end
    if type(marks.action_item) == "table" then
      local item = marks.action_item
      local text = one_line(item.text or ""):gsub("^%s+", ""):gsub("%s+$", "")
      action_items[#action_items + 1] = {
        text_inline = text ~= "" and text or "(no text)",
        owner = item.owner and one_line(item.owner) or false,
        author = author,
        permalink = link_url(e.permalink),
      }
    end
  end
  return key_events, action_items
end

-- "since 2024-11-14 14:05 CET" / "2024-11-14 14:05 to 16:05 CET" for a channel window, or false.
local function window_label(timeline, zone)
  local w = timeline.window or {}
  if not w.oldest and not w.latest then return false end
  local from = w.oldest and host.format_time(w.oldest, zone, "%Y-%m-%d %H:%M %Z")
  local to = w.latest and host.format_time(w.latest, zone, "%Y-%m-%d %H:%M %Z")
  if from and to then return from .. " to " .. to end
  if from then return "since " .. from end
  return "until " .. to
end

-- The view a report template sees. opts: version (bundle version), previous (version number of
-- the one before), config (defaults to host.config()).
function report.view(timeline, opts)
  opts = opts or {}
  local config = opts.config or host.config() or {}
  local zone = timeline.zone or config.timezone or "UTC"
  local entries = entries_view(timeline.entries or {})
  local figures, durations = figures_view(timeline)
  local dropped, dropped_total, merged_total = dropped_view(timeline, zone)
  local start_epoch = (timeline.figures and timeline.figures.start and timeline.figures.start.time)
    or (timeline.entries and timeline.entries[1] and timeline.entries[1].time)
    or tonumber(timeline.thread_ts) or host.now()
  local title = report.title(timeline)
  local parent = timeline.entries and timeline.entries[1]
  local thread_url = timeline.figures and timeline.figures.start and timeline.figures.start.permalink
  if not thread_url and parent and parent.ts == timeline.thread_ts then thread_url = parent.permalink end
  local files = timeline.files or {}
  local requested_by = timeline.requested_by
  local generated_at = opts.now or host.now()
  local is_channel = timeline.scope == "channel"
  local incomplete = timeline.complete == false and not is_channel
  local key_events, action_items = marked_view(timeline, zone)

  return {
    title = title,
    file_base = slug.file_base(title, start_epoch, zone),
    channel_id = timeline.channel,
    channel_label = timeline.channel_name and ("#" .. timeline.channel_name) or timeline.channel,
    thread_ts = timeline.thread_ts,
    thread_url = link_url(thread_url),
    started_label = host.format_time(start_epoch, zone, "%Y-%m-%d %H:%M:%S %Z"),
    requested_by = requested_by and one_line(requested_by.name or requested_by.id) or false,
    requested_at_label = timeline.requested_at
      and host.format_time(timeline.requested_at, zone, "%Y-%m-%d %H:%M %Z") or false,
    generated_at_label = host.format_time(generated_at, zone, "%Y-%m-%d %H:%M:%S %Z"),
    zone = zone,
    zone_label = zone_label(zone, start_epoch),
    second_zone = timeline.second_zone or false,
    second_zone_label = timeline.second_zone and zone_label(timeline.second_zone, start_epoch) or false,
    complete = not incomplete,
    incomplete = incomplete and { fetched = timeline.fetched or 0, expected = timeline.expected or 0 } or false,
    is_channel = is_channel,
    window_label = is_channel and window_label(timeline, zone) or false,
    channel_incomplete = is_channel and timeline.complete == false and {
      fetched = timeline.fetched or 0, bounded = timeline.bounded or false,
    } or false,
    key_events = key_events,
    has_key_events = #key_events > 0,
    action_items = action_items,
    has_action_items = #action_items > 0,
    figures = figures,
    has_figures = #figures > 0,
    picture = incident_picture.data(timeline, { zone = zone, config = config, title = title }),
    durations = durations,
    has_durations = #durations > 0,
    entries = entries,
    has_entries = #entries > 0,
    dropped = dropped,
    has_dropped = #dropped > 0,
    counts = {
      entries = #entries,
      fetched = timeline.fetched or #entries,
      expected = timeline.expected or false,
      files_downloaded = files.downloaded or 0,
      files_missing = files.missing or 0,
      files_bytes = size_label(files.bytes or 0),
      dropped = dropped_total,
      merged = merged_total,
    },
    version = opts.version or false,
    previous_version = opts.previous or false,
    generation = host.generation(),
  }
end

-- Render the report Markdown for `timeline`. opts as report.view, plus template (a name that wins
-- over the config) and before_render(view). Returns markdown, view.
function report.render(timeline, opts)
  opts = opts or {}
  local config = opts.config or host.config() or {}
  local view = report.view(timeline, opts)
  if opts.before_render then opts.before_render(view) end -- e.g. bundle.lua writes the picture
  local name = opts.template or report.template_name(config, timeline.channel)
  return templates.render(name, view), view
end

-- report.render's text handed to write(chunk) piece by piece as it is rendered (lib/bundle.lua
-- streams it to the .md file). Returns view.
function report.render_to(write, timeline, opts)
  opts = opts or {}
  local config = opts.config or host.config() or {}
  local view = report.view(timeline, opts)
  if opts.before_render then opts.before_render(view) end
  local name = opts.template or report.template_name(config, timeline.channel)
  templates.render_to(write, name, view)
  return view
end

return report
