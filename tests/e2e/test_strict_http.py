#!/usr/bin/env python3
"""End to end, HTTP as strict servers speak it (issue 10, item 2). First the fake Slack and the
webhook sink themselves: 417 for an Expect other than 100-continue (an empty one too), 400 for a
malformed header line. Then the real bot through an independent HTTP implementation: Node's http
module (Debian package nodejs, tests/e2e/node_http.js) as a reverse proxy in front of the fake
Slack (every Web API call, apps.connections.open included) and as the webhook receiver, for an
autopsy of the incident fixture and a statusupdate. Skipped when node is not installed.
Uses tests/e2e/harness.py and tests/fakeslack."""
import json
import os
import shutil
import socket
import subprocess
import unittest
import urllib.request

from harness import BotTestCase, FakeSlack, WebhookSink

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_HTTP = os.path.join(HERE, "node_http.js")
ALICE = "U0ALICE"
STATUS = "C0STATUS"


def raw_request(port, head, body=b""):
    """Send a request written by hand; returns the status code of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def node_binary():
    return shutil.which("node") or shutil.which("nodejs")


class StrictServersTest(unittest.TestCase):
    """The fakes refuse what a strict server refuses, so a test through them sees it."""

    def check(self, port, path, violations):
        post = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        self.assertEqual(417, raw_request(port, post + b"Expect:\r\n\r\n", b"{}"))
        self.assertEqual(417, raw_request(port, post + b"Expect: \r\n\r\n", b"{}"))
        self.assertEqual(417, raw_request(port, post + b"Expect: 200-ok\r\n\r\n", b"{}"))
        self.assertEqual(400, raw_request(port, post + b"X-Bad Name: 1\r\n\r\n", b"{}"))
        self.assertEqual(400, raw_request(port, post + b"X-Space : 1\r\n\r\n", b"{}"))
        self.assertEqual(400, raw_request(port, post + b"X-Fold: a\r\n  b\r\n\r\n", b"{}"))
        self.assertEqual(400, raw_request(port, post + b"X-Ctl: a\x01b\r\n\r\n", b"{}"))
        self.assertEqual(7, len(violations))
        self.assertNotIn(raw_request(port, post + b"Expect: 100-continue\r\n\r\n", b"{}"), (400, 417))
        self.assertNotIn(raw_request(port, post + b"X-Ok: a b\tc\r\n\r\n", b"{}"), (400, 417))
        self.assertEqual(7, len(violations))

    def test_fake_slack_is_strict(self):
        fs = FakeSlack().start()
        self.addCleanup(fs.stop)
        self.check(fs.port, b"/api/auth.test", fs.strict_violations)

    def test_webhook_sink_is_strict(self):
        with WebhookSink() as sink:
            port = int(sink.url.rstrip("/").rsplit(":", 1)[1])
            self.check(port, b"/hook", sink.strict_violations)


class NodeHttp:
    """node node_http.js ROLE [ARG]: started, its port read from its first line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([node_binary(), NODE_HTTP] + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening "):
            self.stop()
            raise AssertionError("node_http.js did not start: %r %s" % (line, self.proc.stderr.read().decode()))
        self.url = "http://127.0.0.1:%d/" % int(line.split()[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@unittest.skipUnless(node_binary(), "node (Debian package nodejs) is not installed")
class ThroughNodeTest(BotTestCase):
    def test_autopsy_and_statusupdate_through_node(self):
        channel, parent = self.load_incident()
        self.fs.add_channel(STATUS, "status")
        proxy = NodeHttp("proxy", self.fs.base_url)
        self.addCleanup(proxy.stop)
        sink = NodeHttp("sink")
        self.addCleanup(sink.stop)
        hooks = [{"name": "node", "url": sink.url + "hook", "headers": {"Content-Type": "application/json"}}]
        bot = self.start_bot({"status": {"channels": [STATUS], "webhooks": hooks}},
                             env={"SLACK_API_URL": proxy.url + "api/"})
        # every Web API call went through Node (connecting already took apps.connections.open and auth.test)
        before = len(self.fs.uploads)
        self.fs.mention(channel, ALICE, "autopsy this", thread_ts=parent)
        self.fs.wait_for(lambda: len(self.fs.uploads) > before, timeout=120,
                         what="the report upload through Node (bot log:\n%s)" % bot.tail(40))
        names = [f["filename"] for f in self.fs.uploaded_files(channel, parent)]
        self.assertTrue(any(n.endswith(".md") for n in names), names)
        self.assertTrue(any(n.endswith(".zip") for n in names), names)

        ts, _ = self.fs.mention(channel, ALICE, "statusupdate Rollback under way", thread_ts=parent)
        self.fs.wait_for(lambda: any(p["ts"] > ts and "destinations" in p["text"]
                                     for p in self.fs.posts(channel, parent)), timeout=30,
                         what="the statusupdate reply (bot log:\n%s)" % bot.tail(40))
        reply = [p["text"] for p in self.fs.posts(channel, parent) if p["ts"] > ts and "destinations" in p["text"]][0]
        self.assertIn("sent to 2 of 2 destinations", reply)
        with urllib.request.urlopen(sink.url + "_requests", timeout=10) as r:
            got = json.loads(r.read())
        self.assertEqual(1, len(got))
        self.assertEqual("Rollback under way", json.loads(got[0]["body"])["text"])
        self.assertNotIn("expect", got[0]["headers"])
        with self.fs.lock:
            via_node = [r for r in self.fs.requests if r.get("api_method")]
        self.assertGreater(len(via_node), 5)
        self.assertEqual([], self.fs.strict_violations)


if __name__ == "__main__":
    unittest.main()
