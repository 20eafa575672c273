/* test_batch_arena.c — batch_arena.c, the render's Lua heap on huge pages, linked with jemalloc as
 * the bot is (Makefile): where the kernel's THP mode allows it the arena opens, its memory lies in
 * mappings advised MADV_HUGEPAGE ("hg" in /proc/self/smaps) and not in malloc's, realloc keeps
 * the bytes, freed memory is used again, and an allocation larger than a region gets a region
 * of its own. Where THP is "never" the arena must refuse to open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/batch_arena.h"

/* Whether the kernel gives huge pages to advised memory (what batch_arena.c checks too). */
static int thp_allowed(void)
{
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) {
        return 0;
    }
    if (!fgets(mode, sizeof mode, f)) {
        mode[0] = '\0';
    }
    fclose(f);
    return strstr(mode, "[always]") || strstr(mode, "[madvise]");
}

/* 1 when the mapping holding p has the hg flag (MADV_HUGEPAGE), 0 when not, -1 not found. */
static int advised_huge(const void *p)
{
    char line[512];
    int inside = 0, found = -1;
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char dash;
        if (sscanf(line, "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-') {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " hg") != NULL;
            inside = 0;
        }
    }
    fclose(f);
    return found;
}

static void test_open_follows_the_thp_mode(void **state)
{
    (void)state;
    assert_int_equal(batch_arena_open(), thp_allowed());
    assert_int_equal(batch_arena_open(), thp_allowed()); /* a second call: the same arena */
}

static void test_memory_is_advised_huge(void **state)
{
    void *small, *big, *plain;
    (void)state;
    if (!batch_arena_open()) {
        skip();
    }
    small = batch_arena_realloc(NULL, 48);
    big = batch_arena_realloc(NULL, 8u << 20);
    plain = malloc(48);
    assert_non_null(small);
    assert_non_null(big);
    assert_non_null(plain);
    memset(big, 0x5a, 8u << 20);
    assert_int_equal(advised_huge(small), 1);
    assert_int_equal(advised_huge(big), 1);
    assert_int_equal(advised_huge(plain), 0); /* malloc's own memory is not the arena's */
    batch_arena_free(small);
    batch_arena_free(big);
    free(plain);
}

static void test_realloc_keeps_bytes_and_memory_is_reused(void **state)
{
    unsigned char *p;
    void *seen[64];
    int again = 0;
    (void)state;
    if (!batch_arena_open()) {
        skip();
    }
    p = batch_arena_realloc(NULL, 100);
    assert_non_null(p);
    for (int i = 0; i < 100; i++) {
        p[i] = (unsigned char)i;
    }
    p = batch_arena_realloc(p, 1u << 20); /* grows across size classes */
    assert_non_null(p);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(p[i], i);
    }
    p = batch_arena_realloc(p, 10); /* shrinks */
    assert_non_null(p);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(p[i], i);
    }
    batch_arena_free(p);
    batch_arena_free(NULL); /* as free(NULL): nothing */
    /* what is freed serves the next allocations of its size */
    for (int i = 0; i < 64; i++) {
        seen[i] = batch_arena_realloc(NULL, 64);
        assert_non_null(seen[i]);
    }
    for (int i = 0; i < 64; i++) {
        batch_arena_free(seen[i]);
    }
    for (int i = 0; i < 64; i++) {
        void *q = batch_arena_realloc(NULL, 64);
        for (int j = 0; j < 64; j++) {
            again += q == seen[j];
        }
        batch_arena_free(q);
    }
    assert_true(again > 0);
}

static void test_larger_than_a_region(void **state)
{
    size_t size = (size_t)1200 << 20; /* past the 1 GiB region: a region of its own */
    unsigned char *p;
    (void)state;
    if (!batch_arena_open()) {
        skip();
    }
    p = batch_arena_realloc(NULL, size);
    assert_non_null(p);
    p[0] = 1;
    p[size - 1] = 2; /* both ends are usable memory */
    assert_int_equal(p[0] + p[size - 1], 3);
    assert_int_equal(advised_huge(p), 1);
    batch_arena_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_follows_the_thp_mode),
        cmocka_unit_test(test_memory_is_advised_huge),
        cmocka_unit_test(test_realloc_keeps_bytes_and_memory_is_reused),
        cmocka_unit_test(test_larger_than_a_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
