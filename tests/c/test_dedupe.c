/* test_dedupe.c — unit tests for dedupe.c: the bounded TTL set socketmode.c uses to hand each
 * Slack event to the scripts once (redelivery, TTL expiry, the memory bound, eviction from hash
 * chains). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/dedupe.h"

static void test_redelivery_is_seen(void **state)
{
    struct dedupe *d = dedupe_new(16, 900);
    (void)state;
    assert_non_null(d);
    assert_int_equal(dedupe_check_add(d, "Ev111", 1.0), 0);
    assert_int_equal(dedupe_check_add(d, "Ev222", 1.5), 0);
    /* a retry_attempt 1 delivery a minute later, and +5 min */
    assert_int_equal(dedupe_check_add(d, "Ev111", 61.0), 1);
    assert_int_equal(dedupe_check_add(d, "Ev111", 301.0), 1);
    assert_int_equal(dedupe_contains(d, "Ev222", 301.0), 1);
    assert_int_equal(dedupe_contains(d, "Ev333", 301.0), 0);
    assert_int_equal(dedupe_count(d, 301.0), 2);
    dedupe_free(d);
}

static void test_ttl_expiry(void **state)
{
    struct dedupe *d = dedupe_new(16, 10);
    (void)state;
    assert_int_equal(dedupe_check_add(d, "a", 100.0), 0);
    assert_int_equal(dedupe_check_add(d, "b", 105.0), 0);
    assert_int_equal(dedupe_contains(d, "a", 109.9), 1);
    /* "a" is forgotten at 110, "b" still remembered until 115 */
    assert_int_equal(dedupe_contains(d, "a", 110.0), 0);
    assert_int_equal(dedupe_contains(d, "b", 110.0), 1);
    assert_int_equal(dedupe_count(d, 110.0), 1);
    /* a re-add after expiry counts as new and restarts its TTL */
    assert_int_equal(dedupe_check_add(d, "a", 111.0), 0);
    assert_int_equal(dedupe_contains(d, "b", 115.0), 0);
    assert_int_equal(dedupe_contains(d, "a", 120.9), 1);
    assert_int_equal(dedupe_count(d, 121.0), 0);
    dedupe_free(d);
}

static void test_bound_evicts_oldest(void **state)
{
    char key[32];
    struct dedupe *d = dedupe_new(100, 1e9);
    (void)state;
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "Ev%d", i);
        assert_int_equal(dedupe_check_add(d, key, (double)i), 0);
        assert_true(dedupe_count(d, (double)i) <= 100);
    }
    assert_int_equal(dedupe_count(d, 1000.0), 100);
    /* the 100 newest are remembered, everything older was evicted */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "Ev%d", i);
        assert_int_equal(dedupe_contains(d, key, 1000.0), i >= 900 ? 1 : 0);
    }
    dedupe_free(d);
}

static void test_add_is_idempotent(void **state)
{
    struct dedupe *d = dedupe_new(4, 60);
    (void)state;
    assert_int_equal(dedupe_add(d, "x", 1.0), 0);
    assert_int_equal(dedupe_add(d, "x", 2.0), 0);
    assert_int_equal(dedupe_count(d, 2.0), 1);
    assert_int_equal(dedupe_check_add(d, "x", 3.0), 1);
    dedupe_free(d);
}

/* A set of 3 filled 50 times: each eviction must unlink only the oldest id from its chain. */
static void test_chains_survive_eviction(void **state)
{
    char key[32];
    struct dedupe *d = dedupe_new(3, 1e9);
    (void)state;
    for (int round = 0; round < 50; round++) {
        snprintf(key, sizeof key, "k%d", round);
        assert_int_equal(dedupe_check_add(d, key, (double)round), 0);
        for (int back = 0; back < 3 && back <= round; back++) {
            snprintf(key, sizeof key, "k%d", round - back);
            assert_int_equal(dedupe_contains(d, key, (double)round), 1);
        }
        if (round >= 3) {
            snprintf(key, sizeof key, "k%d", round - 3);
            assert_int_equal(dedupe_contains(d, key, (double)round), 0);
        }
    }
    dedupe_free(d);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(dedupe_new(0, 10));
    assert_null(dedupe_new(10, 0));
    dedupe_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redelivery_is_seen),      cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_bound_evicts_oldest),     cmocka_unit_test(test_add_is_idempotent),
        cmocka_unit_test(test_chains_survive_eviction), cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
