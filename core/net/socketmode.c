/* socketmode.c — Slack Socket Mode on top of ws.c, on the transport thread (transport.c starts and
 * stops it): apps.connections.open (asked of the script loop's HTTP client through the settings'
 * open_url callback), hello, the ack of every envelope written the moment it is parsed, dedupe of
 * redeliveries (dedupe.c), make-before-break on `disconnect`, reconnect with backoff and jitter,
 * pings and a no-frame watchdog, malformed frames logged and skipped. Each new envelope goes to
 * the on_envelope callback (transport.c hands it to the script loop's mailbox). */
#include "net/socketmode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "net/accept.h"
#include "net/dedupe.h"
#include "net/envelope.h"
#include "net/ws.h"

#define SM_TICK_MS 250               /* pings and watchdog are checked this often */
#define SM_BACKOFF_FIRST 0.25        /* seconds before the first reconnect attempt */
#define SM_BACKOFF_MAX 30.0          /* cap of the exponential backoff */
#define SM_LINK_DISABLED_RETRY 300.0 /* Socket Mode switched off in the app: retry slowly */
#define SM_AUTH_REFUSED_RETRY 60.0   /* the app token was refused: someone has to fix it */
#define SM_ACK_HISTOGRAM "pmb_ack_latency_seconds"

/* One WebSocket to Slack. There are two only while a replacement is being made. */
struct sm_conn {
    struct ws_conn *ws;
    int id;              /* for logs: 1, 2, 3, ... */
    int hello;           /* Slack said hello on it */
    int retiring;        /* we are closing it on purpose (replaced, link_disabled, stop) */
    int disconnect_seen; /* Slack asked us to move: it needs a replacement */
    double last_ping;
    struct sm_conn *next;
};

static struct {
    int started, stopping;
    struct sm_settings s;
    sm_envelope_fn on_envelope;
    void *arg;
    struct sm_conn *conns;
    int open_pending;  /* apps.connections.open asked for, no answer yet */
    unsigned open_seq; /* answers to an older request (before a cancel) are ignored */
    uv_timer_t retry_timer, tick_timer;
    int attempt;       /* failed attempts since the last hello */
    int link_disabled; /* waiting out SM_LINK_DISABLED_RETRY */
    int next_id;
    const char *state;
    char last_error[200];
    unsigned long connects, reconnects, envelopes, acks, duplicates, malformed;
    unsigned long opens; /* apps.connections.open calls started */
    struct dedupe *seen;
    void (*stop_done)(void *arg);
    void *stop_arg;
} sm = {.state = "connecting"};

static void sm_ensure(void);
static void sm_connect_now(void);

static const struct ws_callbacks sm_ws_callbacks;

/* ---- helpers ---- */

static void sm_set_error(const char *what, const char *detail)
{
    snprintf(sm.last_error, sizeof sm.last_error, "%.80s%s%.110s", what, detail ? ": " : "",
             detail ? detail : "");
}

static int sm_any_connected(void)
{
    for (struct sm_conn *c = sm.conns; c; c = c->next) {
        if (c->hello && !c->retiring) {
            return 1;
        }
    }
    return 0;
}

static void sm_update_state(void)
{
    int up = sm_any_connected();
    metrics_gauge_set("pmb_socket_connected", "1 while a Socket Mode connection is open", NULL,
                      up ? 1 : 0);
    if (sm.stopping) {
        sm.state = "stopped";
    } else if (up) {
        sm.state = "connected";
    } else if (sm.link_disabled) {
        sm.state = "link_disabled";
    } else if (uv_is_active((uv_handle_t *)&sm.retry_timer)) {
        sm.state = "backoff";
    } else {
        sm.state = "connecting";
    }
}

static void sm_count(const char *name, const char *help, unsigned long *counter)
{
    (*counter)++;
    metrics_counter_add(name, help, NULL, 1);
}

static void sm_id_str(const struct sm_conn *c, char *buf, size_t size)
{
    snprintf(buf, size, "%d", c->id);
}

/* "wss://wss-primary.slack.com/link/?ticket=..." -> "wss-primary.slack.com": the ticket is a
 * credential and never goes to the log. */
static void sm_url_host(const char *url, char *buf, size_t size)
{
    const char *p = strstr(url, "://");
    size_t n;
    p = p ? p + 3 : url;
    n = strcspn(p, "/?#");
    if (n >= size) {
        n = size - 1;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
}

/* ---- timers: retry and tick ---- */

static void sm_retry_cb(uv_timer_t *t)
{
    (void)t;
    sm.link_disabled = 0;
    sm_connect_now();
}

static void sm_schedule_retry(double seconds)
{
    char secs[32], attempt[32];
    uv_timer_start(&sm.retry_timer, sm_retry_cb, (uint64_t)(seconds * 1000.0), 0);
    snprintf(secs, sizeof secs, "%.2f", seconds);
    snprintf(attempt, sizeof attempt, "%d", sm.attempt);
    log_event(LOG_INFO, "socket mode reconnecting later", "retry_in_s", secs, "attempt", attempt,
              NULL);
    sm_update_state();
}

/* Exponential backoff with jitter: 0.25 s, 0.5, 1, 2, ... capped at 30 s, each x[0.75, 1.25]. */
static void sm_schedule_backoff(void)
{
    double delay = SM_BACKOFF_FIRST;
    for (int i = 0; i < sm.attempt && delay < SM_BACKOFF_MAX; i++) {
        delay *= 2;
    }
    if (delay > SM_BACKOFF_MAX) {
        delay = SM_BACKOFF_MAX;
    }
    delay *= 0.75 + 0.5 * ((double)rand() / RAND_MAX);
    sm.attempt++;
    sm_schedule_retry(delay);
}

static void sm_tick_cb(uv_timer_t *t)
{
    double now = loop_now_mono();
    (void)t;
    for (struct sm_conn *c = sm.conns; c; c = c->next) {
        if (c->retiring) {
            continue; /* ws.c's close deadline takes care of it */
        }
        if (now - ws_last_rx(c->ws) > sm.s.pong_timeout) {
            char id[16], secs[32];
            sm_id_str(c, id, sizeof id);
            snprintf(secs, sizeof secs, "%.1f", now - ws_last_rx(c->ws));
            log_event(LOG_WARN, "no frame from Slack in time; dropping the connection", "conn", id,
                      "silent_s", secs, NULL);
            sm_set_error("no frame from Slack within pong_timeout", NULL);
            ws_abort(c->ws);
            continue;
        }
        if (ws_is_open(c->ws) && now - c->last_ping >= sm.s.ping_interval) {
            c->last_ping = now;
            ws_ping(c->ws);
        }
    }
}

/* ---- apps.connections.open ---- */

static int sm_auth_refused(const char *code)
{
    static const char *const refused[] = {"invalid_auth",
                                          "not_authed",
                                          "account_inactive",
                                          "token_revoked",
                                          "token_expired",
                                          "team_disabled",
                                          "missing_scope",
                                          "not_allowed_token_type",
                                          NULL};
    for (int i = 0; code && refused[i]; i++) {
        if (strcmp(code, refused[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

void sm_open_done(unsigned seq, const struct sm_open_result *res)
{
    char host[256], id[16];
    struct sm_conn *c;
    const char *url = res->url;

    if (!sm.started || seq != sm.open_seq || !sm.open_pending) {
        return; /* cancelled (link_disabled, stop) or stale */
    }
    sm.open_pending = 0;
    if (sm.stopping) {
        return;
    }
    if (!res->ok) {
        const char *code = res->code ? res->code : "error";
        sm_set_error("apps.connections.open failed", code);
        if (res->slack_error && sm_auth_refused(code)) {
            log_event(LOG_ERROR,
                      "apps.connections.open refused the app token; check "
                      "SLACK_APP_TOKEN (an xapp- token with connections:write)",
                      "error", code, NULL);
            if (sm.s.on_fatal) {
                sm.s.on_fatal("the app token was refused", sm.s.fatal_arg);
                return;
            }
            sm_schedule_retry(SM_AUTH_REFUSED_RETRY);
            return;
        }
        log_event(LOG_WARN, "apps.connections.open failed", "error", code, "detail",
                  res->message ? res->message : "", NULL);
        sm_ensure();
        return;
    }
    if (!url || !url[0]) {
        sm_set_error("apps.connections.open returned no url", NULL);
        log_event(LOG_WARN, "apps.connections.open returned no url", NULL);
        sm_ensure();
        return;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        sm_ensure();
        return;
    }
    c->id = ++sm.next_id;
    c->last_ping = loop_now_mono();
    c->ws = ws_connect(url, &sm_ws_callbacks, c, sm.s.max_frame, sm.s.close_timeout);
    sm_url_host(url, host, sizeof host);
    sm_id_str(c, id, sizeof id);
    if (!c->ws) {
        free(c);
        sm_set_error("could not start the websocket", host);
        log_event(LOG_WARN, "could not start the socket mode websocket", "host", host, NULL);
        sm_ensure();
        return;
    }
    c->next = sm.conns;
    sm.conns = c;
    log_event(LOG_INFO, "socket mode connecting", "conn", id, "host", host, NULL);
}

static void sm_connect_now(void)
{
    if (sm.stopping || sm.open_pending) {
        return;
    }
    uv_timer_stop(&sm.retry_timer);
    if (sm.opens++ > 0) {
        sm_count("pmb_socket_reconnects_total", "Socket Mode connections opened after the first",
                 &sm.reconnects);
    }
    sm.open_pending = 1;
    if (sm.s.open_url(++sm.open_seq, sm.s.open_arg) < 0) {
        sm.open_pending = 0;
        sm_set_error("could not start apps.connections.open", NULL);
        log_event(LOG_WARN, "could not start apps.connections.open", NULL);
        sm_schedule_backoff();
        return;
    }
    sm_update_state();
}

/* Make sure something is under way towards a healthy connection: a live one, a new one being
 * opened, or a retry timer. Called after anything that may have lost one. */
static void sm_ensure(void)
{
    if (sm.stopping || sm.link_disabled || sm.open_pending ||
        uv_is_active((uv_handle_t *)&sm.retry_timer)) {
        sm_update_state();
        return;
    }
    for (struct sm_conn *c = sm.conns; c; c = c->next) {
        if (!c->retiring && !c->disconnect_seen) {
            sm_update_state();
            return;
        }
    }
    sm_schedule_backoff();
}

/* ---- frames ---- */

static void sm_malformed(struct sm_conn *c, const char *why, size_t size)
{
    char id[16], sz[32];
    sm_id_str(c, id, sizeof id);
    snprintf(sz, sizeof sz, "%zu", size);
    sm_count("pmb_frames_malformed_total", "Socket Mode frames skipped as malformed",
             &sm.malformed);
    log_event(LOG_WARN, "malformed socket mode frame skipped", "conn", id, "why", why, "bytes", sz,
              NULL);
}

static void sm_on_hello(struct sm_conn *c, double n)
{
    char id[16], num[32];
    sm_id_str(c, id, sizeof id);
    snprintf(num, sizeof num, "%.0f", n);
    if (c->retiring) {
        return; /* a late hello on a connection we are already closing changes nothing */
    }
    c->hello = 1;
    sm.attempt = 0;
    sm.link_disabled = 0;
    sm.last_error[0] = '\0';
    sm.connects++;
    log_event(LOG_INFO, "socket mode connected", "conn", id, "num_connections", num, NULL);
    /* make-before-break: the new connection is up, so the old ones can go */
    for (struct sm_conn *o = sm.conns; o; o = o->next) {
        if (o != c && !o->retiring) {
            char oid[16];
            sm_id_str(o, oid, sizeof oid);
            o->retiring = 1;
            log_event(LOG_INFO, "closing the replaced socket mode connection", "conn", oid, NULL);
            ws_close(o->ws);
        }
    }
    sm_update_state();
}

static void sm_on_disconnect(struct sm_conn *c, const char *reason)
{
    char id[16];
    sm_id_str(c, id, sizeof id);
    if (strcmp(reason, "link_disabled") == 0) {
        log_event(LOG_ERROR, "Socket Mode is disabled in the app settings", "conn", id,
                  "retry_in_s", "300", NULL);
        sm_set_error("Socket Mode is disabled in the app settings", NULL);
        sm.link_disabled = 1;
        sm.open_pending = 0; /* its answer, if it comes, is ignored */
        sm.open_seq++;
        for (struct sm_conn *o = sm.conns; o; o = o->next) {
            if (!o->retiring) {
                o->retiring = 1;
                ws_close(o->ws);
            }
        }
        uv_timer_start(&sm.retry_timer, sm_retry_cb, (uint64_t)(SM_LINK_DISABLED_RETRY * 1000), 0);
        sm_update_state();
        return;
    }
    /* warning, refresh_requested, too_many_websockets and anything new: open a new connection,
     * keep reading (and acking) on this one until the new one has said hello */
    log_event(LOG_INFO, "socket mode disconnect requested; opening a new connection", "conn", id,
              "reason", reason, NULL);
    c->disconnect_seen = 1;
    for (struct sm_conn *o = sm.conns; o; o = o->next) {
        if (!o->hello && !o->retiring) {
            return; /* a replacement is already connecting */
        }
    }
    sm_connect_now();
}

/* Has this envelope (its id or its event id) been seen? Remembers both either way. */
static int sm_seen(const struct envelope *e)
{
    char key[1100];
    double now = loop_now_mono();
    int dup;

    snprintf(key, sizeof key, "envelope:%.1024s", e->id);
    dup = dedupe_contains(sm.seen, key, now);
    if (!dup && dedupe_add(sm.seen, key, now) < 0) {
        log_event(LOG_WARN, "dedupe: out of memory", NULL);
    }
    if (e->event_id[0]) {
        snprintf(key, sizeof key, "event:%s", e->event_id);
        dup = dedupe_check_add(sm.seen, key, now) == 1 || dup;
    }
    return dup;
}

static void sm_duplicate(int conn_id, const char *envelope_id, const char *event_id,
                         double retry_attempt)
{
    char id[16], retry[32];
    snprintf(id, sizeof id, "%d", conn_id);
    snprintf(retry, sizeof retry, "%.0f", retry_attempt);
    sm_count("pmb_envelopes_duplicate_total", "Socket Mode redeliveries acked and skipped",
             &sm.duplicates);
    log_event(LOG_INFO, "duplicate envelope skipped", "conn", id, "envelope_id", envelope_id,
              "event_id", event_id, "retry_attempt", retry, NULL);
}

static void sm_on_envelope(struct sm_conn *c, const struct envelope *e, const char *json,
                           size_t len)
{
    if (sm_seen(e)) {
        sm_duplicate(c->id, e->id, e->event_id, e->retry_attempt);
        return;
    }
    if (sm.on_envelope) {
        sm.on_envelope(json, len, NULL, sm.arg);
    }
}

static int sm_ack(struct sm_conn *c, const char *ack, size_t ack_len, double rx_mono)
{
    if (ack && ws_send_text(c->ws, ack, ack_len, rx_mono, SM_ACK_HISTOGRAM) == 0) {
        sm_count("pmb_envelopes_acked_total", "Socket Mode envelopes acked", &sm.acks);
        return 0;
    }
    return -1;
}

/* ---- database mode: the job row before the ack (accept.c) ---- */

/* An envelope waiting for its job row: acked, and handed on, when accept.c answers. */
struct sm_gated {
    int conn_id;
    double rx_mono, retry_attempt;
    char *ack, *json, *envelope_id;
    size_t ack_len, len;
    char key[200], event_id[128];
};

static void sm_gated_free(struct sm_gated *g)
{
    free(g->ack);
    free(g->json);
    free(g->envelope_id);
    free(g);
}

static void sm_accepted(enum accept_verdict v, void *arg)
{
    struct sm_gated *g = arg;
    struct sm_conn *c = sm.conns;
    while (c && c->id != g->conn_id) {
        c = c->next;
    }
    if (c && sm_ack(c, g->ack, g->ack_len, g->rx_mono) == 0) {
        /* acked: Slack will not send it again */
    } else {
        log_event(LOG_WARN, "could not ack after recording the job (connection gone)",
                  "envelope_id", g->envelope_id, "job", g->key, NULL);
    }
    if (v == ACCEPT_DUPLICATE) {
        sm_duplicate(g->conn_id, g->envelope_id, g->event_id, g->retry_attempt);
    } else if (sm.on_envelope) {
        struct sm_job job = {g->key, 1, v == ACCEPT_DEGRADED};
        sm.on_envelope(g->json, g->len, &job, sm.arg);
    }
    sm_gated_free(g);
}

/* In database mode an event envelope is acked only once its job row is written (or the bound
 * passed): 1 when it went to accept.c, 0 when the caller acks and delivers as in file mode (not
 * database mode, a local redelivery, an id unfit for a key, no memory). */
static int sm_gate(struct sm_conn *c, const struct envelope *e, const char *json, size_t len,
                   double rx_mono)
{
    struct sm_gated *g;
    if (e->kind != ENVELOPE_EVENT || !accept_enabled() || !e->ack ||
        memchr(e->id, '\0', e->id_len) || !(g = calloc(1, sizeof *g))) {
        return 0;
    }
    if (e->event_id[0]) {
        snprintf(g->key, sizeof g->key, "event:%s", e->event_id);
    } else {
        snprintf(g->key, sizeof g->key, "envelope:%.*s", (int)e->id_len, e->id);
    }
    g->conn_id = c->id;
    g->rx_mono = rx_mono;
    g->retry_attempt = e->retry_attempt;
    g->len = len;
    g->ack_len = e->ack_len;
    snprintf(g->event_id, sizeof g->event_id, "%s", e->event_id);
    g->ack = strdup(e->ack);
    g->envelope_id = strndup(e->id, e->id_len);
    g->json = malloc(len + 1);
    if (!accept_key_ok(g->key) || !g->ack || !g->envelope_id || !g->json) {
        sm_gated_free(g);
        return 0;
    }
    memcpy(g->json, json, len);
    g->json[len] = '\0';
    if (sm_seen(e)) {
        sm_gated_free(g);
        return 0; /* the caller acks; sm_on_envelope finds it again and skips it */
    }
    if (accept_job(g->key, g->json, len, sm_accepted, g) < 0) {
        log_event(LOG_ERROR, "job not recorded: out of memory; acked and run here", "job", g->key,
                  NULL);
        sm_ack(c, g->ack, g->ack_len, rx_mono);
        if (sm.on_envelope) {
            struct sm_job job = {g->key, 1, 1};
            sm.on_envelope(g->json, g->len, &job, sm.arg);
        }
        sm_gated_free(g);
    }
    return 1;
}

static void sm_ws_text(struct ws_conn *ws, const char *data, size_t len, double rx_mono, void *arg)
{
    struct sm_conn *c = arg;
    struct envelope e;
    (void)ws;

    envelope_read(data, len, &e);
    /* the ack comes first: before dedupe, before any Lua, even for a type we do not know; the id
     * is echoed byte for byte, however long and whatever it holds. In database mode an event's
     * ack waits for its job row (sm_gate), one round trip bounded by accept.c. */
    if (e.id) {
        sm_count("pmb_envelopes_received_total", "Socket Mode envelopes received", &sm.envelopes);
        if (sm_gate(c, &e, data, len, rx_mono)) {
            envelope_free(&e);
            return;
        }
        if (sm_ack(c, e.ack, e.ack_len, rx_mono) < 0) {
            log_event(LOG_WARN, "could not queue an ack", "envelope_id", e.id, NULL);
        }
    }
    switch (e.kind) {
    case ENVELOPE_NOT_JSON:
        sm_malformed(c, "not a JSON object", len);
        break;
    case ENVELOPE_NO_TYPE:
        sm_malformed(c, "no type", len);
        break;
    case ENVELOPE_HELLO:
        sm_on_hello(c, e.num_connections);
        break;
    case ENVELOPE_DISCONNECT:
        sm_on_disconnect(c, e.reason);
        break;
    case ENVELOPE_UNKNOWN:
        sm_malformed(c, "unknown type", len);
        break;
    case ENVELOPE_NO_ID:
        sm_malformed(c, "envelope without envelope_id", len);
        break;
    case ENVELOPE_EVENT:
        sm_on_envelope(c, &e, data, len);
        break;
    }
    envelope_free(&e);
}

static void sm_ws_bad_frame(struct ws_conn *ws, const char *why, size_t size, void *arg)
{
    (void)ws;
    sm_malformed(arg, why, size);
}

static void sm_ws_open(struct ws_conn *ws, void *arg)
{
    char id[16];
    (void)ws;
    sm_id_str(arg, id, sizeof id);
    log_event(LOG_DEBUG, "socket mode websocket open; waiting for hello", "conn", id, NULL);
}

static void sm_stop_finish(void *arg);
static struct loop_deferred sm_stop_deferred;

static void sm_ws_close(struct ws_conn *ws, int opened, int code, const char *reason, void *arg)
{
    struct sm_conn *c = arg, **p;
    char id[16], code_s[16];
    (void)ws;

    for (p = &sm.conns; *p && *p != c; p = &(*p)->next) {
    }
    if (*p) {
        *p = c->next;
    }
    sm_id_str(c, id, sizeof id);
    snprintf(code_s, sizeof code_s, "%d", code);
    if (c->retiring || sm.stopping) {
        log_event(LOG_INFO, "socket mode connection closed", "conn", id, NULL);
    } else {
        log_event(LOG_WARN, opened ? "socket mode connection lost" : "socket mode connect failed",
                  "conn", id, "reason", reason, "code", code_s, NULL);
        sm_set_error(opened ? "connection lost" : "connect failed", reason);
    }
    free(c);
    if (sm.stopping) {
        if (!sm.conns) {
            sm_stop_finish(NULL);
        }
        return;
    }
    sm_ensure();
}

static const struct ws_callbacks sm_ws_callbacks = {
    .on_open = sm_ws_open,
    .on_text = sm_ws_text,
    .on_bad_frame = sm_ws_bad_frame,
    .on_close = sm_ws_close,
};

/* ---- public ---- */

int sm_start(const struct sm_settings *s, sm_envelope_fn on_envelope, void *arg)
{
    if (sm.started || !s || !s->open_url) {
        return -1;
    }
    sm.s = *s; /* resolved values: the config schema gave every key its default */
    sm.seen = dedupe_new(sm.s.dedupe_max, sm.s.dedupe_ttl);
    if (!sm.seen) {
        return -1;
    }
    sm.on_envelope = on_envelope;
    sm.arg = arg;
    sm.started = 1;
    srand((unsigned)(loop_now_wall() * 1000.0));
    uv_timer_init(loop_get(), &sm.retry_timer);
    uv_timer_init(loop_get(), &sm.tick_timer);
    uv_timer_start(&sm.tick_timer, sm_tick_cb, SM_TICK_MS, SM_TICK_MS);
    sm_connect_now();
    sm_update_state();
    return 0;
}

static void sm_stop_finish(void *arg)
{
    void (*done)(void *) = sm.stop_done;
    (void)arg;
    sm.stop_done = NULL;
    if (sm.started) {
        sm.started = 0;
        uv_close((uv_handle_t *)&sm.retry_timer, NULL);
        uv_close((uv_handle_t *)&sm.tick_timer, NULL);
        dedupe_free(sm.seen);
        sm.seen = NULL;
    }
    if (done) {
        done(sm.stop_arg);
    }
}

void sm_stop(void (*done)(void *arg), void *arg)
{
    if (sm.stopping) {
        return;
    }
    sm.stopping = 1;
    sm.stop_done = done;
    sm.stop_arg = arg;
    if (!sm.started) {
        sm.state = "stopped";
        loop_defer(&sm_stop_deferred, sm_stop_finish, NULL);
        return;
    }
    sm.open_pending = 0;
    sm.open_seq++;
    uv_timer_stop(&sm.retry_timer);
    uv_timer_stop(&sm.tick_timer);
    sm_update_state();
    log_event(LOG_INFO, "socket mode stopping", NULL);
    for (struct sm_conn *c = sm.conns; c; c = c->next) {
        c->retiring = 1;
        ws_close(c->ws);
    }
    if (!sm.conns) {
        loop_defer(&sm_stop_deferred, sm_stop_finish, NULL);
    }
}

void sm_get_status(struct sm_status *out)
{
    memset(out, 0, sizeof *out);
    out->connected = sm.started && !sm.stopping && sm_any_connected();
    out->state = sm.state;
    out->last_error = sm.last_error[0] ? sm.last_error : NULL;
    out->connects = sm.connects;
    out->reconnects = sm.reconnects;
    out->envelopes = sm.envelopes;
    out->acks = sm.acks;
    out->duplicates = sm.duplicates;
    out->malformed = sm.malformed;
}
