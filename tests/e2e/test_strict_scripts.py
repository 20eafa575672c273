"""All-or-nothing loads, from outside: `check` and SIGHUP refuse exactly the same broken scripts,
a load error says where (with a traceback), and the shared global table is strict and read-only
(reading or writing an undeclared global raises at the line, at load time and at run time).

Covers core/host/boot.lua (lock_globals, load_init), core/host/host_gen.c (the load's message
handler) and the failure reply of core/host/host_task.c. The real binary and the fake Slack.
"""
import os
import re
import subprocess

from harness import CommandBotTestCase, bot_binary

HELLO = """return { name = "hello", help = "hello — answers",
  run = function(ctx, args) ctx.reply("hello " .. args) end }
"""

# writes a global at load time: would leak into every other module
LEAKY = """local helper = 1
leaked_helper = helper
return { name = "leaky", help = "leaky — sets a global", run = function(ctx) ctx.reply("x") end }
"""

TYPO_WRITE = """return { name = "typow", help = "typow — writes a global",
  run = function(ctx)
    x_typo_global = 1
    ctx.reply("wrote")
  end }
"""

TYPO_READ = """return { name = "typor", help = "typor — reads an undeclared name",
  run = function(ctx)
    local y = undefined_name
    ctx.reply("read " .. tostring(y))
  end }
"""

# fails while loading, two calls deep: the traceback must name both places
DEEP = """local function inner() error("inner failed on purpose") end
local function outer() inner() end
outer()
return { name = "deep", help = "deep", run = function() end }
"""

BROKEN_LIB = """local richtext = {}
this is not lua
return richtext
"""


class StrictScriptsTest(CommandBotTestCase):
    CHANNEL, THREAD = "C0STRICT", "1700000000.000100"

    def setUp(self):
        super().setUp()
        self.fs.add_channel(self.CHANNEL, "strict")

    def check(self, bot):
        p = subprocess.run([bot_binary(), "check", "-c", bot.config_path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        return p.returncode, p.stdout

    def test_a_global_written_at_load_time_is_refused_by_check_and_by_sighup(self):
        bot = self.bot_with({"hello": HELLO})
        rc, out = self.check(bot)
        self.assertEqual(0, rc, out)
        self.write_command(bot.scripts_dir, "leaky", LEAKY)
        rc, out = self.check(bot)
        self.assertEqual(1, rc, out)
        self.assertRegex(out, r"commands/leaky\.lua:2: assignment to undeclared global 'leaked_helper'")
        line = self.reload(bot, expect="failed")
        self.assertIn("leaked_helper", line.line)
        self.ask("hello still")  # the old generation serves on
        self.wait_post(r"^hello still")

    def test_undeclared_globals_raise_at_the_line_when_a_command_runs(self):
        self.bot_with({"typow": TYPO_WRITE, "typor": TYPO_READ, "hello": HELLO})
        self.ask("typow")
        post = self.wait_post(r"`typow` failed")
        self.assertRegex(post["text"], r"typow\.lua:3: assignment to undeclared global 'x_typo_global'")
        self.ask("typor")
        post = self.wait_post(r"`typor` failed")
        self.assertRegex(post["text"], r"typor\.lua:3: undeclared global 'undefined_name'")
        # nothing leaked: the name is still undeclared the second time
        n = len(self.fs.posts(channel=self.CHANNEL, thread_ts=self.THREAD))
        self.ask("typor")
        post = self.wait_post(r"`typor` failed", after=n)
        self.assertIn("undeclared global 'undefined_name'", post["text"])
        self.ask("hello after")
        self.wait_post(r"^hello after")

    def test_a_load_error_shows_a_traceback(self):
        bot = self.bot_with({"hello": HELLO, "deep": DEEP}, start=False)
        rc, out = self.check(bot)
        self.assertEqual(1, rc, out)
        self.assertIn("inner failed on purpose", out)
        self.assertIn("stack traceback:", out)
        self.assertRegex(out, r"commands/deep\.lua:1: in (local|upvalue|function) '?inner'?")
        self.assertRegex(out, r"commands/deep\.lua:2: in (local|function) '?outer'?")

    def test_a_broken_library_is_refused_by_check_and_by_sighup(self):
        bot = self.bot_with({"hello": HELLO})
        path = os.path.join(bot.scripts_dir, "lib", "richtext.lua")
        with open(path, "w", encoding="utf-8") as f:
            f.write(BROKEN_LIB)
        rc, out = self.check(bot)
        self.assertEqual(1, rc, out)
        self.assertRegex(out, r"richtext\.lua:2")
        line = self.reload(bot, expect="failed")
        self.assertTrue(re.search(r"richtext\.lua", line.line), line.line)
        self.ask("hello still")
        self.wait_post(r"^hello still")
