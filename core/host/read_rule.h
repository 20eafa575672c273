/* read_rule.h — the one rule for every path a script may make the core read (host.read_file,
 * host.http's body_file, host.zip's base directory): no kernel pseudo-files (/proc, /sys, /dev;
 * /proc/self/environ holds the tokens). Called by primitives_io.c and primitives_local.c. */
#ifndef PMB_READ_RULE_H
#define PMB_READ_RULE_H

#include <stddef.h>

/* 0 when path may be read; -1 with a message in why (no secret in it) when it may not. A path
 * that does not exist is allowed here: opening it fails later with its own error. */
int read_rule_check(const char *path, char *why, size_t size);

#endif
