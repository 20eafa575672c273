#!/usr/bin/env python3
"""Turns a Lua file into a C string literal (FILE.inc) that core/host/host_gen.c includes, so the
boot chunk and the config schema are real .lua files (linted, tested with busted) compiled into
the binary. Called by the Makefile: python3 tools/lua2inc.py IN.lua OUT.inc"""
import sys


def literal(data):
    out = []
    for line in data.decode("utf-8").splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n")
        esc = esc.replace("??", "?\\?")  # no trigraphs
        out.append('"' + esc + '"')
    return "\n".join(out) or '""'


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        data = f.read()
    with open(dst + ".tmp", "w") as f:
        f.write("/* generated from %s by tools/lua2inc.py; edit the .lua file */\n" % src)
        f.write(literal(data) + "\n")
    import os
    os.replace(dst + ".tmp", dst)


if __name__ == "__main__":
    main()
