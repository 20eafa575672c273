#!/usr/bin/env python3
"""End to end for core/http.c: the real binary against the fake Slack, driven through a test-only
command (tests/e2e/http_probe_command.lua, copied into a temp scripts dir) that calls host.api,
host.download and host.http and logs each outcome. Checks: Retry-After honoured per method while
other methods flow, 5xx retried then success, ok:false not retried (missing_scope details kept),
an HTML 200 failing as bad_response after a bounded number of tries, the login page, same-host
and cross-host redirects (no token to the other host), the size cap, 5xx on a download retried,
no partial file ever left, and host.http retries on 5xx. Uses tests/e2e/harness.py."""
import os
import re
import shutil
import time

from harness import REPO, BotTestCase, WebhookSink

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "http_probe_command.lua")
ALICE = "U0ALICE"
CHANNEL = "C0HTTP"
LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt(line):
    out = {}
    for k, v in LOGFMT.findall(line):
        if v.startswith('"'):
            v = re.sub(r'\\(.)', r'\1', v[1:-1])
        out[k] = v
    return out


class HttpTest(BotTestCase):
    def setUp(self):
        super().setUp()
        self.fs.add_user(ALICE, "alice")
        self.fs.add_channel(CHANNEL, "http-tests", members=[ALICE])
        self.parent = self.fs.add_thread(CHANNEL, 1)

    def start_probe_bot(self, config=None):
        bot = self.make_bot(config)
        scripts, _ = bot.scripts_copy()
        shutil.copy(PROBE, os.path.join(scripts, "commands", "httpprobe.lua"))
        bot.start()
        self.bot = bot
        return bot

    def probe(self, text):
        """Send `httpprobe …` as a mention; returns the log mark to wait after."""
        mark = self.bot.mark()
        self.fs.mention(CHANNEL, ALICE, "httpprobe " + text, thread_ts=self.parent)
        return mark

    def result(self, tag, after=0, timeout=20):
        m = self.bot.wait_log(r'msg=httpprobe .*\btag=%s\b' % re.escape(tag), timeout=timeout, after=after)
        return logfmt(m.line)

    def api_times(self, method):
        with self.fs.lock:
            return [r["time"] for r in self.fs.requests if r.get("api_method") == method]

    def dl_dir(self):
        return os.path.join(self.bot.data_dir, "dl")

    def assert_no_partials(self):
        d = self.dl_dir()
        names = os.listdir(d) if os.path.isdir(d) else []
        self.assertEqual([], [n for n in names if ".part" in n], names)

    # --- Web API --------------------------------------------------------------------------
    def test_retry_after_gates_only_that_method(self):
        self.start_probe_bot()
        self.fs.fault("users.info", status=429, retry_after=2)
        m = self.probe("api first users.info user=%s" % ALICE)
        self.bot.wait_log(r'msg="rate limited; method paused" method=users\.info retry_after_s=2', after=m)
        t429 = self.api_times("users.info")[0]
        # while the gate is closed: another call to the same method waits, another method flows
        self.probe("api second users.info user=%s" % ALICE)
        self.probe("api other auth.test")
        other = self.result("other", after=m)
        self.assertEqual("true", other["ok"], other)
        with self.fs.lock:
            auth_done = [r["time"] for r in self.fs.requests if r.get("api_method") == "auth.test"][-1]
        self.assertLess(auth_done - t429, 1.5, "auth.test waited for the users.info gate")
        first = self.result("first", after=m)
        second = self.result("second", after=m)
        self.assertEqual("true", first["ok"], first)
        self.assertEqual("true", second["ok"], second)
        times = self.api_times("users.info")
        self.assertEqual(3, len(times), "one 429 then one call each")
        for t in times[1:]:
            self.assertGreaterEqual(t - t429, 1.9, "a users.info went out before Retry-After ended")

    def test_5xx_retried_then_success(self):
        self.start_probe_bot()
        self.fs.fault("users.info", status=503, times=2)
        m = self.probe("api flaky users.info user=%s" % ALICE)
        res = self.result("flaky", after=m)
        self.assertEqual("true", res["ok"], res)
        self.assertEqual(3, len(self.fs.calls("users.info")))
        self.bot.wait_log(r'msg="api call failed; retrying" method=users\.info', after=m)

    def test_5xx_retries_are_bounded(self):
        self.start_probe_bot({"http": {"max_retries": 2, "max_retry_time": 60}})
        self.fs.always_fail("users.info", status=500)
        m = self.probe("api down users.info user=%s" % ALICE)
        res = self.result("down", after=m, timeout=30)
        self.assertEqual("false", res["ok"])
        self.assertEqual("http_status", res["code"])
        self.assertEqual("500", res["status"])
        self.assertEqual(3, len(self.fs.calls("users.info")))

    def test_ok_false_is_not_retried(self):
        self.start_probe_bot()
        body = '{"ok":false,"error":"missing_scope","needed":"users:read","provided":"chat:write"}'
        self.fs.fault("users.info", status=200, body=body)
        m = self.probe("api scope users.info user=%s" % ALICE)
        res = self.result("scope", after=m)
        self.assertEqual("false", res["ok"])
        self.assertEqual("missing_scope", res["code"])
        self.assertEqual("users:read", res["needed"])
        self.assertEqual("chat:write", res["provided"])
        time.sleep(0.5)
        self.assertEqual(1, len(self.fs.calls("users.info")))

    def test_html_200_is_a_bad_response_after_bounded_tries(self):
        self.start_probe_bot()
        self.fs.always_fail("users.info", status=None, html=True)
        m = self.probe("api html users.info user=%s" % ALICE)
        res = self.result("html", after=m, timeout=30)
        self.assertEqual("false", res["ok"])
        self.assertEqual("bad_response", res["code"])
        self.assertEqual(3, len(self.fs.calls("users.info")))

    # --- downloads ------------------------------------------------------------------------
    def test_download_ok_and_same_host_redirect_keeps_the_token(self):
        self.start_probe_bot()
        f1 = self.fs.add_file("F0PLAIN", "plain.bin", 300000)
        f2 = self.fs.add_file("F0SAME", "same.bin", 70000, mode="redirect_same")
        m = self.probe("download plain %s" % f1["url_private"])
        self.probe("download same %s" % f2["url_private"])
        for tag, fid in (("plain", "F0PLAIN"), ("same", "F0SAME")):
            res = self.result(tag, after=m)
            self.assertEqual("true", res["ok"], res)
            self.assertEqual(self.fs.file_sha256(fid), res["sha256"])
            with open(os.path.join(self.dl_dir(), tag + ".bin"), "rb") as fh:
                self.assertEqual(self.fs.file_bytes(fid), fh.read())
        self.assert_no_partials()

    def test_cross_host_redirect_gets_no_token(self):
        self.start_probe_bot()
        f = self.fs.add_file("F0OTHER", "other.bin", 50000, mode="redirect_other")
        m = self.probe("download other %s" % f["url_private"])
        res = self.result("other", after=m)
        self.assertEqual("true", res["ok"], res)
        self.assertEqual(self.fs.file_sha256("F0OTHER"), res["sha256"])
        with self.fs.lock:
            other = list(self.fs.other_requests)
        self.assertEqual(1, len(other))
        self.assertFalse(other[0]["auth"], "the token went to a host off the allow-list")
        self.assertFalse(self.fs.other_auth_seen)

    def test_login_page(self):
        self.start_probe_bot()
        f = self.fs.add_file("F0LOGIN", "secret.pdf", b"%PDF-1.7 not this", mode="login_page")
        m = self.probe("download login %s" % f["url_private"])
        res = self.result("login", after=m)
        self.assertEqual("false", res["ok"])
        self.assertEqual("login_page", res["code"])
        self.assertFalse(os.path.exists(os.path.join(self.dl_dir(), "login.bin")))
        self.assert_no_partials()

    def test_size_cap(self):
        self.start_probe_bot({"downloads": {"max_bytes": 1024 * 1024}})
        big = self.fs.add_file("F0BIG", "big.bin", 3 * 1024 * 1024)
        small = self.fs.add_file("F0SMALL", "small.bin", 5000)
        m = self.probe("download big %s" % big["url_private"])
        self.probe("download capped %s 4000" % small["url_private"])
        for tag in ("big", "capped"):
            res = self.result(tag, after=m)
            self.assertEqual("false", res["ok"], res)
            self.assertEqual("too_large", res["code"])
            self.assertFalse(os.path.exists(os.path.join(self.dl_dir(), tag + ".bin")))
        self.assert_no_partials()

    def test_download_5xx_retried_and_404_not(self):
        self.start_probe_bot()
        f = self.fs.add_file("F0FLAKY", "flaky.bin", 20000)
        gone = self.fs.add_file("F0GONE", "gone.bin", 10, mode="status", status=404)
        self.fs.fault("download", status=503)
        m = self.probe("download flaky %s" % f["url_private"])
        res = self.result("flaky", after=m)
        self.assertEqual("true", res["ok"], res)
        self.assertEqual(self.fs.file_sha256("F0FLAKY"), res["sha256"])
        m = self.probe("download gone %s" % gone["url_private"])
        res = self.result("gone", after=m)
        self.assertEqual("http_status", res["code"])
        self.assertEqual("404", res["status"])
        self.assertFalse(os.path.exists(os.path.join(self.dl_dir(), "gone.bin")))
        self.assert_no_partials()

    # --- plain requests -------------------------------------------------------------------
    def test_plain_request_retries_5xx_and_returns_the_final_status(self):
        sink = WebhookSink().start()
        self.addCleanup(sink.stop)
        sink.script("/hook", [502, 201])
        sink.script("/bad", [500, 500])
        self.start_probe_bot()
        m = self.probe("post hook %shook 2" % sink.url)
        res = self.result("hook", after=m)
        self.assertEqual("true", res["ok"], res)
        self.assertEqual("201", res["http_status"])
        self.assertEqual(2, len(sink.requests_for("/hook")))
        self.assertNotIn("authorization", sink.requests_for("/hook")[0]["headers"])
        m = self.probe("post bad %sbad 1" % sink.url)
        res = self.result("bad", after=m)
        self.assertEqual("true", res["ok"], res)  # a 5xx is an answer, not an error
        self.assertEqual("500", res["http_status"])
        self.assertEqual(2, len(sink.requests_for("/bad")))


if __name__ == "__main__":
    import unittest
    unittest.main()
