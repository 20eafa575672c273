/* test_http_pure.c — unit tests for the pure parts of the HTTP client (http_pure.c and
 * http_err_code): form escaping, URL host:port keys for the allow-list, redirect resolution, log
 * redaction (secret paths), refused addresses, status/header line parsing, login-page detection,
 * Web API method names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
    assert_string_equal(b, "https://files.slack.com/x/...");
    assert_null(strstr(b, "pw"));
    http_pure_redact_url("https://slack.com/api/chat.postMessage", b, sizeof b);
    assert_string_equal(b, "https://slack.com/api/...");
    /* a webhook's secret is in its path: only the host and the first segment are shown */
    http_pure_redact_url("http://relay:8080/services/T0000000/B0000000/s3cr3tXYZ?x=1", b, sizeof b);
    assert_string_equal(b, "http://relay:8080/services/...?redacted");
    assert_null(strstr(b, "s3cr3t"));
    assert_null(strstr(b, "B0000000"));
    http_pure_redact_url("https://h.example/hook", b, sizeof b);
    assert_string_equal(b, "https://h.example/hook");
    http_pure_redact_url("https://h.example/", b, sizeof b);
    assert_string_equal(b, "https://h.example/");
    http_pure_redact_url("https://h.example", b, sizeof b);
    assert_string_equal(b, "https://h.example");
    /* a "://" inside a relative Location's query is not a scheme (found by tests/fuzz) */
    http_pure_redact_url("/a?secret=1&next=http://x", b, sizeof b);
    assert_string_equal(b, "/a?redacted");
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
    assert_string_equal(http_err_code(HTTP_ERR_TOO_MANY_REDIRECTS), "too_many_redirects");
    assert_string_equal(http_err_code(HTTP_ERR_ADDRESS_REFUSED), "address_refused");
    assert_string_equal(http_err_code(HTTP_ERR_TRUNCATED), "truncated");
    assert_string_equal(http_err_code(HTTP_ERR_IO), "io");
    assert_string_equal(http_err_code(HTTP_ERR_CANCELLED), "cancelled");
}

/* why http_pure_addr_refused refuses the textual address, or NULL */
static const char *refused(const char *text)
{
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    memset(&in4, 0, sizeof in4);
    memset(&in6, 0, sizeof in6);
    if (inet_pton(AF_INET, text, &in4.sin_addr) == 1) {
        in4.sin_family = AF_INET;
        return http_pure_addr_refused((struct sockaddr *)&in4);
    }
    assert_int_equal(inet_pton(AF_INET6, text, &in6.sin6_addr), 1);
    in6.sin6_family = AF_INET6;
    return http_pure_addr_refused((struct sockaddr *)&in6);
}

static void test_addr_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "198.18.0.1",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.1.2.3",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "fec0::1",
        "2001:db8::1",
        "2001:0:4136:e378::1",
        "100::1",
    };
    static const char *const good[] = {
        "1.1.1.1",         "8.8.8.8",        "172.15.255.255",   "172.32.0.1",
        "192.169.0.1",     "100.128.0.1",    "169.253.0.1",      "11.0.0.1",
        "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::808:808", "2a00:1450:4001::200e",
        "2002:808:808::1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (!refused(bad[i])) {
            fail_msg("%s should be refused", bad[i]);
        }
    }
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        if (refused(good[i])) {
            fail_msg("%s should be allowed (%s)", good[i], refused(good[i]));
        }
    }
    assert_string_equal(refused("127.0.0.1"), "loopback");
    assert_string_equal(refused("::ffff:169.254.169.254"), "link-local");
    assert_string_equal(refused("10.0.0.1"), "private");
    assert_string_equal(refused("ff02::1"), "multicast");
    assert_string_equal(refused("0.0.0.0"), "unspecified");
    struct sockaddr unix_like = {.sa_family = AF_UNIX};
    assert_non_null(http_pure_addr_refused(&unix_like));
    assert_non_null(http_pure_addr_refused(NULL));
    char text[64];
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    http_pure_addr_text((struct sockaddr *)&in6, text, sizeof text);
    assert_string_equal(text, "::1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_escape),  cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_scheme_ok),    cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_redact_url),   cmocka_unit_test(test_status_line),
        cmocka_unit_test(test_header_line),  cmocka_unit_test(test_login_page),
        cmocka_unit_test(test_valid_method), cmocka_unit_test(test_err_codes),
        cmocka_unit_test(test_addr_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
