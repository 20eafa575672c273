/* zipbundle.c — host.zip and host.zip_writer: a zip of files and folders under a base directory,
 * written with libarchive to a temp file beside the target, then renamed into place; whole
 * (zipbundle_write) or entry by entry as the files arrive (open, add_entry, finish). Called by
 * primitives_io.c (on the thread pool); the entry names are the relative paths the report links,
 * so the bundle unpacks as written. Images and archives are stored: deflating them costs time and
 * gains nothing. */
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

/* The folder's own entry, "rel/". */
static int zipbundle_dir_header(struct archive *a, const char *rel, const struct stat *st,
                                char *err, size_t errsz)
{
    struct archive_entry *e = archive_entry_new();
    char name[PATH_MAX + 1];
    if (!e) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
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
    return 0;
}

static int zipbundle_add_dir(struct archive *a, const char *base, const char *rel, const char *full,
                             const struct stat *st, char *err, size_t errsz)
{
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (zipbundle_dir_header(a, rel, st, err, errsz) < 0) {
        return -1;
    }
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

/* A zip being written: the archive on a temp file, renamed into place by zipbundle_finish. */
struct zipbundle {
    struct archive *a;
    int fd;
    char tmp[PATH_MAX];
    char base[PATH_MAX];
};

struct zipbundle *zipbundle_open(const char *tmp_prefix, const char *base_dir, char *err,
                                 size_t errsz)
{
    struct zipbundle *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    snprintf(z->base, sizeof z->base, "%s", base_dir);
    snprintf(z->tmp, sizeof z->tmp, "%s.tmp.XXXXXX", tmp_prefix);
    z->fd = mkstemp(z->tmp);
    if (z->fd < 0) {
        snprintf(err, errsz, "%s: %s", tmp_prefix, strerror(errno));
        free(z);
        return NULL;
    }
    fchmod(z->fd, 0644);
    z->a = archive_write_new();
    /* deflate level 3, not zlib's 6: the report's .md (4 MB for 20,000 messages) deflates in 8 ms
     * instead of 22 ms for 12% more bytes, and the zip's upload waits for its finish */
    if (!z->a || archive_write_set_format_zip(z->a) != ARCHIVE_OK ||
        archive_write_set_format_option(z->a, "zip", "compression-level", "3") != ARCHIVE_OK ||
        archive_write_zip_set_compression_deflate(z->a) != ARCHIVE_OK ||
        archive_write_open_fd(z->a, z->fd) != ARCHIVE_OK) {
        const char *why = z->a ? archive_error_string(z->a) : NULL;
        snprintf(err, errsz, "zip: %s", why ? why : "out of memory");
        zipbundle_discard(z);
        return NULL;
    }
    return z;
}

/* entry without its trailing slashes, into rel; 1 when it had some. */
static int zipbundle_rel(const char *entry, char *rel, size_t size)
{
    size_t len;
    snprintf(rel, size, "%s", entry);
    len = strlen(rel);
    if (len < 2 || rel[len - 1] != '/') {
        return 0;
    }
    while (len > 1 && rel[len - 1] == '/') {
        rel[--len] = '\0';
    }
    return 1;
}

int zipbundle_add_entry(struct zipbundle *z, const char *entry, char *err, size_t errsz)
{
    char rel[PATH_MAX];
    if (!zipbundle_entry_ok(entry)) {
        snprintf(err, errsz, "bad entry '%s': must be relative, without '..'", entry);
        return -1;
    }
    if (zipbundle_rel(entry, rel, sizeof rel)) {
        char full[2 * PATH_MAX + 2];
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", z->base, rel);
        if (lstat(full, &st) < 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errsz, "%s: not a folder", rel);
            return -1;
        }
        return zipbundle_dir_header(z->a, rel, &st, err, errsz);
    }
    return zipbundle_add(z->a, z->base, rel, err, errsz);
}

void zipbundle_discard(struct zipbundle *z)
{
    if (!z) {
        return;
    }
    if (z->a) {
        archive_write_free(z->a); /* closes the archive; the fd stays ours */
    }
    close(z->fd);
    unlink(z->tmp);
    free(z);
}

int zipbundle_finish(struct zipbundle *z, const char *zip_path, char *err, size_t errsz)
{
    int rc = 0;
    if (archive_write_close(z->a) != ARCHIVE_OK) {
        snprintf(err, errsz, "zip: %s", archive_error_string(z->a));
        rc = -1;
    }
    archive_write_free(z->a);
    z->a = NULL;
    /* no fsync: like every other file of a report (the .md, attachments/, timeline.json) the zip
     * is whole or absent for a reader (the rename), not forced to disk; flushing 20 MB before the
     * upload cost the report ~20 ms */
    if (close(z->fd) < 0 && rc == 0) {
        snprintf(err, errsz, "%s: %s", zip_path, strerror(errno));
        rc = -1;
    }
    z->fd = -1;
    if (rc == 0 && rename(z->tmp, zip_path) < 0) {
        snprintf(err, errsz, "%s: %s", zip_path, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(z->tmp);
    }
    free(z);
    return rc;
}

int zipbundle_write(const char *zip_path, const char *base_dir, const char *const *entries,
                    size_t n, char *err, size_t errsz)
{
    struct zipbundle *z;
    for (size_t i = 0; i < n; i++) {
        if (!zipbundle_entry_ok(entries[i])) {
            snprintf(err, errsz, "bad entry '%s': must be relative, without '..'", entries[i]);
            return -1;
        }
    }
    z = zipbundle_open(zip_path, base_dir, err, errsz);
    if (!z) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char rel[PATH_MAX];
        zipbundle_rel(entries[i], rel, sizeof rel); /* "x/" is the whole folder here */
        if (zipbundle_add(z->a, base_dir, rel, err, errsz) < 0) {
            zipbundle_discard(z);
            return -1;
        }
    }
    return zipbundle_finish(z, zip_path, err, errsz);
}
