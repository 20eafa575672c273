/* batch_arena.c — the `render` subcommand's Lua heap, on transparent huge pages. host_gen.c asks
 * for it when it builds a render generation; budget.c (budget_alloc) then allocates that
 * generation's memory here instead of with realloc/free.
 *
 * Why: a 20,000-message render touches ~30 MB of fresh memory, and each first touch of a 4 KiB
 * page is a page fault (~9,000, at ~6-10 µs each on the VMs we measured); a 2 MiB huge page is
 * one fault for 512 pages, and the interpreter, chasing pointers across a heap of 30-50 MB,
 * misses the TLB far less. Paired with the ordinary heap (issue 18, farm-bench): page faults
 * 8,735 -> 898, system time 0.087 -> 0.032 s, user time 0.466 -> 0.406 s, wall 0.549 -> 0.451 s.
 * The system's THP mode is usually "madvise": only memory advised with MADV_HUGEPAGE gets them.
 *
 * How: a jemalloc arena of its own (the bot links jemalloc, Makefile) whose extent hooks hand out
 * address space from large regions mapped once and advised MADV_HUGEPAGE, bump by bump. The arena
 * never gives memory back (no purge, no unmap: its decay is off): right for a process that
 * renders one report and exits, wrong for the long-running bot, whose peak resident memory
 * huge pages would raise (issue 18 measured +15 MB), so the bot never asks for it.
 *
 * jemalloc's functions are weak references: a binary without jemalloc (the sanitizer build, the
 * C unit tests) sees them as NULL and gets no arena (batch_arena_open returns 0): budget.c then
 * uses realloc/free as always. */
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "host/batch_arena.h"

#pragma weak mallctl
#pragma weak mallocx
#pragma weak rallocx
#pragma weak dallocx

#define BATCH_HUGE_PAGE ((size_t)2 << 20)
/* Address space per region: reserved, not memory (MAP_NORESERVE); pages exist once touched. */
#define BATCH_REGION_BYTES ((size_t)1 << 30)
#define BATCH_THP_MODE "/sys/kernel/mm/transparent_hugepage/enabled"

/* the current region's free part; the lock: jemalloc may ask from any thread that uses the arena */
static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;
static char *batch_next, *batch_end;
static int batch_flags; /* mallocx flags: the arena and its cache; 0 = none */
static int batch_tried; /* batch_arena_open ran once: an arena is made at most once */

/* A new region of at least `need` bytes, starting on a huge-page boundary. 0 or -1. */
static int batch_region(size_t need)
{
    size_t len = need > BATCH_REGION_BYTES ? need : BATCH_REGION_BYTES;
    char *map, *start;
    len = (len + BATCH_HUGE_PAGE - 1) & ~(BATCH_HUGE_PAGE - 1);
    map = mmap(NULL, len + BATCH_HUGE_PAGE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        return -1;
    }
    start = (char *)(((uintptr_t)map + BATCH_HUGE_PAGE - 1) & ~(uintptr_t)(BATCH_HUGE_PAGE - 1));
    (void)madvise(start, len, MADV_HUGEPAGE); /* only a hint: the memory works without it */
    batch_next = start;
    batch_end = start + len;
    return 0;
}

/* jemalloc asks for a new extent: `size` bytes aligned to `alignment`, fresh (zeroed) memory. */
static void *batch_extent_alloc(extent_hooks_t *hooks, void *new_addr, size_t size,
                                size_t alignment, bool *zero, bool *commit, unsigned arena_ind)
{
    uintptr_t at;
    (void)hooks;
    (void)arena_ind;
    if (new_addr != NULL) {
        return NULL; /* a given address cannot be promised */
    }
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        return NULL;
    }
    pthread_mutex_lock(&batch_lock);
    at = ((uintptr_t)batch_next + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (batch_next == NULL || at + size > (uintptr_t)batch_end || at + size < at) {
        if (batch_region(size + alignment) < 0) {
            pthread_mutex_unlock(&batch_lock);
            return NULL;
        }
        at = ((uintptr_t)batch_next + alignment - 1) & ~(uintptr_t)(alignment - 1);
    }
    batch_next = (char *)(at + size);
    pthread_mutex_unlock(&batch_lock);
    *zero = true; /* never handed out before: as the kernel gave it */
    *commit = true;
    return (void *)at;
}

/* Giving an extent back is refused (true): jemalloc keeps it and uses it again. */
static bool batch_extent_keep(extent_hooks_t *hooks, void *addr, size_t size, bool committed,
                              unsigned arena_ind)
{
    (void)hooks, (void)addr, (void)size, (void)committed, (void)arena_ind;
    return true;
}

static void batch_extent_destroy(extent_hooks_t *hooks, void *addr, size_t size, bool committed,
                                 unsigned arena_ind)
{
    (void)hooks, (void)addr, (void)size, (void)committed, (void)arena_ind;
}

/* Splitting and merging extents are bookkeeping inside regions that are never unmapped: allowed. */
static bool batch_extent_split(extent_hooks_t *hooks, void *addr, size_t size, size_t size_a,
                               size_t size_b, bool committed, unsigned arena_ind)
{
    (void)hooks, (void)addr, (void)size, (void)size_a, (void)size_b, (void)committed,
        (void)arena_ind;
    return false;
}

static bool batch_extent_merge(extent_hooks_t *hooks, void *addr_a, size_t size_a, void *addr_b,
                               size_t size_b, bool committed, unsigned arena_ind)
{
    (void)hooks, (void)addr_a, (void)size_a, (void)addr_b, (void)size_b, (void)committed,
        (void)arena_ind;
    return false;
}

/* commit, decommit and the purges are left NULL: jemalloc then never decommits or purges. */
static extent_hooks_t batch_hooks = {
    batch_extent_alloc, batch_extent_keep, batch_extent_destroy, NULL, NULL, NULL, NULL,
    batch_extent_split, batch_extent_merge};

/* Whether the kernel gives huge pages to advised memory: its THP mode is not "never". */
static int batch_thp_possible(void)
{
    char mode[128] = "";
    FILE *f = fopen(BATCH_THP_MODE, "r");
    if (!f) {
        return 0;
    }
    if (!fgets(mode, sizeof mode, f)) {
        mode[0] = '\0';
    }
    fclose(f);
    return strstr(mode, "[always]") != NULL || strstr(mode, "[madvise]") != NULL;
}

int batch_arena_open(void)
{
    unsigned arena, cache;
    size_t len = sizeof arena;
    ssize_t never = -1;
    extent_hooks_t *hooks = &batch_hooks;
    char name[64];

    if (batch_tried) {
        return batch_flags != 0;
    }
    batch_tried = 1;
    if (!mallctl || !mallocx || !rallocx || !dallocx || !batch_thp_possible()) {
        return 0;
    }
    /* the first region now: where the kernel will not reserve it (strict overcommit), no arena */
    if (batch_next == NULL && batch_region(0) < 0) {
        return 0;
    }
    if (mallctl("arenas.create", &arena, &len, &hooks, sizeof hooks) != 0) {
        return 0;
    }
    /* no decay: nothing is purged or given back while the render runs */
    snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", arena);
    (void)mallctl(name, NULL, NULL, &never, sizeof never);
    snprintf(name, sizeof name, "arena.%u.muzzy_decay_ms", arena);
    (void)mallctl(name, NULL, NULL, &never, sizeof never);
    len = sizeof cache;
    if (mallctl("tcache.create", &cache, &len, NULL, 0) != 0) {
        return 0; /* (the arena stays unused) */
    }
    batch_flags = MALLOCX_ARENA(arena) | MALLOCX_TCACHE(cache);
    return 1;
}

void *batch_arena_realloc(void *ptr, size_t size)
{
    return ptr ? rallocx(ptr, size, batch_flags) : mallocx(size, batch_flags);
}

void batch_arena_free(void *ptr)
{
    if (ptr) {
        dallocx(ptr, batch_flags);
    }
}
