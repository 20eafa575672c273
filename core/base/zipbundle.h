/* zipbundle.h — the zip bundle of a report (libarchive, zip format), written to a temp file
 * beside the target and renamed, so a reader never sees half a zip; whole, or entry by entry. Files
 * that are already compressed (images, archives, video) are stored, the rest deflated. Thread-safe:
 * primitives_io.c runs it on libuv's thread pool so the loop never waits for a large bundle. Calls
 * nothing in the core. */
#ifndef PMB_ZIPBUNDLE_H
#define PMB_ZIPBUNDLE_H

#include <stddef.h>

/* Write zip_path holding the entries (paths relative to base_dir; a directory adds everything
 * under it; symlinks are skipped, never followed). Entries must be relative and free of "..".
 * Returns 0, or -1 with a message in err (nothing is left at zip_path or beside it). */
int zipbundle_write(const char *zip_path, const char *base_dir, const char *const *entries,
                    size_t n, char *err, size_t errsz);

/* A zip written entry by entry (host.zip_writer): zipbundle_open makes its temp file
 * "<tmp_prefix>.tmp.XXXXXX" (put it beside the target: the finish renames it); entries are
 * relative to base_dir. NULL with a message in err. The caller owns it until zipbundle_finish or
 * zipbundle_discard, which free it. One thread at a time. */
struct zipbundle;
struct zipbundle *zipbundle_open(const char *tmp_prefix, const char *base_dir, char *err,
                                 size_t errsz);
/* Adds entry: a file, a folder with everything under it (names sorted), or, written "name/", the
 * folder's own entry alone. 0, or -1 with err (the zip is then to be discarded). */
int zipbundle_add_entry(struct zipbundle *z, const char *entry, char *err, size_t errsz);
/* Writes the central directory and renames the temp file to zip_path. 0, or -1 with err (nothing
 * left). Frees z. */
int zipbundle_finish(struct zipbundle *z, const char *zip_path, char *err, size_t errsz);
/* Drops the zip (the temp file removed). Frees z; NULL is fine. */
void zipbundle_discard(struct zipbundle *z);

/* 1 when rel may name an entry: relative, no ".." segment (also fuzzed by
 * tests/fuzz/fuzz_zipnames.c). */
int zipbundle_entry_ok(const char *rel);

#endif
