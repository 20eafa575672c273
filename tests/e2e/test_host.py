"""The Lua host end to end: the real binary against the fake Slack, with test commands written into
a temp copy of scripts/ (harness scripts_copy()).

Covers core/host.c, core/primitives_io.c, core/budget.c, core/sandbox.c and scripts/lib/router.lua from
outside: a command that raises, loops or eats memory ends with a reply in its thread while the bot
keeps acking; SIGHUP swaps in changed commands on the same WebSocket; broken reloads keep the old
generation and log file:line; 20 SIGHUPs during a stream of events; `check` exit codes; writes
outside the data dir refused.
"""
import os
import re
import signal
import subprocess
import time

from harness import BotTestCase, CommandBotTestCase, bot_binary

CHANNEL = "C0HOST"
THREAD = "1700000000.000100"
REACTION = {"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
            "item": {"type": "message", "channel": CHANNEL, "ts": THREAD}, "event_ts": "1700000001.000100"}

HELLO = """-- test command: answers hello-%(version)s
return {
  name = "hello",
  help = "hello — test",
  run = function(ctx, args) ctx.reply("hello-%(version)s " .. args) end,
}
"""

BOOM = """return { name = "boom", help = "boom — raises",
  run = function(ctx) local t = nil; return t.field end }
"""

# pcall inside the loop: a budget kill must not be catchable
PROBE = r"""-- reports what a script can reach
local NAMES = { "os.execute", "os.exit", "os.remove", "os.rename", "os.getenv", "io", "io.popen",
  "dofile", "loadfile", "debug.sethook", "debug.getinfo", "package.loadlib", "os.time", "os.date",
  "string.format", "table.concat", "debug.traceback", "require", "load" }
return { name = "probe", help = "probe — what the sandbox offers", run = function(ctx)
  local parts = { "probe" }
  for _, name in ipairs(NAMES) do
    local v = _G
    for key in name:gmatch("[^.]+") do
      -- the global table is strict: an absent name raises
      local ok, x = pcall(function() return v[key] end)
      if type(v) == "table" and ok then v = x else v = nil end
    end
    parts[#parts + 1] = name .. "=" .. type(v)
  end
  parts[#parts + 1] = "binary_chunk=" .. (pcall(require, "lib.binary_module") and "allowed" or "refused")
  -- load: text only, whatever the mode asks; an env given is the chunk's _ENV
  local dumped = load(string.dump(function() return 1 end), "=dumped", "b")
  parts[#parts + 1] = "load_binary=" .. (dumped and "allowed" or "refused")
  local text = load("return x + 1", "=text", "t", { x = 41 })
  parts[#parts + 1] = "load_text=" .. tostring(text and text())
  local _, syntax = load("return +", "=bad")
  parts[#parts + 1] = "load_error=" .. tostring(syntax):gsub("%s", "_")
  parts[#parts + 1] = "require_io=" .. (pcall(require, "io") and "allowed" or "refused")
  parts[#parts + 1] = "require_outside=" .. (pcall(require, "../../etc/passwd") and "allowed" or "refused")
  parts[#parts + 1] = "proc_environ=" .. (require("host").read_file("/proc/self/environ") and "allowed" or "refused")
  -- host.collect_garbage: a full collection, so garbage only weakly held is gone after it
  local weak = setmetatable({}, { __mode = "v" })
  weak[1] = {}
  require("host").collect_garbage()
  parts[#parts + 1] = "collect_garbage=" .. (weak[1] == nil and "freed" or "kept")
  -- writer:write(chunk, i, j) writes chunk:sub(i, j), whatever i and j
  local host = require("host")
  local path = host.config().data_dir .. "/probe-sub.txt"
  local w = host.file_writer(path)
  local cases = { { 2, -2 }, { 0 }, { -100, 100 }, { 4, 3 }, { -2 }, { 3, 3 }, { 7 }, { 1, -7 }, { -6, 1 } }
  local want = {}
  for _, c in ipairs(cases) do
    w:write("abcdef", c[1], c[2])
    want[#want + 1] = ("abcdef"):sub(c[1], c[2] or -1)
  end
  w:close()
  local got = host.read_file(path)
  parts[#parts + 1] = "file_writer_sub=" .. (got == table.concat(want) and "same" or ("differs:" .. tostring(got)))
  ctx.reply(table.concat(parts, " "))
end }
"""

# a zip writer dropped the moment its close has returned: the writer's memory must not be read by
# the close's completion after the script ran (a use-after-free under the ASan build)
ZIPDROP = r"""local host = require "host"
return { name = "zipdrop", help = "zipdrop — closes a zip writer, then drops it", run = function(ctx)
  local dir = host.config().data_dir .. "/zipdrop"
  host.write_file(dir .. "/a.txt", "hello")
  local results = {}
  for round = 1, 3 do
    local w = host.zip_writer(dir)
    w:add("a.txt")
    local ok, err = w:close(dir .. "/out" .. round .. ".zip")
    if round == 1 then w:abort() elseif round == 2 then w = nil; host.collect_garbage() end
    results[#results + 1] = tostring(ok or err)
  end
  ctx.reply("zipdrop " .. table.concat(results, " ") .. " " .. tostring(host.file_size(dir .. "/out3.zip") ~= nil))
end }
"""

HIJACK = r"""local host = require "host"
return { name = "hijack", help = "hijack — resumes its own task", run = function(ctx)
  local parent = coroutine.running()
  host.all({ function()
    host.sleep(0.01)
    local ok, err = pcall(coroutine.resume, parent)
    pcall(coroutine.close, parent)
    ctx.reply("resume: " .. tostring(ok) .. " " .. tostring(err))
  end })
  host.sleep(0.05)
  host.sleep(0.05)
  ctx.reply("still here after 2 sleeps")
end }
"""

NAP = r"""local host = require "host"
return { name = "nap", help = "nap <n> — sleeps, then answers", run = function(ctx, args)
  host.sleep(0.5)
  ctx.reply("napped " .. args)
end }
"""

SPIN = """return { name = "spin", help = "spin — loops",
  run = function(ctx)
    local n = 0
    while true do pcall(function() while true do n = n + 1 end end) end
  end }
"""

EAT = """return { name = "eat", help = "eat — allocates without end",
  run = function(ctx)
    local keep, i = {}, 0
    while true do
      i = i + 1
      pcall(function() keep[i] = string.rep("x", 1024 * 1024) .. i end)
    end
  end }
"""

ESCAPE = """local host = require "host"
return { name = "escape", help = "escape — tries to write outside the data dir",
  run = function(ctx, args)
    local results = {}
    local function try(label, path)
      local ok, err = pcall(host.write_file, path, "x")
      results[#results + 1] = label .. "=" .. (ok and "written" or "refused")
    end
    try("dotdot", "../outside-dotdot.txt")
    try("absolute", args .. "/outside-abs.txt")
    try("symlink", "link/outside-link.txt")
    try("inside", "ok/inside.txt")
    ctx.reply(table.concat(results, " "))
  end }
"""


class HostTest(CommandBotTestCase):
    CHANNEL, THREAD = CHANNEL, THREAD

    def setUp(self):
        super().setUp()
        self.fs.add_channel(CHANNEL, "host-tests")

    @staticmethod
    def rss_kb(pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    # --- help ---------------------------------------------------------------------------------
    def test_help_lists_every_shipped_command_with_arguments_escaped(self):
        self.bot_with({})
        self.ask("help")
        post = self.wait_post(r"^Commands")
        for line in ("autopsy this —", "statusupdate &lt;text&gt; —", "incident start &lt;title&gt; —",
                     "incident resolve [text] —", "help —"):
            self.assertIn(line, post["text"])
        # a raw "<text>" would reach Slack as a broken link
        self.assertNotIn("<text>", post["text"])

    # --- the sandbox -----------------------------------------------------------------------
    def test_scripts_see_a_curated_environment(self):
        bot = self.bot_with({"probe": PROBE}, start=False)
        # a precompiled (binary) chunk where a module is expected: never loaded
        with open(os.path.join(bot.scripts_dir, "lib", "binary_module.lua"), "wb") as f:
            f.write(b"\x1bLua\x54\x00" + b"\x00" * 32)
        bot.start()
        self.ask("probe")
        post = self.wait_post(r"^probe ")
        seen = dict(kv.split("=", 1) for kv in post["text"].split()[1:])
        for name in ("os.execute", "os.exit", "os.remove", "os.rename", "os.getenv", "io",
                     "io.popen", "dofile", "loadfile", "debug.sethook", "debug.getinfo",
                     "package.loadlib"):
            self.assertEqual("nil", seen[name], name + " must not be reachable from a script")
        for name in ("os.time", "os.date", "string.format", "table.concat", "debug.traceback",
                     "require", "load"):
            self.assertEqual("function", seen[name], name + " belongs to the safe library")
        self.assertEqual("refused", seen["binary_chunk"])
        # load takes text only (a precompiled chunk is refused even when "b" is asked for)
        self.assertEqual("refused", seen["load_binary"])
        self.assertEqual("42", seen["load_text"])
        self.assertTrue(seen["load_error"].startswith("bad:1:"), seen["load_error"])
        self.assertEqual("refused", seen["require_io"])
        self.assertEqual("refused", seen["require_outside"])
        # the environment holds the tokens
        self.assertEqual("refused", seen["proc_environ"])
        # host.collect_garbage runs a whole cycle (a report calls it before it renders)
        self.assertEqual("freed", seen["collect_garbage"])
        # writer:write(chunk, i, j) is chunk:sub(i, j) (lib/bundle.lua writes JSON batches so)
        self.assertEqual("same", seen["file_writer_sub"])

    def test_a_script_cannot_resume_a_coroutine_the_host_runs(self):
        # resuming a task that waits on I/O would run its continuation early and free what the
        # pending timer still points at (a use-after-free under the ASan build)
        self.bot_with({"hijack": HIJACK})
        self.ask("hijack")
        post = self.wait_post(r"^resume: ")
        self.assertIn("resume: false", post["text"])
        self.assertIn("only the host resumes it", post["text"])
        self.wait_post(r"^still here after 2 sleeps$")
        self.ask("help")  # and the bot goes on
        self.wait_post(r"^Commands")

    def test_a_zip_writer_dropped_right_after_its_close(self):
        # aborted, or collected, while the close's completion is still on the C stack that
        # resumed the script: the writer is freed then, and nothing may read it after
        self.bot_with({"zipdrop": ZIPDROP})
        self.ask("zipdrop")
        self.wait_post(r"^zipdrop true true true true$")
        self.ask("help")  # and the bot goes on
        self.wait_post(r"^Commands")

    def test_a_burst_beyond_the_running_cap_waits_and_is_all_handled(self):
        # 64 coroutines at most; the other envelopes wait in order (acked at once regardless)
        bot = self.bot_with({"nap": NAP})
        eids = [self.ask("nap %d" % i) for i in range(90)]
        for eid in eids:
            self.wait_ack(eid)
        bot.wait_log(r'msg="scripts busy: envelopes wait for a free coroutine"')
        self.fs.wait_for(lambda: len([p for p in self.fs.posts(channel=CHANNEL, thread_ts=THREAD)
                                      if p["text"].startswith("napped ")]) == 90,
                         timeout=20, what="90 naps answered")
        answered = sorted(int(p["text"].split()[1]) for p in self.fs.posts(channel=CHANNEL, thread_ts=THREAD)
                          if p["text"].startswith("napped "))
        self.assertEqual(list(range(90)), answered)

    # --- failures of a command --------------------------------------------------------------
    def test_error_in_command_replies_in_thread(self):
        bot = self.bot_with({"boom": BOOM})
        self.ask("boom")
        post = self.wait_post(r"`boom` failed")
        self.assertIn("attempt to index a nil value", post["text"])
        self.assertRegex(post["text"], r"boom\.lua:2")
        bot.wait_log(r'msg="command failed".*traceback=')
        # the bot goes on
        self.ask("help")
        self.wait_post(r"hello — test|boom — raises")

    def test_cpu_budget_kills_loop_and_acks_continue(self):
        budget = 0.5
        self.bot_with({"spin": SPIN}, {"budget": {"cpu_seconds": budget}})
        spin_env = self.ask("spin")
        spin_ack = self.wait_ack(spin_env)
        # the ack of the command itself is not held back by the script
        self.assertLess(spin_ack.time_acked - spin_ack.time_sent, 0.1)
        time.sleep(0.1)
        other = self.fs.send_event(dict(REACTION))  # arrives while the script spins
        post = self.wait_post(r"`spin` failed: cpu budget exceeded", timeout=10)
        ack = self.wait_ack(other)
        fired = spin_ack.time_acked + budget  # the script started after its ack went out
        self.assertLess(ack.time_acked - fired, 0.1,
                        "the next event was acked %.3f s after the budget fired" % (ack.time_acked - fired))
        self.assertGreater(post["time"], fired - 0.05)
        # the generation still works
        self.ask("help")
        self.wait_post(r"spin — loops")

    def test_memory_cap_kills_allocator_and_generation_stays_usable(self):
        bot = self.bot_with({"eat": EAT}, {"budget": {"memory_mb": 24, "cpu_seconds": 10}})
        eat_env = self.ask("eat")
        self.wait_ack(eat_env)
        other = self.fs.send_event(dict(REACTION))
        post = self.wait_post(r"`eat` failed: memory cap exceeded", timeout=20)
        ack = self.wait_ack(other)
        self.assertLess(ack.time_acked, post["time"] + 0.1)
        bot.wait_log(r'msg="command failed".*memory cap exceeded')
        n = len(self.fs.posts(channel=CHANNEL, thread_ts=THREAD))
        self.ask("help")
        self.wait_post(r"eat — allocates", after=n)
        # and once more: memory was given back after the kill
        n = len(self.fs.posts(channel=CHANNEL, thread_ts=THREAD))
        self.ask("eat")
        self.wait_post(r"`eat` failed: memory cap exceeded", timeout=20, after=n)

    # --- reloads ------------------------------------------------------------------------------
    def test_reload_changes_command_on_same_connection(self):
        bot = self.bot_with({"hello": HELLO % {"version": "v1"}})
        self.ask("hello there")
        self.wait_post(r"^hello-v1 there$")
        self.assertEqual(self.fs.connect_count, 1)
        self.write_command(bot.scripts_dir, "hello", HELLO % {"version": "v2"})
        line = self.reload(bot).line
        self.assertRegex(line, r"generation=2\b")
        self.assertRegex(line, r"\bms=\d")
        self.ask("hello again")
        self.wait_post(r"^hello-v2 again$")
        self.assertEqual(self.fs.connect_count, 1)
        self.assertEqual(len(self.fs.open_connections()), 1)
        # a new command file is a new command after SIGHUP
        self.write_command(bot.scripts_dir, "boom", BOOM)
        self.reload(bot)
        self.ask("boom")
        self.wait_post(r"`boom` failed")

    def test_reload_with_syntax_error_keeps_old_generation(self):
        bot = self.bot_with({"hello": HELLO % {"version": "v1"}}, {"admin_channel": "C0ADMIN"})
        self.fs.add_channel("C0ADMIN", "admins")
        self.write_command(bot.scripts_dir, "hello", "return { name = 'hello', help = 'x', run = function() end\n")
        line = self.reload(bot, expect="failed").line
        self.assertRegex(line, r"commands/hello\.lua:2:")
        self.ask("hello still")
        self.wait_post(r"^hello-v1 still$")
        admin = self.fs.wait_for(lambda: self.fs.posts(channel="C0ADMIN"), what="the admin post")
        self.assertIn("reload failed", admin[0]["text"])
        self.assertIn("hello.lua:2", admin[0]["text"])
        self.assertNotRegex(bot.log_text(), r'msg="reload ok"')

    def test_reload_with_runtime_error_at_top_level_keeps_old_generation(self):
        bot = self.bot_with({"hello": HELLO % {"version": "v1"}})
        self.write_command(bot.scripts_dir, "hello", "local x = 1\nerror('top level broke')\n")
        line = self.reload(bot, expect="failed").line
        self.assertRegex(line, r"commands/hello\.lua:2: top level broke")
        self.ask("hello still")
        self.wait_post(r"^hello-v1 still$")
        # fixing the file makes the next reload succeed as generation 2
        self.write_command(bot.scripts_dir, "hello", HELLO % {"version": "v3"})
        self.assertRegex(self.reload(bot).line, r"generation=2\b")
        self.ask("hello fixed")
        self.wait_post(r"^hello-v3 fixed$")

    def sighups_during_events(self, bot, batch, n_events=60, every=3):
        """Send n_events `hello` mentions with a SIGHUP every `every` events; check each is acked
        once and answered once."""
        envs = []
        for i in range(n_events):
            envs.append(self.ask("hello b%d-%d" % (batch, i)))
            if i % every == 0:
                bot.send_signal(signal.SIGHUP)
            time.sleep(0.03)
        for e in envs:
            self.wait_ack(e, timeout=10)
        want = ["hello-v1 b%d-%d" % (batch, i) for i in range(n_events)]

        def all_answered():
            texts = [p["text"] for p in self.fs.posts(channel=CHANNEL, thread_ts=THREAD)]
            return texts if all(w in texts for w in want) else None
        texts = self.fs.wait_for(all_answered, timeout=30, what="%d answers" % n_events)
        for w in want:
            self.assertEqual(texts.count(w), 1, "%r answered once" % w)
        for e in envs:
            self.assertEqual(sum(1 for a in self.fs.acks if a.envelope_id == e), 1)

    def reloads_asked(self, bot):
        """How many reloads the SIGHUPs sent so far asked for (called once every event sent with
        them was answered: the signals were handled long before). A SIGHUP that comes while a
        reload still waits for the script loop is part of that reload (one reload node), and the
        kernel merges a SIGHUP sent while the previous one is still pending: on a loaded machine
        20 SIGHUPs can be fewer reloads."""
        return len(re.findall(r'msg="SIGHUP: reloading"', bot.log_text()))

    def test_twenty_sighups_during_event_stream(self):
        bot = self.bot_with({"hello": HELLO % {"version": "v1"}})
        self.ask("hello warm")
        self.wait_post(r"^hello-v1 warm$")
        rss_start = self.rss_kb(bot.pid)
        self.sighups_during_events(bot, 1)
        reloads = self.reloads_asked(bot)
        self.assertGreaterEqual(reloads, 10, "most of 20 SIGHUPs 90 ms apart are reloads of their own")
        bot.wait_log(r'msg="reload ok" generation=%d\b' % (1 + reloads), timeout=20)
        rss_first = self.rss_kb(bot.pid)
        self.sighups_during_events(bot, 2)
        reloads = self.reloads_asked(bot)
        bot.wait_log(r'msg="reload ok" generation=%d\b' % (1 + reloads), timeout=20)
        rss_second = self.rss_kb(bot.pid)
        self.assertEqual(self.fs.connect_count, 1)
        self.assertTrue(bot.running())
        # old generations were closed once their coroutines ended
        self.assertGreaterEqual(len(re.findall(r'msg="generation closed"', bot.log_text())), reloads - 1)
        if "asan" not in os.path.basename(bot.binary):  # ASan's quarantine keeps freed memory
            self.assertLess(rss_first - rss_start, 24 * 1024,
                            "RSS grew from %d kB to %d kB over 20 reloads" % (rss_start, rss_first))
            self.assertLess(rss_second - rss_first, 8 * 1024,
                            "RSS grew again from %d kB to %d kB over 20 more reloads" % (rss_first, rss_second))

    def reply_matching(self, name, script, pattern):
        """Run the command `name` (its script) and return the match of its reply against pattern
        (the reply's first word is the pattern's)."""
        self.bot_with({name: script})
        self.ask(name)
        post = self.wait_post(r"^" + pattern.lstrip("^").split(" ")[0] + " ")
        m = re.match(pattern, post["text"])
        self.assertIsNotNone(m, post["text"])
        return m

    def sigterm_ends_a_waiting_command(self, wait_lua):
        """A command that replies "waiting", then waits (wait_lua), is ended by SIGTERM within the
        grace: exit 0, the drain said so, the command never went on."""
        waiter = ('local host = require "host"\n'
                  'return { name = "waiter", help = "waiter — waits", run = function(ctx)\n'
                  '  ctx.reply("waiting")\n  ' + wait_lua + '\n  ctx.reply("woke up")\nend }\n')
        bot = self.bot_with({"waiter": waiter})
        self.ask("waiter")
        self.wait_post(r"^waiting$")
        started = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        self.assertEqual(bot.wait(timeout=20), 0)
        self.assertLess(time.monotonic() - started, 15)
        self.assertRegex(bot.log_text(), r"ending scripts still running")
        self.assertFalse(any(p["text"] == "woke up" for p in self.fs.posts()))

    def test_sigterm_ends_sleeping_command_within_grace(self):
        self.sigterm_ends_a_waiting_command("host.sleep(60)")

    def test_all_and_sleep_run_children_concurrently(self):
        par = ('local host = require "host"\n'
               'return { name = "par", help = "par — host.all", run = function(ctx)\n'
               '  local t0 = host.monotonic()\n'
               '  local fns = {}\n'
               '  for i = 1, 5 do fns[i] = function() host.sleep(0.4) return i, i * 10 end end\n'
               '  fns[6] = function() error("child failed") end\n'
               '  local r = host.all(fns)\n'
               '  local parts = {}\n'
               '  for i = 1, 5 do parts[#parts + 1] = r[i].value .. "/" .. r[i].err end\n'
               '  ctx.reply(string.format("all %s err=%s ok6=%s took=%.1f", table.concat(parts, ","),\n'
               '    tostring(r[6].error):match("child failed") or "?", tostring(r[6].ok), host.monotonic() - t0))\n'
               'end }\n')
        m = self.reply_matching("par", par, r"^all 1/10,2/20,3/30,4/40,5/50 err=child failed ok6=false took=([\d.]+)$")
        self.assertLess(float(m.group(1)), 1.5)  # five 0.4 s sleeps at once, not one after another

    def test_signal_wakes_the_coroutines_waiting_on_it_and_nobody_else(self):
        sig = ('local host = require "host"\n'
               'return { name = "sig", help = "sig — host.signal", run = function(ctx)\n'
               '  local s = host.signal()\n'
               '  local order, before = {}, s:notify()\n'
               '  local fns = {}\n'
               '  for i = 1, 3 do fns[i] = function()\n'
               '    order[#order + 1] = "wait" .. i\n'
               '    local got = s:wait()\n'
               '    order[#order + 1] = "woke" .. i .. "=" .. tostring(got)\n'
               '  end end\n'
               '  local woken\n'
               '  fns[4] = function()\n'
               '    host.sleep(0.2)\n'
               '    order[#order + 1] = "notify"\n'
               '    woken = s:notify()\n'
               '    order[#order + 1] = "after"\n'
               '  end\n'
               '  local t0 = host.monotonic()\n'
               '  local r = host.all(fns)\n'
               '  for i = 1, 4 do assert(r[i].ok, tostring(r[i].error)) end\n'
               '  local ok, err = pcall(function() return coroutine.wrap(function() return s:wait() end)() end)\n'
               '  ctx.reply(string.format("sig before=%d woken=%d %s took=%.2f outside=%s", before, woken,\n'
               '    table.concat(order, ","), host.monotonic() - t0, tostring(ok) .. ":" .. tostring(err)))\n'
               'end }\n')
        m = self.reply_matching("sig", sig, r"^sig before=0 woken=3 wait1,wait2,wait3,notify,after,woke1=true,"
                                r"woke2=true,woke3=true took=([\d.]+) outside=false:.*signal wait")
        self.assertGreaterEqual(float(m.group(1)), 0.19)  # they waited for the notify

    def test_sigterm_ends_a_command_waiting_on_a_signal(self):
        self.sigterm_ends_a_waiting_command("host.signal():wait()")

    # --- files ----------------------------------------------------------------------------
    def test_writes_outside_data_dir_refused(self):
        bot = self.bot_with({"escape": ESCAPE})
        outside = os.path.join(bot.tmp, "outside")
        os.makedirs(outside)
        os.symlink(outside, os.path.join(bot.data_dir, "link"))
        self.ask("escape " + outside)
        post = self.wait_post(r"dotdot=")
        self.assertEqual(post["text"], "dotdot=refused absolute=refused symlink=refused inside=written")
        self.assertEqual(os.listdir(outside), [])
        self.assertFalse(os.path.exists(os.path.join(bot.tmp, "outside-dotdot.txt")))
        with open(os.path.join(bot.data_dir, "ok", "inside.txt")) as f:
            self.assertEqual(f.read(), "x")


class CheckTest(BotTestCase):
    """`postmortembot check`: load everything as a reload would, exit 0 or 1."""

    def check(self, bot):
        p = subprocess.run([bot_binary(), "check", "-c", bot.config_path], cwd=bot.tmp,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
                           env=bot.env())
        return p.returncode, p.stdout, p.stderr

    def setUp(self):
        super().setUp()
        if not os.access(bot_binary(), os.X_OK):
            self.skipTest("no bot binary")

    def test_check_ok(self):
        bot = self.make_bot()
        bot.scripts_copy()
        rc, out, err = self.check(bot)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("ok", out)

    def test_check_syntax_error(self):
        bot = self.make_bot()
        scripts, _ = bot.scripts_copy()
        HostTest.write_command(scripts, "broken", "return {\n  name = 'broken',\n  run = function( end,\n}\n")
        rc, out, err = self.check(bot)
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"commands/broken\.lua:3:")

    def test_check_bad_command_table(self):
        bot = self.make_bot()
        scripts, _ = bot.scripts_copy()
        HostTest.write_command(scripts, "norun", "return { name = 'norun', help = 'x' }\n")
        rc, out, err = self.check(bot)
        self.assertEqual(rc, 1)
        self.assertIn("norun", err)
        self.assertIn("no run function", err)

    def test_check_looping_top_level_fails_within_budget(self):
        bot = self.make_bot()
        scripts, _ = bot.scripts_copy()
        HostTest.write_command(scripts, "forever", "local n = 0\nwhile true do n = n + 1 end\n")
        started = time.monotonic()
        rc, out, err = self.check(bot)
        self.assertEqual(rc, 1)
        self.assertIn("cpu budget exceeded", err)
        self.assertIn("forever.lua:2", err)
        self.assertLess(time.monotonic() - started, 30)

    def test_check_bad_config(self):
        bot = self.make_bot({"timezone": "Mars/Olympus_Mons"})
        rc, out, err = self.check(bot)
        self.assertEqual(rc, 1)
        self.assertIn("Mars/Olympus_Mons", err)
