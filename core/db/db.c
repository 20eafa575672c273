/* db.c — the script loop's database in database mode: opens its connection (pg.c), applies the
 * migrations at start (migrate.c, retried while the database is unreachable) before the bot goes
 * on to Slack, and runs `db migrate` / `db status` on a loop of their own. main.c, offline.c and
 * primitives_db.c (db_conn) call it; calls pg.c, migrate.c, log.c. Script loop only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/loop.h"
#include "db/db.h"
#include "db/migrate.h"

#define DB_MIGRATE_RETRY 2.0

static struct pg_conn *db_script;
static void (*db_ready_fn)(void *arg);
static void *db_ready_arg;
static struct loop_timer *db_retry;
static char db_name[160];

int db_redact(const char *url)
{
    int rc = 0;
    char *pw = url ? pg_conninfo_password(url) : NULL;
    if (pw) {
        rc |= log_add_secret(pw);
        free(pw);
    }
    const char *env = getenv("PGPASSWORD");
    if (env && *env) {
        rc |= log_add_secret(env);
    }
    return rc < 0 ? -1 : 0;
}

const char *db_instance(void)
{
    if (!db_name[0]) {
        char host[128];
        if (gethostname(host, sizeof host) < 0) {
            snprintf(host, sizeof host, "localhost");
        }
        host[sizeof host - 1] = '\0';
        snprintf(db_name, sizeof db_name, "%s:%ld", host, (long)getpid());
    }
    return db_name;
}

static void db_migrate(void *arg);

/* The schema is tried again in DB_MIGRATE_RETRY seconds; without a timer (out of memory) the
 * instance stays unready, says so, and /healthz keeps showing Slack not connected. */
static void db_schedule_retry(void)
{
    db_retry = loop_timer_start(DB_MIGRATE_RETRY, db_migrate, NULL);
    if (!db_retry) {
        log_event(LOG_ERROR, "out of memory: the database schema will not be retried; restart",
                  NULL);
    }
}

static void db_migrated(int rc, const char *report, void *arg)
{
    (void)arg;
    if (!db_script) {
        return; /* stopped meanwhile */
    }
    if (rc < 0) {
        const char *err = strstr(report, "error: ");
        log_event(LOG_WARN, "database schema not ready; retrying", "error", err ? err + 7 : report,
                  NULL);
        db_schedule_retry();
        return;
    }
    char latest[16];
    snprintf(latest, sizeof latest, "%d", migrate_latest());
    log_event(LOG_INFO, "database schema current", "version", latest, "instance", db_instance(),
              NULL);
    if (db_ready_fn) {
        void (*fn)(void *) = db_ready_fn;
        db_ready_fn = NULL;
        fn(db_ready_arg);
    }
}

static void db_migrate(void *arg)
{
    (void)arg;
    db_retry = NULL;
    if (db_script && migrate_run(db_script, 1, db_migrated, NULL) < 0) {
        db_schedule_retry();
    }
}

int db_start(const char *url, void (*ready)(void *arg), void *arg)
{
    struct pg_settings s = {url, "script", 5.0, 10.0, 5.0};
    db_redact(url);
    db_script = pg_open(loop_get(), &s, NULL, NULL);
    if (!db_script) {
        return -1;
    }
    db_ready_fn = ready;
    db_ready_arg = arg;
    db_migrate(NULL);
    return 0;
}

struct pg_conn *db_conn(void)
{
    return db_script;
}

void db_stop(void)
{
    loop_timer_cancel(db_retry);
    db_retry = NULL;
    if (db_script) {
        struct pg_conn *c = db_script;
        db_script = NULL;
        pg_close(c, NULL, NULL);
    }
}

/* ---- `db migrate`, `db status` ---- */

struct db_cli_state {
    struct pg_conn *conn;
    int rc;
};

static void db_cli_done(int rc, const char *report, void *arg)
{
    struct db_cli_state *st = arg;
    const char *err = strstr(report, "error: ");
    if (err) {
        fwrite(report, 1, (size_t)(err - report), stdout);
        fprintf(stderr, "postmortembot: database: %s", err + 7);
    } else {
        fputs(report, stdout);
    }
    st->rc = rc < 0 ? 1 : 0;
    pg_close(st->conn, NULL, NULL);
}

int db_cli(const char *url, int apply)
{
    struct db_cli_state st = {NULL, 1};
    /* one attempt: an operator at a terminal wants the error, not a retry loop */
    struct pg_settings s = {url, "cli", 10.0, 10.0, 60.0};
    db_redact(url);
    if (loop_init() < 0) {
        return 1;
    }
    st.conn = pg_open(loop_get(), &s, NULL, NULL);
    if (!st.conn || migrate_run(st.conn, apply, db_cli_done, &st) < 0) {
        return 1;
    }
    loop_run();
    loop_close();
    return st.rc;
}
