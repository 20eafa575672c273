#!/bin/sh
# The Lua-only benchmarks (host stubbed): bench/render_bench.lua, bench/timeline_offline.lua and
# bench/picture_bench.lua and bench/convert_linear.lua.
# Run by `make bench` (bench/run_all.sh) from the repository root; needs lua5.4. Runs both even
# when one fails; exits 1 if any failed.
cd "$(dirname "$0")/.." || exit 1
status=0
for script in bench/render_bench.lua bench/timeline_offline.lua bench/picture_bench.lua bench/convert_linear.lua; do
  echo "--- lua5.4 $script"
  if lua5.4 "$script"; then
    :
  else
    echo "--- $script FAILED (exit status $?)"
    status=1
  fi
done
exit $status
