/* socketmode.h — Slack Socket Mode on the transport thread: apps.connections.open (asked through a
 * callback, answered with sm_open_done), the WebSocket (ws.c), hello, acks sent in C on receipt,
 * disconnect handled make-before-break, reconnect with backoff, ping/pong watchdog, redelivery
 * dedupe by event_id, malformed frames skipped. transport.c starts it and hands each new envelope
 * to the script loop. Every function here runs on the transport thread. */
#ifndef PMB_SOCKETMODE_H
#define PMB_SOCKETMODE_H

#include <stddef.h>

/* The answer to apps.connections.open, as the script loop's HTTP client got it. */
struct sm_open_result {
    int ok;
    int slack_error;     /* ok:false from Slack: code is Slack's error */
    const char *code;    /* NULL when ok */
    const char *message; /* human readable, or NULL */
    const char *url;     /* the WebSocket URL when ok */
};

/* Resolved values (scripts/lib/config_schema.lua holds the defaults, config.c reads them). */
struct sm_settings {
    /* Ask for apps.connections.open; the answer must come back through sm_open_done(seq, ...) on
     * the transport thread. 0, or -1 when the request could not be started. */
    int (*open_url)(unsigned seq, void *arg);
    void *open_arg;
    /* A permanent refusal (the app token was refused): called instead of retrying; NULL = retry. */
    void (*on_fatal)(const char *why, void *arg);
    void *fatal_arg;
    double ping_interval; /* seconds between our pings */
    double pong_timeout;  /* no frame at all for this long: the connection is dead */
    double close_timeout; /* give up a close handshake after this long */
    size_t max_frame;     /* bigger messages are logged and skipped */
    double dedupe_ttl;    /* seconds an event_id is remembered */
    size_t dedupe_max;    /* bound on remembered ids */
};

/* Database mode: the job an envelope was recorded as (accept.c) before its ack. */
struct sm_job {
    const char *id; /* "event:Ev..." or "envelope:..." */
    int generation; /* 1: the first run */
    int degraded;   /* the row was not written in time: it is written later */
};

/* json is the whole envelope text; valid only during the call. Called once per event_id, after
 * the ack was queued (database mode: after the job row was written, or the bound passed; the ack
 * may have failed if its connection closed meanwhile). job is NULL in file mode. */
typedef void (*sm_envelope_fn)(const char *json, size_t len, const struct sm_job *job, void *arg);

int sm_start(const struct sm_settings *s, sm_envelope_fn on_envelope, void *arg);
/* The answer to open_url(seq); answers to a request that was cancelled since are ignored. */
void sm_open_done(unsigned seq, const struct sm_open_result *res);
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
