#!/bin/sh
# `publish` of a 20-file report to a git daemon on loopback, 5 versions, median time to the answer.
# Run by `make bench` (bench/run_all.sh) from the repository root; needs bin/postmortembot and git.
cd "$(dirname "$0")/.." && exec python3 bench/publish_bench.py "$@"
