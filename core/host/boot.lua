-- core/host/boot.lua — run inside every generation before the scripts (compiled into the binary
-- by the Makefile, called from core/host/host_gen.c): checks and completes the config with
-- lib/config_schema.lua, checks the templates it names, loads init.lua, and holds the coroutine
-- bodies host_task.c starts (task_main, child_main, render_main).
local cjson, require, schema = ...
local boot = {}

local function fail(where, problems)
  if #problems == 1 then error(where .. ": " .. problems[1], 0) end
  error(where .. ": " .. #problems .. " problems:\n  " .. table.concat(problems, "\n  "), 0)
end

-- ctx: { config_path, config_dir, cwd, getenv = fn, valid_zone = fn } from host_gen.c.
function boot.prepare_config(cfg, ctx)
  local resolved, problems = schema.resolve(cfg, ctx)
  if not resolved then fail("config " .. ctx.config_path, problems) end
  return resolved
end

-- Every template the config names exists in templates (name -> source).
function boot.check_templates(cfg, templates, config_path)
  local problems = schema.check_templates(cfg, templates)
  if #problems > 0 then fail("config " .. config_path, problems) end
end

function boot.task_main(json)
  local init = require "init"
  local ok, env = pcall(cjson.decode, json)
  if not ok or type(env) ~= "table" then error("envelope is not a JSON object", 0) end
  return init.on_envelope(env)
end

function boot.child_main(results, i, fn)
  local ok, v, err = pcall(fn)
  if ok then
    results[i] = { ok = true, value = v, err = err }
  else
    results[i] = { ok = false, error = v }
  end
end

-- The render subcommand's body. Never raises: returns a JSON object as text, either
-- {"path": …} or {"error": …, "exit": N, "traceback": …}, which core/cli.c turns into its output
-- and exit status (a render error is the user's input, not a script failure to log).
function boot.render_main(opts)
  local traceback
  local ok, res = xpcall(function() return require("init").render(opts) end, function(e)
    traceback = debug.traceback(type(e) == "table" and tostring(e.message) or tostring(e), 2)
    return e
  end)
  if ok and type(res) == "string" then return cjson.encode({ path = res }) end
  if ok then res = "render returned no report" end
  local msg, code = res, 1
  if type(res) == "table" then msg, code = res.message, res.exit or 1 end
  return cjson.encode({ error = tostring(msg), exit = code, traceback = traceback })
end

-- Before any script loads, the generation's global table becomes strict and read-only. Every script of a
-- generation shares it, so a global set by one command would leak into every other module and
-- task, and a misspelt name would read as nil. Reading or writing a name that is not a global
-- raises, naming it, at the line that did it.
local function lock_globals()
  local G, setmetatable, pairs, error, tostring = _G, setmetatable, pairs, error, tostring
  local known = {}
  for k, v in pairs(G) do known[k] = v end
  for k in pairs(known) do G[k] = nil end
  setmetatable(known, { __index = function(_, k)
    error(("undeclared global '%s' (a typo? declare it local)"):format(tostring(k)), 2)
  end })
  setmetatable(G, {
    __index = known,
    __newindex = function(_, k)
      error(("assignment to undeclared global '%s': scripts share one read-only environment; "
        .. "declare it local"):format(tostring(k)), 2)
    end,
    __metatable = "the global table is locked",
  })
end

-- for_render: the generation is the `render` subcommand's (init.load's `how.render`).
function boot.load_init(for_render)
  lock_globals()
  local init = require "init"
  if type(init) ~= "table" then error("init.lua must return a table", 0) end
  for _, f in ipairs({ "load", "self_check", "on_envelope", "render" }) do
    if type(init[f]) ~= "function" then error("init.lua: init." .. f .. " is not a function", 0) end
  end
  local how = { render = for_render == true }
  init.load(how)
  local ok, errs = init.self_check(how)
  if ok ~= true then
    if type(errs) == "table" then errs = table.concat(errs, "; ") end
    error("self-check failed: " .. tostring(errs or "no reason given"), 0)
  end
  return init
end

return boot
