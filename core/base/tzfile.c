/* tzfile.c — a zone's TZif file (RFC 8536, versions 1 to 4) read once into a bounded cache, and
 * the local time type at a UTC instant: the transition table of the 64-bit data block, and past
 * its last transition the footer's POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3"), evaluated for the
 * UTC year of the instant as glibc does. Never touches the process's TZ. Called by
 * primitives_local.c and host_gen.c through tzfile.h; calls only libc. */
#include "base/tzfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_NAME_MAX 200
#define TZ_FILE_MAX (1024 * 1024)
#define TZ_CACHE_ZONES 32
#define TZ_MAX_TIMES 65536
#define TZ_MAX_TYPES 256
#define TZ_MAX_CHARS 4096
#define TZ_HEADER 44

struct tz_type {
    int32_t utoff;
    uint8_t isdst;
    uint8_t abbr; /* index into chars */
};

/* One end of a DST period in a POSIX TZ rule: a day of the year, and the local time on it. */
enum tz_day_kind { TZ_DAY_JULIAN, TZ_DAY_ZERO_BASED, TZ_DAY_MONTH_WEEK };
struct tz_change {
    enum tz_day_kind kind;
    int n;                 /* Jn: 1..365 without Feb 29; n: 0..365 */
    int month, week, wday; /* Mm.w.d: week 5 = the last such weekday of the month */
    int32_t secs;          /* local time of the change, -167 h to 167 h (RFC 8536) */
};

struct tz_rule {
    char std_abbr[16], dst_abbr[16];
    int32_t std_utoff, dst_utoff;
    int has_dst;
    struct tz_change start, end; /* start in standard time, end in daylight time */
};

struct tz_zone {
    char name[TZ_NAME_MAX + 1];
    int64_t *times; /* ascending */
    uint8_t *idx;   /* the type of each transition */
    uint32_t n_times;
    struct tz_type *types;
    uint32_t n_types;
    char *chars; /* the abbreviations, NUL-terminated, one more NUL at the end */
    int has_rule;
    struct tz_rule rule;
    uint64_t used; /* for eviction: the newest lookup that used this zone */
};

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tz_zone *tz_cache[TZ_CACHE_ZONES];
static uint64_t tz_clock;

/* ---- names ---- */

int tzfile_valid_zone(const char *zone)
{
    char path[PATH_MAX], real[PATH_MAX], root[PATH_MAX];
    struct stat st;
    size_t len = strlen(zone);
    if (len == 0 || len > TZ_NAME_MAX || zone[0] == '/' || strstr(zone, "..")) {
        return 0;
    }
    for (const char *p = zone; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '/' || *p == '_' || *p == '-' || *p == '+';
        if (!ok) {
            return 0;
        }
    }
    snprintf(path, sizeof path, "%s/%s", TZFILE_DIR, zone);
    if (!realpath(path, real) || !realpath(TZFILE_DIR, root)) {
        return 0;
    }
    len = strlen(root);
    /* symbolic links inside the folder (US/Eastern) are fine; one that leads out of it is not */
    if (strncmp(real, root, len) != 0 || real[len] != '/') {
        return 0;
    }
    return stat(real, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- the POSIX TZ string of the footer ---- */

/* "CET" or "<+0530>": 3 to 15 characters. Returns the rest of s, or NULL. */
static const char *tz_parse_abbr(const char *s, char *out, size_t size)
{
    size_t n = 0;
    if (*s == '<') {
        s++;
        while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
               *s == '+' || *s == '-') {
            if (n + 1 >= size) {
                return NULL;
            }
            out[n++] = *s++;
        }
        if (*s != '>') {
            return NULL;
        }
        s++;
    } else {
        while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) {
            if (n + 1 >= size) {
                return NULL;
            }
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
    return n >= 3 ? s : NULL;
}

/* 1 to 3 digits as a number at most max, or -1; advances *s. */
static int tz_parse_num(const char **s, int digits, int max)
{
    int v = 0, n = 0;
    while (n < digits && **s >= '0' && **s <= '9') {
        v = v * 10 + (**s - '0');
        (*s)++;
        n++;
    }
    return n == 0 || v > max ? -1 : v;
}

/* [+-]hh[:mm[:ss]] with hours at most max_hours, in seconds. Returns the rest of s, or NULL. */
static const char *tz_parse_hms(const char *s, int max_hours, int32_t *secs)
{
    int sign = 1, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-') {
        sign = *s == '-' ? -1 : 1;
        s++;
    }
    h = tz_parse_num(&s, 3, max_hours);
    if (h < 0) {
        return NULL;
    }
    if (*s == ':') {
        s++;
        m = tz_parse_num(&s, 2, 59);
        if (m < 0) {
            return NULL;
        }
        if (*s == ':') {
            s++;
            sec = tz_parse_num(&s, 2, 59);
            if (sec < 0) {
                return NULL;
            }
        }
    }
    *secs = sign * (h * 3600 + m * 60 + sec);
    return s;
}

/* Jn, n or Mm.w.d, then an optional /time (default 02:00). Returns the rest of s, or NULL. */
static const char *tz_parse_change(const char *s, struct tz_change *c)
{
    memset(c, 0, sizeof *c);
    if (*s == 'J') {
        s++;
        c->kind = TZ_DAY_JULIAN;
        c->n = tz_parse_num(&s, 3, 365);
        if (c->n < 1) {
            return NULL;
        }
    } else if (*s == 'M') {
        s++;
        c->kind = TZ_DAY_MONTH_WEEK;
        c->month = tz_parse_num(&s, 2, 12);
        if (c->month < 1 || *s++ != '.') {
            return NULL;
        }
        c->week = tz_parse_num(&s, 1, 5);
        if (c->week < 1 || *s++ != '.') {
            return NULL;
        }
        c->wday = tz_parse_num(&s, 1, 6);
        if (c->wday < 0) {
            return NULL;
        }
    } else {
        c->kind = TZ_DAY_ZERO_BASED;
        c->n = tz_parse_num(&s, 3, 365);
        if (c->n < 0) {
            return NULL;
        }
    }
    c->secs = 2 * 3600;
    if (*s == '/') {
        s = tz_parse_hms(s + 1, 167, &c->secs);
    }
    return s;
}

/* std offset [dst [offset] [,start[/time],end[/time]]]. 0, or -1 when s is not such a rule. */
static int tz_parse_rule(const char *s, struct tz_rule *r)
{
    int32_t secs;
    memset(r, 0, sizeof *r);
    s = tz_parse_abbr(s, r->std_abbr, sizeof r->std_abbr);
    if (!s || !(s = tz_parse_hms(s, 24, &secs))) {
        return -1;
    }
    r->std_utoff = -secs; /* POSIX counts hours west of Greenwich */
    if (!*s) {
        return 0;
    }
    r->has_dst = 1;
    s = tz_parse_abbr(s, r->dst_abbr, sizeof r->dst_abbr);
    if (!s) {
        return -1;
    }
    r->dst_utoff = r->std_utoff + 3600;
    if (*s && *s != ',') {
        if (!(s = tz_parse_hms(s, 24, &secs))) {
            return -1;
        }
        r->dst_utoff = -secs;
    }
    if (!*s) {
        /* no dates: POSIX leaves them to the implementation; glibc and tzcode use the US rules */
        s = ",M3.2.0,M11.1.0";
    }
    if (*s++ != ',' || !(s = tz_parse_change(s, &r->start)) || *s++ != ',' ||
        !(s = tz_parse_change(s, &r->end))) {
        return -1;
    }
    return *s ? -1 : 0;
}

/* ---- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---- */

static int64_t tz_floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int tz_is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int64_t tz_days_from_civil(int64_t y, int m, int d)
{
    static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t y1 = y - 1;
    /* days from 0001-01-01 to y-01-01, then shift to the Unix epoch (719162 days later) */
    int64_t days = y1 * 365 + tz_floor_div(y1, 4) - tz_floor_div(y1, 100) + tz_floor_div(y1, 400);
    days += before[m - 1] + (m > 2 && tz_is_leap(y)) + d - 1;
    return days - 719162;
}

static int64_t tz_year_of_days(int64_t days)
{
    /* an estimate from the mean year, then corrected: at most a step or two */
    int64_t y = 1970 + tz_floor_div(days * 400, 146097);
    while (tz_days_from_civil(y, 1, 1) > days) {
        y--;
    }
    while (tz_days_from_civil(y + 1, 1, 1) <= days) {
        y++;
    }
    return y;
}

/* The day (since the epoch) on which change c falls in year y. */
static int64_t tz_change_day(const struct tz_change *c, int64_t y)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t jan1 = tz_days_from_civil(y, 1, 1);
    if (c->kind == TZ_DAY_JULIAN) {
        return jan1 + c->n - 1 + (tz_is_leap(y) && c->n >= 60);
    }
    if (c->kind == TZ_DAY_ZERO_BASED) {
        return jan1 + c->n;
    }
    int64_t first = tz_days_from_civil(y, c->month, 1);
    int first_wday = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
    int len = mdays[c->month - 1] + (c->month == 2 && tz_is_leap(y));
    int day = (c->wday - first_wday + 7) % 7 + (c->week - 1) * 7;
    while (day >= len) {
        day -= 7;
    }
    return first + day;
}

static void tz_rule_at(const struct tz_rule *r, int64_t t, struct tzfile_local *out)
{
    int dst = 0;
    if (r->has_dst) {
        int64_t y = tz_year_of_days(tz_floor_div(t, 86400));
        int64_t start = tz_change_day(&r->start, y) * 86400 + r->start.secs - r->std_utoff;
        int64_t end = tz_change_day(&r->end, y) * 86400 + r->end.secs - r->dst_utoff;
        /* the southern hemisphere's DST spans the new year: it is the time outside [end, start) */
        dst = start <= end ? (t >= start && t < end) : (t < end || t >= start);
    }
    out->utoff = dst ? r->dst_utoff : r->std_utoff;
    out->isdst = dst;
    snprintf(out->abbrev, sizeof out->abbrev, "%s", dst ? r->dst_abbr : r->std_abbr);
}

/* ---- the TZif file ---- */

struct tz_counts {
    uint32_t isut, isstd, leap, time, type, chr;
};

static uint32_t tz_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t tz_be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)tz_be32(p) << 32 | tz_be32(p + 4));
}

/* The header at p (len bytes left): its version (1 to 4) and counts, or -1. */
static int tz_header(const unsigned char *p, size_t len, struct tz_counts *c)
{
    if (len < TZ_HEADER || memcmp(p, "TZif", 4) != 0) {
        return -1;
    }
    int version = p[4] == 0 ? 1 : p[4] >= '2' && p[4] <= '4' ? p[4] - '0' : -1;
    c->isut = tz_be32(p + 20);
    c->isstd = tz_be32(p + 24);
    c->leap = tz_be32(p + 28);
    c->time = tz_be32(p + 32);
    c->type = tz_be32(p + 36);
    c->chr = tz_be32(p + 40);
    if (c->type == 0 || c->type > TZ_MAX_TYPES || c->chr == 0 || c->chr > TZ_MAX_CHARS ||
        c->time > TZ_MAX_TIMES || c->leap > TZ_MAX_TIMES || (c->isut && c->isut != c->type) ||
        (c->isstd && c->isstd != c->type)) {
        return -1;
    }
    return version;
}

static size_t tz_block_size(const struct tz_counts *c, size_t timesize)
{
    return c->time * timesize + c->time + c->type * 6 + c->chr + c->leap * (timesize + 4) +
           c->isstd + c->isut;
}

static void tz_zone_free(struct tz_zone *z)
{
    if (z) {
        free(z->times);
        free(z->idx);
        free(z->types);
        free(z->chars);
        free(z);
    }
}

/* The data block at p (its size checked by the caller) into z. 0 or -1. */
static int tz_block(const unsigned char *p, const struct tz_counts *c, size_t timesize,
                    struct tz_zone *z)
{
    z->n_times = c->time;
    z->n_types = c->type;
    z->times = malloc((c->time ? c->time : 1) * sizeof *z->times);
    z->idx = malloc(c->time ? c->time : 1);
    z->types = malloc(c->type * sizeof *z->types);
    z->chars = malloc(c->chr + 1);
    if (!z->times || !z->idx || !z->types || !z->chars) {
        return -1;
    }
    for (uint32_t i = 0; i < c->time; i++, p += timesize) {
        z->times[i] = timesize == 8 ? tz_be64(p) : (int32_t)tz_be32(p);
        if (i > 0 && z->times[i] <= z->times[i - 1]) {
            return -1;
        }
    }
    for (uint32_t i = 0; i < c->time; i++, p++) {
        z->idx[i] = *p;
        if (*p >= c->type) {
            return -1;
        }
    }
    for (uint32_t i = 0; i < c->type; i++, p += 6) {
        z->types[i].utoff = (int32_t)tz_be32(p);
        z->types[i].isdst = p[4];
        z->types[i].abbr = p[5];
        if (p[4] > 1 || p[5] >= c->chr || z->types[i].utoff == INT32_MIN) {
            return -1;
        }
    }
    memcpy(z->chars, p, c->chr);
    z->chars[c->chr] = '\0';
    return 0;
}

/* Parse a whole file's bytes into z. 0 or -1. */
static int tz_parse(const unsigned char *buf, size_t len, struct tz_zone *z)
{
    struct tz_counts c;
    int version = tz_header(buf, len, &c);
    size_t v1 = tz_block_size(&c, 4);
    if (version < 0 || c.leap || len - TZ_HEADER < v1) {
        return -1; /* leap-second zones ("right/") would need their own arithmetic */
    }
    if (version == 1) {
        return tz_block(buf + TZ_HEADER, &c, 4, z);
    }
    buf += TZ_HEADER + v1;
    len -= TZ_HEADER + v1;
    if (tz_header(buf, len, &c) < 0 || c.leap || len - TZ_HEADER < tz_block_size(&c, 8) ||
        tz_block(buf + TZ_HEADER, &c, 8, z) < 0) {
        return -1;
    }
    buf += TZ_HEADER + tz_block_size(&c, 8);
    len -= TZ_HEADER + tz_block_size(&c, 8);
    /* the footer: "\n" rule "\n"; an empty rule means none */
    const unsigned char *nl = len > 1 && buf[0] == '\n' ? memchr(buf + 1, '\n', len - 1) : NULL;
    char rule[128];
    if (!nl || (size_t)(nl - buf - 1) >= sizeof rule) {
        return -1;
    }
    memcpy(rule, buf + 1, (size_t)(nl - buf - 1));
    rule[nl - buf - 1] = '\0';
    if (rule[0]) {
        if (tz_parse_rule(rule, &z->rule) < 0) {
            return -1;
        }
        z->has_rule = 1;
    }
    return 0;
}

/* Read and parse zone's file, or NULL. */
static struct tz_zone *tz_load(const char *zone)
{
    char path[PATH_MAX];
    struct stat st;
    unsigned char *buf = NULL;
    struct tz_zone *z = NULL;
    size_t got = 0;
    int fd;

    if (!tzfile_valid_zone(zone)) {
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s", TZFILE_DIR, zone);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TZ_FILE_MAX ||
        !(buf = malloc((size_t)st.st_size + 1)) || !(z = calloc(1, sizeof *z))) {
        goto fail;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            goto fail;
        }
        got += (size_t)n;
    }
    if (tz_parse(buf, got, z) < 0) {
        goto fail;
    }
    snprintf(z->name, sizeof z->name, "%s", zone);
    close(fd);
    free(buf);
    return z;
fail:
    close(fd);
    free(buf);
    tz_zone_free(z);
    return NULL;
}

/* ---- lookups ---- */

static void tz_type_at(const struct tz_zone *z, int type, struct tzfile_local *out)
{
    out->utoff = z->types[type].utoff;
    out->isdst = z->types[type].isdst;
    snprintf(out->abbrev, sizeof out->abbrev, "%s", z->chars + z->types[type].abbr);
}

static void tz_zone_at(const struct tz_zone *z, int64_t t, struct tzfile_local *out)
{
    uint32_t lo = 0, hi = z->n_times;
    if (z->n_times == 0 || t < z->times[0]) {
        tz_type_at(z, 0, out); /* RFC 8536: before the first transition, the first type */
        return;
    }
    if (z->has_rule && t >= z->times[z->n_times - 1]) {
        tz_rule_at(&z->rule, t, out);
        return;
    }
    while (hi - lo > 1) { /* times[lo] <= t < times[hi] */
        uint32_t mid = lo + (hi - lo) / 2;
        if (z->times[mid] <= t) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    tz_type_at(z, z->idx[lo], out);
}

/* The cached zone (loading it, evicting the least recently used), or NULL. Under tz_lock. */
static struct tz_zone *tz_find(const char *zone)
{
    int slot = 0;
    for (int i = 0; i < TZ_CACHE_ZONES; i++) {
        if (tz_cache[i] && strcmp(tz_cache[i]->name, zone) == 0) {
            tz_cache[i]->used = ++tz_clock;
            return tz_cache[i];
        }
        if (!tz_cache[i] || (tz_cache[slot] && tz_cache[i]->used < tz_cache[slot]->used)) {
            slot = i;
        }
    }
    struct tz_zone *z = tz_load(zone);
    if (z) {
        tz_zone_free(tz_cache[slot]);
        tz_cache[slot] = z;
        z->used = ++tz_clock;
    }
    return z;
}

int tzfile_lookup(const char *zone, int64_t t, struct tzfile_local *out)
{
    struct tz_zone *z;
    if (strlen(zone) > TZ_NAME_MAX) {
        return -1;
    }
    pthread_mutex_lock(&tz_lock);
    z = tz_find(zone);
    if (z) {
        tz_zone_at(z, t, out);
    }
    pthread_mutex_unlock(&tz_lock);
    return z ? 0 : -1;
}

void tzfile_clear_cache(void)
{
    pthread_mutex_lock(&tz_lock);
    for (int i = 0; i < TZ_CACHE_ZONES; i++) {
        tz_zone_free(tz_cache[i]);
        tz_cache[i] = NULL;
    }
    pthread_mutex_unlock(&tz_lock);
}
