#!/bin/sh
# The "nothing in a message can break the document" property (tests/lua/convert_property_spec.lua)
# on more random inputs than `make check` runs: 200,000 by default, from seed 1,000,001 so it covers
# other inputs than the check. Usage: bench/convert_property.sh [COUNT] [FIRST_SEED]
cd "$(dirname "$0")/.." || exit 1
start=$(date +%s)
PMB_PROPERTY_COUNT=${1:-200000} PMB_PROPERTY_SEED=${2:-1000001} \
  lua5.4 /usr/bin/busted --lpath='scripts/?.lua;scripts/?/init.lua' -o TAP tests/lua/convert_property_spec.lua
rc=$?
echo "convert property: ${1:-200000} inputs from seed ${2:-1000001}, $(( $(date +%s) - start )) s, exit $rc"
exit $rc
