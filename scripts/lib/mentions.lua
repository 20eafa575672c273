-- Which users, channels and user groups a thread mentions, wherever a message can hold them: its
-- text, its blocks (rich_text elements, mrkdwn text objects, fields, context), its attachments
-- (text, pretext, fields, footer, blocks). Called by lib/timeline.lua, which looks the names up once
-- per report; calls nothing. Walks each message's tables once, so it stays linear in their size.
local mentions = {}

-- Tables nested deeper than this are not walked (a payload is never that deep; a hostile one could be).
local MAX_DEPTH = 32

local function scan_string(s, found)
  if s:find("<", 1, true) then
    for id in s:gmatch("<@([%w]+)") do
      found.users[id] = true
    end
    for id in s:gmatch("<#([CG][%w]+)>") do
      found.channels[id] = true
    end
    for id, label in s:gmatch("<!subteam%^([%w]+)(|?)") do
      if label == "" then
        found.usergroups[id] = true -- (a labelled one shows its label: no lookup needed)
      end
    end
  end
end

local function scan(node, found, depth)
  if depth > MAX_DEPTH then
    return
  end
  local t = node.type
  if t == "user" and type(node.user_id) == "string" then
    found.users[node.user_id] = true
  elseif t == "channel" and type(node.channel_id) == "string" then
    found.channels[node.channel_id] = true
  elseif t == "usergroup" and type(node.usergroup_id) == "string" then
    found.usergroups[node.usergroup_id] = true
  end
  for _, v in pairs(node) do
    local tv = type(v)
    if tv == "string" then
      scan_string(v, found)
    elseif tv == "table" then
      scan(v, found, depth + 1)
    end
  end
end

local function sorted_keys(set)
  local out = {}
  for k in pairs(set) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

-- { users = {id...}, channels = {id...}, usergroups = {id...} } (sorted, each id once) for the
-- messages' text, blocks and attachments. The message's own `root` (a broadcast's parent) is not read.
function mentions.of(messages)
  local found = { users = {}, channels = {}, usergroups = {} }
  for _, m in ipairs(messages) do
    if type(m) == "table" then
      if type(m.text) == "string" then
        scan_string(m.text, found)
      end
      if type(m.blocks) == "table" then
        scan(m.blocks, found, 1)
      end
      if type(m.attachments) == "table" then
        scan(m.attachments, found, 1)
      end
    end
  end
  return {
    users = sorted_keys(found.users),
    channels = sorted_keys(found.channels),
    usergroups = sorted_keys(found.usergroups),
  }
end

return mentions
