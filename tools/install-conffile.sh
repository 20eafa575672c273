#!/bin/sh
# install-conffile.sh SRC DST MANIFEST — `make install` for a file the operator may edit (config,
# scripts, templates), as Debian treats conffiles: a new file is installed; an edited one is kept
# and the new version goes beside it as DST.dist; a file the operator deleted (listed in MANIFEST
# by an earlier install) stays deleted, again with DST.dist. Appends DST to MANIFEST.new.
set -eu
src=$1 dst=$2 manifest=$3
mode=644
[ -x "$src" ] && mode=755
echo "$dst" >> "$manifest.new"
if [ -e "$dst" ]; then
  if cmp -s "$src" "$dst"; then exit 0; fi
  install -m "$mode" "$src" "$dst.dist"
  echo "install: kept your $dst (it differs); the new version is $dst.dist"
elif [ -f "$manifest" ] && grep -qxF "$dst" "$manifest"; then
  install -D -m "$mode" "$src" "$dst.dist"
  echo "install: $dst was removed after the last install, so it stays removed; the new version is $dst.dist"
else
  install -D -m "$mode" "$src" "$dst"
fi
