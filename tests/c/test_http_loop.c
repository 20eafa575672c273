/* test_http_loop.c — http.c on a real loop without any network: a refused port, and a listening
 * socket that never answers. Checks that done callbacks are deferred and run exactly once,
 * that retries are bounded, that cancel and shutdown behave, and that uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "http/http.h"

struct seen {
    int calls;
    enum http_err err;
    int attempts;
    char code[64];
};

static void on_done(const struct http_result *r, void *arg)
{
    struct seen *s = arg;
    s->calls++;
    s->err = r->err;
    s->attempts = r->attempts;
    snprintf(s->code, sizeof s->code, "%s", r->code ? r->code : "");
}

/* A TCP port on 127.0.0.1: listening (never accepting, never answering) or closed. */
static int tcp_port(int keep_listening, int *fd_out)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    if (keep_listening) {
        *fd_out = fd;
    } else {
        close(fd);
    }
    return ntohs(a.sin_port);
}

static char api_base[64];

static void start(int port, int max_retries, double timeout)
{
    struct http_settings s;
    memset(&s, 0, sizeof s);
    snprintf(api_base, sizeof api_base, "http://127.0.0.1:%d/api", port);
    s.api_base = api_base;
    s.max_retries = max_retries;
    s.timeout = timeout;
    s.connect_timeout = 10;
    s.max_concurrent = 1;
    s.max_retry_time = 120;
    s.download_max_bytes = 1 << 20;
    s.download_concurrency = 1;
    s.download_timeout = 30;
    assert_int_equal(loop_init(), 0);
    assert_int_equal(http_init(&s), 0);
}

static void finish(void)
{
    http_shutdown();
    assert_int_equal(loop_close(), 0);
}

static void test_connect_error_is_deferred(void **state)
{
    struct seen s = {0};
    (void)state;
    start(tcp_port(0, NULL), 0, 5);
    assert_non_null(http_api("auth.test", "xoxb-test-bot", NULL, 0, NULL, on_done, &s));
    assert_int_equal(s.calls, 0); /* never called from inside http_api */
    assert_int_equal(http_in_flight(), 1);
    loop_run();
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.err, HTTP_ERR_CONNECT);
    assert_string_equal(s.code, "connect");
    assert_int_equal(s.attempts, 1);
    assert_int_equal(http_in_flight(), 0);
    finish();
}

static void test_retries_are_bounded(void **state)
{
    struct seen s = {0};
    (void)state;
    start(tcp_port(0, NULL), 2, 5);
    assert_non_null(http_api("auth.test", "xoxb-test-bot", "a=1", 3, NULL, on_done, &s));
    loop_run();
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.err, HTTP_ERR_CONNECT);
    assert_int_equal(s.attempts, 3);
    finish();
}

static void test_timeout(void **state)
{
    struct seen s = {0};
    int fd;
    (void)state;
    start(tcp_port(1, &fd), 0, 0.3);
    assert_non_null(http_api("auth.test", "xoxb-test-bot", NULL, 0, NULL, on_done, &s));
    loop_run();
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.err, HTTP_ERR_TIMEOUT);
    assert_string_equal(s.code, "timeout");
    close(fd);
    finish();
}

static void test_cancel_never_calls_done(void **state)
{
    struct seen s = {0}, t = {0};
    (void)state;
    start(tcp_port(0, NULL), 0, 5);
    struct http_call *c = http_api("auth.test", "xoxb-test-bot", NULL, 0, NULL, on_done, &s);
    assert_non_null(c);
    assert_non_null(http_api("chat.postMessage", "xoxb-test-bot", NULL, 0, NULL, on_done, &t));
    http_cancel(c);
    http_cancel(NULL);
    loop_run();
    assert_int_equal(s.calls, 0);
    assert_int_equal(t.calls, 1); /* the other call went on */
    finish();
}

static void shutdown_now(void *arg)
{
    (void)arg;
    http_shutdown();
}

static void test_shutdown_cancels_everything(void **state)
{
    struct seen a = {0}, b = {0}, d = {0};
    int fd;
    char url[128];
    (void)state;
    int port = tcp_port(1, &fd);
    start(port, 0, 30);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/files/x", port);
    /* max_concurrent 1: a runs (and hangs), b waits in the queue */
    assert_non_null(http_api("auth.test", "xoxb-test-bot", NULL, 0, NULL, on_done, &a));
    assert_non_null(http_api("users.info", "xoxb-test-bot", NULL, 0, NULL, on_done, &b));
    assert_non_null(
        http_download(url, "xoxb-test-bot", "/tmp/pmb-test-http-loop.bin", 0, 0, on_done, &d));
    loop_timer_start(0.2, shutdown_now, NULL);
    loop_run();
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, HTTP_ERR_CANCELLED);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.err, HTTP_ERR_CANCELLED);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.err, HTTP_ERR_CANCELLED);
    assert_int_equal(access("/tmp/pmb-test-http-loop.bin", F_OK), -1); /* nothing left behind */
    /* after shutdown nothing new starts */
    assert_null(http_api("auth.test", "xoxb-test-bot", NULL, 0, NULL, on_done, &a));
    close(fd);
    assert_int_equal(loop_close(), 0);
}

static void test_download_into_missing_dir(void **state)
{
    struct seen s = {0};
    int fd;
    char url[128];
    (void)state;
    int port = tcp_port(1, &fd);
    start(port, 0, 5);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/files/x", port);
    assert_non_null(http_download(url, NULL, "/nonexistent-pmb-dir/a/b.bin", 0, 0, on_done, &s));
    assert_int_equal(s.calls, 0);
    loop_run();
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.err, HTTP_ERR_IO);
    close(fd);
    finish();
}

static void test_misuse_returns_null(void **state)
{
    struct seen s = {0};
    struct http_header bad[] = {{"X-Evil", "a\r\nAuthorization: Bearer xoxb-test-bot"}};
    struct http_header bad_name[] = {{"X-A: b", "c"}};
    struct http_plain_req r;
    (void)state;
    start(tcp_port(0, NULL), 0, 5);
    assert_null(http_api("chat.postMessage?token=x", "xoxb-test-bot", NULL, 0, NULL, on_done, &s));
    assert_null(http_api("../../evil", "xoxb-test-bot", NULL, 0, NULL, on_done, &s));
    assert_null(http_download("file:///etc/passwd", NULL, "/tmp/x", 0, 0, on_done, &s));
    assert_null(http_download("ftp://x/y", NULL, "/tmp/x", 0, 0, on_done, &s));
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.url = "http://127.0.0.1:1/hook";
    r.headers = bad;
    r.n_headers = 1;
    assert_null(http_request(&r, on_done, &s));
    r.headers = bad_name;
    assert_null(http_request(&r, on_done, &s));
    r.headers = NULL;
    r.n_headers = 0;
    r.method = "get me";
    assert_null(http_request(&r, on_done, &s));
    assert_int_equal(http_in_flight(), 0);
    loop_run();
    assert_int_equal(s.calls, 0);
    finish();
}

/* The schema owns every default: a value out of range is refused, never replaced by a number
 * of http.c's own (the "0 means the default" convention is gone). */
static void test_settings_out_of_range_refused(void **state)
{
    struct http_settings s;
    (void)state;
    memset(&s, 0, sizeof s);
    s.api_base = "http://127.0.0.1:1/api/";
    s.timeout = 5;
    s.connect_timeout = 5;
    s.max_concurrent = 1;
    s.max_retry_time = 10;
    s.download_max_bytes = 1;
    s.download_concurrency = 1;
    s.download_timeout = 0; /* out of range */
    assert_int_equal(loop_init(), 0);
    assert_int_equal(http_init(&s), -1);
    s.download_timeout = 1;
    s.max_retries = -1; /* out of range: 0 is "none" */
    assert_int_equal(http_init(&s), -1);
    s.max_retries = 0;
    assert_int_equal(http_init(&s), 0);
    s.max_concurrent = 0;
    assert_int_equal(http_configure(&s), -1); /* a reload that breaks a limit keeps the old ones */
    finish();
}

int main(void)
{
    /* One test per process when asked (tests/torture/run_torture.py): a test that an allocation
     * failure ends early leaves its handles on the loop, which the next test must not inherit. */
    const char *only = getenv("PMB_TEST_ONLY");
    if (only && *only) {
        cmocka_set_test_filter(only);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_error_is_deferred),
        cmocka_unit_test(test_retries_are_bounded),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_cancel_never_calls_done),
        cmocka_unit_test(test_shutdown_cancels_everything),
        cmocka_unit_test(test_download_into_missing_dir),
        cmocka_unit_test(test_misuse_returns_null),
        cmocka_unit_test(test_settings_out_of_range_refused),
    };
    log_set_level(LOG_ERROR);
    json_init();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_shutdown();
    metrics_shutdown();
    return rc;
}
