#!/usr/bin/env python3
"""End to end, issue 15: reports beyond one thread, against the fake Slack. `autopsy this` at the
top of a 3,000-message channel with 40 threads (every message and reply once, replies indented
under their parent, uploaded into the command's thread); a window (`last 2h`, `since <link>`); a
thread link typed in a DM; the message shortcut (and its redelivery, handled once); the slash
command (help, unknown input, `this`); key events and action items from reactions, pins and
prefixes; the 15-a-page regime. Uses tests/e2e/harness.py and tests/fakeslack/."""
import re
import time
import unittest

from harness import BotTestCase

CHANNEL = "C0INCCHAN"
ALICE, GRACE = "U0ALICE", "U0GRACE"
TOKEN = re.compile(r"\b((?:m|r)\d+(?:\.\d+)?)\b")


class ChannelTest(BotTestCase):
    def setUp(self):
        super().setUp()
        self.fs.add_user(ALICE, "Alice")
        self.fs.add_user(GRACE, "Grace")
        self.fs.add_channel(CHANNEL, "inc-checkout", members=[ALICE, GRACE])

    def wait_upload(self, bot, channel=None, thread_ts=None, before=0, timeout=90):
        def found():
            with self.fs.lock:
                ups = [u for u in self.fs.uploads[before:] if (channel is None or u["channel"] == channel)
                       and (thread_ts is None or u["thread_ts"] == thread_ts)]
            return ups[-1] if ups else None
        return self.fs.wait_for(found, timeout=timeout, what="the upload (bot log:\n%s)" % bot.tail(30))

    @staticmethod
    def markdown(upload):
        md = [f for f in upload["files"] if f["filename"].endswith(".md")]
        return md[0]["bytes"].decode("utf-8")

    @staticmethod
    def timeline_part(md):
        return md.split("\n## Timeline\n", 1)[1].split("\n## Appendix", 1)[0]

    def add(self, text, user=ALICE, ts=None, **fields):
        msg = dict(type="message", user=user, text=text, **fields)
        if ts:
            msg["ts"] = ts
        return self.fs.add_message(CHANNEL, msg)["ts"]

    def reply(self, parent, text, user=GRACE, ts=None):
        return self.add(text, user=user, ts=ts, thread_ts=parent)

    def test_channel_of_3000_messages_with_40_threads(self):
        # top-level messages first, replies later: nesting order is not time order
        parents, expected_tops = [], []
        for i in range(2600):
            expected_tops.append("m%d" % i)
            ts = self.add("m%d" % i)
            if i % 65 == 0 and len(parents) < 40:
                parents.append((i, ts))
        replies = {}
        for n, (i, ts) in enumerate(parents):
            replies[i] = ["r%d.%d" % (i, j) for j in range(10)]
        for j in range(10):
            for i, ts in parents:
                self.reply(ts, "r%d.%d" % (i, j))
        self.assertEqual(3000, sum(len(v) for v in self.fs.messages.values()))
        bot = self.start_bot({"report": {"progress_after": 0}})
        cmd_ts, _ = self.fs.mention(CHANNEL, ALICE, "autopsy this")
        upload = self.wait_upload(bot, CHANNEL, cmd_ts, timeout=120)
        md = self.markdown(upload)
        want = []
        for i in range(2600):
            want.append("m%d" % i)
            want.extend(replies.get(i, []))
        got = TOKEN.findall(self.timeline_part(md))
        self.assertEqual(len(want), len(got), "every message and reply once")
        self.assertEqual(want, got, "parents in order, each followed by its replies in order")
        # replies are list items indented under their parent's item
        self.assertRegex(md, r"\n  - \*\*[0-9:]+\*\* · \*\*Grace\*\*[^\n]*\n\n    r0\.0\n")
        self.assertIn("The channel's messages in order", md)
        self.assertRegex(upload["initial_comment"], r"^Channel report of the whole channel \(3001 messages, 40 threads\)")  # and the command
        pages = self.fs.calls("conversations.history")
        self.assertEqual(14, len(pages))  # 2,601 top-level messages (the command too), 200 a page
        self.assertEqual(40, len({p["ts"] for p in self.fs.calls("conversations.replies")}))
        # the progress message said how far it got
        # (it is first posted, then updated; the last update comes after the upload)
        self.fs.wait_for(lambda: any("pages read" in (u["text"] or "") for u in self.fs.updates + self.fs.posts()),
                         what="a progress message naming the pages read")

    def test_channel_bounded_by_config_is_marked_incomplete(self):
        for i in range(300):
            self.add("m%d" % i)
        bot = self.start_bot({"channel": {"max_messages": 100}})
        cmd_ts, _ = self.fs.mention(CHANNEL, ALICE, "autopsy this")
        md = self.markdown(self.wait_upload(bot, CHANNEL, cmd_ts))
        self.assertIn("**Incomplete report:** the channel is longer than the configured bound", md)
        got = TOKEN.findall(self.timeline_part(md))
        self.assertEqual(["m%d" % i for i in range(201, 300)], got)  # the newest 100, less the command

    def test_window_last_and_since_link(self):
        now = time.time()
        old = self.add("m1", ts="%.6f" % (now - 3 * 3600))
        self.reply(old, "r1.1", ts="%.6f" % (now - 30 * 60))
        inside = self.add("m2", ts="%.6f" % (now - 3600))
        self.reply(inside, "r2.1", ts="%.6f" % (now - 1800))
        self.add("m3", ts="%.6f" % (now - 600))
        bot = self.start_bot()
        cmd_ts, _ = self.fs.mention(CHANNEL, ALICE, "autopsy last 2h")
        md = self.markdown(self.wait_upload(bot, CHANNEL, cmd_ts))
        self.assertEqual(["m2", "r2.1", "m3"], TOKEN.findall(self.timeline_part(md)))
        self.assertIn("(since ", md)
        link = "<https://fake-workspace.slack.com/archives/%s/p%s>" % (CHANNEL, inside.replace(".", ""))
        before = len(self.fs.uploads)
        cmd_ts, _ = self.fs.mention(CHANNEL, ALICE, "autopsy since " + link)
        md = self.markdown(self.wait_upload(bot, CHANNEL, cmd_ts, before=before))
        self.assertEqual(["m2", "r2.1", "m3"], TOKEN.findall(self.timeline_part(md)))

    def test_thread_link_typed_in_a_dm(self):
        parent = self.add("m1 checkout is down")
        self.reply(parent, "r1.1")
        self.reply(parent, "r1.2")
        bot = self.start_bot()
        link = "<https://fake-workspace.slack.com/archives/%s/p%s>" % (CHANNEL, parent.replace(".", ""))
        dm_ts, _ = self.fs.direct_message("D0ALICE", ALICE, "autopsy " + link)
        upload = self.wait_upload(bot, "D0ALICE", dm_ts)
        md = self.markdown(upload)
        self.assertEqual(["m1", "r1.1", "r1.2"], TOKEN.findall(self.timeline_part(md)))
        self.assertIn("Postmortem of the thread https://fake-workspace.slack.com/archives/%s/p%s"
                      % (CHANNEL, parent.replace(".", "")), upload["initial_comment"])
        # kept as the linked thread's version
        self.assertTrue(self.fs.uploads and not self.fs.uploaded_files(CHANNEL))

    def test_shortcut_and_its_redelivery(self):
        parent = self.add("m1 payments failing")
        reply = self.reply(parent, "r1.1")
        bot = self.start_bot()
        eid, trigger = self.fs.shortcut(CHANNEL, reply, user=ALICE)
        # Slack sends the click again, as a new envelope
        self.fs.send_envelope("interactive", self.fs.envelopes[-1]["envelope"]["payload"])
        upload = self.wait_upload(bot, CHANNEL, parent)
        self.assertEqual(["m1", "r1.1"], TOKEN.findall(self.timeline_part(self.markdown(upload))))
        time.sleep(1.5)
        self.assertEqual(1, len(self.fs.calls("files.completeUploadExternal")))
        self.assertEqual([], [r for r in self.fs.reactions if r["ts"] in (parent, reply)])
        self.assertIsNotNone(self.fs.ack_for(eid))

    def test_slash_command(self):
        for i in range(5):
            self.add("m%d" % i)
        bot = self.start_bot()
        _, rid = self.fs.slash(CHANNEL, "help")
        answer = self.fs.wait_for(lambda: self.fs.responses_to(rid), what="the help answer")[0]
        self.assertIn("/postmortem since 14:05", answer["text"])
        self.assertEqual("ephemeral", answer["response_type"])
        _, rid = self.fs.slash(CHANNEL, "frobnicate")
        answer = self.fs.wait_for(lambda: self.fs.responses_to(rid), what="the answer to nonsense")[0]
        self.assertIn("frobnicate", answer["text"])
        self.assertIn("/postmortem since 14:05", answer["text"])
        self.assertEqual(0, len(self.fs.uploads))
        self.fs.slash(CHANNEL, "this")
        anchor = self.fs.wait_for(lambda: self.fs.posts(channel=CHANNEL, thread_ts=None), what="the anchor")[0]
        upload = self.wait_upload(bot, CHANNEL, anchor["ts"])
        self.assertEqual(["m%d" % i for i in range(5)], TOKEN.findall(self.timeline_part(self.markdown(upload))))

    def test_slash_command_where_the_bot_cannot_post_answers_privately(self):
        self.fs.add_channel("C0NOTME", "elsewhere", member=False, members=[ALICE])
        self.start_bot()
        _, rid = self.fs.slash("C0NOTME", "this")
        answer = self.fs.wait_for(lambda: self.fs.responses_to(rid), what="the answer")[0]
        self.assertIn("not_in_channel", answer["text"])

    def test_key_events_and_action_items(self):
        parent = self.add("m1 checkout errors")
        pinned = self.reply(parent, "r1.1 rolled out 4.2")
        k2 = self.add("r1.2 error rate 30%", user=GRACE, thread_ts=parent,
                      reactions=[{"name": "pushpin", "users": [ALICE], "count": 1}])
        self.add("TODO: alert on card errors <@%s>" % GRACE, user=ALICE, thread_ts=parent)
        self.add("we need a runbook", user=ALICE, thread_ts=parent,
                 reactions=[{"name": "memo", "users": [GRACE], "count": 1}])
        self.add("Follow-up: review the rollout", user=GRACE, thread_ts=parent)
        self.fs.pins[CHANNEL] = [pinned]
        bot = self.start_bot()
        cmd_ts, _ = self.fs.mention(CHANNEL, ALICE, "autopsy this", thread_ts=parent)
        md = self.markdown(self.wait_upload(bot, CHANNEL, parent))
        key = md.split("\n## Key events\n", 1)[1].split("\n## ", 1)[0]
        self.assertIn("r1.1 rolled out 4.2 · _pinned_", key)
        self.assertIn("r1.2 error rate 30%", key)
        self.assertEqual(2, key.count("\n- "))
        self.assertIn(pinned.replace(".", ""), key)
        self.assertIn(k2.replace(".", ""), key)
        actions = md.split("\n## Action items\n", 1)[1].split("\n## ", 1)[0]
        tasks = [line for line in actions.splitlines() if line.startswith("- [ ] ")]
        self.assertEqual(3, len(tasks), actions)
        self.assertRegex(tasks[0], r"^- \[ \] alert on card errors @Grace — @Grace \(\[message\]\(https://")
        self.assertTrue(tasks[1].startswith("- [ ] we need a runbook ("), tasks[1])
        self.assertTrue(tasks[2].startswith("- [ ] review the rollout ("), tasks[2])
        self.assertEqual(2, len(re.findall(r"· \*\*key event\*\*", md)))
        self.assertEqual(3, len(re.findall(r"· \*\*action item\*\*", md)))
        self.assertEqual(1, len(self.fs.calls("pins.list")))

    def test_fifteen_a_page_regime(self):
        for i in range(100):
            self.add("m%d" % i)
        self.fs.history_max_page = 15
        bot = self.start_bot()
        cmd_ts, _ = self.fs.mention(CHANNEL, ALICE, "autopsy this")
        md = self.markdown(self.wait_upload(bot, CHANNEL, cmd_ts))
        self.assertEqual(["m%d" % i for i in range(100)], TOKEN.findall(self.timeline_part(md)))
        self.assertEqual(7, len(self.fs.calls("conversations.history")))
        bot.wait_log(r"15 messages a page", timeout=5)


if __name__ == "__main__":
    unittest.main()


class ChannelRender(unittest.TestCase):
    """`render --since/--until` of a channel: a Slack export channel folder, and a saved
    conversations.history response plus the replies (pages in one array), give a channel report
    with each thread's replies indented under its parent."""

    def setUp(self):
        import json, os, tempfile
        from harness import REPO
        self.json, self.os = json, os
        self.work = tempfile.mkdtemp(prefix="pmb-channel-render-")
        self.config = os.path.join(self.work, "c.lua")
        with open(self.config, "w") as f:
            f.write("return { scripts_dir = %s, templates_dir = %s, data_dir = %s, timezone = 'UTC' }\n" % (
                json.dumps(os.path.join(REPO, "scripts")), json.dumps(os.path.join(REPO, "templates")),
                json.dumps(os.path.join(self.work, "data"))))
        # 10:00 parent with 2 replies at 12:00 and 12:30; 11:00 message; 09:00 outside the window
        day = 1731578400  # 2024-11-14T10:00:00Z
        self.top = [{"type": "message", "user": "U1", "text": "m0", "ts": "%d.000100" % (day - 3600)},
                    {"type": "message", "user": "U1", "text": "m1", "ts": "%d.000100" % day,
                     "thread_ts": "%d.000100" % day, "reply_count": 2},
                    {"type": "message", "user": "U2", "text": "m2", "ts": "%d.000100" % (day + 3600)}]
        self.replies = [{"type": "message", "user": "U2", "text": "r1.%d" % i, "ts": "%d.000100" % (day + 7200 + 1800 * i),
                         "thread_ts": "%d.000100" % day} for i in range(2)]

    def tearDown(self):
        import shutil
        shutil.rmtree(self.work, ignore_errors=True)

    def render(self, path):
        import subprocess
        from harness import bot_binary
        out = self.os.path.join(self.work, "out")
        p = subprocess.run([bot_binary(), "render", path, "--since", "2024-11-14T09:30", "--until", "2024-11-14T23:00",
                            "-c", self.config, "-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(0, p.returncode, p.stderr)
        with open(p.stdout.strip(), encoding="utf-8") as f:
            return f.read()

    def check(self, md):
        part = ChannelTest.timeline_part(md)
        self.assertEqual(["m1", "r1.0", "r1.1", "m2"], TOKEN.findall(part))
        self.assertRegex(part, r"\n  - \*\*12:00:00\*\* · \*\*U2\*\*[^\n]*\n\n    r1\.0\n")
        self.assertIn("The channel's messages in order (2024-11-14 09:30 UTC to 2024-11-14 23:00 UTC)", md)

    def test_export_channel_folder(self):
        folder = self.os.path.join(self.work, "export", "inc")
        self.os.makedirs(folder)
        with open(self.os.path.join(folder, "2024-11-14.json"), "w") as f:
            self.json.dump(sorted(self.top + self.replies, key=lambda m: m["ts"]), f)
        self.check(self.render(folder))

    def test_saved_history_plus_replies(self):
        path = self.os.path.join(self.work, "history.json")
        history = {"ok": True, "messages": list(reversed(self.top)), "has_more": False}
        replies = {"ok": True, "messages": [self.top[1]] + self.replies, "has_more": False}
        with open(path, "w") as f:
            self.json.dump([history, replies], f)
        self.check(self.render(path))
