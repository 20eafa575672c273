#!/bin/sh
# Reload time (SIGHUP -> new generation current: the bot's own ms= and the wall time seen from
# outside) and events handled per second by a trivial command. Run by `make bench` from the
# repository root; needs bin/postmortembot.
cd "$(dirname "$0")/.." && exec python3 bench/reload_bench.py "$@"
