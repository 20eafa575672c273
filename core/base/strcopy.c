/* strcopy.c — NULL-safe string copies (see strcopy.h). */
#include "base/strcopy.h"

#include <stdlib.h>
#include <string.h>

char *str_copy(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *str_copy_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) {
        return NULL;
    }
    if (n) {
        memcpy(p, s, n);
    }
    p[n] = '\0';
    return p;
}
