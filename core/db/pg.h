/* pg.h — one asynchronous PostgreSQL connection on one libuv loop (libpq, never a blocking call):
 * connecting with PQconnectStart/PQconnectPoll, statements queued and sent one at a time with
 * PQsendQueryParams, results read with PQconsumeInput/PQisBusy/PQgetResult from a uv_poll, and a
 * reconnect with backoff when the server goes away. Used by db.c (the script loop's connection),
 * migrate.c and, in database mode, the transport thread; knows nothing of Lua or Slack. */
#ifndef PMB_PG_H
#define PMB_PG_H

#include <libpq-fe.h>
#include <uv.h>

struct pg_conn;
struct pg_query;

/* A statement's end. res is the statement's result (the caller owns it: PQclear), or NULL when
 * the statement could not run: then error says why (connection lost, no connection within the
 * wait bound, cancelled at close) and sent tells whether it may have reached the server. */
typedef void (*pg_done_fn)(PGresult *res, const char *error, int sent, void *arg);
/* Called after each successful connect (before queued statements are sent) and on each loss. */
typedef void (*pg_state_fn)(struct pg_conn *c, int connected, void *arg);
/* A NOTIFY on a channel this connection LISTENs to (pg_listen). */
typedef void (*pg_notify_fn)(const char *channel, const char *payload, void *arg);

struct pg_settings {
    const char *conninfo;   /* URI or key=value; copied */
    const char *name;       /* in logs: "script", "transport" */
    double connect_timeout; /* seconds one connection attempt may take (default 5) */
    double wait_timeout;    /* seconds a statement waits for a connection (default 10) */
    double backoff_max;     /* seconds between reconnects at most (default 5) */
};

/* A connection that connects at once and reconnects for ever until pg_close. NULL on OOM. */
struct pg_conn *pg_open(uv_loop_t *loop, const struct pg_settings *s, pg_state_fn on_state,
                        void *arg);
void pg_set_notify(struct pg_conn *c, pg_notify_fn fn, void *arg);
/* LISTEN channel now and after every reconnect. 0 or -1. */
int pg_listen(struct pg_conn *c, const char *channel);

/* Queue a statement. nparams < 0: the simple protocol (several statements in one string, run as
 * one transaction, no parameters); else PQsendQueryParams with text params (NULL = SQL NULL).
 * done runs from the loop, never from inside pg_query. Returns a handle for pg_cancel, or NULL
 * on OOM. Strings are copied. */
struct pg_query *pg_query(struct pg_conn *c, const char *sql, int nparams,
                          const char *const *params, pg_done_fn done, void *arg);
/* The caller no longer wants q's result: done will not run (the statement may still run). */
void pg_cancel(struct pg_query *q);

int pg_is_connected(const struct pg_conn *c);
/* The last connection error (or ""), for /healthz and logs. */
const char *pg_last_error(const struct pg_conn *c);

/* Fail what is queued ("closing"), drop the connection, close the handles; closed(arg) runs once
 * every handle is closed, and c is freed then. */
void pg_close(struct pg_conn *c, void (*closed)(void *arg), void *arg);

/* The password in conninfo (URI or key=value), or NULL: malloc'd, caller frees. */
char *pg_conninfo_password(const char *conninfo);

#endif
