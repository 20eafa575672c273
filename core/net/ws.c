/* ws.c — WebSocket client connections on libwebsockets 4.1.6, driven by the process's libuv loop.
 * Owns the lws context (ws_init/ws_context/two-stage shutdown), per connection: DNS via
 * uv_getaddrinfo (lws would block), the send queue (frames written while the socket takes them),
 * pings, polite close with a uv_timer deadline. lws callbacks only record events; the user's
 * callbacks (socketmode.c) run from a loop_defer'd flush, in order, with on_close always last. */
#include "net/ws.h"

#include <libwebsockets.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"

#if !defined(LWS_WITH_LIBUV)
#error "libwebsockets must be built with libuv support"
#endif

#define WS_MAGIC 0x77736331u
#define WS_DEFAULT_MAX_FRAME (1024 * 1024)
#define WS_DEFAULT_CLOSE_TIMEOUT 1.0
#define WS_PROTOCOL_NAME "pmb-ws-client"

enum ws_state { WS_RESOLVING, WS_CONNECTING, WS_OPEN, WS_DONE };
enum ws_ev_kind { WS_EV_OPEN, WS_EV_TEXT, WS_EV_BAD, WS_EV_CLOSE };

struct ws_msg {
    struct ws_msg *next;
    size_t len;
    double since;
    const char *histogram;
    unsigned char buf[]; /* LWS_PRE headroom, then len bytes */
};

struct ws_ev {
    struct ws_ev *next;
    enum ws_ev_kind kind;
    double rx_mono;
    size_t len;
    const char *why;
    char data[]; /* text, NUL-terminated */
};

struct ws_conn {
    uint32_t magic;
    struct ws_callbacks cb;
    void *arg;
    enum ws_state state;
    struct lws *wsi; /* cleared at WSI_DESTROY (lws 4.1 never clears pwsi) */
    char host[256];
    char *path;
    int port;
    int tls;
    uv_getaddrinfo_t gai;
    uv_timer_t close_timer;    /* starts a close requested while frames were queued */
    uv_timer_t deadline_timer; /* abandons a close handshake after close_timeout */
    int handles_open;          /* uv handles still to be closed before free */
    size_t max_frame;
    double close_timeout;
    int established;     /* lws said CLIENT_ESTABLISHED (lws_close_reason is legal) */
    int opened;          /* on_open was queued */
    int close_requested; /* ws_close/ws_abort called */
    int close_started;   /* the close was handed to lws */
    int close_queued;    /* the close event is queued: nothing follows it */
    double last_rx;
    struct ws_msg *out_head, *out_tail;
    size_t out_count; /* frames in the queue */
    int ping_pending;
    char *rx;
    size_t rx_len, rx_cap, rx_total;
    int in_msg, rx_binary, rx_over;
    int peer_code;
    char reason[160];
    struct ws_ev *ev_head, *ev_tail;
    struct loop_deferred flush; /* ws_flush queued on the loop */
    struct ws_conn *next;       /* all live connections */
};

static struct lws_context *ws_ctx;
static struct ws_conn *ws_conns;
static int ws_shutting_down;

/* ---- logging ---- */

/* lws lines may carry the connect path; never let the Socket Mode ticket reach the log. */
static void ws_lws_log(int level, const char *line)
{
    char buf[512];
    size_t n = strlen(line);
    char *t;
    if (n >= sizeof buf) {
        n = sizeof buf - 1;
    }
    memcpy(buf, line, n);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        buf[--n] = '\0';
    }
    t = strstr(buf, "ticket=");
    if (t) {
        snprintf(t, sizeof buf - (size_t)(t - buf), "ticket=***");
    }
    log_event(level & LLL_ERR ? LOG_ERROR : LOG_WARN, "libwebsockets", "detail", buf, NULL);
}

/* ---- events to the user, delivered from the loop ---- */

static void ws_flush(void *arg);

static void ws_push_event(struct ws_conn *c, enum ws_ev_kind kind, const char *data, size_t len,
                          const char *why)
{
    struct ws_ev *ev;
    if (c->close_queued) {
        return;
    }
    ev = malloc(sizeof *ev + (data ? len : 0) + 1);
    if (!ev) {
        log_event(LOG_ERROR, "out of memory queuing a websocket event", NULL);
        return;
    }
    ev->next = NULL;
    ev->kind = kind;
    ev->rx_mono = loop_now_mono();
    ev->len = len;
    ev->why = why;
    if (!data) {
        len = 0; /* WS_EV_BAD: len is the dropped message's size, nothing is copied */
    }
    if (len) {
        memcpy(ev->data, data, len);
    }
    ev->data[len] = '\0';
    if (kind == WS_EV_CLOSE) {
        c->close_queued = 1;
        c->state = WS_DONE;
    }
    if (c->ev_tail) {
        c->ev_tail->next = ev;
    } else {
        c->ev_head = ev;
    }
    c->ev_tail = ev;
    loop_defer(&c->flush, ws_flush, c); /* once: a queued flush takes every event */
}

static void ws_handle_closed(uv_handle_t *h)
{
    struct ws_conn *c = h->data;
    if (--c->handles_open > 0) {
        return;
    }
    loop_defer_cancel(&c->flush);
    free(c->path);
    free(c->rx);
    c->magic = 0;
    free(c);
}

static void ws_free_msgs(struct ws_conn *c)
{
    while (c->out_head) {
        struct ws_msg *m = c->out_head;
        c->out_head = m->next;
        free(m);
    }
    c->out_tail = NULL;
    c->out_count = 0;
}

static void ws_unlink(struct ws_conn *c)
{
    struct ws_conn **p = &ws_conns;
    while (*p && *p != c) {
        p = &(*p)->next;
    }
    if (*p) {
        *p = c->next;
    }
}

static void ws_flush(void *arg)
{
    struct ws_conn *c = arg;
    while (c->ev_head) {
        struct ws_ev *ev = c->ev_head;
        c->ev_head = ev->next;
        if (!c->ev_head) {
            c->ev_tail = NULL;
        }
        switch (ev->kind) {
        case WS_EV_OPEN:
            if (c->cb.on_open) {
                c->cb.on_open(c, c->arg);
            }
            break;
        case WS_EV_TEXT:
            if (c->cb.on_text) {
                c->cb.on_text(c, ev->data, ev->len, ev->rx_mono, c->arg);
            }
            break;
        case WS_EV_BAD:
            if (c->cb.on_bad_frame) {
                c->cb.on_bad_frame(c, ev->why, ev->len, c->arg);
            }
            break;
        case WS_EV_CLOSE:
            free(ev);
            while (c->ev_head) { /* nothing is queued after a close; be safe anyway */
                ev = c->ev_head;
                c->ev_head = ev->next;
                free(ev);
            }
            c->ev_tail = NULL;
            if (c->cb.on_close) {
                c->cb.on_close(c, c->opened, c->peer_code, c->reason, c->arg);
            }
            ws_free_msgs(c);
            ws_unlink(c);
            uv_close((uv_handle_t *)&c->close_timer, ws_handle_closed);
            uv_close((uv_handle_t *)&c->deadline_timer, ws_handle_closed);
            return;
        }
        free(ev);
    }
}

static void ws_set_reason(struct ws_conn *c, const char *reason, size_t len)
{
    if (c->reason[0]) {
        return; /* the first reason is the real one */
    }
    if (len >= sizeof c->reason) {
        len = sizeof c->reason - 1;
    }
    memcpy(c->reason, reason, len);
    c->reason[len] = '\0';
}

/* ---- lws protocol callback ---- */

static struct ws_conn *ws_from_user(void *user)
{
    struct ws_conn *c = user;
    return c && c->magic == WS_MAGIC ? c : NULL;
}

static void ws_rx(struct ws_conn *c, struct lws *wsi, const char *in, size_t len)
{
    int final = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (!c->in_msg) {
        c->in_msg = 1;
        c->rx_len = 0;
        c->rx_total = 0;
        c->rx_over = 0;
        c->rx_binary = lws_frame_is_binary(wsi);
    }
    c->rx_total += len;
    if (!c->rx_binary && !c->rx_over) {
        if (c->rx_total > c->max_frame) {
            c->rx_over = 1;
        } else {
            if (c->rx_len + len + 1 > c->rx_cap) {
                size_t cap = c->rx_cap ? c->rx_cap : 4096;
                while (cap < c->rx_len + len + 1) {
                    cap *= 2;
                }
                char *p = realloc(c->rx, cap);
                if (!p) {
                    c->rx_over = 1;
                } else {
                    c->rx = p;
                    c->rx_cap = cap;
                }
            }
            if (!c->rx_over) {
                memcpy(c->rx + c->rx_len, in, len);
                c->rx_len += len;
            }
        }
    }
    if (!final) {
        return;
    }
    c->in_msg = 0;
    if (c->rx_binary) {
        ws_push_event(c, WS_EV_BAD, NULL, c->rx_total, "binary");
    } else if (c->rx_over) {
        ws_push_event(c, WS_EV_BAD, NULL, c->rx_total, "too_large");
    } else {
        ws_push_event(c, WS_EV_TEXT, c->rx, c->rx_len, NULL);
    }
    /* don't keep a big buffer around after one big message */
    if (c->rx_cap > 65536) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
}

static void ws_close_timer_cb(uv_timer_t *t);

/* At most this many queued frames per WRITEABLE: a burst of acks goes out in a few loop turns
 * (one frame per turn made a 1,000-envelope burst wait ~1,000 turns) without starving reads. */
#define WS_FRAMES_PER_WRITEABLE 64

static int ws_write_queued(struct ws_conn *c, struct lws *wsi)
{
    struct ws_msg *m = c->out_head;
    c->out_head = m->next;
    c->out_count--;
    if (!c->out_head) {
        c->out_tail = NULL;
    }
    int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    if (n < (int)m->len) {
        free(m);
        ws_set_reason(c, "write failed", 12);
        return -1;
    }
    if (m->histogram) {
        metrics_observe(m->histogram, "Seconds from an envelope's arrival to its ack written", NULL,
                        loop_now_mono() - m->since);
    }
    free(m);
    return 0;
}

static int ws_writeable(struct ws_conn *c, struct lws *wsi)
{
    int written = 0;
    if (c->ping_pending) {
        unsigned char b[LWS_PRE + 8];
        memcpy(b + LWS_PRE, "pmb", 3);
        c->ping_pending = 0;
        if (lws_write(wsi, b + LWS_PRE, 3, LWS_WRITE_PING) < 3) {
            ws_set_reason(c, "write failed", 12);
            return -1;
        }
        written++;
    }
    /* more than one frame per callback while the socket takes them (lws buffers a partial
     * write itself and then reports the pipe choked) */
    while (c->out_head && written < WS_FRAMES_PER_WRITEABLE &&
           (written == 0 || !lws_send_pipe_choked(wsi))) {
        if (ws_write_queued(c, wsi) < 0) {
            return -1;
        }
        written++;
    }
    if (c->out_head || c->ping_pending) {
        lws_callback_on_writable(wsi);
    } else if (c->close_requested && !c->close_started) {
        /* queue drained: start the close from a uv callback, not from inside lws */
        uv_timer_start(&c->close_timer, ws_close_timer_cb, 0, 0);
    }
    return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct ws_conn *c;

    if (reason == LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION) {
        /* here user is the X509_STORE_CTX: keep the reason of a failed verification */
        c = ws_from_user(lws_wsi_user(wsi));
        int err = X509_STORE_CTX_get_error((X509_STORE_CTX *)user);
        if (c && !len && err != X509_V_OK) {
            char msg[160];
            snprintf(msg, sizeof msg, "TLS certificate: %s", X509_verify_cert_error_string(err));
            ws_set_reason(c, msg, strlen(msg));
        }
        return 0;
    }
    c = ws_from_user(user);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!c) {
            return 0;
        }
        c->established = 1;
        c->opened = 1;
        c->state = WS_OPEN;
        c->last_rx = loop_now_mono();
        ws_push_event(c, WS_EV_OPEN, NULL, 0, NULL);
        if (c->out_head || c->ping_pending) {
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c) {
            c->last_rx = loop_now_mono();
            ws_rx(c, wsi, in, len);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        if (c) {
            c->last_rx = loop_now_mono();
        }
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return c ? ws_writeable(c, wsi) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c) {
            const unsigned char *p = in;
            c->last_rx = loop_now_mono();
            if (len >= 2) {
                c->peer_code = (p[0] << 8) | p[1];
                if (len > 2) {
                    ws_set_reason(c, (const char *)p + 2, len - 2);
                } else {
                    ws_set_reason(c, "closed by peer", 14);
                }
            } else {
                ws_set_reason(c, "closed by peer", 14);
            }
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c) {
            const char *why = in ? (const char *)in : "connection error";
            ws_set_reason(c, why, strlen(why));
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c) {
            c->established = 0;
            ws_set_reason(c, "connection closed", 17);
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (c && c->wsi == wsi) {
            c->wsi = NULL;
            c->established = 0;
            ws_set_reason(c, "connection closed", 17);
            ws_push_event(c, WS_EV_CLOSE, NULL, 0, NULL);
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols ws_protocols[] = {
    {WS_PROTOCOL_NAME, ws_callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- context ---- */

int ws_init(void)
{
    struct lws_context_creation_info info;
    void *loops[1];
    const char *ca = getenv("SSL_CERT_FILE");

    if (ws_ctx) {
        return 0;
    }
    if (!ca || !*ca) {
        ca = getenv("CURL_CA_BUNDLE");
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, ws_lws_log);
    memset(&info, 0, sizeof info);
    loops[0] = loop_get();
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ws_protocols;
    info.vhost_name = "default";
    info.foreign_loops = loops;
    info.pcontext = &ws_ctx;
    if (ca && *ca) {
        info.client_ssl_ca_filepath = ca;
    }
    ws_ctx = lws_create_context(&info);
    if (!ws_ctx) {
        log_event(LOG_ERROR, "could not create the libwebsockets context", "hint",
                  "is libwebsockets-evlib-uv installed?", NULL);
        return -1;
    }
    ws_shutting_down = 0;
    return 0;
}

struct lws_context *ws_context(void)
{
    return ws_ctx;
}

void ws_shutdown_begin(void)
{
    ws_shutting_down = 1;
    if (ws_ctx) {
        /* stage 1, inside the loop: lws kills live wsi and closes its uv handles */
        lws_context_destroy(ws_ctx);
    }
}

void ws_shutdown_finish(void)
{
    if (ws_ctx) {
        /* stage 2, after uv_run returned: frees the context (and NULLs ws_ctx via pcontext) */
        lws_context_destroy(ws_ctx);
        ws_ctx = NULL;
    }
}

/* ---- connections ---- */

static int ws_parse_url(struct ws_conn *c, const char *url)
{
    const char *p, *host, *host_end, *slash;
    size_t hlen;
    if (strncmp(url, "wss://", 6) == 0) {
        c->tls = 1;
        c->port = 443;
        p = url + 6;
    } else if (strncmp(url, "ws://", 5) == 0) {
        c->tls = 0;
        c->port = 80;
        p = url + 5;
    } else {
        return -1;
    }
    slash = p + strcspn(p, "/?#");
    host = p;
    if (*p == '[') { /* [v6]:port */
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(slash - host));
        if (!host_end) {
            return -1;
        }
        p = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(slash - p));
        if (!host_end) {
            host_end = slash;
        }
        p = host_end;
    }
    if (p < slash && *p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end != slash || port <= 0 || port > 65535) {
            return -1;
        }
        c->port = (int)port;
    }
    hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof c->host) {
        return -1;
    }
    memcpy(c->host, host, hlen);
    c->host[hlen] = '\0';
    if (*slash == '/') {
        c->path = strdup(slash);
    } else { /* "wss://host?ticket=..." */
        size_t n = strlen(slash);
        c->path = malloc(n + 2);
        if (c->path) {
            c->path[0] = '/';
            memcpy(c->path + 1, slash, n + 1);
        }
    }
    if (c->path) {
        char *hash = strchr(c->path, '#');
        if (hash) {
            *hash = '\0';
        }
    }
    return c->path ? 0 : -1;
}

static void ws_fail(struct ws_conn *c, const char *why)
{
    ws_set_reason(c, why, strlen(why));
    ws_push_event(c, WS_EV_CLOSE, NULL, 0, NULL);
}

static void ws_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ws_conn *c = req->data;
    struct lws_client_connect_info i;
    char ip[64];
    int rc;

    if (c->close_requested || ws_shutting_down || !ws_ctx) {
        uv_freeaddrinfo(res);
        ws_fail(c, "closed before connecting");
        return;
    }
    if (status < 0 || !res) {
        char msg[320];
        snprintf(msg, sizeof msg, "DNS lookup of %.200s failed: %s", c->host, uv_strerror(status));
        uv_freeaddrinfo(res);
        ws_fail(c, msg);
        return;
    }
    /* prefer IPv4: "localhost" may list ::1 first where only 127.0.0.1 listens */
    struct addrinfo *pick = res;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    if (pick->ai_family == AF_INET6) {
        rc = uv_ip6_name((const struct sockaddr_in6 *)pick->ai_addr, ip, sizeof ip);
    } else {
        rc = uv_ip4_name((const struct sockaddr_in *)pick->ai_addr, ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    if (rc != 0) {
        ws_fail(c, "could not format the resolved address");
        return;
    }
    memset(&i, 0, sizeof i);
    i.context = ws_ctx;
    i.address = ip;
    i.port = c->port;
    i.path = c->path;
    i.host = c->host; /* Host header, SNI and certificate name */
    i.origin = c->host;
    i.ssl_connection = c->tls ? LCCSCF_USE_SSL : 0;
    i.local_protocol_name = WS_PROTOCOL_NAME;
    i.alpn = "http/1.1";
    i.userdata = c;
    i.pwsi = &c->wsi;
    c->state = WS_CONNECTING;
    c->last_rx = loop_now_mono();
    if (!lws_client_connect_via_info(&i)) {
        c->wsi = NULL;
        ws_fail(c, "could not start the websocket connection");
    }
}

struct ws_conn *ws_connect(const char *url, const struct ws_callbacks *cb, void *arg,
                           size_t max_frame, double close_timeout)
{
    struct ws_conn *c;
    struct addrinfo hints;
    char port[16];
    int rc;

    if (!ws_ctx || ws_shutting_down) {
        return NULL;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->magic = WS_MAGIC;
    c->cb = *cb;
    c->arg = arg;
    c->max_frame = max_frame ? max_frame : WS_DEFAULT_MAX_FRAME;
    c->close_timeout = close_timeout > 0 ? close_timeout : WS_DEFAULT_CLOSE_TIMEOUT;
    if (ws_parse_url(c, url) < 0) {
        log_event(LOG_ERROR, "not a ws:// or wss:// URL", NULL);
        free(c->path);
        free(c);
        return NULL;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", c->port);
    c->gai.data = c;
    c->state = WS_RESOLVING;
    c->last_rx = loop_now_mono();
    rc = uv_getaddrinfo(loop_get(), &c->gai, ws_resolved, c->host, port, &hints);
    if (rc < 0) {
        log_event(LOG_ERROR, "could not start a DNS lookup", "host", c->host, "error",
                  uv_strerror(rc), NULL);
        free(c->path);
        free(c);
        return NULL;
    }
    uv_timer_init(loop_get(), &c->close_timer);
    uv_timer_init(loop_get(), &c->deadline_timer);
    c->close_timer.data = c;
    c->deadline_timer.data = c;
    c->handles_open = 2;
    c->next = ws_conns;
    ws_conns = c;
    return c;
}

static int ws_queue(struct ws_conn *c, const char *data, size_t len, double since,
                    const char *histogram)
{
    struct ws_msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m) {
        return -1;
    }
    m->next = NULL;
    m->len = len;
    m->since = since;
    m->histogram = histogram;
    memcpy(m->buf + LWS_PRE, data, len);
    if (c->out_tail) {
        c->out_tail->next = m;
    } else {
        c->out_head = m;
    }
    c->out_tail = m;
    c->out_count++;
    return 0;
}

int ws_send_text(struct ws_conn *c, const char *data, size_t len, double since,
                 const char *histogram)
{
    /* still allowed while a close waits for the queue to drain: late acks must go out */
    if (!c || c->state != WS_OPEN || !c->wsi || c->close_started) {
        return -1;
    }
    if (ws_queue(c, data, len, since, histogram) < 0) {
        return -1;
    }
    lws_callback_on_writable(c->wsi);
    return 0;
}

int ws_ping(struct ws_conn *c)
{
    if (!c || c->state != WS_OPEN || !c->wsi || c->close_requested) {
        return -1;
    }
    c->ping_pending = 1;
    lws_callback_on_writable(c->wsi);
    return 0;
}

size_t ws_queued(const struct ws_conn *c)
{
    return c ? c->out_count : 0;
}

double ws_last_rx(const struct ws_conn *c)
{
    return c->last_rx;
}

int ws_is_open(const struct ws_conn *c)
{
    return c && c->state == WS_OPEN && c->wsi && !c->close_requested;
}

static void ws_deadline_cb(uv_timer_t *t)
{
    struct ws_conn *c = t->data;
    if (c->wsi) {
        char secs[32];
        snprintf(secs, sizeof secs, "%.1f", c->close_timeout);
        log_event(LOG_WARN, "websocket close handshake not finished; dropping the connection",
                  "host", c->host, "close_timeout_s", secs, NULL);
        ws_set_reason(c, "close handshake timed out", 25);
        /* a second close on a wsi that is sending or awaiting the close goes straight to a kill */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
    }
}

/* From a uv callback only: lws_close_reason asserts outside ESTABLISHED, and a close started by
 * returning -1 from an lws callback is a hard close on Debian's _DEBUG build. */
static void ws_start_close(struct ws_conn *c)
{
    if (c->close_started) {
        return;
    }
    if (c->wsi && c->established && (c->out_head || c->ping_pending)) {
        /* let queued frames (late acks) go out first: WRITEABLE comes back here when drained */
        lws_callback_on_writable(c->wsi);
        return;
    }
    c->close_started = 1;
    if (c->state == WS_RESOLVING) {
        uv_cancel((uv_req_t *)&c->gai); /* ws_resolved sees close_requested either way */
        return;
    }
    if (!c->wsi) {
        return;
    }
    if (c->established) {
        lws_close_reason(c->wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
    }
    ws_set_reason(c, "closed by us", 12);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
}

static void ws_close_timer_cb(uv_timer_t *t)
{
    ws_start_close(t->data);
}

void ws_close(struct ws_conn *c)
{
    if (!c || c->close_requested || c->close_queued) {
        return;
    }
    c->close_requested = 1;
    c->ping_pending = 0;
    /* one deadline for the whole close: draining the queue, then the close handshake */
    uv_timer_start(&c->deadline_timer, ws_deadline_cb, (uint64_t)(c->close_timeout * 1000.0), 0);
    ws_start_close(c);
}

void ws_abort(struct ws_conn *c)
{
    if (!c || c->close_queued) {
        return;
    }
    c->close_requested = 1;
    if (c->close_started && c->wsi) {
        ws_deadline_cb(&c->deadline_timer);
        return;
    }
    c->close_started = 1;
    if (c->state == WS_RESOLVING) {
        uv_cancel((uv_req_t *)&c->gai);
        return;
    }
    if (c->wsi) {
        ws_set_reason(c, "dropped by us", 13);
        /* no close reason set: lws kills without a close frame */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
    }
}
