#!/usr/bin/env python3
"""Channel autopsy benchmark (issue 15): the real binary against the fake Slack with a latency added
to every Web API call (default 30 ms), a channel of 10,000 messages of which 200 are threads
(9,000 top-level messages, 200 parents with 5 replies each); `autopsy this` is mentioned at the top
level and the time to files.completeUploadExternal is measured, with the Web API calls per method,
next to the bound of the calls that cannot overlap (history pages one after the other, thread
reads `concurrency` at a time, one round of names, three rounds of upload). Prints, asserts nothing.
Run by bench/channel_e2e.sh. Uses tests/e2e/harness.py and tests/fakeslack/fakeslack.py.
Usage: python3 bench/channel_e2e.py [--runs 1] [--latency 0.030] [--top 9000] [--threads 200]
       [--replies 5] [--concurrency 4]
"""
import argparse
import collections
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeslack"))
import harness  # noqa: E402
from fakeslack import FakeSlack  # noqa: E402

CHANNEL = "C0BENCHCH"
HISTORY_PAGE = 200   # scripts/lib/history.lua: history.LIMIT


def build(fs, top, threads, replies):
    fs.add_user("U0ALICE", "alice")
    fs.add_user("U0BOB", "bob")
    fs.add_channel(CHANNEL, "inc-bench", members=["U0ALICE", "U0BOB"])
    every = max(1, top // threads)
    parents = []
    with fs.lock:
        for i in range(top):
            m = fs._append_message(CHANNEL, {"type": "message", "user": "U0ALICE",
                                             "text": "update %d: error rate is *%d%%*, see <https://grafana.example.com/d/%d|graph>" % (i, i % 50, i)})
            if i % every == 0 and len(parents) < threads:
                parents.append(m["ts"])
        for j in range(replies):
            for p in parents:
                fs._append_message(CHANNEL, {"type": "message", "user": "U0BOB", "text": "reply %d" % j,
                                             "thread_ts": p})
    return len(parents)


def one_run(args):
    fs = FakeSlack(latency=args.latency).start()
    try:
        n_threads = build(fs, args.top, args.threads, args.replies)
        bot = harness.BotProcess(fs, {"downloads": {"concurrency": args.concurrency},
                                      "channel": {"max_messages": 100000}})
        bot.start()
        try:
            start = time.monotonic()
            cmd_ts, _ = fs.mention(CHANNEL, "U0ALICE", "autopsy this")
            fs.wait_for(lambda: fs.uploads, timeout=args.timeout, interval=0.01, what="the upload")
            elapsed = fs.uploads[-1]["time"] - start
            with fs.lock:
                calls = collections.Counter(r["api_method"] for r in fs.requests
                                            if r.get("api_method") and r["time"] >= start)
        finally:
            bot.stop()
            bot.cleanup()
    finally:
        fs.stop()
    top_level = args.top + 1  # the command is a top-level message too
    pages = math.ceil(top_level / HISTORY_PAGE)
    rounds_as_coded = pages + math.ceil(n_threads / args.concurrency) + 1 + 3
    rounds_min = pages + 1 + 1 + 3
    return elapsed, calls, rounds_as_coded * args.latency, rounds_min * args.latency, pages, n_threads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--latency", type=float, default=0.030)
    ap.add_argument("--top", type=int, default=9000)
    ap.add_argument("--threads", type=int, default=200)
    ap.add_argument("--replies", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    results = [one_run(args) for _ in range(args.runs)]
    times = [r[0] for r in results]
    _, calls, bound, bound_min, pages, n_threads = results[-1]
    total = args.top + n_threads * args.replies
    print("channel: %d messages (%d top-level, %d threads x %d replies), latency %.0f ms a call"
          % (total, args.top, n_threads, args.replies, args.latency * 1000))
    print("end to end (mention sent -> completeUploadExternal): %.0f ms (runs: %s)"
          % (statistics.median(times) * 1000, ", ".join("%.0f ms" % (t * 1000) for t in times)))
    print("bound: as coded %.0f ms (%d history pages + %d thread rounds at %d + names + upload), "
          "minimum %.0f ms; measured / as coded = %.1fx"
          % (bound * 1000, pages, math.ceil(n_threads / args.concurrency), args.concurrency,
             bound_min * 1000, statistics.median(times) / bound))
    print("calls: " + ", ".join("%s %d" % kv for kv in sorted(calls.items())) + "; total %d" % sum(calls.values()))


if __name__ == "__main__":
    main()
