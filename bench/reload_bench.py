#!/usr/bin/env python3
"""Lua host figures on loopback: reload time and command throughput.

Starts the fake Slack (tests/fakeslack) and the real binary on a temp copy of scripts/ with one
extra command, `noop` (does nothing). Then:
  1. sends SIGHUP N times (default 10), one at a time, and for each reads the `ms=` of the bot's
     `msg="reload ok"` line and the wall time from kill() to that line appearing in the log;
  2. sends M `noop` mentions (default 500) as fast as one thread can and measures the time until
     the bot has logged `msg="command done"` for all of them: events handled per second.
Usage: python3 bench/reload_bench.py [--reloads N] [--events M] [--bin bin/postmortembot]
"""
import argparse
import os
import re
import signal
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeslack"))
from harness import BotProcess, FakeSlack  # noqa: E402

NOOP = 'return { name = "noop", help = "noop — does nothing (benchmark)", run = function() end }\n'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin", "postmortembot"))
    a = ap.parse_args()

    fs = FakeSlack().start()
    bot = BotProcess(fs, binary=a.bin)
    try:
        scripts, _ = bot.scripts_copy()
        with open(os.path.join(scripts, "commands", "noop.lua"), "w") as f:
            f.write(NOOP)
        fs.add_channel("C0BENCH", "bench")
        bot.start()

        inside, outside = [], []
        for _ in range(a.reloads):
            mark = bot.mark()
            t0 = time.monotonic()
            os.kill(bot.pid, signal.SIGHUP)
            m = bot.wait_log(r'msg="reload ok" generation=\d+ ms=([\d.]+)', timeout=30, after=mark)
            outside.append((time.monotonic() - t0) * 1000)
            inside.append(float(m.match.group(1)))
        print("reload: %d reloads; bot-reported ms= median %.1f max %.1f; SIGHUP to log line "
              "(wall, from outside) median %.1f ms max %.1f ms"
              % (a.reloads, statistics.median(inside), max(inside), statistics.median(outside), max(outside)))

        mark = bot.mark()
        t0 = time.monotonic()
        for _ in range(a.events):
            fs.mention("C0BENCH", "U0ALICE", "noop")
        sent = time.monotonic() - t0
        done = re.compile(r'msg="command done".*command=noop')
        deadline = time.monotonic() + 120
        while True:
            lines = bot.log_text().splitlines()[mark:]
            n = sum(1 for line in lines if done.search(line))
            if n >= a.events or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        print("commands: %d `noop` mentions handled in %.2f s (sent in %.2f s): %.0f events/s"
              % (n, elapsed, sent, n / elapsed))
    finally:
        bot.cleanup()
        fs.stop()


if __name__ == "__main__":
    main()
