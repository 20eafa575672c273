#!/usr/bin/env python3
"""Paced ack latency while the scripts are busy: does anything a script does delay an ack?

Starts the fake Slack and the real binary (with two test commands added to a temp copy of scripts/),
then, for each scenario, sends 250 events_api envelopes per second for 4 s (one envelope every 4 ms,
each timed on its own from the fake's write to the fake reading its ack) while:
  idle       nothing else runs (the baseline: mostly the Python fake's own overhead)
  autopsy    `autopsy this` of a 20,000-message thread runs (collection, conversion, rendering)
  spin       a command spins on its CPU budget (time-sliced Lua)
  backtrack  a command runs string.find(string.rep("a",1e5), ".-.-.-.-b") (C, until the budget)
and prints p50/p99/max per scenario, with the bot's own figure under it (frame read -> ack
written, from /metrics). The envelopes come from bench/paced_sender.py, a process of its own that
holds the bot's WebSocket (the fake's apps.connections.open points there), so the timestamps do not
wait for the fake's Web API threads (one Python process shares one GIL); --same-process sends from
the fake itself, as before, to show that share. Usage: python3 bench/paced_ack.py [--rate 250]
[--seconds 4] [--messages 20000] [--same-process] [--bin PATH]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeslack"))
import fakeslack  # noqa: E402
from harness import free_port, to_lua  # noqa: E402
from paced_sender import pace  # noqa: E402
from ack_latency import describe_ack_histogram, launch_bot, percentile, read_ack_histogram  # noqa: E402

SPIN = """return { name = "spin", help = "spin <s> — computes for s seconds",
  run = function(ctx, args)
    local stop, n = os.clock() + tonumber(args), 0
    while os.clock() < stop do n = n + 1 end
    ctx.reply("spun " .. n)
  end }
"""
BACKTRACK = """return { name = "backtrack", help = "backtrack — a pattern that backtracks",
  run = function(ctx) ctx.reply(tostring(string.find(string.rep("a", 100000), ".-.-.-.-b"))) end }
"""
CHANNEL = "C0PACED"


def paced(fs, rate, seconds):
    """Send rate*seconds envelopes from the fake itself, one every 1/rate s; returns their ids."""
    ids = []
    for i in pace(rate, seconds):
        ids.append(fs.send_event({"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
                                  "item": {"type": "message", "channel": CHANNEL, "ts": "1.%06d" % i},
                                  "event_ts": "%.6f" % time.time()}))
    return ids


def latencies(fs, ids, timeout=30):
    want = set(ids)
    fs.wait_for(lambda: len([a for a in fs.acks if a.envelope_id in want]) >= len(want),
                timeout=timeout, what="%d acks" % len(want))
    return [(a.time_acked - a.time_sent) * 1e3 for a in fs.acks if a.envelope_id in want]


class SenderProcess:
    """bench/paced_sender.py: the bot's Socket Mode peer in a process of its own."""

    def __init__(self, fs):
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "paced_sender.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(self.proc.stdout.readline().split()[1])
        fs.ws_url_override = "ws://127.0.0.1:%d/link/" % port

    def wait_connected(self):
        line = self.proc.stdout.readline()
        if line.strip() != "CONNECTED":
            raise RuntimeError("paced sender: %r" % line)

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=250)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--same-process", action="store_true",
                    help="send from the fake's own process (shares its GIL with the Web API)")
    ap.add_argument("--bin", default=os.environ.get("POSTMORTEMBOT_BIN", os.path.join(ROOT, "bin", "postmortembot")))
    args = ap.parse_args()

    fs = fakeslack.FakeSlack().start()
    sender = None if args.same_process else SenderProcess(fs)
    tmp = tempfile.mkdtemp(prefix="pmb-paced-")
    scripts = os.path.join(tmp, "scripts")
    shutil.copytree(os.path.join(ROOT, "scripts"), scripts)
    for name, src in (("spin", SPIN), ("backtrack", BACKTRACK)):
        with open(os.path.join(scripts, "commands", name + ".lua"), "w") as f:
            f.write(src)
    config = os.path.join(tmp, "postmortembot.lua")
    with open(config, "w") as f:
        f.write("return " + to_lua({"scripts_dir": scripts, "templates_dir": os.path.join(ROOT, "templates"),
                                    "data_dir": os.path.join(tmp, "data"), "timezone": "UTC",
                                    "budget": {"cpu_seconds": 60}}) + "\n")
    listen = "127.0.0.1:%d" % free_port()
    env = dict(os.environ, SLACK_BOT_TOKEN=fs.bot_token, SLACK_APP_TOKEN=fs.app_token,
               SLACK_API_URL=fs.api_url, POSTMORTEMBOT_LISTEN=listen)
    proc, _, ok = launch_bot(args.bin, config, env)
    try:
        if not ok:
            return 1
        if sender:
            sender.wait_connected()
        fs.add_channel(CHANNEL, "paced")
        root = fs.add_thread(CHANNEL, args.messages, users=("U0ALICE", "U0BOB", "U0CAROL"),
                             text="step {i}: checked *the* `service` <https://example.com/{i}|link>")
        print("paced acks: %g envelopes/s for %g s per scenario; write -> the ack read, by %s "
              "(loopback)" % (args.rate, args.seconds, "the fake's own process" if args.same_process
                              else "a sender process of its own (bench/paced_sender.py)"))
        scenarios = [
            ("idle", None),
            ("autopsy %d messages" % args.messages, "autopsy this"),
            ("spin (CPU-bound Lua)", "spin %g" % (args.seconds + 2)),
            ("backtracking pattern", "backtrack"),
        ]
        for label, command in scenarios:
            started = time.monotonic()
            before = read_ack_histogram(listen)
            if command and sender:
                sender.ask(cmd="send", envelope=fs.mention_envelope(CHANNEL, "U0ALICE", command, thread_ts=root))
            elif command:
                fs.mention(CHANNEL, "U0ALICE", command, thread_ts=root)
            if command:
                time.sleep(0.3)
            if sender:
                result = sender.ask(cmd="paced", rate=args.rate, seconds=args.seconds, channel=CHANNEL)
                lat = result["latencies_ms"]
                if result["missing"]:
                    print("  %d envelopes never acked" % result["missing"])
            else:
                lat = latencies(fs, paced(fs, args.rate, args.seconds))
            note = ""
            if command == "autopsy this":
                fs.wait_for(lambda: fs.calls("files.completeUploadExternal"), timeout=120, what="the report")
                note = "  (report uploaded %.1f s after the mention)" % (time.monotonic() - started)
            print("  %-26s p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms%s"
                  % (label, percentile(lat, 50), percentile(lat, 99), max(lat), note))
            print("  %-26s %s" % ("", describe_ack_histogram(read_ack_histogram(listen), before)))
            time.sleep(1.0)
        return 0
    finally:
        if sender:
            sender.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        fs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
