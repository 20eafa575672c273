-- Drops the `@postmortembot autopsy this` message that asked for this report, and earlier requests
-- for a report in the same thread (they are not part of the incident). Run by lib/filters.lua;
-- env.command_ts is the ts of the request (nil in an offline render).
local slackfmt = require "lib.slackfmt"

local function is_report_request(entry, bot_user_id)
  local who = slackfmt.report_request_to(entry.raw and entry.raw.text)
  return who ~= nil and (not bot_user_id or who == bot_user_id)
end

return {
  name = "30-drop-command",
  description = "Drops the request for this report.",
  each = function(entry, env)
    local bot_user_id = env.bot.user_id
    if entry.ts == env.thread_ts then return nil end
    if env.command_ts and entry.ts == env.command_ts then return "the request for this report" end
    if bot_user_id and is_report_request(entry, bot_user_id) then return "an earlier request for a report" end
    return nil
  end,
}
