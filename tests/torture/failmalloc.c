/* failmalloc.c — allocation-failure torture in the style of curl's `runtests -t`: linked into a
 * test program with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup, it makes the
 * Nth allocation made by our own code (core/ and the Lua allocator in budget.c) fail, N from the
 * environment PMB_FAIL_AT (0 or unset: none fails). In the bot built for the e2e torture the Lua
 * heap is counted apart (PMB_FAIL_LUA_AT, below). At exit it writes how many allocations it saw
 * ("C LUA") to PMB_FAIL_COUNT_FILE, so the runners know the range of N to cover. The real allocator
 * underneath is ASan's, so what a failure path leaks or touches after freeing is reported. */
#include <execinfo.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);

static unsigned long failmalloc_seen;
static unsigned long failmalloc_at;
/* The Lua heap's own allocations (budget_alloc's realloc, renamed to failmalloc_lua_realloc when
 * the bot is built for the e2e torture): counted apart, failing at PMB_FAIL_LUA_AT, so that the C
 * code's allocations can be covered for every N and the Lua heap's (Lua's own out-of-memory
 * path, tens of thousands of them) separately. */
static unsigned long failmalloc_lua_seen;
static unsigned long failmalloc_lua_at;
static int failmalloc_ready;

static void failmalloc_report(void)
{
    const char *path = getenv("PMB_FAIL_COUNT_FILE");
    if (path) {
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%lu %lu\n", failmalloc_seen, failmalloc_lua_seen);
            fclose(f);
        }
    }
}

/* Reads the environment once (the first allocation of the process). */
static void failmalloc_init(void)
{
    if (!failmalloc_ready) {
        const char *at = getenv("PMB_FAIL_AT");
        const char *lua_at = getenv("PMB_FAIL_LUA_AT");
        failmalloc_ready = 1;
        failmalloc_at = at ? strtoul(at, NULL, 10) : 0;
        failmalloc_lua_at = lua_at ? strtoul(lua_at, NULL, 10) : 0;
        atexit(failmalloc_report);
    }
}

/* With PMB_FAIL_TRACE set, the failing allocation's call stack goes to stderr (for finding
 * which allocation an N is; addresses resolve with addr2line -e BINARY). */
static void failmalloc_trace(const char *which, unsigned long n)
{
    if (getenv("PMB_FAIL_TRACE")) {
        void *frames[24];
        int depth = backtrace(frames, 24);
        fprintf(stderr, "failmalloc: failing %s allocation %lu\n", which, n);
        backtrace_symbols_fd(frames, depth, 2);
    }
}

/* 1 when this allocation is the one that fails */
static int failmalloc_now(void)
{
    failmalloc_init();
    /* atomic: the bot allocates on two threads */
    unsigned long n = __atomic_add_fetch(&failmalloc_seen, 1, __ATOMIC_RELAXED);
    if (n != failmalloc_at) {
        return 0;
    }
    failmalloc_trace("C", n);
    return 1;
}

void *__wrap_malloc(size_t size)
{
    return failmalloc_now() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return failmalloc_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    /* a shrink or a free through realloc cannot fail usefully: only growth is counted */
    if (size == 0 || !failmalloc_now()) {
        return __real_realloc(p, size);
    }
    return NULL;
}

char *__wrap_strdup(const char *s)
{
    return failmalloc_now() ? NULL : __real_strdup(s);
}

void *failmalloc_lua_realloc(void *p, size_t size)
{
    failmalloc_init();
    /* Lua's contract: an allocator never fails to shrink a block. Only growth is counted. */
    if (p && size <= malloc_usable_size(p)) {
        return __real_realloc(p, size);
    }
    unsigned long n = __atomic_add_fetch(&failmalloc_lua_seen, 1, __ATOMIC_RELAXED);
    if (n == failmalloc_lua_at) {
        failmalloc_trace("Lua", n);
        return NULL;
    }
    return __real_realloc(p, size);
}
