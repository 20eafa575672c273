/* zipbundle.h — the zip bundle of a report (libarchive, zip format), written to a temp file
 * beside the target and renamed, so a reader never sees half a zip. Files that are already
 * compressed (images, archives, video) are stored, the rest deflated. Thread-safe: primitives_io.c
 * runs it on libuv's thread pool so the loop never waits for a large bundle. Calls nothing in the
 * core. */
#ifndef PMB_ZIPBUNDLE_H
#define PMB_ZIPBUNDLE_H

#include <stddef.h>

/* Write zip_path holding the entries (paths relative to base_dir; a directory adds everything
 * under it; symlinks are skipped, never followed). Entries must be relative and free of "..".
 * Returns 0, or -1 with a message in err (nothing is left at zip_path or beside it). */
int zipbundle_write(const char *zip_path, const char *base_dir, const char *const *entries,
                    size_t n, char *err, size_t errsz);

/* 1 when rel may name an entry: relative, no ".." segment (also fuzzed by
 * tests/fuzz/fuzz_zipnames.c). */
int zipbundle_entry_ok(const char *rel);

#endif
