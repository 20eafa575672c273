/* test_lua_patterns.c — unit tests for lua_patterns.c. A differential test runs the same Lua
 * driver in two states, one with Lua 5.4's own string library and one whose string.find/match/
 * gmatch/gsub are ours, over generated and fixed cases, and compares every result and error
 * message; then the check function must stop a runaway match and leave the state usable.
 * PMB_PATTERN_CASES=N sets how many generated cases run (default 250000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/lua_patterns.h"

#define TEST_DEFAULT_CASES 250000

/* The driver: case(i) builds case i from seed i (pattern, subject, init, replacement), runs it
 * through the string library of its state and returns the case and its results as one line;
 * fixed(i) does the same for the i-th hand-written case, or returns nil past the last. It uses
 * no find/match/gmatch/gsub itself, so both states run it alike. */
static const char test_driver[] =
    "local R, pick = math.random, nil\n"
    "function pick(t) return t[R(#t)] end\n"
    "local SUBJ = {'a','a','a','b','b','c','(',')','[',']','-','%',' ','\\0','x','1','^','$'}\n"
    "local LIT = {'a','a','b','b','c',' ','x','\\0',']','^','1','=','\\255'}\n"
    "local SETCH = {'a','b','c','x','(',')','-','^','[','.','$','\\0','z'}\n"
    "local CLASSES = {'%a','%c','%d','%g','%l','%p','%s','%u','%w','%x','%A','%C','%D',\n"
    "  '%G','%L','%P','%S','%U','%W','%X','%z','%Z','%.','%%','%(','%)','%[','%]','%-',\n"
    "  '%*','%q','%^','%$','%\\0'}\n"
    "local function subject()\n"
    "  local t = {}\n"
    "  for i = 1, R(0, R(2) == 1 and 6 or 14) do t[i] = pick(SUBJ) end\n"
    "  return table.concat(t)\n"
    "end\n"
    "local function set()\n"
    "  local t = {'['}\n"
    "  if R(3) == 1 then t[#t + 1] = '^' end\n"
    "  if R(6) == 1 then t[#t + 1] = ']' end\n"
    "  for _ = 1, R(0, 3) do\n"
    "    local k = R(7)\n"
    "    if k <= 2 then t[#t + 1] = pick(SETCH)\n"
    "    elseif k == 3 then t[#t + 1] = pick(SETCH) .. '-' .. pick(SETCH)\n"
    "    elseif k == 4 then t[#t + 1] = pick(CLASSES)\n"
    "    elseif k == 5 then t[#t + 1] = '-'\n"
    "    elseif k == 6 then t[#t + 1] = '%]'\n"
    "    else t[#t + 1] = '%' .. pick(SETCH) end\n"
    "  end\n"
    "  if R(15) ~= 1 then t[#t + 1] = ']' end\n"
    "  if R(25) == 1 then t[#t + 1] = '%' end\n"
    "  return table.concat(t)\n"
    "end\n"
    "local function single()\n"
    "  local k = R(10)\n"
    "  if k <= 4 then return pick(LIT)\n"
    "  elseif k == 5 then return '.'\n"
    "  elseif k <= 7 then return pick(CLASSES)\n"
    "  else return set() end\n"
    "end\n"
    "local seq\n"
    "local function item(depth)\n"
    "  local k = R(22)\n"
    "  if k <= 10 then\n"
    "    local s = single()\n"
    "    if R(3) == 1 then s = s .. pick({'*', '+', '-', '?'}) end\n"
    "    return s\n"
    "  elseif k == 11 then return '()'\n"
    "  elseif k <= 14 then\n"
    "    if depth >= 3 then return 'a' end\n"
    "    return '(' .. seq(depth + 1) .. (R(10) == 1 and '' or ')')\n"
    "  elseif k == 15 then return '%' .. R(0, 9)\n"
    "  elseif k == 16 then return '%b' .. pick({'', pick(LIT), pick(SUBJ) .. pick(SUBJ),\n"
    "    '()', '()', 'ab', '[]'})\n"
    "  elseif k == 17 then return '%f' .. (R(8) == 1 and pick(LIT) or set())\n"
    "  elseif k == 18 then return pick({'$', '^', ')', '(', '*', '+', '?', '-', '%', '.-',\n"
    "    '.*', '%1*', '()()', '%f[%w]', '%f[^%z]', '%f[%z]'})\n"
    "  elseif k == 19 then return 'ab'\n"
    "  else return pick(LIT) end\n"
    "end\n"
    "function seq(depth)\n"
    "  local t = {}\n"
    "  for i = 1, R(0, depth == 0 and 5 or 3) do t[i] = item(depth) end\n"
    "  return table.concat(t)\n"
    "end\n"
    "local function pattern()\n"
    "  local k = R(60)\n"
    "  if k == 1 then return string.rep('()', R(30, 34)) end\n"
    "  if k == 2 then return string.rep('a?', R(190, 210)) end\n"
    "  if k == 3 then return string.rep('(', R(30, 34)) .. 'a' end\n"
    "  local p = seq(0)\n"
    "  if R(4) == 1 then p = '^' .. p end\n"
    "  if R(5) == 1 then p = p .. '$' end\n"
    "  if R(40) == 1 then p = p .. '%' end\n"
    "  return p\n"
    "end\n"
    "local INITS = {nil, nil, nil, nil, 0, 1, 2, 3, -1, -2, -3, -20, 5, 7, 12, 15, 16, 17,\n"
    "  100, math.mininteger, math.maxinteger, 2.0, 1.5, '2', 'x', true}\n"
    "local MAXN = {nil, nil, nil, 0, 1, 2, 3, -1, 100, 1.5, '1', math.mininteger, {}}\n"
    "local function ser(...)\n"
    "  local t = {}\n"
    "  for i = 1, select('#', ...) do\n"
    "    local v = select(i, ...)\n"
    "    local ty = type(v)\n"
    "    if ty == 'string' then t[i] = string.format('%q', v)\n"
    "    elseif ty == 'number' then t[i] = math.type(v) .. ':' .. string.format('%.17g', v)\n"
    "    elseif ty == 'boolean' or ty == 'nil' then t[i] = tostring(v)\n"
    "    else t[i] = ty end\n"
    "  end\n"
    "  return '#' .. select('#', ...) .. '{' .. table.concat(t, ',') .. '}'\n"
    "end\n"
    "local log = {}\n"
    "local function frepl(...)\n"
    "  log[#log + 1] = ser(...)\n"
    "  local a = ...\n"
    "  local k = select('#', ...) + (type(a) == 'string' and #a or tonumber(a) or 0)\n"
    "  k = k % 7\n"
    "  if k == 0 then return nil\n"
    "  elseif k == 1 then return false\n"
    "  elseif k == 2 then return '<' .. tostring(a) .. '>'\n"
    "  elseif k == 3 then return 42\n"
    "  elseif k == 4 then return {}\n"
    "  elseif k == 5 then return 0.5\n"
    "  else return a end\n"
    "end\n"
    "local TREPL = {a = 'A', b = false, ab = 7, c = {}, [1] = 'one', [2] = true,\n"
    "  aa = 'AA', [''] = 'E', ['('] = 2.5, x = 'X'}\n"
    "local function repl()\n"
    "  local k = R(14)\n"
    "  if k <= 6 then\n"
    "    local t = {}\n"
    "    for i = 1, R(0, 4) do\n"
    "      t[i] = pick({'x', 'yz', '%0', '%1', '%2', '%3', '%9', '%%', '%', '%a', '-', '%\\0'})\n"
    "    end\n"
    "    return table.concat(t)\n"
    "  elseif k == 7 then return pick({7, 1.5, -0.0})\n"
    "  elseif k <= 9 then return TREPL\n"
    "  elseif k <= 12 then return frepl\n"
    "  else return pick({true, false, nil}) end\n"
    "end\n"
    "local function call(f, ...) local r = table.pack(f(...)) return r end\n"
    "local METHOD = {\n"
    "  find = function(s, ...) local r = table.pack(s:find(...)) return r end,\n"
    "  match = function(s, ...) local r = table.pack(s:match(...)) return r end,\n"
    "  gmatch = function(s, ...) local r = table.pack(s:gmatch(...)) return r end,\n"
    "  gsub = function(s, ...) local r = table.pack(s:gsub(...)) return r end,\n"
    "}\n"
    "local function run(name, method, ...)\n"
    "  local ok, r\n"
    "  log = {}\n"
    "  if method then ok, r = pcall(METHOD[name], ...)\n"
    "  else ok, r = pcall(call, string[name], ...) end\n"
    "  if not ok then return 'E:' .. tostring(r) end\n"
    "  if name ~= 'gmatch' then\n"
    "    return ser(table.unpack(r, 1, r.n)) .. table.concat(log, ';')\n"
    "  end\n"
    "  local it, out, errs = r[1], {}, 0\n"
    "  for _ = 1, 30 do\n"
    "    local v = table.pack(pcall(it))\n"
    "    if not v[1] then\n"
    "      out[#out + 1] = 'E:' .. tostring(v[2])\n"
    "      errs = errs + 1\n"
    "      if errs == 3 then break end\n"
    "    else\n"
    "      out[#out + 1] = ser(table.unpack(v, 2, v.n))\n"
    "      if v.n == 1 then break end\n"
    "    end\n"
    "  end\n"
    "  return table.concat(out, ' ')\n"
    "end\n"
    "local NAMES = {'find', 'match', 'gmatch', 'gsub'}\n"
    "function case(i)\n"
    "  math.randomseed(i)\n"
    "  local name = pick(NAMES)\n"
    "  local s, p = subject(), pattern()\n"
    "  if p == string.rep('a?', #p // 2) then s = string.rep('a', R(0, 220)) end\n"
    "  local k = R(80)\n"
    "  if k == 1 then s = pick({12, 1.5, -3, 0x10}) elseif k == 2 then p = pick({2, 1.5, 1}) end\n"
    "  if k == 3 then s = pick({nil, {}, true}) elseif k == 4 then p = pick({nil, {}, false}) end\n"
    "  local method = type(s) == 'string' and R(4) == 1\n"
    "  local args = {s, p}\n"
    "  local n = 2\n"
    "  if name == 'gsub' then\n"
    "    args[3] = repl(); n = 3\n"
    "    if R(2) == 1 then args[4] = MAXN[R(#MAXN)]; n = 4 end\n"
    "  elseif R(3) ~= 1 then\n"
    "    args[3] = INITS[R(#INITS)]; n = 3\n"
    "    if name == 'find' and R(2) == 1 then args[4] = pick({true, false, 1, 'x'}); n = 4 end\n"
    "  end\n"
    "  local desc = name .. (method and ':' or '.') .. ser(table.unpack(args, 1, n))\n"
    "  return desc .. ' => ' .. run(name, method, table.unpack(args, 1, n))\n"
    "end\n"
    "local FIXED = {\n"
    "  {'find', 'hello world', 'o w'}, {'find', 'hello', 'l', -2}, {'find', 'hello', '', 6},\n"
    "  {'find', 'hello', '', 7}, {'find', 'hello', '', 0}, {'find', 'hello', 'h', -100},\n"
    "  {'find', '', ''}, {'find', '', '', 1}, {'find', '', '', 2}, {'match', '', '()'},\n"
    "  {'find', 'a.b', '.', 1, true}, {'find', 'a+b', '+', 1, true}, {'find', 'a\\0b', '\\0'},\n"
    "  {'find', 'a\\0b', '%z'}, {'find', 'a\\0b', '[\\0]'}, {'find', 'a\\0b', '\\0b$'},\n"
    "  {'match', 'THE (quick) fox', '%f[%a]%a+'}, {'match', 'THE (quick) fox', '%f[%a]%a+$'},\n"
    "  {'gmatch', 'THE (quick) fox', '%f[%a]%a+'}, {'gmatch', 'abc', '%f[%z]'},\n"
    "  {'gmatch', 'abc', '%f[%Z]'}, {'gmatch', 'abc', '%f[^%z]'}, {'find', 'x', '%f[%w]', 2},\n"
    "  {'match', 'f(a(b)c)d', '%b()'}, {'match', 'f(a(b)c', '%b()'}, {'match', '((', '%b()'},\n"
    "  {'match', 'abba', '%bab'}, {'match', 'aaa', '%baa'}, {'find', 'x', '%b'},\n"
    "  {'find', 'x', '%ba'}, {'find', '', '%bxy'}, {'match', 'abcabc', '(abc)%1'},\n"
    "  {'match', 'abcab', '(abc)%1'}, {'match', 'aa', '(a)%2'}, {'match', 'aa', '(a%1)'},\n"
    "  {'match', 'aa', '()%1'}, {'match', 'aa', '%0'}, {'match', 'hello', '()ll()'},\n"
    "  {'find', 'hello', '()ll()'}, {'gsub', 'hello', '()l', '%1'},\n"
    "  {'gsub', 'hello world', '%w+', '%0 %0'}, {'gsub', 'hello', '', '-'},\n"
    "  {'gsub', 'abc', '%w*', '-'}, {'gsub', 'abc', 'b*', '-'}, {'gsub', 'abc', '^', '>'},\n"
    "  {'gsub', 'abc', '$', '<'}, {'gsub', 'abc', '^b', '-'}, {'gsub', 'abc', '.', '%2'},\n"
    "  {'gsub', 'abc', '(.)', '%2'}, {'gsub', 'abc', '.', '%'}, {'gsub', 'abc', '.', '%x'},\n"
    "  {'gsub', 'abc', '.', {a = 1, b = true}}, {'gsub', 'abc', '.', {a = 1}},\n"
    "  {'gsub', 'abc', '.', 'x', 2}, {'gsub', 'abc', '.', 'x', 0}, {'gsub', 'abc', '.', 'x', -1},\n"
    "  {'gsub', 'abc', '[', 'x', 0}, {'gsub', 'abc', '(', 'x'}, {'gsub', 'abc', ')', 'x'},\n"
    "  {'gsub', 'abc', '%', 'x'}, {'gsub', 'abc', 'x*', '-'}, {'gsub', 'a b', '%s*', '_'},\n"
    "  {'gmatch', 'abc', 'x*'}, {'gmatch', 'a,b,,c', '([^,]*)'}, {'gmatch', 'abc', '.', 2},\n"
    "  {'gmatch', 'abc', '.', -1}, {'gmatch', 'abc', '.', 10}, {'gmatch', 'abc', '^a'},\n"
    "  {'gmatch', '^a^a', '^a'}, {'find', 'a$b', '$b'}, {'find', 'a$', 'a$'}, {'find', 'a^', "
    "'a^'},\n"
    "  {'find', 'ab', '[]'}, {'find', ']', '[]]'}, {'find', ']', '[^]]'}, {'find', 'b', '[^]]'},\n"
    "  {'find', '-', '[a-]'}, {'find', '-', '[-a]'}, {'find', 'b', '[a-c]'}, {'find', '%', "
    "'[%%]'},\n"
    "  {'find', 'x', '[%'}, {'find', 'x', '[a'}, {'find', 'x', '[^'}, {'find', 'x', '%'},\n"
    "  {'find', 'b', 'a['}, {'find', 'x', '%fa'}, {'find', 'x', '%f'}, {'find', 'x', '(()'},\n"
    "  {'find', string.rep('a', 300), string.rep('a?', 199)},\n"
    "  {'find', string.rep('a', 300), string.rep('a?', 200)},\n"
    "  {'find', string.rep('a', 300), string.rep('a?', 201)},\n"
    "  {'find', 'a', string.rep('()', 32)}, {'find', 'a', string.rep('()', 33)},\n"
    "  {'match', 'a', string.rep('(', 33) .. 'a'}, {'gsub', 'abc', '%w', '%1'},\n"
    "  {'gsub', 'abc', '(%w)', tostring}, {'gsub', 'abc', '%w', 1.5}, {'gsub', 'abc', '%w', nil},\n"
    "  {'gsub', 'abc', '%w', true}, {'gsub', 'abc'}, {'find', 'abc'}, {'find'},\n"
    "  {'find', 'abc', 'b', 1.5}, {'find', 'abc', 'b', '1'}, {'find', 123, 2},\n"
    "  {'gsub', 123, 2, 9}, {'match', 1e15, '%d+'}, {'match', 'x', 'x', {}},\n"
    "  {'gsub', 'x', 'x', 'y', {}}, {'gsub', 'x', 'x', {}, 'z'},\n"
    "}\n"
    "function fixed(i)\n"
    "  local c = FIXED[i]\n"
    "  if c == nil then return nil end\n"
    "  local n = 0\n"
    "  for k in pairs(c) do if k > n then n = k end end\n"
    "  local desc = 'fixed ' .. i .. ' ' .. c[1] .. ser(table.unpack(c, 2, n))\n"
    "  return desc .. ' => ' .. run(c[1], false, table.unpack(c, 2, n))\n"
    "end\n"
    /* a gmatch iterator whose match raised keeps its depth counter short, as in Lua 5.4.4 */
    "function gmatch_depth()\n"
    "  local out = {}\n"
    "  local it = string.gmatch(string.rep('a', 250), string.rep('a?', 240))\n"
    "  for _ = 1, 3 do out[#out + 1] = ser(pcall(it)) end\n"
    "  it = string.gmatch('aaa', string.rep('(', 31) .. 'a%' .. ')')\n"
    "  for _ = 1, 3 do out[#out + 1] = ser(pcall(it)) end\n"
    "  return table.concat(out, ' ')\n"
    "end\n";

static int test_check_calls;

static void test_check_count(lua_State *L)
{
    test_check_calls++;
    /* the matcher must drop whatever the check leaves on the stack */
    lua_pushinteger(L, test_check_calls);
    lua_pushnil(L);
}

static lua_State *test_state(int ours)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    if (ours) {
        lua_getglobal(L, "string");
        lua_patterns_register(L);
        lua_pop(L, 1);
    }
    if (luaL_loadbuffer(L, test_driver, sizeof test_driver - 1, "=driver") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK)
        fail_msg("driver: %s", lua_tostring(L, -1));
    return L;
}

/* Calls global fn(i) in L; returns its string result (owned by L, valid until the next call) or
 * NULL for nil. */
static const char *test_run(lua_State *L, const char *fn, long i)
{
    lua_settop(L, 0);
    lua_getglobal(L, fn);
    lua_pushinteger(L, i);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        fail_msg("%s(%ld) raised: %s", fn, i, lua_tostring(L, -1));
    if (lua_isnil(L, -1))
        return NULL;
    return lua_tostring(L, -1);
}

static void test_same(const char *what, long i, const char *want, const char *got)
{
    if (want == NULL || got == NULL || strcmp(want, got) != 0)
        fail_msg("%s %ld differs:\n lua:  %s\n ours: %s", what, i, want ? want : "(nil)",
                 got ? got : "(nil)");
}

static void test_differential(void **state)
{
    const char *env = getenv("PMB_PATTERN_CASES");
    long cases = env != NULL ? atol(env) : TEST_DEFAULT_CASES;
    lua_State *ref = test_state(0);
    lua_State *ours = test_state(1);
    long fixed = 0;
    (void)state;
    test_check_calls = 0;
    lua_patterns_set_check(test_check_count);
    for (long i = 1;; i++) {
        const char *want = test_run(ref, "fixed", i);
        const char *got = test_run(ours, "fixed", i);
        if (want == NULL && got == NULL)
            break;
        test_same("fixed case", i, want, got);
        fixed++;
    }
    test_same("gmatch_depth", 0, test_run(ref, "gmatch_depth", 0),
              test_run(ours, "gmatch_depth", 0));
    for (long i = 1; i <= cases; i++)
        test_same("case", i, test_run(ref, "case", i), test_run(ours, "case", i));
    printf("differential: %ld fixed + %ld generated cases identical; %d checks\n", fixed, cases,
           test_check_calls);
    assert_true(fixed > 100);
    assert_true(test_check_calls > 0);
    lua_patterns_set_check(NULL);
    lua_close(ref);
    lua_close(ours);
}

#define TEST_KILL_AFTER 50

static void test_check_kill(lua_State *L)
{
    test_check_calls++;
    if (test_check_calls >= TEST_KILL_AFTER)
        luaL_error(L, "budget exceeded");
}

static double test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs chunk in L expecting it to fail with the check's error, promptly. */
static void test_killed(lua_State *L, const char *chunk)
{
    double t0 = test_now();
    test_check_calls = 0;
    assert_int_not_equal(luaL_dostring(L, chunk), LUA_OK);
    assert_non_null(strstr(lua_tostring(L, -1), "budget exceeded"));
    assert_int_equal(test_check_calls, TEST_KILL_AFTER);
    assert_true(test_now() - t0 < 2.0);
    lua_pop(L, 1);
}

static void test_runaway_is_stopped(void **state)
{
    lua_State *L = test_state(1);
    (void)state;
    lua_patterns_set_check(test_check_kill);
    test_killed(L, "return string.find(string.rep('a', 1e5), '.-.-.-.-b')");
    test_killed(L, "return ('x'):rep(1e5):gsub('.-.-.-.-y', 'z')");
    test_killed(L, "local s = string.rep('ab', 5e4) .. ('x'):rep(1e5)\n"
                   "return s:gsub('(b)', '%1%1'):gsub('.-.-.-.-y', '%0')");
    test_killed(L, "return ('a'):rep(1e5):gsub('a', function(c)\n"
                   "  return c:find('.-.-.-.-b', 1) end)");
    test_killed(L, "for w in ('a'):rep(1e5):gmatch('.-.-.-.-b') do end");
    test_killed(L, "return ('('):rep(1e5):find('%b()')");
    /* the state goes on working, with or without a check */
    lua_patterns_set_check(NULL);
    assert_int_equal(luaL_dostring(L, "local s = ('a'):rep(1000) .. 'b'\n"
                                      "assert(select(2, s:find('.-.-b')) == 1001)\n"
                                      "assert(select(2, s:gsub('a', 'x')) == 1000)\n"
                                      "local n = 0\n"
                                      "for a in s:gmatch('a') do n = n + 1 end\n"
                                      "assert(n == 1000)\n"
                                      "assert(('k=v'):match('(%w+)=(%w+)') == 'k')"),
                     LUA_OK);
    lua_close(L);
}

/* Many short calls add up: the unit count carries from one call to the next. */
static void test_short_calls_reach_the_check(void **state)
{
    lua_State *L = test_state(1);
    (void)state;
    test_check_calls = 0;
    lua_patterns_set_check(test_check_count);
    assert_int_equal(luaL_dostring(L, "for i = 1, 20000 do string.find('abcdef', 'c.-f') end"),
                     LUA_OK);
    assert_true(test_check_calls > 0);
    lua_patterns_set_check(NULL);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_runaway_is_stopped),
        cmocka_unit_test(test_short_calls_reach_the_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
