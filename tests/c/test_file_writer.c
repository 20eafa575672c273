/* test_file_writer.c — file_writer.c's plain C part: pieces written then committed make the file,
 * byte for byte, and nothing is at the path before the commit; an abort (or a commit that cannot
 * rename) leaves no file and no temporary file behind; writes after the end fail with EBADF; a
 * path too long is refused before anything is created. Runs in a fresh folder under /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/file_writer.h"

static char test_dir[64];

static int test_setup(void **state)
{
    (void)state;
    snprintf(test_dir, sizeof test_dir, "/tmp/pmb-file-writer-XXXXXX");
    return mkdtemp(test_dir) ? 0 : -1;
}

static int test_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(test_dir);
    struct dirent *e;
    char path[PATH_MAX];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", test_dir, e->d_name);
            unlink(path);
        }
    }
    if (d) {
        closedir(d);
    }
    return rmdir(test_dir);
}

/* Entries in the test folder (., .. aside). */
static int test_entries(void)
{
    DIR *d = opendir(test_dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void test_pieces_then_commit(void **state)
{
    (void)state;
    struct file_writer w;
    char path[PATH_MAX], got[64] = {0};
    snprintf(path, sizeof path, "%s/report.md", test_dir);
    assert_int_equal(file_writer_open(&w, path), 0);
    assert_int_equal(file_writer_write(&w, "# Title\n", 8), 0);
    assert_int_equal(file_writer_write(&w, "", 0), 0);
    assert_int_equal(file_writer_write(&w, "a\0b\n", 4), 0);
    assert_int_equal(access(path, F_OK), -1); /* not there before the commit */
    assert_int_equal(test_entries(), 1);      /* only the temporary file */
    assert_int_equal(file_writer_commit(&w), 0);

    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(got, 1, sizeof got, f);
    fclose(f);
    assert_int_equal(n, 12);
    assert_memory_equal(got, "# Title\na\0b\n", 12);
    assert_int_equal(test_entries(), 1); /* the temporary file became the file */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    errno = 0;
    assert_int_equal(file_writer_write(&w, "x", 1), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(file_writer_commit(&w), -1);
    file_writer_abort(&w); /* harmless after the commit */
    assert_int_equal(access(path, F_OK), 0);
}

static void test_commit_replaces_whole(void **state)
{
    (void)state;
    struct file_writer w;
    char path[PATH_MAX], got[16] = {0};
    snprintf(path, sizeof path, "%s/again.md", test_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("old text, longer than the new", f);
    fclose(f);
    assert_int_equal(file_writer_open(&w, path), 0);
    assert_int_equal(file_writer_write(&w, "new", 3), 0);
    assert_int_equal(file_writer_commit(&w), 0);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(got, 1, sizeof got, f), 3);
    fclose(f);
    assert_string_equal(got, "new");
}

static void test_abort_leaves_nothing(void **state)
{
    (void)state;
    struct file_writer w;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/dropped.md", test_dir);
    assert_int_equal(file_writer_open(&w, path), 0);
    assert_int_equal(file_writer_write(&w, "half a report", 13), 0);
    file_writer_abort(&w);
    file_writer_abort(&w); /* twice is harmless */
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(test_entries(), 0);
    assert_int_equal(file_writer_write(&w, "x", 1), -1);
}

static void test_failed_rename_cleans_up(void **state)
{
    (void)state;
    struct file_writer w;
    char path[PATH_MAX];
    /* a folder where the file should go: rename(2) of a file over a directory fails */
    snprintf(path, sizeof path, "%s/taken", test_dir);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(file_writer_open(&w, path), 0);
    assert_int_equal(file_writer_write(&w, "x", 1), 0);
    assert_int_equal(file_writer_commit(&w), -1);
    assert_int_equal(test_entries(), 1); /* the folder, no temporary file */
    assert_int_equal(rmdir(path), 0);
}

static void test_bad_paths(void **state)
{
    (void)state;
    struct file_writer w;
    char path[PATH_MAX + 64];
    memset(path, 'a', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    errno = 0;
    assert_int_equal(file_writer_open(&w, path), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(w.fd, -1);
    snprintf(path, sizeof path, "%s/no/such/folder/x.md", test_dir);
    assert_int_equal(file_writer_open(&w, path), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(test_entries(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pieces_then_commit, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_commit_replaces_whole, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_failed_rename_cleans_up, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, test_setup, test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
