/* cli.c — the command line: parses options before or after the subcommand (getopt_long permutes),
 * names the config file from -c, $POSTMORTEMBOT_CONFIG or the search path, prints the usage, and
 * keeps the --pidfile. main.c calls it before anything starts and dispatches on the result. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#ifndef PMB_PREFIX
#define PMB_PREFIX "/usr/local"
#endif

/* The search path after -c and $POSTMORTEMBOT_CONFIG, in order (shown by --help). */
static const char *const cli_config_path[] = {
    "./config/postmortembot.lua",
    "/etc/postmortembot/postmortembot.lua",
    PMB_PREFIX "/etc/postmortembot/postmortembot.lua",
    NULL,
};

enum {
    CLI_OPT_USERS = 256,
    CLI_OPT_THREAD,
    CLI_OPT_SINCE,
    CLI_OPT_UNTIL,
    CLI_OPT_CHANNEL,
    CLI_OPT_FILES,
    CLI_OPT_PIDFILE,
    CLI_OPT_DEBUG,
};

void cli_usage(FILE *out)
{
    fputs("usage: postmortembot [-c FILE] [--pidfile FILE]   run the bot (needs SLACK_BOT_TOKEN, "
          "SLACK_APP_TOKEN)\n"
          "       postmortembot check [-c FILE]             load config, scripts and templates "
          "as a reload would; exit 0 or 1\n"
          "       postmortembot render INPUT [options]      build a report offline, print its "
          "path\n"
          "       postmortembot db migrate | db status [-c FILE]  apply / show the PostgreSQL "
          "schema\n"
          "       postmortembot help | version | --help | --version\n"
          "\n"
          "render INPUT is a saved conversations.replies response (or several pages of it in an\n"
          "array), a JSON array of messages, or a Slack export: a channel's day file, a channel\n"
          "folder or the export's .zip (users.json and channels.json are read from the export).\n"
          "  --thread TS|LINK   the thread to render out of a channel file or an export\n"
          "  --since T, --until T  a time window instead (a channel report); T is a ts, a date\n"
          "                     (2024-11-14) or a date and time (2024-11-14T22:40, UTC)\n"
          "  --users FILE       a users.list response or a JSON array of users, for names\n"
          "  --channel FILE     the channel's info (conversations.info response or the object)\n"
          "  --files DIR        downloaded files, one per file id (DIR/F0123)\n"
          "  -o, --output DIR   where the report goes (default: the current directory)\n"
          "  --debug            show the Lua traceback of an error\n"
          "\n"
          "options may come before or after the subcommand.\n"
          "config (-c FILE): else $POSTMORTEMBOT_CONFIG, else the first that exists of\n",
          out);
    for (size_t i = 0; cli_config_path[i]; i++) {
        fprintf(out, "  %s\n", cli_config_path[i]);
    }
    fputs("environment: SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_API_URL (default "
          "https://slack.com/api/),\n"
          "  POSTMORTEMBOT_DATA_DIR, POSTMORTEMBOT_LISTEN (host:port for /healthz and /metrics), "
          "TZ,\n"
          "  POSTMORTEMBOT_DATABASE_URL (database mode: state shared in PostgreSQL)\n"
          "signals: SIGHUP reloads config, scripts and templates (all or nothing); SIGTERM/SIGINT "
          "stop cleanly\n"
          "exit status: 0 ok, 1 failed (config or scripts do not load, Slack refused a token),\n"
          "  2 usage, 3 render input unusable, 4 render output not writable\n",
          out);
}

static const struct {
    const char *name;
    enum cli_command command;
    int operands; /* how many operands it takes */
} cli_commands[] = {
    {"check", CLI_CHECK, 0},     {"render", CLI_RENDER, 1}, {"help", CLI_HELP, 0},
    {"version", CLI_VERSION, 0}, {"db", CLI_DB, 1},         {NULL, CLI_RUN, 0},
};

/* Options that only mean something to one subcommand. */
static int cli_render_only(const struct cli_args *a)
{
    return a->users || a->thread || a->since || a->until || a->channel || a->files || a->out_dir;
}

int cli_parse(int argc, char **argv, struct cli_args *a, char *err, size_t errsz)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"users", required_argument, NULL, CLI_OPT_USERS},
        {"thread", required_argument, NULL, CLI_OPT_THREAD},
        {"since", required_argument, NULL, CLI_OPT_SINCE},
        {"until", required_argument, NULL, CLI_OPT_UNTIL},
        {"channel", required_argument, NULL, CLI_OPT_CHANNEL},
        {"files", required_argument, NULL, CLI_OPT_FILES},
        {"pidfile", required_argument, NULL, CLI_OPT_PIDFILE},
        {"debug", no_argument, NULL, CLI_OPT_DEBUG},
        {NULL, 0, NULL, 0},
    };
    const char *operands[4];
    int n_operands = 0, c, flag_help = 0, flag_version = 0;

    memset(a, 0, sizeof *a);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "-:c:o:hV", opts, NULL)) != -1) {
        switch (c) {
        case 1: /* an operand, in order ("-" in optstring) */
            if (n_operands == (int)(sizeof operands / sizeof *operands)) {
                snprintf(err, errsz, "too many arguments");
                return -1;
            }
            operands[n_operands++] = optarg;
            break;
        case 'c':
            a->config = optarg;
            break;
        case 'o':
            a->out_dir = optarg;
            break;
        case 'h':
            flag_help = 1;
            break;
        case 'V':
            flag_version = 1;
            break;
        case CLI_OPT_USERS:
            a->users = optarg;
            break;
        case CLI_OPT_THREAD:
            a->thread = optarg;
            break;
        case CLI_OPT_SINCE:
            a->since = optarg;
            break;
        case CLI_OPT_UNTIL:
            a->until = optarg;
            break;
        case CLI_OPT_CHANNEL:
            a->channel = optarg;
            break;
        case CLI_OPT_FILES:
            a->files = optarg;
            break;
        case CLI_OPT_PIDFILE:
            a->pidfile = optarg;
            break;
        case CLI_OPT_DEBUG:
            a->debug = 1;
            break;
        case ':':
            snprintf(err, errsz, "option %s needs a value", argv[optind - 1]);
            return -1;
        default:
            snprintf(err, errsz, "unknown option %s", argv[optind - 1]);
            return -1;
        }
    }
    if (flag_help || flag_version) {
        a->command = flag_help ? CLI_HELP : CLI_VERSION;
        return 0;
    }
    if (n_operands == 0) {
        a->command = CLI_RUN;
    } else {
        size_t i = 0;
        while (cli_commands[i].name && strcmp(cli_commands[i].name, operands[0]) != 0) {
            i++;
        }
        if (!cli_commands[i].name) {
            snprintf(err, errsz,
                     "unknown command '%s' (commands: check, render, db, help, version)",
                     operands[0]);
            return -1;
        }
        a->command = cli_commands[i].command;
        if (a->command == CLI_DB && (n_operands != 2 || (strcmp(operands[1], "migrate") != 0 &&
                                                         strcmp(operands[1], "status") != 0))) {
            snprintf(err, errsz, "db takes one of: migrate, status");
            return -1;
        }
        a->db_apply = a->command == CLI_DB && strcmp(operands[1], "migrate") == 0;
        if (n_operands - 1 < cli_commands[i].operands) {
            snprintf(err, errsz,
                     "%s needs a file: %s INPUT (a saved thread, a Slack export "
                     "day file, folder or zip)",
                     operands[0], operands[0]);
            return -1;
        }
        if (n_operands - 1 > cli_commands[i].operands) {
            snprintf(err, errsz, "%s takes %s, not '%s'", operands[0],
                     cli_commands[i].operands ? "one file" : "no argument",
                     operands[1 + cli_commands[i].operands]);
            return -1;
        }
        if (a->command == CLI_RENDER) {
            a->input = operands[1];
        }
    }
    if (a->command != CLI_RENDER && cli_render_only(a)) {
        snprintf(err, errsz,
                 "--users, --thread, --since, --until, --channel, --files and -o are "
                 "options of render");
        return -1;
    }
    if (a->thread && (a->since || a->until)) {
        snprintf(err, errsz, "--thread picks one thread; --since/--until a time window: not both");
        return -1;
    }
    if (a->pidfile && a->command != CLI_RUN) {
        snprintf(err, errsz, "--pidfile is for running the bot");
        return -1;
    }
    return 0;
}

static int cli_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cli_find_config(const char *given, char *buf, size_t size, char *err, size_t errsz)
{
    const char *env = getenv("POSTMORTEMBOT_CONFIG");
    size_t used = 0;
    if (given || (env && *env)) {
        const char *path = given ? given : env;
        if (!cli_is_file(path)) {
            snprintf(err, errsz, "config %s%s: %s", path,
                     given ? "" : " (from POSTMORTEMBOT_CONFIG)",
                     access(path, F_OK) == 0 ? "not a regular file" : strerror(errno));
            return -1;
        }
        snprintf(buf, size, "%s", path);
        return 0;
    }
    for (size_t i = 0; cli_config_path[i]; i++) {
        if (cli_is_file(cli_config_path[i])) {
            snprintf(buf, size, "%s", cli_config_path[i]);
            return 0;
        }
    }
    used = (size_t)snprintf(err, errsz,
                            "no config found: give -c FILE or set "
                            "POSTMORTEMBOT_CONFIG; looked for");
    for (size_t i = 0; cli_config_path[i] && used < errsz; i++) {
        used += (size_t)snprintf(err + used, errsz - used, " %s", cli_config_path[i]);
    }
    return -1;
}

static char cli_pidfile_path[4096];
static pid_t cli_pidfile_pid;

static void cli_pidfile_remove(void)
{
    char buf[32];
    FILE *f;
    if (getpid() != cli_pidfile_pid || !(f = fopen(cli_pidfile_path, "r"))) {
        return;
    }
    if (fgets(buf, sizeof buf, f) && atol(buf) == (long)cli_pidfile_pid) {
        unlink(cli_pidfile_path);
    }
    fclose(f);
}

int cli_pidfile_write(const char *path, char *err, size_t errsz)
{
    char tmp[4200];
    FILE *f;
    int bad;
    if (snprintf(cli_pidfile_path, sizeof cli_pidfile_path, "%s", path) >=
        (int)sizeof cli_pidfile_path) {
        snprintf(err, errsz, "pid file %s: name too long", path);
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errsz, "pid file %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%ld\n", (long)getpid());
    bad = ferror(f);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) < 0) {
        snprintf(err, errsz, "pid file %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    cli_pidfile_pid = getpid();
    atexit(cli_pidfile_remove);
    return 0;
}
