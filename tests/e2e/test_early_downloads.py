#!/usr/bin/env python3
"""End to end, the early downloads (scripts/lib/early_downloads.lua): a thread's files start
downloading as soon as its page is read, before users.info answers (the fake delays it); a file
whose entry a rule then drops (a rule that reads names, added to a copy of scripts/filters/) is
downloaded but is neither in attachments/ nor in the zip nor counted; the zip, written as the
files arrive, lists attachments/, the kept files in name order, the incident picture, then the .md;
the bot's own earlier upload is never fetched; a failed early download is reported as before (its
reason in the .md, counted as missing); the progress message is posted once although the downloads
report beside the reading. The .md is rendered beside the last downloads (keep()'s ahead) and kept
when they end as announced; a last file that fails or is not the size Slack gave makes it rendered
again, with what really came. Uses tests/e2e/harness.py (BotTestCase) and tests/fakeslack."""
import glob
import io
import os
import time
import zipfile

from harness import BotTestCase

CHANNEL = "C0EARLY"
ALICE, MALLORY = "U0ALICE", "U0MALLORY"
NAMES_DELAY = 1.0  # seconds users.info waits before it answers
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
       b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")

# Drops what mallory wrote: a rule that needs the names, which users.info gives last.
DROP_MALLORY = '''-- test rule: drops the entries of the person named mallory
return {
  name = "15-drop-mallory",
  description = "Drops mallory's messages.",
  apply = function(entries, env)
    return env.drop_where(entries, function(entry)
      local id = entry.author and entry.author.id
      if id and env.name_of(id) == "mallory" then return "written by mallory" end
      return nil
    end)
  end,
}
'''


class EarlyDownloadsTest(BotTestCase):
    def setUp(self):
        super().setUp()
        fs = self.fs
        fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
        fs.add_channel(CHANNEL, "inc-early", members=[ALICE, MALLORY])
        fs.add_user(ALICE, "alice")
        fs.add_user(MALLORY, "mallory")
        self.parent = fs.add_message(CHANNEL, {"type": "message", "user": ALICE, "text": "checkout is down",
                                               "ts": "1731620000.000100", "thread_ts": "1731620000.000100"})["ts"]
        kept = [fs.add_file("F0KEEP%d" % i, "graph-%d.png" % i, PNG + bytes([i]) * 4000, mimetype="image/png")
                for i in range(1, 4)]
        dropped = fs.add_file("F0DROP1", "secret.png", PNG + b"x" * 5000, mimetype="image/png", user=MALLORY)
        failing = fs.add_file("F0FAIL1", "broken.png", PNG, mimetype="image/png", mode="status", status=404)
        earlier = fs.add_file("F0BOTMD", "postmortem-earlier.md", b"# an earlier report\n",
                              mimetype="text/markdown", user="U0PMBOT")
        replies = [
            {"user": ALICE, "text": "the error graph", "files": kept[:2]},
            {"user": MALLORY, "text": "my screenshot", "files": [dropped]},
            {"user": "U0PMBOT", "bot_id": "B0PMBOT", "text": "", "files": [earlier]},
            {"user": ALICE, "text": "and after the fix", "files": [kept[2], failing]},
        ]
        for i, r in enumerate(replies, 1):
            msg = {"type": "message", "ts": "1731620%03d.000200" % (10 * i), "thread_ts": self.parent}
            msg.update(r)
            fs.add_message(CHANNEL, msg)
        self.fs.fault("users.info", delay=NAMES_DELAY, times=10)

    def autopsy(self, config=None):
        bot = self.make_bot(config)
        scripts, _ = bot.scripts_copy()
        with open(os.path.join(scripts, "filters", "15-drop-mallory.lua"), "w", encoding="utf-8") as f:
            f.write(DROP_MALLORY)
        bot.start()
        self.fs.mention(CHANNEL, ALICE, "autopsy this", thread_ts=self.parent)
        self.fs.wait_for(lambda: self.fs.uploads, timeout=60, what="the upload (bot log:\n%s)" % bot.tail(40))
        return bot, os.path.join(bot.data_dir, "reports", CHANNEL, self.parent, "v1")

    def download_times(self):
        """{file id: time the fake got its download request}"""
        with self.fs.lock:
            reqs = [r for r in self.fs.requests if r["path"].startswith("/files-pri/")]
        return {r["path"].split("/")[2].split("-", 1)[1]: r["time"] for r in reqs}

    def names_asked_at(self):
        with self.fs.lock:
            return min(r["time"] for r in self.fs.requests if r.get("api_method") == "users.info")

    def test_downloads_start_before_the_names_answer(self):
        self.autopsy()
        asked = self.download_times()
        answered = self.names_asked_at() + NAMES_DELAY
        for fid in ("F0KEEP1", "F0KEEP2", "F0KEEP3", "F0DROP1", "F0FAIL1"):
            self.assertIn(fid, asked)
            self.assertLess(asked[fid], answered, "%s was asked for after users.info answered" % fid)

    def test_a_dropped_entrys_file_is_not_in_the_report(self):
        _, v1 = self.autopsy()
        self.assertIn("F0DROP1", self.download_times())  # fetched early, before the rule could run
        present = sorted(os.listdir(os.path.join(v1, "attachments")))
        self.assertEqual(["F0KEEP1-graph-1.png", "F0KEEP2-graph-2.png", "F0KEEP3-graph-3.png",
                          "incident-timeline.svg"], present)
        upload = self.fs.uploads[0]
        zips = [f for f in upload["files"] if f["filename"].endswith(".zip")]
        members = zipfile.ZipFile(io.BytesIO(zips[0]["bytes"])).namelist()
        self.assertFalse([m for m in members if "F0DROP1" in m or "secret" in m], members)
        # the zip's order (lib/bundle.lua zip_start): attachments/, the kept downloads in name
        # order (each added as it arrived), the rest of attachments/, the .md last
        md_name = [f["filename"] for f in upload["files"] if f["filename"].endswith(".md")][0]
        self.assertEqual(["attachments/", "attachments/F0KEEP1-graph-1.png", "attachments/F0KEEP2-graph-2.png",
                          "attachments/F0KEEP3-graph-3.png", "attachments/incident-timeline.svg", md_name], members)
        self.assertFalse([n for n in os.listdir(v1) if ".tmp." in n], os.listdir(v1))
        md = open(glob.glob(os.path.join(v1, "*.md"))[0], encoding="utf-8").read()
        self.assertNotIn("secret", md)
        self.assertRegex(upload["initial_comment"], r"^Postmortem: \d+ entries, 3 files attached, 1 could not be downloaded\.")

    def test_one_progress_message_while_the_downloads_report_too(self):
        # the first progress post is slow: the downloads, running beside it, report meanwhile
        self.fs.fault("chat.postMessage", delay=0.5)
        self.autopsy({"report": {"progress_after": 0}})
        posts = [p["text"] for p in self.fs.posts(CHANNEL) if "Working on the postmortem" in p["text"]]
        self.assertEqual(1, len(posts), posts)

    def test_the_bots_own_upload_is_never_fetched(self):
        self.autopsy()
        self.assertNotIn("F0BOTMD", self.download_times())

    def test_a_failed_early_download_is_reported_as_missing(self):
        _, v1 = self.autopsy()
        md = open(glob.glob(os.path.join(v1, "*.md"))[0], encoding="utf-8").read()
        self.assertIn("broken.png: _not included: HTTP status 404_", md)
        self.assertFalse(os.path.exists(os.path.join(v1, "attachments", "F0FAIL1-broken.png")))


class RenderBesideTheLastDownloadsTest(BotTestCase):
    """Two quick files and slow ones (16 KiB per 50 ms), two downloads at a time: the .md is
    rendered while the slow ones are on the wire."""

    def thread(self, slow_files):
        fs = self.fs
        fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
        fs.add_channel(CHANNEL, "inc-early", members=[ALICE])
        fs.add_user(ALICE, "alice")
        self.parent = fs.add_message(CHANNEL, {"type": "message", "user": ALICE, "text": "checkout is down",
                                               "ts": "1731620000.000100", "thread_ts": "1731620000.000100"})["ts"]
        quick = [fs.add_file("F0QUICK%d" % i, "quick-%d.bin" % i, b"q" * (3000 + i)) for i in (1, 2)]
        files = quick + [fs.add_file(*f[:3], mode="slow", obj_fields=f[3] if len(f) > 3 else None)
                         for f in slow_files]
        for i, f in enumerate(files, 1):
            fs.add_message(CHANNEL, {"type": "message", "ts": "1731620%03d.000200" % (10 * i),
                                     "thread_ts": self.parent, "user": ALICE, "text": "file %d" % i, "files": [f]})

    def autopsy(self, downloads=None):
        bot = self.start_bot({"downloads": dict({"concurrency": 2}, **(downloads or {}))})
        self.fs.mention(CHANNEL, ALICE, "autopsy this", thread_ts=self.parent)
        self.fs.wait_for(lambda: self.fs.uploads, timeout=60, what="the upload (bot log:\n%s)" % bot.tail(40))
        written = bot.wait_log(r'msg="report written"', timeout=10).line
        v1 = os.path.join(bot.data_dir, "reports", CHANNEL, self.parent, "v1")
        md = open(glob.glob(os.path.join(v1, "*.md"))[0], encoding="utf-8").read()
        uploaded = [f for f in self.fs.uploads[0]["files"] if f["filename"].endswith(".md")][0]["bytes"]
        self.assertEqual(md.encode("utf-8"), uploaded)  # what went up is what is on disk
        return written, md, v1

    def test_kept_when_the_last_files_arrive_as_announced(self):
        self.thread([("F0SLOW1", "slow-1.bin", 64 * 1024), ("F0SLOW2", "slow-2.bin", 48 * 1024)])
        written, md, v1 = self.autopsy()
        self.assertIn('rendered="beside the last downloads"', written)
        self.assertIn("[slow-1.bin](attachments/F0SLOW1-slow-1.bin) (64.0 KB)", md)
        self.assertIn("[slow-2.bin](attachments/F0SLOW2-slow-2.bin) (48.0 KB)", md)
        self.assertIn("[quick-1.bin](attachments/F0QUICK1-quick-1.bin) (2.9 KB)", md)
        self.assertEqual(64 * 1024, os.path.getsize(os.path.join(v1, "attachments", "F0SLOW1-slow-1.bin")))
        self.assertRegex(self.fs.uploads[0]["initial_comment"], r"^Postmortem: \d+ entries, 4 files attached\.")

    def test_a_channel_window_rendered_beside_its_last_downloads_says_its_window(self):
        # the channel report's own fields (its window, its threads) are set before the downloads
        # end: the .md rendered beside them has them
        fs = self.fs
        fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
        fs.add_channel(CHANNEL, "inc-early", members=[ALICE])
        fs.add_user(ALICE, "alice")
        now = time.time()
        files = [fs.add_file("F0QUICK%d" % i, "quick-%d.bin" % i, b"q" * 3000) for i in (1, 2)]
        files.append(fs.add_file("F0SLOW1", "slow-1.bin", 64 * 1024, mode="slow"))
        for i, f in enumerate(files, 1):
            fs.add_message(CHANNEL, {"type": "message", "ts": "%.6f" % (now - 3000 + 60 * i), "user": ALICE,
                                     "text": "file %d" % i, "files": [f]})
        bot = self.start_bot({"downloads": {"concurrency": 2}})
        cmd_ts, _ = fs.mention(CHANNEL, ALICE, "autopsy last 2h")
        fs.wait_for(lambda: fs.uploads, timeout=60, what="the upload (bot log:\n%s)" % bot.tail(40))
        written = bot.wait_log(r'msg="report written"', timeout=10).line
        self.assertIn('rendered="beside the last downloads"', written)
        md = [f for f in fs.uploads[0]["files"] if f["filename"].endswith(".md")][0]["bytes"].decode("utf-8")
        self.assertIn("The channel's messages in order (since ", md)
        self.assertIn("[slow-1.bin](attachments/F0SLOW1-slow-1.bin) (64.0 KB)", md)

    def test_rendered_again_when_a_last_file_fails_or_is_not_the_size_slack_gave(self):
        # slow-1's bytes are more than Slack said; slow-2 says 1 KB but is past the limit, found out
        # only as its bytes arrive
        self.thread([("F0SLOW1", "slow-1.bin", 64 * 1024, {"size": 1000}),
                     ("F0SLOW2", "slow-2.bin", 96 * 1024, {"size": 1024})])
        written, md, v1 = self.autopsy({"max_bytes": 80 * 1024})
        self.assertIn('rendered="after the downloads"', written)
        self.assertIn("[slow-1.bin](attachments/F0SLOW1-slow-1.bin) (64.0 KB)", md)
        self.assertNotIn("1000 B", md)
        self.assertIn("slow-2.bin: _not included: too large", md)
        self.assertNotIn("attachments/F0SLOW2", md)
        self.assertFalse(os.path.exists(os.path.join(v1, "attachments", "F0SLOW2-slow-2.bin")))
        self.assertRegex(self.fs.uploads[0]["initial_comment"],
                         r"^Postmortem: \d+ entries, 3 files attached, 1 could not be downloaded\.")


if __name__ == "__main__":
    import unittest
    unittest.main()
