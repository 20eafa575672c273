-- One e-mail as RFC 5322 text for host.smtp: headers (Date, From, To, Cc, Subject, Message-ID,
-- MIME-Version) and a multipart/alternative body with a plain-text part and a small HTML part,
-- both UTF-8 in base64, CRLF line ends. Header values lose their line breaks, so nothing typed in
-- Slack can add a header; a non-ASCII subject is RFC 2047 encoded. Called by destinations/email.lua;
-- calls host.base64 and host.sha256.
local host = require "host"

local mail_message = {}

-- base64 in lines of 76 characters, CRLF-separated.
local function base64_lines(s)
  local b = host.base64(s)
  local lines = {}
  for i = 1, #b, 76 do lines[#lines + 1] = b:sub(i, i + 75) end
  return table.concat(lines, "\r\n")
end

-- One line, no control characters: what a header value may hold.
function mail_message.header_value(s)
  return (tostring(s or ""):gsub("[%c]+", " "):gsub("^%s+", ""):gsub("%s+$", ""))
end

-- The subject as it goes into the header: as is when ASCII, else =?UTF-8?B?…?= words.
function mail_message.encode_subject(s)
  s = mail_message.header_value(s)
  if not s:find("[\128-\255]") then return s end
  local words, chunk = {}, ""
  for _, code in utf8.codes(s) do
    local ch = utf8.char(code)
    if #chunk + #ch > 45 then
      words[#words + 1] = "=?UTF-8?B?" .. host.base64(chunk) .. "?="
      chunk = ""
    end
    chunk = chunk .. ch
  end
  if chunk ~= "" then words[#words + 1] = "=?UTF-8?B?" .. host.base64(chunk) .. "?=" end
  return table.concat(words, "\r\n ")
end

function mail_message.html_escape(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;", ["'"] = "&#39;" }))
end

local function crlf(s)
  return (s:gsub("\r\n", "\n"):gsub("\n", "\r\n"))
end

-- The message. m = { from, to = {…}, cc = {…}, subject, text, html, at (epoch), id_seed }.
-- Returns the text and the Message-ID (with its angle brackets).
function mail_message.build(m)
  local domain = tostring(m.from):match("@([%w%.%-]+)") or "localhost"
  local seed = table.concat({ tostring(m.at), tostring(m.id_seed), m.subject or "" }, "|")
  local message_id = "<" .. host.sha256(seed):sub(1, 32) .. "@" .. domain .. ">"
  local boundary = "=_pmb_" .. host.sha256("boundary|" .. seed):sub(1, 24)
  local headers = {
    "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S +0000", math.floor(m.at)),
    "From: " .. mail_message.header_value(m.from),
    "To: " .. mail_message.header_value(table.concat(m.to or {}, ", ")),
  }
  if m.cc and #m.cc > 0 then
    headers[#headers + 1] = "Cc: " .. mail_message.header_value(table.concat(m.cc, ", "))
  end
  for _, h in ipairs({
    "Subject: " .. mail_message.encode_subject(m.subject),
    "Message-ID: " .. message_id,
    "MIME-Version: 1.0",
    "Content-Type: multipart/alternative; boundary=\"" .. boundary .. "\"",
  }) do headers[#headers + 1] = h end
  local parts = {
    table.concat(headers, "\r\n"), "",
    "--" .. boundary,
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: base64", "",
    base64_lines(crlf(m.text)),
    "--" .. boundary,
    "Content-Type: text/html; charset=utf-8",
    "Content-Transfer-Encoding: base64", "",
    base64_lines(crlf(m.html)),
    "--" .. boundary .. "--", "",
  }
  return table.concat(parts, "\r\n"), message_id
end

return mail_message
