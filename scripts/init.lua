-- The scripts' entry point: the host (core/host.c) requires this module when it builds a
-- generation and calls load(how) and self_check(how) before the generation may serve; then
-- on_envelope(envelope) in a fresh coroutine per Socket Mode envelope, and render(opts) for the
-- `render` subcommand. Commands live in lib/router.lua's registry, filters in lib/filters.lua.
-- how.render is true when the generation is built for the `render` subcommand: one report and an
-- exit, so the commands (and what only they use) are neither loaded nor checked: a render does not
-- wait ~20 ms for them, nor fail for a command it never runs (`postmortembot check` checks them).
local host = require "host"
local router = require "lib.router"

local init = {}

local function module_exists(name)
  local ok, err = pcall(require, name)
  if ok then return true end
  -- only "not found" means absent; a module that fails to load is an error to report
  if tostring(err):find("module '" .. name .. "' not found", 1, true) then return false end
  error(err, 0)
end

-- Register every command (scripts/commands/*.lua, sorted; not for a render) and filter rule.
-- Raises on the first broken file; the message starts with file:line.
function init.load(how)
  router.reset()
  if not (how and how.render) then
    for _, name in ipairs(host.list_scripts("commands")) do
      router.add(require(name), "scripts/" .. name:gsub("%.", "/") .. ".lua")
    end
  end
  if module_exists("lib.filters") then
    require("lib.filters").rules()
  end
end

-- true, or false plus a list of problems. For a render only the report's templates are compiled
-- (a broken one fails the render itself).
function init.self_check(how)
  local problems = {}
  if not (how and how.render) then
    problems = router.check()
    if module_exists("lib.templates") then
      local ok, errs = require("lib.templates").check_all()
      if not ok then
        for _, e in ipairs(errs) do problems[#problems + 1] = e end
      end
    end
    for _, e in ipairs(require("lib.destinations").check(host.config())) do
      problems[#problems + 1] = e
    end
  end
  if #problems > 0 then return false, problems end
  -- the report templates compiled now, not by the first report after its last page
  if module_exists("lib.bundle") then require("lib.bundle").prepare_templates(host.config()) end
  return true
end

function init.on_envelope(envelope)
  return router.on_envelope(envelope)
end

function init.render(opts)
  return require("lib.render_offline").run(opts)
end

-- The registered commands, for help and for other modules.
function init.commands()
  return router.list()
end

return init
