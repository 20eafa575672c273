/* main.c — the process: subcommands (arguments are cli.c's), start-up order, and the script loop's
 * side of the two threads. run: config + scripts (host.c) -> HTTP (http.c) -> the transport thread
 * (net/transport.c: Socket Mode, health, signals) -> auth.test -> Socket Mode. The transport thread
 * hands envelopes, SIGHUP and stop requests to this loop through its mailbox; this loop answers
 * apps.connections.open and, once drained, says it has stopped. check and render (offline.c) reuse
 * the host's load path without Slack and without the transport thread. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/liveness.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mailbox.h"
#include "base/metrics.h"
#include "cli.h"
#include "db/db.h"
#include "db/jobs.h"
#include "host/host.h"
#include "http/http.h"
#include "net/transport.h"
#include "offline.h"

/* ---- the script loop's side of the two threads (net/transport.c runs the other) ---- */

#define MAIN_DRAIN_SECONDS 5.0
#define MAIN_HEARTBEAT_MS 500   /* the script loop says it turns at least this often */
#define MAIN_QUEUE_MAX 4096     /* envelopes waiting for the script loop */
#define MAIN_STALL_SECONDS 10.0 /* /healthz: a script loop silent this long is unavailable */

static struct mailbox *main_mailbox; /* the script loop's: the transport thread posts to it */
static uv_timer_t main_heartbeat;
static uv_timer_t main_auth_retry;
static int main_stopping;
static int main_auth_attempt;
static const char *main_bot_token;
static const char *main_app_token;

static void main_heartbeat_cb(uv_timer_t *t)
{
    (void)t;
    liveness_beat();
}

static void main_db_done(void *arg)
{
    (void)arg;
    db_stop();
    uv_close((uv_handle_t *)&main_heartbeat, NULL);
    uv_close((uv_handle_t *)&main_auth_retry, NULL);
    mailbox_close(main_mailbox, NULL); /* what is still queued runs now and sees main_stopping */
    transport_script_stopped();
}

static void main_drained(void *arg)
{
    (void)arg;
    http_shutdown();
    jobs_stop(main_db_done, NULL); /* the jobs' last ends and hand-backs, then the connection */
}

static void main_on_stop(void)
{
    if (main_stopping) {
        return;
    }
    main_stopping = 1;
    jobs_quiesce(); /* the jobs this instance hands back are for the others */
    uv_timer_stop(&main_auth_retry);
    host_drain(MAIN_DRAIN_SECONDS, main_drained, NULL);
}

static void main_on_reload(void)
{
    if (!main_stopping) {
        host_reload();
    }
}

static void main_on_envelope(const char *json, size_t len, const struct sm_job *job)
{
    if (job) {
        struct jobs_ref ref = {job->id, job->generation, job->degraded};
        jobs_track(&ref); /* database mode: its lease is renewed from now on */
    }
    if (main_stopping) {
        log_event(LOG_WARN, "envelope dropped: shutting down", NULL);
        if (job) {
            jobs_ended(job->id, job->generation, 0, 1); /* handed back to the other instances */
        }
        return;
    }
    host_on_envelope(json, len, job);
}

/* A job taken over from an instance whose lease expired (jobs.c has it tracked already). */
static void main_run_claimed(const char *json, size_t len, const struct jobs_ref *ref)
{
    struct sm_job job = {ref->id, ref->generation, ref->degraded};
    host_on_envelope(json, len, &job);
}

/* apps.connections.open for the transport thread, on this loop's HTTP client (the one owner of
 * HTTP, its rate gates and the tokens). */
static void main_open_done(const struct http_result *res, void *arg)
{
    unsigned seq = (unsigned)(uintptr_t)arg;
    struct sm_open_result r = {0, 0, NULL, NULL, NULL};
    char url[4096];
    url[0] = '\0';
    if (res->err == HTTP_OK) {
        struct json_doc *doc = json_parse(res->body, res->body_len);
        if (doc) {
            json_get_string(doc, "url", url, sizeof url);
            json_free(doc);
        }
        r.ok = 1;
        r.url = url;
    } else {
        r.slack_error = res->err == HTTP_ERR_SLACK;
        r.code = res->code ? res->code : http_err_code(res->err);
        r.message = res->message;
    }
    transport_open_result(seq, &r);
}

static void main_on_open_url(unsigned seq)
{
    if (main_stopping ||
        !http_api("apps.connections.open", main_app_token, NULL, 0,
                  "application/x-www-form-urlencoded", main_open_done, (void *)(uintptr_t)seq)) {
        struct sm_open_result r = {0, 0, "cancelled", "the bot is stopping", NULL};
        transport_open_result(seq, &r);
    }
}

/* ---- start-up: auth.test, then Socket Mode ---- */

static void main_auth_test(void);

static void main_auth_retry_cb(uv_timer_t *t)
{
    (void)t;
    main_auth_test();
}

static int main_auth_is_fatal(const char *code)
{
    static const char *const fatal[] = {
        "invalid_auth",  "not_authed",    "account_inactive", "token_revoked",
        "token_expired", "team_disabled", "missing_scope",    NULL};
    for (int i = 0; code && fatal[i]; i++) {
        if (strcmp(code, fatal[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void main_auth_done(const struct http_result *res, void *arg)
{
    struct bot_identity bot;
    struct json_doc *doc;
    (void)arg;
    if (main_stopping) {
        return;
    }
    if (res->err != HTTP_OK) {
        if (res->err == HTTP_ERR_SLACK && main_auth_is_fatal(res->code)) {
            log_event(LOG_ERROR, "auth.test refused the bot token; check SLACK_BOT_TOKEN", "error",
                      res->code, NULL);
            transport_request_stop(1, "auth failed");
            return;
        }
        double wait = 1.0;
        for (int i = 0; i < main_auth_attempt && wait < 60; i++) {
            wait *= 2;
        }
        char wait_s[32];
        snprintf(wait_s, sizeof wait_s, "%.0f", wait);
        log_event(LOG_WARN, "auth.test failed; retrying", "error", res->code ? res->code : "?",
                  "detail", res->message ? res->message : "", "retry_in_s", wait_s, NULL);
        main_auth_attempt++;
        uv_timer_start(&main_auth_retry, main_auth_retry_cb, (uint64_t)(wait * 1000), 0);
        return;
    }
    memset(&bot, 0, sizeof bot);
    doc = json_parse(res->body, res->body_len);
    if (doc) {
        json_get_string(doc, "user_id", bot.user_id, sizeof bot.user_id);
        json_get_string(doc, "bot_id", bot.bot_id, sizeof bot.bot_id);
        json_get_string(doc, "team_id", bot.team_id, sizeof bot.team_id);
        json_get_string(doc, "team", bot.team, sizeof bot.team);
        json_get_string(doc, "url", bot.url, sizeof bot.url);
        json_free(doc);
    }
    host_set_bot(&bot);
    log_event(LOG_INFO, "authenticated", "bot_user", bot.user_id, "bot_id", bot.bot_id, "team",
              bot.team_id, NULL);
    if (transport_connect() < 0) {
        log_event(LOG_WARN, "could not start Socket Mode; trying again in 1 s", NULL);
        uv_timer_start(&main_auth_retry, main_auth_retry_cb, 1000, 0);
    }
}

static void main_auth_test(void)
{
    if (!http_api("auth.test", NULL, NULL, 0, "application/x-www-form-urlencoded", main_auth_done,
                  NULL)) {
        log_event(LOG_ERROR, "could not start the auth.test request", NULL);
        transport_request_stop(1, "http failed");
    }
}

/* The token in the environment variable name, checked and registered for redaction: 0; -1 when it
 * is missing or malformed (said on stderr); -2 when out of memory. */
static int main_env_token(const char *name, const char *prefix, const char **out)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "postmortembot: %s is not set (a %s... token)\n", name, prefix);
        return -1;
    }
    if (strncmp(v, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "postmortembot: %s does not look like a %s... token\n", name, prefix);
        return -1;
    }
    if (log_add_secret(v) < 0) {
        fprintf(stderr, "postmortembot: out of memory\n");
        return -2;
    }
    *out = v;
    return 0;
}

/* Database mode: the schema is current, Slack may start. */
static void main_db_ready(void *arg)
{
    (void)arg;
    const struct core_settings *cs = host_settings();
    struct jobs_settings js = {db_instance(), cs->jobs.lease, cs->jobs.renew, cs->jobs.sweep,
                               main_run_claimed};
    if (main_stopping) {
        return;
    }
    if (jobs_start(db_conn(), &js) < 0) {
        log_event(LOG_ERROR, "could not start the jobs' leases", NULL);
        transport_request_stop(1, "database failed");
        return;
    }
    host_set_job_end(jobs_ended);
    main_auth_test();
}

static int main_run(const char *config_path)
{
    struct host_options ho = {config_path, HOST_MODE_RUN, NULL};
    struct http_settings hs;
    const char *api_url = getenv("SLACK_API_URL");
    static const struct transport_hooks hooks = {main_on_envelope, main_on_reload, main_on_stop,
                                                 main_on_open_url};

    int token_rc = main_env_token("SLACK_BOT_TOKEN", "xoxb-", &main_bot_token);
    if (token_rc == 0) {
        token_rc = main_env_token("SLACK_APP_TOKEN", "xapp-", &main_app_token);
    }
    if (token_rc < 0) {
        return token_rc == -2 ? 1 : 2; /* out of memory is a failure, not a usage error */
    }
    if (db_redact(getenv("POSTMORTEMBOT_DATABASE_URL")) < 0) {
        fputs("postmortembot: out of memory\n", stderr);
        return 1;
    }
    if (loop_init() < 0 || json_init() < 0) {
        fputs("postmortembot: could not initialise the event loop\n", stderr);
        return 1;
    }
    if (host_init(&ho) < 0) {
        log_event(LOG_ERROR, "could not load config and scripts; nothing started", "config",
                  config_path, NULL);
        return 1;
    }
    const struct core_settings *cs = host_settings();
    log_set_level(log_level_from_name(cs->log_level));
    hs = cs->http;
    hs.api_base = api_url && *api_url ? api_url : "https://slack.com/api/";
    hs.bot_token = main_bot_token; /* read once; from here on only http.c holds it */
    if (http_init(&hs) < 0) {
        log_event(LOG_ERROR, "could not initialise HTTP", NULL);
        return 1;
    }
    main_mailbox = mailbox_open(MAIN_QUEUE_MAX);
    if (!main_mailbox) {
        log_event(LOG_ERROR, "could not create the script loop's mailbox", NULL);
        return 1;
    }
    uv_timer_init(loop_get(), &main_heartbeat);
    uv_timer_start(&main_heartbeat, main_heartbeat_cb, 0, MAIN_HEARTBEAT_MS);
    uv_timer_init(loop_get(), &main_auth_retry);
    struct transport_settings ts;
    memset(&ts, 0, sizeof ts);
    ts.sm = cs->sm;
    ts.listen = cs->listen;
    ts.stall_seconds = MAIN_STALL_SECONDS;
    if (cs->database_url) {
        /* the job row before the ack, on the transport thread's own connection (net/accept.c) */
        ts.accept.conninfo = cs->database_url;
        ts.accept.owner = db_instance();
        ts.accept.lease = cs->jobs.lease;
        ts.accept.timeout = cs->jobs.ack_timeout;
    }
    if (transport_start(&ts, &hooks, main_mailbox) < 0) {
        return 1;
    }
    log_event(LOG_INFO, "starting", "version", PMB_VERSION, "api", hs.api_base, "generation", "1",
              NULL);
    if (!cs->database_url) {
        main_auth_test();
    } else if (db_start(cs->database_url, main_db_ready, NULL) < 0) {
        log_event(LOG_ERROR, "could not create the database connection", NULL);
        transport_request_stop(1, "database failed");
    }
    loop_run();
    int rc = transport_join();
    host_shutdown();
    metrics_shutdown();
    json_shutdown();
    if (loop_close() != 0) {
        log_event(LOG_WARN, "event loop closed with handles still open", NULL);
    }
    mailbox_free(main_mailbox);
    log_event(LOG_INFO, "stopped", NULL);
    log_shutdown();
    return rc;
}

int main(int argc, char **argv)
{
    struct cli_args args;
    char err[1024], config[4096];

    signal(SIGPIPE, SIG_IGN);
    if (cli_parse(argc, argv, &args, err, sizeof err) < 0) {
        fprintf(stderr, "postmortembot: %s\n(postmortembot --help shows the usage)\n", err);
        return CLI_EXIT_USAGE;
    }
    switch (args.command) {
    case CLI_HELP:
        cli_usage(stdout);
        return CLI_EXIT_OK;
    case CLI_VERSION:
        printf("postmortembot %s\n", PMB_VERSION);
        return CLI_EXIT_OK;
    default:
        break;
    }
    if (cli_find_config(args.config, config, sizeof config, err, sizeof err) < 0) {
        fprintf(stderr, "postmortembot: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    if (args.command == CLI_CHECK) {
        return offline_check(config);
    }
    if (args.command == CLI_RENDER) {
        return offline_render(config, &args);
    }
    if (args.command == CLI_DB) {
        return offline_db(config, args.db_apply);
    }
    if (args.pidfile && cli_pidfile_write(args.pidfile, err, sizeof err) < 0) {
        fprintf(stderr, "postmortembot: %s\n", err);
        return CLI_EXIT_FAILED;
    }
    return main_run(config);
}
