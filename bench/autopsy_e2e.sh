#!/bin/sh
# `autopsy this` end to end against the fake Slack: the small case (30 ms per API call and download,
# 300 messages, 20 one-megabyte images, 3 runs and their median, next to the critical-path bound),
# then the big one (a 20,000-message thread, no images, 10 ms per call, 1 run).
# Run by `make bench` (bench/run_all.sh) from the repository root; needs bin/postmortembot.
cd "$(dirname "$0")/.." || exit 1
python3 bench/autopsy_e2e.py "$@" || exit 1
echo
exec python3 bench/autopsy_e2e.py --runs 1 --messages 20000 --images 0 --latency 0.010 --ack-probe 0 --timeout 300
