#!/bin/sh
# The offline `render` of a generated 20,000-message thread (bench/render_offline.py): wall time,
# CPU time and peak RSS over 5 runs, then the same with the budget's old count hook installed, then
# a thread whose texts never repeat (--unique-texts: nothing for the timeline's text memo).
# Run by `make bench` (bench/run_all.sh) from the repository root; needs bin/postmortembot.
cd "$(dirname "$0")/.." || exit 1
python3 bench/render_offline.py --count-hook "$@" || exit 1
exec python3 bench/render_offline.py --unique-texts "$@"
