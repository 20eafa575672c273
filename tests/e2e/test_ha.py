#!/usr/bin/env python3
"""End to end, several instances (issue 16): real bot processes against the fake Slack serving
several Socket Mode connections of one app (tests/fakeslack/dispatch.py: each envelope to one
connection, an unacked one redelivered to another) and a real PostgreSQL (tests/pgcluster.py; a
TCP proxy, tests/pgproxy.py, makes it unreachable for one instance). Checks that a redelivery to a
second instance is acked and not run twice, that `kill -9` of the instance running an autopsy
leaves exactly one report (another instance takes the job over), that an ack does not wait for a
database that does not answer (degraded: acked, run, counted, recorded later), and that an
instance paused past its lease (SIGSTOP) does no visible work once resumed (fencing). Figures
(ack latency, takeover time) are printed. Uses harness.py."""
import json
import os
import signal
import sys
import threading
import time
import unittest
import urllib.request

from harness import REPO, BotTestCase, WebhookSink, free_port

sys.path.insert(0, os.path.join(REPO, "tests"))
import pgcluster  # noqa: E402
import pgproxy  # noqa: E402
from dispatch import Dispatcher  # noqa: E402

ALICE = "U0ALICE"
CHANNEL = "C0HA"
# short leases keep the tests quick; the defaults are 10 / 3 / 1 / 2
FAST = {"lease": 3, "renew": 1, "sweep": 0.5, "step_margin": 1}
CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = pgcluster.for_module()
    unittest.addModuleCleanup(CLUSTER.stop)


def stopped(bot):
    """Has SIGSTOP taken effect (state T in /proc)? Before it has, the process may still read."""
    with open("/proc/%d/stat" % bot.pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


class HaTestCase(BotTestCase):
    def setUp(self):
        super().setUp()
        self.db = "ha_" + self._testMethodName[5:][:40]
        pgcluster.fresh_db(CLUSTER, self.db)
        self.dispatcher = Dispatcher(self.fs, ack_timeout=1.0)
        self.addCleanup(self.dispatcher.stop)

    def instance(self, url=None, config=None):
        """Start one instance; returns (bot, its Socket Mode connection on the fake)."""
        before = {c.id for c in self.fs.open_connections()}
        port = free_port()
        cfg = {"database": dict(FAST), "listen": "127.0.0.1:%d" % port}
        cfg.update(config or {})
        bot = self.start_bot(cfg, env={"POSTMORTEMBOT_DATABASE_URL": url or CLUSTER.url(db=self.db)})
        bot.health_url = "http://%s/healthz" % cfg["listen"]
        conn = self.fs.wait_for(lambda: [c for c in self.fs.open_connections() if c.id not in before],
                                what="the instance's connection")[0]
        return bot, conn

    @staticmethod
    def health(bot):
        return json.loads(urllib.request.urlopen(bot.health_url, timeout=5).read())

    def sql(self, query):
        return CLUSTER.psql(query, db=self.db)

    def job_owner(self, event_id, bots, timeout=10):
        """The bot whose pid owns the job of event_id."""
        return self.job_owner_of("event:" + event_id, bots, timeout)

    def job_owner_of(self, job_id, bots, timeout=10):
        def owner():
            rows = self.sql("SELECT owner FROM pmb_jobs WHERE id = '%s'" % job_id)
            return rows and rows[0][0]
        name = self.fs.wait_for(owner, timeout=timeout, what="the job row")
        pid = int(name.rsplit(":", 1)[1])
        return next(b for b in bots if b.pid == pid)

    def thread_uploads(self, channel, thread_ts):
        with self.fs.lock:
            return [u for u in self.fs.uploads if u["channel"] == channel and u["thread_ts"] == thread_ts]

    def bot_posts(self, channel, thread_ts):
        return [p for p in self.fs.posts(channel, thread_ts)]

    def autopsy_on_one_of(self, bots, reading):
        """`autopsy this` in the incident thread, its instance stuck `reading` seconds reading the
        thread; returns (channel, parent, event_id, the instance running it, another one)."""
        channel, parent = self.load_incident()
        self.fs.fault("conversations.replies", delay=reading)
        _, eid = self.dispatcher.mention(channel, ALICE, "autopsy this", thread_ts=parent)
        owner = self.job_owner(eid, bots)
        time.sleep(0.5)
        return channel, parent, eid, owner, next(b for b in bots if b is not owner)

    def assert_one_report_by_the_second_generation(self, channel, parent, eid):
        """After a lease's time: one report in the thread, no failure reply (the fenced instance
        said nothing), the job done by its second generation."""
        time.sleep(FAST["lease"] + 2)
        self.assertEqual(1, len(self.thread_uploads(channel, parent)), self.fs.summary())
        failures = [p for p in self.bot_posts(channel, parent) if ":x:" in (p.get("text") or "")]
        self.assertEqual([], failures)
        rows = self.sql("SELECT state, generation FROM pmb_jobs WHERE id = 'event:%s'" % eid)
        self.assertEqual([["done", "2"]], rows)


class RedeliveryTest(HaTestCase):
    def test_redelivery_to_another_instance_is_not_run_twice(self):
        a, conn_a = self.instance()
        b, _ = self.instance()
        self.fs.add_channel(CHANNEL, "ha")
        # a cannot ack: Slack redelivers to b (retry_attempt 1), b records the job and runs it
        a.send_signal(signal.SIGSTOP)
        self.fs.wait_for(lambda: stopped(a), timeout=5, what="the instance stopped")
        try:
            ts, eid = self.dispatcher.mention(CHANNEL, ALICE, "help", conn=conn_a)
            self.fs.wait_for(lambda: self.bot_posts(CHANNEL, ts), timeout=20, what="the help reply")
            redelivered = [d for d in self.dispatcher.deliveries(eid) if d[2] >= 1]
            self.assertTrue(redelivered, "the envelope was not redelivered")
        finally:
            a.send_signal(signal.SIGCONT)
        # a now reads the first delivery: the job exists, so it acks and does not run it
        a.wait_log(r"redelivered request already has a job", timeout=10)
        time.sleep(1.5)
        self.assertEqual(1, len(self.bot_posts(CHANNEL, ts)), self.fs.summary())
        first = self.dispatcher.deliveries(eid)[0][0]
        self.assertIsNotNone(self.fs.ack_for(first), "the first delivery was never acked")
        rows = self.sql("SELECT state, generation FROM pmb_jobs WHERE id = 'event:%s'" % eid)
        self.assertEqual([["done", "1"]], rows)

    def test_same_event_on_two_connections_runs_once(self):
        _, conn_a = self.instance()
        _, conn_b = self.instance()
        self.fs.add_channel(CHANNEL, "ha")
        ts, _ = self.fs.mention(CHANNEL, ALICE, "help", send=False)
        msg = self.fs._by_ts[CHANNEL][ts]
        event = {"type": "app_mention", "user": ALICE, "text": msg["text"], "ts": ts, "channel": CHANNEL,
                 "event_ts": ts}
        e1 = self.fs.send_event(event, event_id="Ev0TWICE1", conn=conn_a)
        e2 = self.fs.send_event(event, event_id="Ev0TWICE1", retry_attempt=1, conn=conn_b)
        self.fs.wait_for(lambda: self.fs.ack_for(e1) and self.fs.ack_for(e2), what="both acks")
        self.fs.wait_for(lambda: self.bot_posts(CHANNEL, ts), timeout=15, what="the reply")
        time.sleep(1.5)
        self.assertEqual(1, len(self.bot_posts(CHANNEL, ts)), self.fs.summary())


    def test_the_stored_envelope_is_the_one_slack_sent_without_its_token(self):
        self.instance()
        self.fs.add_channel(CHANNEL, "ha")
        text = 'help "quoted" back\\slash {braces}, commas ünïcödé € \u2028 \t tab "token":"in a text", "token": "x"'
        self.fs.mention(CHANNEL, ALICE, text)
        sent = self.fs.envelopes[-1]
        rows = self.fs.wait_for(lambda: self.sql("SELECT envelope FROM pmb_jobs WHERE id = 'event:%s'"
                                                 % sent["event_id"]), what="the job row")
        expected = json.loads(json.dumps(sent["envelope"]))
        self.assertIn("token", expected["payload"])
        del expected["payload"]["token"]  # Slack's verification token is not kept
        self.assertEqual(expected, json.loads(rows[0][0]))
        self.assertNotIn("fake-verification", rows[0][0])

    def test_slash_command_is_a_job_keyed_by_its_envelope(self):
        _, conn_a = self.instance()
        _, conn_b = self.instance()
        self.fs.add_channel(CHANNEL, "ha")
        eid, rid = self.fs.slash(CHANNEL, "help")
        payload = self.fs.envelopes[-1]["envelope"]["payload"]
        self.fs.send_envelope("slash_commands", payload, envelope_id=eid,
                              conn=conn_b if self.fs.envelopes[-1]["conn_id"] == conn_a.id else conn_a)
        self.fs.wait_for(lambda: self.fs.responses_to(rid), timeout=15, what="the answer")
        self.fs.wait_for(lambda: self.sql("SELECT state FROM pmb_jobs WHERE id = 'envelope:%s'" % eid)
                         == [["done"]], timeout=10, what="the job done")
        time.sleep(1.5)
        self.assertEqual(1, len(self.fs.responses_to(rid)))


class RetentionTest(HaTestCase):
    def test_finished_jobs_older_than_a_day_are_deleted(self):
        bot, _ = self.instance()
        self.sql("INSERT INTO pmb_jobs (id, envelope, owner, lease_until, accepted_by, state, finished_at) "
                 "VALUES ('event:OLD', '{}', 'x:1', now(), 'x:1', 'done', now() - interval '2 days'), "
                 "('event:RECENT', '{}', 'x:1', now(), 'x:1', 'done', now() - interval '2 hours')")
        bot.stop()
        self.instance()
        self.fs.wait_for(lambda: self.sql("SELECT id FROM pmb_jobs ORDER BY id") == [["event:RECENT"]],
                         timeout=10, what="the old job deleted, the recent one kept")


class TakeoverTest(HaTestCase):
    def test_kill9_of_the_running_instance_another_finishes_one_report(self):
        bots = [self.instance()[0] for _ in range(3)]
        channel, parent = self.load_incident()
        # the running instance is stuck reading the thread when it is killed
        self.fs.fault("conversations.replies", delay=6)
        _, eid = self.dispatcher.mention(channel, ALICE, "autopsy this", thread_ts=parent)
        owner = self.job_owner(eid, bots)
        time.sleep(1.0)
        health = self.health(owner)
        self.assertEqual("connected", health["database"])
        self.assertEqual(1, health["jobs_held"])
        self.assertEqual("event:%s#1" % eid, health["jobs_held_ids"])
        self.assertEqual(str(owner.pid), health["instance"].rsplit(":", 1)[1])
        killed_at = time.monotonic()
        os.kill(owner.pid, signal.SIGKILL)
        owner.proc.wait()
        self.fs.wait_for(lambda: self.thread_uploads(channel, parent), timeout=40, what="the report")
        took = time.monotonic() - killed_at
        sys.stderr.write("\n  takeover: kill -9 -> report in the thread %.2f s (lease %s s)\n"
                         % (took, FAST["lease"]))
        time.sleep(FAST["lease"] + 1)
        self.assertEqual(1, len(self.thread_uploads(channel, parent)), self.fs.summary())
        rows = self.sql("SELECT state, generation, takeovers FROM pmb_jobs WHERE id = 'event:%s'" % eid)
        self.assertEqual([["done", "2", "1"]], rows)
        others = [b for b in bots if b is not owner]
        self.assertTrue(any("job taken over" in "\n".join(b.log_lines) for b in others))

    def test_kill9_during_the_share_the_takeover_sees_the_report_and_does_not_repeat_it(self):
        bots = [self.instance()[0] for _ in range(2)]
        channel, parent = self.load_incident()
        # the share reaches Slack, which takes 2 s to answer; its instance dies meanwhile
        self.fs.fault("files.completeUploadExternal", delay=2)
        _, eid = self.dispatcher.mention(channel, ALICE, "autopsy this", thread_ts=parent)
        owner = self.job_owner(eid, bots)
        other = next(b for b in bots if b is not owner)

        def share_arrived():
            with self.fs.lock:
                return not self.fs._faults.get("files.completeUploadExternal")
        self.fs.wait_for(share_arrived, timeout=20, what="the share in flight")
        os.kill(owner.pid, signal.SIGKILL)
        owner.proc.wait()
        other.wait_log(r"step already visible; not repeated", timeout=20)
        time.sleep(FAST["lease"])
        self.assertEqual(1, len(self.thread_uploads(channel, parent)), self.fs.summary())
        self.assertEqual([["done", "2"]],
                         self.sql("SELECT state, generation FROM pmb_jobs WHERE id = 'event:%s'" % eid))

    def test_kill9_during_a_slash_autopsy_the_takeover_answers_in_the_same_thread(self):
        bots = [self.instance()[0] for _ in range(2)]
        channel, _ = self.load_incident()
        self.fs.fault("conversations.history", delay=6)
        eid, _ = self.fs.slash(channel, "")
        self.fs.wait_for(lambda: [p for p in self.fs.posts(channel) if "asked for a postmortem" in p["text"]],
                         timeout=10, what="the anchor message")
        owner = self.job_owner_of("envelope:" + eid, bots)
        time.sleep(0.5)
        os.kill(owner.pid, signal.SIGKILL)
        owner.proc.wait()
        anchors = [p for p in self.fs.posts(channel) if "asked for a postmortem" in p["text"]]
        self.assertEqual(1, len(anchors))
        self.fs.wait_for(lambda: self.thread_uploads(channel, anchors[0]["ts"]), timeout=40,
                         what="the report in the anchor's thread")
        time.sleep(FAST["lease"] + 1)
        with self.fs.lock:
            uploads = list(self.fs.uploads)
        self.assertEqual(1, len(uploads), self.fs.summary())
        self.assertEqual(1, len([p for p in self.fs.posts(channel) if "asked for a postmortem" in p["text"]]))

    def test_sigterm_hands_the_job_back_and_notify_wakes_another_instance(self):
        # the others sweep only every 60 s: the takeover can come only from NOTIFY pmb_jobs
        slow_sweep = {"database": dict(FAST, sweep=60)}
        bots = [self.instance(config=slow_sweep)[0] for _ in range(2)]
        channel, parent, eid, owner, other = self.autopsy_on_one_of(bots, reading=8)
        stopped_at = time.monotonic()
        owner.send_signal(signal.SIGTERM)
        owner.wait_log(r"job handed back", timeout=15)
        self.fs.wait_for(lambda: self.thread_uploads(channel, parent), timeout=30, what="the report")
        sys.stderr.write("\n  SIGTERM -> report by the other instance %.2f s (drain 5 s, then NOTIFY)\n"
                         % (time.monotonic() - stopped_at))
        self.assertIn("job taken over", "\n".join(other.log_lines))
        self.assertEqual(0, owner.wait(timeout=15))
        time.sleep(1)
        self.assertEqual(1, len(self.thread_uploads(channel, parent)))
        self.assertEqual([["done", "2"]],
                         self.sql("SELECT state, generation FROM pmb_jobs WHERE id = 'event:%s'" % eid))

    def test_paused_past_its_lease_the_resumed_instance_does_not_upload(self):
        bots = [self.instance()[0] for _ in range(2)]
        channel, parent, eid, owner, other = self.autopsy_on_one_of(bots, reading=3)
        owner.send_signal(signal.SIGSTOP)
        try:
            self.fs.wait_for(lambda: self.thread_uploads(channel, parent), timeout=40,
                             what="the report by the other instance")
        finally:
            owner.send_signal(signal.SIGCONT)
        self.assertIn("job taken over", "\n".join(other.log_lines))
        owner.wait_log(r"job fenced|job lease lost", timeout=15)
        self.assert_one_report_by_the_second_generation(channel, parent, eid)


class PartitionTest(HaTestCase):
    def test_instance_cut_off_from_the_database_while_holding_a_lease(self):
        proxy = pgproxy.PgProxy(CLUSTER)
        self.addCleanup(proxy.close)
        cut, conn = self.instance(url=proxy.url(self.db))
        other, _ = self.instance()
        channel, parent = self.load_incident()
        self.fs.fault("conversations.replies", delay=3)
        _, eid = self.dispatcher.mention(channel, ALICE, "autopsy this", thread_ts=parent, conn=conn)
        self.assertIs(cut, self.job_owner(eid, [cut, other]))
        time.sleep(0.5)
        proxy.down()  # its connections dropped, new ones refused: a partition for this instance only
        self.fs.wait_for(lambda: self.thread_uploads(channel, parent), timeout=40,
                         what="the report by the other instance")
        self.assertIn("job taken over", "\n".join(other.log_lines))
        cut.wait_log(r"job fenced", timeout=20)
        proxy.up()
        self.assert_one_report_by_the_second_generation(channel, parent, eid)


class StatusTakeoverTest(HaTestCase):
    def test_kill9_during_a_status_update_each_webhook_gets_it_once(self):
        sink = WebhookSink().start()
        self.addCleanup(sink.stop)
        status = {"status": {"webhooks": [{"name": "a", "url": sink.url + "a"},
                                          {"name": "b", "url": sink.url + "b"}]}}
        bots = [self.instance(config=status)[0] for _ in range(3)]
        self.fs.add_channel(CHANNEL, "ha")
        parent = self.fs.add_message(CHANNEL, {"user": ALICE, "text": "Checkout is down"})["ts"]
        # the running instance is stuck reading the thread's title when it is killed
        self.fs.fault("conversations.replies", delay=6)
        _, eid = self.dispatcher.mention(CHANNEL, ALICE, "statusupdate Payments are failing",
                                         thread_ts=parent)
        owner = self.job_owner(eid, bots)
        time.sleep(1.0)
        os.kill(owner.pid, signal.SIGKILL)
        owner.proc.wait()
        self.fs.wait_for(lambda: [p for p in self.bot_posts(CHANNEL, parent) if "Status update" in p["text"]],
                         timeout=40, what="the summary after the takeover")
        time.sleep(FAST["lease"] + 1)
        self.assertEqual(1, len(sink.requests_for("/a")))
        self.assertEqual(1, len(sink.requests_for("/b")))
        keys = {r["headers"].get("idempotency-key") for r in sink.requests}
        self.assertEqual({"event:%s/status:update:webhook:a" % eid, "event:%s/status:update:webhook:b" % eid},
                         keys)
        self.assertEqual(1, len(self.bot_posts(CHANNEL, parent)), self.fs.summary())


class RestartTest(HaTestCase):
    def test_postgres_restarted_during_a_stream_each_request_answered_once(self):
        for _ in range(3):
            self.instance()
        self.fs.add_channel(CHANNEL, "ha")
        restart = threading.Thread(target=CLUSTER.server, args=("restart",))
        asked = []
        for i in range(200):
            if i == 80:
                restart.start()
            ts, _ = self.dispatcher.mention(CHANNEL, ALICE, "help")
            asked.append(ts)
            time.sleep(0.03)
        restart.join()

        def answered():
            return all(self.bot_posts(CHANNEL, ts) for ts in asked)
        self.fs.wait_for(answered, timeout=120, interval=0.5, what="a reply to each of 200 requests")
        time.sleep(FAST["lease"] + 2)
        counts = [len(self.bot_posts(CHANNEL, ts)) for ts in asked]
        twice = [ts for ts, n in zip(asked, counts) if n != 1]
        self.assertEqual([], twice, "requests answered more than once")
        degraded = self.sql("SELECT count(*) FROM pmb_jobs WHERE degraded")[0][0]
        taken = self.sql("SELECT count(*) FROM pmb_jobs WHERE takeovers > 0")[0][0]
        sys.stderr.write("\n  200 requests, 3 instances, a restart: %s degraded, %s taken over\n"
                         % (degraded, taken))
        self.assertEqual([["200"]], self.sql("SELECT count(*) FROM pmb_jobs WHERE state = 'done'"))


class DegradedTest(HaTestCase):
    def test_database_not_answering_at_ack_time(self):
        proxy = pgproxy.PgProxy(CLUSTER)
        self.addCleanup(proxy.close)
        bot, _ = self.instance(url=proxy.url(self.db))
        self.fs.add_channel(CHANNEL, "ha")
        proxy.stall()
        ts, envelope_id = self.fs.mention(CHANNEL, ALICE, "help")
        ack = self.fs.wait_for(lambda: self.fs.ack_for(envelope_id), timeout=5, what="the ack")
        latency = ack.time_acked - ack.time_sent
        sys.stderr.write("\n  degraded ack after %.0f ms (bound 500 ms)\n" % (latency * 1000))
        self.assertGreaterEqual(latency, 0.45)
        self.assertLess(latency, 1.5)
        bot.wait_log(r"job not recorded before the ack; acked and run here \(degraded\)", timeout=5)
        self.assertEqual(1, self.health(bot)["jobs_degraded"])
        proxy.up()
        self.fs.wait_for(lambda: self.bot_posts(CHANNEL, ts), timeout=30, what="the reply")
        eid = self.fs.envelopes[-1]["event_id"]
        self.fs.wait_for(lambda: self.sql("SELECT state FROM pmb_jobs WHERE id = 'event:%s'" % eid)
                         == [["done"]], timeout=15, what="the job recorded done")
        time.sleep(1)
        self.assertEqual(1, len(self.bot_posts(CHANNEL, ts)))

    def test_database_down_at_ack_time_runs_and_records_later(self):
        proxy = pgproxy.PgProxy(CLUSTER)
        self.addCleanup(proxy.close)
        bot, _ = self.instance(url=proxy.url(self.db))
        self.fs.add_channel(CHANNEL, "ha")
        proxy.down()
        ts, envelope_id = self.fs.mention(CHANNEL, ALICE, "help")
        ack = self.fs.wait_for(lambda: self.fs.ack_for(envelope_id), timeout=5, what="the ack")
        self.assertLess(ack.time_acked - ack.time_sent, 1.5)
        # the job runs here without its row (a degraded job is not fenced)
        self.fs.wait_for(lambda: self.bot_posts(CHANNEL, ts), timeout=40, what="the reply")
        eid = self.fs.envelopes[-1]["event_id"]
        self.assertEqual([], self.sql("SELECT id FROM pmb_jobs WHERE id = 'event:%s'" % eid))
        proxy.up()
        self.fs.wait_for(lambda: self.sql("SELECT state, degraded FROM pmb_jobs WHERE id = 'event:%s'" % eid)
                         == [["done", "t"]], timeout=30, what="the degraded job recorded")
        bot.wait_log(r"degraded job recorded|job done", timeout=10)
        self.assertEqual(1, len(self.bot_posts(CHANNEL, ts)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
