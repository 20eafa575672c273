/* offline.c — `check` and `render`: build one generation without Slack (host.h), then report.
 * render hands its options to init.render (scripts/lib/render_offline.lua) through host_render
 * and turns the JSON answer of boot.render_main into one line: the report's path on stdout, or the
 * error on stderr (its traceback only with --debug) and the exit status the error names. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "base/loop.h"
#include "db/db.h"
#include "export_zip.h"
#include "host/host.h"
#include "offline.h"

int offline_check(const char *config_path)
{
    struct host_options ho = {config_path, HOST_MODE_CHECK, NULL};
    if (loop_init() < 0 || json_init() < 0) {
        return CLI_EXIT_FAILED;
    }
    int rc = host_init(&ho) < 0 ? CLI_EXIT_FAILED : host_check_report();
    host_shutdown();
    json_shutdown();
    loop_close();
    return rc;
}

int offline_db(const char *config_path, int apply)
{
    struct host_options ho = {config_path, HOST_MODE_CHECK, NULL};
    char *url = NULL;
    if (db_redact(getenv("POSTMORTEMBOT_DATABASE_URL")) < 0 || loop_init() < 0 || json_init() < 0) {
        return CLI_EXIT_FAILED;
    }
    int rc = host_init(&ho);
    if (rc == 0 && host_settings()->database_url) {
        url = strdup(host_settings()->database_url);
    }
    host_shutdown();
    json_shutdown();
    loop_close();
    if (rc < 0) {
        return CLI_EXIT_FAILED;
    }
    if (!url) {
        fputs("postmortembot: no database is configured (config database.url or "
              "POSTMORTEMBOT_DATABASE_URL)\n",
              stderr);
        return CLI_EXIT_USAGE;
    }
    rc = db_cli(url, apply);
    free(url);
    return rc;
}

struct offline_render_state {
    int exit_code;
    int debug;
};

static void offline_render_done(int rc, const char *result, void *arg)
{
    struct offline_render_state *st = arg;
    struct json_doc *doc = rc == 0 && result ? json_parse(result, strlen(result)) : NULL;
    char path[PATH_MAX], msg[2048], tb[4096];
    double code = CLI_EXIT_FAILED;

    if (!doc) {
        fputs("postmortembot render: the report could not be built (see the log above)\n", stderr);
        st->exit_code = CLI_EXIT_FAILED;
        return;
    }
    if (json_get_string(doc, "path", path, sizeof path) == 0) {
        printf("%s\n", path);
        fflush(stdout);
        st->exit_code = CLI_EXIT_OK;
    } else {
        if (json_get_string(doc, "error", msg, sizeof msg) < 0) {
            snprintf(msg, sizeof msg, "unknown error");
        }
        json_get_number(doc, "exit", &code);
        fprintf(stderr, "postmortembot render: %s\n", msg);
        if (st->debug && json_get_string(doc, "traceback", tb, sizeof tb) == 0) {
            fprintf(stderr, "%s\n", tb);
        }
        st->exit_code = code >= 1 && code <= 4 ? (int)code : CLI_EXIT_FAILED;
    }
    json_free(doc);
}

/* The output directory exists (made if needed) and is writable: checked before anything loads,
 * so that its error is not taken for a config problem. */
static int offline_output_ok(const char *dir)
{
    char tmp[PATH_MAX];
    struct stat st;
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) < 0) {
        fprintf(stderr, "postmortembot render: cannot write the report into %s: %s\n", dir,
                errno ? strerror(errno) : "not a directory");
        return 0;
    }
    return 1;
}

static int offline_render_input(const char *config_path, const struct cli_args *a);

/* An export zip is unpacked first and rendered as the folder it holds. */
int offline_render(const char *config_path, const struct cli_args *a)
{
    char dir[4096], err[8400];
    struct cli_args unpacked = *a;
    int rc;
    if (!export_zip_is_zip(a->input)) {
        return offline_render_input(config_path, a);
    }
    if (export_zip_unpack(a->input, dir, sizeof dir, err, sizeof err) < 0) {
        fprintf(stderr, "postmortembot render: %s\n", err);
        return CLI_EXIT_INPUT;
    }
    unpacked.input = dir;
    rc = offline_render_input(config_path, &unpacked);
    export_zip_remove(dir);
    return rc;
}

static int offline_render_input(const char *config_path, const struct cli_args *a)
{
    const char *out_dir = a->out_dir ? a->out_dir : ".";
    struct host_options ho = {config_path, HOST_MODE_RENDER, out_dir};
    struct offline_render_state st = {CLI_EXIT_FAILED, a->debug};
    const char *opts[] = {"input", a->input, "users", a->users, "thread",  a->thread,
                          "since", a->since, "until", a->until, "channel", a->channel,
                          "files", a->files, NULL,    NULL};
    const char *given[sizeof opts / sizeof *opts];
    size_t n = 0;

    errno = 0;
    if (!offline_output_ok(out_dir)) {
        return CLI_EXIT_OUTPUT;
    }
    /* only the options given, as name/value pairs */
    for (size_t i = 0; opts[i]; i += 2) {
        if (opts[i + 1]) {
            given[n++] = opts[i];
            given[n++] = opts[i + 1];
        }
    }
    given[n] = NULL;
    if (loop_init() < 0 || json_init() < 0) {
        return CLI_EXIT_FAILED;
    }
    if (host_init(&ho) < 0) {
        json_shutdown();
        loop_close();
        return CLI_EXIT_FAILED;
    }
    host_render(given, offline_render_done, &st);
    loop_run();
    host_shutdown();
    json_shutdown();
    loop_close();
    return st.exit_code;
}
