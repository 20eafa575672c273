/* offline.h — the subcommands that run without Slack: check (load as a reload would) and render
 * (a report from saved files). main.c dispatches to them; they drive the Lua host (host.h) on the
 * event loop and return the process's exit status (enum cli_exit). */
#ifndef PMB_OFFLINE_H
#define PMB_OFFLINE_H

#include "cli.h"

int offline_check(const char *config_path);
int offline_render(const char *config_path, const struct cli_args *a);
/* `db migrate` / `db status`: the database URL from the config (the environment wins). */
int offline_db(const char *config_path, int apply);

#endif
