#!/bin/sh
# Paced ack latency while scripts are busy (see bench/paced_ack.py); figures only.
exec python3 "$(dirname "$0")/paced_ack.py" "$@"
