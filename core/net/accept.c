/* accept.c — the job row written before the ack (database mode), on the transport thread. Owns a
 * libpq connection of its own (pg.c, named "transport"), used for nothing else: the script loop's
 * connection may be busy with a long statement, and an ack must not queue behind it. One
 * statement is in flight at a time; the requests that arrive meanwhile go together in the next
 * one (one INSERT of all their rows, so a burst costs a few round trips, not one each). Each
 * request also has a timer: the first of its statement and its timer to finish decides. A
 * timeout or an error means "degraded": socketmode.c acks anyway and the job runs here; the row
 * goes to a backlog written as soon as the database answers again. Called by socketmode.c
 * (accept_job) and health.c (status); transport.c starts and stops it. */
#include "net/accept.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "db/pg.h"

#define ACCEPT_KEY_MAX 200
#define ACCEPT_BACKLOG_RETRY 1.0 /* seconds between attempts to write the backlog */
#define ACCEPT_BATCH_MAX 128     /* rows in one INSERT */
#define ACCEPT_LATE 0.1          /* a timer this late means the loop did not turn */
#define ACCEPT_GRACE 0.02        /* then the answer gets this long to be read */
#define ACCEPT_SQL "SELECT pmb_job_accept($1, $2, $3, $4, $5)"
/* the rows of a batch as two arrays; RETURNING names the ones that were new */
#define ACCEPT_BATCH_SQL                                                                           \
    "INSERT INTO pmb_jobs (id, envelope, owner, lease_until, accepted_by) "                        \
    "SELECT k, pmb_envelope_scrub(e), $3, now() + $4::float8 * interval '1 second', $3 "           \
    "FROM unnest($1::text[], $2::text[]) AS u(k, e) ON CONFLICT (id) DO NOTHING RETURNING id"

struct accept_req {
    char *key;
    char *json;
    accept_done_fn done;
    void *arg;
    struct loop_timer *timer;
    double started;
    int in_batch; /* in the statement in flight */
    int decided;  /* its timer fired: done has run, only the answer is still awaited */
    int grace;    /* the timer fired late once already */
    struct accept_req *next;
};

/* A degraded job's row, written later without its envelope: its steps ran unrecorded while the
 * row was missing, so no takeover may run it again (a degraded job runs once, here). */
struct accept_backlog {
    char *key;
    struct accept_backlog *next;
};

static struct {
    int started;
    struct pg_conn *conn;
    char *owner;
    char lease[32];
    double timeout;
    struct accept_backlog *head, *tail;
    struct accept_req *queue, *queue_tail; /* waiting for the next statement */
    struct accept_req *batch;              /* in the statement in flight */
    size_t pending;
    int writing; /* a backlog row is in flight */
    struct loop_timer *retry;
    struct loop_deferred flush_soon; /* accept_retry_cb queued after a (re)connect */
    unsigned long accepted, duplicates, degraded, degraded_written;
} ac;

static void accept_flush(void);

int accept_key_ok(const char *key)
{
    size_t n = 0;
    for (const char *p = key; *p; p++, n++) {
        if (*p < 0x21 || *p > 0x7e || n >= ACCEPT_KEY_MAX) {
            return 0;
        }
    }
    return n > 0;
}

static void accept_count(const char *outcome, unsigned long *counter)
{
    char labels[48];
    (*counter)++;
    snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
    metrics_counter_add("pmb_jobs_accepted_total",
                        "requests recorded as jobs before their ack, by outcome", labels, 1);
}

static void accept_pending_gauge(void)
{
    metrics_gauge_set("pmb_jobs_degraded_pending",
                      "jobs acked without a row (the database did not answer), not written yet",
                      NULL, (double)ac.pending);
}

static void accept_req_free(struct accept_req *r)
{
    free(r->key);
    free(r->json);
    free(r);
}

/* ---- the backlog: rows of degraded jobs, written when the database is back ---- */

static void accept_backlog_add(const char *key)
{
    struct accept_backlog *b = malloc(sizeof *b);
    if (!b || !(b->key = strdup(key))) {
        free(b);
        log_event(LOG_ERROR, "job record lost: out of memory", "job", key, NULL);
        return;
    }
    b->next = NULL;
    if (ac.tail) {
        ac.tail->next = b;
    } else {
        ac.head = b;
    }
    ac.tail = b;
    ac.pending++;
    accept_pending_gauge();
}

static void accept_retry_cb(void *arg)
{
    (void)arg;
    ac.retry = NULL;
    accept_flush();
}

static void accept_backlog_done(PGresult *res, const char *error, int sent, void *arg)
{
    (void)sent;
    (void)arg;
    ac.writing = 0;
    int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok) {
        metrics_counter_add("pmb_db_errors_total", "database statements that failed",
                            "conn=\"transport\"", 1);
        log_event(LOG_DEBUG, "job record not written yet; retrying", "error",
                  error ? error : PQresultErrorMessage(res), NULL);
        PQclear(res);
        if (ac.started && !ac.retry) {
            ac.retry = loop_timer_start(ACCEPT_BACKLOG_RETRY, accept_retry_cb, NULL);
        }
        return;
    }
    int written = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
    PQclear(res);
    struct accept_backlog *b = ac.head;
    if (b) {
        ac.head = b->next;
        if (!ac.head) {
            ac.tail = NULL;
        }
        ac.pending--;
        ac.degraded_written++;
        accept_pending_gauge();
        metrics_counter_add("pmb_jobs_degraded_written_total",
                            "rows of degraded jobs written once the database answered", NULL, 1);
        log_event(LOG_INFO,
                  written ? "degraded job recorded"
                          : "degraded job's row was there already (the late answer, or the "
                            "instance that got the redelivery: fencing stops one of the two)",
                  "job", b->key, NULL);
        free(b->key);
        free(b);
    }
    accept_flush();
}

static void accept_flush(void)
{
    if (!ac.started || ac.writing || !ac.head || !pg_is_connected(ac.conn)) {
        return;
    }
    const char *params[5] = {ac.head->key, "", ac.owner, ac.lease, "true"};
    if (pg_query(ac.conn, ACCEPT_SQL, 5, params, accept_backlog_done, NULL)) {
        ac.writing = 1;
    } else if (!ac.retry) {
        ac.retry = loop_timer_start(ACCEPT_BACKLOG_RETRY, accept_retry_cb, NULL);
    }
}

static void accept_on_state(struct pg_conn *c, int connected, void *arg)
{
    (void)c;
    (void)arg;
    if (connected) {
        loop_defer(&ac.flush_soon, accept_retry_cb, NULL); /* after pg.c's own work */
    }
}

/* ---- requests, sent in batches ---- */

static void accept_send_batch(void);

/* No row in time (or an error): ack and run here; the row goes to the backlog. */
static void accept_degrade(struct accept_req *r, const char *why)
{
    accept_count("degraded", &ac.degraded);
    log_event(LOG_WARN, "job not recorded before the ack; acked and run here (degraded)", "job",
              r->key, "reason", why, NULL);
    loop_timer_cancel(r->timer);
    r->timer = NULL;
    r->decided = 1;
    if (ac.started) {
        accept_backlog_add(r->key);
    }
    r->done(ACCEPT_DEGRADED, r->arg);
}

static void accept_timeout_cb(void *arg)
{
    struct accept_req *r = arg;
    r->timer = NULL;
    if (!r->grace && loop_now_mono() - r->started > ac.timeout + ACCEPT_LATE) {
        /* the loop itself was late (the process was paused): the answer may be waiting on the
         * socket, and libuv runs timers before it reads; look once more after one poll */
        r->grace = 1;
        r->timer = loop_timer_start(ACCEPT_GRACE, accept_timeout_cb, r);
        return;
    }
    char why[80];
    snprintf(why, sizeof why, "no answer within %.0f ms", ac.timeout * 1000.0);
    accept_degrade(r, why);
    if (!r->in_batch) { /* still queued: it will not be sent */
        struct accept_req **p = &ac.queue;
        while (*p && *p != r) {
            p = &(*p)->next;
        }
        if (*p) {
            *p = r->next;
        }
        ac.queue_tail = NULL;
        for (struct accept_req *q = ac.queue; q; q = q->next) {
            ac.queue_tail = q;
        }
        accept_req_free(r);
    }
    accept_flush();
}

/* A PostgreSQL array literal of the strings: {"a","b\"c"}. NULL on OOM. */
static char *accept_array(struct accept_req *list, int keys)
{
    size_t size = 3;
    for (struct accept_req *r = list; r; r = r->next) {
        size += 3 + 2 * strlen(keys ? r->key : r->json);
    }
    char *out = malloc(size), *w = out;
    if (!out) {
        return NULL;
    }
    *w++ = '{';
    for (struct accept_req *r = list; r; r = r->next) {
        if (r != list) {
            *w++ = ',';
        }
        *w++ = '"';
        for (const char *c = keys ? r->key : r->json; *c; c++) {
            if (*c == '"' || *c == '\\') {
                *w++ = '\\';
            }
            *w++ = *c;
        }
        *w++ = '"';
    }
    *w++ = '}';
    *w = '\0';
    return out;
}

static void accept_batch_answer(PGresult *res, const char *error, int sent, void *arg)
{
    (void)sent;
    (void)arg;
    struct accept_req *batch = ac.batch;
    ac.batch = NULL;
    int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    char why[300];
    if (!ok) {
        snprintf(why, sizeof why, "%s", error ? error : PQresultErrorMessage(res));
        why[strcspn(why, "\n")] = '\0';
        metrics_counter_add("pmb_db_errors_total", "database statements that failed",
                            "conn=\"transport\"", 1);
    }
    double now = loop_now_mono();
    while (batch) {
        struct accept_req *r = batch;
        batch = r->next;
        if (!r->decided && !ok) {
            accept_degrade(r, why);
        } else if (!r->decided) {
            int fresh = 0;
            for (int i = 0; i < PQntuples(res) && !fresh; i++) {
                fresh = strcmp(PQgetvalue(res, i, 0), r->key) == 0;
            }
            loop_timer_cancel(r->timer);
            r->timer = NULL;
            metrics_observe("pmb_db_accept_seconds", "the job insert on the ack path", NULL,
                            now - r->started);
            accept_count(fresh ? "new" : "duplicate", fresh ? &ac.accepted : &ac.duplicates);
            if (!fresh) {
                log_event(LOG_INFO, "redelivered request already has a job; acked, not run again",
                          "job", r->key, NULL);
            }
            r->done(fresh ? ACCEPT_NEW : ACCEPT_DUPLICATE, r->arg);
        }
        accept_req_free(r);
    }
    PQclear(res);
    accept_send_batch();
    accept_flush();
}

/* Send what is queued (up to ACCEPT_BATCH_MAX rows) as one statement, unless one is in flight. */
static void accept_send_batch(void)
{
    if (ac.batch || !ac.queue || !ac.started) {
        return;
    }
    struct accept_req *batch = ac.queue, *last = ac.queue;
    int n = 1;
    while (last->next && n < ACCEPT_BATCH_MAX) {
        last = last->next;
        n++;
    }
    ac.queue = last->next;
    if (!ac.queue) {
        ac.queue_tail = NULL;
    }
    last->next = NULL;
    char *keys = accept_array(batch, 1), *jsons = accept_array(batch, 0);
    const char *params[4] = {keys, jsons, ac.owner, ac.lease};
    struct pg_query *q =
        keys && jsons ? pg_query(ac.conn, ACCEPT_BATCH_SQL, 4, params, accept_batch_answer, NULL)
                      : NULL;
    free(keys);
    free(jsons);
    for (struct accept_req *r = batch; r; r = r->next) {
        r->in_batch = q != NULL;
    }
    if (q) {
        ac.batch = batch;
        return;
    }
    /* out of memory: back to the queue; their timers degrade them */
    last->next = ac.queue;
    ac.queue = batch;
    if (!ac.queue_tail) {
        ac.queue_tail = last;
    }
}

int accept_job(const char *key, const char *json, size_t len, accept_done_fn done, void *arg)
{
    struct accept_req *r = calloc(1, sizeof *r);
    if (!r || !(r->key = strdup(key)) || !(r->json = malloc(len + 1))) {
        if (r) {
            free(r->key);
        }
        free(r);
        return -1;
    }
    memcpy(r->json, json, len);
    r->json[len] = '\0';
    r->done = done;
    r->arg = arg;
    r->started = loop_now_mono();
    /* the loop's clock is the one of this iteration's start: after a pause (SIGSTOP, a slow
     * turn) it is stale, and a timer set from it would fire at once */
    uv_update_time(loop_get());
    r->timer = loop_timer_start(ac.timeout, accept_timeout_cb, r);
    if (!r->timer) { /* no timer, no bound on the ack: the caller acks without the row */
        free(r->json);
        free(r->key);
        free(r);
        return -1;
    }
    if (ac.queue_tail) {
        ac.queue_tail->next = r;
    } else {
        ac.queue = r;
    }
    ac.queue_tail = r;
    accept_send_batch(); /* pg.c sends from the loop: no answer comes inside this call */
    return 0;
}

/* ---- start, stop, status ---- */

int accept_start(const struct accept_settings *s)
{
    struct pg_settings ps = {s->conninfo, "transport", 5.0, 10.0, 2.0};
    ac.owner = strdup(s->owner);
    ac.timeout = s->timeout > 0 ? s->timeout : 0.5;
    snprintf(ac.lease, sizeof ac.lease, "%.3f", s->lease);
    ac.conn = ac.owner ? pg_open(loop_get(), &ps, accept_on_state, NULL) : NULL;
    if (!ac.conn) {
        log_event(LOG_ERROR, "could not create the transport's database connection", NULL);
        free(ac.owner);
        ac.owner = NULL;
        return -1;
    }
    ac.started = 1;
    return 0;
}

int accept_enabled(void)
{
    return ac.started;
}

void accept_stop(void)
{
    if (!ac.started) {
        return;
    }
    ac.started = 0;
    loop_timer_cancel(ac.retry);
    ac.retry = NULL;
    loop_defer_cancel(&ac.flush_soon);
    while (ac.queue) { /* never sent: acked and handed on as degraded, the bot is stopping */
        struct accept_req *r = ac.queue;
        ac.queue = r->next;
        loop_timer_cancel(r->timer);
        r->done(ACCEPT_DEGRADED, r->arg);
        accept_req_free(r);
    }
    ac.queue_tail = NULL;
    if (ac.pending) {
        char n[24];
        snprintf(n, sizeof n, "%zu", ac.pending);
        log_event(LOG_WARN, "stopping with degraded jobs not recorded", "count", n, NULL);
    }
    while (ac.head) {
        struct accept_backlog *b = ac.head;
        ac.head = b->next;
        free(b->key);
        free(b);
    }
    ac.tail = NULL;
    ac.pending = 0;
    pg_close(ac.conn, NULL, NULL);
    ac.conn = NULL;
    free(ac.owner);
    ac.owner = NULL;
}

void accept_get_status(struct accept_status *out)
{
    memset(out, 0, sizeof *out);
    out->enabled = ac.started;
    out->connected = ac.started && pg_is_connected(ac.conn);
    out->owner = ac.owner ? ac.owner : "";
    out->accepted = ac.accepted;
    out->duplicates = ac.duplicates;
    out->degraded = ac.degraded;
    out->degraded_written = ac.degraded_written;
    out->degraded_pending = ac.pending;
    out->last_error = ac.conn ? pg_last_error(ac.conn) : "";
}
