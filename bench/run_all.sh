#!/bin/sh
# `make bench`: runs every bench/*.sh (this file excepted), each under a header, keeps going when
# one fails, and ends with one line per bench and its outcome; exits 1 if any failed.
# Benchmarks print figures and assert nothing: a failure here means a bench could not run.
cd "$(dirname "$0")/.." || exit 1
failed=""
summary=""
for b in bench/*.sh; do
  [ "$b" = "bench/run_all.sh" ] && continue
  echo
  echo "==================== $b ===================="
  start=$(date +%s)
  if sh "$b"; then
    outcome="ok"
  else
    outcome="FAILED (exit status $?)"
    failed="$failed $b"
  fi
  summary="$summary
  $b: $outcome, $(( $(date +%s) - start )) s"
done
echo
echo "==================== make bench: summary ===================="
echo "${summary#?}"
if [ -n "$failed" ]; then
  echo "failed:$failed"
  exit 1
fi
