/* http_multi.h — libcurl's multi socket API on the process's uv loop (curl's multi-uv.c
 * pattern): one uv_poll_t per socket, one uv_timer_t, completions read after every
 * socket_action; two connection caches (checked and unchecked transfers). Owned and called only
 * by http.c, which builds the easy handles. */
#ifndef PMB_HTTP_MULTI_H
#define PMB_HTTP_MULTI_H

#include <curl/curl.h>

/* Called once per finished transfer, from a uv callback (never inside a curl callback), after
 * the easy handle has been removed from the multi: the callee owns the handle again (cleans it
 * up or re-adds it). */
typedef void (*http_multi_done_fn)(CURL *easy, CURLcode result);

int http_multi_init(http_multi_done_fn done); /* 0 or -1 */
/* 0 or -1; the handle's transfer starts. unchecked 1: a transfer whose addresses are not
 * checked (allow-listed private hosts): its connections are kept in a cache of their own, so
 * that one is never handed to a transfer whose every connection must pass the address check. */
int http_multi_add(CURL *easy, int unchecked);
void http_multi_remove(CURL *easy); /* stop a transfer; the caller cleans the handle up */
/* From curl's open-socket and close-socket callbacks: one spare watch record per open socket,
 * made before curl announces the socket, so that the socket callback never allocates. reserve
 * returns 0, or -1 when out of memory (the caller closes the socket and fails the connection). */
int http_multi_sock_reserve(void);
void http_multi_sock_release(void);
/* Remove nothing (callers removed their handles first); free the multi, close the handles. */
void http_multi_shutdown(void);

#endif
