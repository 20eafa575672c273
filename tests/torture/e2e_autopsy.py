#!/usr/bin/env python3
"""Allocation-failure torture of one e2e autopsy (issue 14): the whole bot, built with
tests/torture/failmalloc.c (build/torture/postmortembot, ASan+UBSan), answers `autopsy this` on the
bundled incident thread against the fake Slack, once clean to count the allocations of our own code,
then once for each N with the Nth allocation failing. The C code's allocations (core/, counted by
PMB_FAIL_AT) and the Lua heap's (budget.c's allocator, PMB_FAIL_LUA_AT) are two ranges: `make torture`
covers every N of the C range (PMB_TORTURE_E2E_C=all) and a spread sample of the Lua range, whose
failures all take Lua's own out-of-memory path. Required of every run: no crash
(no signal, no sanitizer report), no leak reported in core/, and a clean outcome: the bot answers the
autopsy (a report or a failure reply) and then still answers `help`, or it stops by itself with an
error line and exit status 1 (an allocation that failed while starting). Prints one line per failing
N and "TORTURE-E2E runs=… crashes=… leaks=… unclean=…"; exit 1 on any. PMB_TORTURE_E2E_RUNS sets the
sample size of each range (default 40: the first 20 N and 20 spread over the rest);
PMB_TORTURE_E2E_C=all covers the whole C range instead. Two runs at a time."""
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeslack"))
from harness import INCIDENT_FIXTURE, BotProcess  # noqa: E402
from fakeslack import FakeSlack  # noqa: E402

BINARY = os.path.join(ROOT, "build", "torture", "postmortembot")
CRASH = re.compile(r"ERROR: AddressSanitizer|runtime error:|AddressSanitizer:DEADLYSIGNAL")
LEAK = re.compile(r"ERROR: LeakSanitizer")
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


# An acked envelope the bot could not hand to its scripts (no memory for the copy), or an answer
# whose own request found no memory: lost, but said (an error line; pmb_envelopes_dropped_total);
# the bot must still serve what comes next.
DROPPED = re.compile(r'msg="(envelope dropped|reply failed)')


def deliver_like_slack(fs, envelope_id, answered, retries=3, wait=2.0):
    """Slack redelivers an envelope that was not acked (retry_attempt 1..3, same event_id): a frame
    the bot had no memory to read is not lost. Done here on a short clock."""
    sent = next(e for e in fs.envelopes if e["envelope_id"] == envelope_id)
    for attempt in range(1, retries + 1):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if answered() or any(a.envelope_id == envelope_id for a in fs.acks):
                return
            time.sleep(0.05)
        envelope_id = fs.send_event(sent["envelope"]["payload"]["event"], retry_attempt=attempt,
                                    event_id=sent["event_id"])


def leak_in_core(log):
    """A LeakSanitizer report with one of our core/ frames (libraries' own caches are theirs)."""
    if not LEAK.search(log):
        return False
    return re.search(r"#\d+ 0x[0-9a-f]+ in \S+ \S*core/", log) is not None


def one_run(fail_at, count_file=None, lua_fail_at=0):
    """Returns (outcome, log): outcome is "ok", "exited", "crash", "leak" or "unclean: why"."""
    fs = FakeSlack().start()
    try:
        fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
        channel, parent = fs.load_fixture(INCIDENT_FIXTURE)
        env = dict(SAN_ENV, PMB_FAIL_AT=str(fail_at), PMB_FAIL_LUA_AT=str(lua_fail_at))
        if count_file:
            env["PMB_FAIL_COUNT_FILE"] = count_file
        bot = BotProcess(fs, {"report": {"upload": True}}, env=env, binary=BINARY)
        bot.start(wait_connected=False)
        # a clean run connects in well under a second; 20 s leaves room for auth.test's retries
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and bot.running() and not fs.open_connections():
            time.sleep(0.05)
        if bot.running() and not fs.open_connections():
            bot.stop()
            log = bot.log_text()
            return ("crash" if CRASH.search(log) else "unclean: running but never connected"), log
        if not bot.running():
            rc = bot.wait(timeout=5)
            log = bot.log_text()
            if CRASH.search(log) or rc < 0 or rc == 86:
                return "crash", log
            if rc == 1 and log.strip():
                return "exited", log  # a failed start, said in one line, exit status 1
            return "unclean: exit %s while starting" % rc, log
        _, envelope_id = fs.mention(channel, "U0ALICE", "autopsy this", thread_ts=parent)
        answered = lambda: (fs.calls("files.completeUploadExternal")  # noqa: E731
                            or any("failed" in p["text"] for p in fs.posts(channel=channel, thread_ts=parent)))
        deliver_like_slack(fs, envelope_id, answered)
        try:
            fs.wait_for(answered, timeout=30, what="an answer to the autopsy")
        except AssertionError:
            pass  # judged below: a bot that neither answered nor died cleanly is unclean
        if bot.running():
            # still serving: `help` answered; asked twice, since the one failing allocation may fall in
            # the first `help` itself (its reply is then lost, and logged)
            outcome = "unclean: no answer to help afterwards"
            for _ in range(2):
                n = len(fs.posts(channel=channel, thread_ts=parent))
                fs.mention(channel, "U0ALICE", "help", thread_ts=parent)
                try:
                    fs.wait_for(lambda: any(p["text"].startswith("Commands")
                                            for p in fs.posts(channel=channel, thread_ts=parent)[n:]),
                                timeout=15, what="help after the autopsy")
                    outcome = "ok"
                    break
                except AssertionError:
                    pass
            if not answered() and outcome == "ok" and not DROPPED.search(bot.log_text()):
                outcome = "unclean: the autopsy got no answer"
            rc = bot.stop()
        else:
            rc = bot.wait(timeout=5)
            outcome = "exited" if rc == 1 else "unclean: exit %s during the autopsy" % rc
        log = bot.log_text()
        if CRASH.search(log) or (rc is not None and (rc < 0 or rc == 86)):
            return "crash", log
        if leak_in_core(log):
            return "leak", log
        return outcome, log
    finally:
        fs.stop()


def sample(total, runs):
    """The first runs//2 N, and the rest spread evenly up to total."""
    first = list(range(1, min(total, runs // 2) + 1))
    rest = runs - len(first)
    spread = sorted({len(first) + 1 + (total - len(first) - 1) * i // max(rest - 1, 1)
                     for i in range(rest)} - set(first)) if total > len(first) else []
    return first + [n for n in spread if 0 < n <= total]


def main():
    # always through make: a binary left from older sources would test them, not these
    subprocess.run(["make", "-s", "build/torture/postmortembot"], check=True, cwd=ROOT)
    with tempfile.NamedTemporaryFile(prefix="pmb-torture-count-") as f:
        outcome, log = one_run(0, f.name)
        if outcome != "ok":
            print(log[-3000:])
            print("TORTURE-E2E the clean run failed: %s" % outcome)
            return 1
        c_total, lua_total = (int(x) for x in open(f.name).read().split())
    runs = int(os.environ.get("PMB_TORTURE_E2E_RUNS", "40"))
    c_ns = list(range(1, c_total + 1)) if os.environ.get("PMB_TORTURE_E2E_C") == "all" else sample(c_total, runs)
    plan = [(n, 0) for n in c_ns] + [(0, n) for n in sample(lua_total, runs)]
    bad = {"crash": 0, "leak": 0, "unclean": 0}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for (c_n, lua_n), (outcome, log) in zip(plan, pool.map(lambda p: one_run(p[0], None, p[1]), plan)):
            kind = outcome.split(":")[0]
            if kind in bad:
                bad[kind] += 1
                where = "C N=%d" % c_n if c_n else "Lua N=%d" % lua_n
                print("%s: %s\n%s" % (where, outcome, "\n".join(log.splitlines()[-25:])), flush=True)
    print("TORTURE-E2E C allocations=%d covered=%s Lua allocations=%d sampled=%d runs=%d crashes=%d leaks=%d "
          "unclean=%d" % (c_total, "all" if len(c_ns) == c_total else len(c_ns), lua_total, len(plan) - len(c_ns),
                          len(plan), bad["crash"], bad["leak"], bad["unclean"]))
    return 1 if any(bad.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
