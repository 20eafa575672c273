/* http_pure.c — pure helpers for http.c: URL parsing (through libcurl's URL API, no I/O), log
 * redaction, which addresses a request may not reach, header and status line parsing, login-page
 * detection, form escaping. Called by http.c only; tested by tests/c/test_http_pure.c. */
#include "http/http_pure.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

size_t http_form_escape_byte(unsigned char c, char out[3])
{
    static const char hex[] = "0123456789ABCDEF";
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '*' ||
        c == '-' || c == '.' || c == '_') {
        out[0] = (char)c;
        return 1;
    }
    if (c == ' ') {
        out[0] = '+';
        return 1;
    }
    out[0] = '%';
    out[1] = hex[c >> 4];
    out[2] = hex[c & 15];
    return 3;
}

char *http_form_escape(const char *s, size_t len)
{
    char *out = malloc(len * 3 + 1);
    size_t o = 0;
    if (!out) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        o += http_form_escape_byte((unsigned char)s[i], out + o);
    }
    out[o] = '\0';
    return out;
}

int http_pure_scheme_ok(const char *url)
{
    return url && (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0);
}

int http_pure_hostport(const char *url, char *buf, size_t size)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *scheme = NULL;
    int rc = -1;
    if (!u || !url || size == 0) {
        curl_url_cleanup(u);
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || !host || !*host) {
        goto out;
    }
    /* without CURLU_DEFAULT_PORT, PORT is only there when the URL spells one out */
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK) {
        port = NULL;
    }
    if (port && ((strcasecmp(scheme, "https") == 0 && strcmp(port, "443") == 0) ||
                 (strcasecmp(scheme, "http") == 0 && strcmp(port, "80") == 0))) {
        curl_free(port);
        port = NULL;
    }
    int n = port ? snprintf(buf, size, "%s:%s", host, port) : snprintf(buf, size, "%s", host);
    if (n < 0 || (size_t)n >= size) {
        goto out;
    }
    for (char *p = buf; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    rc = 0;
out:
    curl_free(host);
    curl_free(port);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

char *http_pure_resolve(const char *base, const char *location)
{
    CURLU *u = curl_url();
    char *full = NULL, *copy = NULL;
    if (!u) {
        return NULL;
    }
    if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK) {
        copy = strdup(full);
    }
    curl_free(full);
    curl_url_cleanup(u);
    return copy;
}

char *http_pure_redact_url(const char *url, char *buf, size_t size)
{
    size_t o = 0;
    int slashes = 0;
    const char *p = url ? url : "";
    const char *scheme_end = strstr(p, "://");
    if (size == 0) {
        return buf;
    }
    /* a scheme only when all before "://" is one (not a "://" inside a query or a path) */
    for (const char *c = p; scheme_end && c < scheme_end; c++) {
        if (!isalnum((unsigned char)*c) && *c != '+' && *c != '-' && *c != '.') {
            scheme_end = NULL;
        }
    }
    if (scheme_end == p) {
        scheme_end = NULL;
    }
    if (scheme_end) {
        /* drop "user:pass@" between the scheme and the first '/' */
        const char *auth_start = scheme_end + 3;
        size_t host_span = strcspn(auth_start, "/?#");
        const char *at = memchr(auth_start, '@', host_span);
        size_t head = (size_t)(auth_start - p);
        for (size_t i = 0; i < head && o + 1 < size; i++) {
            buf[o++] = p[i];
        }
        p = at ? at + 1 : auth_start;
    }
    /* host and the first path segment only: webhook URLs (Slack's, Teams', most relays') carry
     * their secret in the path, so the rest of it never reaches a log line */
    while (*p && *p != '?' && *p != '#' && o + 1 < size) {
        if (*p == '/' && ++slashes == 2) {
            break;
        }
        buf[o++] = *p++;
    }
    const char *mark = *p == '/' && p[1] && p[1] != '?' && p[1] != '#' ? "/..." : "";
    if (*p == '/' && !*mark) {
        mark = "/";
    }
    for (size_t i = 0; mark[i] && o + 1 < size; i++) {
        buf[o++] = mark[i];
    }
    while (*p && *p != '?' && *p != '#') {
        p++;
    }
    if (*p == '?') {
        mark = "?redacted";
        for (size_t i = 0; mark[i] && o + 1 < size; i++) {
            buf[o++] = mark[i];
        }
    }
    buf[o] = '\0';
    return buf;
}

/* 1 when the 32-bit IPv4 address (host order) falls in prefix/len */
static int http_pure_in4(uint32_t a, uint32_t prefix, int len)
{
    uint32_t mask = len == 0 ? 0 : 0xffffffffu << (32 - len);
    return (a & mask) == (prefix & mask);
}

static const char *http_pure_v4_refused(uint32_t a)
{
    static const struct {
        uint32_t prefix;
        int len;
        const char *why;
    } nets[] = {
        {0x00000000u, 8, "unspecified"}, /* 0.0.0.0/8 "this network" */
        {0x0a000000u, 8, "private"},     /* 10/8 */
        {0x64400000u, 10, "private"},    /* 100.64/10 carrier-grade NAT */
        {0x7f000000u, 8, "loopback"},    /* 127/8 */
        {0xa9fe0000u, 16, "link-local"}, /* 169.254/16, cloud metadata */
        {0xac100000u, 12, "private"},    /* 172.16/12 */
        {0xc0000000u, 24, "reserved"},   /* 192.0.0/24 IETF protocol assignments */
        {0xc0000200u, 24, "reserved"},   /* 192.0.2/24 documentation */
        {0xc0a80000u, 16, "private"},    /* 192.168/16 */
        {0xc6120000u, 15, "reserved"},   /* 198.18/15 benchmarking */
        {0xc6336400u, 24, "reserved"},   /* 198.51.100/24 documentation */
        {0xcb007100u, 24, "reserved"},   /* 203.0.113/24 documentation */
        {0xe0000000u, 4, "multicast"},   /* 224/4 */
        {0xf0000000u, 4, "reserved"},    /* 240/4 and the broadcast address */
    };
    for (size_t i = 0; i < sizeof nets / sizeof *nets; i++) {
        if (http_pure_in4(a, nets[i].prefix, nets[i].len)) {
            return nets[i].why;
        }
    }
    return NULL;
}

static uint32_t http_pure_v4_at(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

const char *http_pure_addr_refused(const struct sockaddr *sa)
{
    if (!sa) {
        return "unspecified";
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return http_pure_v4_refused(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family != AF_INET6) {
        return "not an IP address";
    }
    const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const unsigned char zero[12];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (memcmp(b, zero, 12) == 0) {
        /* ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d */
        uint32_t v4 = http_pure_v4_at(b + 12);
        if (v4 == 0) {
            return "unspecified";
        }
        if (v4 == 1) {
            return "loopback";
        }
        return "reserved";
    }
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) {
        return http_pure_v4_refused(http_pure_v4_at(b + 12)); /* the IPv4 address inside */
    }
    if (b[0] == 0x20 && b[1] == 0x02) {
        return http_pure_v4_refused(http_pure_v4_at(b + 2)); /* 6to4 2002:a.b.c.d::/48 */
    }
    if (b[0] == 0xff) {
        return "multicast";
    }
    if ((b[0] & 0xfe) == 0xfc) {
        return "private"; /* fc00::/7 unique local */
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {
        return "link-local"; /* fe80::/10 */
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) {
        return "private"; /* fec0::/10 site-local (deprecated) */
    }
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) {
        return "reserved"; /* 2001:db8::/32 documentation */
    }
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) {
        return "reserved"; /* 2001::/32 Teredo: the real peer is hidden inside */
    }
    if (b[0] == 0x01 && b[1] == 0 && memcmp(b + 2, zero, 6) == 0) {
        return "reserved"; /* 100::/64 discard */
    }
    return NULL;
}

void http_pure_addr_text(const struct sockaddr *sa, char *buf, size_t size)
{
    const void *a = NULL;
    if (size == 0) {
        return;
    }
    buf[0] = '\0';
    if (sa && sa->sa_family == AF_INET) {
        a = &((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa && sa->sa_family == AF_INET6) {
        a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    }
    if (!a || !inet_ntop(sa->sa_family, a, buf, (socklen_t)size)) {
        snprintf(buf, size, "?");
    }
}

long http_pure_status_line(const char *line, size_t len)
{
    size_t i = 5;
    long status = 0;
    int digits = 0;
    if (len < 5 || strncmp(line, "HTTP/", 5) != 0) {
        return -1;
    }
    while (i < len && line[i] != ' ') {
        i++;
    }
    while (i < len && line[i] == ' ') {
        i++;
    }
    while (i < len && isdigit((unsigned char)line[i]) && digits < 3) {
        status = status * 10 + (line[i] - '0');
        i++;
        digits++;
    }
    if (digits != 3 || (i < len && isdigit((unsigned char)line[i]))) {
        return -1;
    }
    return status;
}

int http_pure_header_line(const char *line, size_t len, char **name, char **value)
{
    const char *colon = memchr(line, ':', len);
    size_t name_len, vstart, vend;
    if (!colon || colon == line) {
        return -1;
    }
    name_len = (size_t)(colon - line);
    while (name_len > 0 && (line[name_len - 1] == ' ' || line[name_len - 1] == '\t')) {
        name_len--;
    }
    vstart = (size_t)(colon - line) + 1;
    vend = len;
    while (vstart < vend && (line[vstart] == ' ' || line[vstart] == '\t')) {
        vstart++;
    }
    while (vend > vstart && (line[vend - 1] == '\r' || line[vend - 1] == '\n' ||
                             line[vend - 1] == ' ' || line[vend - 1] == '\t')) {
        vend--;
    }
    *name = malloc(name_len + 1);
    *value = malloc(vend - vstart + 1);
    if (!*name || !*value) {
        free(*name);
        free(*value);
        *name = *value = NULL;
        return -1;
    }
    for (size_t i = 0; i < name_len; i++) {
        (*name)[i] = (char)tolower((unsigned char)line[i]);
    }
    (*name)[name_len] = '\0';
    memcpy(*value, line + vstart, vend - vstart);
    (*value)[vend - vstart] = '\0';
    return 0;
}

int http_pure_is_html(const char *content_type)
{
    if (!content_type) {
        return 0;
    }
    while (*content_type == ' ') {
        content_type++;
    }
    size_t n = strcspn(content_type, "; ");
    return (n == 9 && strncasecmp(content_type, "text/html", 9) == 0) ||
           (n == 21 && strncasecmp(content_type, "application/xhtml+xml", 21) == 0);
}

static int http_pure_starts_ci(const char *s, size_t n, const char *prefix)
{
    size_t pn = strlen(prefix);
    return n >= pn && strncasecmp(s, prefix, pn) == 0;
}

int http_pure_is_login_page(long status, const char *content_type, const char *first, size_t n)
{
    if (status < 200 || status > 299) {
        return 0;
    }
    if (http_pure_is_html(content_type)) {
        return 1;
    }
    if (content_type && *content_type) {
        return 0; /* a declared non-HTML type is trusted: an uploaded .txt may contain "<html" */
    }
    size_t i = 0;
    if (n >= 3 && (unsigned char)first[0] == 0xEF && (unsigned char)first[1] == 0xBB &&
        (unsigned char)first[2] == 0xBF) {
        i = 3; /* UTF-8 BOM */
    }
    while (i < n && isspace((unsigned char)first[i])) {
        i++;
    }
    return http_pure_starts_ci(first + i, n - i, "<!doctype html") ||
           http_pure_starts_ci(first + i, n - i, "<html");
}

int http_pure_valid_method(const char *method)
{
    if (!method || !*method || strlen(method) > 100) {
        return 0;
    }
    for (const char *p = method; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') {
            return 0;
        }
    }
    return 1;
}
