/* strcopy.h — the two string copies the core makes everywhere: a NULL-safe strdup and a
 * NUL-terminated copy of n bytes. Plain malloc; NULL when the allocation fails (callers check).
 * Used by http/, net/ and host/; calls nothing but libc. */
#ifndef PMB_STRCOPY_H
#define PMB_STRCOPY_H

#include <stddef.h>

/* A malloc'd copy of s; NULL stays NULL. */
char *str_copy(const char *s);

/* A malloc'd copy of the n bytes at s (s may be NULL when n is 0), with a NUL after them. */
char *str_copy_n(const char *s, size_t n);

#endif
