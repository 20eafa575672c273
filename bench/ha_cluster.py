#!/usr/bin/env python3
"""Several instances in database mode (issue 16), on loopback against the fake Slack and a
throwaway PostgreSQL (tests/pgcluster.py): prints
  - the ack latency in database mode (the job row is written before each ack): p50/p99/max of a
    paced stream (one envelope every --gap ms) and of a burst sent in one write, file mode first
    for comparison (same machine, same moment);
  - jobs per second with 3 instances: --jobs `help` mentions dispatched round robin over their
    connections (tests/fakeslack/dispatch.py), from the first send to the last reply;
  - the takeover time after kill -9 with the default lease (10 s): the instance running an
    autopsy is killed while it reads the thread; kill -> claimed by another instance, and
    kill -> report in the thread (goal: lease + 2 s).
Prints figures, asserts nothing. Run by bench/ha_cluster.sh (make bench).
Usage: python3 bench/ha_cluster.py [--acks 300] [--gap 10] [--burst 200] [--jobs 300]"""
import argparse
import os
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import harness  # noqa: E402
import pgcluster  # noqa: E402
from ack_latency import describe_ack_histogram, read_ack_histogram  # noqa: E402
from dispatch import Dispatcher  # noqa: E402
from fakeslack import FakeSlack  # noqa: E402

CHANNEL = "C0BENCH"


def percentile(values, p):
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


class Cluster:
    """A fake Slack and n instances on one database."""

    def __init__(self, pg, db, n, config=None):
        env = None
        if db:
            pgcluster.fresh_db(pg, db)
            env = {"POSTMORTEMBOT_DATABASE_URL": pg.url(db=db)}
        self.fs = FakeSlack().start()
        self.fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
        self.fs.add_channel(CHANNEL, "bench")
        self.bots = []
        for _ in range(n):
            bot = harness.BotProcess(self.fs, config, env)
            bot.start()
            self.bots.append(bot)
        self.fs.wait_for(lambda: len(self.fs.open_connections()) == n, timeout=20)

    def stop(self):
        for bot in self.bots:
            if bot.running():
                bot.stop()
            bot.cleanup()
        self.fs.stop()


def event(fs, i):
    return {"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes", "event_ts": "%d.0001" % (1700000000 + i),
            "item": {"type": "message", "channel": CHANNEL, "ts": "1700000000.000100"}}


def ack_latency(pg, count, gap, burst, db="bench_acks"):
    """db None: the same in file mode, for comparison."""
    mode = "database mode" if db else "file mode"
    listen = "127.0.0.1:%d" % harness.free_port()
    c = Cluster(pg, db, 1, {"listen": listen})
    try:
        fs = c.fs
        ids = []
        for i in range(count):
            ids.append(fs.send_event(event(fs, i)))
            time.sleep(gap / 1000.0)
        fs.wait_for(lambda: all(fs.ack_for(e) for e in ids), timeout=60)
        lat = [fs.ack_for(e).time_acked - fs.ack_for(e).time_sent for e in ids]
        print("ack, %s, paced (1 every %d ms, %d envelopes): p50 %.2f ms  p99 %.2f ms  max %.2f ms"
              % (mode, gap, count, percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3, max(lat) * 1e3))
        print("  " + describe_ack_histogram(read_ack_histogram(listen)))
        ids = fs.send_burst([event(fs, count + i) for i in range(burst)])
        fs.wait_for(lambda: all(fs.ack_for(e) for e in ids), timeout=60)
        lat = [fs.ack_for(e).time_acked - fs.ack_for(e).time_sent for e in ids]
        print("ack, %s, burst of %d in one write: p50 %.2f ms  p99 %.2f ms  max %.2f ms"
              % (mode, burst, percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3, max(lat) * 1e3))
    finally:
        c.stop()


def throughput(pg, jobs):
    c = Cluster(pg, "bench_jobs", 3)
    d = Dispatcher(c.fs, ack_timeout=3.0)
    try:
        start = time.monotonic()
        asked = [d.mention(CHANNEL, "U0ALICE", "help")[0] for _ in range(jobs)]
        answered = set()

        def done():
            for ts in asked:
                if ts not in answered and c.fs.posts(CHANNEL, ts):
                    answered.add(ts)
            return len(answered) == len(asked)
        c.fs.wait_for(done, timeout=300, interval=0.05)
        took = time.monotonic() - start
        print("jobs, 3 instances: %d `help` requests answered in %.2f s = %.0f jobs/s"
              % (jobs, took, jobs / took))
    finally:
        d.stop()
        c.stop()


def takeover(pg):
    c = Cluster(pg, "bench_takeover", 3)
    d = Dispatcher(c.fs, ack_timeout=3.0)
    try:
        channel, parent = c.fs.load_fixture(harness.INCIDENT_FIXTURE)
        c.fs.fault("conversations.replies", delay=30)  # the running instance is stuck reading
        _, eid = d.mention(channel, "U0ALICE", "autopsy this", thread_ts=parent)

        def owner():
            rows = pg.psql("SELECT owner FROM pmb_jobs WHERE id = 'event:%s'" % eid, db="bench_takeover")
            return rows and rows[0][0]
        pid = int(c.fs.wait_for(owner, timeout=20).rsplit(":", 1)[1])
        victim = next(b for b in c.bots if b.pid == pid)
        time.sleep(1.0)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        victim.proc.wait()
        others = [b for b in c.bots if b is not victim]
        c.fs.wait_for(lambda: any("job taken over" in line for b in others for line in b.log_lines),
                      timeout=60, interval=0.01)
        claimed = time.monotonic() - killed
        c.fs.wait_for(lambda: c.fs.uploaded_files(channel, parent), timeout=60, interval=0.01)
        reported = time.monotonic() - killed
        print("takeover after kill -9 (lease 10 s, renewed every 3 s, sweep 1 s): claimed after %.2f s, "
              "report in the thread after %.2f s (goal: lease + 2 s = 12 s)" % (claimed, reported))
    finally:
        d.stop()
        c.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--acks", type=int, default=300)
    ap.add_argument("--gap", type=int, default=10)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=300)
    args = ap.parse_args()
    if not pgcluster.available():
        print("skipped: PostgreSQL is not installed (make deps)")
        return
    pg = pgcluster.PgCluster().start()
    try:
        ack_latency(pg, args.acks, args.gap, args.burst, db=None)
        ack_latency(pg, args.acks, args.gap, args.burst)
        throughput(pg, args.jobs)
        takeover(pg)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
