/* http.c — every HTTP request of the process: Web API calls (per-method 429 gates, retries with
 * backoff, ok:false -> HTTP_ERR_SLACK), downloads (temp file + rename, size cap, SHA-256,
 * redirects followed here with the token only for allow-listed hosts) and plain requests.
 * This file: settings, the call list and queue (concurrency caps, 429 gates), completion and
 * retries, the Web API and plain-request verdicts, the public functions. http_attempt.c builds
 * each curl transfer, http_download.c owns the download specifics, http_multi.c drives curl on
 * the loop; policy in ratelimit.c, parsing in http_pure.c. Callers: primitives_io.c, socketmode.c,
 * main.c. Done callbacks always run from loop_defer, never inside a curl callback. */
#include "http/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "base/json.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "base/strcopy.h"
#include "http/http_internal.h"
#include "http/http_multi.h"
#include "http/http_pure.h"
#include "http/ratelimit.h"

int http_up;
struct http_config http_cfg;
static struct http_call *http_head, *http_tail;
static int http_running_req, http_running_dl;
static struct ratelimit_gates *http_gates;
static uv_timer_t *http_gate_timer;
static int http_pumping, http_pump_again;

const char *http_err_code(enum http_err err)
{
    switch (err) {
    case HTTP_OK:
        return "ok";
    case HTTP_ERR_SLACK:
        return "slack_error";
    case HTTP_ERR_STATUS:
        return "http_status";
    case HTTP_ERR_TIMEOUT:
        return "timeout";
    case HTTP_ERR_CONNECT:
        return "connect";
    case HTTP_ERR_RATELIMITED:
        return "ratelimited";
    case HTTP_ERR_BAD_RESPONSE:
        return "bad_response";
    case HTTP_ERR_TOO_LARGE:
        return "too_large";
    case HTTP_ERR_LOGIN_PAGE:
        return "login_page";
    case HTTP_ERR_REDIRECT_REFUSED:
        return "redirect_refused";
    case HTTP_ERR_TOO_MANY_REDIRECTS:
        return "too_many_redirects";
    case HTTP_ERR_ADDRESS_REFUSED:
        return "address_refused";
    case HTTP_ERR_TRUNCATED:
        return "truncated";
    case HTTP_ERR_IO:
        return "io";
    case HTTP_ERR_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

/* ---- small helpers ---- */

static double http_random01(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        r = uv_hrtime() * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    return (double)(r >> 11) / 9007199254740992.0; /* 53 bits -> [0,1) */
}

static void http_fmt(char *buf, size_t size, const char *fmt, double v)
{
    snprintf(buf, size, fmt, v);
}

const char *http_header_get(const struct http_call *c, const char *name)
{
    for (size_t i = 0; i < c->n_hdrs; i++) {
        if (strcmp(c->hdrs[i].name, name) == 0) {
            return c->hdrs[i].value;
        }
    }
    return NULL;
}

void http_headers_clear(struct http_call *c)
{
    for (size_t i = 0; i < c->n_hdrs; i++) {
        free((char *)c->hdrs[i].name);
        free((char *)c->hdrs[i].value);
    }
    free(c->hdrs);
    c->hdrs = NULL;
    c->n_hdrs = 0;
}

/* ---- settings ---- */

static void http_config_free(struct http_config *cfg)
{
    free(cfg->api_base);
    if (cfg->bot_token) {
        memset(cfg->bot_token, 0, strlen(cfg->bot_token));
        free(cfg->bot_token);
    }
    for (size_t i = 0; i < cfg->n_allowed; i++) {
        free(cfg->allowed[i]);
    }
    free(cfg->allowed);
    memset(cfg, 0, sizeof *cfg);
}

/* The settings as the config schema resolved them (scripts/lib/config_schema.lua owns every
 * default and range): taken as they are; one out of range is refused with its name, never
 * replaced by a number of our own. NULL when they hold, else the name of the first that does not.
 */
static const char *http_settings_invalid(const struct http_settings *s)
{
    if (!s->api_base || !*s->api_base) {
        return "api_base";
    }
    if (!(s->timeout > 0)) {
        return "http.timeout";
    }
    if (!(s->connect_timeout > 0)) {
        return "http.connect_timeout";
    }
    if (s->max_concurrent < 1) {
        return "http.max_concurrent";
    }
    if (s->max_retries < 0) {
        return "http.max_retries";
    }
    if (!(s->max_retry_time >= 0)) {
        return "http.max_retry_time";
    }
    if (s->download_max_bytes < 1) {
        return "downloads.max_bytes";
    }
    if (s->download_concurrency < 1) {
        return "downloads.concurrency";
    }
    if (!(s->download_timeout > 0)) {
        return "downloads.timeout";
    }
    return NULL;
}

static int http_config_build(const struct http_settings *s, struct http_config *out)
{
    struct http_config cfg;
    const char *invalid = http_settings_invalid(s);
    if (invalid) {
        log_event(LOG_ERROR, "HTTP setting out of range", "setting", invalid, NULL);
        return -1;
    }
    const char *base = s->api_base;
    size_t blen = strlen(base);
    char hostport[300];

    memset(&cfg, 0, sizeof cfg);
    cfg.bot_token = str_copy(s->bot_token);
    cfg.api_base = malloc(blen + 2);
    size_t n = s->allowed_hosts_n;
    cfg.allowed = calloc(n + 1, sizeof *cfg.allowed);
    if ((s->bot_token && !cfg.bot_token) || !cfg.api_base || !cfg.allowed) {
        http_config_free(&cfg);
        return -1;
    }
    memcpy(cfg.api_base, base, blen + 1);
    if (base[blen - 1] != '/') {
        strcat(cfg.api_base, "/");
    }
    cfg.timeout = s->timeout;
    cfg.connect_timeout = s->connect_timeout;
    cfg.max_concurrent = s->max_concurrent;
    cfg.max_retries = s->max_retries;
    cfg.max_retry_time = s->max_retry_time;
    cfg.download_max_bytes = s->download_max_bytes;
    cfg.download_concurrency = s->download_concurrency;
    cfg.download_timeout = s->download_timeout;

    for (size_t i = 0; i < n; i++) {
        if (s->allowed_hosts[i] && !(cfg.allowed[cfg.n_allowed++] = strdup(s->allowed_hosts[i]))) {
            http_config_free(&cfg);
            return -1;
        }
    }
    if (http_pure_hostport(cfg.api_base, hostport, sizeof hostport) == 0) {
        if (!(cfg.allowed[cfg.n_allowed++] = strdup(hostport))) {
            http_config_free(&cfg);
            return -1;
        }
    } else {
        log_event(LOG_WARN, "api_base is not a URL curl can parse", NULL);
    }
    *out = cfg;
    return 0;
}

int http_token_allowed(const char *url)
{
    char hostport[300];
    if (http_pure_hostport(url, hostport, sizeof hostport) < 0) {
        return 0;
    }
    /* never in clear text when the API itself is https (a redirect that downgrades) */
    if (strncasecmp(url, "http://", 7) == 0 && strncasecmp(http_cfg.api_base, "https://", 8) == 0) {
        return 0;
    }
    return ratelimit_host_allowed(hostport, (const char *const *)http_cfg.allowed,
                                  http_cfg.n_allowed);
}

int http_is_api_host(const char *url)
{
    char a[300], b[300];
    return http_pure_hostport(url, a, sizeof a) == 0 &&
           http_pure_hostport(http_cfg.api_base, b, sizeof b) == 0 && strcmp(a, b) == 0;
}

/* ---- call list and states ---- */

void http_set_state(struct http_call *c, enum http_state st)
{
    if (c->state == HTTP_ST_RUNNING) {
        if (c->kind == HTTP_KIND_DOWNLOAD) {
            http_running_dl--;
        } else {
            http_running_req--;
        }
    }
    if (st == HTTP_ST_RUNNING) {
        if (c->kind == HTTP_KIND_DOWNLOAD) {
            http_running_dl++;
        } else {
            http_running_req++;
        }
    }
    c->state = st;
}

struct http_call *http_call_new(enum http_kind kind, http_done_fn done, void *arg)
{
    struct http_call *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->kind = kind;
    c->state = HTTP_ST_QUEUED;
    c->done = done;
    c->arg = arg;
    c->fd = -1;
    c->started = loop_now_mono();
    c->prev = http_tail;
    if (http_tail) {
        http_tail->next = c;
    } else {
        http_head = c;
    }
    http_tail = c;
    return c;
}

void http_call_free(struct http_call *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        http_head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    } else {
        http_tail = c->prev;
    }
    free(c->name);
    free(c->url);
    if (c->token) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
    free(c->body);
    free(c->content_type);
    free(c->body_file);
    curl_slist_free_all(c->headers);
    http_headers_clear(c);
    free(c->resp);
    free(c->dest);
    free(c->tmp);
    EVP_MD_CTX_free(c->sha);
    free(c);
}

/* Stop whatever the call is doing right now (transfer, backoff timer, open files). */
void http_attempt_release(struct http_call *c)
{
    if (c->easy) {
        http_multi_remove(c->easy);
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    curl_slist_free_all(c->attempt_headers);
    c->attempt_headers = NULL;
    if (c->body_fp) {
        fclose(c->body_fp);
        c->body_fp = NULL;
    }
    if (c->timer) {
        loop_timer_cancel(c->timer);
        c->timer = NULL;
    }
}

/* ---- completion ---- */

static void http_finish_task(void *arg)
{
    struct http_call *c = arg;
    if (!c->cancelled && c->done) {
        c->done(&c->res, c->arg);
    }
    http_call_free(c);
}

static void http_record(struct http_call *c, enum http_err err)
{
    char labels[256];
    char status[16], attempts[16], ms[32];
    const char *outcome = http_err_code(err);
    snprintf(status, sizeof status, "%ld", c->status);
    snprintf(attempts, sizeof attempts, "%d", c->attempts);
    http_fmt(ms, sizeof ms, "%.0f", (loop_now_mono() - c->started) * 1000);
    if (c->kind == HTTP_KIND_API) {
        snprintf(labels, sizeof labels, "method=\"%s\",outcome=\"%s\"", c->name, outcome);
        metrics_counter_add("pmb_api_calls_total", "Web API calls by method and outcome", labels,
                            1);
        log_event(LOG_DEBUG, "api call done", "method", c->name, "outcome", outcome, "error",
                  c->res.code ? c->res.code : "", "status", status, "attempts", attempts, "ms", ms,
                  NULL);
    } else {
        char url[512];
        http_pure_redact_url(c->url, url, sizeof url);
        if (c->kind == HTTP_KIND_DOWNLOAD) {
            snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
            metrics_counter_add("pmb_downloads_total", "file downloads by outcome", labels, 1);
        }
        log_event(LOG_DEBUG, c->kind == HTTP_KIND_DOWNLOAD ? "download done" : "request done",
                  "method", c->name, "url", url, "outcome", outcome, "status", status, "attempts",
                  attempts, "ms", ms, NULL);
    }
}

/* Deliver the result (deferred). message may be NULL for success. */
void http_finish(struct http_call *c, enum http_err err, const char *code, const char *message)
{
    struct http_result *r = &c->res;
    http_attempt_release(c);
    if (c->kind == HTTP_KIND_DOWNLOAD && err != HTTP_OK) {
        http_download_discard_file(c);
    }
    memset(r, 0, sizeof *r);
    r->err = err;
    r->status = c->status;
    r->attempts = c->attempts;
    if (err != HTTP_OK) {
        snprintf(c->code, sizeof c->code, "%s", code ? code : http_err_code(err));
        snprintf(c->message, sizeof c->message, "%s", message ? message : http_err_code(err));
        r->code = c->code;
        r->message = c->message;
        if (c->needed[0]) {
            r->needed = c->needed;
        }
        if (c->provided[0]) {
            r->provided = c->provided;
        }
    }
    if (c->kind != HTTP_KIND_DOWNLOAD) {
        if (!c->resp) {
            c->resp = str_copy_n("", 0);
            c->resp_len = 0;
        }
        r->body = c->resp;
        r->body_len = c->resp_len;
        r->headers = c->hdrs;
        r->n_headers = c->n_hdrs;
    } else if (err == HTTP_OK) {
        r->path = c->dest;
        r->size = c->written;
        r->sha256_hex = c->sha_hex;
        metrics_counter_add("pmb_download_bytes_total", "bytes written by file downloads", NULL,
                            (double)c->written);
    }
    r->content_type = http_header_get(c, "content-type");
    if (err != HTTP_ERR_CANCELLED) {
        http_record(c, err);
    }
    http_set_state(c, HTTP_ST_FINISHING);
    loop_defer(&c->finish, http_finish_task, c);
    http_pump();
}

static void http_backoff_fired(void *arg)
{
    struct http_call *c = arg;
    c->timer = NULL;
    http_set_state(c, HTTP_ST_QUEUED);
    http_pump();
}

/* Retry after a 5xx, a timeout, a connection error or a bad answer, if the budgets allow.
 * 1 = a retry is scheduled; 0 = the caller finishes with the error. */
int http_maybe_retry(struct http_call *c, const char *reason)
{
    double now = loop_now_mono();
    double wait = ratelimit_backoff(c->retries + 1, RATELIMIT_BACKOFF_BASE, RATELIMIT_BACKOFF_CAP,
                                    http_random01());
    if (!http_up || !ratelimit_may_retry(c->retries, c->max_retries, c->started, now, wait,
                                         http_cfg.max_retry_time)) {
        return 0;
    }
    if (c->kind == HTTP_KIND_DOWNLOAD && now + wait - c->started >= http_cfg.download_timeout) {
        return 0;
    }
    /* the timer first: without one (out of memory) there is no retry, and the failure stands */
    struct loop_timer *timer = loop_timer_start(wait, http_backoff_fired, c);
    if (!timer) {
        return 0;
    }
    c->retries++;
    char attempt[16], wait_s[32];
    snprintf(attempt, sizeof attempt, "%d", c->attempts);
    http_fmt(wait_s, sizeof wait_s, "%.2f", wait);
    if (c->kind == HTTP_KIND_API) {
        char labels[160];
        snprintf(labels, sizeof labels, "method=\"%s\"", c->name);
        metrics_counter_add("pmb_api_retries_total", "Web API retries (5xx, timeouts, errors)",
                            labels, 1);
        log_event(LOG_WARN, "api call failed; retrying", "method", c->name, "reason", reason,
                  "attempt", attempt, "wait_s", wait_s, NULL);
    } else {
        char url[512];
        log_event(LOG_WARN, "request failed; retrying", "method", c->name, "url",
                  http_pure_redact_url(c->url, url, sizeof url), "reason", reason, "attempt",
                  attempt, "wait_s", wait_s, NULL);
    }
    http_attempt_release(c);
    http_set_state(c, HTTP_ST_BACKOFF);
    c->timer = timer;
    http_pump(); /* a slot is free */
    return 1;
}

/* curl's verdict -> our error. *retryable says whether another attempt could help. */
enum http_err http_curl_err(struct http_call *c, CURLcode rc, int *retryable, char *msg,
                            size_t size)
{
    const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    *retryable = 0;
    if (c->refused_addr[0] && rc != CURLE_OPERATION_TIMEDOUT) {
        char host[300];
        if (http_pure_hostport(c->url, host, sizeof host) < 0) {
            snprintf(host, sizeof host, "the host");
        }
        snprintf(msg, size,
                 "refused to connect to %s: it resolves to a %s address (%s); an internal host "
                 "must be allow-listed in the config (allow_private)",
                 host, c->refused_why ? c->refused_why : "private", c->refused_addr);
        return HTTP_ERR_ADDRESS_REFUSED;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        *retryable = 1;
        snprintf(msg, size, "timed out: %s", detail);
        return HTTP_ERR_TIMEOUT;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        snprintf(msg, size, "request could not be made: %s", detail);
        return HTTP_ERR_CONNECT;
    case CURLE_READ_ERROR:
        snprintf(msg, size, "could not read the request body file");
        return HTTP_ERR_IO;
    case CURLE_PARTIAL_FILE: {
        curl_off_t got = c->got_bytes, want = c->announced_bytes;
        if (want >= 0) {
            snprintf(msg, size,
                     "the server ended the answer early: %lld of the %lld bytes it announced",
                     (long long)got, (long long)want);
        } else {
            snprintf(msg, size, "the server ended the answer early: %s", detail);
        }
        return HTTP_ERR_TRUNCATED;
    }
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        *retryable = 1;
        snprintf(msg, size, "the connection broke: %s", detail);
        return HTTP_ERR_CONNECT;
    default:
        *retryable = 1;
        snprintf(msg, size, "connection failed: %s", detail);
        return HTTP_ERR_CONNECT;
    }
}

/* What a Web API call and a plain request do alike when there is no HTTP answer to read: a body
 * over the size limit finishes the call with too_large; a transport error is retried when curl
 * says another attempt could help, else finishes the call. Returns 1 when it took care of the
 * call (finished or retrying), 0 when the caller has an answer to look at. */
static int http_no_answer_done(struct http_call *c, CURLcode rc, const char *too_large)
{
    if (c->abort_reason == HTTP_ABORT_TOO_LARGE) {
        http_finish(c, HTTP_ERR_TOO_LARGE, NULL, too_large);
        return 1;
    }
    if (rc == CURLE_OK) {
        return 0;
    }
    char msg[512];
    int retryable;
    enum http_err err = http_curl_err(c, rc, &retryable, msg, sizeof msg);
    if (retryable && http_maybe_retry(c, http_err_code(err))) {
        return 1;
    }
    http_finish(c, err, NULL, msg);
    return 1;
}

static void http_api_done(struct http_call *c, CURLcode rc)
{
    char msg[512];
    if (http_no_answer_done(c, rc, "Web API answer larger than 64 MiB")) {
        return;
    }
    if (c->status == 429) {
        double wait = ratelimit_retry_after(http_header_get(c, "retry-after"), loop_now_wall());
        char labels[160], wait_s[32], n[16];
        c->n429++;
        snprintf(labels, sizeof labels, "method=\"%s\"", c->name);
        metrics_counter_add("pmb_api_429_total", "HTTP 429 answers by method", labels, 1);
        http_fmt(wait_s, sizeof wait_s, "%.1f", wait);
        snprintf(n, sizeof n, "%d", c->n429);
        ratelimit_gate_close(http_gates, c->name, loop_now_mono() + wait);
        if (c->n429 > RATELIMIT_MAX_429 || !http_up) {
            snprintf(msg, sizeof msg, "rate limited %d times by Slack; giving up", c->n429);
            http_finish(c, HTTP_ERR_RATELIMITED, "ratelimited", msg);
            return;
        }
        log_event(LOG_WARN, "rate limited; method paused", "method", c->name, "retry_after_s",
                  wait_s, "count", n, NULL);
        http_attempt_release(c);
        http_set_state(c, HTTP_ST_QUEUED); /* the gate holds it back */
        http_pump();
        return;
    }
    if (ratelimit_gate_open_at(http_gates, c->name, loop_now_mono()) == 0) {
        /* an answer that is not a 429, and no later 429 holds the gate: back to normal */
        ratelimit_gate_clear(http_gates, c->name);
    }
    if (c->status >= 500) {
        snprintf(msg, sizeof msg, "HTTP %ld from the Web API", c->status);
        if (http_maybe_retry(c, msg)) {
            return;
        }
        http_finish(c, HTTP_ERR_STATUS, NULL, msg);
        return;
    }
    struct json_doc *doc = json_parse(c->resp ? c->resp : "", c->resp_len);
    int ok;
    if (!doc || json_get_bool(doc, "ok", &ok) < 0) {
        json_free(doc);
        if (c->status < 200 || c->status > 299) {
            snprintf(msg, sizeof msg, "HTTP %ld from the Web API", c->status);
            http_finish(c, HTTP_ERR_STATUS, NULL, msg);
            return;
        }
        snprintf(msg, sizeof msg,
                 "the Web API answered HTTP %ld with something that is not a "
                 "Slack JSON object",
                 c->status);
        if (c->bad_responses < HTTP_MAX_BAD_RESPONSE_RETRIES) {
            c->bad_responses++;
            if (http_maybe_retry(c, "bad_response")) {
                return;
            }
        }
        http_finish(c, HTTP_ERR_BAD_RESPONSE, NULL, msg);
        return;
    }
    if (ok) {
        json_free(doc);
        if (c->status < 200 || c->status > 299) {
            snprintf(msg, sizeof msg, "HTTP %ld from the Web API", c->status);
            http_finish(c, HTTP_ERR_STATUS, NULL, msg);
            return;
        }
        http_finish(c, HTTP_OK, NULL, NULL);
        return;
    }
    char error[128] = "unknown_error";
    json_get_string(doc, "error", error, sizeof error);
    if (json_get_string(doc, "needed", c->needed, sizeof c->needed) < 0) {
        c->needed[0] = '\0';
    }
    if (json_get_string(doc, "provided", c->provided, sizeof c->provided) < 0) {
        c->provided[0] = '\0';
    }
    json_free(doc);
    if (c->needed[0]) {
        snprintf(msg, sizeof msg, "%s failed: %s (needed: %s, provided: %s)", c->name, error,
                 c->needed, c->provided);
    } else {
        snprintf(msg, sizeof msg, "%s failed: %s", c->name, error);
    }
    http_finish(c, HTTP_ERR_SLACK, error, msg);
}

static void http_plain_done(struct http_call *c, CURLcode rc)
{
    if (http_no_answer_done(c, rc, "response body larger than 64 MiB")) {
        return;
    }
    if (c->status >= 500) {
        char msg[512];
        snprintf(msg, sizeof msg, "HTTP %ld", c->status);
        if (http_maybe_retry(c, msg)) {
            return;
        }
    }
    http_finish(c, HTTP_OK, NULL, NULL); /* any status is an answer */
}

static void http_transfer_done(CURL *easy, CURLcode rc)
{
    struct http_call *c = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
    if (!c || c->easy != easy) {
        curl_easy_cleanup(easy);
        return;
    }
    curl_off_t got = 0, want = -1;
    curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
    curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &want);
    c->got_bytes = got;
    c->announced_bytes = want;
    curl_easy_cleanup(easy);
    c->easy = NULL;
    switch (c->kind) {
    case HTTP_KIND_API:
        http_api_done(c, rc);
        break;
    case HTTP_KIND_PLAIN:
        http_plain_done(c, rc);
        break;
    case HTTP_KIND_DOWNLOAD:
        http_download_done(c, rc);
        break;
    }
}

/* ---- curl callbacks: record only ---- */

/* ---- starting an attempt ---- */

/* ---- the queue ---- */

static void http_gate_timer_cb(uv_timer_t *t)
{
    (void)t;
    http_pump();
}

static int http_method_running(const char *method)
{
    for (struct http_call *c = http_head; c; c = c->next) {
        if (c->kind == HTTP_KIND_API && c->state == HTTP_ST_RUNNING &&
            strcmp(c->name, method) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Start every queued call that has a free slot and an open gate; wake up when the next gate
 * opens. Re-entrant calls (a start that fails at once finishes, which pumps) are folded. */
void http_pump(void)
{
    if (!http_up) {
        return;
    }
    if (http_pumping) {
        http_pump_again = 1;
        return;
    }
    http_pumping = 1;
    double next_gate;
    do {
        http_pump_again = 0;
        next_gate = 0;
        double now = loop_now_mono();
        for (struct http_call *c = http_head; c; c = c->next) {
            if (c->state != HTTP_ST_QUEUED) {
                continue;
            }
            if (c->kind == HTTP_KIND_DOWNLOAD) {
                if (http_running_dl < http_cfg.download_concurrency) {
                    http_start_attempt(c);
                }
                continue;
            }
            if (c->kind == HTTP_KIND_API) {
                double open_at = ratelimit_gate_open_at(http_gates, c->name, now);
                if (open_at > 0) {
                    if (next_gate == 0 || open_at < next_gate) {
                        next_gate = open_at;
                    }
                    continue;
                }
                if (ratelimit_gate_single(http_gates, c->name) && http_method_running(c->name)) {
                    continue; /* its answer reopens the method or closes the gate again */
                }
            }
            if (http_running_req < http_cfg.max_concurrent) {
                http_start_attempt(c);
            }
        }
    } while (http_pump_again);
    http_pumping = 0;
    if (http_gate_timer) {
        if (next_gate > 0) {
            double wait = next_gate - loop_now_mono();
            uint64_t ms = wait > 0 ? (uint64_t)(wait * 1000) + 1 : 0;
            uv_timer_start(http_gate_timer, http_gate_timer_cb, ms, 0);
        } else {
            uv_timer_stop(http_gate_timer);
        }
    }
}

/* ---- public API ---- */

int http_init(const struct http_settings *s)
{
    if (http_up) {
        return http_configure(s);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return -1;
    }
    if (http_config_build(s, &http_cfg) < 0) {
        curl_global_cleanup();
        return -1;
    }
    http_gates = ratelimit_gates_new();
    http_gate_timer = malloc(sizeof *http_gate_timer);
    if (!http_gates || !http_gate_timer || http_multi_init(http_transfer_done) < 0) {
        ratelimit_gates_free(http_gates);
        http_gates = NULL;
        free(http_gate_timer);
        http_gate_timer = NULL;
        http_config_free(&http_cfg);
        curl_global_cleanup();
        return -1;
    }
    uv_timer_init(loop_get(), http_gate_timer);
    http_gate_timer->data = http_gate_timer;
    http_up = 1;
    return 0;
}

int http_configure(const struct http_settings *s)
{
    struct http_config cfg;
    struct http_settings merged = *s; /* a reload's settings carry no secrets: keep ours */
    if (!merged.api_base) {
        merged.api_base = http_cfg.api_base;
    }
    if (!merged.bot_token) {
        merged.bot_token = http_cfg.bot_token;
    }
    if (!http_up || http_config_build(&merged, &cfg) < 0) {
        return -1;
    }
    http_config_free(&http_cfg);
    http_cfg = cfg;
    http_pump(); /* limits may have grown */
    return 0;
}

static void http_gate_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void http_shutdown(void)
{
    if (!http_up) {
        return;
    }
    http_up = 0;
    for (struct http_call *c = http_head; c; c = c->next) {
        if (c->state != HTTP_ST_FINISHING) {
            http_finish(c, HTTP_ERR_CANCELLED, NULL, "shutting down");
        }
    }
    http_multi_shutdown();
    uv_timer_stop(http_gate_timer);
    uv_close((uv_handle_t *)http_gate_timer, http_gate_timer_closed);
    http_gate_timer = NULL;
    ratelimit_gates_free(http_gates);
    http_gates = NULL;
    http_config_free(&http_cfg);
    curl_global_cleanup();
}

int http_in_flight(void)
{
    int n = 0;
    for (struct http_call *c = http_head; c; c = c->next) {
        if (c->state != HTTP_ST_FINISHING) {
            n++;
        }
    }
    return n;
}

struct http_call *http_api(const char *method, const char *token, const char *body, size_t body_len,
                           const char *content_type, http_done_fn done, void *arg)
{
    if (!http_up || !http_pure_valid_method(method)) {
        return NULL;
    }
    struct http_call *c = http_call_new(HTTP_KIND_API, done, arg);
    if (!c) {
        return NULL;
    }
    size_t n = strlen(http_cfg.api_base) + strlen(method) + 1;
    c->name = strdup(method);
    c->url = malloc(n);
    if (!token) {
        token = http_cfg.bot_token; /* NULL: the bot's own token */
    }
    c->token = token && *token ? strdup(token) : NULL; /* "" = no token */
    c->body = str_copy_n(body ? body : "", body ? body_len : 0);
    c->body_len = body ? body_len : 0;
    c->content_type =
        strdup(content_type && *content_type ? content_type : "application/x-www-form-urlencoded");
    if (!c->name || !c->url || (token && *token && !c->token) || !c->body || !c->content_type ||
        strchr(c->content_type, '\n') || strchr(c->content_type, '\r')) {
        http_call_free(c);
        return NULL;
    }
    snprintf(c->url, n, "%s%s", http_cfg.api_base, method);
    c->timeout = http_cfg.timeout;
    c->max_retries = http_cfg.max_retries;
    http_pump();
    return c;
}

static int http_header_ok(const char *s)
{
    return s && !strchr(s, '\r') && !strchr(s, '\n');
}

struct http_call *http_request(const struct http_plain_req *req, http_done_fn done, void *arg)
{
    if (!http_up || !req || !req->url || !http_pure_scheme_ok(req->url)) {
        return NULL;
    }
    const char *method = req->method && *req->method ? req->method : "GET";
    for (const char *p = method; *p; p++) {
        if (*p < 'A' || *p > 'Z') {
            return NULL;
        }
    }
    struct http_call *c = http_call_new(HTTP_KIND_PLAIN, done, arg);
    if (!c) {
        return NULL;
    }
    c->name = strdup(method);
    c->url = strdup(req->url);
    if (req->body) {
        c->body = str_copy_n(req->body, req->body_len);
        c->body_len = req->body_len;
    }
    c->body_file = str_copy(req->body_file);
    int bad = !c->name || !c->url || (req->body && !c->body) || (req->body_file && !c->body_file);
    for (size_t i = 0; !bad && i < req->n_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (!h->name || !*h->name || strchr(h->name, ':') || !http_header_ok(h->name) ||
            !http_header_ok(h->value) || http_add_header(&c->headers, h->name, h->value) < 0) {
            bad = 1;
        }
    }
    if (bad) {
        http_call_free(c);
        return NULL;
    }
    c->timeout = req->timeout > 0 ? req->timeout : http_cfg.timeout;
    c->max_retries = req->retries > 0 ? req->retries : 0;
    c->allow_private = req->allow_private != 0;
    http_pump();
    return c;
}

void http_cancel(struct http_call *c)
{
    if (!c) {
        return;
    }
    if (c->state == HTTP_ST_FINISHING) {
        c->cancelled = 1; /* the deferred task frees it */
        return;
    }
    http_attempt_release(c);
    if (c->kind == HTTP_KIND_DOWNLOAD) {
        http_download_discard_file(c);
    }
    http_set_state(c, HTTP_ST_FINISHING);
    http_call_free(c);
    http_pump();
}
