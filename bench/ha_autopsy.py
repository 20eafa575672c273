#!/usr/bin/env python3
"""Database mode next to file mode (issue 16): `autopsy this` on the incident fixture
(tests/fixtures/incident), end to end, the real binary against the fake Slack; N runs in each mode
(each run a new version of the same thread, so database mode allocates vN and reads the previous
timeline from PostgreSQL), median and max of mention -> upload. Database mode uses a throwaway
cluster (tests/pgcluster.py) on a Unix socket. Prints figures, asserts nothing.
Run by bench/ha_autopsy.sh (make bench). Usage: python3 bench/ha_autopsy.py [--runs 5]"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import harness  # noqa: E402
import pgcluster  # noqa: E402
from fakeslack import FakeSlack  # noqa: E402


def run_mode(runs, env):
    fs = FakeSlack().start()
    fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
    channel, parent = fs.load_fixture(harness.INCIDENT_FIXTURE)
    bot = harness.BotProcess(fs, None, env)
    times = []
    try:
        bot.start()
        for _ in range(runs):
            before = len(fs.uploads)
            start = time.monotonic()
            fs.mention(channel, "U01ALICE", "autopsy this", thread_ts=parent)
            fs.wait_for(lambda: len(fs.uploads) > before, timeout=120, interval=0.002,
                        what="the upload")
            times.append(time.monotonic() - start)
    finally:
        bot.stop()
        bot.cleanup()
        fs.stop()
    return times


def show(label, times):
    print("%-15s runs=%d  median=%6.1f ms  max=%6.1f ms  first=%6.1f ms" % (
        label, len(times), statistics.median(times) * 1000, max(times) * 1000, times[0] * 1000))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    show("file mode", run_mode(args.runs, None))
    if not pgcluster.available():
        print("database mode: skipped (PostgreSQL is not installed: make deps)")
        return
    cluster = pgcluster.PgCluster().start()
    try:
        show("database mode", run_mode(args.runs, {"POSTMORTEMBOT_DATABASE_URL": cluster.url()}))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
