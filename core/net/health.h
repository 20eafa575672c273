/* health.h — the optional HTTP endpoint for operators, on the transport thread: GET /healthz (200
 * while Socket Mode is connected and the script loop turns; 503 with a JSON reason otherwise) and
 * GET /metrics (Prometheus text format). We own the listening sockets (bound exactly to the
 * address given, connections counted and bounded); libwebsockets parses HTTP on the sockets we
 * hand it, on the same context and loop as the Socket Mode client (ws.c). */
#ifndef PMB_HEALTH_H
#define PMB_HEALTH_H

/* "127.0.0.1:9102", "[::1]:9102", "localhost:9102" (every address the name resolves to).
 * 0, or -1 when nothing could be bound (logged, with the reason). */
int health_start(const char *listen, double stall_seconds);
void health_stop(void); /* close the listening sockets; live connections end with the lws context */

#endif
