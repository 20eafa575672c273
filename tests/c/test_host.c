/* test_host.c — unit tests for the pure parts of the Lua host: the write-root check
 * (prim_resolve_write_path), the zip writer (zipbundle.c, read back with
 * libarchive) and the counting allocator's cap and reserve (budget.c). */
#include <archive.h>

#include <archive_entry.h>
#include <lauxlib.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/zipbundle.h"
#include "host/host_gen.h"

static char test_root[PATH_MAX];

static void test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int test_setup(void **state)
{
    char tmpl[] = "/tmp/pmb-test-host-XXXXXX";
    (void)state;
    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, test_root));
    return 0;
}

static int test_teardown(void **state)
{
    char cmd[PATH_MAX + 16];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_root);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_write_path_inside(void **state)
{
    char out[PATH_MAX], err[256], want[PATH_MAX + 32];
    struct stat st;
    (void)state;
    assert_int_equal(
        prim_resolve_write_path(test_root, "a/b/c.txt", 1, out, sizeof out, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s/a/b/c.txt", test_root);
    assert_string_equal(out, want);
    snprintf(want, sizeof want, "%s/a/b", test_root);
    assert_int_equal(stat(want, &st), 0); /* parents created */
    assert_true(S_ISDIR(st.st_mode));
    /* absolute path inside the root, with "." components */
    snprintf(want, sizeof want, "%s/./a/./d.txt", test_root);
    assert_int_equal(prim_resolve_write_path(test_root, want, 0, out, sizeof out, err, sizeof err),
                     0);
}

static void test_write_path_refused(void **state)
{
    char out[PATH_MAX], err[256], path[PATH_MAX + 64], outside[PATH_MAX + 16];
    (void)state;
    assert_int_equal(
        prim_resolve_write_path(test_root, "../x.txt", 1, out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, ".."));
    assert_int_equal(
        prim_resolve_write_path(test_root, "a/../../x.txt", 1, out, sizeof out, err, sizeof err),
        -1);
    assert_int_equal(
        prim_resolve_write_path(test_root, "/etc/passwd", 1, out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "outside"));
    /* a sibling whose name starts with the root's name is outside too */
    snprintf(path, sizeof path, "%s-evil/x.txt", test_root);
    assert_int_equal(prim_resolve_write_path(test_root, path, 0, out, sizeof out, err, sizeof err),
                     -1);
    /* the root itself is not a file */
    assert_int_equal(
        prim_resolve_write_path(test_root, test_root, 0, out, sizeof out, err, sizeof err), -1);
    /* a symlink inside the root pointing outside */
    snprintf(outside, sizeof outside, "%s-out", test_root);
    mkdir(outside, 0755);
    snprintf(path, sizeof path, "%s/link", test_root);
    assert_int_equal(symlink(outside, path), 0);
    assert_int_equal(
        prim_resolve_write_path(test_root, "link/x.txt", 1, out, sizeof out, err, sizeof err), -1);
    assert_int_equal(
        prim_resolve_write_path(test_root, "link/sub/x.txt", 1, out, sizeof out, err, sizeof err),
        -1);
    snprintf(path, sizeof path, "%s/sub", outside);
    assert_int_not_equal(access(path, F_OK), 0); /* nothing created through the link */
    /* a symlink as the file itself */
    snprintf(path, sizeof path, "%s/filelink", test_root);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_int_equal(
        prim_resolve_write_path(test_root, "filelink", 0, out, sizeof out, err, sizeof err), -1);
    rmdir(outside);
}

/* <test_root>/<name>/ holding report.md ("# report\n") and an empty attachments/. */
static void test_report_dir(const char *name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", test_root, name);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/attachments", test_root, name);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/report.md", test_root, name);
    test_write_file(path, "# report\n");
}

static void test_zip_roundtrip(void **state)
{
    char path[PATH_MAX + 64], zip[PATH_MAX + 64], err[256];
    const char *entries[] = {"report.md", "attachments"};
    struct archive *a;
    struct archive_entry *e;
    char names[8][64];
    int n = 0;
    (void)state;

    test_report_dir("b");
    snprintf(path, sizeof path, "%s/b/attachments/log.txt", test_root);
    test_write_file(path, "line 1\nline 2\n");
    snprintf(path, sizeof path, "%s/b/attachments/escape", test_root);
    assert_int_equal(symlink("/etc/passwd", path), 0); /* never followed into the bundle */
    snprintf(zip, sizeof zip, "%s/bundle.zip", test_root);
    snprintf(path, sizeof path, "%s/b", test_root);
    assert_int_equal(zipbundle_write(zip, path, entries, 2, err, sizeof err), 0);

    a = archive_read_new();
    archive_read_support_format_zip(a);
    assert_int_equal(archive_read_open_filename(a, zip, 10240), ARCHIVE_OK);
    while (archive_read_next_header(a, &e) == ARCHIVE_OK && n < 8) {
        snprintf(names[n], sizeof names[n], "%s", archive_entry_pathname(e));
        if (strcmp(names[n], "attachments/log.txt") == 0) {
            char buf[64] = {0};
            assert_int_equal(archive_read_data(a, buf, sizeof buf - 1), 14);
            assert_string_equal(buf, "line 1\nline 2\n");
        }
        n++;
    }
    archive_read_free(a);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "report.md");
    assert_string_equal(names[1], "attachments/");
    assert_string_equal(names[2], "attachments/log.txt");

    /* bad entries are refused and leave nothing behind */
    const char *bad[] = {"../b/report.md"};
    snprintf(zip, sizeof zip, "%s/bad.zip", test_root);
    assert_int_equal(zipbundle_write(zip, path, bad, 1, err, sizeof err), -1);
    assert_int_not_equal(access(zip, F_OK), 0);
    const char *missing[] = {"nope.md"};
    assert_int_equal(zipbundle_write(zip, path, missing, 1, err, sizeof err), -1);
    assert_int_not_equal(access(zip, F_OK), 0);
}

/* The member names of the zip at path, in order, into names (at most 8); returns how many. */
static int test_zip_names(const char *path, char names[8][64])
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int n = 0;
    archive_read_support_format_zip(a);
    assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
    while (archive_read_next_header(a, &e) == ARCHIVE_OK && n < 8) {
        snprintf(names[n++], 64, "%s", archive_entry_pathname(e));
    }
    archive_read_free(a);
    return n;
}

/* The zip written entry by entry (host.zip_writer): members in the order added, "folder/" its own
 * entry alone; a failed or dropped zip leaves nothing beside it. */
static void test_zip_entry_by_entry(void **state)
{
    char dir[PATH_MAX + 64], path[PATH_MAX + 128], zip[PATH_MAX + 128], prefix[PATH_MAX + 128];
    char err[256], names[8][64];
    struct zipbundle *z;
    struct dirent *de;
    DIR *d;
    int n;
    (void)state;

    test_report_dir("e");
    snprintf(dir, sizeof dir, "%s/e", test_root);
    snprintf(path, sizeof path, "%s/e/attachments/b.txt", test_root);
    test_write_file(path, "b\n");
    snprintf(path, sizeof path, "%s/e/attachments/a.txt", test_root);
    test_write_file(path, "a\n");
    snprintf(prefix, sizeof prefix, "%s/.bundle.zip", dir);
    snprintf(zip, sizeof zip, "%s/report.zip", dir);

    z = zipbundle_open(prefix, dir, err, sizeof err);
    assert_non_null(z);
    assert_int_equal(zipbundle_add_entry(z, "attachments/", err, sizeof err), 0);
    assert_int_equal(zipbundle_add_entry(z, "attachments/b.txt", err, sizeof err), 0);
    assert_int_equal(zipbundle_add_entry(z, "attachments/a.txt", err, sizeof err), 0);
    assert_int_equal(zipbundle_add_entry(z, "report.md", err, sizeof err), 0);
    assert_int_equal(zipbundle_finish(z, zip, err, sizeof err), 0);
    n = test_zip_names(zip, names);
    assert_int_equal(n, 4);
    assert_string_equal(names[0], "attachments/");
    assert_string_equal(names[1], "attachments/b.txt");
    assert_string_equal(names[2], "attachments/a.txt");
    assert_string_equal(names[3], "report.md");

    /* refused entries, a file given as a folder, a dropped zip: no temp file is left */
    z = zipbundle_open(prefix, dir, err, sizeof err);
    assert_non_null(z);
    assert_int_equal(zipbundle_add_entry(z, "../e/report.md", err, sizeof err), -1);
    assert_int_equal(zipbundle_add_entry(z, "report.md/", err, sizeof err), -1);
    zipbundle_discard(z);
    d = opendir(dir);
    while ((de = readdir(d)) != NULL) {
        assert_null(strstr(de->d_name, ".tmp."));
    }
    closedir(d);
}

/* Compression method of the local header of entry `name` in the zip at path (0 stored, 8 deflate).
 */
static int test_zip_method(const char *path, const char *name)
{
    static unsigned char buf[1 << 20];
    size_t n, len = strlen(name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t i = 0; i + 30 + len <= n; i++) {
        if (memcmp(buf + i, "PK\x03\x04", 4) == 0 && buf[i + 26] == (len & 0xff) &&
            memcmp(buf + i + 30, name, len) == 0) {
            return buf[i + 8] | (buf[i + 9] << 8);
        }
    }
    return -1;
}

static void test_zip_stores_compressed_formats(void **state)
{
    char dir[PATH_MAX + 64], path[PATH_MAX + 128], zip[PATH_MAX + 128], err[256];
    const char *entries[] = {"graph.png", "notes.txt"};
    static char png[4096], text[4096];
    FILE *f;
    (void)state;

    snprintf(dir, sizeof dir, "%s/z", test_root);
    mkdir(dir, 0755);
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    for (size_t i = 8; i < sizeof png; i++) {
        png[i] = (char)(i * 7919 % 251);
    }
    memset(text, 'a', sizeof text);
    snprintf(path, sizeof path, "%s/graph.png", dir);
    f = fopen(path, "wb");
    fwrite(png, 1, sizeof png, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    f = fopen(path, "wb");
    fwrite(text, 1, sizeof text, f);
    fclose(f);
    snprintf(zip, sizeof zip, "%s/z.zip", test_root);
    assert_int_equal(zipbundle_write(zip, dir, entries, 2, err, sizeof err), 0);
    assert_int_equal(test_zip_method(zip, "graph.png"), 0);
    assert_int_equal(test_zip_method(zip, "notes.txt"), 8);
}

static void test_budget_alloc_cap_and_reserve(void **state)
{
    struct host_gen gen;
    struct budget_run run;
    lua_State *L;
    void *a, *b, *c;
    size_t base;
    (void)state;

    memset(&gen, 0, sizeof gen);
    gen.mem.cap = 64u * 1024 * 1024;
    gen.mem.reserve = 64 * 1024;
    L = lua_newstate(budget_alloc, &gen);
    assert_non_null(L);
    base = gen.mem.used;
    assert_true(base > 0);

    /* outside a run there is no cap: host C code never fails */
    gen.mem.cap = base + 1000;
    a = budget_alloc(&gen.mem, NULL, LUA_TSTRING, 4000);
    assert_non_null(a);
    assert_int_equal(gen.mem.used, base + 4000);
    budget_alloc(&gen.mem, a, 4000, 0);
    assert_int_equal(gen.mem.used, base);

    /* inside a run: over the cap kills the run, the reserve still serves the error path */
    struct budget_limits limits = {10, 10, 0};
    budget_begin(&run, &gen.mem, L, &limits, 0);
    a = budget_alloc(&gen.mem, NULL, LUA_TTABLE, 500);
    assert_non_null(a);
    assert_int_equal(run.killed, BUDGET_NONE);
    b = budget_alloc(&gen.mem, NULL, LUA_TSTRING, 1000); /* over the cap, inside the reserve */
    assert_non_null(b);
    assert_int_equal(run.killed, BUDGET_MEM);
    c = budget_alloc(&gen.mem, NULL, LUA_TSTRING, 128 * 1024); /* beyond cap + reserve */
    assert_null(c);
    assert_non_null(strstr(budget_kill_message(&run), "memory cap exceeded"));
    /* growing a block counts only the difference; shrinking always works */
    b = budget_alloc(&gen.mem, b, 1000, 100);
    assert_non_null(b);
    budget_end(&run);
    assert_false(budget_active());
    budget_alloc(&gen.mem, a, 500, 0);
    budget_alloc(&gen.mem, b, 100, 0);
    assert_int_equal(gen.mem.used, base);
    gen.mem.cap = 64u * 1024 * 1024;
    lua_close(L);
    assert_int_equal(gen.mem.used, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_path_inside),
        cmocka_unit_test(test_write_path_refused),
        cmocka_unit_test(test_zip_roundtrip),
        cmocka_unit_test(test_zip_stores_compressed_formats),
        cmocka_unit_test(test_zip_entry_by_entry),
        cmocka_unit_test(test_budget_alloc_cap_and_reserve),
    };
    return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
