"""The two threads, from outside: whatever a script does, the transport thread keeps acking, answers
/healthz and obeys SIGTERM; whatever arrives on the health port, the bot stays up.

Covers core/net/transport.c, core/net/health.c, core/host/budget.c (time slices, CPU budget, stretch
bound), core/host/sandbox.c (bounded table.sort) and the script-made coroutines of host_gen.c. The
real binary, real sockets, the fake Slack.
"""
import errno
import json
import os
import resource
import signal
import socket
import time

from harness import BotTestCase, CommandBotTestCase, free_port

HELLO = """return { name = "hello", help = "hello — answers",
  run = function(ctx, args) ctx.reply("hello " .. args) end }
"""

# computes for `args` seconds of wall time without calling the host: time slices must let others in
CRUNCH = """return { name = "crunch", help = "crunch <s> — computes",
  run = function(ctx, args)
    local stop, n = os.clock() + tonumber(args), 0
    while os.clock() < stop do n = n + 1 end
    ctx.reply("crunched " .. n)
  end }
"""

ZERO_SLEEPS = """local host = require "host"
return { name = "naps", help = "naps — sleeps 0 s forever",
  run = function(ctx) while true do host.sleep(0) end end }
"""

BIG_SORT = """return { name = "bigsort", help = "bigsort — sorts 8M numbers",
  run = function(ctx)
    local t = {}
    for i = 1, 8000000 do t[i] = (i * 7919) % 8000000 end
    table.sort(t)
    ctx.reply("sorted")
  end }
"""

BACKTRACK = """return { name = "backtrack", help = "backtrack — a pattern that backtracks forever",
  run = function(ctx)
    local s = string.rep("a", 100000)
    ctx.reply("found " .. tostring(string.find(s, ".-.-.-.-b")))
  end }
"""

COROUTINES = """local host = require "host"
return { name = "co", help = "co — coroutines a script makes",
  run = function(ctx)
    local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
    local _, x = coroutine.resume(co, 1)
    local _, y = coroutine.resume(co, 10)
    local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
    local sum = gen() + gen() + gen()
    local ok, err = pcall(function() coroutine.wrap(function() host.sleep(0.01) end)() end)
    ctx.reply(("co %d %d %d %s %s"):format(x, y, sum, tostring(ok), tostring(err)))
  end }
"""

# spins inside a coroutine the script made (resumed, or called through coroutine.wrap): that
# coroutine has hooks of its own, which the budget's ticks must arm too
SPIN_IN_COROUTINE = """return { name = "spinco", help = "spinco resume|wrap — loops in a coroutine",
  run = function(ctx, args)
    local function spin() local n = 0 while true do n = n + 1 end end
    if args == "wrap" then
      coroutine.wrap(spin)()
    else
      local ok, err = coroutine.resume(coroutine.create(spin))
      -- a kill inside the coroutine comes back as resume's error: the command must still end
      ctx.reply("resume returned " .. tostring(ok) .. " " .. tostring(err))
    end
  end }
"""

# what coroutine.wrap's function does besides yielding: errors with where they were raised, a
# dead coroutine, values through yields, an error object that is not a string
WRAP_SEMANTICS = """return { name = "wrapsem", help = "wrapsem — coroutine.wrap's edges",
  run = function(ctx)
    local echo = coroutine.wrap(function(a, b) local c = coroutine.yield(a + b) return c, "end" end)
    local first = echo(1, 2)
    local last, tag = echo(40)
    local dead_ok, dead = pcall(echo)
    local boom = coroutine.wrap(function() error("boom") end)
    local _, raised = pcall(boom)
    local obj = coroutine.wrap(function() error({ code = 7 }) end)
    local _, got = pcall(obj)
    local _, again = pcall(boom)
    local self_call
    self_call = coroutine.wrap(function() return select(2, pcall(self_call)) end)
    local inner = self_call()
    ctx.reply(("wrap %s %s %s %s %s | %s | %s | %s | %s"):format(first, last, tag, tostring(dead_ok), dead,
      raised, type(got) == "table" and got.code or tostring(got), again, inner))
  end }
"""

SPIN_FOREVER = """return { name = "spin", help = "spin — loops",
  run = function(ctx) local n = 0 while true do n = n + 1 end end }
"""


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def http_raw(host, port, data, timeout=5.0, family=socket.AF_INET):
    """Send raw bytes, return everything the server answers until it closes (or the timeout)."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        if data:
            s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def healthz(port, host="127.0.0.1", family=socket.AF_INET):
    raw = http_raw(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                   family=family)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.") else 0
    return status, body


class ScriptIsolationTest(CommandBotTestCase):
    CHANNEL, THREAD = "C0ISOL", "1700000000.000100"

    def setUp(self):
        super().setUp()
        self.fs.add_channel(self.CHANNEL, "isolation")

    def test_a_long_computation_leaves_room_for_other_commands(self):
        self.bot_with({"crunch": CRUNCH, "hello": HELLO})
        self.ask("crunch 2.5")
        time.sleep(0.3)
        asked = time.monotonic()
        self.ask("hello while crunching")
        hello = self.wait_post(r"^hello while crunching")
        answered = time.monotonic() - asked
        crunched = self.wait_post(r"^crunched \d+", timeout=15)
        self.assertLess(hello["time"], crunched["time"],
                        "hello was answered only after the computation ended")
        self.assertLess(answered, 2.0)

    def test_zero_second_sleeps_yield_to_io_and_end_on_the_cpu_budget(self):
        bot = self.bot_with({"naps": ZERO_SLEEPS, "hello": HELLO}, {"budget": {"cpu_seconds": 1.5}})
        self.ask("naps")
        time.sleep(0.3)
        self.ask("hello during naps")
        self.wait_post(r"^hello during naps", timeout=5)
        self.wait_post(r"`naps` failed: cpu budget exceeded", timeout=20)
        self.assertLess(self.rss_kb(bot.pid), 200 * 1024, "memory grew while sleeping 0 s")
        self.ask("hello after")
        self.wait_post(r"^hello after")

    def test_sorting_8m_numbers_fails_with_a_reason_and_the_bot_goes_on(self):
        self.bot_with({"bigsort": BIG_SORT, "hello": HELLO})
        eid = self.ask("bigsort")
        self.wait_ack(eid)
        post = self.wait_post(r"`bigsort` failed: ", timeout=30)
        self.assertRegex(post["text"], r"table\.sort|memory cap|cpu budget")
        self.ask("hello after sort")
        self.wait_post(r"^hello after sort")

    def test_a_backtracking_pattern_fails_with_a_reason_and_the_bot_goes_on(self):
        self.bot_with({"backtrack": BACKTRACK, "hello": HELLO})
        self.ask("backtrack")
        time.sleep(0.5)
        eid = self.ask("hello meanwhile")
        ack = self.wait_ack(eid)
        self.assertLess(ack.time_acked - ack.time_sent, 0.5)
        self.wait_post(r"`backtrack` failed: cpu budget exceeded", timeout=20)
        self.wait_post(r"^hello meanwhile", timeout=10)

    def test_coroutines_made_by_a_script_work_in_every_generation(self):
        bot = self.bot_with({"co": COROUTINES})
        for generation in (1, 2):
            with self.subTest(generation=generation):
                n = len(self.fs.posts(channel=self.CHANNEL, thread_ts=self.THREAD))
                self.ask("co")
                post = self.wait_post(r"^co ", after=n)
                self.assertRegex(post["text"], r"^co 2 20 6 false .*host\.sleep yields")
                self.reload(bot)

    def test_a_spin_inside_a_script_made_coroutine_is_stopped(self):
        self.bot_with({"spinco": SPIN_IN_COROUTINE, "hello": HELLO},
                      {"budget": {"cpu_seconds": 60, "stretch_seconds": 1}})
        n = len(self.fs.posts(channel=self.CHANNEL, thread_ts=self.THREAD))
        self.ask("spinco resume")
        post = self.wait_post(r"`spinco` failed: |^resume returned", after=n, timeout=20)
        self.assertRegex(post["text"], r"`spinco` failed: cpu budget exceeded \(1 s without yielding\)")
        n = len(self.fs.posts(channel=self.CHANNEL, thread_ts=self.THREAD))
        self.ask("spinco wrap")
        post = self.wait_post(r"`spinco` failed: ", after=n, timeout=20)
        self.assertRegex(post["text"], r"cpu budget exceeded \(1 s without yielding\)")
        self.ask("hello after spinning")
        self.wait_post(r"^hello after spinning")

    def test_coroutine_wrap_keeps_luas_semantics(self):
        self.bot_with({"wrapsem": WRAP_SEMANTICS})
        self.ask("wrapsem")
        post = self.wait_post(r"^wrap ")
        self.assertRegex(post["text"],
                         r"^wrap 3 40 end false cannot resume dead coroutine"
                         r" \| \S*commands/wrapsem\.lua:7: boom \| 7 \| cannot resume dead coroutine"
                         r" \| cannot resume non-suspended coroutine$")  # (as lua5.4 says it)

    def test_sigterm_exits_zero_while_a_command_spins(self):
        bot = self.bot_with({"spin": SPIN_FOREVER}, {"budget": {"cpu_seconds": 60, "stretch_seconds": 60}})
        self.wait_ack(self.ask("spin"))
        time.sleep(0.5)
        eid = self.fs.send_event({"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
                                  "item": {"type": "message", "channel": self.CHANNEL, "ts": self.THREAD},
                                  "event_ts": "1700000001.000100"})
        ack = self.wait_ack(eid)
        self.assertLess(ack.time_acked - ack.time_sent, 0.5)
        started = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        rc = bot.wait(timeout=20)
        self.assertEqual(0, rc, bot.tail(20))
        self.assertLess(time.monotonic() - started, 15)

    @staticmethod
    def rss_kb(pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class HealthListenerTest(BotTestCase):
    def start_listening(self, listen=None):
        self.port = free_port()
        spec = listen or "127.0.0.1:%d" % self.port
        return self.start_bot(env={"POSTMORTEMBOT_LISTEN": spec})

    def assert_serving(self, bot, what):
        self.assertTrue(bot.running(), "the bot died after %s\n%s" % (what, bot.tail(30)))
        status, body = healthz(self.port)
        self.assertEqual(200, status, "after %s: %r" % (what, body))
        doc = json.loads(body)
        self.assertEqual("ok", doc["status"])
        self.assertEqual("ok", doc["script_loop"])
        eid = self.fs.send_event({"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
                                  "item": {"type": "message", "channel": "C0X", "ts": "1.1"},
                                  "event_ts": "%.6f" % time.time()})
        self.fs.wait_for(lambda: self.fs.ack_for(eid), timeout=5, what="an ack after %s" % what)

    def test_probes_and_garbage_leave_the_bot_serving(self):
        bot = self.start_listening()
        probes = {
            "connect and close": b"",
            "a request line, then close": b"GET /healthz HTTP/1.1\r\n",
            "a TLS ClientHello": bytes.fromhex("16030100a5010000a10303") + os.urandom(64),
            "an HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",
            "a 100 KB header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
            "binary garbage": os.urandom(4096),
            "a bare newline storm": b"\r\n" * 5000,
        }
        for what, data in probes.items():
            with self.subTest(what):
                http_raw("127.0.0.1", self.port, data, timeout=2.0)
                self.assert_serving(bot, what)

    def test_a_half_open_request_is_closed_by_the_server(self):
        bot = self.start_listening()
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        s.settimeout(40)
        started = time.monotonic()
        try:
            data = s.recv(4096)
            while data:
                data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            pass
        finally:
            s.close()
        self.assertLess(time.monotonic() - started, 39, "the half-open request was never closed")
        self.assert_serving(bot, "a half-open request")

    def test_websocket_upgrades_are_refused(self):
        bot = self.start_listening()
        answer = http_raw("127.0.0.1", self.port,
                          b"GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                          timeout=5.0)
        self.assertNotIn(b" 101 ", answer.split(b"\r\n", 1)[0], answer[:200])
        self.assert_serving(bot, "an upgrade request")

    def test_two_thousand_idle_connections_leave_socket_mode_working(self):
        limit = raise_fd_limit(4096)
        if limit < 2200:
            self.skipTest("cannot open 2,000 sockets here (fd limit %d)" % limit)
        bot = self.start_listening()
        held = []
        try:
            for _ in range(2000):
                s = socket.socket()
                s.setblocking(False)
                err = s.connect_ex(("127.0.0.1", self.port))
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    continue
                held.append(s)
            time.sleep(1.0)
            fds = len(os.listdir("/proc/%d/fd" % bot.pid))
            self.assertLess(fds, 300, "the bot holds %d descriptors for idle probes" % fds)
            # Socket Mode on the same thread goes on: an event is acked, a reconnect works
            eid = self.fs.send_event({"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
                                      "item": {"type": "message", "channel": "C0X", "ts": "1.1"},
                                      "event_ts": "1700000002.000100"})
            self.fs.wait_for(lambda: self.fs.ack_for(eid), timeout=5, what="an ack under 2,000 probes")
            mark = bot.mark()
            self.fs.send_disconnect("refresh_requested")
            bot.wait_log(r'msg="socket mode connected"', after=mark, timeout=15)
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if healthz(self.port)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.fail("/healthz did not come back after the idle connections closed")
            time.sleep(0.2)
        self.assert_serving(bot, "2,000 idle connections")

    def test_listens_on_the_configured_address_only(self):
        bot = self.start_listening()
        self.assertEqual(200, healthz(self.port)[0])
        # every 127/8 address is local: a wildcard bind would answer on 127.0.0.2 too
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", self.port), timeout=2).close()
        self.assertTrue(bot.running())

    def test_ipv6_loopback_and_names(self):
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            self.skipTest("no IPv6 loopback here")
        port = free_port()
        self.port = port
        bot = self.start_bot(env={"POSTMORTEMBOT_LISTEN": "[::1]:%d" % port})
        self.assertEqual(200, healthz(port, "::1", socket.AF_INET6)[0])
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        bot.stop()
        port = free_port()
        self.start_bot(env={"POSTMORTEMBOT_LISTEN": "localhost:%d" % port})
        self.assertEqual(200, healthz(port)[0])

    def test_an_address_that_cannot_be_bound_stops_the_start_with_a_reason(self):
        bot = self.make_bot(env={"POSTMORTEMBOT_LISTEN": "192.0.2.1:%d" % free_port()})
        bot.start(wait_connected=False)
        rc = bot.wait(timeout=15)
        self.assertEqual(1, rc, bot.tail(20))
        bot.wait_log(r'msg="could not listen".*error=', timeout=1)
        bad = self.make_bot(env={"POSTMORTEMBOT_LISTEN": "no-port-here"})
        bad.start(wait_connected=False)
        self.assertEqual(1, bad.wait(timeout=15), bad.tail(20))
        bad.wait_log(r"listen .*must be .*host:port", timeout=1)


class TokenRefusalTest(BotTestCase):
    def test_a_refused_app_token_exits_1_with_an_unredacted_hint(self):
        bot = self.make_bot(env={"SLACK_APP_TOKEN": "xapp-1-refused-by-the-fake"})
        bot.start(wait_connected=False)
        self.assertEqual(1, bot.wait(timeout=20), bot.tail(20))
        line = bot.wait_log(r'msg="apps.connections.open refused the app token', timeout=1)
        self.assertIn("an xapp- token with connections:write", line.line)
        self.assertNotIn("refused-by-the-fake", bot.log_text())

    def test_a_transient_open_failure_is_retried(self):
        self.fs.fault("apps.connections.open", status=500)
        bot = self.start_bot(timeout=30)
        self.assertTrue(bot.running())
        self.assertGreaterEqual(len(self.fs.calls("apps.connections.open")), 2)


class EnvelopeIdTest(BotTestCase):
    """Issue 14 item 7: every envelope whose id can be read is acked with that id, whole."""

    def test_long_nul_and_lone_surrogate_envelopes_are_acked_exactly(self):
        self.start_bot()
        reaction = {"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
                    "item": {"type": "message", "channel": "C0X", "ts": "1.1"}, "event_ts": "2.2"}
        cases = {"a 300-character id": "k" * 300, "an id with a NUL": "nul\u0000id"}
        for what, eid in cases.items():
            with self.subTest(what):
                sent = self.fs.send_event(dict(reaction), envelope_id=eid)
                self.assertEqual(eid, sent)
                self.fs.wait_for(lambda: self.fs.ack_for(eid), timeout=5, what="the ack of %s" % what)
        broken = dict(reaction, reaction="lone \ud800 surrogate")
        eid = self.fs.send_event(broken, envelope_id="surrogate-1")
        self.fs.wait_for(lambda: self.fs.ack_for(eid), timeout=5, what="the ack of a lone surrogate frame")
