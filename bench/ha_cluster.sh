#!/bin/sh
# Several instances in database mode (issue 16): ack p50/p99 with the job row before each ack,
# jobs per second over 3 instances, takeover time after kill -9. Run by `make bench` from the
# repository root; needs bin/postmortembot and PostgreSQL (make deps).
cd "$(dirname "$0")/.." && exec python3 bench/ha_cluster.py "$@"
