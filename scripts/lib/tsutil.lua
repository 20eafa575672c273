-- Slack `ts` strings ("1700000000.000100"): parse, compare and sort them without ever going through
-- a float (a double cannot hold every microsecond of a ts). Called by lib/slack.lua, lib/timeline.lua,
-- lib/figures.lua and the filter rules; calls nothing.
local tsutil = {}

-- seconds, microseconds (both integers) of a ts string; nil when it is not a ts.
-- "1700000000.0001" means .000100: the fraction is padded on the right.
function tsutil.parse(ts)
  if type(ts) == "number" then ts = string.format("%.6f", ts) end
  if type(ts) ~= "string" then return nil end
  local sec, frac = ts:match("^(%d+)%.?(%d*)$")
  if not sec then return nil end
  frac = (frac .. "000000"):sub(1, 6)
  return math.tointeger(tonumber(sec)), math.tointeger(tonumber(frac))
end

-- Every ts Slack sends today: 10 digits, a dot, 6 digits. Such a ts is already fixed-width.
local CANONICAL = "^%d%d%d%d%d%d%d%d%d%d%.%d%d%d%d%d%d$"

-- The pattern costs more than the rest of a ts helper, and a big timeline asks about each ts
-- several times (sort, time, permalink): the answers are remembered, up to MEMO_MAX strings.
local MEMO_MAX = 50000
local memo, memo_size = {}, 0

local function canonical(ts)
  local known = memo[ts] -- (reading memo[nil] is fine: nil)
  if known ~= nil then return known end
  if type(ts) ~= "string" then return false end
  known = #ts == 17 and ts:find(CANONICAL) ~= nil
  if memo_size >= MEMO_MAX then memo, memo_size = {}, 0 end
  memo[ts] = known
  memo_size = memo_size + 1
  return known
end
tsutil.is_canonical = canonical

-- Forget the remembered answers (a report's reading is done: its 20,000 ts need not stay).
function tsutil.forget()
  memo, memo_size = {}, 0
end

-- A string that sorts like the ts: fixed-width seconds and microseconds. Unparsable ts sort last.
function tsutil.key(ts)
  if canonical(ts) then return "00000" .. ts end
  local sec, micro = tsutil.parse(ts)
  if not sec then return "~" .. tostring(ts) end
  return string.format("%015d.%06d", sec, micro)
end

-- -1, 0 or 1.
function tsutil.compare(a, b)
  local ka, kb = tsutil.key(a), tsutil.key(b)
  if ka < kb then return -1 end
  if ka > kb then return 1 end
  return 0
end

function tsutil.less(a, b)
  return tsutil.key(a) < tsutil.key(b)
end

-- Epoch seconds as a number, for display and durations only (never for identity or order).
function tsutil.to_number(ts)
  if canonical(ts) then return tonumber(ts) end
  local sec, micro = tsutil.parse(ts)
  if not sec then return nil end
  return sec + micro / 1e6
end

-- "1700000000.000100" -> "1700000000000100", as in message permalinks (p<digits>).
function tsutil.digits(ts)
  if canonical(ts) then return ts:sub(1, 10) .. ts:sub(12) end
  local sec, micro = tsutil.parse(ts)
  if not sec then return nil end
  return string.format("%d%06d", sec, micro)
end

-- Whole seconds between two ts (b - a), exact integer arithmetic, rounded to the nearest second.
function tsutil.seconds_between(a, b)
  local sa, ma = tsutil.parse(a)
  local sb, mb = tsutil.parse(b)
  if not sa or not sb then return nil end
  return ((sb * 1000000 + mb) - (sa * 1000000 + ma) + 500000) // 1000000
end

-- Sort an array of tables in place by their `field` ts (default "ts"), stable for equal ts.
-- Slack answers in order almost always, so an array already in order is left as it is.
function tsutil.sort_by_ts(list, field)
  field = field or "ts"
  -- The usual case, checked without building keys: every ts canonical and already in order
  -- (for canonical ts, string order is ts order).
  local prev
  local in_order = true
  for _, item in ipairs(list) do
    local ts = item[field]
    if not canonical(ts) or (prev and ts < prev) then
      in_order = false
      break
    end
    prev = ts
  end
  if in_order then return list end
  local keys = {}
  local sorted = true
  for i, item in ipairs(list) do
    keys[i] = tsutil.key(item[field])
    if i > 1 and keys[i] < keys[i - 1] then sorted = false end
  end
  if sorted then return list end
  local order = {}
  for i = 1, #list do order[i] = i end
  table.sort(order, function(x, y)
    if keys[x] ~= keys[y] then return keys[x] < keys[y] end
    return x < y
  end)
  local items = {}
  for i, idx in ipairs(order) do items[i] = list[idx] end
  for i, item in ipairs(items) do list[i] = item end
  return list
end

return tsutil
