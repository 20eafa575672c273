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

-- A string that sorts like the ts: fixed-width seconds and microseconds. Unparsable ts sort last.
function tsutil.key(ts)
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
  local sec, micro = tsutil.parse(ts)
  if not sec then return nil end
  return sec + micro / 1e6
end

-- "1700000000.000100" -> "1700000000000100", as in message permalinks (p<digits>).
function tsutil.digits(ts)
  local sec, micro = tsutil.parse(ts)
  if not sec then return nil end
  return string.format("%d%06d", sec, micro)
end

-- Whole seconds between two ts (b - a), exact integer arithmetic, rounded down.
function tsutil.seconds_between(a, b)
  local sa, ma = tsutil.parse(a)
  local sb, mb = tsutil.parse(b)
  if not sa or not sb then return nil end
  return ((sb * 1000000 + mb) - (sa * 1000000 + ma)) // 1000000
end

-- Sort an array of tables in place by their `field` ts (default "ts"), stable for equal ts.
function tsutil.sort_by_ts(list, field)
  field = field or "ts"
  local keyed = {}
  for i, item in ipairs(list) do
    keyed[i] = { key = tsutil.key(item[field]), index = i, item = item }
  end
  table.sort(keyed, function(x, y)
    if x.key ~= y.key then return x.key < y.key end
    return x.index < y.index
  end)
  for i, k in ipairs(keyed) do list[i] = k.item end
  return list
end

return tsutil
