/* metrics.c — an in-memory registry of counters, gauges and histograms, and its rendering in the
 * Prometheus text exposition format (version 0.0.4). Modules record through metrics.h; health.c
 * serves metrics_render(). Series are few (tens), so a linear list is simplest. Both threads (the
 * script loop and the transport thread) record, so one mutex guards the registry; nothing done
 * under it blocks or calls out. */
#include "base/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

#define METRICS_BUCKETS_MAX 12

struct metrics_series {
    char *name;
    char *labels; /* "" when none */
    char *help;
    enum metrics_type type;
    double value;             /* counter/gauge; histogram: sum */
    unsigned long long count; /* histogram */
    const double *bounds;     /* histogram upper bounds */
    size_t n_bounds;
    unsigned long long buckets[METRICS_BUCKETS_MAX];
    struct metrics_series *next;
};

static struct metrics_series *metrics_head, *metrics_tail;
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;

static const double metrics_fast_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                             0.025,  0.05,  0.1,    0.25,  1.0};
static const double metrics_slow_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

static struct metrics_series *metrics_find(const char *name, const char *help, const char *labels,
                                           enum metrics_type type)
{
    struct metrics_series *s;
    if (!labels) {
        labels = "";
    }
    for (s = metrics_head; s; s = s->next) {
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0) {
            return s;
        }
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->name = strdup(name);
    s->labels = strdup(labels);
    s->help = strdup(help ? help : name);
    s->type = type;
    if (type == METRICS_HISTOGRAM) {
        /* ack latencies are sub-millisecond; everything else (reports, reloads) is slower */
        int fast = strstr(name, "ack") != NULL;
        s->bounds = fast ? metrics_fast_bounds : metrics_slow_bounds;
        s->n_bounds = fast ? sizeof metrics_fast_bounds / sizeof *metrics_fast_bounds
                           : sizeof metrics_slow_bounds / sizeof *metrics_slow_bounds;
    }
    if (!s->name || !s->labels || !s->help) {
        free(s->name);
        free(s->labels);
        free(s->help);
        free(s);
        return NULL;
    }
    /* keep series of one name together, in first-seen order, for the exposition */
    struct metrics_series *after = NULL;
    for (struct metrics_series *p = metrics_head; p; p = p->next) {
        if (strcmp(p->name, name) == 0) {
            after = p;
        }
    }
    if (after) {
        s->next = after->next;
        after->next = s;
        if (metrics_tail == after) {
            metrics_tail = s;
        }
    } else if (metrics_tail) {
        metrics_tail->next = s;
        metrics_tail = s;
    } else {
        metrics_head = metrics_tail = s;
    }
    return s;
}

void metrics_counter_add(const char *name, const char *help, const char *labels, double v)
{
    pthread_mutex_lock(&metrics_lock);
    struct metrics_series *s = metrics_find(name, help, labels, METRICS_COUNTER);
    if (s) {
        s->value += v;
    }
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_gauge_set(const char *name, const char *help, const char *labels, double v)
{
    pthread_mutex_lock(&metrics_lock);
    struct metrics_series *s = metrics_find(name, help, labels, METRICS_GAUGE);
    if (s) {
        s->value = v;
    }
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_observe(const char *name, const char *help, const char *labels, double v)
{
    pthread_mutex_lock(&metrics_lock);
    struct metrics_series *s = metrics_find(name, help, labels, METRICS_HISTOGRAM);
    if (s) {
        s->value += v;
        s->count++;
        for (size_t i = 0; i < s->n_bounds; i++) {
            if (v <= s->bounds[i]) {
                s->buckets[i]++;
            }
        }
    }
    pthread_mutex_unlock(&metrics_lock);
}

char *metrics_label_escape(const char *value, char *buf, size_t size)
{
    size_t o = 0;
    if (size == 0) {
        return buf;
    }
    for (const char *p = value ? value : ""; *p && o + 3 < size; p++) {
        if (*p == '\\' || *p == '"') {
            buf[o++] = '\\';
            buf[o++] = *p;
        } else if (*p == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    return buf;
}

struct metrics_buf {
    char *data;
    size_t len, cap;
    int failed;
};

static void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
}

static const char *metrics_type_name(enum metrics_type t)
{
    return t == METRICS_COUNTER ? "counter" : t == METRICS_GAUGE ? "gauge" : "histogram";
}

/* "{a=\"b\",le=\"0.5\"}" style label sets, merging the series labels with an extra one. */
static void metrics_labels(struct metrics_buf *b, const char *labels, const char *extra)
{
    int has = labels && *labels;
    if (!has && !extra) {
        return;
    }
    metrics_printf(b, "{%s%s%s}", has ? labels : "", has && extra ? "," : "", extra ? extra : "");
}

static char *metrics_render_locked(size_t *len);

char *metrics_render(size_t *len)
{
    pthread_mutex_lock(&metrics_lock);
    char *out = metrics_render_locked(len);
    pthread_mutex_unlock(&metrics_lock);
    return out;
}

static char *metrics_render_locked(size_t *len)
{
    struct metrics_buf b = {malloc(4096), 0, 4096, 0};
    const char *last_name = "";
    if (!b.data) {
        return NULL;
    }
    b.data[0] = '\0';
    for (struct metrics_series *s = metrics_head; s; s = s->next) {
        if (strcmp(s->name, last_name) != 0) {
            metrics_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name,
                           metrics_type_name(s->type));
            last_name = s->name;
        }
        if (s->type != METRICS_HISTOGRAM) {
            metrics_printf(&b, "%s", s->name);
            metrics_labels(&b, s->labels, NULL);
            metrics_printf(&b, " %.17g\n", s->value);
            continue;
        }
        for (size_t i = 0; i < s->n_bounds; i++) {
            char le[48];
            snprintf(le, sizeof le, "le=\"%g\"", s->bounds[i]);
            metrics_printf(&b, "%s_bucket", s->name);
            metrics_labels(&b, s->labels, le);
            metrics_printf(&b, " %llu\n", s->buckets[i]);
        }
        metrics_printf(&b, "%s_bucket", s->name);
        metrics_labels(&b, s->labels, "le=\"+Inf\"");
        metrics_printf(&b, " %llu\n%s_sum", s->count, s->name);
        metrics_labels(&b, s->labels, NULL);
        metrics_printf(&b, " %.17g\n%s_count", s->value, s->name);
        metrics_labels(&b, s->labels, NULL);
        metrics_printf(&b, " %llu\n", s->count);
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    if (len) {
        *len = b.len;
    }
    return b.data;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&metrics_lock);
    struct metrics_series *s = metrics_head;
    while (s) {
        struct metrics_series *next = s->next;
        free(s->name);
        free(s->labels);
        free(s->help);
        free(s);
        s = next;
    }
    metrics_head = metrics_tail = NULL;
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_shutdown(void)
{
    metrics_reset();
}
