#!/usr/bin/env python3
"""Run the integration tests (tests/e2e/test_*.py) with unittest and print a machine-readable
summary line for tests/run_all.py: "E2E RESULT passed=N failed=N skipped=N".
PMB_E2E_PATTERN narrows the files (default test_*.py)."""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakeslack"))

suite = unittest.defaultTestLoader.discover(HERE, pattern=os.environ.get("PMB_E2E_PATTERN", "test_*.py"),
                                            top_level_dir=HERE)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
skipped = len(result.skipped)
passed = result.testsRun - failed - skipped
print(f"E2E RESULT passed={passed} failed={failed} skipped={skipped}", flush=True)
sys.exit(0 if failed == 0 else 1)
