"""The command line as people type it (issue 12, item 5): options before or after the
subcommand, help and version as subcommands, the config search path shown in --help and used,
clear one-line errors with exit 2, --pidfile. The real binary; no Slack needed."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import REPO, bot_binary, free_port

EXAMPLE = os.path.join(REPO, "config", "postmortembot.lua")


def run(args, cwd=None, env=None, timeout=60):
    full = {k: v for k, v in os.environ.items() if k not in ("POSTMORTEMBOT_CONFIG", "POSTMORTEMBOT_DATA_DIR")}
    full.update(env or {})
    return subprocess.run([bot_binary()] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, cwd=cwd, env=full)


class Cli(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="pmb-cli-")
        self.data = {"POSTMORTEMBOT_DATA_DIR": os.path.join(self.work, "data")}

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def test_help_subcommand_and_flag(self):
        for args in (["help"], ["--help"], ["-h"], ["check", "--help"]):
            p = run(args)
            self.assertEqual(0, p.returncode, args)
            self.assertIn("usage: postmortembot", p.stdout)
            # the search path is shown, in order
            out = p.stdout
            self.assertLess(out.index("POSTMORTEMBOT_CONFIG"), out.index("./config/postmortembot.lua"))
            self.assertLess(out.index("./config/postmortembot.lua"), out.index("/etc/postmortembot/postmortembot.lua"))
            self.assertIn("--pidfile", out)
            self.assertIn("--thread", out)

    def test_version_subcommand_and_flag(self):
        with open(os.path.join(REPO, "VERSION")) as f:
            version = f.read().strip()
        for args in (["version"], ["--version"], ["-V"]):
            p = run(args)
            self.assertEqual(0, p.returncode)
            self.assertEqual("postmortembot " + version, p.stdout.strip())

    def test_config_option_before_or_after_subcommand(self):
        for args in (["-c", EXAMPLE, "check"], ["check", "-c", EXAMPLE], ["--config=" + EXAMPLE, "check"]):
            p = run(args, env=self.data)
            self.assertEqual(0, p.returncode, "%r: %s" % (args, p.stderr))
            self.assertIn("ok:", p.stdout)

    def test_render_without_file_says_so(self):
        p = run(["render", "-c", EXAMPLE])
        self.assertEqual(2, p.returncode)
        self.assertIn("render needs a file", p.stderr)
        self.assertNotIn("unknown command", p.stderr)

    def test_unknown_command_and_option(self):
        p = run(["autopsy"])
        self.assertEqual(2, p.returncode)
        self.assertIn("unknown command 'autopsy'", p.stderr)
        p = run(["check", "--frobnicate"])
        self.assertEqual(2, p.returncode)
        self.assertIn("unknown option --frobnicate", p.stderr)
        p = run(["check", "extra"])
        self.assertEqual(2, p.returncode)
        self.assertIn("check takes no argument, not 'extra'", p.stderr)
        p = run(["check", "-c"])
        self.assertEqual(2, p.returncode)
        self.assertIn("needs a value", p.stderr)

    def test_render_options_refused_elsewhere(self):
        p = run(["check", "--users", "u.json", "-c", EXAMPLE])
        self.assertEqual(2, p.returncode)
        self.assertIn("options of render", p.stderr)

    def test_config_from_environment(self):
        p = run(["check"], cwd=self.work, env=dict(self.data, POSTMORTEMBOT_CONFIG=EXAMPLE))
        self.assertEqual(0, p.returncode, p.stderr)
        self.assertIn(EXAMPLE, p.stdout)
        p = run(["check"], cwd=self.work, env={"POSTMORTEMBOT_CONFIG": "/nonexistent/x.lua"})
        self.assertEqual(2, p.returncode)
        self.assertIn("/nonexistent/x.lua (from POSTMORTEMBOT_CONFIG)", p.stderr)

    def test_config_found_under_current_directory(self):
        p = run(["check"], cwd=REPO, env=self.data)
        self.assertEqual(0, p.returncode, p.stderr)
        self.assertIn("./config/postmortembot.lua loads", p.stdout)

    def test_no_config_found_lists_the_places(self):
        if any(os.path.exists(p) for p in ("/etc/postmortembot/postmortembot.lua",
                                           "/usr/local/etc/postmortembot/postmortembot.lua")):
            self.skipTest("a config is installed on this machine")
        p = run(["check"], cwd=self.work)
        self.assertEqual(2, p.returncode)
        self.assertIn("no config found", p.stderr)
        self.assertIn("./config/postmortembot.lua /etc/postmortembot/postmortembot.lua", p.stderr)

    def test_missing_config_file_named(self):
        p = run(["check", "-c", os.path.join(self.work, "nope.lua")])
        self.assertEqual(2, p.returncode)
        self.assertIn("nope.lua: No such file or directory", p.stderr)

    def test_pidfile_written_and_removed(self):
        pidfile = os.path.join(self.work, "bot.pid")
        port = free_port()  # nothing listens: auth.test keeps retrying until we stop it
        env = dict(os.environ, SLACK_BOT_TOKEN="xoxb-test-bot", SLACK_APP_TOKEN="xapp-test-app",
                   SLACK_API_URL="http://127.0.0.1:%d/api/" % port, **self.data)
        log_path = os.path.join(self.work, "bot.log")
        log = open(log_path, "w")
        proc = subprocess.Popen([bot_binary(), "-c", EXAMPLE, "--pidfile", pidfile], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.time() + 20  # signals are handled once the bot logs "starting"
            while time.time() < deadline and 'msg="starting"' not in open(log_path).read():
                time.sleep(0.05)
            with open(pidfile) as f:
                self.assertEqual(str(proc.pid), f.read().strip())
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(0, proc.wait(timeout=30))
            self.assertFalse(os.path.exists(pidfile), "the pid file outlived the bot")
        finally:
            log.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def test_pidfile_only_for_running(self):
        p = run(["check", "--pidfile", os.path.join(self.work, "x.pid"), "-c", EXAMPLE])
        self.assertEqual(2, p.returncode)
        self.assertIn("--pidfile is for running the bot", p.stderr)


if __name__ == "__main__":
    unittest.main()
