/* ratelimit.c — pure retry and rate-limit policy for http.c: Retry-After parsing, backoff with
 * full jitter, retry budgets, per-method gates and the token allow-list. Nothing here reads a
 * clock, a socket or a file; see ratelimit.h for each rule and tests/c/test_ratelimit.c. */
#include "http/ratelimit.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

double ratelimit_retry_after(const char *value, double now_wall)
{
    double wait;
    if (!value) {
        return RATELIMIT_DEFAULT_RETRY_AFTER;
    }
    while (*value == ' ' || *value == '\t') {
        value++;
    }
    size_t len = strlen(value);
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t' || value[len - 1] == '\r' ||
                       value[len - 1] == '\n')) {
        len--;
    }
    if (len == 0) {
        return RATELIMIT_DEFAULT_RETRY_AFTER;
    }
    if (isdigit((unsigned char)value[0])) {
        /* delta-seconds: digits only */
        double secs = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)value[i])) {
                return RATELIMIT_DEFAULT_RETRY_AFTER;
            }
            if (secs < 1e9) {
                secs = secs * 10 + (value[i] - '0');
            }
        }
        wait = secs;
    } else {
        /* HTTP-date, IMF-fixdate form: "Sun, 06 Nov 1994 08:49:37 GMT" */
        char buf[64];
        struct tm tm;
        if (len >= sizeof buf) {
            return RATELIMIT_DEFAULT_RETRY_AFTER;
        }
        memcpy(buf, value, len);
        buf[len] = '\0';
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (!end || *end != '\0') {
            return RATELIMIT_DEFAULT_RETRY_AFTER;
        }
        time_t when = timegm(&tm);
        if (when == (time_t)-1) {
            return RATELIMIT_DEFAULT_RETRY_AFTER;
        }
        wait = (double)when - now_wall;
        if (wait < 0) {
            wait = 0;
        }
    }
    if (wait > RATELIMIT_MAX_RETRY_AFTER) {
        wait = RATELIMIT_MAX_RETRY_AFTER;
    }
    return wait;
}

double ratelimit_backoff(int retry, double base, double cap, double rnd01)
{
    double ceiling = base;
    for (int i = 1; i < retry && ceiling < cap; i++) {
        ceiling *= 2;
    }
    if (ceiling > cap) {
        ceiling = cap;
    }
    if (rnd01 < 0) {
        rnd01 = 0;
    }
    if (rnd01 >= 1) {
        rnd01 = 1;
    }
    return ceiling * rnd01;
}

int ratelimit_may_retry(int retries_done, int max_retries, double started, double now, double wait,
                        double max_retry_time)
{
    if (retries_done >= max_retries) {
        return 0;
    }
    return now + wait - started <= max_retry_time;
}

/* ---- per-method gates: a small array, a handful of methods at most ---- */

struct ratelimit_gate {
    char *method;
    double until;
    int single;
};

struct ratelimit_gates {
    struct ratelimit_gate *v;
    size_t n, cap;
};

struct ratelimit_gates *ratelimit_gates_new(void)
{
    return calloc(1, sizeof(struct ratelimit_gates));
}

void ratelimit_gates_free(struct ratelimit_gates *g)
{
    if (!g) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        free(g->v[i].method);
    }
    free(g->v);
    free(g);
}

int ratelimit_gate_close(struct ratelimit_gates *g, const char *method, double until)
{
    for (size_t i = 0; i < g->n; i++) {
        if (strcmp(g->v[i].method, method) == 0) {
            if (until > g->v[i].until) {
                g->v[i].until = until;
            }
            g->v[i].single = 1;
            return 0;
        }
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        struct ratelimit_gate *v = realloc(g->v, cap * sizeof *v);
        if (!v) {
            return -1;
        }
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n].method = strdup(method);
    if (!g->v[g->n].method) {
        return -1;
    }
    g->v[g->n].until = until;
    g->v[g->n].single = 1;
    g->n++;
    return 0;
}

double ratelimit_gate_open_at(const struct ratelimit_gates *g, const char *method, double now)
{
    for (size_t i = 0; i < g->n; i++) {
        if (strcmp(g->v[i].method, method) == 0) {
            return g->v[i].until > now ? g->v[i].until : 0;
        }
    }
    return 0;
}

int ratelimit_gate_single(const struct ratelimit_gates *g, const char *method)
{
    for (size_t i = 0; i < g->n; i++) {
        if (strcmp(g->v[i].method, method) == 0) {
            return g->v[i].single;
        }
    }
    return 0;
}

void ratelimit_gate_clear(struct ratelimit_gates *g, const char *method)
{
    for (size_t i = 0; i < g->n; i++) {
        if (strcmp(g->v[i].method, method) == 0) {
            free(g->v[i].method);
            g->v[i] = g->v[g->n - 1];
            g->n--;
            return;
        }
    }
}

/* ---- the allow-list ---- */

/* Split "host:port" at the last ':' unless the host is a bracketed IPv6 literal without port. */
static void ratelimit_split(const char *s, size_t *host_len, const char **port)
{
    const char *colon = strrchr(s, ':');
    const char *bracket = strrchr(s, ']');
    if (colon && (!bracket || colon > bracket)) {
        *host_len = (size_t)(colon - s);
        *port = colon + 1;
    } else {
        *host_len = strlen(s);
        *port = NULL;
    }
}

static int ratelimit_host_match(const char *host, size_t host_len, const char *pat, size_t pat_len)
{
    if (pat_len >= 2 && pat[0] == '*' && pat[1] == '.') {
        /* "*.slack.com": host must end in ".slack.com" and have something before it */
        size_t suffix_len = pat_len - 1; /* ".slack.com" */
        if (host_len <= suffix_len) {
            return 0;
        }
        return strncasecmp(host + host_len - suffix_len, pat + 1, suffix_len) == 0;
    }
    return host_len == pat_len && strncasecmp(host, pat, host_len) == 0;
}

int ratelimit_host_allowed(const char *hostport, const char *const *patterns, size_t n)
{
    size_t host_len;
    const char *port;
    if (!hostport || !*hostport) {
        return 0;
    }
    ratelimit_split(hostport, &host_len, &port);
    if (host_len == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        size_t pat_len;
        const char *pat_port;
        if (!patterns[i] || !*patterns[i]) {
            continue;
        }
        ratelimit_split(patterns[i], &pat_len, &pat_port);
        if ((port == NULL) != (pat_port == NULL)) {
            continue;
        }
        if (port && strcmp(port, pat_port) != 0) {
            continue;
        }
        if (ratelimit_host_match(hostport, host_len, patterns[i], pat_len)) {
            return 1;
        }
    }
    return 0;
}
