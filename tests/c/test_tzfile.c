/* test_tzfile.c — tzfile.c against glibc: for 44 zones (30-minute DST, 45-minute offsets, negative
 * DST, permanent DST, a zone that skipped a day, leap-year rules) and instants from 1900 to 2100,
 * the offset, abbreviation and DST flag must equal localtime_r's under setenv("TZ") (done only
 * here). Instants: a sample every ~2 days at a varying time of day, and at every transition the
 * samples reveal (found to the second by bisection) the second before, of and after it, and an hour
 * either side. Also the zone-name checks and the cache's eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/tzfile.h"

static const char *const test_zones[] = {
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/St_Johns",
    "Africa/Casablanca",
    "Antarctica/Troll",
    "UTC",
    "Etc/GMT+5",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Moscow",
    "Asia/Tokyo",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Asia/Jerusalem",
    "Asia/Gaza",
    "America/Sao_Paulo",
    "America/Santiago",
    "America/Nuuk",
    "America/Los_Angeles",
    "America/Phoenix",
    "America/Havana",
    "America/Asuncion",
    "America/Caracas",
    "America/Mexico_City",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Pacific/Auckland",
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "Pacific/Honolulu",
    "Africa/Cairo",
    "Europe/Lisbon",
    "Atlantic/Azores",
    "Etc/GMT-14",
    "US/Eastern",
    "Asia/Dhaka",
    "Europe/Kyiv",
    "America/Scoresbysund",
    "Pacific/Tongatapu",
    "Asia/Pyongyang",
    "EST5EDT",
};

#define TEST_FROM ((time_t)-2208988800LL) /* 1900-01-01 */
#define TEST_TO ((time_t)4102444800LL)    /* 2100-01-01 */

struct test_counts {
    long instants, transitions, mismatches;
};

struct test_local {
    long utoff;
    int isdst;
    char abbrev[16];
};

static void test_glibc(time_t t, struct test_local *out)
{
    struct tm tm;
    assert_non_null(localtime_r(&t, &tm));
    out->utoff = tm.tm_gmtoff;
    out->isdst = tm.tm_isdst > 0;
    snprintf(out->abbrev, sizeof out->abbrev, "%s", tm.tm_zone ? tm.tm_zone : "");
}

static int test_same(const struct test_local *a, const struct test_local *b)
{
    return a->utoff == b->utoff && a->isdst == b->isdst && strcmp(a->abbrev, b->abbrev) == 0;
}

/* One instant: ours against glibc's (TZ is set to zone). */
static void test_compare(const char *zone, time_t t, struct test_counts *c)
{
    struct test_local want;
    struct tzfile_local got;
    test_glibc(t, &want);
    assert_int_equal(tzfile_lookup(zone, (int64_t)t, &got), 0);
    c->instants++;
    if (want.utoff != got.utoff || want.isdst != got.isdst || strcmp(want.abbrev, got.abbrev)) {
        if (c->mismatches++ < 10) {
            print_message("%s at %lld: glibc %ld %d %s, tzfile %ld %d %s\n", zone, (long long)t,
                          want.utoff, want.isdst, want.abbrev, (long)got.utoff, got.isdst,
                          got.abbrev);
        }
    }
}

/* The first second after lo at which glibc's answer differs from its answer at lo (lo < hi, and
 * the answers at lo and hi differ). */
static time_t test_bisect(time_t lo, time_t hi)
{
    struct test_local at_lo, mid_l;
    test_glibc(lo, &at_lo);
    while (hi - lo > 1) {
        time_t mid = lo + (hi - lo) / 2;
        test_glibc(mid, &mid_l);
        if (test_same(&mid_l, &at_lo)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return hi;
}

static void test_zone(const char *zone, struct test_counts *c)
{
    struct test_local prev, cur;
    time_t t = TEST_FROM, prev_t;
    unsigned step = 0;

    setenv("TZ", zone, 1);
    tzset();
    test_glibc(t, &prev);
    test_compare(zone, t, c);
    while (t < TEST_TO) {
        prev_t = t;
        /* about two days, never the same time of day twice in a row */
        t += 2 * 86400 + (time_t)((step++ * 7919u) % 86400u);
        test_glibc(t, &cur);
        test_compare(zone, t, c);
        if (!test_same(&prev, &cur)) {
            time_t at = test_bisect(prev_t, t);
            static const int around[] = {-3600, -1, 0, 1, 3600};
            for (size_t i = 0; i < sizeof around / sizeof around[0]; i++) {
                test_compare(zone, at + around[i], c);
            }
            c->transitions++;
        }
        prev = cur;
    }
}

static void test_differential_against_glibc(void **state)
{
    struct test_counts c = {0, 0, 0};
    size_t n = sizeof test_zones / sizeof test_zones[0];
    (void)state;
    for (size_t i = 0; i < n; i++) {
        test_zone(test_zones[i], &c);
    }
    unsetenv("TZ");
    tzset();
    print_message("tzfile vs glibc: %zu zones, %ld instants, %ld transitions, %ld mismatches\n", n,
                  c.instants, c.transitions, c.mismatches);
    assert_true(c.transitions > 5000);
    assert_int_equal(c.mismatches, 0);
}

static void test_known_answers(void **state)
{
    struct tzfile_local l;
    (void)state;
    /* 2024-07-01 12:00 UTC */
    assert_int_equal(tzfile_lookup("Europe/Berlin", 1719835200, &l), 0);
    assert_int_equal(l.utoff, 7200);
    assert_int_equal(l.isdst, 1);
    assert_string_equal(l.abbrev, "CEST");
    assert_int_equal(tzfile_lookup("Asia/Kolkata", 1719835200, &l), 0);
    assert_int_equal(l.utoff, 19800);
    assert_string_equal(l.abbrev, "IST");
    /* 2090-01-15, past the file's last transition: the footer's rule (southern summer) */
    assert_int_equal(tzfile_lookup("Australia/Lord_Howe", 3788121600LL, &l), 0);
    assert_int_equal(l.utoff, 11 * 3600);
    assert_int_equal(l.isdst, 1);
}

static void test_zone_names(void **state)
{
    struct tzfile_local l;
    (void)state;
    assert_true(tzfile_valid_zone("UTC"));
    assert_true(tzfile_valid_zone("Europe/Paris"));
    assert_true(tzfile_valid_zone("US/Eastern")); /* a link inside the folder */
    assert_false(tzfile_valid_zone("Mars/Olympus_Mons"));
    assert_false(tzfile_valid_zone("../../etc/passwd"));
    assert_false(tzfile_valid_zone("Europe/../../../etc/passwd"));
    assert_false(tzfile_valid_zone("/etc/localtime"));
    assert_false(tzfile_valid_zone(""));
    assert_false(tzfile_valid_zone("Europe")); /* a directory, not a zone */
    assert_false(tzfile_valid_zone("Europe/Berlin\n"));
    assert_false(tzfile_valid_zone("zone.tab")); /* a character outside the zone names' set */
    assert_int_equal(tzfile_lookup("Mars/Olympus_Mons", 0, &l), -1);
    assert_int_equal(tzfile_lookup("../../etc/passwd", 0, &l), -1);
    assert_int_equal(tzfile_lookup("iso3166", 0, &l), -1); /* not a file: no such zone */
}

static void test_cache_evicts_and_reloads(void **state)
{
    struct tzfile_local a, b;
    size_t n = sizeof test_zones / sizeof test_zones[0];
    (void)state;
    tzfile_clear_cache();
    assert_int_equal(tzfile_lookup("Europe/Berlin", 1719835200, &a), 0);
    /* more zones than the cache holds: Berlin is evicted, then read again */
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(tzfile_lookup(test_zones[i], 1719835200, &b), 0);
        }
    }
    assert_int_equal(tzfile_lookup("Europe/Berlin", 1719835200, &b), 0);
    assert_int_equal(a.utoff, b.utoff);
    assert_string_equal(a.abbrev, b.abbrev);
    tzfile_clear_cache();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_zone_names),
        cmocka_unit_test(test_cache_evicts_and_reloads),
        cmocka_unit_test(test_differential_against_glibc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
