/* health.c — GET /healthz and GET /metrics for operators, served by libwebsockets on a listening
 * vhost of the same lws context (ws.c) and therefore on the same libuv loop: nothing here blocks.
 * /healthz reads socketmode's status; /metrics renders metrics.c. */
#include "net/health.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"
#include "net/socketmode.h"
#include "net/ws.h"

struct health_session {
    char *body; /* response body, built when the request arrives; freed when it is sent */
    size_t len;
    int status;
    const char *content_type;
};

static struct lws_vhost *health_vhost;
static char health_iface[128]; /* lws keeps the pointer, so it must outlive the vhost */

static void health_prepare(struct health_session *s, const char *uri)
{
    struct sm_status st;
    char buf[512];

    if (strcmp(uri, "/metrics") == 0) {
        s->body = metrics_render(&s->len);
        s->status = s->body ? 200 : 500;
        s->content_type = "text/plain; version=0.0.4; charset=utf-8";
        return;
    }
    s->content_type = "application/json";
    if (strcmp(uri, "/healthz") == 0) {
        sm_get_status(&st);
        snprintf(buf, sizeof buf,
                 "{\"status\":\"%s\",\"socket\":\"%s\",\"reason\":\"%s\",\"reconnects\":%lu}\n",
                 st.connected ? "ok" : "unavailable", st.state ? st.state : "unknown",
                 st.connected ? "" : (st.last_error ? st.last_error : "not connected to Slack"),
                 st.reconnects);
        s->status = st.connected ? 200 : 503;
    } else {
        snprintf(buf, sizeof buf,
                 "{\"error\":\"not found\",\"paths\":[\"/healthz\",\"/metrics\"]}\n");
        s->status = 404;
    }
    s->body = strdup(buf);
    s->len = s->body ? strlen(s->body) : 0;
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
        memcpy(p, s->body, s->len);
        p += s->len;
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

static int health_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    struct health_session *s = user;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        health_prepare(s, (const char *)in);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!s->body) {
            return 0;
        }
        return health_send(wsi, s);
    case LWS_CALLBACK_CLOSED_HTTP:
        free(s->body);
        s->body = NULL;
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols health_protocols[] = {
    {"http", health_callback, sizeof(struct health_session), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int health_start(const char *listen)
{
    struct lws_context_creation_info info;
    const char *colon = strrchr(listen, ':');
    long port;

    if (!colon || (size_t)(colon - listen) >= sizeof health_iface) {
        log_event(LOG_ERROR, "listen must be host:port", "listen", listen, NULL);
        return -1;
    }
    memcpy(health_iface, listen, (size_t)(colon - listen));
    health_iface[colon - listen] = '\0';
    port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535) {
        log_event(LOG_ERROR, "listen has no valid port", "listen", listen, NULL);
        return -1;
    }
    memset(&info, 0, sizeof info);
    info.port = (int)port;
    info.iface = health_iface[0] ? health_iface : NULL;
    info.protocols = health_protocols;
    info.vhost_name = "health";
    health_vhost = lws_create_vhost(ws_context(), &info);
    if (!health_vhost) {
        log_event(LOG_ERROR, "could not listen", "listen", listen, NULL);
        return -1;
    }
    log_event(LOG_INFO, "health and metrics listening", "listen", listen, NULL);
    return 0;
}

void health_stop(void)
{
    /* the vhost is destroyed with the lws context in ws_shutdown_begin */
    health_vhost = NULL;
}
