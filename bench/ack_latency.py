#!/usr/bin/env python3
"""Ack latency of Socket Mode envelopes and the bot's memory, on loopback.

Starts the fake Slack (tests/fakeslack) and the real binary, waits for "socket mode connected",
reads the bot's RSS, sends a burst of N events_api envelopes (default 1000) in one socket write,
and prints p50/p99/max of the time from that write to the fake reading each ack (so envelope k
waits for the k-1 before it: a burst, not a trickle), the bot's own view (frame read -> ack
written, from /metrics), then the RSS again. The events are reaction_added: acked and routed, but no command runs.
Usage: python3 bench/ack_latency.py [--count N] [--bin bin/postmortembot]
"""
import argparse
import os
import shutil
import urllib.request
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeslack"))
import fakeslack  # noqa: E402
from harness import free_port  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def read_ack_histogram(listen):
    """The bot's own pmb_ack_latency_seconds (frame read -> ack written), from /metrics:
    ([(upper bound, cumulative count)], count, sum), or None when /metrics does not answer."""
    try:
        text = urllib.request.urlopen("http://%s/metrics" % listen, timeout=5).read().decode()
    except OSError:
        return None
    buckets, count, total = [], 0, 0.0
    for line in text.splitlines():
        if line.startswith("pmb_ack_latency_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
        elif line.startswith("pmb_ack_latency_seconds_count"):
            count = float(line.split()[-1])
        elif line.startswith("pmb_ack_latency_seconds_sum"):
            total = float(line.split()[-1])
    return buckets, count, total


def describe_ack_histogram(now, before=None):
    """p50/p99/max bucket bounds of the acks between two read_ack_histogram() readings."""
    if now is None:
        return "bot-side histogram unavailable"
    buckets, count, total = now
    if before and before[0]:
        buckets = [(le, n - b) for (le, n), (_, b) in zip(buckets, before[0])]
        count, total = count - before[1], total - before[2]
    if not count:
        return "bot-side histogram empty"

    def upper(q):
        return next((le for le, n in buckets if n >= q * count), float("inf"))

    return ("bot side (read -> ack written) over %d acks: mean %.3f ms, p50 <= %g ms, p99 <= %g ms, "
            "max <= %g ms" % (count, total / count * 1e3, upper(0.5) * 1e3, upper(0.99) * 1e3,
                              upper(1.0) * 1e3))


def bot_side_histogram(listen):
    return describe_ack_histogram(read_ack_histogram(listen))


def launch_bot(binary, config, env):
    """Start the bot and wait for "socket mode connected". Returns (process, its log lines so far,
    connected: True/False); the log keeps filling from a reader thread."""
    log_lines = []
    connected = threading.Event()
    proc = subprocess.Popen([binary, "-c", config], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace")

    def read_log():
        for line in proc.stderr:
            log_lines.append(line)
            if 'msg="socket mode connected"' in line:
                connected.set()

    threading.Thread(target=read_log, daemon=True).start()
    ok = connected.wait(15)
    if not ok:
        print("the bot did not connect; last log lines:\n" + "".join(log_lines[-20:]), file=sys.stderr)
    return proc, log_lines, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--bin", default=os.environ.get("POSTMORTEMBOT_BIN", os.path.join(ROOT, "bin", "postmortembot")))
    ap.add_argument("--config", default=os.path.join(ROOT, "config", "postmortembot.lua"))
    args = ap.parse_args()

    fs = fakeslack.FakeSlack().start()
    data_dir = tempfile.mkdtemp(prefix="pmb-bench-")
    env = dict(os.environ, SLACK_BOT_TOKEN=fs.bot_token, SLACK_APP_TOKEN=fs.app_token,
               SLACK_API_URL=fs.api_url, POSTMORTEMBOT_DATA_DIR=data_dir)
    listen = "127.0.0.1:%d" % free_port()
    env["POSTMORTEMBOT_LISTEN"] = listen
    proc, _, ok = launch_bot(args.bin, args.config, env)
    try:
        if not ok:
            return 1
        time.sleep(0.2)
        rss_connected = rss_kib(proc.pid)
        conn = fs.open_connections()[-1]
        events = [{"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
                   "item": {"type": "message", "channel": "C0BENCH", "ts": "1700000000.%06d" % i},
                   "event_ts": "1700000001.%06d" % i} for i in range(args.count)]
        start = time.monotonic()
        fs.send_burst(events, conn=conn)  # every envelope leaves in one write: a real burst
        sent = time.monotonic() - start
        fs.wait_for(lambda: len(fs.acks) >= args.count, timeout=60, what="%d acks" % args.count)
        total = time.monotonic() - start
        lat = [(a.time_acked - a.time_sent) * 1e3 for a in fs.acks if a.time_sent is not None]
        time.sleep(0.5)
        rss_after = rss_kib(proc.pid)
        print("ack latency over a burst of %d envelopes (fake writes -> fake reads ack, loopback): "
              "p50 %.3f ms  p99 %.3f ms  max %.3f ms" % (len(lat), percentile(lat, 50), percentile(lat, 99), max(lat)))
        print("burst sent in %.3f s, all acked after %.3f s" % (sent, total))
        print(bot_side_histogram(listen))
        print("bot RSS after connect: %d KiB; after the burst: %d KiB" % (rss_connected, rss_after))
        return 0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        fs.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
