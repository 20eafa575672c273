#!/usr/bin/env python3
"""Turns db/migrations/NNNN_name.sql into C initialisers {N, "NNNN_name", "sql"} (migrations.inc)
that core/db/migrate.c includes, so the binary carries its schema. Called by the Makefile:
python3 tools/sql2inc.py OUT.inc db/migrations/0001_x.sql ..."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lua2inc import literal  # noqa: E402


def main():
    dst, sources = sys.argv[1], sys.argv[2:]
    seen = set()
    out = ["/* generated from db/migrations by tools/sql2inc.py; edit the .sql files */"]
    for src in sorted(sources, key=os.path.basename):
        name = os.path.basename(src)[:-4]
        m = re.match(r"^(\d{4})_[a-z0-9_]+$", name)
        if not m:
            sys.exit("%s: a migration is named NNNN_words.sql" % src)
        version = int(m.group(1))
        if version in seen or not 0 < version < 64:
            sys.exit("%s: version %d is taken or out of 1..63" % (src, version))
        seen.add(version)
        with open(src, "rb") as f:
            data = f.read()
        if re.search(rb"(?im)^\s*(begin|commit)\s*;", data):
            sys.exit("%s: no BEGIN/COMMIT: each migration already runs in one transaction" % src)
        out.append("{%d, \"%s\",\n%s}," % (version, name, literal(data)))
    with open(dst + ".tmp", "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(dst + ".tmp", dst)


if __name__ == "__main__":
    main()
