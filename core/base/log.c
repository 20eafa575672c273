/* log.c — logfmt lines on stderr with tokens redacted.
 * Every module logs through log_event(); the line is built in a buffer, redacted as a whole
 * (token shapes and the configured secrets), then written with one write(2) so lines never
 * interleave. */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192
#define LOG_SECRETS_MAX 8

static _Atomic int log_min_level = LOG_INFO; /* set by the script loop, read by both threads */
static char *log_secrets[LOG_SECRETS_MAX];
static size_t log_secrets_n;
static void (*log_sink)(const char *line, size_t len, void *arg);
static void *log_sink_arg;

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    log_min_level = level;
}

enum log_level log_level_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof log_level_names / sizeof *log_level_names; i++) {
        if (strcmp(name, log_level_names[i]) == 0) {
            return (enum log_level)i;
        }
    }
    return LOG_INFO;
}

int log_add_secret(const char *secret)
{
    /* Short values would redact ordinary words; real tokens are long. */
    if (!secret || strlen(secret) < 8) {
        return 0;
    }
    for (size_t i = 0; i < log_secrets_n; i++) {
        if (strcmp(log_secrets[i], secret) == 0) {
            return 0;
        }
    }
    if (log_secrets_n == LOG_SECRETS_MAX) {
        return -1;
    }
    log_secrets[log_secrets_n] = strdup(secret);
    if (!log_secrets[log_secrets_n]) {
        return -1;
    }
    log_secrets_n++;
    return 0;
}

void log_shutdown(void)
{
    for (size_t i = 0; i < log_secrets_n; i++) {
        free(log_secrets[i]);
        log_secrets[i] = NULL;
    }
    log_secrets_n = 0;
}

void log_set_sink(void (*sink)(const char *line, size_t len, void *arg), void *arg)
{
    log_sink = sink;
    log_sink_arg = arg;
}

static int log_is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* Length of a token prefix at s ("xoxb-", "xapp-", ...), or 0. */
static size_t log_token_prefix(const char *s, size_t n)
{
    static const char *const prefixes[] = {"xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxe-",
                                           "xoxs-", "xoxc-", "xoxd-", "xapp-"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        size_t len = strlen(prefixes[i]);
        if (n >= len && strncmp(s, prefixes[i], len) == 0) {
            return len;
        }
    }
    return 0;
}

size_t log_redact(const char *in, size_t in_len, char *out, size_t out_size)
{
    size_t o = 0;
    size_t i = 0;
    if (out_size == 0) {
        return 0;
    }
    while (i < in_len && o + 1 < out_size) {
        size_t matched = 0;
        const char *marker = NULL;
        for (size_t s = 0; s < log_secrets_n; s++) {
            size_t len = strlen(log_secrets[s]);
            if (in_len - i >= len && memcmp(in + i, log_secrets[s], len) == 0) {
                matched = len;
                marker = "[redacted]";
                break;
            }
        }
        if (!matched) {
            size_t plen = log_token_prefix(in + i, in_len - i);
            int at_word_start = i == 0 || !log_is_token_char(in[i - 1]);
            /* a bare prefix ("an xapp- token") names a kind of token and holds no secret */
            int has_body = i + plen < in_len && log_is_token_char(in[i + plen]);
            if (plen && at_word_start && has_body) {
                size_t j = i + plen;
                while (j < in_len && log_is_token_char(in[j])) {
                    j++;
                }
                matched = j - i;
                marker = NULL;
                /* keep the prefix so a reader knows which kind of token it was */
                for (size_t k = 0; k < plen && o + 1 < out_size; k++) {
                    out[o++] = in[i + k];
                }
                marker = "***";
            }
        }
        if (matched) {
            for (const char *m = marker; *m && o + 1 < out_size; m++) {
                out[o++] = *m;
            }
            i += matched;
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = '\0';
    return o;
}

static int log_needs_quotes(const char *v)
{
    if (*v == '\0') {
        return 1;
    }
    for (const char *p = v; *p; p++) {
        if (*p == ' ' || *p == '=' || *p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
            return 1;
        }
    }
    return 0;
}

static size_t log_append(char *buf, size_t pos, size_t size, const char *s)
{
    while (*s && pos + 1 < size) {
        buf[pos++] = *s++;
    }
    buf[pos] = '\0';
    return pos;
}

static size_t log_append_value(char *buf, size_t pos, size_t size, const char *v)
{
    if (!v) {
        v = "";
    }
    if (!log_needs_quotes(v)) {
        return log_append(buf, pos, size, v);
    }
    pos = log_append(buf, pos, size, "\"");
    for (const char *p = v; *p && pos + 3 < size; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = *p;
            esc[2] = '\0';
        } else if (*p == '\n') {
            strcpy(esc, "\\n");
        } else if (*p == '\r') {
            strcpy(esc, "\\r");
        } else if (*p == '\t') {
            strcpy(esc, "\\t");
        } else if ((unsigned char)*p < 0x20) {
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)*p);
        } else {
            esc[0] = *p;
            esc[1] = '\0';
        }
        pos = log_append(buf, pos, size, esc);
    }
    return log_append(buf, pos, size, "\"");
}

void log_eventv(enum log_level level, const char *msg, const char *const *keys,
                const char *const *values, size_t n)
{
    char line[LOG_LINE_MAX];
    char redacted[LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    char stamp[40];
    size_t pos;

    if ((int)level < atomic_load(&log_min_level)) {
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    pos = (size_t)snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s msg=", stamp,
                           (long)(tv.tv_usec / 1000), log_level_names[level]);
    pos = log_append_value(line, pos, sizeof line, msg);
    for (size_t i = 0; i < n; i++) {
        if (!keys[i]) {
            continue;
        }
        pos = log_append(line, pos, sizeof line, " ");
        pos = log_append(line, pos, sizeof line, keys[i]);
        pos = log_append(line, pos, sizeof line, "=");
        pos = log_append_value(line, pos, sizeof line, values[i]);
    }
    size_t len = log_redact(line, pos, redacted, sizeof redacted - 1);
    redacted[len++] = '\n';
    redacted[len] = '\0';
    if (log_sink) {
        log_sink(redacted, len, log_sink_arg);
        return;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, redacted + off, len - off);
        if (w <= 0) {
            break;
        }
        off += (size_t)w;
    }
}

void log_event(enum log_level level, const char *msg, ...)
{
    const char *keys[32];
    const char *values[32];
    size_t n = 0;
    va_list ap;

    if ((int)level < atomic_load(&log_min_level)) {
        return;
    }
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) {
            break;
        }
        const char *v = va_arg(ap, const char *);
        if (n < 32) {
            keys[n] = k;
            values[n] = v;
            n++;
        }
    }
    va_end(ap);
    log_eventv(level, msg, keys, values, n);
}
