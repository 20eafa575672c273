/* jobs.h — the script loop's side of database mode's jobs: the leases of the jobs this instance
 * runs (renewed), their end recorded (pmb_job_finish) or handed back (lease released and NOTIFY),
 * and the takeover of other instances' expired jobs (pmb_job_claim, on a sweep timer and on
 * NOTIFY pmb_jobs). main.c starts it once the schema is current and routes host.c's job ends here;
 * health.c reads what this instance holds. The transport thread writes the rows (net/accept.c). */
#ifndef PMB_JOBS_H
#define PMB_JOBS_H

#include <stddef.h>

#include "db/pg.h"

/* A job as the rest of the core names it (net/socketmode.h's struct sm_job has the same fields;
 * db/ does not include net/). */
struct jobs_ref {
    const char *id; /* "event:Ev..." or "envelope:..." */
    int generation;
    int degraded;
};

struct jobs_settings {
    const char *owner; /* this instance (db_instance()) */
    double lease, renew, sweep;
    /* run a claimed job: the envelope's json and its job (generation > 1) */
    void (*run)(const char *json, size_t len, const struct jobs_ref *job);
};

/* Script loop, on conn (db_conn()). 0 or -1. */
int jobs_start(struct pg_conn *conn, const struct jobs_settings *s);
/* A job starts running here (accepted by the transport thread, or claimed). */
void jobs_track(const struct jobs_ref *job);
/* host_set_job_end's target: the job's coroutine ended. */
void jobs_ended(const char *id, int generation, int ok, int lost);
/* The instance begins to stop: claim nothing more (its own hand-backs are for the others). */
void jobs_quiesce(void);
/* Stop claiming and renewing; done(arg) once the last ends are written (or 1 s passed). */
void jobs_stop(void (*done)(void *arg), void *arg);

/* Any thread: how many jobs this instance holds and their ids (comma separated, cut to size). */
int jobs_held(char *ids, size_t size);

#endif
