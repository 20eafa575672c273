#!/usr/bin/env python3
"""The offline `render` of a big saved thread (issue 18's "offline render of 20,000 messages"):
writes the thread with bench/gen_thread.py once, then runs `bin/postmortembot render` on it N times
and prints the wall time (median and best), the CPU time and the peak RSS (the child's ru_maxrss).
`--count-hook` also runs it with PMB_BUDGET_COUNT_HOOK=1, the budget's old installed count hook
(core/host/budget.c), to show what arming the hook by a timer saves.
Usage: python3 bench/render_offline.py [--messages 20000] [--runs 5] [--count-hook] [--unique-texts] [--bin PATH]
Asserts nothing; run from the repository root after `make`.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_render(binary, work, env):
    """One render into a fresh folder: (wall seconds, cpu seconds, peak RSS in MB) of that child."""
    out = os.path.join(work, "out")
    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    child = subprocess.Popen([binary, "render", os.path.join(work, "thread.json"), "--users",
                              os.path.join(work, "users.json"), "-o", out],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit("render failed with exit status %d" % child.returncode)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def series(label, binary, work, env, runs):
    walls, cpus, peak = [], [], 0.0
    for _ in range(runs):
        wall, cpu, rss = one_render(binary, work, env)
        walls.append(wall)
        cpus.append(cpu)
        peak = max(peak, rss)
    print("%-32s wall median %.3f s, best %.3f s | cpu median %.3f s | peak RSS %.1f MB (runs: %s)"
          % (label, statistics.median(walls), min(walls), statistics.median(cpus), peak,
             ", ".join("%.3f" % w for w in walls)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--unique-texts", action="store_true",
                    help="no message text repeats (gen_thread.py --unique-texts): no text converted once for many")
    ap.add_argument("--count-hook", action="store_true",
                    help="also run with the budget's old count hook (PMB_BUDGET_COUNT_HOOK=1)")
    ap.add_argument("--bin", default=os.path.join(REPO, "bin", "postmortembot"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="pmb-render-offline-")
    try:
        subprocess.run([sys.executable, os.path.join(REPO, "bench", "gen_thread.py"), work,
                        "--messages", str(args.messages)] + (["--unique-texts"] if args.unique_texts else []),
                       check=True, stdout=subprocess.DEVNULL)
        env = dict(os.environ)
        env.setdefault("POSTMORTEMBOT_CONFIG", os.path.join(REPO, "config", "postmortembot.lua"))
        env.pop("PMB_BUDGET_COUNT_HOOK", None)
        print("offline render of %d generated messages (bench/gen_thread.py%s), %d runs each; machine: %d CPUs"
              % (args.messages, ", every text unique" if args.unique_texts else "", args.runs, os.cpu_count() or 0))
        series("render", args.bin, work, env, args.runs)
        if args.count_hook:
            hooked = dict(env, PMB_BUDGET_COUNT_HOOK="1")
            series("render, count hook installed", args.bin, work, hooked, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
