#!/bin/sh
# `autopsy this` end to end against the fake Slack (30 ms per API call and download, 300 messages,
# 20 one-megabyte images): 3 runs and their median, next to the critical-path bound.
# Run by `make bench` (bench/run_all.sh) from the repository root; needs bin/postmortembot.
cd "$(dirname "$0")/.." && exec python3 bench/autopsy_e2e.py "$@"
