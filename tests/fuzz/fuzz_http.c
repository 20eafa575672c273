/* fuzz_http.c — libFuzzer harness for the HTTP parsing the bot does on untrusted bytes: status and
 * header lines from any server (http_pure_status_line, http_pure_header_line), a redirect's
 * Location resolved against the current URL (http_pure_resolve, then the scheme, allow-list key
 * and redaction of the result), login-page sniffing, and the refused-address check on any 16
 * bytes taken as an IPv6 or IPv4 address. Oracles beyond "no crash, no leak": a status is 3
 * digits, a header name has no ':' and no upper case, a redacted URL holds nothing after its '?'
 * or past its first path segment, and an IPv4-mapped address is judged as its IPv4 address.
 * Built by `make fuzz` (clang -fsanitize=fuzzer,address,undefined). */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/http_pure.h"

/* 1 when s is want, or (the output was cut at the buffer's end) a prefix of it */
static int fuzz_is(const char *s, const char *want, int cut)
{
    return cut ? strncmp(s, want, strlen(s)) == 0 : strcmp(s, want) == 0;
}

static void fuzz_check_redaction(const char *url)
{
    char out[512];
    http_pure_redact_url(url, out, sizeof out);
    int cut = strlen(out) == sizeof out - 1;
    const char *q = strchr(out, '?');
    if (q && !fuzz_is(q, "?redacted", cut)) {
        abort(); /* something of the query survived */
    }
    const char *s = strstr(out, "://");
    const char *path = s ? strchr(s + 3, '/') : NULL;
    const char *second = path ? strchr(path + 1, '/') : NULL;
    if (second && q && second > q) {
        second = NULL;
    }
    if (second && second[1] && second[1] != '?') {
        char rest[sizeof out];
        snprintf(rest, sizeof rest, "%s", second);
        char *mark = strchr(rest, '?');
        if (mark) {
            *mark = '\0';
        }
        if (!fuzz_is(rest, "/...", cut && !mark)) {
            abort(); /* a second path segment survived */
        }
    }
}

static void fuzz_check_addr(const uint8_t *data, size_t size)
{
    struct sockaddr_in6 in6;
    struct sockaddr_in in4;
    if (size < 16) {
        return;
    }
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    memcpy(in6.sin6_addr.s6_addr, data, 16);
    const char *v6 = http_pure_addr_refused((struct sockaddr *)&in6);
    memset(&in4, 0, sizeof in4);
    in4.sin_family = AF_INET;
    memcpy(&in4.sin_addr.s_addr, data + 12, 4);
    const char *v4 = http_pure_addr_refused((struct sockaddr *)&in4);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(data, mapped, 12) == 0 && (v6 == NULL) != (v4 == NULL)) {
        abort(); /* ::ffff:a.b.c.d must be judged as a.b.c.d */
    }
    char text[64];
    http_pure_addr_text((struct sockaddr *)&in6, text, sizeof text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';

    long status = http_pure_status_line(s, size);
    if (status != -1 && (status < 0 || status > 999)) {
        abort();
    }
    char *name, *value;
    if (http_pure_header_line(s, size, &name, &value) == 0) {
        for (const char *p = name; *p; p++) {
            if (*p == ':' || isupper((unsigned char)*p)) {
                abort();
            }
        }
        free(name);
        free(value);
    }
    http_pure_is_login_page(200, NULL, s, size);

    /* the bytes before the first newline are the current URL, the rest the Location header */
    char *nl = memchr(s, '\n', size);
    const char *base = "https://files.slack.com/files-pri/T1-F1/x";
    const char *location = s;
    if (nl) {
        *nl = '\0';
        base = s;
        location = nl + 1;
    }
    char *next = http_pure_resolve(base, location);
    if (next) {
        char key[300];
        http_pure_hostport(next, key, sizeof key);
        http_pure_scheme_ok(next);
        fuzz_check_redaction(next);
        free(next);
    }
    fuzz_check_redaction(location);
    fuzz_check_addr(data, size);
    free(s);
    return 0;
}
