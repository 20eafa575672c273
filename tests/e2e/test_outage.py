#!/usr/bin/env python3
"""End to end: running an outage from Slack (statusupdate, incident start, incident resolve),
the real binary against the fake Slack and a WebhookSink standing in for a WhatsApp bridge.
Checks each command's Slack messages and webhook bodies (exact JSON), webhook retries (500 then
200; always 500: reported while the other destinations are still delivered), refusals (nothing
sent), the incident record surviving a restart, and resolve feeding the report's figures.
Uses tests/e2e/harness.py (BotTestCase) and tests/fakeslack/webhook_sink.py."""
import json
import os
import re
import shutil
import tempfile
import time
import unittest

from harness import BotTestCase, WebhookSink, ask_and_wait

WAR = "C0WARROOM"      # where people work and type commands
STATUS = "C0STATUS"    # status.channels
INC = "C0INCIDENT"     # incident.channel
LEAD = "U0LEAD"
INTERN = "U0INTERN"
OPS = "U0OPS"
RELAY_SECRET = "test-relay-secret"
WORKSPACE = "https://fake-workspace.slack.com/"
WHEN = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$")
AT_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def permalink(channel, ts):
    return "%sarchives/%s/p%s" % (WORKSPACE, channel, ts.replace(".", ""))


class OutageTest(BotTestCase):
    def setUp(self):
        super().setUp()
        self.sink = WebhookSink().start()
        self.addCleanup(self.sink.stop)
        fs = self.fs
        fs.add_channel(WAR, "war-room")
        fs.add_channel(STATUS, "status")
        fs.add_channel(INC, "incidents")
        fs.add_user(LEAD, display_name="Lea Lead")
        fs.add_user(INTERN, display_name="Ivan Intern")
        fs.add_user(OPS, display_name="Olga Ops")
        fs.add_usergroup("S0ONCALL", [OPS])
        self.data_dir = tempfile.mkdtemp(prefix="pmb-outage-data-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)

    # --- helpers ----------------------------------------------------------------------------
    def config(self, **overrides):
        cfg = {
            "data_dir": self.data_dir,
            "status": {
                "channels": [STATUS],
                "webhooks": [{"name": "relay", "url": self.sink.url + "hook",
                              "headers": {"Authorization": "Bearer ${RELAY_TOKEN}",
                                          "Content-Type": "application/json"},
                              "body_template": "statusupdate.webhook.json", "retries": 2}],
            },
            "incident": {"channel": INC, "runbook_url": "https://wiki.example.com/runbooks/outage",
                         "first_status_update": True},
        }
        cfg.update(overrides)
        return cfg

    def bot(self, **overrides):
        return self.start_bot(self.config(**overrides), env={"RELAY_TOKEN": RELAY_SECRET})

    def thread(self, channel=WAR, text="Checkout is down for EU users", user=LEAD):
        return self.fs.add_message(channel, {"user": user, "text": text})["ts"]

    def command(self, bot, text, channel=WAR, thread_ts=None, user=LEAD, timeout=30):
        """Mention the bot; wait for its reply in the thread; returns (command ts, reply text)."""
        return ask_and_wait(self.fs, bot, channel, user, text, thread_ts, timeout)

    def record(self, channel, ts):
        path = os.path.join(self.data_dir, "incidents", "%s-%s.json" % (channel, ts))
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def check_times(self, body):
        self.assertRegex(body.pop("at"), AT_ISO)
        self.assertRegex(body.pop("when"), WHEN)
        return body

    # --- statusupdate -----------------------------------------------------------------------
    def test_statusupdate_reaches_channel_and_webhook_with_one_reply(self):
        bot = self.bot()
        parent = self.thread()
        ts, reply = self.command(bot, 'statusupdate "Rollback under way <@U0OPS> &amp; co"', thread_ts=parent)

        self.assertEqual("Status update sent to 2 of 2 destinations:\n• <#C0STATUS>: ok\n• webhook relay: ok", reply)
        replies = [p for p in self.fs.posts(WAR, parent)]
        self.assertEqual(1, len(replies), [p["text"] for p in replies])

        posts = self.fs.posts(STATUS)
        self.assertEqual(1, len(posts))
        lines = posts[0]["text"].split("\n")
        self.assertEqual(":mega: *Status update: Checkout is down for EU users*", lines[0])
        # a typed mention is relayed as the name, not as a ping (status.allow_mentions is off)
        self.assertEqual("Rollback under way @Olga Ops &amp; co", lines[1])
        self.assertRegex(lines[2], r"^<@U0LEAD> · \d{4}-\d\d-\d\d \d\d:\d\d UTC · <%s\|incident thread>$"
                         % re.escape(permalink(WAR, parent)))
        self.assertEqual(3, len(lines))

        reqs = self.sink.requests_for("/hook")
        self.assertEqual(1, len(reqs))
        self.assertEqual("POST", reqs[0]["method"])
        self.assertEqual("Bearer " + RELAY_SECRET, reqs[0]["headers"]["authorization"])
        self.assertEqual("application/json", reqs[0]["headers"]["content-type"])
        body = json.loads(reqs[0]["body"])
        when = body["when"]
        self.assertEqual({
            "event": "status",
            "title": "Checkout is down for EU users",
            "text": "Rollback under way @Olga Ops & co",
            "by": "Lea Lead",
            "duration": "",
            "thread": permalink(WAR, parent),
            "message": "Status update: Checkout is down for EU users - Rollback under way @Olga Ops & co "
                       "(Lea Lead, %s)" % when,
        }, self.check_times(body))
        self.assertNotIn(RELAY_SECRET, bot.log_text())

    def test_webhook_failing_once_is_retried_and_delivered(self):
        self.sink.script("/hook", [500])
        bot = self.bot()
        parent = self.thread()
        _, reply = self.command(bot, "statusupdate Payments recovering", thread_ts=parent)
        self.assertIn("• webhook relay: ok", reply)
        self.assertIn("sent to 2 of 2 destinations", reply)
        reqs = self.sink.requests_for("/hook")
        self.assertEqual([500, 200], [r["status"] for r in reqs])
        self.assertEqual(reqs[0]["body"], reqs[1]["body"])
        self.assertEqual("Payments recovering", json.loads(reqs[1]["body"])["text"])

    def test_webhook_that_keeps_failing_is_reported_and_others_delivered(self):
        hooks = [{"name": "broken-bridge", "url": self.sink.url + "broken", "retries": 2},
                 {"name": "relay", "url": self.sink.url + "hook",
                  "headers": {"Authorization": "Bearer ${RELAY_TOKEN}"}}]
        self.sink.script("/broken", [500, 500, 500, 500])
        bot = self.bot(status={"channels": [STATUS], "webhooks": hooks})
        parent = self.thread()
        _, reply = self.command(bot, "statusupdate Still degraded", thread_ts=parent)
        self.assertEqual("Status update sent to 2 of 3 destinations:\n"
                         "• <#C0STATUS>: ok\n"
                         "• webhook broken-bridge: failed: HTTP 500 after 2 retries\n"
                         "• webhook relay: ok", reply)
        self.assertEqual(3, len(self.sink.requests_for("/broken")))
        self.assertEqual(1, len(self.sink.requests_for("/hook")))
        self.assertEqual(1, len(self.fs.posts(STATUS)))

    def test_a_user_who_is_not_a_broadcaster_is_refused_and_nothing_is_sent(self):
        bot = self.bot(status={"channels": [STATUS], "broadcasters": {"users": [LEAD], "usergroups": ["S0ONCALL"]},
                               "webhooks": [{"name": "relay", "url": self.sink.url + "hook"}]})
        parent = self.thread()
        _, reply = self.command(bot, "statusupdate all fine, nothing to see", thread_ts=parent, user=INTERN)
        self.assertTrue(reply.startswith("Sorry <@U0INTERN>, only the configured broadcasters"), reply)
        self.assertIn("Nothing was sent", reply)
        _, reply = self.command(bot, "incident start Fake outage", user=INTERN)
        self.assertTrue(reply.startswith("Sorry <@U0INTERN>"), reply)
        self.assertEqual([], self.fs.posts(STATUS))
        self.assertEqual([], self.fs.posts(INC))
        self.assertEqual([], self.sink.requests)

        # a member of a listed user group may
        _, reply = self.command(bot, "statusupdate from on-call", thread_ts=parent, user=OPS)
        self.assertEqual("Status update sent to 2 of 2 destinations:\n• <#C0STATUS>: ok\n• webhook relay: ok", reply)
        self.assertEqual(1, len(self.fs.calls("usergroups.users.list")), "the group's members are cached")

    # --- incident start / resolve -----------------------------------------------------------
    def start_incident(self, bot, title="Checkout returns 502"):
        before = time.time()
        ts, reply = self.command(bot, "incident start " + title)
        roots = [p for p in self.fs.posts(INC) if p["thread_ts"] is None]
        self.assertEqual(1, len(roots), [p["text"] for p in self.fs.posts(INC)])
        return ts, reply, roots[0], before

    def test_incident_start_opens_the_thread_records_and_broadcasts(self):
        bot = self.bot()
        ts, reply, root, before = self.start_incident(bot)
        root_ts = root["ts"]

        lines = root["text"].split("\n")
        self.assertEqual(":rotating_light: *Incident: Checkout returns 502*", lines[0])
        self.assertRegex(lines[1], r"^Started by <@U0LEAD> at \d{4}-\d\d-\d\d \d\d:\d\d UTC$")
        self.assertEqual("Runbook: <https://wiki.example.com/runbooks/outage|runbook>", lines[2])
        self.assertIn("*Checklist*", lines)
        self.assertIn("<@U0BOT> `incident resolve &lt;what fixed it&gt;`", root["text"])

        howto = self.fs.posts(INC, root_ts)
        self.assertEqual(1, len(howto))
        self.assertIn("<@U0BOT> `statusupdate &lt;text&gt;`", howto[0]["text"])

        self.assertEqual("Incident opened: <%s|Checkout returns 502> in <#C0INCIDENT>. Post updates in that thread.\n"
                         "First status update sent to 2 of 2 destinations:\n• <#C0STATUS>: ok\n• webhook relay: ok"
                         % permalink(INC, root_ts), reply)

        status = self.fs.posts(STATUS)
        self.assertEqual(1, len(status))
        self.assertTrue(status[0]["text"].startswith(":mega: *Incident started: Checkout returns 502*\n"
                                                     "We are investigating.\n<@U0LEAD> · "), status[0]["text"])
        body = self.check_times(json.loads(self.sink.requests_for("/hook")[0]["body"]))
        self.assertEqual("started", body["event"])
        self.assertEqual("Checkout returns 502", body["title"])
        self.assertEqual("We are investigating.", body["text"])
        self.assertEqual(permalink(INC, root_ts), body["thread"])

        record = self.record(INC, root_ts)
        self.assertEqual(INC, record["channel"])
        self.assertEqual(root_ts, record["thread_ts"])
        self.assertEqual("Checkout returns 502", record["title"])
        self.assertEqual(LEAD, record["started_by"])
        self.assertTrue(before - 1 <= record["started_at"] <= time.time() + 1, record["started_at"])
        self.assertNotIn("resolved_at", record)
        self.assertEqual([{"ts": root_ts, "user": LEAD, "text": "We are investigating.",
                           "at": record["started_at"]}], record["status_updates"])
        self.assertEqual({"channel": WAR, "ts": ts}, record["started_from"])

    def test_incident_record_survives_restart_and_resolve_uses_it(self):
        bot = self.bot()
        _, _, root, _ = self.start_incident(bot)
        root_ts = root["ts"]
        _, reply = self.command(bot, "statusupdate Rolling back release 42", channel=INC, thread_ts=root_ts)
        self.assertIn("Status update sent to 2 of 2", reply)
        bot.stop()

        bot2 = self.bot()
        cmd_ts, reply = self.command(bot2, "incident resolve Rolled back release 42", channel=INC, thread_ts=root_ts)
        lines = reply.split("\n")
        self.assertEqual(":white_check_mark: *Resolved: Checkout returns 502*", lines[0])
        self.assertEqual("Rolled back release 42", lines[1])
        # started at the recorded start (seconds ago), not at the fake's 2023 parent ts
        self.assertRegex(lines[3], r"^Started \d{4}-\d\d-\d\d \d\d:\d\d UTC · duration \d+s$")  # timefmt.duration, as in the report
        self.assertIn("Resolution sent to 2 of 2 destinations", reply)

        record = self.record(INC, root_ts)
        self.assertEqual(cmd_ts, record["resolution_ts"])
        self.assertEqual(LEAD, record["resolved_by"])
        self.assertEqual("Rolled back release 42", record["resolution_text"])
        self.assertGreaterEqual(record["resolved_at"], record["started_at"])
        self.assertEqual(["We are investigating.", "Rolling back release 42", "Rolled back release 42"],
                         [u["text"] for u in record["status_updates"]])

        resolved = [p for p in self.fs.posts(STATUS) if p["text"].startswith(":mega: *Resolved:")]
        self.assertEqual(1, len(resolved))
        self.assertRegex(resolved[0]["text"], r"\nDuration: \d+s\n")
        bodies = [self.check_times(json.loads(r["body"])) for r in self.sink.requests_for("/hook")]
        self.assertEqual(["started", "status", "resolved"], [b["event"] for b in bodies])
        self.assertRegex(bodies[2]["duration"], r"^\d+s$")  # seconds after the start, said as the report does
        self.assertEqual({"event": "resolved", "title": "Checkout returns 502", "text": "Rolled back release 42",
                          "by": "Lea Lead", "duration": bodies[2]["duration"], "thread": permalink(INC, root_ts),
                          "message": bodies[2]["message"]}, bodies[2])
        self.assertTrue(bodies[2]["message"].startswith("Resolved: Checkout returns 502 - Rolled back release 42 "
                                                        "(Lea Lead, "), bodies[2]["message"])

        # resolving again sends nothing
        sent = len(self.sink.requests)
        _, reply = self.command(bot2, "incident resolve", channel=INC, thread_ts=root_ts)
        self.assertIn("already resolved", reply)
        self.assertEqual(sent, len(self.sink.requests))

    def test_resolve_without_a_record_builds_one_from_the_thread(self):
        bot = self.bot()
        parent = self.thread(text="API latency alarms firing\nsee graphs")
        cmd_ts, reply = self.command(bot, "incident resolve", thread_ts=parent)
        record = self.record(WAR, parent)
        self.assertEqual("API latency alarms firing", record["title"])
        self.assertEqual(float(parent), record["started_at"])
        self.assertEqual(cmd_ts, record["resolution_ts"])
        self.assertTrue(reply.startswith(":white_check_mark: *Resolved: API latency alarms firing*\n"), reply)
        # the fake's parent ts is from 2023: the duration is counted from it, in days
        self.assertRegex(reply, r"Started 2023-11-14 \d\d:\d\d UTC · duration \d+d \d+h \d\dm")
        body = json.loads(self.sink.requests_for("/hook")[0]["body"])
        self.assertEqual("The incident is resolved.", body["text"])

    def resolve_then_autopsy(self, delete_command=False):
        bot = self.bot()
        _, _, root, _ = self.start_incident(bot)
        root_ts = root["ts"]
        self.fs.add_message(INC, {"user": LEAD, "text": "error rate back to normal", "thread_ts": root_ts})
        resolve_ts, _ = self.command(bot, "incident resolve fixed by rollback", channel=INC, thread_ts=root_ts)
        if delete_command:
            # someone tidies the thread: the command message is gone, the record still knows
            with self.fs.lock:
                msg = self.fs._by_ts[INC].pop(resolve_ts)
                self.fs.messages[INC].remove(msg)
                self.fs._by_ts[INC][root_ts]["reply_count"] -= 1

        before = len(self.fs.uploads)
        self.fs.mention(INC, LEAD, "autopsy this", thread_ts=root_ts)
        self.fs.wait_for(lambda: len(self.fs.uploads) > before, timeout=60,
                         what="the postmortem upload (bot log:\n%s)" % bot.tail(30))
        with open(os.path.join(self.data_dir, "reports", INC, root_ts, "v1", "timeline.json"), encoding="utf-8") as f:
            timeline = json.load(f)
        if delete_command:
            self.assertNotIn(resolve_ts, [e["ts"] for e in timeline["entries"]])
        resolution = timeline["figures"].get("resolution")
        self.assertIsNotNone(resolution, timeline["figures"])
        return resolve_ts, resolution

    def test_resolve_feeds_the_reports_resolution_figure(self):
        resolve_ts, resolution = self.resolve_then_autopsy()
        self.assertEqual(resolve_ts, resolution["ts"])
        self.assertEqual("incident resolve", resolution["source"])

    def test_resolution_figure_comes_from_the_record_when_the_command_message_is_gone(self):
        resolve_ts, resolution = self.resolve_then_autopsy(delete_command=True)
        self.assertEqual(resolve_ts, resolution["ts"])
        self.assertEqual("incident resolve", resolution["source"])

if __name__ == "__main__":
    unittest.main()
