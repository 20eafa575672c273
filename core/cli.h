/* cli.h — the command line: options before or after the subcommand, the config search path, the
 * usage text, the pid file. main.c calls cli_parse first and dispatches on the result; nothing
 * here touches Slack, Lua or the loop. */
#ifndef PMB_CLI_H
#define PMB_CLI_H

#include <stdio.h>

enum cli_command { CLI_RUN, CLI_CHECK, CLI_RENDER, CLI_HELP, CLI_VERSION, CLI_DB };

/* Exit statuses, the same for every subcommand (docs/postmortembot.1 "EXIT STATUS"). */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1, /* config, scripts or templates do not load; the bot failed */
    CLI_EXIT_USAGE = 2,  /* bad arguments, a missing token, no config found */
    CLI_EXIT_INPUT = 3,  /* render: an input file is unreadable or not what it should be */
    CLI_EXIT_OUTPUT = 4, /* render: the output directory cannot be written */
};

struct cli_args {
    enum cli_command command;
    const char *config; /* -c FILE as given, or NULL: see cli_find_config */
    const char *pidfile;
    int debug;
    /* render */
    const char *input, *users, *out_dir, *thread, *since, *until, *channel, *files;
    int db_apply; /* db migrate (1) or db status (0) */
};

/* Fills a from argv (pointers into argv). 0, or -1 with a one-line reason in err. */
int cli_parse(int argc, char **argv, struct cli_args *a, char *err, size_t errsz);
void cli_usage(FILE *out);
/* The config to load: -c FILE, else $POSTMORTEMBOT_CONFIG, else the first of the search path
 * that exists. Written to buf; 0, or -1 with the places searched in err. */
int cli_find_config(const char *given, char *buf, size_t size, char *err, size_t errsz);
/* Write our pid to path (atomically) and remove it at exit if it still holds our pid. 0 or -1
 * with the reason in err. */
int cli_pidfile_write(const char *path, char *err, size_t errsz);

#endif
