"""Socket Mode end to end: the real binary against the fake Slack's WebSocket.

Covers core/socketmode.c, core/ws.c and core/dedupe.c from outside: connect + hello + ack, acks
while scripts fail or spin, make-before-break on `disconnect`, redeliveries, malformed frames,
dropped TCP, a peer that ignores the close handshake, the ping watchdog, link_disabled, SIGTERM.
"Handled" means the host's per-envelope log line `msg="envelope" ... event_id=<id>`.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import CONNECTED, BotTestCase

import wsproto

REACTION = {"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
            "item": {"type": "message", "channel": "C0SM", "ts": "1700000000.000100"},
            "event_ts": "1700000001.000100"}


def make_certs(directory):
    """A test CA with a certificate for "localhost", and an unrelated CA. Returns the paths."""
    if not shutil.which("openssl"):
        raise unittest.SkipTest("no openssl command")

    def run(*args):
        subprocess.run(("openssl",) + args, cwd=directory, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=pmb-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem",
        "-days", "2", "-subj", "/CN=pmb-other-ca")
    return {name: os.path.join(directory, name) for name in ("ca.pem", "srv.pem", "srv.key", "other.pem")}


class TlsProxy:
    """Terminates TLS on 127.0.0.1 (certificate for "localhost") and pipes bytes to the fake Slack."""

    def __init__(self, certs, target_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certs["srv.pem"], certs["srv.key"])
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes_failed = 0
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes_failed += 1
            raw.close()
            return
        up = socket.create_connection(("127.0.0.1", self.target_port))
        self.socks += [tls, up]
        threading.Thread(target=self._pipe, args=(up, tls), daemon=True).start()
        self._pipe(tls, up)

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.listener.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


class SocketModeTest(BotTestCase):

    # --- helpers --------------------------------------------------------------------------
    def handled(self, bot, event_id):
        """How many times the host logged the envelope carrying event_id."""
        pat = re.compile(r'msg=envelope\b.*\bevent_id=%s\b' % re.escape(event_id))
        return sum(1 for line in bot.log_text().splitlines() if pat.search(line))

    def wait_handled(self, bot, event_id, timeout=10):
        bot.wait_log(r'msg=envelope\b.*\bevent_id=%s\b' % re.escape(event_id), timeout=timeout)

    def wait_ack(self, envelope_id, timeout=5):
        return self.fs.wait_for(lambda: self.fs.ack_for(envelope_id), timeout=timeout,
                                what="the ack of %s" % envelope_id)

    def send_reaction(self, event_id, **kw):
        return self.fs.send_event(dict(REACTION), event_id=event_id, **kw)

    def count_connected(self, bot):
        return sum(1 for line in bot.log_text().splitlines() if 'msg="socket mode connected"' in line)

    def serve_wss(self):
        """Make apps.connections.open return wss://localhost:<proxy>/... in front of the fake."""
        tmp = tempfile.mkdtemp(prefix="pmb-tls-")
        self.addCleanup(shutil.rmtree, tmp, True)
        certs = make_certs(tmp)
        proxy = TlsProxy(certs, self.fs.port)
        self.addCleanup(proxy.stop)
        plain = self.fs._issue_ws_url
        prefix = "ws://127.0.0.1:%d/" % self.fs.port
        self.fs._issue_ws_url = lambda: plain().replace(prefix, "wss://localhost:%d/" % proxy.port)
        return certs, proxy

    # --- tests ----------------------------------------------------------------------------
    def test_connect_hello_ack(self):
        bot = self.start_bot()
        line = bot.wait_log(CONNECTED).line
        self.assertRegex(line, r"num_connections=1\b")
        self.assertEqual(len(self.fs.calls("apps.connections.open")), 1)
        self.assertEqual(self.fs.connect_count, 1)
        env_id = self.send_reaction("Ev0CONNECT1")
        ack = self.wait_ack(env_id)
        self.assertEqual(ack.conn_id, 1)
        self.wait_handled(bot, "Ev0CONNECT1")
        # the ack is exactly {"envelope_id": ...}, nothing else
        sent = [m for m in self.fs.connections[0].received if isinstance(m, dict) and "envelope_id" in m]
        self.assertEqual(sent, [{"envelope_id": env_id}])
        # the ticket in the WebSocket URL is a credential: never logged
        ticket = self.fs.connections[0].ticket
        self.assertTrue(ticket)
        self.assertNotIn(ticket, bot.log_text())

    def test_ack_while_scripts_fail_or_spin(self):
        bot = self.make_bot({"budget": {"cpu_seconds": 4}})
        scripts, _ = bot.scripts_copy()
        with open(os.path.join(scripts, "commands", "spin.lua"), "w") as f:
            f.write('-- test command: loops until the CPU budget kills it\n'
                    'return { name = "spin", help = "spin", run = function(ctx, args)\n'
                    '  local n = 0\n  while true do n = n + 1 end\nend }\n')
        with open(os.path.join(scripts, "commands", "boom.lua"), "w") as f:
            f.write('-- test command: always raises\n'
                    'return { name = "boom", help = "boom", run = function(ctx, args)\n'
                    '  error("boom on purpose")\nend }\n')
        bot.start()
        self.fs.add_channel("C0SM", "sm-test")
        self.fs.add_user("U0ALICE", "alice")
        _, boom_env = self.fs.mention("C0SM", "U0ALICE", "boom")
        self.wait_ack(boom_env)
        t0 = time.monotonic()
        _, spin_env = self.fs.mention("C0SM", "U0ALICE", "spin")
        ack = self.wait_ack(spin_env, timeout=3)
        # acked long before the 4 s CPU budget could end the spinning script
        self.assertLess(ack.time_acked - ack.time_sent, 1.0)
        self.assertLess(time.monotonic() - t0, 3.0)
        # the bot goes on: still one connection, and later envelopes are acked and handled
        env_id = self.send_reaction("Ev0AFTERSPIN")
        self.wait_ack(env_id, timeout=10)
        self.wait_handled(bot, "Ev0AFTERSPIN", timeout=10)
        self.assertEqual(self.fs.connect_count, 1)
        self.assertTrue(bot.running())

    def test_refresh_requested_make_before_break(self):
        bot = self.start_bot()
        old = self.fs.connections[0]
        self.fs.hello_delay = 0.7  # the new connection says hello late: the old one must keep working
        mark = bot.mark()
        self.fs.send_disconnect("refresh_requested", conn=old)
        self.fs.wait_for(lambda: self.fs.connect_count == 2, timeout=10, what="a second connection")
        new = self.fs.connections[1]
        env_old = self.send_reaction("Ev0ONOLD", conn=old)
        self.assertEqual(self.wait_ack(env_old).conn_id, old.id)
        bot.wait_log(CONNECTED, after=mark, timeout=10)
        env_new = self.send_reaction("Ev0ONNEW", conn=new)
        self.assertEqual(self.wait_ack(env_new).conn_id, new.id)
        self.wait_handled(bot, "Ev0ONOLD")
        self.wait_handled(bot, "Ev0ONNEW")
        # the old connection is closed politely by the bot once the new one is up
        self.fs.wait_for(lambda: not old.open, timeout=5, what="the old connection to close")
        self.assertEqual(old.close_code, 1000)
        self.assertTrue(new.open)
        time.sleep(0.5)
        self.assertEqual(self.handled(bot, "Ev0ONOLD"), 1)
        self.assertEqual(self.handled(bot, "Ev0ONNEW"), 1)
        self.assertEqual(self.fs.connect_count, 2)
        self.assertEqual(len(self.fs.calls("apps.connections.open")), 2)

    def test_disconnect_warning_then_drop(self):
        # Slack drops the TCP connection soon after a disconnect message
        bot = self.start_bot()
        mark = bot.mark()
        self.fs.send_disconnect("warning", drop_after=0.05)
        bot.wait_log(CONNECTED, after=mark, timeout=10)
        env_id = self.send_reaction("Ev0AFTERWARN")
        self.assertEqual(self.wait_ack(env_id).conn_id, 2)
        self.wait_handled(bot, "Ev0AFTERWARN")

    def test_redelivery_acked_not_handled_twice(self):
        bot = self.start_bot()
        first = self.send_reaction("Ev0REDELIVER")
        self.wait_ack(first)
        self.wait_handled(bot, "Ev0REDELIVER")
        # Slack's retry: same event_id, new envelope_id, retry_attempt 1
        retry = self.send_reaction("Ev0REDELIVER", retry_attempt=1)
        self.wait_ack(retry)
        # the very same envelope again
        self.send_reaction("Ev0REDELIVER2", envelope_id="env-dup-1")
        self.send_reaction("Ev0REDELIVER3", envelope_id="env-dup-1")
        self.fs.wait_for(lambda: len([a for a in self.fs.acks if a.envelope_id == "env-dup-1"]) == 2,
                         timeout=5, what="both acks of env-dup-1")
        marker = self.send_reaction("Ev0MARKER")
        self.wait_ack(marker)
        self.wait_handled(bot, "Ev0MARKER")
        self.assertEqual(self.handled(bot, "Ev0REDELIVER"), 1)
        self.assertEqual(self.handled(bot, "Ev0REDELIVER2"), 1)
        self.assertEqual(self.handled(bot, "Ev0REDELIVER3"), 0)
        self.assertEqual(len(re.findall(r'msg="duplicate envelope skipped"', bot.log_text())), 2)

    def test_malformed_frames_skipped(self):
        bot = self.start_bot({"socket": {"max_frame": 4096}})
        mark = bot.mark()
        self.fs.send_raw("this is not JSON")
        self.fs.send_raw(b"\xff\xfe not utf-8 either")
        self.fs.send_raw(json.dumps({"envelope_id": "no-type-here"}))
        self.fs.send_raw(json.dumps({"type": "surprise", "data": 1}))
        self.fs.send_raw(json.dumps({"type": "events_api", "payload": {"event_id": "Ev0NOENVID"}}))
        self.fs.send_raw(b"\x00\x01\x02", binary=True)
        self.fs.send_raw(json.dumps({"envelope_id": "too-big", "type": "events_api",
                                     "payload": {"event_id": "Ev0TOOBIG", "pad": "x" * 10000}}))
        # a message in two fragments is fine
        text = json.dumps({"envelope_id": "frag-1", "type": "events_api",
                           "payload": {"event_id": "Ev0FRAGMENT", "type": "event_callback", "event": REACTION}})
        half = len(text) // 2
        self.fs.send_frame(wsproto.OP_TEXT, text[:half].encode(), fin=False)
        self.fs.send_frame(wsproto.OP_CONT, text[half:].encode(), fin=True)
        good = self.send_reaction("Ev0AFTERJUNK")
        self.wait_ack("frag-1")
        self.wait_ack(good)
        self.wait_handled(bot, "Ev0FRAGMENT")
        self.wait_handled(bot, "Ev0AFTERJUNK")
        skipped = [ln for ln in bot.log_lines[mark:] if 'msg="malformed socket mode frame skipped"' in ln]
        self.assertEqual(len(skipped), 7, "\n".join(skipped))
        self.assertTrue(any("why=binary" in ln for ln in skipped))
        self.assertTrue(any("why=too_large" in ln for ln in skipped))
        # an envelope_id is acked even when the frame is otherwise unusable
        self.wait_ack("no-type-here")
        self.assertIsNone(self.fs.ack_for("too-big"))
        self.assertEqual(self.handled(bot, "Ev0NOENVID"), 0)
        # the connection was left alone
        self.assertEqual(self.fs.connect_count, 1)
        self.assertTrue(self.fs.connections[0].open)

    def test_dropped_tcp_reconnects(self):
        bot = self.start_bot()
        mark = bot.mark()
        self.fs.drop()
        bot.wait_log(r'msg="socket mode connection lost"', after=mark, timeout=5)
        bot.wait_log(CONNECTED, after=mark, timeout=10)
        self.assertEqual(self.fs.connect_count, 2)
        env_id = self.send_reaction("Ev0AFTERDROP")
        self.assertEqual(self.wait_ack(env_id).conn_id, 2)
        self.wait_handled(bot, "Ev0AFTERDROP")

    def test_close_handshake_ignored_is_abandoned(self):
        bot = self.start_bot({"socket": {"close_timeout": 1}})
        old = self.fs.connections[0]
        self.fs.ignore_close = True
        mark = bot.mark()
        self.fs.send_disconnect("refresh_requested", conn=old)
        bot.wait_log(CONNECTED, after=mark, timeout=10)
        self.fs.wait_for(lambda: old.close_received_at, timeout=5, what="the bot's close frame")
        self.fs.wait_for(lambda: not old.open, timeout=5, what="the bot to drop the old TCP connection")
        waited = old.closed_at - old.close_received_at
        self.assertGreater(waited, 0.5)
        self.assertLess(waited, 2.5)
        self.assertTrue(self.fs.connections[1].open)

    def test_silent_peer_watchdog(self):
        bot = self.start_bot({"socket": {"ping_interval": 0.3, "pong_timeout": 1.5}})
        first = self.fs.connections[0]
        self.fs.no_pong = True
        mark = bot.mark()
        bot.wait_log(r'msg="no frame from Slack in time; dropping the connection"', after=mark, timeout=6)
        self.fs.no_pong = False
        bot.wait_log(CONNECTED, after=mark, timeout=10)
        self.assertTrue(first.pings, "the bot never pinged")
        self.fs.wait_for(lambda: not first.open, timeout=5, what="the silent connection to be dropped")

    def test_link_disabled_stops_reconnecting(self):
        bot = self.start_bot()
        mark = bot.mark()
        self.fs.send_disconnect("link_disabled")
        bot.wait_log(r'level=error msg="Socket Mode is disabled in the app settings"', after=mark, timeout=5)
        self.fs.wait_for(lambda: not self.fs.connections[0].open, timeout=5, what="the connection to close")
        time.sleep(1.5)
        self.assertEqual(self.fs.connect_count, 1)
        self.assertEqual(len(self.fs.calls("apps.connections.open")), 1)
        self.assertTrue(bot.running())

    def test_sigterm_closes_politely_and_exits_0(self):
        bot = self.start_bot()
        conn = self.fs.connections[0]
        t0 = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        self.assertEqual(bot.wait(timeout=10), 0)
        self.assertLess(time.monotonic() - t0, 4.0)
        self.assertEqual(conn.close_code, 1000)

    def test_sigterm_with_peer_ignoring_close(self):
        bot = self.start_bot({"socket": {"close_timeout": 1}})
        self.fs.ignore_close = True
        t0 = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        self.assertEqual(bot.wait(timeout=10), 0)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertIsNotNone(self.fs.connections[0].close_received_at)

    def test_wss_verified_against_ssl_cert_file(self):
        certs, _ = self.serve_wss()
        bot = self.start_bot(env={"SSL_CERT_FILE": certs["ca.pem"]})
        env_id = self.send_reaction("Ev0OVERTLS")
        self.wait_ack(env_id)
        self.wait_handled(bot, "Ev0OVERTLS")

    def test_wss_with_an_unknown_ca_is_refused(self):
        certs, proxy = self.serve_wss()
        bot = self.start_bot(env={"SSL_CERT_FILE": certs["other.pem"], "CURL_CA_BUNDLE": None},
                             wait_connected=False)
        bot.wait_log(r'msg="socket mode connect failed".*reason="TLS certificate: ', timeout=10)
        self.assertEqual(self.fs.connect_count, 0)
        # the bot logs the refusal as soon as it rejects the certificate; the proxy's thread
        # records its side of the failed handshake a moment later
        self.fs.wait_for(lambda: proxy.handshakes_failed >= 1, timeout=5,
                         what="the proxy to see the refused TLS handshake")
