/* ratelimit.h — the pure policy parts of http.c: per-method rate gates (closed by a 429),
 * Retry-After parsing, exponential backoff with full jitter, retry budgets and the host
 * allow-list that decides who may receive the bearer token. No I/O, no clock reads: callers pass
 * "now", so every rule here is unit-tested (tests/c/test_ratelimit.c). Only http.c calls it. */
#ifndef PMB_RATELIMIT_H
#define PMB_RATELIMIT_H

#include <stddef.h>

/* Retry-After with no value or an unparsable one: wait this long (Slack's Tier 1 window is a
 * minute; the Python SDK falls back to 30 s for apps.connections.open). */
#define RATELIMIT_DEFAULT_RETRY_AFTER 30.0
/* A longer Retry-After is clamped: a buggy or hostile answer must not park a method for hours. */
#define RATELIMIT_MAX_RETRY_AFTER 600.0
/* 429s one Web API call may absorb before it fails with "ratelimited". Separate from max_retries:
 * a method limited to 1 request a minute (the 2025 non-Marketplace limit) must still get through
 * when several calls queue behind the gate. */
#define RATELIMIT_MAX_429 10
/* Backoff for 5xx / timeouts / connection errors: full jitter in [0, min(cap, base * 2^n)]. */
#define RATELIMIT_BACKOFF_BASE 0.5
#define RATELIMIT_BACKOFF_CAP 30.0

/* Seconds to wait for a Retry-After header value: delta-seconds ("120") or an HTTP-date
 * ("Wed, 21 Oct 2015 07:28:00 GMT", relative to now_wall). NULL/empty/invalid ->
 * RATELIMIT_DEFAULT_RETRY_AFTER; a date in the past -> 0; clamped to RATELIMIT_MAX_RETRY_AFTER. */
double ratelimit_retry_after(const char *value, double now_wall);

/* Full-jitter backoff before retry number `retry` (1 = first retry): rnd01 in [0,1) is the random
 * draw (passed in for tests). Result in [0, min(cap, base * 2^(retry-1))]. */
double ratelimit_backoff(int retry, double base, double cap, double rnd01);

/* May another retry start? retries_done so far vs max_retries, and the retry would start at
 * (now + wait) which must stay within started + max_retry_time. 1 = yes. */
int ratelimit_may_retry(int retries_done, int max_retries, double started, double now, double wait,
                        double max_retry_time);

/* Per-method gates. A gate closes until a monotonic time; open_at tells when a method may go. */
struct ratelimit_gates;
struct ratelimit_gates *ratelimit_gates_new(void); /* free with ratelimit_gates_free */
void ratelimit_gates_free(struct ratelimit_gates *g);
/* Close method's gate until `until` (keeps the later of the old and new times). 0 or -1 (OOM). */
int ratelimit_gate_close(struct ratelimit_gates *g, const char *method, double until);
/* 0 when the method may go at `now`, else the monotonic time its gate opens. */
double ratelimit_gate_open_at(const struct ratelimit_gates *g, const char *method, double now);
/* After a 429 the method goes single file (one call in flight) until an answer that is not a
 * 429 arrives: otherwise every queued call rushes the reopened gate and all but one burn a 429
 * from their budget. 1 = single file. */
int ratelimit_gate_single(const struct ratelimit_gates *g, const char *method);
/* A non-429 answer for the method: back to normal (no gate, no single file). */
void ratelimit_gate_clear(struct ratelimit_gates *g, const char *method);

/* Allow-list. hostport is "host" or "host:port" (port only when the URL names one that is not
 * the scheme's default), lowercase. Patterns: "slack.com" (exact), "*.slack.com" (any subdomain,
 * not slack.com itself), either with ":port" to require that explicit port. A pattern without a
 * port never matches a hostport with one. 1 = allowed. */
int ratelimit_host_allowed(const char *hostport, const char *const *patterns, size_t n);

#endif
