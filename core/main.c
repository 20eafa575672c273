/* main.c — the process: arguments and subcommands, start-up order, signals, shutdown.
 * run: config + scripts (host.c) -> HTTP (http.c) -> auth.test -> Socket Mode (socketmode.c),
 * with SIGHUP handed to host_reload and SIGTERM/SIGINT draining everything within a bound.
 * Arguments are cli.c's; check and render (offline.c) reuse the host's load path without Slack. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "cli.h"
#include "host/host.h"
#include "http/http.h"
#include "net/health.h"
#include "net/socketmode.h"
#include "net/ws.h"
#include "offline.h"

#define MAIN_DRAIN_SECONDS 5.0
#define MAIN_HARD_DEADLINE 12.0

static uv_signal_t main_sighup, main_sigterm, main_sigint;
static uv_timer_t main_deadline;
static uv_timer_t main_auth_retry;
static int main_stopping;
static int main_exit_code;
static int main_auth_attempt;
static const char *main_bot_token;
static const char *main_app_token;

/* ---- shutdown: sm_stop + host_drain, then http, signals, health, lws ---- */

static int main_pending_stops;

static void main_close_handles(void)
{
    uv_close((uv_handle_t *)&main_sighup, NULL);
    uv_close((uv_handle_t *)&main_sigterm, NULL);
    uv_close((uv_handle_t *)&main_sigint, NULL);
    if (!uv_is_closing((uv_handle_t *)&main_auth_retry)) {
        uv_close((uv_handle_t *)&main_auth_retry, NULL);
    }
    if (!uv_is_closing((uv_handle_t *)&main_deadline)) {
        uv_close((uv_handle_t *)&main_deadline, NULL);
    }
}

static void main_stop_step_done(void *arg)
{
    (void)arg;
    if (--main_pending_stops > 0) {
        return;
    }
    http_shutdown();
    health_stop();
    main_close_handles();
    ws_shutdown_begin();
    log_event(LOG_INFO, "stopped", NULL);
}

static void main_deadline_cb(uv_timer_t *t)
{
    (void)t;
    log_event(LOG_WARN, "shutdown took too long; exiting anyway", NULL);
    exit(main_exit_code);
}

static void main_begin_stop(const char *why)
{
    if (main_stopping) {
        log_event(LOG_WARN, "second stop signal; exiting now", NULL);
        exit(main_exit_code);
    }
    main_stopping = 1;
    log_event(LOG_INFO, "stopping", "reason", why, NULL);
    uv_timer_start(&main_deadline, main_deadline_cb, (uint64_t)(MAIN_HARD_DEADLINE * 1000), 0);
    uv_unref((uv_handle_t *)&main_deadline);
    uv_timer_stop(&main_auth_retry);
    main_pending_stops = 2;
    sm_stop(main_stop_step_done, NULL);
    host_drain(MAIN_DRAIN_SECONDS, main_stop_step_done, NULL);
}

static void main_on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (signum == SIGHUP) {
        if (!main_stopping) {
            log_event(LOG_INFO, "SIGHUP: reloading", NULL);
            host_reload();
        }
        return;
    }
    main_begin_stop(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void main_signals_start(void)
{
    uv_signal_init(loop_get(), &main_sighup);
    uv_signal_init(loop_get(), &main_sigterm);
    uv_signal_init(loop_get(), &main_sigint);
    uv_signal_start(&main_sighup, main_on_signal, SIGHUP);
    uv_signal_start(&main_sigterm, main_on_signal, SIGTERM);
    uv_signal_start(&main_sigint, main_on_signal, SIGINT);
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
            main_exit_code = 1;
            main_begin_stop("auth failed");
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

    struct sm_settings sm = host_settings()->sm;
    sm.app_token = main_app_token;
    if (sm_start(&sm, host_on_envelope, NULL) < 0) {
        log_event(LOG_ERROR, "could not start Socket Mode", NULL);
        main_exit_code = 1;
        main_begin_stop("socket mode failed");
    }
}

static void main_auth_test(void)
{
    if (!http_api("auth.test", main_bot_token, NULL, 0, "application/x-www-form-urlencoded",
                  main_auth_done, NULL)) {
        log_event(LOG_ERROR, "could not start the auth.test request", NULL);
        main_exit_code = 1;
        main_begin_stop("http failed");
    }
}

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
    log_add_secret(v);
    *out = v;
    return 0;
}

static int main_finish_loop(void)
{
    ws_shutdown_finish();
    host_shutdown();
    metrics_shutdown();
    json_shutdown();
    int rc = loop_close();
    if (rc != 0) {
        log_event(LOG_WARN, "event loop closed with handles still open", NULL);
    }
    return rc;
}

static int main_run(const char *config_path)
{
    struct host_options ho = {config_path, HOST_MODE_RUN, NULL};
    struct http_settings hs;
    const char *api_url = getenv("SLACK_API_URL");

    if (main_env_token("SLACK_BOT_TOKEN", "xoxb-", &main_bot_token) < 0 ||
        main_env_token("SLACK_APP_TOKEN", "xapp-", &main_app_token) < 0) {
        return 2;
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
    if (http_init(&hs) < 0) {
        log_event(LOG_ERROR, "could not initialise HTTP", NULL);
        return 1;
    }
    if (ws_init() < 0) {
        log_event(LOG_ERROR, "could not initialise libwebsockets", NULL);
        return 1;
    }
    if (cs->listen && *cs->listen && health_start(cs->listen) < 0) {
        log_event(LOG_ERROR, "could not listen for /healthz and /metrics", "listen", cs->listen,
                  NULL);
        return 1;
    }
    uv_timer_init(loop_get(), &main_deadline);
    uv_timer_init(loop_get(), &main_auth_retry);
    main_signals_start();
    log_event(LOG_INFO, "starting", "version", PMB_VERSION, "api", hs.api_base, "generation", "1",
              NULL);
    main_auth_test();
    loop_run();
    main_finish_loop();
    log_shutdown();
    return main_exit_code;
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
    if (args.pidfile && cli_pidfile_write(args.pidfile, err, sizeof err) < 0) {
        fprintf(stderr, "postmortembot: %s\n", err);
        return CLI_EXIT_FAILED;
    }
    return main_run(config);
}
