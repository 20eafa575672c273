/* http_download.c — file downloads for http.c: the temp file beside the target (renamed on
 * success, unlinked on failure), the size cap, SHA-256 of what was written, login-page
 * detection, and redirects followed by hand with the token only for allow-listed hosts.
 * Called by http.c (verdicts, public http_download) and http_attempt.c (setup, headers). */
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

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "http/http_internal.h"
#include "http/http_multi.h"
#include "http/http_pure.h"

#define HTTP_DOWNLOAD_BUFFER (256L * 1024)

void http_download_discard_file(struct http_call *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->tmp) {
        unlink(c->tmp);
        free(c->tmp);
        c->tmp = NULL;
    }
}

/* Empty the temp file for another try (retry or next redirect hop). 0 or -1. */
static int http_download_reset(struct http_call *c)
{
    c->written = 0;
    c->sniffed = 0;
    if (c->fd >= 0 && (ftruncate(c->fd, 0) < 0 || lseek(c->fd, 0, SEEK_SET) < 0)) {
        return -1;
    }
    return c->sha && EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

static void http_download_complete(struct http_call *c)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char msg[512];
    int rc = close(c->fd);
    c->fd = -1;
    if (rc < 0 || EVP_DigestFinal_ex(c->sha, md, &md_len) != 1 || md_len != 32) {
        snprintf(msg, sizeof msg, "could not finish the download file: %s", strerror(errno));
        http_finish(c, HTTP_ERR_IO, NULL, msg);
        return;
    }
    for (unsigned int i = 0; i < md_len; i++) {
        snprintf(c->sha_hex + 2 * i, 3, "%02x", md[i]);
    }
    if (rename(c->tmp, c->dest) < 0) {
        snprintf(msg, sizeof msg, "could not rename the download into place: %s", strerror(errno));
        http_finish(c, HTTP_ERR_IO, NULL, msg);
        return;
    }
    free(c->tmp);
    c->tmp = NULL;
    http_finish(c, HTTP_OK, NULL, NULL);
}

void http_download_done(struct http_call *c, CURLcode rc)
{
    char msg[512];
    switch (c->abort_reason) {
    case HTTP_ABORT_TOO_LARGE:
        snprintf(msg, sizeof msg, "file larger than the %lld byte cap", c->max_bytes);
        http_finish(c, HTTP_ERR_TOO_LARGE, NULL, msg);
        return;
    case HTTP_ABORT_LOGIN:
        http_finish(c, HTTP_ERR_LOGIN_PAGE, NULL, HTTP_LOGIN_MESSAGE);
        return;
    case HTTP_ABORT_IO:
        snprintf(msg, sizeof msg, "could not write the download file: %s",
                 strerror(c->abort_errno));
        http_finish(c, HTTP_ERR_IO, NULL, msg);
        return;
    case HTTP_ABORT_NONE:
        break;
    }
    if (rc != CURLE_OK) {
        int retryable;
        enum http_err err = http_curl_err(c, rc, &retryable, msg, sizeof msg);
        if (err == HTTP_ERR_TIMEOUT) {
            retryable = 0; /* the per-hop timeout is what is left of download_timeout */
        }
        if (retryable && http_download_reset(c) == 0 && http_maybe_retry(c, http_err_code(err))) {
            return;
        }
        http_finish(c, err, NULL, msg);
        return;
    }
    if (c->status >= 300 && c->status <= 399 && c->status != 304) {
        const char *location = http_header_get(c, "location");
        if (!location || !*location) {
            snprintf(msg, sizeof msg, "HTTP %ld without a Location", c->status);
            http_finish(c, HTTP_ERR_STATUS, NULL, msg);
            return;
        }
        char *next = http_pure_resolve(c->url, location);
        if (!next || !http_pure_scheme_ok(next)) {
            free(next);
            http_finish(c, HTTP_ERR_REDIRECT_REFUSED, NULL,
                        "redirect to a URL that is not http(s) (refused)");
            return;
        }
        int to_itself = strcmp(next, c->url) == 0;
        if (to_itself || ++c->hops > HTTP_MAX_HOPS) {
            free(next);
            if (to_itself) {
                http_finish(c, HTTP_ERR_TOO_MANY_REDIRECTS, NULL,
                            "the file server redirects the download to itself (a loop)");
            } else {
                snprintf(msg, sizeof msg, "more than %d redirects (a loop?)", HTTP_MAX_HOPS);
                http_finish(c, HTTP_ERR_TOO_MANY_REDIRECTS, NULL, msg);
            }
            return;
        }
        char from[512], to[512];
        log_event(LOG_DEBUG, "download redirected", "from",
                  http_pure_redact_url(c->url, from, sizeof from), "to",
                  http_pure_redact_url(next, to, sizeof to), NULL);
        free(c->url);
        c->url = next;
        if (http_download_reset(c) < 0) {
            http_finish(c, HTTP_ERR_IO, NULL, "could not reset the download file");
            return;
        }
        http_attempt_release(c);
        http_start_attempt(c); /* keeps its download slot */
        return;
    }
    if (c->status >= 500) {
        snprintf(msg, sizeof msg, "HTTP %ld", c->status);
        if (http_download_reset(c) == 0 && http_maybe_retry(c, msg)) {
            return;
        }
        http_finish(c, HTTP_ERR_STATUS, NULL, msg);
        return;
    }
    if (c->status < 200 || c->status > 299) {
        snprintf(msg, sizeof msg, "HTTP %ld", c->status);
        http_finish(c, HTTP_ERR_STATUS, NULL, msg);
        return;
    }
    http_download_complete(c);
}

int http_download_headers_end(struct http_call *c)
{
    if (c->status < 200 || c->status > 299) {
        c->discard = 1;
        return 0;
    }
    c->discard = 0;
    const char *ct = http_header_get(c, "content-type");
    if (http_pure_is_login_page(c->status, ct, "", 0)) {
        c->abort_reason = HTTP_ABORT_LOGIN;
        return -1;
    }
    const char *cl = http_header_get(c, "content-length");
    if (cl) {
        char *end;
        long long n = strtoll(cl, &end, 10);
        if (end != cl && n > c->max_bytes) {
            c->abort_reason = HTTP_ABORT_TOO_LARGE;
            return -1;
        }
    }
    return 0;
}

size_t http_file_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct http_call *c = ud;
    size_t len = size * nitems;
    if (c->discard) {
        return len; /* a redirect's or an error's body */
    }
    if (!c->sniffed) {
        c->sniffed = 1;
        if (http_pure_is_login_page(c->status, http_header_get(c, "content-type"), buf, len)) {
            c->abort_reason = HTTP_ABORT_LOGIN;
            return 0;
        }
    }
    if (c->written + (long long)len > c->max_bytes) {
        c->abort_reason = HTTP_ABORT_TOO_LARGE;
        return 0;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(c->fd, buf + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            c->abort_reason = HTTP_ABORT_IO;
            c->abort_errno = n < 0 ? errno : ENOSPC;
            return 0;
        }
        off += (size_t)n;
    }
    EVP_DigestUpdate(c->sha, buf, len);
    c->written += (long long)len;
    return len;
}

int http_setup_download(struct http_call *c, CURL *e)
{
    char auth[1024];
    if (c->fd < 0) {
        unsigned char rnd[6];
        char suffix[16];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            uint64_t t = uv_hrtime();
            memcpy(rnd, &t, sizeof rnd);
        }
        snprintf(suffix, sizeof suffix, "%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
                 rnd[4], rnd[5]);
        size_t n = strlen(c->dest) + sizeof ".part-" + strlen(suffix);
        c->tmp = malloc(n);
        if (!c->tmp) {
            return -1;
        }
        snprintf(c->tmp, n, "%s.part-%s", c->dest, suffix);
        c->fd = open(c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (c->fd < 0) {
            free(c->tmp);
            c->tmp = NULL;
            return -2;
        }
        c->sha = EVP_MD_CTX_new();
        if (!c->sha || EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL) != 1) {
            return -1;
        }
    }
    c->discard = 0;
    if (c->token && http_token_allowed(c->url)) {
        if (snprintf(auth, sizeof auth, "Bearer %s", c->token) >= (int)sizeof auth ||
            http_add_header(&c->attempt_headers, "Authorization", auth) < 0) {
            return -1;
        }
        memset(auth, 0, sizeof auth);
    }
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_file_cb);
    /* a download received (and written, and hashed) 256 KiB at a time rather than curl's 16 KiB:
     * 20 one-megabyte images cost the loop's thread ~13 ms less (fewer write(2)s and recv(2)s) */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, HTTP_DOWNLOAD_BUFFER);
    return 0;
}

struct http_call *http_download(const char *url, const char *token, const char *dest_path,
                                long long max_bytes, int allow_private, http_done_fn done,
                                void *arg)
{
    if (!http_up || !url || !http_pure_scheme_ok(url) || !dest_path || !*dest_path) {
        return NULL;
    }
    struct http_call *c = http_call_new(HTTP_KIND_DOWNLOAD, done, arg);
    if (!c) {
        return NULL;
    }
    c->name = strdup("GET");
    c->url = strdup(url);
    if (!token) {
        token = http_cfg.bot_token; /* NULL: the bot's own token */
    }
    c->token = token && *token ? strdup(token) : NULL; /* "" = no token */
    c->dest = strdup(dest_path);
    if (!c->name || !c->url || (token && *token && !c->token) || !c->dest) {
        http_call_free(c);
        return NULL;
    }
    c->max_bytes = max_bytes > 0 && max_bytes < http_cfg.download_max_bytes
                       ? max_bytes
                       : http_cfg.download_max_bytes;
    c->timeout = http_cfg.download_timeout;
    c->max_retries = http_cfg.max_retries;
    c->allow_private = allow_private != 0;
    http_pump();
    return c;
}
