/* http_internal.h — what http.c, http_attempt.c and http_download.c share: the call record,
 * the live settings and the steps of a request's life. Not for other modules (they use http.h).
 * Owned by the http.c family; every function here runs on the loop thread. */
#ifndef PMB_HTTP_INTERNAL_H
#define PMB_HTTP_INTERNAL_H

#include <curl/curl.h>
#include <openssl/evp.h>

#include "base/loop.h"
#include "http/http.h"

#define HTTP_MAX_BODY (64LL * 1024 * 1024) /* Web API / plain response bodies held in memory */
#define HTTP_MAX_HEADERS 200
#define HTTP_MAX_HOPS 5
#define HTTP_MAX_BAD_RESPONSE_RETRIES 2 /* HTML error pages under load: retried, but not long */
#define HTTP_LOGIN_MESSAGE                                                                         \
    "login page instead of the file: the token lacks files:read or the URL is not a Slack "        \
    "file URL"

enum http_kind { HTTP_KIND_API, HTTP_KIND_PLAIN, HTTP_KIND_DOWNLOAD };
enum http_state { HTTP_ST_QUEUED, HTTP_ST_RUNNING, HTTP_ST_BACKOFF, HTTP_ST_FINISHING };
enum http_abort { HTTP_ABORT_NONE, HTTP_ABORT_TOO_LARGE, HTTP_ABORT_LOGIN, HTTP_ABORT_IO };

struct http_call {
    enum http_kind kind;
    enum http_state state;
    struct http_call *prev, *next; /* every live call, oldest first: the queue order */
    int cancelled;                 /* http_cancel() ran: free without calling done */
    struct loop_deferred finish;   /* http_finish_task, queued once the call has its result */
    http_done_fn done;
    void *arg;

    char *name;  /* Web API method, plain HTTP method, or "download" */
    char *url;   /* download: the current hop */
    char *token; /* NULL: no Authorization */
    char *body;
    size_t body_len;
    char *content_type;         /* Web API request body type */
    char *body_file;            /* plain: streamed request body */
    struct curl_slist *headers; /* plain: the caller's request headers, as "Name: value" */
    double timeout;
    int max_retries;
    int allow_private;     /* the caller allow-listed private addresses */
    int check_addr;        /* this attempt: refuse private addresses (set per hop) */
    char refused_addr[64]; /* the address the open-socket callback refused, "" if none */
    const char *refused_why;
    curl_off_t got_bytes, announced_bytes; /* the last transfer's body: received / announced */

    CURL *easy;
    struct curl_slist *attempt_headers;
    FILE *body_fp;
    char errbuf[CURL_ERROR_SIZE];
    struct loop_timer *timer;

    double started; /* monotonic, at creation */
    int attempts, retries, n429, bad_responses;

    /* the current attempt's answer */
    long status;
    struct http_header *hdrs;
    size_t n_hdrs;
    char *resp;
    size_t resp_len, resp_cap;
    enum http_abort abort_reason;
    int abort_errno; /* HTTP_ABORT_IO: errno of the failed write */

    /* downloads */
    char *dest;
    char *tmp;
    int fd;
    long long max_bytes;
    long long written;
    int hops;
    int discard; /* redirect or error answer: its body is not the file */
    int sniffed;
    EVP_MD_CTX *sha;
    char sha_hex[65];

    struct http_result res;
    char code[128], needed[128], provided[128], message[512];
};

struct http_config {
    char *api_base;
    char *bot_token; /* SLACK_BOT_TOKEN, read once by main.c; wiped when freed */
    double timeout, connect_timeout, max_retry_time, download_timeout;
    int max_concurrent, max_retries, download_concurrency;
    long long download_max_bytes;
    char **allowed; /* the configured patterns plus the api_base host[:port] */
    size_t n_allowed;
};

extern int http_up; /* between http_init and http_shutdown */
extern struct http_config http_cfg;

/* http.c: helpers (returned strings are malloc'd; the caller frees) */
const char *http_header_get(const struct http_call *c, const char *name);
void http_headers_clear(struct http_call *c);
int http_token_allowed(const char *url);
/* 1 when url names the api_base's host:port (Slack itself, or the test's fake): never refused */
int http_is_api_host(const char *url);
/* http.c: the call list, completion and retries. http_finish releases the attempt, fills the
 * result and defers the done callback; http_maybe_retry returns 1 when a retry is scheduled. */
void http_set_state(struct http_call *c, enum http_state st);
struct http_call *http_call_new(enum http_kind kind, http_done_fn done, void *arg);
void http_call_free(struct http_call *c);
void http_attempt_release(struct http_call *c);
void http_finish(struct http_call *c, enum http_err err, const char *code, const char *message);
int http_maybe_retry(struct http_call *c, const char *reason);
enum http_err http_curl_err(struct http_call *c, CURLcode rc, int *retryable, char *msg,
                            size_t size);
void http_pump(void);
/* http_download.c */
void http_download_discard_file(struct http_call *c);
void http_download_done(struct http_call *c, CURLcode rc);
int http_download_headers_end(struct http_call *c);
size_t http_file_cb(char *buf, size_t size, size_t nitems, void *ud);
int http_setup_download(struct http_call *c, CURL *e);
/* http_attempt.c: start the next try (finishes the call itself when it cannot) */
void http_start_attempt(struct http_call *c);
/* Append "Name: value" ("Name;" for an empty value, "Name:" for NULL: curl then removes the
 * header it would add itself). 0 or -1. */
int http_add_header(struct curl_slist **list, const char *name, const char *value);

#endif
