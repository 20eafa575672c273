/* dedupe.h — a bounded set of recently seen ids (Socket Mode event_id / envelope_id) with a TTL.
 * A hash set over a FIFO ring: add, lookup and expiry are O(1); memory never exceeds `max` ids.
 * Used by socketmode.c to hand each Slack event to the scripts once; pure, unit-tested. */
#ifndef PMB_DEDUPE_H
#define PMB_DEDUPE_H

#include <stddef.h>

struct dedupe;

/* max: how many ids at most (oldest evicted first); ttl: seconds an id is remembered.
 * Returns NULL on bad arguments or out of memory. Free with dedupe_free. */
struct dedupe *dedupe_new(size_t max, double ttl);
void dedupe_free(struct dedupe *d); /* safe on NULL */

/* `now` is monotonic seconds and must not go backwards between calls. */
int dedupe_contains(struct dedupe *d, const char *key, double now); /* 1 seen, 0 not */
/* Remember key (no-op if already there). 0, or -1 when out of memory. */
int dedupe_add(struct dedupe *d, const char *key, double now);
/* contains + add: returns 1 if key was already there, else remembers it and returns 0
 * (-1 on out of memory). */
int dedupe_check_add(struct dedupe *d, const char *key, double now);

size_t dedupe_count(struct dedupe *d, double now); /* ids currently remembered */

#endif
