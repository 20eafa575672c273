/* archive.h — the zip bundle of a report (libarchive, zip format, deflate), written to a temp
 * file beside the target and renamed, so a reader never sees half a zip. Called by api.c
 * (host.zip); calls nothing else in the core. */
#ifndef PMB_ARCHIVE_H
#define PMB_ARCHIVE_H

#include <stddef.h>

/* -Icore makes <archive.h> find this file first: pull in libarchive's header of the same name,
 * so that core files using libarchive get both. */
#include_next <archive.h>

/* Write zip_path holding the entries (paths relative to base_dir; a directory adds everything
 * under it; symlinks are skipped, never followed). Entries must be relative and free of "..".
 * Returns 0, or -1 with a message in err (nothing is left at zip_path or beside it). */
int archive_zip_write(const char *zip_path, const char *base_dir, const char *const *entries,
                      size_t n, char *err, size_t errsz);

#endif
