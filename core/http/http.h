/* http.h — every HTTP request of the process, on libcurl's multi socket API driven by the loop.
 * Three kinds: Web API calls (rate gate per method on 429, retries with backoff on 5xx/timeouts/
 * connection errors, ok:false turned into an error), file downloads (streamed to a temp file and
 * renamed, size cap, SHA-256, redirects followed by hand, token only to allow-listed hosts) and
 * plain requests (webhooks, the upload URL). Downloads and plain requests never connect to a
 * loopback, private, link-local, multicast or unspecified address (checked on the address curl is
 * about to connect to, every hop) unless the call allows it or the host is the api_base's. Callers:
 * primitives_io.c (Lua primitives), socketmode.c, main.c.
 */
#ifndef PMB_HTTP_H
#define PMB_HTTP_H

#include <stddef.h>

struct http_settings {
    /* Every value is used as given: the config schema (scripts/lib/config_schema.lua) owns the
     * defaults and ranges, config.c hands them over resolved; http_init/http_configure refuse a
     * value out of range (logged with its name) instead of substituting one. */
    const char *bot_token;  /* the token of http_api/http_download calls given NULL; NULL on reload
                               keeps the one in use */
    const char *api_base;   /* e.g. "https://slack.com/api/" (required at init); a missing final
                               '/' is added; NULL on reload keeps the one in use */
    double timeout;         /* seconds for one Web API / plain attempt, > 0 */
    double connect_timeout; /* > 0 */
    int max_concurrent;     /* Web API + plain requests in flight, >= 1 */
    int max_retries;        /* 5xx / timeout / connection error retries; 0 = none */
    double max_retry_time;  /* give up retrying after this many seconds, >= 0 */
    long long download_max_bytes;     /* >= 1 */
    int download_concurrency;         /* >= 1 */
    double download_timeout;          /* seconds for a whole download, > 0 */
    const char *const *allowed_hosts; /* host patterns that may get the token: "slack.com",
                                         "*.slack.com"; the api_base host:port is always allowed */
    size_t allowed_hosts_n;
};

enum http_err {
    HTTP_OK = 0,
    HTTP_ERR_SLACK,  /* ok:false; code = Slack's error */
    HTTP_ERR_STATUS, /* unexpected HTTP status (after retries for 5xx) */
    HTTP_ERR_TIMEOUT,
    HTTP_ERR_CONNECT,            /* refused, reset, DNS, TLS */
    HTTP_ERR_RATELIMITED,        /* 429s beyond the retry budget */
    HTTP_ERR_BAD_RESPONSE,       /* a Web API answer that is not a JSON object (e.g. HTML) */
    HTTP_ERR_TOO_LARGE,          /* download over the cap */
    HTTP_ERR_LOGIN_PAGE,         /* 200 text/html where a file was expected */
    HTTP_ERR_REDIRECT_REFUSED,   /* a Location that is not http(s) */
    HTTP_ERR_TOO_MANY_REDIRECTS, /* more than HTTP_MAX_HOPS, or a loop */
    HTTP_ERR_ADDRESS_REFUSED,    /* the host resolved to a loopback/private/... address */
    HTTP_ERR_TRUNCATED,          /* the connection ended before the announced body did */
    HTTP_ERR_IO,                 /* local file error */
    HTTP_ERR_CANCELLED,          /* http_shutdown() while in flight */
};

/* Short stable code for an error: "timeout", "login_page", "http_status", ... */
const char *http_err_code(enum http_err err);

struct http_header {
    const char *name; /* response headers: lowercase */
    const char *value;
};

/* Everything here is owned by http.c and valid only during the done callback. */
struct http_result {
    enum http_err err;
    long status;      /* last HTTP status, 0 if none */
    const char *body; /* response body, NUL-terminated (not for downloads) */
    size_t body_len;
    const char *code;                  /* NULL on success; Slack's error or http_err_code(err) */
    const char *message;               /* human readable, never holds a token; NULL on success */
    const char *needed, *provided;     /* missing_scope details, else NULL */
    const struct http_header *headers; /* plain requests */
    size_t n_headers;
    const char *path;         /* downloads: final path */
    long long size;           /* downloads: bytes written */
    const char *sha256_hex;   /* downloads */
    const char *content_type; /* downloads and plain requests, may be NULL */
    int attempts;             /* tries made (1 = no retry) */
};

/* Called exactly once per request (unless cancelled), from a loop_defer'd task: never inside a
 * curl callback, so it may start new requests and resume Lua. */
typedef void (*http_done_fn)(const struct http_result *res, void *arg);

struct http_call; /* handle, owned by http.c; invalid after done ran or after http_cancel */

int http_init(const struct http_settings *s);      /* 0 or -1; copies what it keeps */
int http_configure(const struct http_settings *s); /* on reload: applies to new requests */
/* Cancel everything in flight; their done callbacks run with HTTP_ERR_CANCELLED. */
void http_shutdown(void);
int http_in_flight(void);

/* A Web API call: POST api_base+method with "Authorization: Bearer token" (token NULL: the bot
 * token of the settings; "": none). body may be NULL
 * (empty form); content_type "application/x-www-form-urlencoded" or
 * "application/json; charset=utf-8". On 429 the *method* is gated for Retry-After seconds: this
 * call and every queued call to that method wait; other methods flow. */
struct http_call *http_api(const char *method, const char *token, const char *body, size_t body_len,
                           const char *content_type, http_done_fn done, void *arg);

struct http_plain_req {
    const char *method; /* "GET", "POST", ... */
    const char *url;
    const struct http_header *headers; /* request headers, copied */
    size_t n_headers;
    const char *body; /* or NULL */
    size_t body_len;
    const char *body_file; /* stream the body from this file instead (uploads) */
    double timeout;        /* 0 = settings.timeout */
    int retries;           /* retries on 5xx / connection errors, default 0 */
    int allow_private;     /* 1: may reach loopback/private/link-local addresses (an internal
                              relay the config allow-lists) */
};
/* A plain request: no token added. Any HTTP status is a success (err HTTP_OK, check status). */
struct http_call *http_request(const struct http_plain_req *req, http_done_fn done, void *arg);

/* Download url to dest_path (temp file beside it, renamed on success, removed on failure).
 * The bearer token (NULL: the bot token of the settings) is sent only while the current URL's
 * host matches the allow-list; redirects
 * (at most 5) are followed here, not by curl. max_bytes 0 = the configured cap. allow_private
 * 1 lets every hop reach loopback/private addresses (config downloads.allow_private). */
struct http_call *http_download(const char *url, const char *token, const char *dest_path,
                                long long max_bytes, int allow_private, http_done_fn done,
                                void *arg);

/* The done callback will not run; resources are released. Safe with NULL. */
void http_cancel(struct http_call *call);

/* application/x-www-form-urlencoded escaping (the WHATWG URL Standard's serializer: letters,
 * digits and "*-._" stay, space becomes '+', every other byte %XX). The one rule for every form
 * the bot sends (http.c, host.c, host.api's params). */
/* One byte into out (1 or 3 characters, no NUL); returns how many. */
size_t http_form_escape_byte(unsigned char c, char out[3]);
/* The whole of s; returns malloc'd text (caller frees), NULL when out of memory. */
char *http_form_escape(const char *s, size_t len);

#endif
