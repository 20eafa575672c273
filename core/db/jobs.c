/* jobs.c — database mode's jobs on the script loop (jobs.h). Keeps the list of the jobs this
 * instance runs; every `renew` seconds one UPDATE per job moves its lease on (only while the
 * generation is still ours); when a job's coroutine ends, pmb_job_finish records it (retried until
 * the database takes it), or, when the job was fenced or aborted, its lease is released and the
 * other instances are woken with NOTIFY pmb_jobs. Every `sweep` seconds, and on each NOTIFY,
 * pmb_job_claim takes over one expired job at a time (SELECT ... FOR UPDATE SKIP LOCKED) and
 * hands it to the host like a new envelope. Finished jobs older than a day are deleted every ten
 * minutes. Called by main.c; calls pg.c, loop.c, log.c, metrics.c. */
#include "db/jobs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"

#define JOBS_MAX_HELD 32      /* claims stop while this many run here */
#define JOBS_FINISH_RETRY 1.0 /* seconds between attempts to record an end */
#define JOBS_STOP_WAIT 1.0    /* seconds the stop waits for the last ends */
#define JOBS_CHANNEL "pmb_jobs"
#define JOBS_PURGE_EVERY 600.0 /* seconds between deletions of old finished jobs */
/* finished jobs are kept a day: Slack redelivers within minutes, an operator looks within hours */
#define JOBS_PURGE_SQL                                                                             \
    "DELETE FROM pmb_jobs WHERE state = 'done' AND finished_at < now() - interval '1 day'"

struct job {
    char id[200];
    int generation;
    int degraded;
    int ending; /* ended here; its end is being written */
    char outcome[16];
    struct job *next;
};

static struct {
    int started, stopping;
    int quiet; /* claims no more: the instance is stopping */
    struct pg_conn *conn;
    struct jobs_settings s;
    char owner[160];
    char lease[32];
    struct job *jobs;
    int claiming, sweep_again;
    int in_flight; /* statements of ours not answered */
    uv_timer_t renew_timer, sweep_timer, purge_timer;
    struct loop_timer *stop_timer, *finish_retry;
    void (*stop_done)(void *arg);
    void *stop_arg;
} jb;

/* what health.c reads from the transport thread */
static pthread_mutex_t jobs_view_lock = PTHREAD_MUTEX_INITIALIZER;
static char jobs_view_ids[1024];
static int jobs_view_n;

static void jobs_sweep(void);
static void jobs_write_end(struct job *j);

static void jobs_publish(void)
{
    char ids[sizeof jobs_view_ids];
    size_t used = 0;
    int n = 0;
    ids[0] = '\0';
    for (struct job *j = jb.jobs; j; j = j->next) {
        if (j->ending) {
            continue;
        }
        int w =
            snprintf(ids + used, sizeof ids - used, "%s%s#%d", n ? "," : "", j->id, j->generation);
        if (w > 0 && (size_t)w < sizeof ids - used) {
            used += (size_t)w;
        }
        n++;
    }
    pthread_mutex_lock(&jobs_view_lock);
    memcpy(jobs_view_ids, ids, sizeof ids);
    jobs_view_n = n;
    pthread_mutex_unlock(&jobs_view_lock);
    metrics_gauge_set("pmb_jobs_held", "jobs running on this instance", NULL, n);
}

int jobs_held(char *ids, size_t size)
{
    pthread_mutex_lock(&jobs_view_lock);
    int n = jobs_view_n;
    if (size) {
        snprintf(ids, size, "%s", jobs_view_ids);
    }
    pthread_mutex_unlock(&jobs_view_lock);
    return n;
}

static void jobs_db_error(const char *what, PGresult *res, const char *error)
{
    char msg[300];
    snprintf(msg, sizeof msg, "%s", error ? error : res ? PQresultErrorMessage(res) : "?");
    msg[strcspn(msg, "\n")] = '\0';
    metrics_counter_add("pmb_db_errors_total", "database statements that failed", "conn=\"script\"",
                        1);
    log_event(LOG_WARN, what, "error", msg, NULL);
}

static int jobs_ok(PGresult *res)
{
    return res &&
           (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK);
}

static void jobs_maybe_stopped(void)
{
    if (!jb.stopping || !jb.stop_done || jb.in_flight > 0) {
        return;
    }
    for (struct job *j = jb.jobs; j; j = j->next) {
        if (j->ending) {
            return; /* its end is still to be written */
        }
    }
    loop_timer_cancel(jb.stop_timer);
    jb.stop_timer = NULL;
    void (*done)(void *) = jb.stop_done;
    jb.stop_done = NULL;
    done(jb.stop_arg);
}

static struct pg_query *jobs_query(const char *sql, int n, const char *const *params,
                                   pg_done_fn done, void *arg)
{
    struct pg_query *q = pg_query(jb.conn, sql, n, params, done, arg);
    if (q) {
        jb.in_flight++;
    }
    return q;
}

static struct job *jobs_find(const char *id, int generation)
{
    for (struct job *j = jb.jobs; j; j = j->next) {
        if (j->generation == generation && strcmp(j->id, id) == 0) {
            return j;
        }
    }
    return NULL;
}

static void jobs_remove(struct job *gone)
{
    for (struct job **p = &jb.jobs; *p; p = &(*p)->next) {
        if (*p == gone) {
            *p = gone->next;
            free(gone);
            break;
        }
    }
    jobs_publish();
}

void jobs_track(const struct jobs_ref *job)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        log_event(LOG_ERROR, "job not tracked: out of memory (its lease will lapse)", "job",
                  job->id, NULL);
        return;
    }
    snprintf(j->id, sizeof j->id, "%s", job->id);
    j->generation = job->generation;
    j->degraded = job->degraded;
    j->next = jb.jobs;
    jb.jobs = j;
    jobs_publish();
}

/* ---- renewals ---- */

struct jobs_renewal {
    char id[200];
    int generation;
};

static void jobs_renewed(PGresult *res, const char *error, int sent, void *arg)
{
    struct jobs_renewal *r = arg;
    (void)sent;
    jb.in_flight--;
    if (!jobs_ok(res)) {
        jobs_db_error("lease not renewed", res, error);
    } else if (atoi(PQcmdTuples(res)) == 1) {
        metrics_counter_add("pmb_job_lease_renewals_total", "job leases renewed", NULL, 1);
    } else {
        struct job *j = jobs_find(r->id, r->generation);
        if (j && !j->degraded && !j->ending) {
            char gen[16];
            snprintf(gen, sizeof gen, "%d", r->generation);
            log_event(LOG_WARN, "job lease lost: another instance holds the job now", "job", r->id,
                      "generation", gen, NULL);
            metrics_counter_add("pmb_job_leases_lost_total", "job leases found taken over", NULL,
                                1);
        }
    }
    PQclear(res);
    free(r);
    jobs_maybe_stopped();
}

static void jobs_renew_cb(uv_timer_t *t)
{
    (void)t;
    for (struct job *j = jb.jobs; j; j = j->next) {
        struct jobs_renewal *r = malloc(sizeof *r);
        char gen[16];
        if (!r) {
            continue;
        }
        snprintf(r->id, sizeof r->id, "%s", j->id);
        r->generation = j->generation;
        snprintf(gen, sizeof gen, "%d", j->generation);
        const char *params[4] = {j->id, gen, jb.lease, jb.owner};
        if (!jobs_query(
                "UPDATE pmb_jobs SET lease_until = now() + $3::float8 * interval '1 second' "
                "WHERE id = $1 AND generation = $2::int AND owner = $4 AND state = 'running'",
                4, params, jobs_renewed, r)) {
            free(r);
        }
    }
}

/* ---- ends ---- */

static void jobs_retry_ends(void *arg)
{
    (void)arg;
    jb.finish_retry = NULL;
    for (struct job *j = jb.jobs; j; j = j->next) {
        if (j->ending == 2) {
            jobs_write_end(j);
        }
    }
}

struct jobs_end_ref {
    char id[200];
    int generation;
};

static void jobs_end_written(PGresult *res, const char *error, int sent, void *arg)
{
    struct jobs_end_ref *ref = arg;
    (void)sent;
    jb.in_flight--;
    struct job *j = jobs_find(ref->id, ref->generation);
    if (!jobs_ok(res)) {
        jobs_db_error("job end not recorded yet; retrying", res, error);
        if (j) {
            j->ending = 2; /* waits for the retry */
            if (!jb.finish_retry && !jb.stopping) {
                jb.finish_retry = loop_timer_start(JOBS_FINISH_RETRY, jobs_retry_ends, NULL);
            }
            if (jb.stopping) {
                log_event(LOG_WARN, "stopping before a job's end was recorded", "job", ref->id,
                          NULL);
                jobs_remove(j);
            }
        }
    } else if (j) {
        jobs_remove(j);
    }
    PQclear(res);
    free(ref);
    jobs_maybe_stopped();
}

static void jobs_write_end(struct job *j)
{
    struct jobs_end_ref *ref = malloc(sizeof *ref);
    char gen[16];
    if (!ref) {
        return;
    }
    snprintf(ref->id, sizeof ref->id, "%s", j->id);
    ref->generation = j->generation;
    snprintf(gen, sizeof gen, "%d", j->generation);
    j->ending = 1;
    struct pg_query *q;
    if (strcmp(j->outcome, "released") == 0) {
        /* fenced or aborted here: whoever may run it should, at once */
        const char *params[3] = {j->id, gen, jb.owner};
        q = jobs_query("WITH r AS (UPDATE pmb_jobs SET lease_until = now() WHERE id = $1 AND "
                       "generation = $2::int AND owner = $3 AND state = 'running' RETURNING id) "
                       "SELECT pg_notify('" JOBS_CHANNEL "', id) FROM r",
                       3, params, jobs_end_written, ref);
    } else {
        const char *params[4] = {j->id, gen, jb.owner, j->outcome};
        q = jobs_query("SELECT pmb_job_finish($1, $2::int, $3, $4)", 4, params, jobs_end_written,
                       ref);
    }
    if (!q) {
        free(ref);
        j->ending = 2;
    }
}

void jobs_ended(const char *id, int generation, int ok, int lost)
{
    struct job *j = jobs_find(id, generation);
    char gen[16];
    if (!j) {
        return;
    }
    snprintf(j->outcome, sizeof j->outcome, "%s", lost ? "released" : ok ? "ok" : "failed");
    snprintf(gen, sizeof gen, "%d", generation);
    log_event(lost ? LOG_WARN : LOG_INFO, lost ? "job handed back" : "job done", "job", id,
              "generation", gen, "outcome", j->outcome, NULL);
    metrics_counter_add("pmb_jobs_ended_total", "jobs that ended on this instance", NULL, 1);
    jobs_write_end(j);
    jobs_publish();
    jobs_sweep(); /* a coroutine is free */
}

/* ---- takeover ---- */

static void jobs_claimed(PGresult *res, const char *error, int sent, void *arg)
{
    (void)sent;
    (void)arg;
    jb.in_flight--;
    jb.claiming = 0;
    int again = jb.sweep_again;
    jb.sweep_again = 0;
    if (!jobs_ok(res)) {
        jobs_db_error("could not look for expired jobs", res, error);
    } else if (PQntuples(res) == 1 && jb.quiet) {
        /* claimed while this instance stops: hand it straight back */
        struct jobs_ref job = {PQgetvalue(res, 0, 0), atoi(PQgetvalue(res, 0, 1)), 0};
        jobs_track(&job);
        jobs_ended(job.id, job.generation, 0, 1);
    } else if (PQntuples(res) == 1) {
        struct jobs_ref job = {PQgetvalue(res, 0, 0), atoi(PQgetvalue(res, 0, 1)), 0};
        const char *json = PQgetvalue(res, 0, 2);
        char gen[16];
        snprintf(gen, sizeof gen, "%d", job.generation);
        log_event(LOG_WARN, "job taken over", "job", job.id, "generation", gen, "from",
                  PQgetvalue(res, 0, 3), NULL);
        metrics_counter_add("pmb_jobs_taken_over_total",
                            "expired jobs of other instances claimed here", NULL, 1);
        if (!json[0]) {
            /* a degraded job's row written at its end only: nothing to run */
            jobs_track(&job);
            jobs_ended(job.id, job.generation, 1, 0);
        } else {
            jobs_track(&job);
            jb.s.run(json, strlen(json), &job);
        }
        again = 1; /* there may be more */
    }
    PQclear(res);
    jobs_maybe_stopped();
    if (again) {
        jobs_sweep();
    }
}

static void jobs_sweep(void)
{
    int held = 0;
    if (!jb.started || jb.quiet) {
        return;
    }
    if (jb.claiming) {
        jb.sweep_again = 1;
        return;
    }
    for (struct job *j = jb.jobs; j; j = j->next) {
        held++;
    }
    if (held >= JOBS_MAX_HELD || !pg_is_connected(jb.conn)) {
        return;
    }
    const char *params[2] = {jb.owner, jb.lease};
    if (jobs_query("SELECT id, generation, envelope, previous_owner FROM pmb_job_claim($1, "
                   "$2::float8)",
                   2, params, jobs_claimed, NULL)) {
        jb.claiming = 1;
    }
}

static void jobs_sweep_cb(uv_timer_t *t)
{
    (void)t;
    jobs_sweep();
}

static void jobs_purged(PGresult *res, const char *error, int sent, void *arg)
{
    (void)sent;
    (void)arg;
    jb.in_flight--;
    if (!jobs_ok(res)) {
        jobs_db_error("could not delete old finished jobs", res, error);
    } else if (atoi(PQcmdTuples(res)) > 0) {
        log_event(LOG_INFO, "old finished jobs deleted", "count", PQcmdTuples(res), NULL);
    }
    PQclear(res);
    jobs_maybe_stopped();
}

static void jobs_purge_cb(uv_timer_t *t)
{
    (void)t;
    if (!jb.quiet) {
        jobs_query(JOBS_PURGE_SQL, 0, NULL, jobs_purged, NULL);
    }
}

static void jobs_on_notify(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    (void)payload;
    (void)arg;
    jobs_sweep();
}

/* ---- start and stop ---- */

int jobs_start(struct pg_conn *conn, const struct jobs_settings *s)
{
    if (jb.started || !conn) {
        return -1;
    }
    jb.conn = conn;
    jb.s = *s;
    snprintf(jb.owner, sizeof jb.owner, "%s", s->owner);
    snprintf(jb.lease, sizeof jb.lease, "%.3f", s->lease);
    pg_set_notify(conn, jobs_on_notify, NULL);
    if (pg_listen(conn, JOBS_CHANNEL) < 0) {
        return -1;
    }
    uv_timer_init(loop_get(), &jb.renew_timer);
    uv_timer_init(loop_get(), &jb.sweep_timer);
    uint64_t renew_ms = (uint64_t)(s->renew * 1000.0), sweep_ms = (uint64_t)(s->sweep * 1000.0);
    uv_timer_start(&jb.renew_timer, jobs_renew_cb, renew_ms, renew_ms);
    uv_timer_start(&jb.sweep_timer, jobs_sweep_cb, sweep_ms, sweep_ms);
    uv_timer_init(loop_get(), &jb.purge_timer);
    uv_timer_start(&jb.purge_timer, jobs_purge_cb, 1000, (uint64_t)(JOBS_PURGE_EVERY * 1000.0));
    jb.started = 1;
    jobs_sweep();
    return 0;
}

static void jobs_stop_timeout(void *arg)
{
    (void)arg;
    jb.stop_timer = NULL;
    jb.in_flight = 0;
    while (jb.jobs) {
        struct job *j = jb.jobs;
        jb.jobs = j->next;
        if (j->ending) {
            log_event(LOG_WARN, "stopping before a job's end was recorded", "job", j->id, NULL);
        }
        free(j);
    }
    jobs_publish();
    jobs_maybe_stopped();
}

void jobs_quiesce(void)
{
    jb.quiet = 1;
}

void jobs_stop(void (*done)(void *arg), void *arg)
{
    jb.quiet = 1;
    if (!jb.started) {
        done(arg);
        return;
    }
    jb.stopping = 1;
    uv_close((uv_handle_t *)&jb.renew_timer, NULL);
    uv_close((uv_handle_t *)&jb.sweep_timer, NULL);
    uv_close((uv_handle_t *)&jb.purge_timer, NULL);
    loop_timer_cancel(jb.finish_retry);
    jb.finish_retry = NULL;
    jb.stop_done = done;
    jb.stop_arg = arg;
    jb.stop_timer = loop_timer_start(JOBS_STOP_WAIT, jobs_stop_timeout, NULL);
    jobs_maybe_stopped();
}
