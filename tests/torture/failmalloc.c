/* failmalloc.c — allocation-failure torture in the style of curl's `runtests -t`: linked into a
 * test program with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup, it makes the
 * Nth allocation made by our own code (core/ and the Lua allocator in budget.c) fail, N from the
 * environment PMB_FAIL_AT (0 or unset: none fails). At exit it writes how many allocations it saw
 * to PMB_FAIL_COUNT_FILE, so run_torture.py knows the range of N to cover. The real allocator
 * underneath is ASan's, so what a failure path leaks or touches after freeing is reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);

static unsigned long failmalloc_seen;
static unsigned long failmalloc_at;
static int failmalloc_ready;

static void failmalloc_report(void)
{
    const char *path = getenv("PMB_FAIL_COUNT_FILE");
    if (path) {
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%lu\n", failmalloc_seen);
            fclose(f);
        }
    }
}

/* 1 when this allocation is the one that fails */
static int failmalloc_now(void)
{
    if (!failmalloc_ready) {
        const char *at = getenv("PMB_FAIL_AT");
        failmalloc_ready = 1;
        failmalloc_at = at ? strtoul(at, NULL, 10) : 0;
        atexit(failmalloc_report);
    }
    /* atomic: the bot allocates on two threads */
    return __atomic_add_fetch(&failmalloc_seen, 1, __ATOMIC_RELAXED) == failmalloc_at;
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
