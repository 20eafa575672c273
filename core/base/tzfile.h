/* tzfile.h — local time in a named zone without the process's TZ: reads the zone's TZif file
 * (RFC 8536) under /usr/share/zoneinfo once, keeps it in a small cache, and answers "UTC offset,
 * abbreviation and DST flag at this UTC instant". Safe from any thread (one mutex). Called by
 * primitives_local.c (host.time_parts, host.format_time) and host_gen.c (the config's zone). */
#ifndef PMB_TZFILE_H
#define PMB_TZFILE_H

#include <stdint.h>

#define TZFILE_DIR "/usr/share/zoneinfo"

struct tzfile_local {
    int32_t utoff;   /* seconds east of UTC */
    int isdst;       /* 1 in daylight saving time */
    char abbrev[16]; /* "CET", "+0530" */
};

/* Is zone a safe name ("Europe/Berlin": no "..", not absolute, plain characters) of a regular file
 * under TZFILE_DIR? Does not read the file. */
int tzfile_valid_zone(const char *zone);

/* The local time type of zone at the UTC instant t. 0, or -1 when the zone is not valid or its file
 * cannot be read or parsed (leap-second "right/" zones are refused). */
int tzfile_lookup(const char *zone, int64_t t, struct tzfile_local *out);

/* Forget every cached zone (tests; a tzdata upgrade is picked up by a restart otherwise). */
void tzfile_clear_cache(void);

#endif
