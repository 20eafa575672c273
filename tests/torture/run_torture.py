#!/usr/bin/env python3
"""Allocation-failure torture (issue 14): for each C unit test program, build it against the
ASan+UBSan objects with tests/torture/failmalloc.c wrapped around malloc/calloc/realloc/strdup,
count the allocations of a clean run, then run it once for every N in 1..count with the Nth
allocation failing. Required of every run: no crash (no signal, no sanitizer error report), no
leak from core/ code (LeakSanitizer stacks with a core/ frame), whatever the test's own
assertions say about the failure (a failed cmocka check is a clean error). Prints one line per
program and "TORTURE programs=… runs=… crashes=… leaks=…"; exit 1 on any crash or leak.
PMB_TORTURE_PROGRAMS picks programs (NAME, NAME:CAP, NAME/each: every test alone), PMB_TORTURE_MAX caps N per program
(default 4000, spread evenly above it). Run by `make torture` and tests/run_all.py (suite torture)."""
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.chdir(ROOT)
# A program named NAME/each runs one test per process (PMB_TEST_ONLY, cmocka's test filter): its
# tests share one loop, and a test that an allocation failure ends early leaves its timers on it.
DEFAULT = "test_http_pure,test_dedupe,test_ratelimit,test_metrics,test_log,test_mailbox,test_http_loop/each"
PROGRAMS = os.environ.get("PMB_TORTURE_PROGRAMS", DEFAULT).split(",")
MAX_N = int(os.environ.get("PMB_TORTURE_MAX", "4000"))
CRASH = re.compile(r"ERROR: AddressSanitizer|runtime error:|AddressSanitizer:DEADLYSIGNAL")
FRAME = re.compile(r"^\s+#\d+ 0x[0-9a-f]+ in \S+ (\S+?):\d+", re.M)


# A test that hands the API the NULL its constructor returned under the failure (the product's
# callers check it): counted apart, not as a crash of the core.
NULL_HANDLE = re.compile(r"member access within null pointer of type '(const )?struct \w+'\n"
                         r"(\s+#\d+ .*core/.*\n){1,2}\s+#\d+ .* in test_")


def in_core(report):
    """Does the first frame in our own sources lie in core/? (A test program dereferencing the NULL
    a core function correctly returned is the test's business, not a crash of the core.)"""
    for path in FRAME.findall(report):
        if path.startswith(ROOT + "/") or path.startswith("core/") or path.startswith("tests/"):
            return "/core/" in path or path.startswith("core/")
    m = re.search(r"runtime error:", report)
    return bool(m and "core/" in report[max(0, m.start() - 200):m.start()])


def build(program):
    exe = "build/torture/%s" % program
    subprocess.run(["make", "-s", exe], check=True, stdout=subprocess.DEVNULL)
    return exe


def run(exe, n, count_file=None, only=""):
    env = dict(os.environ, PMB_FAIL_AT=str(n), CMOCKA_MESSAGE_OUTPUT="STDOUT", PMB_TEST_ONLY=only,
               ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:exitcode=86:allow_user_segv_handler=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    if count_file:
        env["PMB_FAIL_COUNT_FILE"] = count_file
    try:
        p = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=120,
                           text=True, errors="replace")
    except subprocess.TimeoutExpired:
        return "hang", ""
    out = p.stdout
    if (p.returncode < 0 or CRASH.search(out)) and in_core(out):
        if NULL_HANDLE.search(out):
            return "test_null_handle", out
        return "crash", out
    leaks = [blk for blk in out.split("\n\n") if ("Direct leak" in blk or "Indirect leak" in blk) and "/core/" in blk]
    if leaks:
        return "leak", "\n\n".join(leaks)
    return "ok", out


def torture_one(exe, name, only, cap, totals):
    """Every N (or cap of them, spread) for one program, or one test of it when `only` is set."""
    with tempfile.NamedTemporaryFile(prefix="pmb-torture-") as f:
        verdict, out = run(exe, 0, f.name, only)
        count = int((open(f.name).read().split() or ["0"])[0])  # "C LUA": the unit tests use the C count
    if verdict != "ok":
        print("%s: the clean run fails (%s)\n%s" % (name, verdict, out[-3000:]))
        totals["crash"] += 1
        return
    ns = list(range(1, count + 1))
    if len(ns) > cap:
        step = len(ns) / cap
        ns = sorted({ns[int(i * step)] for i in range(cap)} | {count})
    bad = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for n, (verdict, out) in zip(ns, pool.map(lambda n: run(exe, n, None, only), ns)):
            totals["runs"] += 1
            if verdict != "ok":
                totals[verdict] += 1
                bad.append((n, verdict, out))
    print("%s: %d allocations, N covered %s, %d bad" % (name, count,
          "1..%d" % count if len(ns) == count else "%d of 1..%d" % (len(ns), count), len(bad)), flush=True)
    for n, verdict, out in [b for b in bad if b[1] != "test_null_handle"][:3]:
        print("  N=%d %s\n%s" % (n, verdict, "\n".join(out.splitlines()[-40:])))


def main():
    totals = {"runs": 0, "crash": 0, "leak": 0, "hang": 0, "test_null_handle": 0}
    for spec in PROGRAMS:
        spec, _, cap = spec.partition(":")
        program, _, mode = spec.partition("/")
        cap = int(cap) if cap else MAX_N
        exe = build(program)
        units = [""]
        if mode == "each":
            verdict, out = run(exe, 0)
            units = re.findall(r"^\[ RUN      \] (\w+)", out, re.M)
            if verdict != "ok" or not units:
                print("%s: the clean run fails (%s)\n%s" % (program, verdict, out[-3000:]))
                totals["crash"] += 1
                continue
        for only in units:
            torture_one(exe, program + ("/" + only if only else ""), only, cap, totals)
    print("TORTURE programs=%d runs=%d crashes=%d leaks=%d hangs=%d test_null_handles=%d" % (
        len(PROGRAMS), totals["runs"], totals["crash"], totals["leak"], totals["hang"], totals["test_null_handle"]))
    return 1 if totals["crash"] or totals["leak"] or totals["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
