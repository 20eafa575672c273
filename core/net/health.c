/* health.c — /healthz and /metrics on the transport thread. The listening sockets are ours: bound
 * to exactly the address the operator gave (getaddrinfo, every address of a name), accepted here
 * with a bound on live connections (past it a connection is closed at once), then adopted by
 * libwebsockets, whose HTTP parser and timeouts deal with half-open, garbage and oversized
 * requests. Upgrades are refused. /healthz reads socketmode.c's status and the script loop's
 * heartbeat (liveness.c); /metrics renders metrics.c; bodies are built with the JSON codec. */
#include "net/health.h"

#include <errno.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/json.h"
#include "base/liveness.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "db/jobs.h"
#include "net/accept.h"
#include "net/socketmode.h"
#include "net/ws.h"

#define HEALTH_MAX_LISTENERS 8
#define HEALTH_MAX_CONNS 64 /* live operator connections; more are closed on accept */
#define HEALTH_TIMEOUT_SECS 10

struct health_session {
    char *body; /* response body, built when the request arrives; freed when it is sent */
    size_t len;
    int status;
    const char *content_type;
};

struct health_listener {
    uv_poll_t poll;
    int fd;
};

static struct lws_vhost *health_vhost;
static struct health_listener *health_listeners[HEALTH_MAX_LISTENERS];
static int health_n_listeners;
static int health_live; /* adopted connections not yet destroyed */
static double health_stall_seconds;

static void health_prepare(struct health_session *s, const char *uri)
{
    struct sm_status st;
    char reason[256];

    if (strcmp(uri, "/metrics") == 0) {
        s->body = metrics_render(&s->len);
        s->status = s->body ? 200 : 500;
        s->content_type = "text/plain; version=0.0.4; charset=utf-8";
        return;
    }
    s->content_type = "application/json";
    if (strcmp(uri, "/healthz") == 0) {
        double stalled = liveness_since_beat();
        double resume = liveness_resume_age();
        int script_ok = stalled < health_stall_seconds;
        struct accept_status acs;
        char held_ids[1024];
        int held = jobs_held(held_ids, sizeof held_ids);
        sm_get_status(&st);
        accept_get_status(&acs);
        if (!st.connected) {
            snprintf(reason, sizeof reason, "%s",
                     st.last_error ? st.last_error : "not connected to Slack");
        } else if (!script_ok) {
            snprintf(reason, sizeof reason, "the script loop has not turned for %.0f s", stalled);
        } else {
            reason[0] = '\0';
        }
        const struct json_field f[] = {
            {"status", JSON_FIELD_STRING, st.connected && script_ok ? "ok" : "unavailable", 0},
            {"socket", JSON_FIELD_STRING, st.state ? st.state : "unknown", 0},
            {"reason", JSON_FIELD_STRING, reason, 0},
            {"reconnects", JSON_FIELD_NUMBER, NULL, (double)st.reconnects},
            {"script_loop", JSON_FIELD_STRING, script_ok ? "ok" : "stalled", 0},
            {"script_loop_idle_s", JSON_FIELD_NUMBER, NULL, stalled},
            {"script_resume_s", JSON_FIELD_NUMBER, NULL, resume},
            /* database mode (issue 16): the ack path's connection, the jobs held here */
            {"instance", JSON_FIELD_STRING, acs.enabled ? acs.owner : "", 0},
            {"database", JSON_FIELD_STRING,
             !acs.enabled    ? "off"
             : acs.connected ? "connected"
                             : "unreachable",
             0},
            {"database_error", JSON_FIELD_STRING, acs.last_error ? acs.last_error : "", 0},
            {"jobs_held", JSON_FIELD_NUMBER, NULL, (double)held},
            {"jobs_held_ids", JSON_FIELD_STRING, held_ids, 0},
            {"jobs_degraded", JSON_FIELD_NUMBER, NULL, (double)acs.degraded},
            {"jobs_degraded_pending", JSON_FIELD_NUMBER, NULL, (double)acs.degraded_pending},
        };
        s->body = json_encode_object(f, sizeof f / sizeof *f, &s->len);
        s->status = st.connected && script_ok ? 200 : 503;
    } else {
        const struct json_field f[] = {
            {"error", JSON_FIELD_STRING, "not found; try /healthz or /metrics", 0},
        };
        s->body = json_encode_object(f, 1, &s->len);
        s->status = 404;
    }
    if (!s->body) {
        s->len = 0;
        s->status = 500;
    }
}

static int health_send(struct lws *wsi, struct health_session *s)
{
    size_t cap = LWS_PRE + 512 + s->len;
    unsigned char *buf = malloc(cap);
    unsigned char *start, *p, *end;
    int rc = -1;

    if (!buf) {
        return -1;
    }
    start = p = buf + LWS_PRE;
    end = buf + cap;
    if (lws_add_http_common_headers(wsi, (unsigned int)s->status, s->content_type,
                                    (lws_filepos_t)s->len, &p, end) == 0 &&
        lws_finalize_http_header(wsi, &p, end) == 0) {
        if (s->len) {
            memcpy(p, s->body, s->len);
            p += s->len;
        }
        if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) >= 0) {
            rc = 0;
        }
    }
    free(buf);
    free(s->body);
    s->body = NULL;
    if (rc == 0 && lws_http_transaction_completed(wsi)) {
        return -1;
    }
    return rc;
}

/* lws calls some reasons with user == NULL (a connection closed before any request, a request
 * that never completed): every case checks. */
static int health_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    struct health_session *s = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (!s || !in) {
            return -1;
        }
        free(s->body);
        s->body = NULL;
        health_prepare(s, (const char *)in);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!s || !s->body) {
            return 0;
        }
        return health_send(wsi, s);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return -1; /* an operator endpoint speaks plain HTTP only */
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (s) {
            free(s->body);
            s->body = NULL;
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (s) {
            free(s->body);
            s->body = NULL;
        }
        if (health_live > 0) {
            health_live--;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols health_protocols[] = {
    {"http", health_callback, sizeof(struct health_session), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void health_accept(uv_poll_t *h, int status, int events)
{
    struct health_listener *l = h->data;
    (void)events;
    if (status < 0) {
        return;
    }
    for (int i = 0; i < 64; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                log_event(LOG_WARN, "health listener: out of file descriptors", NULL);
            }
            return; /* EAGAIN: all taken */
        }
        if (health_live >= HEALTH_MAX_CONNS || !health_vhost) {
            metrics_counter_add("pmb_health_refused_total",
                                "health connections closed at once: too many open", NULL, 1);
            close(fd);
            continue;
        }
        health_live++; /* counted before adoption: lws reports WSI_DESTROY for failures too */
        if (!lws_adopt_socket_vhost(health_vhost, fd)) {
            /* lws closed fd and destroyed the wsi (or never made one) */
            log_event(LOG_DEBUG, "health listener: lws refused a connection", NULL);
        }
    }
}

static void health_listener_closed(uv_handle_t *h)
{
    struct health_listener *l = h->data;
    close(l->fd);
    free(l);
}

static int health_bind_one(const struct addrinfo *ai, const char *spec)
{
    struct health_listener *l;
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    char why[160];

    if (fd < 0) {
        snprintf(why, sizeof why, "socket: %s", strerror(errno));
        log_event(LOG_ERROR, "could not listen", "listen", spec, "error", why, NULL);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one); /* exactly this address */
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        snprintf(why, sizeof why, "%s", strerror(errno));
        log_event(LOG_ERROR, "could not listen", "listen", spec, "error", why, NULL);
        close(fd);
        return -1;
    }
    l = calloc(1, sizeof *l);
    if (!l || health_n_listeners >= HEALTH_MAX_LISTENERS) {
        free(l);
        close(fd);
        return -1;
    }
    l->fd = fd;
    uv_poll_init(loop_get(), &l->poll, fd);
    l->poll.data = l;
    uv_poll_start(&l->poll, UV_READABLE, health_accept);
    health_listeners[health_n_listeners++] = l;
    return 0;
}

/* "host:port" or "[v6]:port" -> host and port strings. */
static int health_split(const char *listen, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon;
    size_t n;
    if (listen[0] == '[') {
        const char *close_b = strchr(listen, ']');
        if (!close_b || close_b[1] != ':') {
            return -1;
        }
        n = (size_t)(close_b - listen - 1);
        colon = close_b + 1;
        listen++;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            return -1;
        }
        n = (size_t)(colon - listen);
    }
    if (n == 0 || n >= hsize || strlen(colon + 1) == 0 || strlen(colon + 1) >= psize) {
        return -1;
    }
    memcpy(host, listen, n);
    host[n] = '\0';
    snprintf(port, psize, "%s", colon + 1);
    char *end;
    long p = strtol(port, &end, 10);
    return *end || p <= 0 || p > 65535 ? -1 : 0;
}

int health_start(const char *listen, double stall_seconds)
{
    struct lws_context_creation_info info;
    struct addrinfo hints, *res = NULL;
    char host[256], port[16];
    int rc, bound = 0;

    health_stall_seconds = stall_seconds > 0 ? stall_seconds : 10;
    if (health_split(listen, host, sizeof host, port, sizeof port) < 0) {
        log_event(LOG_ERROR, "listen must be host:port (or [v6-address]:port)", "listen", listen,
                  NULL);
        return -1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    /* at start-up, before anything is served: a blocking look-up costs no one */
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        log_event(LOG_ERROR, "could not resolve the listen address", "listen", listen, "error",
                  gai_strerror(rc), NULL);
        return -1;
    }
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = health_protocols;
    info.vhost_name = "health";
    info.keepalive_timeout = 5;
    info.timeout_secs = HEALTH_TIMEOUT_SECS;
    health_vhost = lws_create_vhost(ws_context(), &info);
    if (!health_vhost) {
        freeaddrinfo(res);
        log_event(LOG_ERROR, "could not create the health vhost", "listen", listen, NULL);
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (health_bind_one(ai, listen) == 0) {
            bound++;
        }
    }
    freeaddrinfo(res);
    if (!bound) {
        health_stop();
        return -1;
    }
    log_event(LOG_INFO, "health and metrics listening", "listen", listen, NULL);
    return 0;
}

void health_stop(void)
{
    for (int i = 0; i < health_n_listeners; i++) {
        uv_poll_stop(&health_listeners[i]->poll);
        uv_close((uv_handle_t *)&health_listeners[i]->poll, health_listener_closed);
        health_listeners[i] = NULL;
    }
    health_n_listeners = 0;
    /* the vhost and its live connections are destroyed with the lws context (ws_shutdown_begin) */
    health_vhost = NULL;
}
