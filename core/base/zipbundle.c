/* zipbundle.c — host.zip: a zip of files and folders under a base directory, written with
 * libarchive to a temp file beside the target, then renamed into place. Called by primitives_io.c
 * (on the thread pool); the entry names are the relative paths the report links, so the bundle
 * unpacks as written. Images and archives are stored: deflating them costs time and gains nothing.
 */
#include "base/zipbundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int zipbundle_entry_ok(const char *rel)
{
    const char *p = rel;
    if (!*rel || rel[0] == '/') {
        return 0;
    }
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            return 0;
        }
        p += len;
        if (*p == '/') {
            p++;
        }
    }
    return 1;
}

static int zipbundle_add(struct archive *a, const char *base, const char *rel, char *err,
                         size_t errsz);

static int zipbundle_names_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int zipbundle_add_dir(struct archive *a, const char *base, const char *rel, const char *full,
                             const struct stat *st, char *err, size_t errsz)
{
    struct archive_entry *e = archive_entry_new();
    char name[PATH_MAX];
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    snprintf(name, sizeof name, "%s/", rel);
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFDIR);
    archive_entry_set_perm(e, 0755);
    archive_entry_set_mtime(e, st->st_mtime, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK) {
        snprintf(err, errsz, "%s: %s", rel, archive_error_string(a));
        archive_entry_free(e);
        return -1;
    }
    archive_entry_free(e);
    d = opendir(full);
    if (!d) {
        snprintf(err, errsz, "%s: %s", rel, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                rc = -1;
                snprintf(err, errsz, "out of memory");
                break;
            }
            names = grown;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = -1; /* a name we cannot hold: refuse the bundle rather than leave a file out */
            snprintf(err, errsz, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0) {
        if (n > 1) {
            qsort(names, n, sizeof *names, zipbundle_names_cmp); /* reproducible bundles */
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && names[i]) {
            char sub[PATH_MAX];
            snprintf(sub, sizeof sub, "%s/%s", rel, names[i]);
            rc = zipbundle_add(a, base, sub, err, errsz);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Does the content start like a format that is already compressed? (PNG, JPEG, GIF, WebP, zip
 * and its office/jar cousins, gzip, bzip2, xz, zstd, 7z, MP4/MOV.) */
static int zipbundle_is_compressed(const unsigned char *h, size_t n)
{
    static const struct {
        const char *magic;
        size_t len;
        size_t at;
    } known[] = {
        {"\x89PNG", 4, 0},
        {"\xff\xd8\xff", 3, 0},
        {"GIF8", 4, 0},
        {"WEBP", 4, 8},
        {"PK\x03\x04", 4, 0},
        {"\x1f\x8b", 2, 0},
        {"BZh", 3, 0},
        {"\xfd"
         "7zXZ",
         5, 0},
        {"\x28\xb5\x2f\xfd", 4, 0},
        {"7z\xbc\xaf", 4, 0},
        {"ftyp", 4, 4},
    };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        if (n >= known[i].at + known[i].len &&
            memcmp(h + known[i].at, known[i].magic, known[i].len) == 0) {
            return 1;
        }
    }
    return 0;
}

static int zipbundle_add_file(struct archive *a, const char *rel, const char *full,
                              const struct stat *st, char *err, size_t errsz)
{
    struct archive_entry *e;
    char buf[65536];
    ssize_t got;
    int fd = open(full, O_RDONLY | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errsz, "%s: %s", rel, strerror(errno));
        return -1;
    }
    unsigned char head[16];
    got = read(fd, head, sizeof head);
    if (got < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        snprintf(err, errsz, "%s: %s", rel, strerror(errno));
        close(fd);
        return -1;
    }
    if (zipbundle_is_compressed(head, (size_t)got)) {
        archive_write_zip_set_compression_store(a);
    } else {
        archive_write_zip_set_compression_deflate(a);
    }
    e = archive_entry_new();
    archive_entry_set_pathname(e, rel);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, st->st_size);
    archive_entry_set_mtime(e, st->st_mtime, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK) {
        snprintf(err, errsz, "%s: %s", rel, archive_error_string(a));
        archive_entry_free(e);
        close(fd);
        return -1;
    }
    archive_entry_free(e);
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        if (archive_write_data(a, buf, (size_t)got) < 0) {
            snprintf(err, errsz, "%s: %s", rel, archive_error_string(a));
            close(fd);
            return -1;
        }
    }
    close(fd);
    if (got < 0) {
        snprintf(err, errsz, "%s: %s", rel, strerror(errno));
        return -1;
    }
    return 0;
}

static int zipbundle_add(struct archive *a, const char *base, const char *rel, char *err,
                         size_t errsz)
{
    char full[PATH_MAX];
    struct stat st;
    snprintf(full, sizeof full, "%s/%s", base, rel);
    if (lstat(full, &st) < 0) {
        snprintf(err, errsz, "%s: %s", rel, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        return zipbundle_add_dir(a, base, rel, full, &st, err, errsz);
    }
    if (S_ISREG(st.st_mode)) {
        return zipbundle_add_file(a, rel, full, &st, err, errsz);
    }
    return 0; /* symlinks, sockets, devices: not part of a bundle */
}

int zipbundle_write(const char *zip_path, const char *base_dir, const char *const *entries,
                    size_t n, char *err, size_t errsz)
{
    char tmp[PATH_MAX];
    struct archive *a;
    int fd, rc = 0;

    for (size_t i = 0; i < n; i++) {
        if (!zipbundle_entry_ok(entries[i])) {
            snprintf(err, errsz, "bad entry '%s': must be relative, without '..'", entries[i]);
            return -1;
        }
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", zip_path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errsz, "%s: %s", zip_path, strerror(errno));
        return -1;
    }
    fchmod(fd, 0644);
    a = archive_write_new();
    if (!a || archive_write_set_format_zip(a) != ARCHIVE_OK ||
        archive_write_zip_set_compression_deflate(a) != ARCHIVE_OK ||
        archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        const char *why = a ? archive_error_string(a) : NULL;
        snprintf(err, errsz, "zip: %s", why ? why : "out of memory");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char rel[PATH_MAX];
        size_t len;
        snprintf(rel, sizeof rel, "%s", entries[i]);
        len = strlen(rel);
        while (len > 1 && rel[len - 1] == '/') {
            rel[--len] = '\0';
        }
        rc = zipbundle_add(a, base_dir, rel, err, errsz);
    }
    if (a) {
        if (archive_write_close(a) != ARCHIVE_OK && rc == 0) {
            snprintf(err, errsz, "zip: %s", archive_error_string(a));
            rc = -1;
        }
        archive_write_free(a);
    }
    /* no fsync: like every other file of a report (the .md, attachments/, timeline.json) the zip
     * is whole or absent for a reader (the rename), not forced to disk; flushing 20 MB before the
     * upload cost the report ~20 ms */
    if (close(fd) < 0 && rc == 0) {
        snprintf(err, errsz, "%s: %s", zip_path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, zip_path) < 0) {
        snprintf(err, errsz, "%s: %s", zip_path, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(tmp);
    }
    return rc;
}
