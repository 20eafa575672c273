-- `@postmortembot publish`: commits the thread's latest report (the .md and its attachments/) to the
-- Git repository of config publish.git and answers with the page's URL. `autopsy this and publish`
-- makes the report first (commands/autopsy.lua), then publishes it. A failure to publish leaves
-- the report as it is in the thread. The Git work is lib/publish.lua; to change the answer, edit here.
local publish = require "lib.publish"
local autopsy = require "commands.autopsy"

local ADVICE = {
  not_configured = "publishing is not set up: the bot's operator sets `publish.git` (url, branch, path, "
    .. "page_url) in the config.",
  no_report = "this thread has no report yet. Ask for `autopsy this and publish`.",
  auth = "the Git server refused the bot's credentials. The bot's operator must check "
    .. "POSTMORTEMBOT_GIT_TOKEN (or POSTMORTEMBOT_GIT_SSH_KEY) and its rights on the repository.",
  race = "others kept pushing to the repository at the same time. Ask again in a minute.",
  timeout = "the Git server did not answer in time. Ask again in a few minutes.",
  spawn = "the `git` program could not be started on the bot's machine.",
}

local function publish_and_answer(ctx)
  local result, err = publish.report(ctx.channel, ctx.thread_ts, { config = ctx.config })
  if not result then
    local code = type(err) == "table" and err.code or "error"
    local message = type(err) == "table" and err.message or tostring(err)
    ctx.log("warn", "publish failed", { code = code, err = message })
    local advice = ADVICE[code] or ("`" .. code .. "`: " .. message .. ".")
    ctx.reply(":x: Publishing failed: " .. advice .. " The report in this thread is unchanged.")
    return false
  end
  local where = result.url and ("<" .. result.url .. "|" .. result.file .. ">")
    or ("`" .. result.path .. "/" .. result.file .. "`")
  local short = result.commit:sub(1, 12)
  ctx.log("info", "published", { commit = result.commit, path = result.path, attempts = result.attempts })
  if result.unchanged then
    ctx.reply(":books: Version " .. result.version .. " is already published: " .. where .. " (commit `" .. short .. "`).")
  else
    ctx.reply(":books: Published version " .. result.version .. ": " .. where .. " (commit `" .. short .. "`).")
  end
  return true
end

return {
  name = "publish",
  aliases = { "autopsy this and publish", "autopsy and publish" },
  help = "publish — commit this thread's latest report to the wiki's Git repository "
    .. "(`autopsy this and publish` makes the report first)",
  run = function(ctx, args)
    if (ctx.text or ""):lower():match("^%s*autopsy") then
      if not autopsy.run(ctx, args) then return end
    end
    publish_and_answer(ctx)
  end,
}
