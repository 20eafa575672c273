/* http_multi.c — drives libcurl's multi socket API from the uv loop: curl tells us which
 * sockets to watch (one uv_poll_t each) and when to wake it (one uv_timer_t); uv tells curl what
 * happened; finished transfers are handed to http.c's done function after curl_multi_info_read.
 * Called by http.c only. Nothing here runs user code: http.c defers its callbacks. */
#include "http/http_multi.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/log.h"
#include "base/loop.h"

struct http_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http_sock *prev, *next;
};

static CURLM *http_multi;
/* The connection cache of unchecked transfers (CURL_LOCK_DATA_CONNECT): the multi's own cache
 * holds only connections whose address passed the check (or Slack's API host's). One thread
 * uses it, so it needs no lock callbacks. */
static CURLSH *http_unchecked_share;
static uv_timer_t *http_multi_timer;
static http_multi_done_fn http_multi_done;
static struct http_sock *http_socks;
/* Spare watch records (linked by next). Every socket curl opens through http_attempt.c's
 * open-socket callback adds one (http_multi_sock_reserve) and its close takes one away
 * (http_multi_sock_release), so the socket callback, which must not fail, finds a record here
 * without allocating, however often curl announces, removes and re-announces a socket. */
static struct http_sock *http_spare;
static int http_multi_closing;

int http_multi_sock_reserve(void)
{
    struct http_sock *s = calloc(1, sizeof *s);
    if (!s) {
        return -1;
    }
    s->next = http_spare;
    http_spare = s;
    return 0;
}

void http_multi_sock_release(void)
{
    struct http_sock *s = http_spare;
    if (s) {
        http_spare = s->next;
        free(s);
    }
}

/* A spare record for fd (a new one when none is spare: a socket curl opened on its own). */
static struct http_sock *http_multi_sock_take(curl_socket_t fd)
{
    struct http_sock *s = http_spare;
    if (s) {
        http_spare = s->next;
        memset(s, 0, sizeof *s);
    } else {
        s = calloc(1, sizeof *s);
    }
    if (s) {
        s->fd = fd;
    }
    return s;
}

static void http_multi_check(void)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(http_multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        /* the message dies with remove_handle: copy first */
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        curl_multi_remove_handle(http_multi, easy);
        http_multi_done(easy, result);
    }
}

static void http_multi_poll_cb(uv_poll_t *h, int status, int events)
{
    struct http_sock *s = h->data;
    int flags = 0;
    int running;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE) {
            flags |= CURL_CSELECT_IN;
        }
        if (events & UV_WRITABLE) {
            flags |= CURL_CSELECT_OUT;
        }
    }
    curl_multi_socket_action(http_multi, s->fd, flags, &running);
    http_multi_check();
}

static void http_multi_timer_cb(uv_timer_t *h)
{
    int running;
    (void)h;
    curl_multi_socket_action(http_multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_multi_check();
}

static void http_multi_sock_closed(uv_handle_t *h)
{
    struct http_sock *s = h->data;
    if (!http_multi) {
        free(s); /* shut down: nothing is spared any more */
        return;
    }
    s->next = http_spare;
    http_spare = s;
}

static void http_multi_sock_close(struct http_sock *s)
{
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        http_socks = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, http_multi_sock_closed);
}

static int http_multi_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_sock *s = socketp;
    int events = 0;
    (void)easy;
    (void)userp;
    if (http_multi_closing) {
        return 0;
    }
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            http_multi_sock_close(s);
            curl_multi_assign(http_multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        /* a socket opened through http_open_socket_cb has its record already: nothing here can
         * fail for want of memory (a -1 would abort every transfer and leave the multi dead) */
        s = http_multi_sock_take(fd);
        if (!s) {
            log_event(LOG_ERROR, "out of memory watching a curl socket", NULL);
            return -1;
        }
        if (uv_poll_init_socket(loop_get(), &s->poll, fd) < 0) {
            log_event(LOG_ERROR, "uv_poll_init_socket failed for a curl socket", NULL);
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->next = http_socks;
        if (http_socks) {
            http_socks->prev = s;
        }
        http_socks = s;
        curl_multi_assign(http_multi, fd, s);
    }
    if (what & CURL_POLL_IN) {
        events |= UV_READABLE;
    }
    if (what & CURL_POLL_OUT) {
        events |= UV_WRITABLE;
    }
    uv_poll_start(&s->poll, events, http_multi_poll_cb);
    return 0;
}

static int http_multi_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    (void)userp;
    if (http_multi_closing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(http_multi_timer);
    } else {
        uv_timer_start(http_multi_timer, http_multi_timer_cb, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

int http_multi_init(http_multi_done_fn done)
{
    if (http_multi) {
        return 0;
    }
    http_multi = curl_multi_init();
    http_multi_timer = malloc(sizeof *http_multi_timer);
    http_unchecked_share = curl_share_init();
    if (!http_multi || !http_multi_timer || !http_unchecked_share ||
        curl_share_setopt(http_unchecked_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) !=
            CURLSHE_OK) {
        curl_multi_cleanup(http_multi);
        free(http_multi_timer);
        curl_share_cleanup(http_unchecked_share);
        http_multi = NULL;
        http_multi_timer = NULL;
        http_unchecked_share = NULL;
        return -1;
    }
    uv_timer_init(loop_get(), http_multi_timer);
    http_multi_timer->data = http_multi_timer;
    http_multi_done = done;
    curl_multi_setopt(http_multi, CURLMOPT_SOCKETFUNCTION, http_multi_socket_cb);
    curl_multi_setopt(http_multi, CURLMOPT_TIMERFUNCTION, http_multi_timer_set);
    return 0;
}

int http_multi_add(CURL *easy, int unchecked)
{
    if (!http_multi) {
        return -1;
    }
    if (unchecked && curl_easy_setopt(easy, CURLOPT_SHARE, http_unchecked_share) != CURLE_OK) {
        return -1;
    }
    return curl_multi_add_handle(http_multi, easy) == CURLM_OK ? 0 : -1;
}

void http_multi_remove(CURL *easy)
{
    if (http_multi && easy) {
        curl_multi_remove_handle(http_multi, easy);
    }
}

static void http_multi_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void http_multi_shutdown(void)
{
    if (!http_multi) {
        return;
    }
    /* stop watching before curl closes its cached connections (7.88 does not always tell the
     * socket callback), so no uv_poll_t outlives its fd */
    http_multi_closing = 1;
    while (http_socks) {
        curl_multi_assign(http_multi, http_socks->fd, NULL);
        http_multi_sock_close(http_socks);
    }
    curl_multi_cleanup(http_multi);
    /* closes the unchecked cache's idle connections (through the close-socket callback); only
     * refused while an easy handle still uses the share, which http.c has cleaned up by now */
    if (curl_share_cleanup(http_unchecked_share) != CURLSHE_OK) {
        log_event(LOG_WARN, "the unchecked connection cache was still in use at shutdown", NULL);
    }
    http_unchecked_share = NULL;
    http_multi = NULL;
    http_multi_closing = 0;
    while (http_spare) {
        http_multi_sock_release();
    }
    uv_timer_stop(http_multi_timer);
    uv_close((uv_handle_t *)http_multi_timer, http_multi_timer_closed);
    http_multi_timer = NULL;
}
