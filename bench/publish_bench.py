#!/usr/bin/env python3
"""Publish benchmark (issue 17): the real binary publishes a 20-file report (the .md and 19
attachments of 64 KB) to a bare repository served by `git daemon` on loopback; `publish` is
mentioned once per new version and the time from the mention to the bot's answer is measured
(fetch, stage, commit, push: about eight git child processes). Prints figures, asserts nothing.

Run by bench/publish.sh (make bench). Uses tests/e2e/harness.py (BotProcess), the fake Slack and
tests/e2e/test_publish.py's GitServers. Usage: python3 bench/publish_bench.py [--runs 5] [--files 20]
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeslack"))
import harness  # noqa: E402
from fakeslack import FakeSlack  # noqa: E402
from test_publish import GitServers, log  # noqa: E402

CHANNEL, THREAD = "C0BENCH", "1731624067.001900"


def write_version(data_dir, version, files):
    base = os.path.join(data_dir, "reports", CHANNEL, THREAD, "v%d" % version)
    os.makedirs(os.path.join(base, "attachments"), exist_ok=True)
    with open(os.path.join(base, "postmortem-2024-11-14-bench.md"), "w") as f:
        f.write("# Postmortem: bench, version %d\n" % version)
    for i in range(files - 1):
        with open(os.path.join(base, "attachments", "F%04d-file.bin" % i), "wb") as f:
            f.write(os.urandom(65536))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--files", type=int, default=20)
    args = ap.parse_args()
    servers = GitServers()
    fs = FakeSlack().start()
    bot = None
    try:
        bare = servers.bare()
        url = servers.start_daemon() + "/wiki.git"
        fs.add_channel(CHANNEL, "bench", members=["U0ALICE"])
        bot = harness.BotProcess(fs, {"publish": {"git": {"url": url}}})
        bot.start()
        times = []
        for run in range(1, args.runs + 1):
            write_version(bot.data_dir, run, args.files)
            before = len(fs.posts(channel=CHANNEL, thread_ts=THREAD))
            started = time.monotonic()
            fs.mention(CHANNEL, "U0ALICE", "publish", thread_ts=THREAD)
            post = fs.wait_for(lambda: next((p for p in fs.posts(channel=CHANNEL, thread_ts=THREAD)[before:]
                                             if ":books:" in p["text"] or ":x:" in p["text"]), None),
                               timeout=120, what="the answer")
            times.append(time.monotonic() - started)
            if ":books:" not in post["text"]:
                print("publish failed: " + post["text"])
                return 1
        print("publish of a %d-file report (%d KB) to git daemon on loopback: median %.0f ms, min %.0f, max %.0f "
              "over %d versions (mention to answer; the first one also makes the cache); %d commits"
              % (args.files, (args.files - 1) * 64, statistics.median(times) * 1000, min(times) * 1000,
                 max(times) * 1000, len(times), len(log(bare))))
        print("per run (ms): " + ", ".join("%.0f" % (t * 1000) for t in times))
        return 0
    finally:
        if bot:
            bot.stop()
            bot.cleanup()
        fs.stop()
        servers.stop()


if __name__ == "__main__":
    sys.exit(main())
