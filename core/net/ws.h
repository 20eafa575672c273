/* ws.h — WebSocket client connections (libwebsockets 4.1 on the process's libuv loop) and the lws
 * context they live on. Owns DNS pre-resolution, TLS (verified; SSL_CERT_FILE / CURL_CA_BUNDLE name
 * another CA bundle), the send queue, pings, polite closes with a deadline, and lws shutdown.
 * Users: socketmode.c (connections), health.c (a listening vhost on ws_context()), main.c
 * (ws_init, two-stage shutdown). Callbacks always run from a loop_defer'd task, never inside lws.
 */
#ifndef PMB_WS_H
#define PMB_WS_H

#include <stddef.h>

struct lws_context;
struct ws_conn; /* owned by ws.c; valid until on_close has returned */

struct ws_callbacks {
    /* The WebSocket handshake finished. */
    void (*on_open)(struct ws_conn *c, void *arg);
    /* One whole text message (fragments joined). data is valid only during the call and is
     * NUL-terminated; rx_mono is loop_now_mono() when its last byte arrived. */
    void (*on_text)(struct ws_conn *c, const char *data, size_t len, double rx_mono, void *arg);
    /* A message was dropped unread: why is "binary" or "too_large"; size is what was received. */
    void (*on_bad_frame)(struct ws_conn *c, const char *why, size_t size, void *arg);
    /* Always called exactly once, last: the connection failed, was closed or was killed.
     * opened: on_open was called. code: the peer's close code or 0; reason: short text, never
     * NULL. After this returns the ws_conn is freed. */
    void (*on_close)(struct ws_conn *c, int opened, int code, const char *reason, void *arg);
};

/* Create the lws context on loop_get() (loop_init must have run). 0 or -1 (logged). */
int ws_init(void);
/* The context, for extra vhosts (health.c); NULL before ws_init or after shutdown. */
struct lws_context *ws_context(void);

/* Start connecting to a ws:// or wss:// URL (the query string is never logged). max_frame bounds
 * a message (0 = 1 MiB); close_timeout is how long a polite close may take (0 = 1 s).
 * Returns NULL (nothing will be called back) when the URL is unusable or ws is shutting down. */
struct ws_conn *ws_connect(const char *url, const struct ws_callbacks *cb, void *arg,
                           size_t max_frame, double close_timeout);

/* Queue a text frame (copied); one frame is written per writable event. When histogram is not
 * NULL, the time from since (loop_now_mono()) to the frame being written is observed in it.
 * 0, or -1 if the connection is not open or closing. */
int ws_send_text(struct ws_conn *c, const char *data, size_t len, double since,
                 const char *histogram);
/* Queue a ping (at most one outstanding in the queue). 0 or -1 as above. */
int ws_ping(struct ws_conn *c);
/* Text frames queued and not yet written (acks still on their way). */
size_t ws_queued(const struct ws_conn *c);
/* Seconds (loop_now_mono) of the last frame of any kind from the peer, or of the connect start. */
double ws_last_rx(const struct ws_conn *c);
int ws_is_open(const struct ws_conn *c);

/* Close politely: queued frames are written first, then a close frame (1000); if the peer has not
 * finished the handshake within close_timeout the connection is killed. Before the handshake it is
 * dropped at once. Idempotent. on_close follows. */
void ws_close(struct ws_conn *c);
/* Kill at once without a close handshake (a dead peer). on_close follows. */
void ws_abort(struct ws_conn *c);

/* Shutdown for main.c: begin inside the loop once connections are closed (destroys the lws
 * context: lws starts closing its handles, live connections are killed and get on_close);
 * finish after uv_run has returned (frees the context). */
void ws_shutdown_begin(void);
void ws_shutdown_finish(void);

#endif
