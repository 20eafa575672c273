#!/bin/sh
# Channel autopsy end to end against the fake Slack (30 ms per API call, 10,000 messages of which
# 200 are threads): time to the upload and the Web API calls, next to the bound of the calls that
# cannot overlap. Run from anywhere; needs bin/postmortembot (make).
cd "$(dirname "$0")/.." && exec python3 bench/channel_e2e.py "$@"
