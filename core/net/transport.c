/* transport.c — the transport thread. It owns a libuv loop of its own with the lws context (ws.c),
 * Socket Mode (socketmode.c), the health listener (health.c) and the signal handlers, so acks,
 * pings, /healthz and SIGTERM never wait for a script. What crosses to the script loop goes
 * through its mailbox: envelopes (bounded), SIGHUP, the stop request and apps.connections.open;
 * what comes back goes through this thread's mailbox: the open result, "connect", "stop" and
 * "the script side has stopped". main.c starts it and joins it. */
#include "net/transport.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "base/strcopy.h"
#include "net/health.h"
#include "net/ws.h"

#define TRANSPORT_HARD_DEADLINE 12.0 /* seconds from a stop request to exit, whatever happens */

struct transport_envelope {
    struct mailbox_node node;
    size_t len;
    int has_job;
    struct sm_job job; /* job.id points into job_id */
    char job_id[200];
    char json[];
};

struct transport_open_answer {
    struct mailbox_node node;
    unsigned seq;
    int ok, slack_error;
    char *code, *message, *url;
};

static struct {
    pthread_t thread;
    int thread_started;
    struct transport_settings s;
    char *listen;
    struct transport_hooks h;
    struct mailbox *script_mb; /* the script loop's: we post to it */
    struct mailbox *mb;        /* ours: the script loop posts to it */
    uv_sem_t ready;
    int start_rc;
    uv_signal_t sighup, sigterm, sigint;
    uv_timer_t deadline;
    int stopping, sm_stopped, script_stopped, finished;
    atomic_int exit_code;
    atomic_uint open_seq; /* the latest apps.connections.open asked for (open_node carries it) */
    /* the posts that carry no object of their own: one node each, coalesced while queued */
    struct mailbox_node open_node, reload_node, stop_node, connect_node, script_stopped_node;
} tr;

/* apps.connections.open's answer when there was no memory for the real one: Socket Mode then
 * retries after its backoff, as after any failed open. Never written after start: both threads
 * may hold it, so it answers the latest request (tr.open_seq) when it is delivered. */
static struct transport_open_answer transport_oom_answer = {.code = "out_of_memory"};

/* ---- to the script loop ---- */

static void transport_run_envelope(void *arg)
{
    struct transport_envelope *e = arg;
    e->job.id = e->job_id;
    tr.h.envelope(e->json, e->len, e->has_job ? &e->job : NULL);
    free(e);
}

static void transport_on_envelope(const char *json, size_t len, const struct sm_job *job, void *arg)
{
    struct transport_envelope *e = malloc(sizeof *e + len + 1);
    (void)arg;
    if (e) {
        e->len = len;
        e->has_job = job != NULL;
        if (job) {
            e->job = *job;
            snprintf(e->job_id, sizeof e->job_id, "%s", job->id);
        }
        memcpy(e->json, json, len);
        e->json[len] = '\0';
        memset(&e->node, 0, sizeof e->node);
        if (mailbox_post(tr.script_mb, &e->node, transport_run_envelope, e) == 0) {
            return;
        }
        free(e);
    }
    metrics_counter_add("pmb_envelopes_dropped_total",
                        "envelopes acked but dropped: the script loop's queue was full or closed",
                        NULL, 1);
    log_event(LOG_ERROR, "envelope dropped: the script loop is not taking work", NULL);
}

static void transport_run_reload(void *arg)
{
    (void)arg;
    tr.h.reload();
}

static void transport_run_stop(void *arg)
{
    (void)arg;
    tr.h.stop();
}

static void transport_run_open(void *arg)
{
    (void)arg;
    tr.h.open_url(atomic_load(&tr.open_seq));
}

static int transport_open_url(unsigned seq, void *arg)
{
    (void)arg;
    atomic_store(&tr.open_seq, seq); /* a request still queued asks for the latest */
    return mailbox_post(tr.script_mb, &tr.open_node, transport_run_open, NULL) < 0 ? -1 : 0;
}

/* ---- stopping ---- */

static void transport_maybe_finish(void)
{
    if (tr.finished || !tr.sm_stopped || !tr.script_stopped) {
        return;
    }
    tr.finished = 1;
    accept_stop();
    health_stop();
    uv_close((uv_handle_t *)&tr.sighup, NULL);
    uv_close((uv_handle_t *)&tr.sigterm, NULL);
    uv_close((uv_handle_t *)&tr.sigint, NULL);
    uv_close((uv_handle_t *)&tr.deadline, NULL);
    ws_shutdown_begin();
    mailbox_close(tr.mb, NULL);
}

static void transport_sm_stopped(void *arg)
{
    (void)arg;
    tr.sm_stopped = 1;
    transport_maybe_finish();
}

static void transport_deadline_cb(uv_timer_t *t)
{
    (void)t;
    log_event(LOG_WARN, "shutdown took too long; exiting anyway", NULL);
    _exit(atomic_load(&tr.exit_code));
}

static void transport_begin_stop(int code, const char *why)
{
    if (code > atomic_load(&tr.exit_code)) {
        atomic_store(&tr.exit_code, code);
    }
    if (tr.stopping) {
        log_event(LOG_WARN, "second stop request; exiting now", "reason", why, NULL);
        _exit(atomic_load(&tr.exit_code));
    }
    tr.stopping = 1;
    log_event(LOG_INFO, "stopping", "reason", why, NULL);
    uv_timer_start(&tr.deadline, transport_deadline_cb, (uint64_t)(TRANSPORT_HARD_DEADLINE * 1000),
                   0);
    sm_stop(transport_sm_stopped, NULL);
    if (mailbox_post(tr.script_mb, &tr.stop_node, transport_run_stop, NULL) < 0) {
        tr.script_stopped = 1; /* it has already gone */
        transport_maybe_finish();
    }
}

static void transport_on_fatal(const char *why, void *arg)
{
    (void)arg;
    transport_begin_stop(1, why);
}

static void transport_on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (signum == SIGHUP) {
        if (!tr.stopping) {
            /* One reload node: a SIGHUP that comes while a reload still waits for the script loop
             * is part of that reload (it reads the files as they are when it runs). "reloading" is
             * said before the post, so that it comes before the reload's own lines; only this
             * thread posts the node, so one not waiting now is not waiting at the post either. */
            int waiting = mailbox_waiting(tr.script_mb, &tr.reload_node);
            if (!waiting) {
                log_event(LOG_INFO, "SIGHUP: reloading", NULL);
            }
            int rc = mailbox_post(tr.script_mb, &tr.reload_node, transport_run_reload, NULL);
            if (rc > 0) {
                log_event(LOG_INFO, "SIGHUP: a reload is already waiting; this one is part of it",
                          NULL);
            } else if (rc == 0 && waiting) {
                log_event(LOG_INFO, "SIGHUP: reloading", NULL); /* it was taken in between */
            } else if (rc < 0) {
                log_event(LOG_WARN, "SIGHUP ignored: the script loop is not taking work", NULL);
            }
        }
        return;
    }
    transport_begin_stop(0, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- what the script loop posts here ---- */

static void transport_do_connect(void *arg)
{
    struct sm_settings sm = tr.s.sm;
    (void)arg;
    if (tr.stopping) {
        return;
    }
    sm.open_url = transport_open_url;
    sm.on_fatal = transport_on_fatal;
    if (tr.s.accept.conninfo && !accept_enabled() && accept_start(&tr.s.accept) < 0) {
        transport_begin_stop(1, "database failed");
        return;
    }
    if (sm_start(&sm, transport_on_envelope, NULL) < 0) {
        log_event(LOG_ERROR, "could not start Socket Mode", NULL);
        transport_begin_stop(1, "socket mode failed");
    }
}

struct transport_stop_req {
    struct mailbox_node node;
    int code;
    char why[120];
};

static void transport_do_stop(void *arg)
{
    struct transport_stop_req *r = arg;
    transport_begin_stop(r->code, r->why);
    free(r);
}

static void transport_do_script_stopped(void *arg)
{
    (void)arg;
    tr.script_stopped = 1;
    transport_maybe_finish();
}

static void transport_answer_free(struct transport_open_answer *a)
{
    if (!a || a == &transport_oom_answer) {
        return;
    }
    free(a->code);
    free(a->message);
    free(a->url);
    free(a);
}

static void transport_do_open_result(void *arg)
{
    struct transport_open_answer *a = arg;
    struct sm_open_result r = {a->ok, a->slack_error, a->code, a->message, a->url};
    sm_open_done(a == &transport_oom_answer ? atomic_load(&tr.open_seq) : a->seq, &r);
    transport_answer_free(a);
}

int transport_connect(void)
{
    return mailbox_post(tr.mb, &tr.connect_node, transport_do_connect, NULL) < 0 ? -1 : 0;
}

void transport_request_stop(int exit_code, const char *why)
{
    struct transport_stop_req *r = calloc(1, sizeof *r);
    if (!r) {
        _exit(exit_code); /* no memory to even ask: leave as asked */
    }
    r->code = exit_code;
    snprintf(r->why, sizeof r->why, "%s", why);
    if (mailbox_post(tr.mb, &r->node, transport_do_stop, r) < 0) {
        free(r);
        log_event(LOG_ERROR, "could not ask the transport thread to stop; exiting now", "reason",
                  why, NULL);
        _exit(exit_code); /* a stop that cannot be asked for must not be lost */
    }
}

void transport_script_stopped(void)
{
    if (mailbox_post(tr.mb, &tr.script_stopped_node, transport_do_script_stopped, NULL) < 0) {
        log_event(LOG_WARN, "transport thread already gone", NULL);
    }
}

void transport_open_result(unsigned seq, const struct sm_open_result *res)
{
    struct transport_open_answer *a = calloc(1, sizeof *a);
    if (a) {
        a->seq = seq;
        a->ok = res->ok;
        a->slack_error = res->slack_error;
        a->code = str_copy(res->code);
        a->message = str_copy(res->message);
        a->url = str_copy(res->url);
    }
    if (!a || (res->code && !a->code) || (res->message && !a->message) || (res->url && !a->url)) {
        transport_answer_free(a);
        a = &transport_oom_answer; /* a failed open, said as one: Socket Mode retries */
    }
    if (mailbox_post(tr.mb, &a->node, transport_do_open_result, a) != 0) {
        transport_answer_free(a);
    }
}
/* ---- the thread ---- */

static int transport_init_on_thread(void)
{
    if (loop_init() < 0 || json_init() < 0) {
        log_event(LOG_ERROR, "could not initialise the transport loop", NULL);
        return -1;
    }
    tr.mb = mailbox_open(0);
    if (!tr.mb) {
        log_event(LOG_ERROR, "could not create the transport thread's mailbox", NULL);
        return -1;
    }
    if (ws_init() < 0) {
        log_event(LOG_ERROR, "could not initialise libwebsockets", NULL);
        return -1;
    }
    if (tr.listen && health_start(tr.listen, tr.s.stall_seconds) < 0) {
        log_event(LOG_ERROR, "could not listen for /healthz and /metrics", "listen", tr.listen,
                  NULL);
        return -1;
    }
    uv_signal_init(loop_get(), &tr.sighup);
    uv_signal_init(loop_get(), &tr.sigterm);
    uv_signal_init(loop_get(), &tr.sigint);
    uv_signal_start(&tr.sighup, transport_on_signal, SIGHUP);
    uv_signal_start(&tr.sigterm, transport_on_signal, SIGTERM);
    uv_signal_start(&tr.sigint, transport_on_signal, SIGINT);
    uv_timer_init(loop_get(), &tr.deadline);
    return 0;
}

static void transport_end_on_thread(void)
{
    ws_shutdown_finish();
    json_shutdown();
    if (loop_close() != 0) {
        log_event(LOG_WARN, "transport loop closed with handles still open", NULL);
    }
}

static void *transport_main(void *arg)
{
    (void)arg;
    tr.start_rc = transport_init_on_thread();
    if (tr.start_rc < 0) {
        if (loop_get()) { /* undo what was started; without a loop nothing was */
            health_stop();
            ws_shutdown_begin();
            mailbox_close(tr.mb, NULL);
            uv_run(loop_get(), UV_RUN_DEFAULT);
            transport_end_on_thread();
        }
        uv_sem_post(&tr.ready);
        return NULL;
    }
    uv_sem_post(&tr.ready);
    loop_run();
    transport_end_on_thread();
    return NULL;
}

int transport_start(const struct transport_settings *s, const struct transport_hooks *h,
                    struct mailbox *script_mailbox)
{
    int rc;
    tr.s = *s;
    tr.h = *h;
    tr.script_mb = script_mailbox;
    tr.listen = s->listen && *s->listen ? strdup(s->listen) : NULL;
    if (uv_sem_init(&tr.ready, 0) != 0) {
        return -1;
    }
    /* Whichever thread the kernel interrupts for SIGTERM, libuv's handler writes to its signal
     * pipe, and the watcher on the transport loop runs. */
    rc = pthread_create(&tr.thread, NULL, transport_main, NULL);
    if (rc != 0) {
        log_event(LOG_ERROR, "could not start the transport thread", NULL);
        uv_sem_destroy(&tr.ready);
        return -1;
    }
    tr.thread_started = 1;
    uv_sem_wait(&tr.ready);
    uv_sem_destroy(&tr.ready);
    if (tr.start_rc < 0) {
        transport_join();
        return -1;
    }
    return 0;
}

int transport_join(void)
{
    if (tr.thread_started) {
        pthread_join(tr.thread, NULL);
        tr.thread_started = 0;
        mailbox_free(tr.mb);
        tr.mb = NULL;
        free(tr.listen);
        tr.listen = NULL;
    }
    return atomic_load(&tr.exit_code);
}
