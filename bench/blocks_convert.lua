-- Benchmark: the Block Kit / rich_text converter alone (blockkit.to_markdown, which calls
-- lib/richtext.lua for rich_text blocks), in microseconds per message, best of 5, for three sets:
--   real       every message with blocks in the shared real corpus (shared/testdata/slack-real,
--              read where it lies, never copied; set PMB_SLACK_REAL to point elsewhere), repeated
--   generated  incident chatter as Slack's composer sends it: sections of styled text, mentions,
--              links, emoji, lists, quotes, code blocks (every text unique)
--   fuzz       the random rich_text and Block Kit of tests/lua/helpers/fuzz.lua (hostile tokens)
-- with a resolver like the timeline's (names, channels, Unicode emoji, dates). host is not needed.
-- Run from the repo root:  lua5.4 bench/blocks_convert.lua [N [SET]]   (N messages per set, default 20000;
-- SET: only the sets whose name holds that word: real, generated or fuzz)
package.path = "scripts/?.lua;scripts/?/init.lua;tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local fuzz = require "helpers.fuzz"
local blockkit = require "lib.blockkit"
local emoji = require "lib.emoji"

local N = tonumber(arg and arg[1]) or 20000
local ONLY = arg and arg[2] -- (the sets whose name holds this word, e.g. "generated")

local names = { U01ALICE = "alice", U02BOB = "bob", U03CHEN = "chen", U04DANA = "dana", U05EMRE = "emre", U1 = "ada" }
local resolve = {
  user = function(id) return names[id] end,
  channel = function(id) return id == "C0OPS" and "ops" or nil end,
  usergroup = function(id, label)
    if label and label ~= "" then return nil end
    return id == "S1" and "oncall" or nil
  end,
  emoji = emoji.resolver("unicode"),
  date = function(ts) return os.date("!%Y-%m-%d %H:%M UTC", math.floor(tonumber(ts) or 0)) end,
}

local function real_blocks()
  local out = {}
  for _, dir in ipairs({ os.getenv("PMB_SLACK_REAL") or "", "../shared/testdata/slack-real", "../../shared/testdata/slack-real" }) do
    local listing = dir ~= "" and io.popen("ls " .. dir .. "/threads 2>/dev/null")
    if listing then
      for name in listing:lines() do
        local f = io.open(dir .. "/threads/" .. name .. "/thread.json")
        if f then
          local data = cjson.decode(f:read("a")) -- (a null stays cjson.null: odd values show as absent)
          f:close()
          local messages = data.messages or data
          if messages[1] and messages[1].messages then -- pages of conversations.replies
            local flat = {}
            for _, page in ipairs(messages) do
              for _, m in ipairs(page.messages) do flat[#flat + 1] = m end
            end
            messages = flat
          end
          for _, m in ipairs(messages) do
            if type(m.blocks) == "table" and m.blocks[1] then out[#out + 1] = m.blocks end
          end
        end
      end
      listing:close()
      if out[1] then return out end
    end
  end
  return out
end

local WORDS = { "checkout", "errors", "rolled", "back", "the", "deploy", "p99", "latency", "is", "up", "on",
                "db-primary", "failover", "done", "looking", "at", "dashboards", "now", "5xx", "rate", "dropped" }
local function words(i, n)
  local out = {}
  for k = 1, n do out[k] = WORDS[(i * 7 + k * 3) % #WORDS + 1] end
  return table.concat(out, " ")
end
local USERS = { "U01ALICE", "U02BOB", "U03CHEN", "U04DANA", "U05EMRE" }

local function generated(i)
  local section = { type = "rich_text_section", elements = {
    { type = "text", text = "Update " .. i .. ": " .. words(i, 6) .. " " },
    { type = "text", text = words(i + 1, 2), style = { bold = true } },
    { type = "text", text = " see " },
    { type = "link", url = "https://grafana.example/d/" .. i .. "?orgId=1", text = "dashboard" },
    { type = "text", text = " cc " },
    { type = "user", user_id = USERS[i % 5 + 1] },
    { type = "text", text = " " },
    { type = "emoji", name = (i % 3 == 0) and "white_check_mark" or "eyes" },
    { type = "text", text = " svc-" .. i, style = { code = true } },
  } }
  local elements = { section }
  if i % 3 == 0 then
    elements[#elements + 1] = { type = "rich_text_list", style = (i % 2 == 0) and "ordered" or "bullet", indent = 0,
      elements = {
        { type = "rich_text_section", elements = { { type = "text", text = words(i + 2, 4) } } },
        { type = "rich_text_section", elements = { { type = "text", text = words(i + 3, 3), style = { italic = true } },
                                                   { type = "text", text = " (" .. i .. ")" } } },
      } }
  end
  if i % 4 == 0 then
    elements[#elements + 1] = { type = "rich_text_quote", elements = { { type = "text", text = words(i + 4, 8) .. "\nline two" } } }
  end
  if i % 5 == 0 then
    elements[#elements + 1] = { type = "rich_text_preformatted", elements = {
      { type = "text", text = "kubectl rollout undo deploy/checkout-" .. i .. "\nrollback complete" } } }
  end
  return { { type = "rich_text", elements = elements } }
end

local sets = {}
local real = real_blocks()
if real[1] then
  local list = {}
  for i = 1, N do list[i] = real[(i - 1) % #real + 1] end
  sets[#sets + 1] = { name = "real (" .. #real .. " payloads, repeated)", list = list }
else
  print("blocks_convert: shared/testdata/slack-real not found (PMB_SLACK_REAL): real payloads skipped")
end
local gen = {}
for i = 1, N do gen[i] = generated(i) end
sets[#sets + 1] = { name = "generated rich_text", list = gen }
local fz = {}
local seed = 0
while #fz < N do -- (half the random messages hold rich_text or Block Kit)
  seed = seed + 1
  local m = fuzz.message(seed)
  if m.blocks then fz[#fz + 1] = m.blocks end
end
sets[#sets + 1] = { name = "fuzz rich_text + Block Kit", list = fz }

local chosen = {}
for _, set in ipairs(sets) do
  if not ONLY or set.name:find(ONLY, 1, true) then chosen[#chosen + 1] = set end
end
for _, set in ipairs(chosen) do
  local list = set.list
  for k = 1, math.min(200, #list) do blockkit.to_markdown(list[k], resolve) end -- (warm up)
  local best, bytes = math.huge, 0
  for _ = 1, 5 do
    bytes = 0
    local start = os.clock()
    for k = 1, #list do
      bytes = bytes + #blockkit.to_markdown(list[k], resolve)
    end
    best = math.min(best, os.clock() - start)
  end
  print(string.format("blocks_convert: %-36s %6d messages  %7.1f ms  %5.2f us/message  (%d bytes of Markdown)",
    set.name, #list, best * 1000, best * 1e6 / #list, bytes))
end
