-- Destination `statuspage`: an incident on an Atlassian Statuspage page (REST API v1): created when
-- the incident starts, updated on each status update, resolved with it. The page incident's id is
-- kept in the incident record (record.statuspage[page_id]), so later commands, after a restart
-- too, change the same one. The status comes from the command's words ("identified", "monitoring",
-- "investigating"); component impact from config `components` or the words "degraded",
-- "partial outage", "major outage"; resolving sets the components operational again.
local cjson = require "cjson"
local destinations = require "lib.destinations"

local STATUS_WORDS = { "investigating", "identified", "monitoring" }
local IMPACT_WORDS = {
  { "major outage", "major_outage" }, { "partial outage", "partial_outage" },
  { "degraded", "degraded_performance" },
}

local function word_in(text, word)
  return (" " .. text:lower() .. " "):find("[^%a]" .. word:gsub("%s", "%%s+") .. "[^%a]") ~= nil
end

local function status_of(update)
  if update.moment == "resolved" then return "resolved" end
  for _, w in ipairs(STATUS_WORDS) do
    if word_in(update.text or "", w) then return w end
  end
  return update.moment == "started" and "investigating" or "identified"
end

-- { component_id = status } for this moment, or nil when the config names no components.
local function components_of(conf, update)
  if type(conf.components) ~= "table" or next(conf.components) == nil then return nil end
  local said
  for _, pair in ipairs(IMPACT_WORDS) do
    if word_in(update.text or "", pair[1]) then said = pair[2]; break end
  end
  local out = {}
  for id, status in pairs(conf.components) do
    if update.moment == "resolved" then
      out[id] = "operational"
    else
      out[id] = said or status
    end
  end
  return out
end

local function explain(res)
  local ok, decoded = pcall(cjson.decode, res.body or "")
  local e = ok and type(decoded) == "table" and decoded.error
  if type(e) == "table" then e = table.concat(e, "; ") end
  if res.status == 401 then return "the API key was refused (HTTP 401)" end
  if res.status == 420 or res.status == 429 then
    return "rate limited by Statuspage (HTTP " .. res.status .. "); try again later"
  end
  if type(e) == "string" and e ~= "" then return e .. " (HTTP " .. res.status .. ")" end
  return destinations.http_error(res, 0)
end

local function send(ctx, update)
  local conf = ctx.dest
  local key, secret_err = ctx.required_secret("api_key_env")
  if not key then return nil, secret_err end
  local base = conf.api_url or "https://api.statuspage.io/v1/"
  if base:sub(-1) ~= "/" then base = base .. "/" end
  local incidents_url = base .. "pages/" .. conf.page_id .. "/incidents"
  local record = ctx.record
  local known = record and type(record.statuspage) == "table" and record.statuspage[conf.page_id]
  local incident = {
    status = status_of(update),
    body = update.has_text and update.text or update.headline,
    components = components_of(conf, update),
  }
  local method, url = "PATCH", incidents_url .. "/" .. tostring(known)
  if not (type(known) == "string" and known:match("^[%w]+$")) then
    method, url = "POST", incidents_url
    incident.name = update.has_title and update.title or update.headline
    incident.impact_override = conf.impact
    incident.deliver_notifications = conf.notify ~= false
    if incident.components then
      incident.component_ids = {}
      for id in pairs(incident.components) do incident.component_ids[#incident.component_ids + 1] = id end
      table.sort(incident.component_ids)
    end
  end
  local res, err = ctx.http({
    method = method, url = url, body = cjson.encode({ incident = incident }),
    headers = { Authorization = "OAuth " .. key, ["Content-Type"] = "application/json" },
  })
  if not res then return nil, tostring(err) end
  if res.status < 200 or res.status > 299 then
    if res.status >= 500 then return nil, destinations.http_error(res, tonumber(conf.retries) or 0) end
    return nil, explain(res)
  end
  local ok, answer = pcall(cjson.decode, res.body or "")
  local id = ok and type(answer) == "table" and answer.id
  if method == "POST" and type(id) == "string" then
    if record then
      record.statuspage = type(record.statuspage) == "table" and record.statuspage or {}
      record.statuspage[conf.page_id] = id
    end
    return true, { incident_id = id, detail = "incident created" }
  end
  return true, { incident_id = known or id, detail = "incident " .. incident.status }
end

return {
  name = "statuspage",
  send = send,
}
