/* accept.h — database mode's "accepted means durable", on the transport thread: before an envelope
 * is acked, its job row is written (db/migrations/0002_jobs.sql, pmb_job_accept) on a small libpq
 * connection of this thread's own, with one round trip bounded by a timeout. socketmode.c asks
 * for each event envelope and acks when the answer (or the timeout) comes; health.c reads the
 * status. Rows the database did not take in time are written later from a backlog. */
#ifndef PMB_ACCEPT_H
#define PMB_ACCEPT_H

#include <stddef.h>

enum accept_verdict {
    ACCEPT_NEW,       /* the row is written: this instance runs the job (generation 1) */
    ACCEPT_DUPLICATE, /* the event has a job already (a redelivery): ack, do not run */
    ACCEPT_DEGRADED,  /* no answer in time: ack and run here; the row is written later */
};

struct accept_settings {
    const char *conninfo; /* the database URL; copied by pg.c */
    const char *owner;    /* this instance's name (host:pid); copied */
    double lease;         /* seconds of the first lease */
    double timeout;       /* seconds the ack may wait for the database (0.5) */
};

typedef void (*accept_done_fn)(enum accept_verdict v, void *arg);

/* Transport thread, before Socket Mode starts. 0, or -1 (logged). */
int accept_start(const struct accept_settings *s);
int accept_enabled(void); /* database mode and started */

/* Is key usable as a job id (printable ASCII, bounded)? */
int accept_key_ok(const char *key);

/* Write the job of key (json: the whole envelope). done runs later on this loop, never inside
 * this call. 0, or -1 (out of memory: the caller acks and runs without a row). */
int accept_job(const char *key, const char *json, size_t len, accept_done_fn done, void *arg);

/* Close the connection (what is still in the backlog is logged as not written). */
void accept_stop(void);

struct accept_status {
    int enabled, connected;
    const char *owner; /* this instance's name (host:pid) */
    unsigned long accepted, duplicates, degraded, degraded_written;
    size_t degraded_pending;
    const char *last_error;
};
void accept_get_status(struct accept_status *out);

#endif
