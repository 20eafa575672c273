/* export_zip.h — unpacking a Slack export .zip into a temporary folder for `render` (offline.c),
 * which then reads it like an unpacked export (scripts/lib/render_input.lua). */
#ifndef PMB_EXPORT_ZIP_H
#define PMB_EXPORT_ZIP_H

#include <stddef.h>

/* Does path name a zip archive (by its first bytes)? */
int export_zip_is_zip(const char *path);
/* Unpack the JSON files of zip into a new folder under $TMPDIR (path written to dir). Entries
 * that are not plain relative paths are refused. 0, or -1 with why in err (dir then removed). */
int export_zip_unpack(const char *zip, char *dir, size_t dirsz, char *err, size_t errsz);
/* Remove the folder export_zip_unpack made (and everything in it). */
void export_zip_remove(const char *dir);

#endif
