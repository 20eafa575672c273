/* read_rule.c — may a script make the core read this path? The path is resolved (symlinks,
 * "..", relative to the working directory) and refused when it lies under /proc, /sys or /dev.
 * Called by primitives_io.c (body_file, zip base) and primitives_local.c (read_file). */
#include "host/read_rule.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_rule_under(const char *real, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(real, dir, n) == 0 && (real[n] == '\0' || real[n] == '/');
}

int read_rule_check(const char *path, char *why, size_t size)
{
    static const char *const refused[] = {"/proc", "/sys", "/dev"};
    char real[PATH_MAX];
    if (!path || !realpath(path, real)) {
        return 0;
    }
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        if (read_rule_under(real, refused[i])) {
            snprintf(why, size, "%s is under %s: kernel pseudo-files are never read", path,
                     refused[i]);
            return -1;
        }
    }
    return 0;
}
