-- Destination `email`: the update as an e-mail (plain text and a small HTML part) to the `to` and
-- `cc` lists, handed to an SMTP server by host.smtp (libcurl: STARTTLS or smtps://; the user name
-- and password come from the environment variables the config names). A refused or unreachable
-- server is tried again (`retries`) when the failure may pass (connection, timeout, 4xx).
-- To change the wording, edit text_of/html_of below. Built by lib/mail_message.lua.
local host = require "host"
local mail_message = require "lib.mail_message"

local function subject_of(conf, update)
  local s = update.headline
  if update.has_title then s = s .. ": " .. update.title end
  local prefix = conf.subject_prefix or "[status]"
  return prefix ~= "" and (prefix .. " " .. s) or s
end

local function text_of(update)
  local lines = { update.headline .. (update.has_title and (": " .. update.title) or ""), "" }
  if update.has_text then lines[#lines + 1] = update.text; lines[#lines + 1] = "" end
  lines[#lines + 1] = "By " .. update.user_name .. ", " .. update.when
  if update.duration then lines[#lines + 1] = "Duration: " .. update.duration end
  if update.thread_url ~= "" then lines[#lines + 1] = "Incident thread: " .. update.thread_url end
  return table.concat(lines, "\n") .. "\n"
end

local function html_of(update)
  local e = mail_message.html_escape
  local out = { "<!DOCTYPE html><html><body>",
    "<h2>" .. e(update.headline) .. (update.has_title and (": " .. e(update.title)) or "") .. "</h2>" }
  if update.has_text then
    out[#out + 1] = "<p>" .. e(update.text):gsub("\n", "<br>") .. "</p>"
  end
  out[#out + 1] = "<p>By " .. e(update.user_name) .. ", " .. e(update.when) .. "</p>"
  if update.duration then out[#out + 1] = "<p>Duration: " .. e(update.duration) .. "</p>" end
  if update.thread_url ~= "" then
    out[#out + 1] = '<p><a href="' .. e(update.thread_url) .. '">Incident thread</a></p>'
  end
  out[#out + 1] = "</body></html>"
  return table.concat(out, "\n") .. "\n"
end

-- Failures that may pass: worth another try.
local function transient(err)
  if err.code == "connect" or err.code == "timeout" then return true end
  return err.code == "smtp" and tonumber(err.status) ~= nil and err.status >= 400 and err.status < 500
end

-- "Status Bot <status@example.com>" -> "status@example.com": the SMTP envelope takes addresses only.
local function address(s)
  return tostring(s):match("<([^<>]+)>%s*$") or tostring(s)
end

local function addresses(list)
  local out = {}
  for i, s in ipairs(list or {}) do out[i] = address(s) end
  return out
end

local function send(ctx, update)
  local conf = ctx.dest
  local body, message_id = mail_message.build({
    from = conf.from, to = conf.to, cc = conf.cc, subject = subject_of(conf, update),
    text = text_of(update), html = html_of(update), at = update.at,
    id_seed = (ctx.name or "") .. "|" .. update.moment,
  })
  local retries = tonumber(conf.retries) or 2
  local res, err
  for attempt = 0, retries do
    res, err = host.smtp({
      url = conf.url, from = address(conf.from), to = addresses(conf.to), cc = addresses(conf.cc), body = body,
      username_env = conf.username_env, password_env = conf.password_env,
      starttls = conf.starttls or "required", timeout = tonumber(conf.timeout) or 15,
    })
    if res or not transient(err) or attempt == retries then break end
    ctx.log("warn", "smtp send failed; retrying", { err = tostring(err), attempt = attempt + 1 })
    host.sleep(math.min(2 ^ attempt, 30))
  end
  if not res then
    local e = tostring(err)
    if retries > 0 and transient(err) then
      e = e .. " after " .. retries .. (retries == 1 and " retry" or " retries")
    end
    return nil, e
  end
  return true, { message_id = message_id }
end

return {
  name = "email",
  send = send,
}
