/* migrate.h — the schema's versions: db/migrations/NNNN_name.sql compiled into the binary
 * (Makefile -> build/gen/migrations.inc), applied in order under an advisory lock, each in one
 * transaction with its row in pmb_schema_migrations. Called by db.c (start, `db migrate`,
 * `db status`); calls pg.h only. */
#ifndef PMB_MIGRATE_H
#define PMB_MIGRATE_H

#include "db/pg.h"

/* rc 0 = done; -1 = failed (why in report). report: one line per migration ("0001_state applied
 * 2024-…" / "pending"), then the error if any. Valid during the call only. */
typedef void (*migrate_done_fn)(int rc, const char *report, void *arg);

/* Bring the schema up to date (apply = 1) or only read its state (apply = 0). 0 or -1 (OOM). */
int migrate_run(struct pg_conn *c, int apply, migrate_done_fn done, void *arg);
int migrate_latest(void); /* the highest version compiled in */

#endif
