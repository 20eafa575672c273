-- Benchmark: time to build the timeline of 10,000 generated messages offline (timeline.build: text
-- conversion, filter rules, figures, time labels), target under 300 ms. host is stubbed with os/date
-- functions (UTC only). Run from the repo root:  lua5.4 bench/timeline_offline.lua [N]
-- A second line times the same build with the text converters (lib/mrkdwn, lib/richtext) replaced by
-- a no-op, to tell the timeline's own cost from the conversion's.
package.path = "scripts/?.lua;scripts/?/init.lua;" .. package.path

local function epoch_of(e)
  return math.floor(tonumber(tostring(e):match("^%d+")))
end

package.loaded.host = {
  log = function() end,
  now = os.time,
  config = function() return {} end,
  bot = function() return nil end,
  exists = function() return nil end,
  time_parts = function(e, zone)
    local t = os.date("!*t", epoch_of(e))
    t.offset, t.abbrev, t.zone = 0, "UTC", zone
    return t
  end,
  format_time = function(e, _, fmt) return os.date("!" .. fmt, epoch_of(e)) end,
  list_scripts = function()
    return { "filters.10-drop-bot-self", "filters.20-drop-joins", "filters.30-drop-command",
             "filters.40-collapse-alert-storms", "filters.50-mark-status" }
  end,
}

local timeline = require "lib.timeline"
local mrkdwn = require "lib.mrkdwn"
local richtext = require "lib.richtext"

local N = tonumber(arg and arg[1]) or 10000
local T0 = 1731624067
local thread_ts = T0 .. ".000100"
local users = { "U01ALICE", "U02BOB", "U03CHEN", "U04DANA", "U05EMRE" }
local people = {}
for _, id in ipairs(users) do people[id] = { id = id, name = id:sub(4):lower(), profile = { display_name = id:sub(4):lower() } } end

local messages = { { type = "message", user = "U01ALICE", ts = thread_ts, thread_ts = thread_ts, reply_count = N - 1,
                     text = ":rotating_light: *Checkout errors* <!here> IC is <@U01ALICE>" } }
for i = 1, N - 1 do
  local ts = string.format("%d.%06d", T0 + i * 7, i % 1000000)
  local m
  if i % 10 == 0 then
    m = { type = "message", subtype = "bot_message", bot_id = "B0ALERTS", username = "Grafana", ts = ts, text = "",
          attachments = { { title = "[FIRING:1] HighErrorRate " .. (i % 30), text = "5xx ratio *above* 5% <https://g.example/x|dash>",
                            fields = { { title = "severity", value = "critical" } } } } }
  elseif i % 97 == 0 then
    m = { type = "message", subtype = "channel_join", user = users[i % 5 + 1], ts = ts, text = "joined" }
  else
    m = { type = "message", user = users[i % 5 + 1], ts = ts,
          text = "Update " .. i .. ": _checked_ `svc-" .. i .. "` see <https://x.example/" .. i .. "|link> cc <@" .. users[(i + 1) % 5 + 1] .. ">\n> quoted line\n• bullet",
          blocks = (i % 2 == 0) and { { type = "rich_text", elements = { { type = "rich_text_section", elements = {
            { type = "text", text = "Update " .. i .. " " }, { type = "text", text = "bold", style = { bold = true } },
            { type = "user", user_id = users[i % 5 + 1] }, { type = "link", url = "https://x.example/" .. i, text = "link" } } } } } } or nil,
          reactions = (i % 50 == 0) and { { name = "white_check_mark", count = 1 } } or nil,
          files = (i % 40 == 0) and { { id = "F" .. i, name = "graph " .. i .. ".png", mimetype = "image/png", mode = "hosted",
                                        size = 100, url_private_download = "https://files.slack.com/f/" .. i } } or nil }
  end
  m.thread_ts = thread_ts
  messages[#messages + 1] = m
end

local config = { timezone = "UTC", timeline = { alert_storm_window = 600, resolution_phrases = { "resolved", "all clear" },
                                                mitigation_phrases = { "mitigated", "rolled back" } } }
local function measure()
  -- warm up (loads the modules and rules), then the best of 3
  timeline.build({ messages[1], messages[2] }, { people = people, channel = "C0BENCH", config = config })
  local best, t = math.huge, nil
  for _ = 1, 3 do
    local start = os.clock()
    t = timeline.build(messages, { people = people, channel = "C0BENCH", config = config })
    best = math.min(best, os.clock() - start)
  end
  return best, t
end

local best, t = measure()
print(string.format("timeline.build: %d messages -> %d entries (%d dropped groups) in %.0f ms (best of 3; target < 300 ms)",
  N, #t.entries, #t.dropped, best * 1000))

local real_mrkdwn, real_richtext = mrkdwn.to_markdown, richtext.to_markdown
mrkdwn.to_markdown = function(text) return text or "" end
richtext.to_markdown = function() return "" end
local own = measure()
mrkdwn.to_markdown, richtext.to_markdown = real_mrkdwn, real_richtext
print(string.format("  of which text conversion (mrkdwn/richtext): %.0f ms; the rest: %.0f ms",
  (best - own) * 1000, own * 1000))
