"""The e2e harness: runs the real bot binary against a FakeSlack and cleans up after it.

Owns BotProcess (a temp dir, a generated Lua config, the child process and its log) and
BotTestCase (a unittest base: a FakeSlack per test, bots stopped after each test, then the
redaction and sanitizer checks on their logs). Used by every tests/e2e/test_*.py; calls
tests/fakeslack/fakeslack.py and the binary named by POSTMORTEMBOT_BIN.
"""
import atexit
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FAKESLACK_DIR = os.path.join(REPO, "tests", "fakeslack")
FIXTURES = os.path.join(REPO, "tests", "fixtures")
INCIDENT_FIXTURE = os.path.join(FIXTURES, "incident")
if FAKESLACK_DIR not in sys.path:
    sys.path.insert(0, FAKESLACK_DIR)

from fakeslack import FakeSlack  # noqa: E402,F401  (re-exported for tests)
from webhook_sink import WebhookSink  # noqa: E402,F401

TEST_TOKENS = ("xoxb-test-bot", "xapp-test-app")
TOKEN_SHAPE = re.compile(r"(xox[a-z]|xapp)-[A-Za-z0-9]")
SANITIZER_SHAPE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|: runtime error: ")
CONNECTED = r'msg="socket mode connected"'
LogMatch = collections.namedtuple("LogMatch", "index line match")

_live = set()  # BotProcess objects whose child may still run


def bot_binary():
    return os.environ.get("POSTMORTEMBOT_BIN") or os.path.join(REPO, "bin", "postmortembot")


def free_port():
    """A loopback TCP port nobody listens on right now (for the bot's health listener)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- Python values -> Lua source ----------------------------------------------------------
_LUA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LUA_KEYWORDS = set("and break do else elseif end false for function goto if in local nil not or "
                    "repeat return then true until while".split())


def lua_string(s):
    out = ['"']
    for ch in s.encode("utf-8"):
        c = chr(ch)
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "\n":
            out.append("\\n")
        elif ch < 32 or ch >= 127:
            out.append("\\%03d" % ch)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def to_lua(value, indent=0):
    """Lua source for a Python dict/list/tuple/str/int/float/bool/None (None -> nil)."""
    pad = "  " * (indent + 1)
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("no Lua literal for %r" % value)
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "{}"
        return "{\n" + "".join(pad + to_lua(v, indent + 1) + ",\n" for v in value) + "  " * indent + "}"
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if v is not None]
        if not items:
            return "{}"
        lines = []
        for k, v in items:
            if isinstance(k, str) and _LUA_NAME.match(k) and k not in _LUA_KEYWORDS:
                key = k
            elif isinstance(k, str):
                key = "[" + lua_string(k) + "]"
            else:
                key = "[" + to_lua(k) + "]"
            lines.append("%s%s = %s,\n" % (pad, key, to_lua(v, indent + 1)))
        return "{\n" + "".join(lines) + "  " * indent + "}"
    raise TypeError("no Lua literal for %r" % type(value))


def deep_merge(base, overrides):
    """base updated with overrides, recursing into dicts; an override of None removes the key."""
    out = dict(base)
    for k, v in (overrides or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def redaction_problems(lines):
    """The lines that show a test token or anything shaped like a Slack token."""
    return [line for line in lines if any(t in line for t in TEST_TOKENS) or TOKEN_SHAPE.search(line)]


# --- the bot process ----------------------------------------------------------------------
class BotProcess:
    """The bot binary against `fs`. The temp dir and the config exist from construction on, so
    a test may call scripts_copy() or write_config() before start()."""

    def __init__(self, fs, config_overrides=None, env=None, extra_args=None, binary=None,
                 allow_loopback=True):
        self.fs = fs
        # The whole suite runs on loopback (file redirects to the fake's other port, webhook
        # sinks): the config allows it explicitly, as an operator would allow an internal relay.
        # Tests of the refusal pass allow_loopback=False and get the shipped defaults.
        self.allow_loopback = allow_loopback
        self.binary = binary or bot_binary()
        self.tmp = tempfile.mkdtemp(prefix="pmb-e2e-")
        self.data_dir = os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir)
        self.config_path = os.path.join(self.tmp, "postmortembot.lua")
        self.log_path = os.path.join(self.tmp, "bot.log")
        self.extra_env = dict(env or {})
        self.extra_args = list(extra_args or [])
        self.config = {"scripts_dir": os.path.join(REPO, "scripts"),
                       "templates_dir": os.path.join(REPO, "templates"),
                       "data_dir": self.data_dir, "timezone": "UTC"}
        self.write_config(config_overrides)
        self.proc = None
        self.returncode = None
        self.log_lines = []
        self.stdout_lines = []
        self._lock = threading.Lock()
        self._readers = []

    def write_config(self, overrides=None):
        """Merge overrides into the config and rewrite the file (send SIGHUP to reload it)."""
        self.config = deep_merge(self.config, overrides)
        text = "-- written by tests/e2e/harness.py\nreturn " + to_lua(self._with_loopback(self.config)) + "\n"
        tmp = self.config_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        return self.config_path

    def _with_loopback(self, config):
        """config with downloads.allow_private and every webhook's allow_private set, unless the
        test set them or asked for the defaults (allow_loopback=False)."""
        if not self.allow_loopback:
            return config
        out = deep_merge(config, {})
        downloads = dict(out.get("downloads") or {})
        downloads.setdefault("allow_private", True)
        out["downloads"] = downloads
        status = out.get("status")
        for key in ("webhooks", "destinations"):
            if isinstance(status, dict) and isinstance(status.get(key), list):
                status = dict(status)
                status[key] = [dict(h, allow_private=h.get("allow_private", True)) if isinstance(h, dict) else h
                               for h in status[key]]
                out["status"] = status
        return out

    def scripts_copy(self):
        """Copy scripts/ and templates/ into the temp dir and point the config at the copies.
        Returns (scripts_dir, templates_dir) for the test to edit."""
        scripts = os.path.join(self.tmp, "scripts")
        templates = os.path.join(self.tmp, "templates")
        for src, dst in ((os.path.join(REPO, "scripts"), scripts), (os.path.join(REPO, "templates"), templates)):
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            shutil.copytree(src, dst)
        self.write_config({"scripts_dir": scripts, "templates_dir": templates})
        return scripts, templates

    def env(self):
        env = dict(os.environ)
        for name in ("POSTMORTEMBOT_DATA_DIR", "POSTMORTEMBOT_LISTEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"):
            env.pop(name, None)
        env.update({"SLACK_BOT_TOKEN": self.fs.bot_token, "SLACK_APP_TOKEN": self.fs.app_token,
                    "SLACK_API_URL": self.fs.api_url})
        for k, v in self.extra_env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def start(self, wait_connected=True, timeout=20):
        if not os.access(self.binary, os.X_OK):
            raise unittest.SkipTest("no bot binary at %s (run make)" % self.binary)
        cmd = [self.binary, "-c", self.config_path] + self.extra_args
        self.proc = subprocess.Popen(cmd, env=self.env(), cwd=self.tmp, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        _live.add(self)
        log_file = open(self.log_path, "w", encoding="utf-8")
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stderr, self.log_lines, log_file),
                                          daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines, None),
                                          daemon=True)]
        for t in self._readers:
            t.start()
        if wait_connected:
            self.wait_log(CONNECTED, timeout=timeout)
        return self

    def _keep(self, sink, line):
        """Store one line read from the bot (called with self._lock held; a subclass may keep more)."""
        sink.append(line)

    def _read(self, stream, sink, log_file):
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    self._keep(sink, line)
                if log_file:
                    log_file.write(line + "\n")
                    log_file.flush()
        finally:
            stream.close()
            if log_file:
                log_file.close()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def mark(self):
        """The number of log lines so far: pass it as wait_log(after=…) to see only newer lines."""
        with self._lock:
            return len(self.log_lines)

    def log_text(self):
        with self._lock:
            return "\n".join(self.log_lines)

    def wait_log(self, regex, timeout=10, after=0):
        """Wait for a log line (index >= after) matching regex; returns LogMatch(index, line, match).
        Fails at once if the bot exits first."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        i = after
        while True:
            found, i = self._scan_log(pattern, i)
            if found:
                return found
            exited = self.proc is not None and self.proc.poll() is not None
            if exited:
                for t in self._readers:
                    t.join(timeout=2)
                found, i = self._scan_log(pattern, i)  # the lines written just before the exit
                if found:
                    return found
            if exited or time.monotonic() >= deadline:
                why = "the bot exited with %s" % self.proc.returncode if exited else "timed out after %.1f s" % timeout
                raise AssertionError("%s waiting for a log line matching %r\n--- bot log (last 40 lines) ---\n%s\n%s"
                                     % (why, regex, self.tail(40), self.fs.summary()))
            time.sleep(0.02)

    def _scan_log(self, pattern, i):
        """(LogMatch or None, index of the next unread line) for the log lines from index i."""
        with self._lock:
            lines = self.log_lines[i:]
        for line in lines:
            m = pattern.search(line)
            if m:
                return LogMatch(i, line, m), i
            i += 1
        return None, i

    def tail(self, n=40):
        with self._lock:
            return "\n".join(self.log_lines[-n:])

    def send_signal(self, sig):
        if not self.running():
            raise AssertionError("the bot is not running (exit code %s)\n%s" % (self.proc and self.proc.poll(), self.tail()))
        os.kill(self.proc.pid, sig)

    def wait(self, timeout=15):
        """Wait for the bot to exit by itself; returns the exit code."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("the bot did not exit within %.0f s\n%s" % (timeout, self.tail()))
        self._join_readers()
        return self.returncode

    def stop(self, timeout=15):
        """SIGTERM, wait up to timeout, then SIGKILL the whole process group. Returns the exit code
        (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()
        self.returncode = self.proc.wait()
        self._join_readers()
        _live.discard(self)
        return self.returncode

    def kill(self):
        """SIGKILL the bot (and anything it started) at once."""
        if self.proc is not None:
            self._kill_group()
            self.proc.wait()

    def _kill_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _join_readers(self):
        for t in self._readers:
            t.join(timeout=5)

    def cleanup(self):
        """Stop the bot and remove the temp dir (kept when PMB_KEEP_TMP is set)."""
        self.stop()
        if os.environ.get("PMB_KEEP_TMP"):
            sys.stderr.write("harness: kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


@atexit.register
def _kill_leftovers():
    for bot in list(_live):
        bot.kill()


# --- the unittest base --------------------------------------------------------------------
class BotTestCase(unittest.TestCase):
    """A FakeSlack per test (self.fs, started), bots started with self.start_bot(...). After each
    test: bots stopped, then their logs checked for tokens and sanitizer reports, then the fake
    stopped. Set fake_kwargs on a subclass to pass options to FakeSlack."""

    fake_kwargs = {}

    def setUp(self):
        self.fs = FakeSlack(**self.fake_kwargs).start()
        self.addCleanup(self.fs.stop)
        self.bots = []
        self.addCleanup(self._finish_bots)

    def start_bot(self, config_overrides=None, env=None, extra_args=None, wait_connected=True, timeout=20,
                  allow_loopback=True):
        if allow_loopback:  # (subclasses may override make_bot with the three-argument form)
            bot = self.make_bot(config_overrides, env, extra_args)
        else:
            bot = self.make_bot(config_overrides, env, extra_args, allow_loopback=False)
        bot.start(wait_connected=wait_connected, timeout=timeout)
        return bot

    def make_bot(self, config_overrides=None, env=None, extra_args=None, allow_loopback=True):
        """A BotProcess not started yet (for scripts_copy() or write_config() first)."""
        bot = BotProcess(self.fs, config_overrides, env, extra_args, allow_loopback=allow_loopback)
        self.bots.append(bot)
        return bot

    def load_incident(self):
        """Load tests/fixtures/incident; returns (channel, parent ts)."""
        return self.fs.load_fixture(INCIDENT_FIXTURE)

    def _finish_bots(self):
        problems = []
        for bot in self.bots:
            bot.stop()
            lines = bot.log_lines + bot.stdout_lines
            leaks = redaction_problems(lines)
            if leaks:
                problems.append("a token (or a token shape) in the log of the bot:\n  " + "\n  ".join(leaks[:10]))
            reports = [line for line in lines if SANITIZER_SHAPE.search(line)]
            if reports:
                problems.append("a sanitizer report in the log:\n" + bot.tail(60))
            if problems:
                sys.stderr.write("harness: keeping %s for the failure\n" % bot.tmp)
            else:
                bot.cleanup()
        if problems:
            self.fail("\n".join(problems))


def ask_and_wait(fs, bot, channel, user, text, thread_ts=None, timeout=30):
    """Mention the bot as `user`; wait for its reply in that thread; returns (command ts, reply text)."""
    before = len(fs.posts())
    ts, _ = fs.mention(channel, user, text, thread_ts=thread_ts)
    parent = thread_ts or ts

    def reply():
        with fs.lock:
            new = fs._posts[before:]
        return [p for p in new if p["channel"] == channel and p["thread_ts"] == parent]
    found = fs.wait_for(reply, timeout=timeout, what="the reply to %r (bot log:\n%s)" % (text, bot.tail(30)))
    return ts, found[-1]["text"]


class CommandBotTestCase(BotTestCase):
    """A bot whose scripts are a temp copy with test commands added, asked in one thread
    (CHANNEL, THREAD: set them on the subclass)."""

    CHANNEL = "C0CMDS"
    THREAD = "1700000000.000100"

    def bot_with(self, commands, config=None, start=True, env=None):
        bot = self.make_bot(config, env=env)
        scripts, _ = bot.scripts_copy()
        for name, source in commands.items():
            self.write_command(scripts, name, source)
        bot.scripts_dir = scripts
        if start:
            bot.start()
        return bot

    @staticmethod
    def write_command(scripts, name, source):
        path = os.path.join(scripts, "commands", name + ".lua")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(source)
        os.replace(path + ".tmp", path)
        return path

    def ask(self, text):
        ts, eid = self.fs.mention(self.CHANNEL, "U0ALICE", text, thread_ts=self.THREAD)
        return eid

    def wait_post(self, pattern, timeout=10, after=0):
        rx = re.compile(pattern)

        def found():
            posts = self.fs.posts(channel=self.CHANNEL, thread_ts=self.THREAD)[after:]
            return next((p for p in posts if rx.search(p["text"])), None)
        return self.fs.wait_for(found, timeout=timeout, what="a post matching %r" % pattern)

    def wait_ack(self, envelope_id, timeout=5):
        return self.fs.wait_for(lambda: self.fs.ack_for(envelope_id), timeout=timeout,
                                what="the ack of %s" % envelope_id)

    def reload(self, bot, expect="ok"):
        mark = bot.mark()
        bot.send_signal(signal.SIGHUP)
        pat = r'msg="reload ok"' if expect == "ok" else r'msg="reload failed"'
        return bot.wait_log(pat, timeout=15, after=mark)
