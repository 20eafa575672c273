/* log.h — logfmt lines on stderr, one per event, with every token redacted.
 * Everyone logs through here; log.c knows the configured tokens (log_add_secret) and the token
 * shapes (xoxb-, xoxp-, xapp-, ...) and replaces them before a byte reaches stderr. */
#ifndef PMB_LOG_H
#define PMB_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
enum log_level log_level_from_name(const char *name); /* unknown -> LOG_INFO */

/* Remember a secret (a configured token): any occurrence is redacted from then on. 0, or -1 when
 * it could not be remembered (no memory, or too many): the caller must not go on with it. */
int log_add_secret(const char *secret);

/* log_event(LOG_INFO, "socket mode connected", "url", url, "attempt", "3", NULL):
 * msg plus key/value string pairs ended by NULL. Values are quoted when needed. */
void log_event(enum log_level level, const char *msg, ...) __attribute__((sentinel));

/* Same, with the pairs as arrays (for the Lua binding). */
void log_eventv(enum log_level level, const char *msg, const char *const *keys,
                const char *const *values, size_t n);

/* Redact tokens in place-independent way: writes at most out_size-1 bytes of `in` with every
 * token replaced by "xoxb-***" style markers. Returns the length written. Pure; unit-tested. */
size_t log_redact(const char *in, size_t in_len, char *out, size_t out_size);

/* Forget the secrets (at exit). */
void log_shutdown(void);

/* Test hook: direct output to a buffer callback instead of stderr (NULL restores stderr). */
void log_set_sink(void (*sink)(const char *line, size_t len, void *arg), void *arg);

#endif
