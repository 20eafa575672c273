/* patterns_bench.c — times core/host/lua_patterns.c against Lua 5.4's own string.find/match/
 * gmatch/gsub on ~1 MB of chat-like text (best of 5 for each), and prints both and the ratio.
 * Figures only; asserts nothing but that both give the same results. Build and run from the
 * repository root:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Icore $(pkg-config --cflags lua5.4) -o build/patterns_bench \
 *      bench/patterns_bench.c core/host/lua_patterns.c $(pkg-config --libs lua5.4) && \
 *   build/patterns_bench */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>

#include "host/lua_patterns.h"

/* Each case is a function of (text, lib) run with lib = string and lib = ours; the chunk prints
 * one line per case. */
static const char bench_chunk[] =
    "local clock = os.clock\n"
    "local parts, n = {}, 0\n"
    "local words = {'deploy', 'rollback', 'the', 'db-01', 'latency', 'p99', '503', 'at',\n"
    "  '12:04:33', 'restarted', '*urgent*', '<@U024BE7LH|alice>', '<#C1234>', 'and', 'ok'}\n"
    "math.randomseed(1)\n"
    "while n < 1048576 do\n"
    "  local w = words[math.random(#words)]\n"
    "  local sep = math.random(12) == 1 and '\\n' or (math.random(6) == 1 and '   ' or ' ')\n"
    "  parts[#parts + 1] = w .. sep\n"
    "  n = n + #w + #sep\n"
    "end\n"
    "local text = table.concat(parts)\n"
    "local function count(it) local k = 0 for _ in it do k = k + 1 end return k end\n"
    "local cases = {\n"
    "  {'find plain (absent)', function(s, L) return L.find(s, 'needle-not-here', 1, true) end},\n"
    "  {'find no specials', function(s, L) return L.find(s, 'rollback restarted 503 zz') end},\n"
    "  {'find %d+:%d+:%d+ x500', function(s, L)\n"
    "    local a, p = 0, 1\n"
    "    for _ = 1, 500 do local i, j = L.find(s, '%d+:%d+:%d+', p) a = a + i p = j + 1 end\n"
    "    return a end},\n"
    "  {'gsub %s+', function(s, L) return select(2, L.gsub(s, '%s+', ' ')) end},\n"
    "  {'gmatch <([^>|]*)|?([^>]*)>', function(s, L)\n"
    "    return count(L.gmatch(s, '<([^>|]*)|?([^>]*)>')) end},\n"
    "  {'gsub %*[^*]+%*', function(s, L) return select(2, L.gsub(s, '%*[^*]+%*', '<b>%0</b>')) "
    "end},\n"
    "  {'gmatch [^\\\\n]+', function(s, L) return count(L.gmatch(s, '[^\\n]+')) end},\n"
    "  {'gmatch %a+', function(s, L) return count(L.gmatch(s, '%a+')) end},\n"
    "  {'gsub %w+ table', function(s, L)\n"
    "    return select(2, L.gsub(s, '%w+', {the = 'THE', ok = false})) end},\n"
    "  {'gsub (%w+)-(%d+) fn', function(s, L)\n"
    "    return select(2, L.gsub(s, '(%w+)-(%d+)', function(a, b) return b .. a end)) end},\n"
    "  {'match per line x20000', function(s, L)\n"
    "    local k = 0\n"
    "    for i = 1, 20000 do\n"
    "      local a, b = L.match('12:04:33 deploy db-01 latency p99', '^(%S+)%s+(.-)%s*$')\n"
    "      if L.find('<@U024BE7LH|alice> said', '^<@(%w+)') then k = k + #a + #b end\n"
    "    end\n"
    "    return k end},\n"
    "}\n"
    "local function best(f, L)\n"
    "  local t, r = math.huge, nil\n"
    "  for _ = 1, 5 do\n"
    "    local t0 = clock()\n"
    "    r = f(text, L)\n"
    "    t = math.min(t, clock() - t0)\n"
    "  end\n"
    "  return t, r\n"
    "end\n"
    "print(string.format('text: %d bytes; best of 5 runs each', #text))\n"
    "print(string.format('%-34s %10s %10s %7s', 'case', 'lua ms', 'ours ms', 'ratio'))\n"
    "local total_lua, total_ours = 0, 0\n"
    "for _, c in ipairs(cases) do\n"
    "  local tl, rl = best(c[2], string)\n"
    "  local to, ro = best(c[2], ours)\n"
    "  assert(rl == ro, c[1] .. ': results differ')\n"
    "  total_lua, total_ours = total_lua + tl, total_ours + to\n"
    "  print(string.format('%-34s %10.2f %10.2f %6.2fx', c[1], tl * 1e3, to * 1e3, to / tl))\n"
    "end\n"
    "print(string.format('%-34s %10.2f %10.2f %6.2fx', 'total', total_lua * 1e3,\n"
    "  total_ours * 1e3, total_ours / total_lua))\n";

static void bench_check(lua_State *L)
{
    (void)L; /* the cost of a call, as the sandbox's budget check would have */
}

int main(void)
{
    lua_State *L = luaL_newstate();
    int rc = 0;
    if (L == NULL)
        return 1;
    luaL_openlibs(L);
    lua_newtable(L);
    lua_patterns_register(L);
    lua_setglobal(L, "ours");
    lua_patterns_set_check(bench_check);
    if (luaL_dostring(L, bench_chunk) != LUA_OK) {
        fprintf(stderr, "patterns_bench: %s\n", lua_tostring(L, -1));
        rc = 1;
    }
    lua_close(L);
    return rc;
}
