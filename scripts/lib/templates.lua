-- Named templates: templates.render(name, view) and the load-time templates.check_all().
-- Called by lib/report.lua, status/incident commands and init.lua's self-check. Sources come from
-- host.templates() (this generation's templates_dir); rendering is lib/mustache.lua. The escape for
-- {{x}} follows the name's suffix: .md Markdown, .json JSON string content, .slack Slack, else HTML.
local host = require "host"
local cjson = require "cjson"
local mustache = require "lib.mustache"

local templates = {}

local function slack_escape(s)
  return (s:gsub("[&<>]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;" }))
end

-- JSON string *content*: the template supplies the quotes, e.g. "text": "{{text}}".
local function json_escape(s)
  return cjson.encode(s):sub(2, -2)
end

local function markdown_escape(s)
  return require("lib.markdown").escape(s)
end

local ESCAPES = {
  md = markdown_escape,
  json = json_escape,
  slack = slack_escape,
}

-- "postmortem.md" -> "md"; "statusupdate.webhook.json" -> "json"; "plain" -> nil
function templates.kind(name)
  return name:match("%.([%w_]+)$")
end

function templates.escape_for(name)
  return ESCAPES[templates.kind(name) or ""] or mustache.html_escape
end

-- A partial named in {{>x}} is found as "x", else "partials/x", else "partials/x.<kind of parent>".
local function partial_table(all, parent)
  local kind = templates.kind(parent)
  return setmetatable({}, {
    __index = function(_, key)
      return all[key] or all["partials/" .. key] or (kind and all["partials/" .. key .. "." .. kind]) or nil
    end,
  })
end

-- Every template's source and the one named; raises (at the caller's caller) when it is missing.
local function source_of(name)
  local all = host.templates()
  local source = all[name]
  if not source then
    error("no template '" .. name .. "' (expected " .. name .. ".mustache under templates_dir)", 3)
  end
  return all, source
end

-- Render the template `name` (without .mustache) with `view`. Raises when the template is missing
-- or broken; the message names the template.
function templates.render(name, view)
  local all, source = source_of(name)
  return mustache.render(source, view or {}, partial_table(all, name), templates.escape_for(name), name)
end

-- templates.render's text handed to write(chunk) in pieces as it is rendered.
function templates.render_to(write, name, view)
  local all, source = source_of(name)
  mustache.render_to(write, source, view or {}, partial_table(all, name), templates.escape_for(name), name)
end

-- Parse and compile the template `name` and its partials now, so that its first render does not
-- (lib/mustache.lua's prepare). Raises as templates.render would.
function templates.prepare(name)
  local all, source = source_of(name)
  mustache.prepare(source, partial_table(all, name), name)
end

-- true, or false plus a list of messages: every template parses and every partial it names exists.
function templates.check_all()
  local all = host.templates()
  local errors = {}
  local names = {}
  for name in pairs(all) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local ok, used = pcall(mustache.partials_used, all[name], name .. ".mustache")
    if not ok then
      errors[#errors + 1] = tostring(used)
    else
      local partials = partial_table(all, name)
      for _, p in ipairs(used) do
        if partials[p] == nil then
          errors[#errors + 1] = name .. ".mustache: partial '" .. p .. "' not found (looked for " .. p
            .. ".mustache and partials/" .. p .. ".mustache)"
        end
      end
    end
  end
  if #errors > 0 then return false, errors end
  return true
end

return templates
