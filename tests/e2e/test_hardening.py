#!/usr/bin/env python3
"""End to end, issue 14's hardening through the real binary (plain and ASan runs): downloads and
webhooks that would reach loopback, private, link-local or metadata addresses refused by default
(every redirect hop, IPv6 and mapped forms too) and allowed only when the config says so; mass
mentions relayed as text; webhook secret paths absent from logs; the unknown-command reply unable
to close its code span; distinct reasons for a truncated body, a redirect loop and file://; no
qsort on an empty attachments/ (ASan); one read rule for read_file, body_file and the zip base.
Bots here run with the shipped defaults (allow_loopback=False) unless a test says otherwise.
Uses tests/e2e/harness.py, tests/e2e/http_probe_command.lua and tests/fakeslack."""
import glob
import json
import os
import re
import shutil
import zipfile

from harness import BotTestCase, WebhookSink
from test_http import logfmt

PICTURE = "incident-timeline.svg"  # written by the bot itself (issue 17), never downloaded

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "http_probe_command.lua")
CHANNEL = "C0HARD"
STATUS = "C0STATUS"
ALICE, BOB = "U0ALICE", "U0BOB"
MASS = ("<!channel>", "<!here>", "<!everyone>", "<!subteam^S0ONCALL|@oncall>")


class HardeningTest(BotTestCase):
    def setUp(self):
        super().setUp()
        self.fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
        self.fs.add_user(ALICE, "alice")
        self.fs.add_user(BOB, "bob")
        self.fs.add_channel(CHANNEL, "hardening", members=[ALICE, BOB])
        self.fs.add_channel(STATUS, "status")
        self.parent = self.fs.add_thread(CHANNEL, 1, users=(ALICE, BOB))
        self.bot = None

    # --- helpers ----------------------------------------------------------------------------
    def start_probe_bot(self, config=None, allow_loopback=False):
        bot = self.make_bot(config, allow_loopback=allow_loopback)
        scripts, _ = bot.scripts_copy()
        shutil.copy(PROBE, os.path.join(scripts, "commands", "httpprobe.lua"))
        bot.start()
        self.bot = bot
        return bot

    def probe(self, text, timeout=30):
        tag = text.split()[1]
        mark = self.bot.mark()
        self.fs.mention(CHANNEL, ALICE, "httpprobe " + text, thread_ts=self.parent)
        m = self.bot.wait_log(r'msg=httpprobe .*\btag=%s\b' % re.escape(tag), timeout=timeout, after=mark)
        return logfmt(m.line)

    def redirecting_file(self, fid, location):
        f = self.fs.add_file(fid, fid.lower() + ".bin", b"internal secret bytes", mode="redirect_to")
        self.fs.set_file_mode(fid, "redirect_to", location=location)
        return f

    def autopsy(self, bot, parent, timeout=120):
        before = len(self.fs.uploads)
        self.fs.mention(CHANNEL, ALICE, "autopsy this", thread_ts=parent)
        self.fs.wait_for(lambda: len(self.fs.uploads) > before, timeout=timeout,
                         what="the report upload (bot log:\n%s)" % bot.tail(40))
        return os.path.join(bot.data_dir, "reports", CHANNEL, parent, "v1")

    def reply_to(self, text, thread_ts=None, timeout=20):
        """Mention the bot with text; returns the text of its first reply in the thread."""
        ts, _ = self.fs.mention(CHANNEL, ALICE, text, thread_ts=thread_ts or self.parent)
        def reply():
            for p in self.fs.posts(CHANNEL, thread_ts or self.parent):
                if p.get("ts", "0") > ts:
                    return p
            return None
        self.fs.wait_for(lambda: reply() is not None, timeout=timeout, what="the bot's reply")
        return reply()["text"]

    # --- 1: internal addresses --------------------------------------------------------------
    def test_1_downloads_refuse_internal_addresses_on_every_hop(self):
        self.start_probe_bot()
        other = self.fs.other_url.rstrip("/")
        port = other.rsplit(":", 1)[1]
        targets = {
            "lo": other + "/files-cdn/F0X/x",
            "localhost": "http://localhost:%s/files-cdn/F0X/x" % port,
            "v6lo": "http://[::1]:%s/x" % port,
            "mapped": "http://[::ffff:127.0.0.1]:%s/files-cdn/F0X/x" % port,
            "metadata": "http://169.254.169.254/latest/meta-data/",
            "private": "http://10.255.255.1/x",
            "zero": "http://0.0.0.0:%s/x" % port,
            "decimal": "http://2130706433:%s/x" % port,
        }
        for i, (tag, location) in enumerate(sorted(targets.items())):
            f = self.redirecting_file("F0R%d" % i, location)
            res = self.probe("download %s %s" % (tag, f["url_private"]))
            self.assertEqual("false", res["ok"], (tag, res))
            self.assertEqual("address_refused", res["code"], (tag, res))
        # a file URL that names an internal host itself (no redirect) is refused the same way
        res = self.probe("download direct %sfiles-cdn/F0X/x" % self.fs.other_url)
        self.assertEqual("address_refused", res["code"], res)
        with self.fs.lock:
            self.assertEqual([], list(self.fs.other_requests), "a request reached the internal host")
        self.assertEqual([], [n for n in os.listdir(os.path.join(self.bot.data_dir, "dl"))], "something was saved")
        # the api_base host itself stays reachable (Slack's own files, the upload URL)
        ok = self.fs.add_file("F0OK", "ok.bin", b"fine")
        self.assertEqual("true", self.probe("download ok %s" % ok["url_private"])["ok"])

    def test_1_allow_private_lets_a_download_and_a_webhook_through(self):
        sink = WebhookSink().start()
        self.addCleanup(sink.stop)
        self.start_probe_bot({"downloads": {"allow_private": True}})
        f = self.redirecting_file("F0R1", self.fs.other_url + "files-cdn/F0R1/x")
        self.fs.set_file_mode("F0R1", "redirect_to", location=self.fs.other_url + "files-cdn/F0R1/x")
        res = self.probe("download allowed %s" % f["url_private"])
        self.assertEqual("true", res["ok"], res)
        res = self.probe("post hook %shook 0" % sink.url)
        self.assertEqual("true", res["ok"], res)
        self.assertEqual(1, len(sink.requests_for("/hook")))

    def test_1_webhooks_to_internal_hosts_need_allow_private(self):
        sink = WebhookSink().start()
        self.addCleanup(sink.stop)
        hooks = [{"name": "inside", "url": sink.url + "inside"},
                 {"name": "relay", "url": sink.url + "relay", "allow_private": True}]
        self.start_bot({"status": {"channels": [STATUS], "webhooks": hooks}}, allow_loopback=False)
        reply = self.reply_to("statusupdate all good")
        self.assertIn("webhook inside: failed", reply)
        self.assertIn("internal", reply)
        self.assertIn("webhook relay: ok", reply)
        self.assertEqual([], sink.requests_for("/inside"))
        self.assertEqual(1, len(sink.requests_for("/relay")))

    def test_1_a_checked_webhook_never_rides_an_allow_listed_connection(self):
        # the allow-listed hook's kept-alive connection to the sink must not carry the checked
        # hook's request to the same host and port: each update refuses "inside" again
        sink = WebhookSink().start()
        self.addCleanup(sink.stop)
        # (inside first: the hooks start in order, so inside is the one offered the idle connection)
        hooks = [{"name": "inside", "url": sink.url + "inside", "retries": 0},
                 {"name": "relay", "url": sink.url + "relay", "allow_private": True, "retries": 0}]
        self.start_bot({"status": {"channels": [STATUS], "webhooks": hooks}}, allow_loopback=False)
        for i in range(3):
            reply = self.reply_to("statusupdate update %d" % i)
            self.assertIn("webhook relay: ok", reply)
            self.assertIn("webhook inside: failed", reply)
        self.assertEqual(3, len(sink.requests_for("/relay")))
        self.assertEqual([], sink.requests_for("/inside"))

    def test_1_autopsy_reports_the_refused_file_and_bundles_nothing_from_inside(self):
        f = self.redirecting_file("F0META", "http://169.254.169.254/latest/meta-data/iam")
        g = self.redirecting_file("F0LOOP", self.fs.other_url + "files-cdn/F0LOOP/x")
        self.fs.add_message(CHANNEL, {"type": "message", "user": BOB, "text": "files", "thread_ts": self.parent,
                                      "subtype": "file_share", "files": [f, g]})
        bot = self.start_bot(allow_loopback=False)
        v1 = self.autopsy(bot, self.parent)
        md = "".join(open(p, encoding="utf-8").read() for p in glob.glob(os.path.join(v1, "*.md")))
        self.assertEqual(2, md.count("internal address"), md)
        # nothing downloaded: the attachments are the bot's own incident picture alone (issue 17)
        self.assertEqual([PICTURE], os.listdir(os.path.join(v1, "attachments")))
        with self.fs.lock:
            self.assertEqual([], list(self.fs.other_requests))

    # --- 2: mass mentions -------------------------------------------------------------------
    def test_2_statusupdate_and_resolve_relay_no_mention(self):
        sink = WebhookSink().start()
        self.addCleanup(sink.stop)
        self.fs.add_usergroup("S0ONCALL", [BOB])
        hooks = [{"name": "relay", "url": sink.url + "hook", "allow_private": True}]
        self.start_bot({"status": {"channels": [STATUS], "webhooks": hooks}}, allow_loopback=False)
        typed = " ".join(MASS) + " <@U0BOB> &lt;!channel&gt; &lt;@U0BOB&gt; done"
        self.reply_to("statusupdate " + typed)
        self.reply_to("incident resolve " + typed)
        posts = self.fs.posts(STATUS)
        self.assertEqual(2, len(posts))
        for p in posts:
            self.assertIsNone(re.search(r"<[!@](?!U0ALICE)", p["text"]), p["text"])  # the author's own mention only
            self.assertIn("done", p["text"])
        thread = [p["text"] for p in self.fs.posts(CHANNEL, self.parent)]  # the bot's replies
        self.assertGreaterEqual(len(thread), 2)
        for text in thread:
            self.assertNotIn("<!", text)
            self.assertNotIn("<@U0BOB>", text)
        reqs = sink.requests_for("/hook")
        self.assertEqual(2, len(reqs))
        for r in reqs:
            body = json.loads(r["body"])
            for field in ("text", "message"):
                v = body[field]
                self.assertIsNone(re.search(r"<[!@#]", v), v)
                self.assertIsNone(re.search(r"@(channel|here|everyone)\b", v), v)

    def test_2_allow_mentions_keeps_them(self):
        self.start_bot({"status": {"channels": [STATUS], "allow_mentions": True}}, allow_loopback=False)
        self.reply_to("statusupdate <!here> back")
        self.assertIn("<!here> back", self.fs.posts(STATUS)[0]["text"])

    # --- 3: webhook secrets in logs ---------------------------------------------------------
    def test_3_a_webhook_secret_path_never_reaches_the_log(self):
        sink = WebhookSink().start()
        self.addCleanup(sink.stop)
        secret = "s3cr3tPathPart0123456789"
        path = "services/T0000000/B0000000/" + secret
        sink.script("/" + path, [500, 200])
        hooks = [{"name": "relay", "url": sink.url + path + "?k=" + secret, "retries": 1, "allow_private": True}]
        bot = self.start_bot({"status": {"channels": [STATUS], "webhooks": hooks}, "log_level": "debug"},
                             allow_loopback=False)
        self.reply_to("statusupdate hello")
        bot.wait_log(r'msg="request failed; retrying"')
        self.assertEqual(2, len(sink.requests_for("/" + path)))
        bot.stop()
        text = bot.log_text()
        self.assertNotIn(secret, text)
        self.assertNotIn("B0000000", text)
        self.assertIn("/services/...", text)

    # --- 4: the unknown-command reply -------------------------------------------------------
    def test_4_unknown_command_reply_cannot_close_its_code_span(self):
        self.start_bot(allow_loopback=False)
        for word in ("x`<!channel>", "``<!here>``", "a`<@U0BOB>`b", "x`&lt;!everyone&gt;"):
            text = self.reply_to("<@U0PMBOT> %s please" % word)
            quoted = re.match(r"^I don't know `([^`]*)`\. Try `<@U0PMBOT> help`", text)
            self.assertIsNotNone(quoted, text)
            self.assertNotIn("<", quoted.group(1))
            self.assertEqual(4, text.count("`"), text)
            self.assertEqual(1, text.count("<"), text)

    # --- 8: an empty attachments/ (every download failed) -----------------------------------
    def test_8_autopsy_when_every_download_fails(self):
        a = self.fs.add_file("F0GONE1", "a.png", b"x", "image/png", mode="status", status=404)
        b = self.fs.add_file("F0GONE2", "b.png", b"x", "image/png", mode="status", status=410)
        self.fs.add_message(CHANNEL, {"type": "message", "user": BOB, "text": "files", "thread_ts": self.parent,
                                      "subtype": "file_share", "files": [a, b]})
        bot = self.start_bot(allow_loopback=False)
        v1 = self.autopsy(bot, self.parent)
        zips = glob.glob(os.path.join(v1, "*.zip"))
        self.assertEqual(1, len(zips), os.listdir(v1))
        with zipfile.ZipFile(zips[0]) as z:
            # nothing downloaded: only the bot's own incident picture (issue 17) is in attachments/
            self.assertEqual(["attachments/" + PICTURE],
                             [n for n in z.namelist() if n.startswith("attachments/") and not n.endswith("/")])
        self.assertTrue(bot.running(), "the bot died building the bundle")

    # --- 9: reasons that say what happened --------------------------------------------------
    def test_9_truncated_body_loop_and_file_scheme_have_their_own_reasons(self):
        self.start_probe_bot()
        short = self.fs.add_file("F0SHORT", "short.bin", 40000, mode="truncated")
        res = self.probe("download short %s" % short["url_private"])
        self.assertEqual("truncated", res["code"], res)
        with self.fs.lock:
            tries = [r for r in self.fs.requests if "F0SHORT" in r.get("path", "")]
        self.assertEqual(1, len(tries), "a Content-Length lie is not a connection problem to retry")
        loop = self.redirecting_file("F0LOOP", "")
        self.fs.set_file_mode("F0LOOP", "redirect_to", location=loop["url_private"])
        self.assertEqual("too_many_redirects", self.probe("download loop %s" % loop["url_private"])["code"])
        hop = self.redirecting_file("F0HOPA", "")
        self.fs.set_file_mode("F0HOPA", "redirect_to", location=hop["url_private_download"])
        self.assertEqual("too_many_redirects", self.probe("download hops %s" % hop["url_private"])["code"])
        scheme = self.redirecting_file("F0FILE", "file:///etc/passwd")
        self.assertEqual("redirect_refused", self.probe("download scheme %s" % scheme["url_private"])["code"])

    # --- 11: one read rule ------------------------------------------------------------------
    def test_11_no_primitive_reads_proc_sys_or_dev(self):
        sink = WebhookSink().start()
        self.addCleanup(sink.stop)
        self.start_probe_bot({"downloads": {"allow_private": True}})
        for tag, path in (("environ", "/proc/self/environ"), ("sysfs", "/sys/devices/system/cpu/online"),
                          ("dev", "/dev/zero"), ("dotdot", "/tmp/../proc/self/environ")):
            self.assertEqual("refused", self.probe("readfile r%s %s" % (tag, path))["code"], path)
            self.assertEqual("refused", self.probe("bodyfile b%s %shook %s" % (tag, sink.url, path))["code"], path)
        self.assertEqual([], sink.requests_for("/hook"))
        res = self.probe("zip zproc /proc/self environ")
        self.assertEqual("refused", res["code"], res)
        link = os.path.join(self.bot.data_dir, "proclink")
        os.symlink("/proc/self", link)
        res = self.probe("zip zlink %s environ" % self.bot.data_dir)  # entry under a data-dir folder: fine
        self.assertNotEqual("refused", res["code"], res)
        res = self.probe("zip zvia %s environ" % link)
        self.assertEqual("refused", res["code"], res)
        for z in glob.glob(os.path.join(self.bot.data_dir, "probe-z*.zip")):
            with zipfile.ZipFile(z) as zf:
                self.assertNotIn("environ", " ".join(zf.namelist()), z)
        self.assertNotIn(self.fs.bot_token, self.bot.log_text())


if __name__ == "__main__":
    import unittest
    unittest.main()
