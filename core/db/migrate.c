/* migrate.c — applies db/migrations/NNNN_name.sql (compiled in: build/gen/migrations.inc) in
 * version order. Several instances may start at once: pg_advisory_lock serialises them, and each
 * migration runs as one simple-protocol string (one implicit transaction) that also inserts its row
 * into pmb_schema_migrations, so a migration is applied whole or not at all. Called by db.c; calls
 * pg.h. A chain of statements, each one's callback starting the next. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/migrate.h"

/* The key of the advisory lock held while migrating ("pmb" + 1). */
#define MIGRATE_LOCK "7368034"
#define MIGRATE_REPORT_MAX 8192

struct migration {
    int version;
    const char *name;
    const char *sql;
};

static const struct migration migrations[] = {
#include "migrations.inc"
    {0, NULL, NULL},
};

enum migrate_step { STEP_LOCK, STEP_TABLE, STEP_READ, STEP_APPLY, STEP_UNLOCK };

struct migrate_op {
    struct pg_conn *conn;
    int apply;
    enum migrate_step step;
    int next; /* index into migrations[] of the next one to consider */
    char applied_at[64][40];
    int applied[64]; /* versions found in the table (index: version, if < 64) */
    int failed;
    char error[512];
    migrate_done_fn done;
    void *arg;
};

int migrate_latest(void)
{
    int v = 0;
    for (int i = 0; migrations[i].name; i++) {
        v = migrations[i].version > v ? migrations[i].version : v;
    }
    return v;
}

static void migrate_finish(struct migrate_op *op)
{
    char *report = malloc(MIGRATE_REPORT_MAX);
    size_t n = 0;
    if (report) {
        report[0] = '\0';
        for (int i = 0; migrations[i].name && n < MIGRATE_REPORT_MAX; i++) {
            int v = migrations[i].version;
            int done = v < 64 && op->applied[v];
            n += (size_t)snprintf(report + n, MIGRATE_REPORT_MAX - n, "%s %s%s%s\n",
                                  migrations[i].name, done ? "applied" : "pending", done ? " " : "",
                                  done ? op->applied_at[v] : "");
        }
        if (op->failed && n < MIGRATE_REPORT_MAX) {
            snprintf(report + n, MIGRATE_REPORT_MAX - n, "error: %s\n", op->error);
        }
    }
    op->done(op->failed ? -1 : 0, report ? report : "out of memory\n", op->arg);
    free(report);
    free(op);
}

static void migrate_step(struct migrate_op *op);

static int migrate_failed(struct migrate_op *op, PGresult *res, const char *error)
{
    if (error) {
        snprintf(op->error, sizeof op->error, "%s", error);
        return 1;
    }
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return 0;
    }
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(op->error, sizeof op->error, "%s", msg ? msg : PQresStatus(st));
    return 1;
}

static void migrate_done_cb(PGresult *res, const char *error, int sent, void *arg)
{
    struct migrate_op *op = arg;
    (void)sent;
    if (op->step == STEP_UNLOCK) {
        PQclear(res); /* the session ends the lock anyway if this fails */
        migrate_finish(op);
        return;
    }
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (op->step == STEP_READ && !op->apply && state && strcmp(state, "42P01") == 0) {
        PQclear(res); /* `db status` on an empty database: nothing applied yet */
        migrate_finish(op);
        return;
    }
    if (migrate_failed(op, res, error)) {
        PQclear(res);
        op->failed = 1;
        if (op->apply && res) {
            op->step = STEP_UNLOCK;
            if (pg_query(op->conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", 0, NULL,
                         migrate_done_cb, op)) {
                return;
            }
        }
        migrate_finish(op);
        return;
    }
    if (op->step == STEP_READ) {
        for (int r = 0; r < PQntuples(res); r++) {
            int v = atoi(PQgetvalue(res, r, 0));
            if (v > 0 && v < 64) {
                op->applied[v] = 1;
                snprintf(op->applied_at[v], sizeof op->applied_at[v], "%s", PQgetvalue(res, r, 1));
            }
        }
        PQclear(res);
        if (!op->apply) {
            migrate_finish(op);
            return;
        }
        op->step = STEP_APPLY;
        migrate_step(op);
        return;
    }
    if (op->step == STEP_APPLY) {
        int v = migrations[op->next].version;
        op->applied[v] = 1;
        snprintf(op->applied_at[v], sizeof op->applied_at[v], "now");
        op->next++;
    } else {
        op->step++;
    }
    PQclear(res);
    migrate_step(op);
}

static void migrate_step(struct migrate_op *op)
{
    const char *sql = NULL;
    char *owned = NULL;
    switch (op->step) {
    case STEP_LOCK:
        sql = "SELECT pg_advisory_lock(" MIGRATE_LOCK ")";
        break;
    case STEP_TABLE:
        sql = "CREATE TABLE IF NOT EXISTS pmb_schema_migrations (version integer PRIMARY KEY, "
              "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())";
        break;
    case STEP_READ:
        sql = "SELECT version, to_char(applied_at, 'YYYY-MM-DD HH24:MI:SS TZ') FROM "
              "pmb_schema_migrations ORDER BY version";
        break;
    case STEP_APPLY:
        while (migrations[op->next].name && migrations[op->next].version < 64 &&
               op->applied[migrations[op->next].version]) {
            op->next++;
        }
        if (!migrations[op->next].name) {
            op->step = STEP_UNLOCK;
            sql = "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")";
            break;
        }
        {
            const struct migration *m = &migrations[op->next];
            size_t len = strlen(m->sql) + strlen(m->name) + 128;
            owned = malloc(len);
            if (owned) {
                snprintf(owned, len,
                         "%s\n;INSERT INTO pmb_schema_migrations (version, name) VALUES (%d, '%s')",
                         m->sql, m->version, m->name);
            }
            sql = owned;
        }
        break;
    case STEP_UNLOCK:
        sql = "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")";
        break;
    }
    if (!sql || !pg_query(op->conn, sql, owned ? -1 : 0, NULL, migrate_done_cb, op)) {
        free(owned);
        snprintf(op->error, sizeof op->error, "out of memory");
        op->failed = 1;
        migrate_finish(op);
        return;
    }
    free(owned);
}

int migrate_run(struct pg_conn *c, int apply, migrate_done_fn done, void *arg)
{
    struct migrate_op *op = calloc(1, sizeof *op);
    if (!op) {
        return -1;
    }
    op->conn = c;
    op->apply = apply;
    op->done = done;
    op->arg = arg;
    op->step = apply ? STEP_LOCK : STEP_READ;
    migrate_step(op);
    return 0;
}
