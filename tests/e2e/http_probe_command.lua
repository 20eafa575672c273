-- Test-only command, copied into a temp scripts/commands/ by tests/e2e/test_http.py (never
-- installed): `httpprobe api TAG METHOD [k=v ...]`, `httpprobe download TAG URL [MAX_BYTES]`,
-- `httpprobe post TAG URL RETRIES`. It calls host.api / host.download / host.http once and logs one
-- "httpprobe" line with the outcome, which the test reads from the bot's log. Downloads and posts
-- may reach loopback when the config's downloads.allow_private is true (the harness's default).
-- `httpprobe readfile TAG PATH`, `httpprobe bodyfile TAG URL PATH`, `httpprobe zip TAG BASE ENTRY`
-- try the read rule (/proc, /sys, /dev refused).
local host = require "host"

local function allow_private()
  local downloads = host.config().downloads or {}
  return downloads.allow_private == true or nil
end

local function unlink(s)
  return (s:gsub("^<", ""):gsub(">$", ""):gsub("|.*$", ""))
end

local function report(tag, res, err, extra)
  local fields = {
    tag = tag,
    ok = tostring(res ~= nil),
    code = err and tostring(err.code) or "",
    status = err and err.status and tostring(err.status) or "",
    needed = err and err.needed or "",
    provided = err and err.provided or "",
    t = string.format("%.3f", host.monotonic()),
  }
  for k, v in pairs(extra or {}) do fields[k] = tostring(v) end
  host.log("info", "httpprobe", fields)
end

return {
  name = "httpprobe",
  help = "httpprobe — test only: one host.api / host.download / host.http call",
  run = function(ctx, args)
    local words = {}
    for w in args:gmatch("%S+") do words[#words + 1] = w end
    local op, tag = words[1], words[2]
    if op == "api" then
      local params = {}
      for i = 4, #words do
        local k, v = words[i]:match("^([%w_]+)=(.*)$")
        if k then params[k] = v end
      end
      local res, err = host.api(words[3], params)
      report(tag, res, err)
    elseif op == "download" then
      local dir = host.config().data_dir .. "/dl"
      host.mkdir(dir)
      local res, err = host.download(unlink(words[3]), dir .. "/" .. tag .. ".bin",
                                     { max_bytes = tonumber(words[4] or ""), allow_private = allow_private() })
      report(tag, res, err, res and { size = res.size, sha256 = res.sha256 } or nil)
    elseif op == "post" then
      local res, err = host.http { method = "POST", url = unlink(words[3]), body = "hello",
                                   retries = tonumber(words[4] or "0"), allow_private = allow_private() }
      report(tag, res, err, res and { http_status = res.status } or nil)
    elseif op == "readfile" then
      local res, err = host.read_file(words[3])
      report(tag, res, err)
    elseif op == "bodyfile" then
      local res, err = host.http { method = "POST", url = unlink(words[3]), body_file = words[4],
                                   allow_private = allow_private() }
      report(tag, res, err, res and { http_status = res.status } or nil)
    elseif op == "zip" then
      local out = host.config().data_dir .. "/probe-" .. tag .. ".zip"
      local res, err = host.zip(out, words[3], { words[4] })
      report(tag, res, err)
    else
      ctx.reply("httpprobe: api | download | post")
    end
  end,
}
