/* host.h — the Lua host, on the script loop: generations (a lua_State built from config, scripts
 * and templates), one coroutine per event, time slices, CPU budget and memory cap, all-or-nothing
 * reload on SIGHUP. main.c and offline.c drive it; the primitives_*.c files are the only ones that
 * give Lua its primitives (the `host` module). */
#ifndef PMB_HOST_H
#define PMB_HOST_H

#include <stddef.h>

#include "http/http.h"
#include "net/socketmode.h"

enum host_mode { HOST_MODE_RUN, HOST_MODE_CHECK, HOST_MODE_RENDER };

struct host_options {
    const char *config_path; /* -c FILE, or found by cli.c's search path */
    enum host_mode mode;
    const char *write_root; /* render -o DIR; NULL = the data dir */
};

/* What the C core takes from the config (read from generation 1; http limits re-read on reload):
 * resolved values, the config schema gave every key its default. Strings are owned by config.c
 * (config_read_settings) and live until host_shutdown. */
struct core_settings {
    struct http_settings http;
    struct sm_settings sm; /* timings and limits; transport.c adds the callbacks */
    const char *data_dir;  /* absolute; POSTMORTEMBOT_DATA_DIR wins */
    const char *listen;    /* "host:port" or NULL; POSTMORTEMBOT_LISTEN wins */
    const char *log_level; /* config log_level, default "info" */
    const char
        *database_url; /* database.url or NULL (file mode); POSTMORTEMBOT_DATABASE_URL wins */
    struct {
        double ack_timeout, lease, renew, sweep; /* database.*: jobs and their leases */
    } jobs;
};

struct bot_identity {
    char user_id[32], bot_id[32], team_id[32], team[128], url[256];
};

/* Build generation 1. On error, logs every problem (file:line: message) and returns -1. */
int host_init(const struct host_options *o);
const struct core_settings *host_settings(void);
void host_set_bot(const struct bot_identity *bot); /* from auth.test, before events flow */

/* SIGHUP: build a new generation; swap only if it all loads and self-checks. 0 = swapped. */
int host_reload(void);
int host_generation(void);

/* A Socket Mode envelope (already acked, not a duplicate): run init.on_envelope in a new
 * coroutine of the current generation. job (database mode) is the job it runs as: host.job()
 * gives it to the scripts, and job_end (host_set_job_end) is told when the coroutine ends. */
void host_on_envelope(const char *json, size_t len, const struct sm_job *job);
/* How a job's coroutine ended: lost = the scripts found the job fenced (host.job_lost): no
 * failure reply was posted and the job is not finished by this instance. */
typedef void (*host_job_end_fn)(const char *job_id, int generation, int ok, int lost);
void host_set_job_end(host_job_end_fn fn);

/* `check`: print problems to stdout/stderr; returns 0 when everything loads, 1 otherwise. */
int host_check_report(void);

/* `render`: runs init.render{...} in a coroutine on the loop, the table made of opts (NULL-ended
 * name, value pairs: "thread", path, "users", path, ...) and out_dir (the write root); when it
 * finishes, done(rc, result) is called: rc 0 with what render_main returned (boot.lua), else 1. */
void host_render(const char *const *opts, void (*done)(int rc, const char *result, void *arg),
                 void *arg);

/* Stop accepting events; give running coroutines up to grace seconds, then end them; done()
 * runs on the loop when no coroutine is left. */
void host_drain(double grace, void (*done)(void *arg), void *arg);
int host_running(void);   /* coroutines alive */
void host_shutdown(void); /* close every generation (after host_drain) */

#endif
