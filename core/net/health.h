/* health.h — the optional HTTP endpoint for operators: GET /healthz (200 while Socket Mode is
 * connected, 503 with a JSON reason otherwise) and GET /metrics (Prometheus text format).
 * Served by libwebsockets on the same context and loop as the Socket Mode client (ws.c). */
#ifndef PMB_HEALTH_H
#define PMB_HEALTH_H

int health_start(const char *listen); /* "host:port"; 0 or -1 (logged) */
void health_stop(void);

#endif
