/* dedupe.c — the bounded TTL set of dedupe.h. Entries live in a ring in insertion order (so the
 * oldest is always at the head: expiry and eviction pop it), and a chained hash table indexes the
 * ring slots. Times are monotonic, so insertion order is also expiry order. Called by socketmode.c;
 * calls only libc. */
#include "net/dedupe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct dedupe_entry {
    double t;      /* when it was added */
    uint32_t hash; /* FNV-1a of key */
    size_t next;   /* next ring slot + 1 in the same bucket chain, 0 = end */
    char key[];
};

struct dedupe {
    size_t max;
    double ttl;
    struct dedupe_entry **ring; /* max slots; live ones are head .. head+count-1 (mod max) */
    size_t head, count;
    size_t *buckets; /* ring slot + 1 of the chain's first entry, 0 = empty */
    size_t mask;     /* buckets - 1 (a power of two >= 2 * max) */
};

static uint32_t dedupe_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

struct dedupe *dedupe_new(size_t max, double ttl)
{
    struct dedupe *d;
    size_t nb = 16;
    if (max == 0 || max > ((size_t)1 << 28) || !(ttl > 0)) {
        return NULL;
    }
    while (nb < 2 * max) {
        nb <<= 1;
    }
    d = calloc(1, sizeof *d);
    if (!d) {
        return NULL;
    }
    d->max = max;
    d->ttl = ttl;
    d->mask = nb - 1;
    d->ring = calloc(max, sizeof *d->ring);
    d->buckets = calloc(nb, sizeof *d->buckets);
    if (!d->ring || !d->buckets) {
        dedupe_free(d);
        return NULL;
    }
    return d;
}

void dedupe_free(struct dedupe *d)
{
    if (!d) {
        return;
    }
    if (d->ring) {
        for (size_t i = 0; i < d->count; i++) {
            free(d->ring[(d->head + i) % d->max]);
        }
    }
    free(d->ring);
    free(d->buckets);
    free(d);
}

/* Remove the oldest entry: unlink it from its chain, free it, advance the head. */
static void dedupe_pop_oldest(struct dedupe *d)
{
    size_t slot = d->head;
    struct dedupe_entry *e = d->ring[slot];
    size_t *link = &d->buckets[e->hash & d->mask];
    while (*link && *link != slot + 1) {
        link = &d->ring[*link - 1]->next;
    }
    if (*link) {
        *link = e->next;
    }
    free(e);
    d->ring[slot] = NULL;
    d->head = (d->head + 1) % d->max;
    d->count--;
}

static void dedupe_expire(struct dedupe *d, double now)
{
    while (d->count > 0 && d->ring[d->head]->t + d->ttl <= now) {
        dedupe_pop_oldest(d);
    }
}

static struct dedupe_entry *dedupe_find(struct dedupe *d, const char *key, uint32_t h)
{
    size_t link = d->buckets[h & d->mask];
    while (link) {
        struct dedupe_entry *e = d->ring[link - 1];
        if (e->hash == h && strcmp(e->key, key) == 0) {
            return e;
        }
        link = e->next;
    }
    return NULL;
}

int dedupe_contains(struct dedupe *d, const char *key, double now)
{
    dedupe_expire(d, now);
    return dedupe_find(d, key, dedupe_hash(key)) != NULL;
}

static int dedupe_insert(struct dedupe *d, const char *key, uint32_t h, double now)
{
    size_t len = strlen(key);
    struct dedupe_entry *e = malloc(sizeof *e + len + 1);
    size_t slot;
    if (!e) {
        return -1;
    }
    if (d->count == d->max) {
        dedupe_pop_oldest(d);
    }
    slot = (d->head + d->count) % d->max;
    e->t = now;
    e->hash = h;
    memcpy(e->key, key, len + 1);
    e->next = d->buckets[h & d->mask];
    d->buckets[h & d->mask] = slot + 1;
    d->ring[slot] = e;
    d->count++;
    return 0;
}

int dedupe_add(struct dedupe *d, const char *key, double now)
{
    uint32_t h = dedupe_hash(key);
    dedupe_expire(d, now);
    if (dedupe_find(d, key, h)) {
        return 0;
    }
    return dedupe_insert(d, key, h, now);
}

int dedupe_check_add(struct dedupe *d, const char *key, double now)
{
    uint32_t h = dedupe_hash(key);
    dedupe_expire(d, now);
    if (dedupe_find(d, key, h)) {
        return 1;
    }
    return dedupe_insert(d, key, h, now) < 0 ? -1 : 0;
}

size_t dedupe_count(struct dedupe *d, double now)
{
    dedupe_expire(d, now);
    return d->count;
}
