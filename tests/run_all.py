#!/usr/bin/env python3
"""Run every test suite of the project and print one closing line: "N passed, N failed".

Suites: C unit tests (cmocka, build/tests/test_*), Lua specs (busted, tests/lua), the C style
check (clang-format), and the integration tests (tests/e2e, the real binary against the fake
Slack) twice: against bin/postmortembot and against the ASan+UBSan build bin/postmortembot-asan.
The Lua lint (luacheck, .luacheckrc) runs as suite "lint"; then a short fuzz run (tests/fuzz) and
the allocation-failure torture (tests/torture).
Set PMB_SUITES=unit,lua,lint,fmt,e2e,e2e-asan,fuzz-short,torture to run a subset. Exit status 1 when
anything failed.
"""
import glob
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
SUITES = os.environ.get("PMB_SUITES", "unit,lua,lint,fmt,e2e,e2e-asan,fuzz-short,torture").split(",")
totals = {"passed": 0, "failed": 0, "skipped": 0}
failures = []


def record(suite, passed, failed, skipped=0, detail=""):
    totals["passed"] += passed
    totals["failed"] += failed
    totals["skipped"] += skipped
    status = "ok" if failed == 0 else "FAILED"
    print(f"== {suite}: {passed} passed, {failed} failed, {skipped} skipped [{status}]", flush=True)
    if failed:
        failures.append((suite, detail))


def run(cmd, env=None, timeout=1800):
    merged = dict(os.environ)
    merged.update(env or {})
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=merged,
                           timeout=timeout, text=True, errors="replace")
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        return 124, out + f"\n(timed out after {timeout} s)"


def suite_unit():
    for binary in sorted(glob.glob("build/tests/test_*")):
        name = os.path.basename(binary)
        rc, out = run([binary], env={"CMOCKA_MESSAGE_OUTPUT": "STDOUT"}, timeout=300)
        passed = sum(int(n) for n in re.findall(r"\[  PASSED  \] (\d+) test", out))
        failed = sum(int(n) for n in re.findall(r"\[  FAILED  \] (\d+) test", out))
        if rc != 0 and failed == 0:
            failed = 1  # crashed or exited badly without cmocka's summary
        if failed:
            print(out)
        record(f"unit/{name}", passed, failed, detail=out[-2000:])


def suite_lua():
    specs = sorted(glob.glob("tests/lua/*_spec.lua"))
    if not specs:
        record("lua", 0, 1, detail="no Lua specs found")
        return
    for spec in specs:
        rc, out = run(["lua5.4", "/usr/bin/busted", "--lpath=scripts/?.lua;scripts/?/init.lua",
                       "-o", "TAP", spec], timeout=600)
        skipped = len(re.findall(r"^ok \d+ - # SKIP", out, re.M))  # busted's pending()
        passed = len(re.findall(r"^ok \d+", out, re.M)) - skipped
        failed = len(re.findall(r"^not ok \d+", out, re.M))
        if rc != 0 and failed == 0:
            failed = 1
        if failed:
            print(out[-6000:])
        record(f"lua/{os.path.basename(spec)}", passed, failed, skipped, detail=out[-2000:])


def suite_fmt():
    files = sorted(glob.glob("core/*.[ch]") + glob.glob("core/*/*.[ch]") + glob.glob("tests/c/*.c"))
    rc, out = run(["clang-format", "--dry-run", "-Werror"] + files, timeout=120)
    if rc != 0:
        print(out[-4000:])
    record("fmt/clang-format", 1 if rc == 0 else 0, 0 if rc == 0 else 1, detail=out[-2000:])


def suite_lint():
    rc, out = run(["luacheck", "--no-color", "-q", "scripts", "tests/lua", "tools", "core/host/boot.lua"], timeout=300)
    if rc != 0:
        print(out[-4000:])
    record("lint/luacheck", 1 if rc == 0 else 0, 0 if rc == 0 else 1, detail=out[-2000:])


def suite_e2e(binary, label):
    if not os.path.exists(binary):
        record(label, 0, 1, detail=f"{binary} is missing")
        return
    env = {"POSTMORTEMBOT_BIN": os.path.abspath(binary),
           "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    start = time.time()
    rc, out = run([sys.executable, "tests/e2e/runner.py"], env=env, timeout=2400)
    m = re.search(r"^E2E RESULT passed=(\d+) failed=(\d+) skipped=(\d+)$", out, re.M)
    if not m:
        print(out[-8000:])
        record(label, 0, 1, detail="the e2e runner did not report")
        return
    passed, failed, skipped = (int(x) for x in m.groups())
    if failed or rc != 0:
        print(out[-20000:])
        if failed == 0:
            failed = 1
    print(f"   ({label} took {time.time() - start:.0f} s)")
    record(label, passed, failed, skipped, detail=out[-2000:])


def suite_fuzz_short():
    """The libFuzzer harnesses (tests/fuzz/) for a few seconds each from their seeds, and the
    converter fuzz driver for a few hundred inputs; `make fuzz` runs them for minutes."""
    import tempfile
    rc, out = run(["make", "-s", "fuzz-build"], timeout=600)
    if rc != 0:
        print(out[-4000:])
        record("fuzz-short/build", 0, 1, detail=out[-2000:])
        return
    for binary in sorted(glob.glob("build/fuzz/fuzz_*")):
        name = os.path.basename(binary)
        with tempfile.TemporaryDirectory(prefix="pmb-fuzz-") as corpus:
            rc, out = run([binary, "-max_total_time=10", "-print_final_stats=1", "-workers=1",
                           "-artifact_prefix=" + corpus + "/", corpus, "tests/fuzz/seeds/" + name], timeout=120)
        if rc != 0:
            print(out[-6000:])
        record(f"fuzz-short/{name}", 1 if rc == 0 else 0, 0 if rc == 0 else 1, detail=out[-2000:])
    rc, out = run(["lua5.4", "tests/fuzz/converters.lua", "--runs", "600", "--seed", "20261205",
                   "--kinds", "mrkdwn,inline,richtext"], timeout=300)
    if rc != 0:
        print(out[-4000:])
    record("fuzz-short/converters", 1 if rc == 0 else 0, 0 if rc == 0 else 1, detail=out[-2000:])


def suite_torture():
    rc, out = run([sys.executable, "tests/torture/run_torture.py"], timeout=2400)
    m = re.search(r"^TORTURE .*$", out, re.M)
    if rc != 0 or not m:
        print(out[-6000:])
    record("torture", 1 if rc == 0 else 0, 0 if rc == 0 else 1, detail=out[-2000:])
    # one e2e autopsy of the whole bot, the Nth allocation failing for a sample of N of the C range
    # and of the Lua heap's (make torture covers every N of the C range: PMB_TORTURE_E2E_C=all)
    rc, out = run([sys.executable, "tests/torture/e2e_autopsy.py"],
                  env={"PMB_TORTURE_E2E_RUNS": os.environ.get("PMB_TORTURE_E2E_RUNS", "12")},
                  timeout=2400)
    m = re.search(r"^TORTURE-E2E .*$", out, re.M)
    if m:
        print("   " + m.group(0))
    if rc != 0 or not m:
        print(out[-6000:])
    record("torture/e2e-autopsy", 1 if rc == 0 else 0, 0 if rc == 0 else 1, detail=out[-2000:])


if "unit" in SUITES:
    suite_unit()
if "lua" in SUITES:
    suite_lua()
if "lint" in SUITES:
    suite_lint()
if "fmt" in SUITES:
    suite_fmt()
if "e2e" in SUITES:
    suite_e2e("bin/postmortembot", "e2e")
if "e2e-asan" in SUITES:
    suite_e2e("bin/postmortembot-asan", "e2e-asan")
if "fuzz-short" in SUITES:
    suite_fuzz_short()
if "torture" in SUITES:
    suite_torture()

if failures:
    print("\nfailed suites: " + ", ".join(s for s, _ in failures))
print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
sys.exit(1 if totals["failed"] else 0)
