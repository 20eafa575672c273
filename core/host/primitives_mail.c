/* primitives_mail.c — host.smtp (docs/lua-api.md): one e-mail handed to an SMTP server by libcurl
 * (STARTTLS or smtps://, AUTH with a user name and password read from environment variables the
 * call names), on libuv's thread pool so the script loop never waits on the server. The message
 * itself is built by the script (scripts/lib/mail_message.lua). Registered by primitives_io.c
 * (prim_open); calls libcurl, loop.c, log.c and host_task.c (resume). */
#include <curl/curl.h>
#include <lauxlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/strcopy.h"
#include "host/host_gen.h"

#define MAIL_MAX_RCPT 100
#define MAIL_MAX_BODY (10 * 1024 * 1024)
#define MAIL_DEFAULT_TIMEOUT 30.0
#define MAIL_MAX_TIMEOUT 600.0
#define MAIL_CONNECT_TIMEOUT 10.0

/* One message being sent. Owned by the task while it waits (t->op); the after-work callback
 * hands it to the continuation, or frees it when the task was cancelled (task == NULL). */
struct mail_job {
    struct prim_op op; /* first: the host's view of this pending primitive */
    uv_work_t work;
    atomic_int cancelled; /* set on the loop, read by curl's progress callback on the pool */
    char *url, *from, *body, *username, *password;
    size_t body_len, sent;
    struct curl_slist *rcpt;
    long use_ssl; /* CURLUSESSL_ALL, _TRY or _NONE */
    double timeout;
    /* results, written on the pool, read on the loop after the work ended */
    CURLcode rc;
    long response; /* the server's last reply code, e.g. 250 or 550 */
    char errbuf[CURL_ERROR_SIZE];
};

static void mail_wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void mail_job_free(struct mail_job *job)
{
    free(job->url);
    free(job->from);
    free(job->body);
    mail_wipe_free(job->username);
    mail_wipe_free(job->password);
    curl_slist_free_all(job->rcpt);
    free(job);
}

/* ---- on the thread pool ---- */

static size_t mail_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct mail_job *job = arg;
    size_t room = size * nitems;
    size_t left = job->body_len - job->sent;
    size_t n = left < room ? left : room;
    memcpy(buf, job->body + job->sent, n);
    job->sent += n;
    return n;
}

static int mail_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    struct mail_job *job = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&job->cancelled) ? 1 : 0; /* non-zero aborts the transfer */
}

static void mail_work(uv_work_t *w)
{
    struct mail_job *job = w->data;
    CURL *easy = curl_easy_init();
    if (!easy) {
        job->rc = CURLE_OUT_OF_MEMORY;
        return;
    }
    const char *ca = getenv("CURL_CA_BUNDLE");
    if (!ca || !*ca) {
        ca = getenv("SSL_CERT_FILE");
    }
    curl_easy_setopt(easy, CURLOPT_URL, job->url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_USE_SSL, job->use_ssl);
    curl_easy_setopt(easy, CURLOPT_MAIL_FROM, job->from);
    curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, job->rcpt);
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)job->body_len);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, mail_read);
    curl_easy_setopt(easy, CURLOPT_READDATA, job);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, mail_progress);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, job);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, job->errbuf);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(job->timeout * 1000.0));
    curl_easy_setopt(
        easy, CURLOPT_CONNECTTIMEOUT_MS,
        (long)((job->timeout < MAIL_CONNECT_TIMEOUT ? job->timeout : MAIL_CONNECT_TIMEOUT) *
               1000.0));
    if (ca && *ca) {
        curl_easy_setopt(easy, CURLOPT_CAINFO, ca);
    }
    if (job->username) {
        curl_easy_setopt(easy, CURLOPT_USERNAME, job->username);
    }
    if (job->password) {
        curl_easy_setopt(easy, CURLOPT_PASSWORD, job->password);
    }
    job->rc = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &job->response);
    curl_easy_cleanup(easy);
}

/* ---- back on the loop ---- */

static void mail_after(uv_work_t *w, int status)
{
    struct mail_job *job = w->data;
    if (status < 0) {
        job->rc = CURLE_ABORTED_BY_CALLBACK;
    }
    if (job->op.task) {
        host_task_resume(job->op.task, 0); /* the continuation pushes and frees job */
    } else {
        mail_job_free(job);
    }
}

static void mail_cancel(struct prim_op *base)
{
    struct mail_job *job = (struct mail_job *)base;
    job->op.task = NULL; /* a running work item cannot be stopped: curl aborts, mail_after frees */
    atomic_store(&job->cancelled, 1);
}

static void mail_free(struct prim_op *base)
{
    mail_job_free((struct mail_job *)base);
}

/* The error code scripts see for a failed transfer. */
static const char *mail_err_code(const struct mail_job *job)
{
    if (job->response >= 400) {
        return "smtp"; /* the server refused: 4xx may pass, 5xx will not */
    }
    switch (job->rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return "connect";
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return "tls";
    case CURLE_LOGIN_DENIED:
        return "auth";
    case CURLE_ABORTED_BY_CALLBACK:
        return "cancelled";
    default:
        return "smtp";
    }
}

static int mail_push(lua_State *L, struct prim_op *base)
{
    struct mail_job *job = (struct mail_job *)base;
    char msg[CURL_ERROR_SIZE + 128];
    if (job->rc == CURLE_OK) {
        lua_createtable(L, 0, 1); /* stack: result */
        lua_pushinteger(L, job->response);
        lua_setfield(L, -2, "status");
        return 1;
    }
    if (job->rc == CURLE_USE_SSL_FAILED) {
        snprintf(msg, sizeof msg, "the server does not offer STARTTLS (starttls = \"required\")");
    } else {
        snprintf(msg, sizeof msg, "%s", job->errbuf[0] ? job->errbuf : curl_easy_strerror(job->rc));
    }
    lua_pushnil(L);
    prim_push_err(L, mail_err_code(job), msg, job->response, NULL, NULL); /* stack: nil err */
    return 2;
}

/* ---- arguments ---- */

/* A string field that holds no CR, LF or NUL (they would reach the SMTP commands), or raise. */
static const char *mail_field(lua_State *L, int idx, const char *what, int required)
{
    size_t len;
    if (lua_isnil(L, idx) && !required) {
        return NULL;
    }
    const char *s = lua_tolstring(L, idx, &len);
    if (!s || len == 0 || strlen(s) != len || strpbrk(s, "\r\n")) {
        luaL_error(L, "host.smtp: %s must be a non-empty string on one line", what);
    }
    return s;
}

/* The environment variable named by field `what` (NULL when the field is absent); raises on a
 * bad name or a Slack token's name. */
static const char *mail_env_name(lua_State *L, int idx, const char *what)
{
    const char *name = mail_field(L, idx, what, 0);
    if (!name) {
        return NULL;
    }
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_')) {
            luaL_error(L, "host.smtp: %s must name an environment variable", what);
        }
    }
    if (strcmp(name, "SLACK_BOT_TOKEN") == 0 || strcmp(name, "SLACK_APP_TOKEN") == 0) {
        luaL_error(L, "host.smtp: %s may not name the Slack tokens", what);
    }
    return name;
}

/* How many addresses the array at idx (may be nil) holds; raises on a bad entry. */
static int mail_check_rcpt(lua_State *L, int idx, const char *what)
{
    if (lua_isnil(L, idx)) {
        return 0;
    }
    luaL_argcheck(L, lua_istable(L, idx), 1, "to and cc must be arrays of addresses");
    int n = (int)luaL_len(L, idx);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        mail_field(L, -1, what, 1);
        lua_pop(L, 1);
    }
    return n;
}

/* Append the (checked) addresses of the array at idx to *list; -1 when out of memory. */
static int mail_add_rcpt(lua_State *L, int idx, struct curl_slist **list)
{
    if (lua_isnil(L, idx)) {
        return 0;
    }
    int n = (int)luaL_len(L, idx);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        struct curl_slist *next = curl_slist_append(*list, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (!next) {
            return -1;
        }
        *list = next;
    }
    return 0;
}

static char *mail_getenv_dup(const char *name)
{
    const char *value = name ? getenv(name) : NULL;
    return str_copy(value);
}

/* ---- host.smtp ---- */

int prim_smtp(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "url");          /* 2 */
    lua_getfield(L, 1, "from");         /* 3 */
    lua_getfield(L, 1, "to");           /* 4 */
    lua_getfield(L, 1, "cc");           /* 5 */
    lua_getfield(L, 1, "body");         /* 6 */
    lua_getfield(L, 1, "username_env"); /* 7 */
    lua_getfield(L, 1, "password_env"); /* 8 */
    lua_getfield(L, 1, "starttls");     /* 9 */
    lua_getfield(L, 1, "timeout");      /* 10 */
    const char *url = mail_field(L, 2, "url", 1);
    const char *from = mail_field(L, 3, "from", 1);
    size_t body_len;
    const char *body = luaL_checklstring(L, 6, &body_len);
    const char *starttls = luaL_optstring(L, 9, "required");
    double timeout = luaL_optnumber(L, 10, MAIL_DEFAULT_TIMEOUT);
    luaL_argcheck(L, strncmp(url, "smtp://", 7) == 0 || strncmp(url, "smtps://", 8) == 0, 1,
                  "url must start with smtp:// or smtps://");
    /* credentials come from the environment, never from a URL that might be logged */
    const char *auth = strstr(url, "://") + 3;
    const char *at = strchr(auth, '@');
    luaL_argcheck(L, !at || at > auth + strcspn(auth, "/?#"), 1,
                  "url must not hold a user or password (use username_env / password_env)");
    luaL_argcheck(L, body_len > 0 && body_len <= MAIL_MAX_BODY, 1, "body of 1 byte to 10 MiB");
    luaL_argcheck(L, timeout > 0 && timeout <= MAIL_MAX_TIMEOUT, 1, "timeout in (0, 600] seconds");
    long use_ssl;
    if (strcmp(starttls, "required") == 0) {
        use_ssl = CURLUSESSL_ALL;
    } else if (strcmp(starttls, "try") == 0) {
        use_ssl = CURLUSESSL_TRY;
    } else if (strcmp(starttls, "off") == 0) {
        use_ssl = CURLUSESSL_NONE;
    } else {
        return luaL_argerror(L, 1, "starttls must be \"required\", \"try\" or \"off\"");
    }
    struct host_task *t = prim_need_task(L, "smtp");

    int count = mail_check_rcpt(L, 4, "every `to` address");
    count += mail_check_rcpt(L, 5, "every `cc` address");
    luaL_argcheck(L, count > 0 && count <= MAIL_MAX_RCPT, 1, "1 to 100 recipients (to, cc)");
    const char *user_env = mail_env_name(L, 7, "username_env");
    const char *pass_env = mail_env_name(L, 8, "password_env");

    /* nothing below raises before the job is freed */
    struct mail_job *job =
        (struct mail_job *)prim_op_new(sizeof *job, mail_cancel, mail_push, mail_free);
    if (!job) {
        return luaL_error(L, "out of memory");
    }
    job->url = strdup(url);
    job->from = strdup(from);
    job->body = malloc(body_len);
    job->username = mail_getenv_dup(user_env);
    job->password = mail_getenv_dup(pass_env);
    if (!job->url || !job->from || !job->body || mail_add_rcpt(L, 4, &job->rcpt) < 0 ||
        mail_add_rcpt(L, 5, &job->rcpt) < 0) {
        mail_job_free(job);
        return luaL_error(L, "out of memory");
    }
    const char *unset = (user_env && !job->username)   ? user_env
                        : (pass_env && !job->password) ? pass_env
                                                       : NULL;
    if (unset) {
        char msg[160];
        snprintf(msg, sizeof msg, "environment variable %.100s is not set", unset);
        mail_job_free(job);
        return prim_fail(L, "env", msg);
    }
    memcpy(job->body, body, body_len);
    job->body_len = body_len;
    job->use_ssl = use_ssl;
    job->timeout = timeout;
    atomic_init(&job->cancelled, 0);
    job->work.data = job;
    if (uv_queue_work(loop_get(), &job->work, mail_work, mail_after) < 0) {
        mail_job_free(job);
        return prim_fail(L, "io", "could not start sending the mail");
    }
    log_event(LOG_DEBUG, "smtp send started", NULL);
    return prim_yield(L, t, &job->op, "smtp");
}
