/* pg.c — one asynchronous libpq connection on a libuv loop (pg.h). Connects with
 * PQconnectStart/PQconnectPoll driven by a uv_poll, sends one queued statement at a time
 * (PQsendQuery/PQsendQueryParams, non-blocking PQflush), reads results with PQconsumeInput,
 * PQisBusy and PQgetResult, hands NOTIFYs to a callback, and reconnects with backoff. One timer
 * ticks while the connection is not ready: connect deadline, next attempt, statements that waited
 * too long. Called by db.c, migrate.c; calls libpq, libuv and log.c; no globals (both threads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "db/pg.h"

#define PG_TICK_MS 100
#define PG_BACKOFF_MIN 0.1
#define PG_MAX_LISTENS 8

enum pg_state { PG_IDLE, PG_CONNECTING, PG_READY, PG_CLOSING };

struct pg_query {
    struct pg_conn *conn;
    struct pg_query *next;
    char *sql;
    int nparams;
    char **params;
    pg_done_fn done;
    void *arg;
    double queued_at;
    int cancelled;
};

struct pg_conn {
    uv_loop_t *loop;
    PGconn *pg;
    uv_poll_t *poll; /* the handle on PQsocket; a new one for each connect step */
    uv_timer_t tick;
    uv_timer_t kick; /* sends from the loop, so that pg_query never calls done itself */
    enum pg_state state;
    struct pg_query *head, *tail; /* waiting to be sent */
    struct pg_query *inflight;
    PGresult *result; /* the in-flight statement's result so far */
    int want_write;
    double next_attempt, connect_deadline, backoff;
    int open_handles;
    int delivering; /* inside a done callback: pg_close defers freeing */
    char *conninfo;
    char name[32];
    double connect_timeout, wait_timeout, backoff_max;
    char last_error[256];
    char *listens[PG_MAX_LISTENS];
    int nlistens;
    pg_state_fn on_state;
    void *state_arg;
    pg_notify_fn on_notify;
    void *notify_arg;
    void (*closed)(void *arg);
    void *closed_arg;
};

static double pg_now(uv_loop_t *loop)
{
    return (double)uv_now(loop) / 1000.0;
}

static void pg_query_free(struct pg_query *q)
{
    for (int i = 0; i < q->nparams; i++) {
        free(q->params[i]);
    }
    free(q->params);
    free(q->sql);
    free(q);
}

static void pg_deliver(struct pg_conn *c, struct pg_query *q, PGresult *res, const char *error,
                       int sent)
{
    if (q->done && !q->cancelled) {
        c->delivering++;
        q->done(res, error, sent, q->arg);
        c->delivering--;
    } else {
        PQclear(res);
    }
    pg_query_free(q);
}

static void pg_set_error(struct pg_conn *c, const char *msg)
{
    snprintf(c->last_error, sizeof c->last_error, "%s", msg ? msg : "unknown error");
    size_t n = strlen(c->last_error);
    while (n > 0 && (c->last_error[n - 1] == '\n' || c->last_error[n - 1] == ' ')) {
        c->last_error[--n] = '\0';
    }
    for (char *p = c->last_error; *p; p++) {
        if (*p == '\n') {
            *p = ' '; /* libpq's messages span lines; a log line must not */
        }
    }
}

static void pg_maybe_freed(struct pg_conn *c)
{
    if (c->state != PG_CLOSING || c->open_handles > 0 || c->delivering) {
        return;
    }
    void (*closed)(void *) = c->closed;
    void *arg = c->closed_arg;
    for (int i = 0; i < c->nlistens; i++) {
        free(c->listens[i]);
    }
    free(c->conninfo);
    free(c);
    if (closed) {
        closed(arg);
    }
}

static void pg_poll_closed(uv_handle_t *h)
{
    struct pg_conn *c = h->data;
    free(h);
    c->open_handles--;
    pg_maybe_freed(c);
}

static void pg_drop_poll(struct pg_conn *c)
{
    if (c->poll) {
        uv_close((uv_handle_t *)c->poll, pg_poll_closed); /* stops watching the fd at once */
        c->poll = NULL;
    }
}

static void pg_poll_cb(uv_poll_t *h, int status, int events);

/* Watch libpq's socket for events. A fresh handle each time during connect: libpq may close its
 * socket and open another with the same number, which an old epoll registration would not see. */
static int pg_watch(struct pg_conn *c, int events, int fresh)
{
    if (fresh || !c->poll) {
        pg_drop_poll(c);
        int fd = PQsocket(c->pg);
        if (fd < 0) {
            return -1;
        }
        c->poll = malloc(sizeof *c->poll);
        if (!c->poll) {
            return -1;
        }
        if (uv_poll_init(c->loop, c->poll, fd) < 0) {
            free(c->poll);
            c->poll = NULL;
            return -1;
        }
        c->poll->data = c;
        c->open_handles++;
    }
    return uv_poll_start(c->poll, events, pg_poll_cb) < 0 ? -1 : 0;
}

static void pg_tick_cb(uv_timer_t *t);

static void pg_tick_start(struct pg_conn *c)
{
    if (!uv_is_active((uv_handle_t *)&c->tick)) {
        uv_timer_start(&c->tick, pg_tick_cb, PG_TICK_MS, PG_TICK_MS);
    }
}

/* The connection is gone (or an attempt failed): fail the statement in flight (it may have run),
 * keep the queue, and try again after the backoff. */
static void pg_lost(struct pg_conn *c, const char *why)
{
    int was_ready = c->state == PG_READY;
    pg_set_error(c, why);
    pg_drop_poll(c);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->state = PG_IDLE;
    c->want_write = 0;
    c->next_attempt = pg_now(c->loop) + c->backoff;
    char wait[32];
    snprintf(wait, sizeof wait, "%.1f", c->backoff);
    c->backoff = c->backoff * 2 > c->backoff_max ? c->backoff_max : c->backoff * 2;
    log_event(was_ready ? LOG_WARN : LOG_INFO,
              was_ready ? "database connection lost" : "database connection attempt failed", "conn",
              c->name, "error", c->last_error, "retry_in_s", wait, NULL);
    pg_tick_start(c);
    struct pg_query *q = c->inflight;
    PGresult *partial = c->result;
    c->inflight = NULL;
    c->result = NULL;
    PQclear(partial);
    if (was_ready && c->on_state) {
        c->on_state(c, 0, c->state_arg);
    }
    if (q) {
        char msg[300];
        snprintf(msg, sizeof msg, "database connection lost: %s", c->last_error);
        pg_deliver(c, q, NULL, msg, 1);
    }
}

static void pg_send_next(struct pg_conn *c)
{
    while (c->state == PG_READY && !c->inflight && c->head) {
        struct pg_query *q = c->head;
        c->head = q->next;
        if (!c->head) {
            c->tail = NULL;
        }
        q->next = NULL;
        if (q->cancelled) {
            pg_query_free(q);
            continue;
        }
        int ok = q->nparams < 0 ? PQsendQuery(c->pg, q->sql)
                                : PQsendQueryParams(c->pg, q->sql, q->nparams, NULL,
                                                    (const char *const *)q->params, NULL, NULL, 0);
        c->inflight = q;
        if (!ok) {
            pg_lost(c, PQerrorMessage(c->pg));
            return;
        }
        int f = PQflush(c->pg);
        if (f < 0) {
            pg_lost(c, PQerrorMessage(c->pg));
            return;
        }
        c->want_write = f == 1;
        pg_watch(c, UV_READABLE | (c->want_write ? UV_WRITABLE : 0), 0);
    }
}

/* Server notices ("relation already exists, skipping") go to the debug log, not to stderr. */
static void pg_notice(void *arg, const char *message)
{
    struct pg_conn *c = arg;
    char line[512];
    snprintf(line, sizeof line, "%s", message);
    line[strcspn(line, "\n")] = '\0';
    log_event(LOG_DEBUG, "database notice", "conn", c->name, "notice", line, NULL);
}

static void pg_ready(struct pg_conn *c)
{
    c->state = PG_READY;
    c->backoff = PG_BACKOFF_MIN;
    c->last_error[0] = '\0';
    uv_timer_stop(&c->tick);
    PQsetnonblocking(c->pg, 1);
    PQsetNoticeProcessor(c->pg, pg_notice, c);
    if (pg_watch(c, UV_READABLE, 1) < 0) {
        pg_lost(c, "could not watch the database socket");
        return;
    }
    log_event(LOG_INFO, "database connected", "conn", c->name, NULL);
    /* LISTENs go first, ahead of whatever waited for the connection */
    for (int i = c->nlistens - 1; i >= 0; i--) {
        struct pg_query *q = calloc(1, sizeof *q);
        char sql[128];
        snprintf(sql, sizeof sql, "LISTEN \"%s\"", c->listens[i]);
        if (!q || !(q->sql = strdup(sql))) {
            free(q);
            continue;
        }
        q->conn = c;
        q->nparams = -1;
        q->next = c->head;
        c->head = q;
        if (!c->tail) {
            c->tail = q;
        }
    }
    if (c->on_state) {
        c->on_state(c, 1, c->state_arg);
    }
    pg_send_next(c);
}

static void pg_connect_step(struct pg_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (pg_watch(c, UV_READABLE, 1) < 0) {
            pg_lost(c, "could not watch the database socket");
        }
        break;
    case PGRES_POLLING_WRITING:
        if (pg_watch(c, UV_WRITABLE, 1) < 0) {
            pg_lost(c, "could not watch the database socket");
        }
        break;
    case PGRES_POLLING_OK:
        pg_ready(c);
        break;
    default:
        pg_lost(c, PQerrorMessage(c->pg));
        break;
    }
}

static void pg_connect(struct pg_conn *c)
{
    c->pg = PQconnectStart(c->conninfo);
    if (!c->pg) {
        c->state = PG_CONNECTING;
        pg_lost(c, "out of memory");
        return;
    }
    c->state = PG_CONNECTING;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        pg_lost(c, PQerrorMessage(c->pg));
        return;
    }
    c->connect_deadline = pg_now(c->loop) + c->connect_timeout;
    pg_tick_start(c);
    /* libpq: after PQconnectStart, behave as if PQconnectPoll had said "writing" */
    if (pg_watch(c, UV_WRITABLE, 1) < 0) {
        pg_lost(c, "could not watch the database socket");
    }
}

static void pg_read(struct pg_conn *c)
{
    if (!PQconsumeInput(c->pg)) {
        pg_lost(c, PQerrorMessage(c->pg));
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL) {
        if (c->on_notify) {
            c->on_notify(n->relname, n->extra, c->notify_arg);
        }
        PQfreemem(n);
    }
    while (c->inflight && !PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            struct pg_query *q = c->inflight;
            PGresult *out = c->result;
            c->inflight = NULL;
            c->result = NULL;
            pg_deliver(c, q, out, NULL, 1);
            if (c->state != PG_READY) {
                return;
            }
            pg_send_next(c);
            continue;
        }
        /* several statements (simple protocol): keep the first error, else the last result */
        if (c->result && PQresultStatus(c->result) == PGRES_FATAL_ERROR) {
            PQclear(res);
        } else {
            PQclear(c->result);
            c->result = res;
        }
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        pg_lost(c, PQerrorMessage(c->pg));
    }
}

static void pg_poll_cb(uv_poll_t *h, int status, int events)
{
    struct pg_conn *c = h->data;
    if (h != c->poll) {
        return;
    }
    if (c->state == PG_CONNECTING) {
        pg_connect_step(c);
        return;
    }
    if (c->state != PG_READY) {
        return;
    }
    if (status < 0) {
        events = UV_READABLE; /* let libpq find out what went wrong */
    }
    if ((events & UV_WRITABLE) && c->want_write) {
        int f = PQflush(c->pg);
        if (f < 0) {
            pg_lost(c, PQerrorMessage(c->pg));
            return;
        }
        if (f == 0) {
            c->want_write = 0;
            pg_watch(c, UV_READABLE, 0);
        }
    }
    if (events & UV_READABLE) {
        pg_read(c);
    }
}

/* Statements that waited longer than wait_timeout for a connection fail (never sent). */
static void pg_expire(struct pg_conn *c, double now)
{
    struct pg_query **pp = &c->head, *expired = NULL, **ep = &expired;
    c->tail = NULL;
    while (*pp) {
        struct pg_query *q = *pp;
        if (q->cancelled || now - q->queued_at >= c->wait_timeout) {
            *pp = q->next;
            q->next = NULL;
            *ep = q;
            ep = &q->next;
        } else {
            c->tail = q;
            pp = &q->next;
        }
    }
    while (expired) {
        struct pg_query *q = expired;
        expired = q->next;
        char msg[320];
        snprintf(msg, sizeof msg, "no database connection within %.0f s: %s", c->wait_timeout,
                 c->last_error[0] ? c->last_error : "connecting");
        pg_deliver(c, q, NULL, msg, 0);
    }
}

static void pg_tick_cb(uv_timer_t *t)
{
    struct pg_conn *c = t->data;
    double now = pg_now(c->loop);
    if (c->state == PG_READY || c->state == PG_CLOSING) {
        uv_timer_stop(t);
        return;
    }
    pg_expire(c, now);
    if (c->state == PG_CONNECTING && now >= c->connect_deadline) {
        pg_lost(c, "timed out connecting to the database");
    } else if (c->state == PG_IDLE && now >= c->next_attempt) {
        pg_connect(c);
    }
}

static void pg_kick_cb(uv_timer_t *t)
{
    pg_send_next(t->data);
}

struct pg_conn *pg_open(uv_loop_t *loop, const struct pg_settings *s, pg_state_fn on_state,
                        void *arg)
{
    struct pg_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->conninfo = strdup(s->conninfo ? s->conninfo : ""))) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    snprintf(c->name, sizeof c->name, "%s", s->name ? s->name : "db");
    c->connect_timeout = s->connect_timeout > 0 ? s->connect_timeout : 5.0;
    c->wait_timeout = s->wait_timeout > 0 ? s->wait_timeout : 10.0;
    c->backoff_max = s->backoff_max > 0 ? s->backoff_max : 5.0;
    c->backoff = PG_BACKOFF_MIN;
    c->on_state = on_state;
    c->state_arg = arg;
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
    uv_timer_init(loop, &c->kick);
    c->kick.data = c;
    c->open_handles = 2;
    c->state = PG_IDLE;
    pg_connect(c);
    return c;
}

void pg_set_notify(struct pg_conn *c, pg_notify_fn fn, void *arg)
{
    c->on_notify = fn;
    c->notify_arg = arg;
}

int pg_listen(struct pg_conn *c, const char *channel)
{
    for (const char *p = channel; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return -1;
        }
    }
    if (c->nlistens == PG_MAX_LISTENS || !(c->listens[c->nlistens] = strdup(channel))) {
        return -1;
    }
    c->nlistens++;
    if (c->state == PG_READY) {
        char sql[128];
        snprintf(sql, sizeof sql, "LISTEN \"%s\"", channel);
        return pg_query(c, sql, -1, NULL, NULL, NULL) ? 0 : -1;
    }
    return 0;
}

struct pg_query *pg_query(struct pg_conn *c, const char *sql, int nparams,
                          const char *const *params, pg_done_fn done, void *arg)
{
    struct pg_query *q = calloc(1, sizeof *q);
    if (!q || !(q->sql = strdup(sql))) {
        free(q);
        return NULL;
    }
    q->conn = c;
    q->nparams = nparams;
    q->done = done;
    q->arg = arg;
    q->queued_at = pg_now(c->loop);
    if (nparams > 0) {
        q->params = calloc((size_t)nparams, sizeof *q->params);
        if (!q->params) {
            q->nparams = 0;
            pg_query_free(q);
            return NULL;
        }
        for (int i = 0; i < nparams; i++) {
            if (params[i] && !(q->params[i] = strdup(params[i]))) {
                pg_query_free(q);
                return NULL;
            }
        }
    }
    if (c->tail) {
        c->tail->next = q;
    } else {
        c->head = q;
    }
    c->tail = q;
    if (c->state == PG_READY && !c->inflight) {
        uv_timer_start(&c->kick, pg_kick_cb, 0, 0);
    }
    return q;
}

void pg_cancel(struct pg_query *q)
{
    if (q) {
        q->cancelled = 1;
    }
}

int pg_is_connected(const struct pg_conn *c)
{
    return c && c->state == PG_READY;
}

const char *pg_last_error(const struct pg_conn *c)
{
    return c ? c->last_error : "";
}

static void pg_tick_closed(uv_handle_t *h)
{
    struct pg_conn *c = h->data;
    c->open_handles--;
    pg_maybe_freed(c);
}

void pg_close(struct pg_conn *c, void (*closed)(void *arg), void *arg)
{
    if (!c || c->state == PG_CLOSING) {
        return;
    }
    c->state = PG_CLOSING;
    c->closed = closed;
    c->closed_arg = arg;
    c->delivering++; /* not freed while the failures below run */
    struct pg_query *q = c->inflight;
    c->inflight = NULL;
    PQclear(c->result);
    c->result = NULL;
    if (q) {
        pg_deliver(c, q, NULL, "the database connection is closing", 1);
    }
    while (c->head) {
        q = c->head;
        c->head = q->next;
        pg_deliver(c, q, NULL, "the database connection is closing", 0);
    }
    c->tail = NULL;
    pg_drop_poll(c);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    uv_close((uv_handle_t *)&c->tick, pg_tick_closed);
    uv_close((uv_handle_t *)&c->kick, pg_tick_closed);
    c->delivering--;
    pg_maybe_freed(c);
}

char *pg_conninfo_password(const char *conninfo)
{
    char *err = NULL, *out = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        PQfreemem(err);
        return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
            out = strdup(o->val);
        }
    }
    PQconninfoFree(opts);
    return out;
}
