#!/usr/bin/env python3
"""End to end: `@postmortembot autopsy this` in the incident fixture's thread, the real binary
against the fake Slack. Checks the two uploads (channel, parent thread, names, exact lengths),
the zip (the .md plus attachments/, every image the .md embeds inside it and byte-identical to
what the fake served), the copy under data_dir/reports/, the progress reactions and message,
versioning on a second run, and a template edit + SIGHUP changing the next report.
Uses tests/e2e/harness.py (BotTestCase) and tests/fixtures/incident."""
import io
import json
import os
import re
import signal
import unittest
import urllib.parse
import zipfile

from harness import BotTestCase

MD_NAME = "postmortem-2024-11-14-checkout-errors-card-payments-failing-in.md"
ZIP_NAME = MD_NAME[:-3] + ".zip"
ALICE = "U01ALICE"
IMAGE_IDS = {"F0ERRRATE1", "F0TLSHAND2", "F0RECOVER3"}


class AutopsyTest(BotTestCase):
    def setUp(self):
        super().setUp()
        # the fixture's own bot messages are from U0PMBOT/B0PMBOT: be that bot
        self.fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
        self.channel, self.parent = self.load_incident()

    def autopsy(self, bot, text="autopsy this", timeout=60):
        before = len(self.fs.uploads)
        ts, _ = self.fs.mention(self.channel, ALICE, text, thread_ts=self.parent)
        self.fs.wait_for(lambda: len(self.fs.uploads) > before, timeout=timeout,
                         what="the upload (bot log:\n%s)" % bot.tail(30))
        with self.fs.lock:
            return ts, self.fs.uploads[-1]

    def wait_reaction(self, ts, action, name, timeout=20):
        def seen():
            with self.fs.lock:
                return [r for r in self.fs.reactions if r["ts"] == ts and r["action"] == action and r["name"] == name]
        return self.fs.wait_for(seen, timeout=timeout, what="%s of :%s:" % (action, name))

    def files_of(self, upload):
        return {f["filename"]: f for f in upload["files"]}

    def test_uploads_markdown_and_zip_into_the_thread(self):
        bot = self.start_bot()
        _, upload = self.autopsy(bot)
        self.assertEqual(self.channel, upload["channel"])
        self.assertEqual(self.parent, upload["thread_ts"])
        files = self.files_of(upload)
        self.assertEqual({MD_NAME, ZIP_NAME}, set(files))
        for f in files.values():
            self.assertEqual(len(f["bytes"]), f["length"], f["filename"])
        asked = {p["filename"]: int(p["length"]) for p in self.fs.calls("files.getUploadURLExternal")}
        self.assertEqual({MD_NAME: len(files[MD_NAME]["bytes"]), ZIP_NAME: len(files[ZIP_NAME]["bytes"])}, asked)
        self.assertEqual(1, len(self.fs.calls("files.completeUploadExternal")))

        comment = upload["initial_comment"] or ""
        self.assertRegex(comment, r"^Postmortem: \d+ entries, 5 files attached, 1 could not be downloaded\.")
        self.assertNotIn("Incomplete", comment)

        md = files[MD_NAME]["bytes"].decode("utf-8")
        self.assertIn("# Postmortem: Checkout errors: card payments failing in eu-west", md)
        self.assertIn("hidden by", md)  # the hidden_by_limit file is named with its reason

        archive = zipfile.ZipFile(io.BytesIO(files[ZIP_NAME]["bytes"]))
        names = set(archive.namelist())
        self.assertIn(MD_NAME, names)
        self.assertEqual(files[MD_NAME]["bytes"], archive.read(MD_NAME))
        images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", md)
        # the incident picture (issue 17) is embedded first and travels in the zip too
        self.assertEqual("attachments/incident-timeline.svg", images.pop(0))
        self.assertIn("attachments/incident-timeline.svg", names)
        self.assertTrue(archive.read("attachments/incident-timeline.svg").startswith(b"<svg "))
        self.assertEqual(3, len(images), images)
        for link in images:
            member = urllib.parse.unquote(link)
            self.assertTrue(member.startswith("attachments/"), link)
            self.assertIn(member, names, "image %s is not in the zip" % link)
            file_id = os.path.basename(member).split("-", 1)[0]
            self.assertIn(file_id, IMAGE_IDS)
            self.assertEqual(self.fs.file_bytes(file_id), archive.read(member), member)
        for link in re.findall(r"\]\((attachments/[^)\s]+)\)", md):
            self.assertIn(urllib.parse.unquote(link), names)

        # the kept copy
        v1 = os.path.join(bot.data_dir, "reports", self.channel, self.parent, "v1")
        with open(os.path.join(v1, MD_NAME), "rb") as f:
            self.assertEqual(files[MD_NAME]["bytes"], f.read())
        with open(os.path.join(v1, ZIP_NAME), "rb") as f:
            self.assertEqual(files[ZIP_NAME]["bytes"], f.read())
        with open(os.path.join(v1, "timeline.json"), encoding="utf-8") as f:
            timeline = json.load(f)
        self.assertEqual(self.parent, timeline["thread_ts"])
        self.assertEqual(self.parent, timeline["entries"][0]["ts"])
        self.assertRegex(comment, r"^Postmortem: %d entries" % len(timeline["entries"]))

    def test_progress_reactions_and_message(self):
        bot = self.start_bot({"report": {"progress_after": 0}})
        ts, _ = self.autopsy(bot)
        self.wait_reaction(ts, "add", "hourglass_flowing_sand")
        self.wait_reaction(ts, "remove", "hourglass_flowing_sand")
        self.wait_reaction(ts, "add", "white_check_mark")
        with self.fs.lock:
            mine = [r for r in self.fs.reactions if r["ts"] == ts]
        self.assertEqual([("add", "hourglass_flowing_sand"), ("remove", "hourglass_flowing_sand"),
                          ("add", "white_check_mark")], [(r["action"], r["name"]) for r in mine])
        posts = [p for p in self.fs.posts(self.channel, self.parent) if "Working on the postmortem" in p["text"]]
        self.assertEqual(1, len(posts), [p["text"] for p in self.fs.posts(self.channel)])
        self.assertRegex(posts[0]["text"], r"\d+/\d+ messages read|\d+ messages read")

        def done():
            with self.fs.lock:
                return [u for u in self.fs.updates if u["ts"] == posts[0]["ts"] and "Postmortem done" in (u["text"] or "")]
        self.fs.wait_for(done, timeout=20, what="the progress message to say done")
        # every stage is said in words: the names stage too (it showed as nothing before)
        final = done()[-1]["text"]
        self.assertRegex(final, r"\d+/\d+ names looked up")
        self.assertNotRegex(final, r"\d people")

    def test_failure_is_explained_in_the_thread(self):
        bot = self.start_bot()
        self.fs.fault("files.getUploadURLExternal", status=200,
                      body='{"ok":false,"error":"missing_scope","needed":"files:write","provided":"chat:write"}')
        ts, _ = self.fs.mention(self.channel, ALICE, "autopsy this", thread_ts=self.parent)
        self.wait_reaction(ts, "add", "x")

        def failure_post():
            return [p for p in self.fs.posts(self.channel, self.parent) if "postmortem failed" in p["text"]]
        post = self.fs.wait_for(failure_post, timeout=20, what="the failure reply")[0]
        self.assertIn("uploading the report", post["text"])
        self.assertIn("`files:write`", post["text"])
        self.assertEqual([], self.fs.uploads)
        del bot

    def test_second_run_is_v2_and_says_what_changed(self):
        bot = self.start_bot()
        self.autopsy(bot)
        # one new message, one edited message
        self.fs.add_message(self.channel, {"type": "message", "user": "U02BOB", "thread_ts": self.parent,
                                           "text": "Late note: the acquirer confirmed TLS 1.2 only on eu-acq-2."})
        with self.fs.lock:
            chen = next(m for m in self.fs.messages[self.channel] if m.get("user") == "U03CHEN")
            chen["text"] = "DB is healthy: p99 4 ms, no lock waits. Not the database (checked twice)."
            chen.pop("blocks", None)
            chen["edited"] = {"user": "U03CHEN", "ts": "1731627000.000000"}
        _, upload = self.autopsy(bot)
        comment = upload["initial_comment"] or ""
        self.assertRegex(comment, r"Version 2\. Since version 1: \d+ new entr(y|ies), 1 entry edited")
        base = os.path.join(bot.data_dir, "reports", self.channel, self.parent)
        self.assertEqual(["v1", "v2"], sorted(os.listdir(base)))
        with open(os.path.join(base, "v2", MD_NAME), encoding="utf-8") as f:
            v2 = f.read()
        self.assertIn("Late note", v2)
        self.assertIn("checked twice", v2)
        self.assertIn("version 2", v2)

    def test_two_requests_at_once_in_one_thread_make_two_versions(self):
        # asked twice before the first report is done: each is a version of its own (file mode
        # numbers a version "last complete + 1": two at once must not both write v1)
        bot = self.start_bot()
        before = len(self.fs.uploads)
        self.fs.mention(self.channel, ALICE, "autopsy this", thread_ts=self.parent)
        self.fs.mention(self.channel, ALICE, "autopsy this", thread_ts=self.parent)
        self.fs.wait_for(lambda: len(self.fs.uploads) >= before + 2, timeout=120,
                         what="two uploads (bot log:\n%s)" % bot.tail(30))
        base = os.path.join(bot.data_dir, "reports", self.channel, self.parent)
        self.assertEqual(["v1", "v2"], sorted(os.listdir(base)))
        for v in ("v1", "v2"):
            with open(os.path.join(base, v, "timeline.json"), encoding="utf-8") as f:
                self.assertTrue(json.load(f)["entries"], v)
            with open(os.path.join(base, v, MD_NAME), encoding="utf-8") as f:
                self.assertEqual(v == "v2", "version 2" in f.read(), v)
        with self.fs.lock:
            comments = sorted((u["initial_comment"] or "") for u in self.fs.uploads[before:])
        self.assertEqual(1, sum(1 for c in comments if "Version 2." in c), comments)

    def test_template_edit_and_sighup_change_the_next_report(self):
        bot = self.make_bot()
        _, templates = bot.scripts_copy()
        bot.start()
        _, first = self.autopsy(bot)
        self.assertNotIn("## Sign-off", self.files_of(first)[MD_NAME]["bytes"].decode("utf-8"))
        path = os.path.join(templates, "postmortem.md.mustache")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("## Lessons learned", "## Sign-off\n\n_Reviewed by:_\n\n## Lessons learned"))
        mark = bot.mark()
        bot.send_signal(signal.SIGHUP)
        bot.wait_log(r"reload ok", after=mark, timeout=20)
        _, second = self.autopsy(bot)
        md = self.files_of(second)[MD_NAME]["bytes"].decode("utf-8")
        self.assertIn("## Sign-off", md)
        self.assertIn("scripts generation 2", md)


if __name__ == "__main__":
    unittest.main()
