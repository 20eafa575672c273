-- `help`: lists the commands of the loaded scripts, one line each, from their `help` field.
-- To change a command's line, edit the `help` field in its own file under scripts/commands/.
local router = require "lib.router"
local slackfmt = require "lib.slackfmt"

return {
  name = "help",
  help = "help — list the commands",
  run = function(ctx)
    local lines = { "Commands (mention me in a thread, e.g. `@postmortembot help`):" }
    for _, cmd in ipairs(router.list()) do
      -- help lines show arguments as <text>: escape them, or Slack reads them as links
      lines[#lines + 1] = "• " .. slackfmt.escape(cmd.help)
    end
    ctx.reply(table.concat(lines, "\n"))
  end,
}
