/* fuzz_zipnames.c — libFuzzer harness for the zip bundle's entry names (zipbundle_entry_ok), the
 * names the report links and a script hands to host.zip. Oracle: an accepted name, joined to a
 * base directory and normalised lexically, stays under that base (no "..", no absolute path, no
 * NUL trickery), and whatever is refused is refused without touching the disk. Every 256th
 * input is also written for real into a scratch base with one file in it, and the names in the
 * zip are read back with libarchive and checked the same way. Built by `make fuzz`. */
#include <archive.h>
#include <archive_entry.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/zipbundle.h"

/* 1 when rel, read as a path below a base, never climbs above it */
static int fuzz_stays_inside(const char *rel)
{
    int depth = 0;
    const char *p = rel;
    if (*p == '/') {
        return 0;
    }
    while (*p) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0) {
                return 0;
            }
        } else if (len > 0 && !(len == 1 && p[0] == '.')) {
            depth++;
        }
        p += len;
        while (*p == '/') {
            p++;
        }
    }
    return 1;
}

static char fuzz_base[PATH_MAX];

static void fuzz_setup(void)
{
    if (fuzz_base[0]) {
        return;
    }
    snprintf(fuzz_base, sizeof fuzz_base, "/tmp/pmb-fuzz-zip-%d", (int)getpid());
    mkdir(fuzz_base, 0700);
    char f[PATH_MAX + 16];
    snprintf(f, sizeof f, "%s/a.txt", fuzz_base);
    FILE *fp = fopen(f, "w");
    if (fp) {
        fputs("a", fp);
        fclose(fp);
    }
}

static void fuzz_write_and_read(const char *rel)
{
    char zip[PATH_MAX + 16], err[PATH_MAX + 128];
    snprintf(zip, sizeof zip, "%s.zip", fuzz_base);
    const char *entries[] = {rel, "a.txt"};
    if (zipbundle_write(zip, fuzz_base, entries, 2, err, sizeof err) < 0) {
        return;
    }
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    archive_read_support_format_zip(a);
    if (archive_read_open_filename(a, zip, 4096) == ARCHIVE_OK) {
        while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
            if (!fuzz_stays_inside(archive_entry_pathname(e))) {
                abort();
            }
        }
    }
    archive_read_free(a);
    unlink(zip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned n;
    char rel[PATH_MAX];
    if (size >= sizeof rel) {
        size = sizeof rel - 1;
    }
    memcpy(rel, data, size);
    rel[size] = '\0';
    int ok = zipbundle_entry_ok(rel);
    if (ok && !fuzz_stays_inside(rel)) {
        abort();
    }
    if (ok && (++n & 255) == 0) {
        fuzz_setup();
        fuzz_write_and_read(rel);
    }
    return 0;
}
