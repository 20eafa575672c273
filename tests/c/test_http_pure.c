/* test_http_pure.c — unit tests for the pure parts of the HTTP client (http_pure.c and
 * http_err_code): form escaping, URL host:port keys for the allow-list, redirect resolution, log
 * redaction, status/header line parsing, login-page detection, Web API method names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "http/http_pure.h"

static void test_form_escape(void **state)
{
    (void)state;
    char *s = http_form_escape("a b&c=d/\xc3\xa9+%~", 13);
    assert_string_equal(s, "a+b%26c%3Dd%2F%C3%A9%2B%25%7E");
    free(s);
    s = http_form_escape("keep-._*AZaz09", 14);
    assert_string_equal(s, "keep-._*AZaz09");
    free(s);
    /* the length is honoured, NULs included */
    s = http_form_escape("x\0y", 3);
    assert_string_equal(s, "x%00y");
    free(s);
    s = http_form_escape("", 0);
    assert_string_equal(s, "");
    free(s);
    /* newlines cannot break a form body */
    s = http_form_escape("a\r\nb", 4);
    assert_string_equal(s, "a%0D%0Ab");
    free(s);
}

static void test_hostport(void **state)
{
    char b[128];
    (void)state;
    assert_int_equal(
        http_pure_hostport("https://files.slack.com/files-pri/T1-F1/x.png?t=1", b, sizeof b), 0);
    assert_string_equal(b, "files.slack.com");
    /* lowercased; the scheme's default port counts as no port */
    assert_int_equal(http_pure_hostport("https://Files.Slack.COM:443/x", b, sizeof b), 0);
    assert_string_equal(b, "files.slack.com");
    assert_int_equal(http_pure_hostport("http://slack.com:80/x", b, sizeof b), 0);
    assert_string_equal(b, "slack.com");
    /* an explicit other port is part of the key */
    assert_int_equal(http_pure_hostport("http://127.0.0.1:8080/api/", b, sizeof b), 0);
    assert_string_equal(b, "127.0.0.1:8080");
    assert_int_equal(http_pure_hostport("https://files.slack.com:8443/x", b, sizeof b), 0);
    assert_string_equal(b, "files.slack.com:8443");
    /* userinfo does not fool it */
    assert_int_equal(http_pure_hostport("https://files.slack.com@evil.example/x", b, sizeof b), 0);
    assert_string_equal(b, "evil.example");
    assert_int_equal(http_pure_hostport("https://files.slack.com.evil.example/x", b, sizeof b), 0);
    assert_string_equal(b, "files.slack.com.evil.example");
    /* garbage */
    assert_int_equal(http_pure_hostport("not a url", b, sizeof b), -1);
    assert_int_equal(http_pure_hostport("http://", b, sizeof b), -1);
    /* too small a buffer is an error, not a truncated host */
    assert_int_equal(http_pure_hostport("https://files.slack.com/", b, 5), -1);
}

static void test_scheme_ok(void **state)
{
    (void)state;
    assert_true(http_pure_scheme_ok("https://files.slack.com/x"));
    assert_true(http_pure_scheme_ok("HTTP://127.0.0.1/"));
    assert_false(http_pure_scheme_ok("ftp://x/y"));
    assert_false(http_pure_scheme_ok("file:///etc/passwd"));
    assert_false(http_pure_scheme_ok("javascript:alert(1)"));
    assert_false(http_pure_scheme_ok(NULL));
}

static void test_resolve(void **state)
{
    char *u;
    (void)state;
    u = http_pure_resolve("https://files.slack.com/a/b/c", "/d?x=1");
    assert_string_equal(u, "https://files.slack.com/d?x=1");
    free(u);
    u = http_pure_resolve("https://files.slack.com/a/b/c", "e");
    assert_string_equal(u, "https://files.slack.com/a/b/e");
    free(u);
    u = http_pure_resolve("https://files.slack.com/a", "https://files-origin.slack.com:8443/z");
    assert_string_equal(u, "https://files-origin.slack.com:8443/z");
    free(u);
    u = http_pure_resolve("https://files.slack.com/a", "//cdn.slack-edge.com/q");
    assert_string_equal(u, "https://cdn.slack-edge.com/q");
    free(u);
    u = http_pure_resolve("https://files.slack.com/a", "ftp://x/y");
    assert_non_null(u);
    assert_false(http_pure_scheme_ok(u)); /* resolved, then refused by the scheme check */
    free(u);
}

static void test_redact_url(void **state)
{
    char b[256];
    (void)state;
    http_pure_redact_url("wss://wss-primary.slack.com/link/?ticket=abc-SECRET&app_id=A1", b,
                         sizeof b);
    assert_string_equal(b, "wss://wss-primary.slack.com/link/?redacted");
    http_pure_redact_url("https://user:pw@files.slack.com/x/y.png#frag", b, sizeof b);
    assert_string_equal(b, "https://files.slack.com/x/y.png");
    assert_null(strstr(b, "pw"));
    http_pure_redact_url("https://slack.com/api/chat.postMessage", b, sizeof b);
    assert_string_equal(b, "https://slack.com/api/chat.postMessage");
    /* a short buffer is still NUL-terminated and never shows the query */
    http_pure_redact_url("https://x.slack.com/abcdef?ticket=SECRET", b, 12);
    assert_int_equal(strlen(b), 11);
    assert_null(strstr(b, "SECRET"));
}

static void test_status_line(void **state)
{
    (void)state;
    assert_int_equal(http_pure_status_line("HTTP/1.1 200 OK\r\n", 17), 200);
    assert_int_equal(http_pure_status_line("HTTP/2 404\r\n", 12), 404);
    assert_int_equal(http_pure_status_line("HTTP/1.1 429 Too Many Requests\r\n", 32), 429);
    assert_int_equal(http_pure_status_line("HTTP/1.0 100 Continue\r\n", 23), 100);
    assert_int_equal(http_pure_status_line("Content-Type: text/html\r\n", 25), -1);
    assert_int_equal(http_pure_status_line("HTTP/1.1 20\r\n", 13), -1);
    assert_int_equal(http_pure_status_line("HTTP/1.1 2000\r\n", 15), -1);
    assert_int_equal(http_pure_status_line("HTTP", 4), -1);
}

static void test_header_line(void **state)
{
    char *n, *v;
    (void)state;
    const char *l = "Content-Type:  text/html; charset=utf-8 \r\n";
    assert_int_equal(http_pure_header_line(l, strlen(l), &n, &v), 0);
    assert_string_equal(n, "content-type");
    assert_string_equal(v, "text/html; charset=utf-8");
    free(n);
    free(v);
    l = "Retry-After:30\r\n";
    assert_int_equal(http_pure_header_line(l, strlen(l), &n, &v), 0);
    assert_string_equal(n, "retry-after");
    assert_string_equal(v, "30");
    free(n);
    free(v);
    l = "X-Empty:\r\n";
    assert_int_equal(http_pure_header_line(l, strlen(l), &n, &v), 0);
    assert_string_equal(n, "x-empty");
    assert_string_equal(v, "");
    free(n);
    free(v);
    l = "no colon here\r\n";
    assert_int_equal(http_pure_header_line(l, strlen(l), &n, &v), -1);
    l = ": no name\r\n";
    assert_int_equal(http_pure_header_line(l, strlen(l), &n, &v), -1);
}

static void test_login_page(void **state)
{
    (void)state;
    assert_true(http_pure_is_html("text/html"));
    assert_true(http_pure_is_html("TEXT/HTML; charset=utf-8"));
    assert_false(http_pure_is_html("text/htmlx"));
    assert_false(http_pure_is_html("application/octet-stream"));
    assert_false(http_pure_is_html(NULL));
    /* 200 text/html where a file was expected */
    assert_true(http_pure_is_login_page(200, "text/html; charset=utf-8", "", 0));
    /* no content type: sniff the body */
    const char *doc = "\xef\xbb\xbf  \n<!DOCTYPE html><html><title>Slack</title>";
    assert_true(http_pure_is_login_page(200, NULL, doc, strlen(doc)));
    assert_true(http_pure_is_login_page(200, "", "<HTML><body>", 12));
    assert_false(http_pure_is_login_page(200, NULL, "%PDF-1.7", 8));
    assert_false(http_pure_is_login_page(200, NULL, "", 0));
    /* a declared non-HTML type is trusted */
    assert_false(http_pure_is_login_page(200, "text/plain", "<html>", 6));
    assert_false(http_pure_is_login_page(200, "image/png", "\x89PNG", 4));
    /* not a 2xx: that is an HTTP status error, not a login page */
    assert_false(http_pure_is_login_page(404, "text/html", "<html>", 6));
    assert_false(http_pure_is_login_page(302, "text/html", "<html>", 6));
}

static void test_valid_method(void **state)
{
    (void)state;
    assert_true(http_pure_valid_method("chat.postMessage"));
    assert_true(http_pure_valid_method("apps.connections.open"));
    assert_true(http_pure_valid_method("admin.users_session-x"));
    assert_false(http_pure_valid_method(""));
    assert_false(http_pure_valid_method(NULL));
    assert_false(http_pure_valid_method("chat.postMessage?x=1"));
    assert_false(http_pure_valid_method("../oauth"));
    assert_false(http_pure_valid_method("a b"));
    assert_false(http_pure_valid_method("https://evil.example/"));
}

static void test_err_codes(void **state)
{
    (void)state;
    /* the codes Lua sees (docs/lua-api.md) */
    assert_string_equal(http_err_code(HTTP_OK), "ok");
    assert_string_equal(http_err_code(HTTP_ERR_STATUS), "http_status");
    assert_string_equal(http_err_code(HTTP_ERR_TIMEOUT), "timeout");
    assert_string_equal(http_err_code(HTTP_ERR_CONNECT), "connect");
    assert_string_equal(http_err_code(HTTP_ERR_RATELIMITED), "ratelimited");
    assert_string_equal(http_err_code(HTTP_ERR_BAD_RESPONSE), "bad_response");
    assert_string_equal(http_err_code(HTTP_ERR_TOO_LARGE), "too_large");
    assert_string_equal(http_err_code(HTTP_ERR_LOGIN_PAGE), "login_page");
    assert_string_equal(http_err_code(HTTP_ERR_REDIRECT_REFUSED), "redirect_refused");
    assert_string_equal(http_err_code(HTTP_ERR_IO), "io");
    assert_string_equal(http_err_code(HTTP_ERR_CANCELLED), "cancelled");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_escape),  cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_scheme_ok),    cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_redact_url),   cmocka_unit_test(test_status_line),
        cmocka_unit_test(test_header_line),  cmocka_unit_test(test_login_page),
        cmocka_unit_test(test_valid_method), cmocka_unit_test(test_err_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
