-- Mustache templates (the official spec: interpolation, sections, inverted, comments, partials,
-- set delimiters; no lambdas). Called by lib/templates.lua (and its self-check); calls nothing but
-- cjson (for cjson.null) and lib/mustache_compile.lua (parsed trees to code). The escape function
-- is a parameter so a .md template escapes Markdown and a .json one JSON; parse errors name the
-- template and line.
local cjson = require "cjson"
local compile = require "lib.mustache_compile"

local mustache = {}

local NULL = cjson.null

-- tags whose line is removed when they stand alone on it
local STANDALONE_KINDS = { ["#"] = true, ["^"] = true, ["/"] = true, ["!"] = true, ["="] = true, [">"] = true }

local function html_escape(s)
  return (s:gsub("[&<>\"']", {
    ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;",
  }))
end
mustache.html_escape = html_escape

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function fail(name, line, msg)
  error(string.format("%s:%d: %s", name or "template", line, msg), 0)
end

-- Split the source into a flat list of tokens: text pieces (each ends at a newline or at a tag)
-- and tags {kind, key, line}. Delimiter changes take effect as the scan goes.
local function scan(src, name)
  local tokens = {}
  local otag, ctag = "{{", "}}"
  local pos, line, len = 1, 1, #src

  local function add_text(s)
    local start = 1
    while start <= #s do
      local nl = s:find("\n", start, true)
      if nl then
        tokens[#tokens + 1] = { kind = "text", text = s:sub(start, nl), nl = true, line = line }
        line = line + 1
        start = nl + 1
      else
        tokens[#tokens + 1] = { kind = "text", text = s:sub(start), line = line }
        start = #s + 1
      end
    end
  end

  while pos <= len do
    local open = src:find(otag, pos, true)
    if not open then
      add_text(src:sub(pos))
      break
    end
    add_text(src:sub(pos, open - 1))
    local tag_line = line
    local inner_start = open + #otag
    local first = src:sub(inner_start, inner_start)
    local close_seq = ctag
    if first == "{" then close_seq = "}" .. ctag end
    if first == "=" then close_seq = "=" .. ctag end
    local close = src:find(close_seq, inner_start + ((first == "{" or first == "=") and 1 or 0), true)
    if not close then
      fail(name, tag_line, "unclosed tag '" .. otag .. "' (no '" .. close_seq .. "' after it)")
    end
    local inner = src:sub(inner_start, close - 1)
    local _, newlines = inner:gsub("\n", "")
    line = line + newlines
    pos = close + #close_seq

    local kind, key
    if first == "{" then
      kind, key = "&", trim(inner:sub(2))
    elseif first == "=" then
      local spec = trim(inner:sub(2))
      local new_open, new_close = spec:match("^(%S+)%s+(%S+)$")
      if not new_open or new_open:find("=", 1, true) or new_close:find("=", 1, true) then
        fail(name, tag_line, "bad set-delimiter tag '" .. inner .. "'")
      end
      otag, ctag = new_open, new_close
      kind, key = "=", ""
    elseif first == "!" then
      kind, key = "!", ""
    elseif first == "#" or first == "^" or first == "/" or first == ">" or first == "&" then
      kind, key = first, trim(inner:sub(2))
    else
      kind, key = "name", trim(inner)
    end
    if kind ~= "!" and kind ~= "=" and key == "" then
      fail(name, tag_line, "empty tag name")
    end
    if kind ~= "!" and kind ~= "=" and key:find("%s") then
      fail(name, tag_line, "tag name '" .. key .. "' contains spaces")
    end
    tokens[#tokens + 1] = { kind = kind, key = key, line = tag_line }
  end
  return tokens
end

-- Remove the whitespace and newline around tags that stand alone on their line (the spec's
-- "standalone" rule); a standalone partial remembers the indentation it sat at.
local function strip_standalone(tokens)
  local out = {}
  local i, n = 1, #tokens
  while i <= n do
    -- one line: tokens i..j, where j is the text token ending in "\n" or the last token
    local j = i
    while j < n and not (tokens[j].kind == "text" and tokens[j].nl) do
      j = j + 1
    end
    local tag, tags, blank, indent = nil, 0, true, ""
    for k = i, j do
      local t = tokens[k]
      if t.kind == "text" then
        if not t.text:match("^[ \t]*\r?\n?$") then blank = false end
        if not tag then indent = indent .. t.text end
      else
        tags = tags + 1
        tag = t
      end
    end
    if tags == 1 and blank and STANDALONE_KINDS[tag.kind] and not indent:find("\n") then
      if tag.kind == ">" then tag.indent = indent end
      out[#out + 1] = tag
    else
      for k = i, j do out[#out + 1] = tokens[k] end
    end
    i = j + 1
  end
  return out
end

-- A dotted name split once, when the template is parsed, instead of at every lookup: node.first is
-- the name looked up through the context stack (nil when the key starts with a dot), node.parts the
-- names below it ("a.b.c": "a", {"b", "c"}).
local function split_key(node)
  if node.key ~= "." then
    local first, rest = node.key:match("^([^%.]+)%.?(.*)$")
    local parts = {}
    if rest then
      for part in rest:gmatch("[^%.]+") do
        parts[#parts + 1] = part
      end
    end
    node.first, node.parts = first, parts
  end
  return node
end

-- Nest sections: returns the tree (array of nodes) or raises on unbalanced sections.
local function build_tree(tokens, name)
  local root = {}
  local stack = { { children = root } }
  for _, t in ipairs(tokens) do
    local top = stack[#stack]
    if t.kind == "text" then
      local last = top.children[#top.children]
      if type(last) == "string" then
        top.children[#top.children] = last .. t.text
      else
        top.children[#top.children + 1] = t.text
      end
    elseif t.kind == "#" or t.kind == "^" then
      local node = { kind = t.kind, key = t.key, line = t.line, children = {} }
      split_key(node)
      top.children[#top.children + 1] = node
      stack[#stack + 1] = node
    elseif t.kind == "/" then
      if #stack == 1 then
        fail(name, t.line, "closing tag '{{/" .. t.key .. "}}' without an opening tag")
      end
      if top.key ~= t.key then
        fail(name, t.line, "closing tag '{{/" .. t.key .. "}}' does not match '{{#" .. top.key
          .. "}}' opened on line " .. top.line)
      end
      stack[#stack] = nil
    elseif t.kind == "name" or t.kind == "&" or t.kind == ">" then
      top.children[#top.children + 1] = split_key({ kind = t.kind, key = t.key, line = t.line, indent = t.indent })
    end
  end
  if #stack > 1 then
    local open = stack[#stack]
    fail(name, open.line, "section '{{" .. open.kind .. open.key .. "}}' is never closed")
  end
  return root
end

-- Parsed templates, keyed by their source text (an edited template is a new key). Cleared when
-- it grows, so a long-running generation never holds more than a few hundred.
local cache, cache_size = {}, 0

-- Parse a template; raises "NAME:LINE: message" on a bad template. Returns the tree.
function mustache.parse(template, name)
  if type(template) ~= "string" then
    error((name or "template") .. ": template is not a string", 2)
  end
  local tree = cache[template]
  if tree then return tree end
  tree = build_tree(strip_standalone(scan(template, name)), name)
  if cache_size > 500 then
    cache, cache_size = {}, 0
  end
  cache[template] = tree
  cache_size = cache_size + 1
  return tree
end

-- Names of the partials a template references (for the self-check).
function mustache.partials_used(template, name)
  local found, seen = {}, {}
  local function walk(nodes)
    for _, node in ipairs(nodes) do
      if type(node) == "table" then
        if node.kind == ">" and not seen[node.key] then
          seen[node.key] = true
          found[#found + 1] = node.key
        end
        if node.children then walk(node.children) end
      end
    end
  end
  walk(mustache.parse(template, name))
  return found
end

local function to_text(v)
  if type(v) == "string" then return v end
  if v == nil or v == NULL then return "" end
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return string.format("%d", v)
  end
  return tostring(v)
end

local function indent_source(src, indent)
  if indent == nil or indent == "" then return src end
  local lines, pos = {}, 1
  while pos <= #src do
    local nl = src:find("\n", pos, true)
    local stop = nl or #src
    lines[#lines + 1] = indent .. src:sub(pos, stop)
    pos = stop + 1
  end
  return table.concat(lines)
end

-- A tree is compiled once into Lua code (lib/mustache_compile.lua; cached on the tree) instead of
-- being walked node by node at every render: a 20,000-entry report runs its entry partial 20,000
-- times. A compiled step is step(stack, top, env, out): `stack[1..top]` the context stack,
-- innermost last; `out` the sink (out[1..out.n] the pieces so far; out.flush, when set, takes them
-- once there are enough).
local FLUSH_AT = 4096

-- A node's (dotted) name looked up through the context stack, innermost first (the compiled code
-- calls it for dotted names and "."; it writes plain names out in place).
local function compile_lookup(node)
  if node.key == "." then
    return function(stack, top)
      local v = stack[top]
      if v == NULL then return nil end
      return v
    end
  end
  local first, parts = node.first, node.parts
  if first == nil then return function() return nil end end
  local nparts = #parts
  return function(stack, top)
    local value
    local tables = stack.tables -- (no call to type() per context: see push)
    for i = top, 1, -1 do
      value = tables[i][first]
      if value ~= nil then break end
    end
    if value == nil then return nil end
    for i = 1, nparts do
      if type(value) ~= "table" then return nil end
      value = value[parts[i]]
    end
    if value == NULL then return nil end
    if type(value) == "function" then value = value(stack[top]) end
    return value
  end
end

-- stack.tables[i] is stack[i] when that is a table, else an empty table: names are looked up in
-- tables only (a string context would answer with its methods).
local NO_NAMES = setmetatable({}, { __newindex = function() error("mustache: read-only", 2) end })

local function push(stack, i, v)
  stack[i] = v
  stack.tables[i] = type(v) == "table" and v or NO_NAMES
end

local compile_nodes -- (a partial compiles its tree when first used)

-- {{>name}}: the partial's source, indented as the tag was, parsed and compiled once per render
-- (not once per use: per entry), then run in the same context.
local function partial_step(node)
  local key = node.key
  return function(stack, top, env, out)
    local step = env.partial_steps[node]
    if step == nil then
      local src = env.partials[key]
      step = false
      if src ~= nil then step = compile_nodes(mustache.parse(indent_source(src, node.indent), key), key) end
      env.partial_steps[node] = step
    end
    if step then
      env.depth = env.depth + 1
      if env.depth > 100 then
        error("partial '" .. key .. "' nests deeper than 100 levels", 0)
      end
      step(stack, top, env, out)
      env.depth = env.depth - 1
    end
  end
end

local compiled = setmetatable({}, { __mode = "k" }) -- tree -> its step

function compile_nodes(nodes, name)
  local done = compiled[nodes]
  if done then return done end
  local step = compile.tree(nodes, { NULL = NULL, NO_NAMES = NO_NAMES, FLUSH_AT = FLUSH_AT, to_text = to_text,
                                     lookup_of = compile_lookup, partial_of = partial_step, name = name })
  compiled[nodes] = step
  return step
end

local function render_into(template, view, partials, escape, name, out)
  local step = compile_nodes(mustache.parse(template, name), name)
  -- escaped: {{x}}'s text -> its escaped text, for this render (escape functions are pure)
  local env = { partials = partials or {}, escape = escape or html_escape, depth = 0,
                partial_steps = {}, escaped = {} }
  local stack = { tables = {} }
  push(stack, 1, view)
  step(stack, 1, env, out)
end

-- Render `template` with `view`. `partials` is a table name -> source (or nil); `escape` a
-- function string -> string used by {{name}} (default: HTML escaping). {{{name}}} and {{&name}}
-- are never escaped.
function mustache.render(template, view, partials, escape, name)
  local out = { n = 0 }
  render_into(template, view, partials, escape, name, out)
  return table.concat(out, "", 1, out.n)
end

-- The same text as mustache.render, handed to write(chunk) in pieces of a few thousand parts as
-- it is rendered, so the whole document never has to be one string.
function mustache.render_to(write, template, view, partials, escape, name)
  local out = { n = 0 }
  out.flush = function(o)
    write(table.concat(o, "", 1, o.n))
    o.n = 0
  end
  render_into(template, view, partials, escape, name, out)
  if out.n > 0 then out.flush(out) end
end

-- Partials nested deeper than this are left to the render: a partial that includes itself on an
-- indented line is a new source at every level (each level indents it once more).
local PREPARE_DEPTH = 8

-- Parse and compile `template` and every partial it names, inside sections too and indented as
-- each tag is, as its first render would: that render then finds them all done. Raises as a
-- render would on a broken template.
function mustache.prepare(template, partials, name)
  local seen = {}
  local function walk(nodes, depth)
    for _, node in ipairs(nodes) do
      if type(node) == "table" then
        local src = node.kind == ">" and depth < PREPARE_DEPTH and partials and partials[node.key]
        if src ~= nil and src ~= false then
          local source = indent_source(src, node.indent)
          if not seen[source] then
            seen[source] = true
            local tree = mustache.parse(source, node.key)
            compile_nodes(tree, node.key)
            walk(tree, depth + 1)
          end
        end
        if node.children then walk(node.children, depth) end
      end
    end
  end
  local tree = mustache.parse(template, name)
  compile_nodes(tree, name)
  walk(tree, 0)
end

return mustache
