/* test_log.c — unit tests for log.c: token redaction and the logfmt line shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "base/log.h"

static char test_log_last[8192];

static void test_log_capture(const char *line, size_t len, void *arg)
{
    (void)arg;
    if (len >= sizeof test_log_last) {
        len = sizeof test_log_last - 1;
    }
    memcpy(test_log_last, line, len);
    test_log_last[len] = '\0';
}

static void test_redacts_token_shapes(void **state)
{
    char out[256];
    (void)state;
    log_redact("token=xoxb-123-456-abcDEF end", 29, out, sizeof out);
    assert_string_equal(out, "token=xoxb-*** end");
    log_redact("xapp-1-A02-99 and xoxp-9", 24, out, sizeof out);
    assert_string_equal(out, "xapp-*** and xoxp-***");
}

static void test_keeps_ordinary_words(void **state)
{
    char out[256];
    (void)state;
    const char *in = "boxoxb-thing is not a token start; maxapp-x neither";
    log_redact(in, strlen(in), out, sizeof out);
    assert_string_equal(out, in);
    /* a bare prefix names a kind of token in a hint and holds nothing secret */
    const char *hint = "check SLACK_APP_TOKEN (an xapp- token with connections:write)";
    log_redact(hint, strlen(hint), out, sizeof out);
    assert_string_equal(out, hint);
}

static void test_redacts_configured_secret(void **state)
{
    char out[256];
    (void)state;
    log_add_secret("s3cr3t-value-long");
    const char *in = "url=https://x/?t=s3cr3t-value-long&a=1";
    log_redact(in, strlen(in), out, sizeof out);
    assert_string_equal(out, "url=https://x/?t=[redacted]&a=1");
}

static void test_line_is_logfmt_and_redacted(void **state)
{
    (void)state;
    log_set_sink(test_log_capture, NULL);
    log_event(LOG_WARN, "retrying call", "method", "chat.postMessage", "auth", "Bearer xoxb-1-2-3",
              "note", "has \"quotes\" and\nnewline", NULL);
    log_set_sink(NULL, NULL);
    assert_non_null(strstr(test_log_last, " level=warn msg=\"retrying call\" "));
    assert_non_null(strstr(test_log_last, "method=chat.postMessage"));
    assert_non_null(strstr(test_log_last, "auth=\"Bearer xoxb-***\""));
    assert_non_null(strstr(test_log_last, "note=\"has \\\"quotes\\\" and\\nnewline\""));
    assert_null(strstr(test_log_last, "xoxb-1"));
    assert_int_equal(test_log_last[strlen(test_log_last) - 1], '\n');
    assert_int_equal(strncmp(test_log_last, "ts=", 3), 0);
}

static void test_level_filter(void **state)
{
    (void)state;
    test_log_last[0] = '\0';
    log_set_sink(test_log_capture, NULL);
    log_set_level(LOG_WARN);
    log_event(LOG_INFO, "quiet", NULL);
    assert_string_equal(test_log_last, "");
    log_event(LOG_ERROR, "loud", NULL);
    assert_non_null(strstr(test_log_last, "msg=loud"));
    log_set_level(LOG_INFO);
    log_set_sink(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redacts_token_shapes),
        cmocka_unit_test(test_keeps_ordinary_words),
        cmocka_unit_test(test_redacts_configured_secret),
        cmocka_unit_test(test_line_is_logfmt_and_redacted),
        cmocka_unit_test(test_level_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
