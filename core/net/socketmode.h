/* socketmode.h — Slack Socket Mode: apps.connections.open (via http.c), the WebSocket (via ws.c),
 * hello, acks sent in C on receipt, disconnect handled make-before-break, reconnect with backoff,
 * ping/pong watchdog, redelivery dedupe by event_id, malformed frames skipped.
 * main.c starts it; each new envelope is handed to the Lua host through the callback. */
#ifndef PMB_SOCKETMODE_H
#define PMB_SOCKETMODE_H

#include <stddef.h>

struct sm_settings {
    const char *app_token; /* xapp-... */
    double ping_interval;  /* seconds between our pings (default 10) */
    double pong_timeout;   /* no frame at all for this long: the connection is dead (default 20) */
    double close_timeout;  /* give up a close handshake after this long (default 1) */
    size_t max_frame;      /* bigger messages are logged and skipped (default 1 MiB) */
    double dedupe_ttl;     /* seconds an event_id is remembered (default 900) */
    size_t dedupe_max;     /* bound on remembered ids (default 65536) */
};

/* json is the whole envelope text; valid only during the call. Called from a loop_defer'd task,
 * after the ack was queued, once per event_id. */
typedef void (*sm_envelope_fn)(const char *json, size_t len, void *arg);

int sm_start(const struct sm_settings *s, sm_envelope_fn on_envelope, void *arg);
/* Stop reconnecting, close every connection politely (abandoned after close_timeout), then call
 * done (from the loop). */
void sm_stop(void (*done)(void *arg), void *arg);

struct sm_status {
    int connected;          /* a connection has said hello and is open */
    const char *state;      /* "connected", "connecting", "backoff", "link_disabled", "stopped" */
    const char *last_error; /* why not connected, or NULL */
    unsigned long connects, reconnects, envelopes, acks, duplicates, malformed;
};
void sm_get_status(struct sm_status *out);

#endif
