/* db.h — the script loop's database (database mode): its one libpq connection (pg.h), the schema
 * brought up to date at start (migrate.h), and the `db migrate` / `db status` subcommands.
 * main.c starts and stops it, offline.c runs the subcommands, primitives_db.c sends statements
 * on db_conn(). In file mode none of this runs and db_conn() is NULL. */
#ifndef PMB_DB_H
#define PMB_DB_H

#include "db/pg.h"

/* Connect to url on the calling thread's loop and apply the pending migrations (retrying every
 * few seconds while the database is unreachable or the migration fails); ready(arg) runs once the
 * schema is current. 0, or -1 when the connection could not even be created. */
int db_start(const char *url, void (*ready)(void *arg), void *arg);
struct pg_conn *db_conn(void); /* NULL in file mode or before db_start */
/* The script loop's instance name (host:pid), for job owners and logs. */
const char *db_instance(void);
void db_stop(void); /* closes the connection (its handles close on the loop) */

/* `db migrate` (apply = 1) or `db status` against url, on a loop of its own: prints the state of
 * every migration to stdout, errors to stderr. Returns 0 when it worked, 1 otherwise (cli.c turns
 * that into the process exit status). */
int db_cli(const char *url, int apply);

/* Remember the password of url (if any) and $PGPASSWORD as log secrets. 0, or -1 when one could
 * not be remembered (then nothing may be logged with it: the caller stops). */
int db_redact(const char *url);

#endif
