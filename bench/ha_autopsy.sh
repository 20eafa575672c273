#!/bin/sh
# `autopsy this` in database mode next to file mode (issue 16): median of 5 runs each, the
# database a throwaway PostgreSQL cluster. Run by `make bench` from the repository root.
cd "$(dirname "$0")/.." && exec python3 bench/ha_autopsy.py "$@"
