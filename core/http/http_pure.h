/* http_pure.h — the pure helpers of http.c: URL host/port extraction and resolution, URL
 * redaction for logs, response header parsing, login-page detection, Web API method names.
 * http_form_escape (declared in http.h) lives in http_pure.c too. No sockets, no clock; unit-tested
 * in tests/c/test_http_pure.c. Only http.c (and tests) call these. */
#ifndef PMB_HTTP_PURE_H
#define PMB_HTTP_PURE_H

#include <stddef.h>

/* "http" or "https" URL? 1 = yes. */
int http_pure_scheme_ok(const char *url);

/* The key the allow-list is matched against: lowercase host, plus ":port" when the URL names a
 * port other than its scheme's default. 0, or -1 when the URL does not parse or has no host. */
int http_pure_hostport(const char *url, char *buf, size_t size);

/* Resolve a Location header against the URL it came from. Returns malloc'd text (caller frees)
 * or NULL when it does not parse. */
char *http_pure_resolve(const char *base, const char *location);

/* The URL for a log line: scheme, host and the first path segment only (the rest shown as
 * "/...": webhook URLs carry their secret in the path), no userinfo, no query string ("?..."
 * shown as "?redacted"), no fragment. Always NUL-terminates buf. Returns buf. */
char *http_pure_redact_url(const char *url, char *buf, size_t size);

/* Why a connection to this address is refused unless allow-listed: "loopback", "private",
 * "link-local", "multicast", "unspecified", "reserved" (IPv4, IPv6, and the IPv4 inside mapped,
 * NAT64 and 6to4 forms); NULL for a public address. sa is an AF_INET or AF_INET6 sockaddr. */
struct sockaddr;
const char *http_pure_addr_refused(const struct sockaddr *sa);
/* The address as text ("10.0.0.1", "::1"); "?" when it is neither IPv4 nor IPv6. */
void http_pure_addr_text(const struct sockaddr *sa, char *buf, size_t size);

/* "HTTP/1.1 200 OK" / "HTTP/2 404" -> status; -1 when the line is not a status line. */
long http_pure_status_line(const char *line, size_t len);

/* A response header line "Name: value\r\n": lowercase name and trimmed value, each malloc'd
 * (caller frees both). 0, or -1 for a line without ':' (then nothing is allocated). */
int http_pure_header_line(const char *line, size_t len, char **name, char **value);

/* Is this Content-Type HTML? ("text/html; charset=utf-8" -> 1) */
int http_pure_is_html(const char *content_type);

/* A 2xx answer where a file was expected that is really Slack's sign-in page: Content-Type
 * text/html, or no Content-Type and a body that starts like an HTML document. first/n are the
 * first bytes of the body (may be empty). 1 = login page. */
int http_pure_is_login_page(long status, const char *content_type, const char *first, size_t n);

/* Web API method names are [A-Za-z0-9._-]+ ("chat.postMessage"). 1 = valid. */
int http_pure_valid_method(const char *method);

#endif
