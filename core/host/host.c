/* host.c — the Lua host's API (host.h) and generation manager: loads the first generation,
 * swaps generations on SIGHUP only when the new one loads completely, closes an old one when its
 * last coroutine ends, starts a task per Socket Mode envelope (and per render), drains and shuts
 * down, and posts messages from C (failure replies, admin channel). main.c calls it; generations
 * are built in host_gen.c, tasks run in host_task.c, the primitives Lua calls are in
 * primitives_io.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "host/host_gen.h"

#define HOST_DEFAULT_CONFIG "config/postmortembot.lua"
#define HOST_ERR_MAX 4096

static struct host_options host_opts;
static struct core_settings host_cs;
static struct host_gen *host_current;
static struct host_gen *host_retired;
static struct bot_identity host_bot_id;
static int host_bot_known;
static int host_draining;
static void (*host_drain_done)(void *arg);
static void *host_drain_arg;
static struct loop_timer *host_drain_timer;
static struct loop_deferred host_drain_deferred;
static void (*host_render_cb)(int rc, const char *md_path, void *arg);
static void *host_render_arg;

const struct bot_identity *host_bot(void)
{
    return host_bot_known && host_opts.mode == HOST_MODE_RUN ? &host_bot_id : NULL;
}

/* ---- generations ---- */

void host_gen_release(struct host_gen *gen)
{
    if (gen->retired && gen->refs == 0) {
        struct host_gen **pp = &host_retired;
        while (*pp && *pp != gen) {
            pp = &(*pp)->next_retired;
        }
        if (*pp) {
            *pp = gen->next_retired;
        }
        char n[16];
        snprintf(n, sizeof n, "%d", gen->number);
        log_event(LOG_INFO, "generation closed", "generation", n, NULL);
        host_gen_close(gen);
    }
}

void host_render_finish(int rc, const char *path)
{
    void (*cb)(int, const char *, void *) = host_render_cb;
    host_render_cb = NULL;
    if (cb) {
        cb(rc, path, host_render_arg);
    }
}

/* ---- posting from C ---- */

static void host_post_done(const struct http_result *res, void *arg)
{
    (void)arg;
    if (res->err != HTTP_OK) {
        log_event(LOG_WARN, "could not post a message", "error", res->code ? res->code : "?",
                  "detail", res->message ? res->message : "", NULL);
    }
}

void host_post_message(const char *channel, const char *thread_ts, const char *text)
{
    char *c, *th, *tx, *body;
    size_t n;
    if (host_opts.mode != HOST_MODE_RUN || !channel || !*channel) {
        return;
    }
    c = http_form_escape(channel, strlen(channel));
    th = http_form_escape(thread_ts ? thread_ts : "", thread_ts ? strlen(thread_ts) : 0);
    tx = http_form_escape(text, strlen(text));
    n = strlen(c) + strlen(th) + strlen(tx) + 64;
    body = malloc(n);
    if (c && th && tx && body) {
        if (thread_ts && *thread_ts) {
            snprintf(body, n, "channel=%s&thread_ts=%s&text=%s", c, th, tx);
        } else {
            snprintf(body, n, "channel=%s&text=%s", c, tx);
        }
        if (!http_api("chat.postMessage", NULL, body, strlen(body),
                      "application/x-www-form-urlencoded", host_post_done, NULL)) {
            log_event(LOG_WARN, "could not start chat.postMessage", NULL);
        }
    }
    free(c);
    free(th);
    free(tx);
    free(body);
}

/* ---- host.h API ---- */

static void host_log_problem(const char *what, const char *err)
{
    log_event(LOG_ERROR, what, "error", err, "config", host_opts.config_path, NULL);
    if (host_opts.mode != HOST_MODE_RUN) {
        fprintf(stderr, "postmortembot %s: %s\n",
                host_opts.mode == HOST_MODE_CHECK ? "check" : "render", err);
    }
}

static void host_apply_settings(struct host_gen *gen, int reload)
{
    lua_rawgeti(gen->L, LUA_REGISTRYINDEX, gen->config_ref);
    config_read_settings(gen->L, -1, &host_cs, reload);
    lua_pop(gen->L, 1);
}

int host_init(const struct host_options *o)
{
    char err[HOST_ERR_MAX];
    host_opts = *o;
    if (!host_opts.config_path) {
        host_opts.config_path = HOST_DEFAULT_CONFIG;
    }
    host_current = host_gen_build(&host_opts, 1, NULL, err, sizeof err);
    if (!host_current) {
        host_log_problem("could not load config and scripts", err);
        return -1;
    }
    host_apply_settings(host_current, 0);
    metrics_gauge_set("pmb_generation", "number of the current script generation", NULL, 1);
    return 0;
}

const struct core_settings *host_settings(void)
{
    return &host_cs;
}

void host_set_bot(const struct bot_identity *bot)
{
    host_bot_id = *bot;
    host_bot_known = 1;
}

int host_generation(void)
{
    return host_current ? host_current->number : 0;
}

int host_reload(void)
{
    char err[HOST_ERR_MAX], gen_s[16], ms_s[32];
    double t0 = loop_now_mono();
    struct host_gen *old = host_current;
    struct host_gen *gen;

    if (!old) {
        return -1;
    }
    gen = host_gen_build(&host_opts, old->number + 1, old, err, sizeof err);
    if (!gen) {
        log_event(LOG_ERROR, "reload failed", "error", err, "generation_kept",
                  (snprintf(gen_s, sizeof gen_s, "%d", old->number), gen_s), NULL);
        metrics_counter_add("pmb_reloads_total", "SIGHUP reloads", "outcome=\"failed\"", 1);
        if (old->admin_channel) {
            char text[HOST_ERR_MAX + 128];
            snprintf(
                text, sizeof text,
                ":warning: postmortembot reload failed; generation %d keeps running.\n```%s```",
                old->number, err);
            host_post_message(old->admin_channel, NULL, text);
        }
        return -1;
    }
    host_current = gen;
    old->retired = 1;
    old->next_retired = host_retired;
    host_retired = old;
    host_apply_settings(gen, 1);
    if (host_opts.mode == HOST_MODE_RUN) {
        struct http_settings hs = host_cs.http;
        hs.api_base = NULL; /* the API base and the token stay as main.c set them */
        hs.bot_token = NULL;
        http_configure(&hs);
    }
    log_set_level(log_level_from_name(host_cs.log_level));
    host_gen_release(old);
    snprintf(gen_s, sizeof gen_s, "%d", gen->number);
    snprintf(ms_s, sizeof ms_s, "%.1f", (loop_now_mono() - t0) * 1000);
    log_event(LOG_INFO, "reload ok", "generation", gen_s, "ms", ms_s, NULL);
    metrics_counter_add("pmb_reloads_total", "SIGHUP reloads", "outcome=\"ok\"", 1);
    metrics_gauge_set("pmb_generation", "number of the current script generation", NULL,
                      gen->number);
    return 0;
}

/* Envelopes run at once at most this many coroutines; more wait, in order, for a free one (a
 * burst while Slack rate-limits us must not grow without bound). Past HOST_MAX_WAITING an
 * envelope is dropped, logged and counted: it was acked, Slack will not send it again. */
#define HOST_MAX_RUNNING 64
#define HOST_MAX_WAITING 4096

static host_job_end_fn host_job_end; /* main.c's: the job of an envelope ended */

struct host_waiting {
    struct host_waiting *next;
    size_t len;
    int has_job;
    struct sm_job job;
    char job_id[200];
    char json[]; /* the envelope, NUL-terminated */
};

static struct host_waiting *host_wait_head, *host_wait_tail;
static size_t host_wait_n;

static void host_wait_gauge(void)
{
    metrics_gauge_set("pmb_envelopes_waiting", "Envelopes waiting for a free script coroutine",
                      NULL, (double)host_wait_n);
}

/* Where a failure of this envelope's task is answered: the host owns that reply (host_task.c), so
 * it reads the place from the envelope itself: a mention or DM in its thread, a shortcut in the
 * thread of its message, a slash command in its channel. The router only names the command
 * (host.task_reply_to), and may say where when it knows better. */
static void host_set_reply_target(struct host_task *t, const char *json, size_t len)
{
    char etype[32] = "", type[32] = "", ctype[16] = "";
    struct json_doc *doc = json_parse(json, len);
    const char *channel = NULL, *thread = NULL, *ts = NULL;
    if (!doc) {
        return;
    }
    json_get_string(doc, "type", etype, sizeof etype);
    json_get_string(doc, "payload.event.type", type, sizeof type);
    json_get_string(doc, "payload.event.channel_type", ctype, sizeof ctype);
    if (strcmp(etype, "events_api") == 0 &&
        (strcmp(type, "app_mention") == 0 ||
         (strcmp(type, "message") == 0 && strcmp(ctype, "im") == 0))) {
        /* a mention, or a message in a DM with the bot: answered in its thread */
        channel = "payload.event.channel", thread = "payload.event.thread_ts";
        ts = "payload.event.ts";
    } else if (strcmp(etype, "interactive") == 0) {
        /* a message shortcut: answered in the thread of the message it was used on */
        channel = "payload.channel.id", thread = "payload.message.thread_ts";
        ts = "payload.message.ts";
    } else if (strcmp(etype, "slash_commands") == 0) {
        channel = "payload.channel_id"; /* a slash command: in the channel it was typed in */
    }
    if (channel && json_get_string(doc, channel, t->reply_channel, sizeof t->reply_channel) == 0 &&
        (!thread || json_get_string(doc, thread, t->reply_thread, sizeof t->reply_thread) < 0)) {
        if (!ts || json_get_string(doc, ts, t->reply_thread, sizeof t->reply_thread) < 0) {
            t->reply_thread[0] = '\0';
        }
    }
    json_free(doc);
}

void host_set_job_end(host_job_end_fn fn)
{
    host_job_end = fn;
}

void host_job_ended(const struct host_task *t)
{
    if (host_job_end) {
        host_job_end(t->job_id, t->job_generation, t->job_ok, t->job_lost);
    }
}

static void host_start_envelope(const char *json, size_t len, const struct sm_job *job)
{
    struct host_task *t = host_task_new(host_current, HOST_TASK_ENVELOPE);
    if (t) {
        host_push_boot_fn(t, "task_main");
        if (host_task_push_string(t, json, len) < 0) {
            host_task_abort(t);
            t = NULL;
        }
    }
    if (!t) {
        metrics_counter_add("pmb_envelopes_dropped_total", "Acked envelopes never handled", NULL,
                            1);
        log_event(LOG_ERROR, "envelope dropped: out of memory starting its task", NULL);
        if (job && host_job_end) {
            host_job_end(job->id, job->generation, 0, 1);
        }
        return;
    }
    if (job) {
        snprintf(t->job_id, sizeof t->job_id, "%s", job->id);
        t->job_generation = job->generation;
        t->job_degraded = job->degraded;
    }
    host_set_reply_target(t, json, len);
    /* start on the next loop turn: the ack socketmode.c just queued goes out first */
    t->start_nargs = 1;
    host_task_resume_soon(t);
}

void host_start_waiting(void)
{
    while (host_wait_head && !host_draining && host_current && host_running() < HOST_MAX_RUNNING) {
        struct host_waiting *w = host_wait_head;
        host_wait_head = w->next;
        if (!host_wait_head) {
            host_wait_tail = NULL;
        }
        host_wait_n--;
        w->job.id = w->job_id;
        host_start_envelope(w->json, w->len, w->has_job ? &w->job : NULL);
        free(w);
    }
    host_wait_gauge();
}

static void host_wait_clear(const char *why)
{
    if (host_wait_n) {
        char n[24];
        snprintf(n, sizeof n, "%zu", host_wait_n);
        log_event(LOG_WARN, "envelopes dropped", "reason", why, "count", n, NULL);
        metrics_counter_add("pmb_envelopes_dropped_total", "Acked envelopes never handled", NULL,
                            (double)host_wait_n);
    }
    while (host_wait_head) {
        struct host_waiting *w = host_wait_head;
        host_wait_head = w->next;
        if (w->has_job && host_job_end) {
            host_job_end(w->job_id, w->job.generation, 0, 1);
        }
        free(w);
    }
    host_wait_tail = NULL;
    host_wait_n = 0;
    host_wait_gauge();
}

void host_on_envelope(const char *json, size_t len, const struct sm_job *job)
{
    char type[64] = "", event_id[64] = "", event_type[64] = "";
    struct json_doc *doc = json_parse(json, len);
    if (doc) {
        json_get_string(doc, "type", type, sizeof type);
        json_get_string(doc, "payload.event_id", event_id, sizeof event_id);
        json_get_string(doc, "payload.event.type", event_type, sizeof event_type);
        json_free(doc);
    }
    log_event(LOG_INFO, "envelope", "type", type, "event_id", event_id, "event", event_type, NULL);
    if (host_draining || !host_current) {
        log_event(LOG_WARN, "envelope dropped: stopping", "event_id", event_id, NULL);
        if (job && host_job_end) {
            host_job_end(job->id, job->generation, 0, 1); /* another instance takes it over */
        }
        return;
    }
    if (host_running() < HOST_MAX_RUNNING && !host_wait_head) {
        host_start_envelope(json, len, job);
        return;
    }
    struct host_waiting *w = NULL;
    if (host_wait_n < HOST_MAX_WAITING) {
        w = malloc(sizeof *w + len + 1);
    }
    if (!w) {
        log_event(LOG_ERROR, "envelope dropped: too many waiting", "event_id", event_id, NULL);
        metrics_counter_add("pmb_envelopes_dropped_total", "Acked envelopes never handled", NULL,
                            1);
        if (job && host_job_end) {
            host_job_end(job->id, job->generation, 0, 1);
        }
        return;
    }
    w->next = NULL;
    w->len = len;
    w->has_job = job != NULL;
    if (job) {
        w->job = *job;
        snprintf(w->job_id, sizeof w->job_id, "%s", job->id);
    }
    memcpy(w->json, json, len);
    w->json[len] = '\0';
    if (host_wait_tail) {
        host_wait_tail->next = w;
    } else {
        host_wait_head = w;
    }
    host_wait_tail = w;
    if (host_wait_n++ == 0) {
        log_event(LOG_INFO, "scripts busy: envelopes wait for a free coroutine", "event_id",
                  event_id, NULL);
    }
    host_wait_gauge();
}

int host_check_report(void)
{
    struct host_gen *g = host_current;
    int templates = 0;
    if (!g) {
        return 1;
    }
    lua_rawgeti(g->L, LUA_REGISTRYINDEX, g->templates_ref);
    lua_pushnil(g->L);
    while (lua_next(g->L, -2)) {
        templates++;
        lua_pop(g->L, 1);
    }
    lua_pop(g->L, 1);
    printf("ok: %s loads (scripts %s, %d templates in %s, data dir %s, timezone %s)\n",
           host_opts.config_path, g->scripts_dir, templates, g->templates_dir, g->data_dir,
           g->timezone);
    return 0;
}

/* render_main's options table { name = value…, out_dir = … }, built under lua_pcall: a Lua
 * allocation failing outside a protected call would end the process. */
static int host_render_opts_p(lua_State *L)
{
    const char *const *opts = lua_touserdata(L, 1);
    const char *out_dir = lua_touserdata(L, 2);
    lua_newtable(L); /* stack: opts out_dir t */
    for (size_t i = 0; opts[i] && opts[i + 1]; i += 2) {
        lua_pushstring(L, opts[i + 1]);
        lua_setfield(L, -2, opts[i]);
    }
    lua_pushstring(L, out_dir);
    lua_setfield(L, -2, "out_dir");
    return 1;
}

void host_render(const char *const *opts, void (*done)(int rc, const char *md_path, void *arg),
                 void *arg)
{
    struct host_task *t;
    host_render_cb = done;
    host_render_arg = arg;
    if (!host_current) {
        host_render_finish(1, NULL);
        return;
    }
    t = host_task_new(host_current, HOST_TASK_RENDER);
    if (!t) {
        host_render_finish(1, NULL);
        return;
    }
    host_push_boot_fn(t, "render_main");
    lua_State *L = host_current->L;
    lua_pushcfunction(L, host_render_opts_p);
    lua_pushlightuserdata(L, (void *)opts);
    lua_pushlightuserdata(L, host_current->write_root);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        log_event(LOG_ERROR, "render: out of memory", NULL);
        lua_pop(L, 1);
        host_task_abort(t); /* ends the render with status 1 */
        return;
    }
    lua_xmove(L, t->co, 1);
    host_task_resume(t, 1);
}

static void host_drain_finish(void *arg)
{
    (void)arg;
    void (*done)(void *) = host_drain_done;
    host_drain_done = NULL;
    if (done) {
        done(host_drain_arg);
    }
}

void host_drain_check(void)
{
    if (host_draining && host_running() == 0 && host_drain_done) {
        loop_timer_cancel(host_drain_timer);
        host_drain_timer = NULL;
        loop_defer(&host_drain_deferred, host_drain_finish, NULL);
    }
}

static void host_drain_timeout(void *arg)
{
    (void)arg;
    host_drain_timer = NULL;
    if (host_running() > 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", host_running());
        log_event(LOG_WARN, "ending scripts still running after the grace period", "tasks", n,
                  NULL);
    }
    host_task_abort_all();
    host_drain_check();
}

void host_drain(double grace, void (*done)(void *arg), void *arg)
{
    host_draining = 1;
    host_wait_clear("stopping");
    host_drain_done = done;
    host_drain_arg = arg;
    if (host_running() == 0) {
        host_drain_check();
        return;
    }
    host_drain_timer = loop_timer_start(grace, host_drain_timeout, NULL);
    if (!host_drain_timer) {
        host_drain_timeout(NULL); /* no timer to bound the grace: do not wait at all */
    }
}

void host_shutdown(void)
{
    host_wait_clear("shutdown");
    host_drain_done = NULL;
    loop_timer_cancel(host_drain_timer);
    host_drain_timer = NULL;
    host_task_abort_all();
    while (host_retired) {
        struct host_gen *g = host_retired;
        host_retired = g->next_retired;
        host_gen_close(g);
    }
    host_gen_close(host_current);
    host_current = NULL;
    config_free();
}
