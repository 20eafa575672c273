/* http_attempt.c — one try of a request: builds the curl easy handle (URL, headers, body or body
 * file, timeouts, the token, the address check) and records the answer from curl's callbacks
 * (status line, lowercase headers, body into memory, a refused address). Record only: no
 * decision and no user code runs here.
 * Called by http.c (start) and http_download.c; calls http_multi.c to add the transfer. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "http/http_internal.h"
#include "http/http_multi.h"
#include "http/http_pure.h"

static size_t http_header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct http_call *c = ud;
    size_t len = size * nitems;
    long status = http_pure_status_line(buf, len);
    if (status >= 0) {
        /* a new answer (after 100 Continue, or each attempt): forget the last headers */
        http_headers_clear(c);
        c->status = status;
        return len;
    }
    if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        if (c->kind == HTTP_KIND_DOWNLOAD && c->status >= 200 && http_download_headers_end(c) < 0) {
            return 0;
        }
        return len;
    }
    if (c->n_hdrs >= HTTP_MAX_HEADERS) {
        return len;
    }
    char *name, *value;
    if (http_pure_header_line(buf, len, &name, &value) < 0) {
        return len; /* folded or odd line: ignore */
    }
    struct http_header *v = realloc(c->hdrs, (c->n_hdrs + 1) * sizeof *v);
    if (!v) {
        free(name);
        free(value);
        return 0;
    }
    c->hdrs = v;
    c->hdrs[c->n_hdrs].name = name;
    c->hdrs[c->n_hdrs].value = value;
    c->n_hdrs++;
    return len;
}

static size_t http_body_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct http_call *c = ud;
    size_t len = size * nitems;
    if ((long long)(c->resp_len + len) > HTTP_MAX_BODY) {
        c->abort_reason = HTTP_ABORT_TOO_LARGE;
        return 0;
    }
    if (c->resp_len + len + 1 > c->resp_cap) {
        size_t cap = c->resp_cap ? c->resp_cap : 4096;
        while (cap < c->resp_len + len + 1) {
            cap *= 2;
        }
        char *p = realloc(c->resp, cap);
        if (!p) {
            return 0;
        }
        c->resp = p;
        c->resp_cap = cap;
    }
    memcpy(c->resp + c->resp_len, buf, len);
    c->resp_len += len;
    c->resp[c->resp_len] = '\0';
    return len;
}

#define HTTP_UPLOAD_BUFFER (1L << 20)

static size_t http_read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct http_call *c = ud;
    size_t n = fread(buf, 1, size * nitems, c->body_fp);
    if (n == 0 && ferror(c->body_fp)) {
        return CURL_READFUNC_ABORT;
    }
    return n;
}

int http_add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[8192];
    /* curl's idioms: "Name;" sends the header empty, "Name:" removes one curl adds itself (an
     * empty Expect is answered 417 by strict servers) */
    int n = !value   ? snprintf(line, sizeof line, "%s:", name)
            : *value ? snprintf(line, sizeof line, "%s: %s", name, value)
                     : snprintf(line, sizeof line, "%s;", name);
    if (n < 0 || (size_t)n >= sizeof line) {
        return -1;
    }
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l) {
        return -1;
    }
    *list = l;
    return 0;
}

/* curl's open-socket hook: the one place that sees the address a connection is really made to
 * (after DNS, on every hop and every happy-eyeballs attempt), so a second DNS answer cannot swap
 * a checked address for another. A refused address is recorded; curl then reports
 * CURLE_COULDNT_CONNECT (or tries the host's next address). */
static curl_socket_t http_open_socket_cb(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct http_call *c = ud;
    if (purpose == CURLSOCKTYPE_IPCXN && c->check_addr) {
        const char *why = http_pure_addr_refused(&a->addr);
        if (why) {
            http_pure_addr_text(&a->addr, c->refused_addr, sizeof c->refused_addr);
            c->refused_why = why;
            return CURL_SOCKET_BAD;
        }
    }
    curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd != CURL_SOCKET_BAD && http_multi_sock_reserve() < 0) {
        close(fd); /* out of memory: this connection fails cleanly (and is retried) */
        return CURL_SOCKET_BAD;
    }
    return fd;
}

/* Every socket opened above is closed here: its spare watch record goes with it. */
static int http_close_socket_cb(void *ud, curl_socket_t fd)
{
    (void)ud;
    http_multi_sock_release();
    return close(fd);
}

static int http_plain_has_header(const struct http_call *c, const char *name)
{
    size_t n = strlen(name);
    for (const struct curl_slist *l = c->headers; l; l = l->next) {
        if (strncasecmp(l->data, name, n) == 0 && (l->data[n] == ':' || l->data[n] == ';')) {
            return 1;
        }
    }
    return 0;
}

static int http_setup_plain(struct http_call *c, CURL *e)
{
    struct curl_slist *h = NULL;
    for (const struct curl_slist *l = c->headers; l; l = l->next) {
        struct curl_slist *n = curl_slist_append(h, l->data);
        if (!n) {
            curl_slist_free_all(h);
            return -1;
        }
        h = n;
    }
    c->attempt_headers = h;
    int is_post = strcmp(c->name, "POST") == 0;
    if (c->body_file) {
        struct stat st;
        c->body_fp = fopen(c->body_file, "rb");
        if (!c->body_fp || fstat(fileno(c->body_fp), &st) < 0) {
            return -2;
        }
        curl_easy_setopt(e, CURLOPT_READFUNCTION, http_read_cb);
        curl_easy_setopt(e, CURLOPT_READDATA, c);
        /* a report's upload (megabytes) in 1 MiB reads rather than curl's 64 KiB: the socket is
         * served between the scripts' time slices, so each turn of the loop moves 16 times more */
        curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, HTTP_UPLOAD_BUFFER);
        if (is_post) {
            curl_easy_setopt(e, CURLOPT_POST, 1L);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
        } else {
            curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->name);
        }
        if (!http_plain_has_header(c, "content-type") &&
            http_add_header(&c->attempt_headers, "Content-Type", "application/octet-stream") < 0) {
            return -1;
        }
        if (http_add_header(&c->attempt_headers, "Expect", NULL) < 0) {
            return -1;
        }
    } else if (c->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        if (!is_post) {
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->name);
        }
        if (http_add_header(&c->attempt_headers, "Expect", NULL) < 0) {
            return -1;
        }
    } else if (strcmp(c->name, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(c->name, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (is_post) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->name);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_body_cb);
    return 0;
}

static int http_setup_api(struct http_call *c, CURL *e)
{
    char auth[1024];
    if (c->token) {
        if (snprintf(auth, sizeof auth, "Bearer %s", c->token) >= (int)sizeof auth ||
            http_add_header(&c->attempt_headers, "Authorization", auth) < 0) {
            return -1;
        }
        memset(auth, 0, sizeof auth);
    }
    if (http_add_header(&c->attempt_headers, "Content-Type", c->content_type) < 0 ||
        http_add_header(&c->attempt_headers, "Expect", NULL) < 0) {
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_body_cb);
    return 0;
}

/* Build and add the easy handle for the next attempt. On failure the call is finished. */
void http_start_attempt(struct http_call *c)
{
    CURL *e = curl_easy_init();
    int rc;
    double timeout = c->timeout;
    char msg[300];

    if (c->kind == HTTP_KIND_DOWNLOAD) {
        timeout = c->started + http_cfg.download_timeout - loop_now_mono();
        if (timeout <= 0.001) {
            if (e) {
                curl_easy_cleanup(e);
            }
            http_set_state(c, HTTP_ST_RUNNING);
            http_finish(c, HTTP_ERR_TIMEOUT, NULL, "download took longer than its timeout");
            return;
        }
    }
    http_set_state(c, HTTP_ST_RUNNING);
    if (!e) {
        http_finish(c, HTTP_ERR_IO, NULL, "out of memory");
        return;
    }
    c->easy = e;
    c->attempts++;
    c->status = 0;
    c->abort_reason = HTTP_ABORT_NONE;
    c->errbuf[0] = '\0';
    c->resp_len = 0;
    if (c->resp) {
        c->resp[0] = '\0';
    }
    http_headers_clear(c);
    c->refused_addr[0] = '\0';
    c->refused_why = NULL;
    /* Web API calls go to api_base only; so may the upload URL and Slack's own file hosts */
    int exempt = c->kind == HTTP_KIND_API || http_is_api_host(c->url);
    c->check_addr = !exempt && !c->allow_private;

    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, http_open_socket_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, http_close_socket_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, NULL);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "postmortembot/" PMB_VERSION);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(http_cfg.connect_timeout * 1000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));

    switch (c->kind) {
    case HTTP_KIND_API:
        rc = http_setup_api(c, e);
        break;
    case HTTP_KIND_PLAIN:
        rc = http_setup_plain(c, e);
        break;
    default:
        rc = http_setup_download(c, e);
        break;
    }
    if (rc == -2) {
        snprintf(msg, sizeof msg, "could not open %s: %s",
                 c->kind == HTTP_KIND_DOWNLOAD ? "the download file" : "the body file",
                 strerror(errno));
        http_finish(c, HTTP_ERR_IO, NULL, msg);
        return;
    }
    if (rc < 0) {
        http_finish(c, HTTP_ERR_IO, NULL, "could not prepare the request");
        return;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->attempt_headers);
    /* a transfer that skips the check only because it is allow-listed keeps its connections apart
     * (http_multi.h); the api_base host's are everybody's (no request to it is checked) */
    if (http_multi_add(e, !exempt && c->allow_private) < 0) {
        http_finish(c, HTTP_ERR_IO, NULL, "curl refused the request");
    }
}
