/* export_zip.c — unpacks a Slack export .zip (users.json, channels.json, <channel>/<day>.json) into
 * a temporary folder with libarchive, for `render` (offline.c calls it before the host reads the
 * folder). Only .json files are written, only under relative paths without "..", within a size
 * bound: an export is data, never a way to write elsewhere. */
#define _XOPEN_SOURCE 700
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_zip.h"

#define EXPORT_ZIP_MAX_BYTES (4LL * 1024 * 1024 * 1024)

int export_zip_is_zip(const char *path)
{
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    size_t n;
    if (!f) {
        return 0;
    }
    n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

static int export_zip_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void export_zip_remove(const char *dir)
{
    if (dir && *dir) {
        nftw(dir, export_zip_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* A name we may write under the folder: relative, no "..", no empty or "." component. */
static int export_zip_safe_name(const char *name)
{
    const char *p = name;
    if (!*name || name[0] == '/') {
        return 0;
    }
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if ((len == 2 && p[0] == '.' && p[1] == '.') || (len == 1 && p[0] == '.') ||
            (len == 0 && slash)) {
            return 0;
        }
        p += len + (slash ? 1 : 0);
    }
    return 1;
}

static int export_zip_mkdirs(char *path)
{
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc < 0 && errno != EEXIST) {
            return -1;
        }
    }
    return 0;
}

static int export_zip_copy(struct archive *a, const char *path, long long *total)
{
    char buf[65536];
    la_ssize_t n;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        return -1;
    }
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
        *total += n;
        if (*total > EXPORT_ZIP_MAX_BYTES || write(fd, buf, (size_t)n) != n) {
            close(fd);
            return -1;
        }
    }
    return close(fd) < 0 || n < 0 ? -1 : 0;
}

int export_zip_unpack(const char *zip, char *dir, size_t dirsz, char *err, size_t errsz)
{
    const char *tmp = getenv("TMPDIR");
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    long long total = 0;
    int rc = 0;

    snprintf(dir, dirsz, "%s/postmortembot-export-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!a || !mkdtemp(dir)) {
        snprintf(err, errsz, "cannot make a temporary folder: %s", strerror(errno));
        archive_read_free(a);
        dir[0] = '\0';
        return -1;
    }
    archive_read_support_format_zip(a);
    if (archive_read_open_filename(a, zip, 65536) != ARCHIVE_OK) {
        snprintf(err, errsz, "%s is not a readable zip: %s", zip, archive_error_string(a));
        rc = -1;
    }
    while (rc == 0 && archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        char path[8192];
        size_t len = name ? strlen(name) : 0;
        if (archive_entry_filetype(e) != AE_IFREG || len < 5 || strcmp(name + len - 5, ".json")) {
            continue; /* folders come with their files; files/ and the rest are not read */
        }
        if (!export_zip_safe_name(name)) {
            snprintf(err, errsz, "%s: the entry '%s' is not a plain relative path", zip, name);
            rc = -1;
        } else if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
                   export_zip_mkdirs(path) < 0 || export_zip_copy(a, path, &total) < 0) {
            snprintf(err, errsz, "%s: cannot unpack '%s'%s", zip, name,
                     total > EXPORT_ZIP_MAX_BYTES ? " (the export is too large)" : "");
            rc = -1;
        }
    }
    archive_read_free(a);
    if (rc < 0) {
        export_zip_remove(dir);
        dir[0] = '\0';
    }
    return rc;
}
