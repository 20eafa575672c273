/* http_pure.c — pure helpers for http.c: URL parsing (through libcurl's URL API, no I/O), log
 * redaction, header and status line parsing, login-page detection, form escaping. Called by
 * http.c only; tested by tests/c/test_http_pure.c. */
#include "http/http_pure.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

char *http_form_escape(const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(len * 3 + 1);
    size_t o = 0;
    if (!out) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '*') {
            out[o++] = (char)c;
        } else if (c == ' ') {
            out[o++] = '+';
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
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
    const char *p = url ? url : "";
    const char *scheme_end = strstr(p, "://");
    if (size == 0) {
        return buf;
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
    while (*p && *p != '?' && *p != '#' && o + 1 < size) {
        buf[o++] = *p++;
    }
    if (*p == '?') {
        const char *mark = "?redacted";
        for (size_t i = 0; mark[i] && o + 1 < size; i++) {
            buf[o++] = mark[i];
        }
    }
    buf[o] = '\0';
    return buf;
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
