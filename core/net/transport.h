/* transport.h — the transport thread: its own libuv loop carrying the lws context, Socket Mode
 * (acks, pings, refresh, dedupe), the /healthz and /metrics listener and the process's signal
 * handlers. Nothing the scripts do can delay an ack: envelopes are acked here and then posted to
 * the script loop's mailbox (bounded). main.c starts it and provides the script-side handlers;
 * docs/architecture.md draws what crosses between the two threads. */
#ifndef PMB_TRANSPORT_H
#define PMB_TRANSPORT_H

#include <stddef.h>

#include "base/mailbox.h"
#include "net/accept.h"
#include "net/socketmode.h"

/* What the transport thread asks of the script loop. Each runs ON THE SCRIPT LOOP (posted to its
 * mailbox), also while it stops (tasks still queued then run: they must cope). */
struct transport_hooks {
    /* A new envelope (already acked, not a duplicate); json is valid during the call. job: the
     * job it was recorded as (database mode), else NULL. */
    void (*envelope)(const char *json, size_t len, const struct sm_job *job);
    /* SIGHUP. */
    void (*reload)(void);
    /* Stop: drain the scripts, stop HTTP, then call transport_script_stopped() and let the script
     * loop end. */
    void (*stop)(void);
    /* apps.connections.open: answer with transport_open_result(seq, ...) from the script loop. */
    void (*open_url)(unsigned seq);
};

struct transport_settings {
    struct sm_settings sm; /* open_url / on_fatal are filled in by transport.c */
    const char *listen;    /* "host:port" of /healthz and /metrics, or NULL */
    double stall_seconds;  /* /healthz says 503 when the script loop has not turned this long */
    /* Database mode: the job row before the ack (accept.c); conninfo NULL = file mode. */
    struct accept_settings accept;
};

/* From the main thread, with the script loop's mailbox (mailbox_open on the main thread). Starts
 * the thread and waits until it is serving (lws context, listener, signals): 0, or -1 (logged). */
int transport_start(const struct transport_settings *s, const struct transport_hooks *h,
                    struct mailbox *script_mailbox);
/* From the script loop: */
int transport_connect(void); /* start Socket Mode (after auth.test); 0, or -1 (out of memory) */
void transport_request_stop(int exit_code, const char *why); /* e.g. a refused token */
void transport_script_stopped(void);                         /* the script side has finished */
/* The answer to open_url(seq). Copies what it needs. */
void transport_open_result(unsigned seq, const struct sm_open_result *res);
/* Main thread, after the script loop ended: wait for the thread; the process's exit code. */
int transport_join(void);

#endif
