/* metrics.h — process counters, gauges and histograms, rendered in the Prometheus text format by
 * the /metrics endpoint (health.c). Every module records through here; nothing here blocks. */
#ifndef PMB_METRICS_H
#define PMB_METRICS_H

#include <stddef.h>

/* name: "pmb_envelopes_received_total"; labels: NULL or a preformatted label set without
 * braces, e.g. "method=\"chat.postMessage\",outcome=\"ok\"" (label values escaped by the caller
 * with metrics_label_escape). help is used the first time the name is seen. */
void metrics_counter_add(const char *name, const char *help, const char *labels, double v);
void metrics_gauge_set(const char *name, const char *help, const char *labels, double v);
/* Histograms use fixed buckets chosen per name (seconds): see metrics.c. */
void metrics_observe(const char *name, const char *help, const char *labels, double v);

/* Escape a label value (\\, \", \n) into buf. Returns buf. */
char *metrics_label_escape(const char *value, char *buf, size_t size);

/* The whole exposition; malloc'd, caller frees. */
char *metrics_render(size_t *len);
void metrics_reset(void); /* tests */
void metrics_shutdown(void);

#endif
