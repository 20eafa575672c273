#!/usr/bin/env python3
"""End to end, the timeline (scripts/lib/timeline.lua and friends) through the real binary and the
fake Slack: `@postmortembot autopsy this` (fs.mention), then the report directory
reports/<channel>/<thread_ts>/v1/ (its .md and timeline.json) is inspected.
Covers a 2,500-reply thread, 15 messages a page with 429s between pages, a last page failing for
good (incomplete marker), hostile file names (nothing written outside the data dir), a login page
and a cross-host redirect for a file (missing, token never sent there), and every file mode.
Uses tests/e2e/harness.py (BotTestCase) and tests/fakeslack."""
import glob
import json
import os
import unicodedata
import uuid

from harness import BotTestCase

CHANNEL = "C0TIMELINE"
ALICE, BOB = "U0ALICE", "U0BOB"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
       b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")


class TimelineTest(BotTestCase):
    def setUp(self):
        super().setUp()
        self.fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")

    # --- helpers ----------------------------------------------------------------------------
    def autopsy(self, bot, parent, timeout=120):
        """Ask for the report of `parent`'s thread; wait for the upload. Returns (command ts, v1 dir)."""
        before = len(self.fs.uploads)
        ts, _ = self.fs.mention(CHANNEL, ALICE, "autopsy this", thread_ts=parent)
        self.fs.wait_for(lambda: len(self.fs.uploads) > before, timeout=timeout,
                         what="the report upload (bot log:\n%s)" % bot.tail(40))
        return ts, os.path.join(bot.data_dir, "reports", CHANNEL, parent, "v1")

    def timeline_of(self, v1):
        with open(os.path.join(v1, "timeline.json"), encoding="utf-8") as f:
            return json.load(f)

    def markdown_of(self, v1):
        mds = glob.glob(os.path.join(v1, "*.md"))
        self.assertEqual(1, len(mds), os.listdir(v1))
        with open(mds[0], encoding="utf-8") as f:
            return f.read()

    def thread_ts_list(self, parent, without=()):
        """The thread's ts in order, without `without` and without the bot's own messages (its
        progress message and uploads, which the default rules drop)."""
        return [m["ts"] for m in self.fs.thread_messages(CHANNEL, parent)
                if m["ts"] not in without and m.get("user") != "U0PMBOT" and m.get("bot_id") != "B0PMBOT"]

    def files_by_id(self, timeline):
        out = {}
        for e in timeline["entries"]:
            for f in e.get("files") or []:
                out[f["id"]] = f
        return out

    def post_files(self, parent, objects, user=BOB, text="files"):
        self.fs.add_message(CHANNEL, {"type": "message", "user": user, "text": text, "thread_ts": parent,
                                      "subtype": "file_share", "files": objects})

    # --- names ------------------------------------------------------------------------------
    def test_channels_mentioned_without_a_name_are_looked_up(self):
        self.fs.add_channel("C0OPS", "ops-war-room", member=False)
        self.fs.add_channel("C0STATUS", "status", member=False)
        parent = self.fs.add_thread(CHANNEL, 1, users=(ALICE, BOB))
        self.fs.add_message(CHANNEL, {"type": "message", "user": BOB, "thread_ts": parent,
                                      "text": "moving to <#C0OPS>, comms in <#C0STATUS|status>, see <#C0GONE>"})
        self.fs.add_message(CHANNEL, {"type": "message", "user": BOB, "thread_ts": parent, "text": "x",
                                      "blocks": [{"type": "rich_text", "elements": [{
                                          "type": "rich_text_section", "elements": [
                                              {"type": "text", "text": "rich: "},
                                              {"type": "channel", "channel_id": "C0OPS"}]}]}]})
        bot = self.start_bot()
        _, v1 = self.autopsy(bot, parent)
        md = self.markdown_of(v1)
        self.assertIn("moving to \\#ops-war-room, comms in \\#status, see \\#C0GONE", md)
        self.assertIn("rich: \\#ops-war-room", md)
        looked_up = sorted(c.get("channel") for c in self.fs.calls("conversations.info"))
        # this channel, plus each unnamed mention once (the labelled one needs no call)
        self.assertEqual(sorted([CHANNEL, "C0GONE", "C0OPS"]), looked_up)

    def test_user_groups_are_named_with_one_usergroups_list_call(self):
        self.fs.add_usergroup("S0DBONCALL", [BOB], handle="oncall-db")
        self.fs.add_usergroup("S0NETWORK", [ALICE], handle="network")
        parent = self.fs.add_thread(CHANNEL, 1, users=(ALICE, BOB))
        self.fs.add_message(CHANNEL, {"type": "message", "user": BOB, "thread_ts": parent,
                                      "text": "paging <!subteam^S0DBONCALL> and <!subteam^S0NETWORK|@net-team>"})
        self.fs.add_message(CHANNEL, {"type": "message", "user": BOB, "thread_ts": parent, "text": "x",
                                      "blocks": [{"type": "rich_text", "elements": [{
                                          "type": "rich_text_section", "elements": [
                                              {"type": "text", "text": "rich: "},
                                              {"type": "usergroup", "usergroup_id": "S0NETWORK"}]}]}]})
        bot = self.start_bot()
        _, v1 = self.autopsy(bot, parent)
        md = self.markdown_of(v1)
        # the label Slack gave wins; the others come from usergroups.list
        self.assertIn("paging @oncall-db and @net-team", md)
        self.assertIn("rich: @network", md)
        self.assertNotIn("S0DBONCALL", md)
        self.assertEqual(1, len(self.fs.calls("usergroups.list")))

    def test_a_thread_without_user_groups_does_not_list_them(self):
        parent = self.fs.add_thread(CHANNEL, 2, users=(ALICE, BOB))
        bot = self.start_bot()
        self.autopsy(bot, parent)
        self.assertEqual([], self.fs.calls("usergroups.list"))

    # --- collection -------------------------------------------------------------------------
    def test_2500_replies_all_present_once_in_order(self):
        parent = self.fs.add_thread(CHANNEL, 2500, users=(ALICE, BOB), text="update {i}")
        bot = self.start_bot()
        command_ts, v1 = self.autopsy(bot, parent, timeout=240)
        timeline = self.timeline_of(v1)
        got = [e["ts"] for e in timeline["entries"]]
        self.assertEqual(len(got), len(set(got)), "an entry appears twice")
        self.assertEqual(self.thread_ts_list(parent, without={command_ts}), got)
        self.assertEqual(2501, len(got))
        self.assertTrue(timeline["complete"])
        self.assertEqual(timeline["expected"], timeline["fetched"])
        calls = self.fs.calls("conversations.replies")
        self.assertEqual(3, len(calls))  # 2,502 messages at 1,000 a page, the most Slack accepts
        for params in calls:
            self.assertEqual("1000", str(params.get("limit")))
        md = self.markdown_of(v1)
        self.assertIn("update 2500", md)
        self.assertNotIn("Incomplete", md)

    def test_15_per_page_with_429_between_pages(self):
        self.fs.max_page = 15
        parent = self.fs.add_thread(CHANNEL, 60, users=(ALICE, BOB))
        for page in range(1, 5):
            self.fs.fault_on_page("conversations.replies", page, status=429, retry_after=1)
        bot = self.start_bot()
        command_ts, v1 = self.autopsy(bot, parent, timeout=120)
        timeline = self.timeline_of(v1)
        got = [e["ts"] for e in timeline["entries"]]
        self.assertEqual(self.thread_ts_list(parent, without={command_ts}), got)
        self.assertEqual(61, len(got))
        self.assertTrue(timeline["complete"])
        calls = self.fs.calls("conversations.replies")
        cursors = [c.get("cursor") for c in calls if c.get("cursor")]
        self.assertGreaterEqual(len(calls), 5 + 4, "every page plus the four 429 answers")
        self.assertGreater(len(cursors), len(set(cursors)), "a rate-limited page was asked again")

    def test_a_failed_page_is_asked_again_smaller(self):
        parent = self.fs.add_thread(CHANNEL, 1500, users=(ALICE, BOB))
        # the second page of 1,000 fails once (after the core's own retries it would stay failed):
        # it is asked again at 200, and the rest of the thread at 200 a page
        self.fs.fault_on_page("conversations.replies", 1, ok_false="fatal_error")
        bot = self.start_bot()
        command_ts, v1 = self.autopsy(bot, parent, timeout=240)
        timeline = self.timeline_of(v1)
        self.assertTrue(timeline["complete"])
        got = [e["ts"] for e in timeline["entries"]]
        self.assertEqual(self.thread_ts_list(parent, without={command_ts}), got)
        limits = [str(c.get("limit")) for c in self.fs.calls("conversations.replies")]
        self.assertEqual(["1000", "1000"] + ["200"] * 3, limits)

    def test_last_page_failing_gives_an_incomplete_report(self):
        self.fs.max_page = 15
        parent = self.fs.add_thread(CHANNEL, 40, users=(ALICE, BOB))
        # 42 messages (parent, 40 replies, the command); 15 a page, the parent repeated on each:
        # page 0 = 15 messages, page 1 = 14 new, page 2 (the last) = the other 13, which fails
        self.fs.fault_on_page("conversations.replies", 2, ok_false="fatal_error")
        bot = self.start_bot()
        _, v1 = self.autopsy(bot, parent)
        timeline = self.timeline_of(v1)
        self.assertFalse(timeline["complete"])
        self.assertEqual(42, timeline["expected"])
        self.assertEqual(15 + 14, timeline["fetched"])
        self.assertLess(timeline["fetched"], timeline["expected"])
        md = self.markdown_of(v1)
        self.assertIn("Incomplete", md)
        self.assertIn("%d of %d messages" % (timeline["fetched"], timeline["expected"]), md)

    # --- files ------------------------------------------------------------------------------
    def test_hostile_file_names_stay_inside_the_data_dir(self):
        marker = "pmb-escape-" + uuid.uuid4().hex[:8]
        hostile = {
            "F0HOST01": "../../../../../../tmp/%s.txt" % marker,
            "F0HOST02": "..",
            "F0HOST03": ".bashrc",
            "F0HOST04": "a/b/../../%s.png" % marker,
            "F0HOST05": "evil\nname\t\x07.txt",
            "F0HOST06": "x\u202egnp.exe",
            "F0HOST07": "日本語のファイル名" * 12 + ".pdf",
            "F0HOST08": "C:\\Windows\\%s.dll" % marker,
        }
        parent = self.fs.add_thread(CHANNEL, 2, users=(ALICE, BOB))
        objects = [self.fs.add_file(fid, name, ("content of %s" % fid).encode(), "text/plain", user=BOB)
                   for fid, name in sorted(hostile.items())]
        self.post_files(parent, objects)
        bot = self.start_bot()
        _, v1 = self.autopsy(bot, parent)

        attachments = os.path.join(v1, "attachments")
        names = sorted(os.listdir(attachments))
        names.remove("incident-timeline.svg")  # the incident picture (issue 17): written by the bot
        self.assertEqual(len(hostile), len(names), names)
        for name in names:
            self.assertFalse(name.startswith("."), name)
            self.assertNotIn("..", name)
            self.assertNotIn("/", name)
            self.assertNotIn("\\", name)
            self.assertFalse(any(unicodedata.category(c) in ("Cc", "Cf") for c in name), repr(name))
            self.assertLessEqual(len(name.encode("utf-8")), 100, name)
            self.assertIn(name.split("-", 1)[0], hostile)
        files = self.files_by_id(self.timeline_of(v1))
        for fid in hostile:
            local = files[fid]["local_path"]
            self.assertTrue(local.startswith("attachments/"), local)
            with open(os.path.join(v1, local), "rb") as f:
                self.assertEqual(self.fs.file_bytes(fid), f.read())
        self.assertTrue(files["F0HOST07"]["local_path"].endswith(".pdf"))

        # nothing outside the data dir: the bot's temp dir holds only its config, log and data dir
        data_dir = os.path.realpath(bot.data_dir)
        for root, _, filenames in os.walk(bot.tmp):
            for fn in filenames:
                path = os.path.realpath(os.path.join(root, fn))
                if path.startswith(data_dir + os.sep):
                    continue
                self.assertIn(os.path.basename(path), ("postmortembot.lua", "bot.log"), path)
        self.assertEqual([], glob.glob("/tmp/%s*" % marker))
        self.assertEqual([], glob.glob(os.path.join(os.path.dirname(bot.tmp), "%s*" % marker)))
        for root, dirs, filenames in os.walk(data_dir):
            if os.path.realpath(root) == os.path.realpath(attachments):
                continue  # the sanitised names may keep the marker text, inside attachments/
            for fn in filenames + dirs:
                self.assertNotIn(marker, fn, os.path.join(root, fn))

    def test_login_page_is_missing_and_a_cross_host_redirect_gets_no_token(self):
        parent = self.fs.add_thread(CHANNEL, 2, users=(ALICE, BOB))
        good = self.fs.add_file("F0GOOD01", "good.png", PNG, "image/png", user=BOB)
        login = self.fs.add_file("F0LOGIN1", "report.pdf", b"%PDF-1.4 real bytes", "application/pdf",
                                 mode="login_page", user=BOB)
        other = self.fs.add_file("F0OTHER1", "trace.log", b"trace bytes", "text/plain", mode="redirect_other", user=BOB)
        signin = self.fs.add_file("F0OTHER2", "heap.txt", b"heap bytes", "text/plain",
                                  mode="redirect_other_login", user=BOB)
        self.post_files(parent, [good, login, other, signin])
        bot = self.start_bot()
        _, v1 = self.autopsy(bot, parent)
        files = self.files_by_id(self.timeline_of(v1))
        self.assertEqual("attachments/F0GOOD01-good.png", files["F0GOOD01"]["local_path"])
        self.assertIn("login page", files["F0LOGIN1"]["missing_reason"])
        self.assertNotIn("local_path", files["F0LOGIN1"])
        # redirects to another host are followed WITHOUT the token: a host that serves anyone (a
        # pre-signed CDN) gives the file; one that wants the token gives a sign-in page, and the
        # file is reported missing rather than the token being sent there
        self.assertFalse(self.fs.other_auth_seen, "the bot token was sent to another host")
        self.assertEqual(2, len(self.fs.other_requests))
        self.assertTrue(all(not r["auth"] for r in self.fs.other_requests))
        with open(os.path.join(v1, files["F0OTHER1"]["local_path"]), "rb") as f:
            self.assertEqual(b"trace bytes", f.read())
        self.assertIn("login page", files["F0OTHER2"]["missing_reason"])
        self.assertNotIn("local_path", files["F0OTHER2"])
        self.assertFalse(os.path.exists(os.path.join(v1, "attachments", "F0LOGIN1-report.pdf")))
        md = self.markdown_of(v1)
        self.assertIn("login page", md)
        self.assertIn("](attachments/F0GOOD01-good.png)", md)

    def test_every_file_mode(self):
        parent = self.fs.add_thread(CHANNEL, 2, users=(ALICE, BOB))
        image = self.fs.add_file("F0IMAGE1", "graph.png", PNG, "image/png", user=BOB)
        doc = self.fs.add_file("F0DOC001", "notes.txt", b"plain notes", "text/plain", user=BOB)
        snippet = self.fs.add_file("F0SNIP01", "rollback.sh", b"#!/bin/sh\nkubectl rollout undo\n", "text/x-sh",
                                   user=BOB, obj_fields={"mode": "snippet", "preview": "#!/bin/sh\nkubectl rollout undo",
                                                         "lines": 2, "lines_more": 0})
        self.fs.add_file("F0SHARE1", "connect.txt", b"from another org", "text/plain", user=BOB)
        stub = {"id": "F0SHARE1", "mode": "file_access", "file_access": "check_file_info", "created": 0,
                "timestamp": 0, "user": ""}
        hidden = {"id": "F0HIDDEN", "mode": "hidden_by_limit"}
        tomb = {"id": "F0TOMB01", "mode": "tombstone"}
        external = {"id": "F0EXT001", "name": "design.gdoc", "title": "Design doc", "mimetype": "application/vnd.google-apps.document",
                    "mode": "external", "is_external": True, "external_type": "gdrive",
                    "url_private": "https://docs.example.com/d/1", "permalink": "https://fake-workspace.slack.com/files/U0BOB/F0EXT001"}
        self.post_files(parent, [image, doc, snippet, stub, hidden, tomb, external])
        bot = self.start_bot()
        _, v1 = self.autopsy(bot, parent)
        files = self.files_by_id(self.timeline_of(v1))

        self.assertEqual("image", files["F0IMAGE1"]["kind"])
        self.assertEqual("file", files["F0DOC001"]["kind"])
        self.assertEqual("snippet", files["F0SNIP01"]["kind"])
        self.assertIn("kubectl rollout undo", files["F0SNIP01"]["preview"])
        for fid in ("F0IMAGE1", "F0DOC001", "F0SNIP01", "F0SHARE1"):
            with open(os.path.join(v1, files[fid]["local_path"]), "rb") as f:
                self.assertEqual(self.fs.file_bytes(fid), f.read(), fid)
        self.assertEqual("connect.txt", files["F0SHARE1"]["name"])  # files.info gave the real object
        self.assertEqual(["F0SHARE1"], [c.get("file") for c in self.fs.calls("files.info")])
        self.assertIn("history limit", files["F0HIDDEN"]["missing_reason"])
        self.assertIn("deleted", files["F0TOMB01"]["missing_reason"])
        self.assertIn("outside Slack", files["F0EXT001"]["missing_reason"])
        # nothing was fetched from the external service
        self.assertFalse(any("docs.example.com" in (r.get("path") or "") for r in self.fs.requests))

        md = self.markdown_of(v1)
        self.assertIn("![", md)
        self.assertIn("(attachments/F0IMAGE1-graph.png)", md)
        self.assertIn("(attachments/F0DOC001-notes.txt)", md)
        self.assertIn("kubectl rollout undo", md)
        self.assertIn("history limit", md)
        self.assertIn("deleted from Slack", md)
