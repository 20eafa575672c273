-- A parsed Mustache tree (lib/mustache.lua's parse) compiled to Lua source and loaded once, so a
-- render runs straight-line code instead of walking nodes: a 20,000-entry report runs its entry
-- partial 20,000 times, and each of its ~40 nodes was a function call of its own. Called by
-- lib/mustache.lua (compile); uses the sandbox's text-only `load`. The template's text never
-- becomes code: names and literal pieces enter the source only as %q-quoted string constants.
--
-- A compiled step is step(stack, top, env, out), as lib/mustache.lua describes: stack[1..top] the
-- context stack, innermost last, stack.tables[i] = stack[i] when it is a table (else an empty
-- table); env = { escape, escaped (memo), partial_steps, partials, depth }; out[1..out.n] the
-- pieces so far, out.flush(out) (when set) takes them once there are FLUSH_AT or more.
--
-- Inside a generated function the context levels are locals: d<k> is the level's index in the
-- stack and t<k> its table, so a name found in the innermost context costs one table read; a
-- name not found there is looked up further down the stack as the spec says. Sections are
-- written out in place, a few levels deep; deeper ones become functions of their own (a bounded
-- number of locals per function, whatever the template).
local compile = {}

local INLINE_LEVELS = 5 -- sections written out in place inside one function

-- fns: the chunk's functions (source text each); aux: closures the code calls (dotted lookups,
-- partials), passed in as the table A.
local function new_unit()
  return { fns = {}, aux = {} }
end

local function aux(unit, f)
  unit.aux[#unit.aux + 1] = f
  return #unit.aux
end

local function q(s)
  return string.format("%q", s)
end

-- Code that leaves in local v<k> the value of node's name at level k (nil when missing), with
-- what lib/mustache.lua's compile_lookup does: null is nil, a function is called with the
-- innermost context.
local function lookup_code(unit, node, k, lookup_of)
  local first, plain = node.first, node.first ~= nil and node.key ~= "." and #node.parts == 0
  if not plain then
    return string.format("local v%d = A[%d](stack, d%d)\n", k, aux(unit, lookup_of(node)), k)
  end
  local key = q(first)
  -- (false and strings, what most names hold, are told apart without calling type)
  return string.format(
    "local v%d = t%d[%s]\n"
      .. "if v%d == nil then for i = d%d - 1, 1, -1 do v%d = tables[i][%s]; if v%d ~= nil then break end end end\n"
      .. "if v%d and v%d ~= true then\n"
      .. "if v%d == NULL then v%d = nil elseif type(v%d) == 'function' then v%d = v%d(stack[d%d]) end\n"
      .. "end\n",
    k, k, key, k, k, k, key, k, k, k, k, k, k, k, k, k)
end

local emit_nodes -- (recursive: sections hold nodes)

local function emit_name(unit, node, k, escaped, lookup_of, buf)
  buf[#buf + 1] = "do\n" .. lookup_code(unit, node, k, lookup_of)
  buf[#buf + 1] = string.format("if v%d ~= nil then\nif type(v%d) ~= 'string' then v%d = to_text(v%d) end\n",
    k, k, k, k)
  if escaped then
    buf[#buf + 1] = string.format(
      "local s = memo[v%d]\nif s == nil then s = escape(v%d); memo[v%d] = s end\nv%d = s\n", k, k, k, k)
  end
  buf[#buf + 1] = string.format("n = n + 1; out[n] = v%d\nend\nend\n", k)
end

-- The body of a section, at level j: in place while few sections are open in this function, else
-- a function of its own called with the level's index.
local function emit_body(unit, node, j, open, lookup_of, buf)
  if open < INLINE_LEVELS then
    emit_nodes(unit, node.children, j, open + 1, lookup_of, buf)
  else
    local f = compile.function_of(unit, node.children, lookup_of)
    buf[#buf + 1] = string.format("out.n = n; F[%d](stack, d%d, env, out); n = out.n\n", f, j)
  end
end

-- {{#name}}: a list repeats the body per item (ipairs' order and end), another true value is
-- pushed once; the sink is offered a flush after each item of a list.
local function emit_section(unit, node, k, open, lookup_of, buf)
  local j = k + 1
  buf[#buf + 1] = "do\n" .. lookup_code(unit, node, k, lookup_of)
  buf[#buf + 1] = string.format(
    "if v%d ~= nil and v%d ~= false then\n"
      .. "local item%d, i%d, list%d = v%d, 1, type(v%d) == 'table'\n"
      .. "if list%d then item%d = v%d[1]; list%d = item%d ~= nil or next(v%d) == nil; if not list%d then item%d = v%d end end\n"
      .. "local d%d = d%d + 1\n"
      .. "while item%d ~= nil do\n"
      .. "local t%d = type(item%d) == 'table' and item%d or NO_NAMES\n"
      .. "stack[d%d], tables[d%d] = item%d, t%d\n",
    k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, j, k, k, j, k, k, j, j, k, j)
  emit_body(unit, node, j, open, lookup_of, buf)
  buf[#buf + 1] = string.format(
    "if not list%d then break end\n"
      .. "if n >= FLUSH_AT and out.flush then out.n = n; out.flush(out); n = out.n end\n"
      .. "i%d = i%d + 1; item%d = v%d[i%d]\n"
      .. "end\n"
      .. "stack[d%d], tables[d%d] = nil, nil\n"
      .. "end\nend\n",
    k, k, k, k, k, k, j, j)
end

-- {{^name}}: the body once, in this context, when the value is missing, false or an empty list.
local function emit_inverted(unit, node, k, open, lookup_of, buf)
  buf[#buf + 1] = "do\n" .. lookup_code(unit, node, k, lookup_of)
  buf[#buf + 1] = string.format(
    "if v%d == nil or v%d == false or (type(v%d) == 'table' and v%d[1] == nil and next(v%d) == nil) then\n",
    k, k, k, k, k)
  emit_body(unit, node, k, open, lookup_of, buf)
  buf[#buf + 1] = "end\nend\n"
end

function emit_nodes(unit, nodes, k, open, lookup_of, buf)
  for _, node in ipairs(nodes) do
    if type(node) == "string" then
      buf[#buf + 1] = "n = n + 1; out[n] = " .. q(node) .. "\n"
    elseif node.kind == "name" or node.kind == "&" then
      emit_name(unit, node, k, node.kind == "name", lookup_of, buf)
    elseif node.kind == "#" then
      emit_section(unit, node, k, open, lookup_of, buf)
    elseif node.kind == "^" then
      emit_inverted(unit, node, k, open, lookup_of, buf)
    elseif node.kind == ">" then
      local p = aux(unit, unit.partial_of(node))
      buf[#buf + 1] = string.format("out.n = n; A[%d](stack, d%d, env, out); n = out.n\n", p, k)
    end
  end
end

-- Adds a function for `nodes` to the unit; returns its index in F.
function compile.function_of(unit, nodes, lookup_of)
  local index = #unit.fns + 1
  unit.fns[index] = false -- reserved: bodies compiled inside come after it
  local buf = { "F[", tostring(index), "] = function(stack, top, env, out)\n",
                "local tables, n, memo, escape = stack.tables, out.n, env.escaped, env.escape\n",
                "local d1 = top\nlocal t1 = tables[d1]\n" }
  emit_nodes(unit, nodes, 1, 1, lookup_of, buf)
  buf[#buf + 1] = "out.n = n\nend\n"
  unit.fns[index] = table.concat(buf)
  return index
end

-- The step for a tree. ctx: { NULL, NO_NAMES, FLUSH_AT, to_text, lookup_of(node) -> closure,
-- partial_of(node) -> step, name (for the chunk's name) }.
function compile.tree(nodes, ctx)
  local unit = new_unit()
  unit.partial_of = ctx.partial_of
  compile.function_of(unit, nodes, ctx.lookup_of)
  local src = "local NULL, NO_NAMES, FLUSH_AT, to_text, A, type, next = ...\nlocal F = {}\n"
    .. table.concat(unit.fns) .. "return F[1]\n"
  local chunk, err = load(src, "=template " .. tostring(ctx.name or "?"), "t", {})
  if not chunk then error("mustache: compiling " .. tostring(ctx.name) .. ": " .. tostring(err), 0) end
  return chunk(ctx.NULL, ctx.NO_NAMES, ctx.FLUSH_AT, ctx.to_text, unit.aux, type, next)
end

return compile
