#!/bin/sh
# Socket Mode ack latency (p50/p99 over a 1,000-envelope burst on loopback) and the bot's RSS.
# Run by `make bench` from the repository root; needs bin/postmortembot.
cd "$(dirname "$0")/.." && exec python3 bench/ack_latency.py "$@"
