"""host.run end to end (core/host/primitives_process.c): the real bot runs test commands that start
child processes. The environment is curated (no token, only what the call passes plus PATH, HOME,
LANG), stdin reaches the child, output is bounded, a timeout kills the whole process group, a
program missing from config `programs` or a working directory outside the data dir is refused,
a program that cannot start is an error value, and the loop goes on (acks, other commands) while a
child runs. Uses tests/e2e/harness.py.
"""
import os
import re
import time

from harness import BotTestCase

CHANNEL = "C0PROC"
THREAD = "1700000000.000100"

RUN = r"""local host = require "host"
return { name = "run", help = "run — host.run probes", run = function(ctx, args)
  local case = args
  if case == "env" then
    local r = assert(host.run{ argv = { "sh", "-c", "env" }, env = { FOO = "bar" } })
    local names = {}
    for name in r.stdout:gmatch("([%w_]+)=[^\n]*\n") do names[#names + 1] = name end
    table.sort(names)
    ctx.reply("env " .. table.concat(names, ",") .. " status=" .. r.status .. "\n" .. r.stdout)
  elseif case == "stdin" then
    local r = assert(host.run{ argv = { "sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3" }, stdin = "hello child" })
    ctx.reply("stdin out=" .. r.stdout .. " err=" .. r.stderr:gsub("\n", "") .. " status=" .. r.status)
  elseif case == "bound" then
    local r = assert(host.run{ argv = { "sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x" }, max_output = 1000 })
    ctx.reply("bound len=" .. #r.stdout .. " truncated=" .. tostring(r.truncated) .. " status=" .. r.status)
  elseif case:match("^timeout ") then
    local pidfile = case:match("^timeout (.+)$")
    local started = host.monotonic()
    local r, err = host.run{ argv = { "sh", "-c", "sleep 30 & echo $! > " .. pidfile .. "; wait" }, timeout = 0.5 }
    ctx.reply(string.format("timeout r=%s code=%s after=%.1f", tostring(r), err and err.code, host.monotonic() - started))
  elseif case == "refused" then
    local ok, e = pcall(host.run, { argv = { "cat", "/etc/hostname" } })
    local ok2, e2 = pcall(host.run, { argv = { "sh", "-c", "true" }, cwd = "/tmp" })
    local ok3, e3 = pcall(host.run, { argv = { "sh", "-c", "true" }, env = { SLACK_BOT_TOKEN = "x" } })
    ctx.reply("refused " .. tostring(ok) .. " " .. tostring(e) .. " | " .. tostring(ok2) .. " " .. tostring(e2)
      .. " | " .. tostring(ok3) .. " " .. tostring(e3))
  elseif case == "missing" then
    local r, err = host.run{ argv = { "pmb-no-such-program" } }
    ctx.reply("missing r=" .. tostring(r) .. " code=" .. tostring(err and err.code) .. " " .. tostring(err and err.message))
  elseif case:match("^long ") then
    host.run{ argv = { "sh", "-c", "sleep 60 & echo $! > " .. case:match("^long (.+)$") .. "; wait" }, timeout = 120 }
    ctx.reply("long ended")
  elseif case == "slow" then
    local r = assert(host.run{ argv = { "sh", "-c", "sleep 2; echo done" } })
    ctx.reply("slow " .. r.stdout)
  end
end }
"""

HELLO = """return { name = "hello", help = "hello", run = function(ctx) ctx.reply("hello back") end }
"""


class HostRunTest(BotTestCase):
    def setUp(self):
        super().setUp()
        self.bot = self.make_bot({"programs": ["sh", "pmb-no-such-program"]},
                                 env={"POSTMORTEMBOT_GIT_TOKEN": "gitpat-must-not-leak"})
        scripts, _ = self.bot.scripts_copy()
        for name, src in (("run", RUN), ("hello", HELLO)):
            with open(os.path.join(scripts, "commands", name + ".lua"), "w") as f:
                f.write(src)
        self.bot.start()

    def ask(self, text):
        self.fs.mention(CHANNEL, "U0ALICE", text, thread_ts=THREAD)

    def answer(self, prefix, timeout=20):
        rx = re.compile("^" + re.escape(prefix))

        def found():
            return next((p["text"] for p in self.fs.posts(channel=CHANNEL, thread_ts=THREAD) if rx.search(p["text"])),
                        None)
        return self.fs.wait_for(found, timeout=timeout, what="%r (bot log:\n%s)" % (prefix, self.bot.tail(20)))

    def test_the_environment_is_curated(self):
        self.ask("run env")
        text = self.answer("env ")
        names = set(text.split("\n")[0].split()[1].split(","))
        # sh itself adds PWD (and may add SHLVL, _); nothing else comes from the bot's environment
        self.assertLessEqual(names, {"FOO", "PATH", "HOME", "LANG", "PWD", "SHLVL", "_"}, text)
        self.assertIn("FOO", names)
        self.assertIn("PATH", names)
        self.assertNotIn("xoxb-", text)
        self.assertNotIn("gitpat-must-not-leak", text)
        self.assertIn("status=0", text)

    def test_stdin_stdout_stderr_and_exit_status(self):
        self.ask("run stdin")
        self.assertEqual("stdin out=HELLO CHILD err=oops status=3", self.answer("stdin "))

    def test_output_is_bounded(self):
        self.ask("run bound")
        self.assertEqual("bound len=1000 truncated=true status=0", self.answer("bound "))

    def test_a_timeout_kills_the_process_group(self):
        pidfile = os.path.join(self.bot.data_dir, "child.pid")
        self.ask("run timeout " + pidfile)
        text = self.answer("timeout ")
        self.assertRegex(text, r"^timeout r=nil code=timeout after=0\.\d$")
        with open(pidfile) as f:
            pid = int(f.read())
        self.assertFalse(process_alive(pid), "the grandchild (sleep 30, pid %d) outlived the timeout" % pid)

    def test_refusals(self):
        self.ask("run refused")
        text = self.answer("refused ")
        parts = text[len("refused "):].split(" | ")
        self.assertRegex(parts[0], r"^false .*'cat' is not in config `programs`")
        self.assertRegex(parts[1], r"^false .*outside the write root")
        self.assertRegex(parts[2], r"^false .*not the Slack tokens")

    def test_a_program_that_cannot_start_is_an_error_value(self):
        self.ask("run missing")
        self.assertRegex(self.answer("missing "), r"^missing r=nil code=spawn could not start pmb-no-such-program")

    def test_the_loop_goes_on_while_a_child_runs(self):
        self.ask("run slow")  # its child sleeps 2 s
        time.sleep(0.3)
        self.ask("hello")
        self.assertEqual("slow done\n", self.answer("slow "))
        texts = [p["text"] for p in self.fs.posts(channel=CHANNEL, thread_ts=THREAD)]
        self.assertLess(texts.index("hello back"), texts.index("slow done\n"),
                        "a command waited for another's child process")

    def test_shutdown_kills_a_running_child_and_exits_cleanly(self):
        pidfile = os.path.join(self.bot.data_dir, "long.pid")
        self.ask("run long " + pidfile)
        self.fs.wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), timeout=10,
                         what="the child's pid file")
        with open(pidfile) as f:
            pid = int(f.read())
        self.assertEqual(0, self.bot.stop(timeout=20), self.bot.tail(20))
        self.assertFalse(process_alive(pid), "the child's process group outlived the bot")


def process_alive(pid, wait=5):
    """Is pid alive (not a zombie) after up to `wait` seconds?"""
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return False
        except OSError:
            return False
        time.sleep(0.05)
    return True
