/* test_ratelimit.c — unit tests for ratelimit.c: Retry-After parsing, backoff with full jitter,
 * retry budgets, per-method gates (with single-file recovery) and the token allow-list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "http/ratelimit.h"

/* "Wed, 21 Oct 2015 07:28:00 GMT" */
#define DATE_EPOCH 1445412480.0

static void test_retry_after_seconds(void **state)
{
    (void)state;
    assert_true(ratelimit_retry_after("120", 0) == 120.0);
    assert_true(ratelimit_retry_after(" 5 ", 0) == 5.0);
    assert_true(ratelimit_retry_after("0", 0) == 0.0);
    assert_true(ratelimit_retry_after("60\r\n", 0) == 60.0);
}

static void test_retry_after_missing_or_invalid(void **state)
{
    (void)state;
    assert_true(ratelimit_retry_after(NULL, 0) == RATELIMIT_DEFAULT_RETRY_AFTER);
    assert_true(ratelimit_retry_after("", 0) == RATELIMIT_DEFAULT_RETRY_AFTER);
    assert_true(ratelimit_retry_after("   ", 0) == RATELIMIT_DEFAULT_RETRY_AFTER);
    assert_true(ratelimit_retry_after("soon", 0) == RATELIMIT_DEFAULT_RETRY_AFTER);
    assert_true(ratelimit_retry_after("1.5", 0) == RATELIMIT_DEFAULT_RETRY_AFTER);
    assert_true(ratelimit_retry_after("-3", 0) == RATELIMIT_DEFAULT_RETRY_AFTER);
    assert_true(ratelimit_retry_after("12abc", 0) == RATELIMIT_DEFAULT_RETRY_AFTER);
    assert_true(ratelimit_retry_after("Wed, 41 Oct 2015 07:28:00 GMT", DATE_EPOCH) ==
                RATELIMIT_DEFAULT_RETRY_AFTER);
    assert_true(ratelimit_retry_after("Wed, 21 Oct 2015 07:28:00 PST", DATE_EPOCH) ==
                RATELIMIT_DEFAULT_RETRY_AFTER);
}

static void test_retry_after_clamped(void **state)
{
    (void)state;
    assert_true(ratelimit_retry_after("86400", 0) == RATELIMIT_MAX_RETRY_AFTER);
    assert_true(ratelimit_retry_after("99999999999999999999", 0) == RATELIMIT_MAX_RETRY_AFTER);
}

static void test_retry_after_http_date(void **state)
{
    (void)state;
    assert_true(ratelimit_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", DATE_EPOCH - 10) == 10.0);
    /* a date in the past: go now */
    assert_true(ratelimit_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", DATE_EPOCH + 50) == 0.0);
    /* far future: clamped */
    assert_true(ratelimit_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", DATE_EPOCH - 5000) ==
                RATELIMIT_MAX_RETRY_AFTER);
}

static void test_backoff_full_jitter(void **state)
{
    (void)state;
    /* ceiling doubles per retry: 0.5, 1, 2, 4 ... capped */
    assert_true(ratelimit_backoff(1, 0.5, 30, 0.5) == 0.25);
    assert_true(ratelimit_backoff(2, 0.5, 30, 0.5) == 0.5);
    assert_true(ratelimit_backoff(3, 0.5, 30, 0.5) == 1.0);
    assert_true(ratelimit_backoff(5, 0.5, 30, 0.5) == 4.0);
    /* full jitter: a zero draw means no wait, the top draw stays under the ceiling */
    assert_true(ratelimit_backoff(4, 0.5, 30, 0.0) == 0.0);
    assert_true(ratelimit_backoff(4, 0.5, 30, 0.999) < 4.0);
    assert_true(ratelimit_backoff(4, 0.5, 30, 0.999) > 3.9);
    /* the cap bounds it however many retries */
    assert_true(ratelimit_backoff(50, 0.5, 30, 0.999) <= 30.0);
    assert_true(ratelimit_backoff(50, 0.5, 30, 0.999) > 29.0);
    assert_true(ratelimit_backoff(1000000, 0.5, 30, 0.5) == 15.0);
}

static void test_may_retry_budgets(void **state)
{
    (void)state;
    /* count budget */
    assert_true(ratelimit_may_retry(0, 5, 100, 101, 1, 120));
    assert_true(ratelimit_may_retry(4, 5, 100, 101, 1, 120));
    assert_false(ratelimit_may_retry(5, 5, 100, 101, 1, 120));
    assert_false(ratelimit_may_retry(0, 0, 100, 101, 1, 120));
    /* time budget: the retry would start after started + max_retry_time */
    assert_true(ratelimit_may_retry(1, 5, 100, 200, 20, 120));
    assert_false(ratelimit_may_retry(1, 5, 100, 200, 21, 120));
    assert_false(ratelimit_may_retry(1, 5, 100, 221, 0, 120));
}

static void test_gates_per_method(void **state)
{
    (void)state;
    struct ratelimit_gates *g = ratelimit_gates_new();
    assert_non_null(g);
    assert_true(ratelimit_gate_open_at(g, "chat.postMessage", 5) == 0);
    assert_int_equal(ratelimit_gate_close(g, "conversations.replies", 10), 0);
    assert_true(ratelimit_gate_open_at(g, "conversations.replies", 5) == 10);
    /* other methods flow */
    assert_true(ratelimit_gate_open_at(g, "chat.postMessage", 5) == 0);
    /* an earlier deadline never shortens the gate; a later one extends it */
    ratelimit_gate_close(g, "conversations.replies", 8);
    assert_true(ratelimit_gate_open_at(g, "conversations.replies", 5) == 10);
    ratelimit_gate_close(g, "conversations.replies", 12);
    assert_true(ratelimit_gate_open_at(g, "conversations.replies", 11) == 12);
    /* opens at its time */
    assert_true(ratelimit_gate_open_at(g, "conversations.replies", 12) == 0);
    ratelimit_gates_free(g);
}

static void test_gates_single_file_until_cleared(void **state)
{
    (void)state;
    struct ratelimit_gates *g = ratelimit_gates_new();
    assert_false(ratelimit_gate_single(g, "users.info"));
    ratelimit_gate_close(g, "users.info", 10);
    ratelimit_gate_close(g, "files.info", 10);
    assert_true(ratelimit_gate_single(g, "users.info"));
    /* still single file after the gate opened, until an answer that is not a 429 */
    assert_true(ratelimit_gate_open_at(g, "users.info", 11) == 0);
    assert_true(ratelimit_gate_single(g, "users.info"));
    ratelimit_gate_clear(g, "users.info");
    assert_false(ratelimit_gate_single(g, "users.info"));
    assert_true(ratelimit_gate_open_at(g, "users.info", 0) == 0);
    /* clearing one method leaves the others alone */
    assert_true(ratelimit_gate_single(g, "files.info"));
    assert_true(ratelimit_gate_open_at(g, "files.info", 0) == 10);
    ratelimit_gate_clear(g, "never.seen");
    ratelimit_gates_free(g);
}

static void test_allow_list(void **state)
{
    (void)state;
    const char *pats[] = {"slack.com", "*.slack.com", "127.0.0.1:8080", "*.example.org:8443"};
    size_t n = 4;
    assert_true(ratelimit_host_allowed("slack.com", pats, n));
    assert_true(ratelimit_host_allowed("files.slack.com", pats, n));
    assert_true(ratelimit_host_allowed("a.b.slack.com", pats, n));
    assert_true(ratelimit_host_allowed("FILES.SLACK.COM", pats, n));
    assert_true(ratelimit_host_allowed("127.0.0.1:8080", pats, n));
    assert_true(ratelimit_host_allowed("x.example.org:8443", pats, n));
    /* look-alikes */
    assert_false(ratelimit_host_allowed("evilslack.com", pats, n));
    assert_false(ratelimit_host_allowed("slack.com.evil.com", pats, n));
    assert_false(ratelimit_host_allowed("files.slack.com.evil.com", pats, n));
    assert_false(ratelimit_host_allowed("slack-edge.com", pats, n));
    /* ports must match exactly; a pattern without a port never matches an explicit one */
    assert_false(ratelimit_host_allowed("files.slack.com:8443", pats, n));
    assert_false(ratelimit_host_allowed("127.0.0.1:8081", pats, n));
    assert_false(ratelimit_host_allowed("127.0.0.1", pats, n));
    assert_false(ratelimit_host_allowed("example.org:8443", pats, n));
    assert_false(ratelimit_host_allowed("x.example.org", pats, n));
    /* nothing */
    assert_false(ratelimit_host_allowed("", pats, n));
    assert_false(ratelimit_host_allowed(NULL, pats, n));
    assert_false(ratelimit_host_allowed("slack.com", pats, 0));
}

static void test_allow_list_wildcard_needs_a_label(void **state)
{
    (void)state;
    const char *pats[] = {"*.slack.com"};
    assert_false(ratelimit_host_allowed("slack.com", pats, 1));
    assert_false(ratelimit_host_allowed(".slack.com", pats, 1));
    assert_true(ratelimit_host_allowed("x.slack.com", pats, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after_seconds),
        cmocka_unit_test(test_retry_after_missing_or_invalid),
        cmocka_unit_test(test_retry_after_clamped),
        cmocka_unit_test(test_retry_after_http_date),
        cmocka_unit_test(test_backoff_full_jitter),
        cmocka_unit_test(test_may_retry_budgets),
        cmocka_unit_test(test_gates_per_method),
        cmocka_unit_test(test_gates_single_file_until_cleared),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_allow_list_wildcard_needs_a_label),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
