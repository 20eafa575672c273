-- `help`: lists the commands of the loaded scripts, one line each, from their `help` field.
-- To change a command's line, edit the `help` field in its own file under scripts/commands/.
local router = require "lib.router"

return {
  name = "help",
  help = "help — list the commands",
  run = function(ctx)
    local lines = { "Commands (mention me in a thread, e.g. `@postmortembot help`):" }
    for _, cmd in ipairs(router.list()) do
      lines[#lines + 1] = "• " .. cmd.help
    end
    ctx.reply(table.concat(lines, "\n"))
  end,
}
