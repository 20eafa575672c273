/* batch_arena.h — the render subcommand's Lua heap on transparent huge pages (batch_arena.c). */
#ifndef PMB_BATCH_ARENA_H
#define PMB_BATCH_ARENA_H

#include <stddef.h>

/* Make the arena (once per process). 1 when it is ready; 0 when this binary has no jemalloc, the
 * kernel gives no huge pages (THP "never") or jemalloc refused: then use realloc/free. */
int batch_arena_open(void);
/* realloc/free in the arena (only after batch_arena_open returned 1); size > 0. */
void *batch_arena_realloc(void *ptr, size_t size);
void batch_arena_free(void *ptr);

#endif
