/* test_metrics.c — unit tests for metrics.c: the Prometheus text exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/metrics.h"

static void test_counter_and_labels(void **state)
{
    char esc[64];
    char labels[128];
    (void)state;
    metrics_reset();
    metrics_counter_add("pmb_api_calls_total", "Web API calls", "method=\"auth.test\"", 1);
    metrics_counter_add("pmb_api_calls_total", "Web API calls", "method=\"auth.test\"", 2);
    snprintf(labels, sizeof labels, "method=\"%s\"",
             metrics_label_escape("a\"b\\c", esc, sizeof esc));
    metrics_counter_add("pmb_api_calls_total", NULL, labels, 1);
    char *text = metrics_render(NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "# HELP pmb_api_calls_total Web API calls\n"));
    assert_non_null(strstr(text, "# TYPE pmb_api_calls_total counter\n"));
    assert_non_null(strstr(text, "pmb_api_calls_total{method=\"auth.test\"} 3\n"));
    assert_non_null(strstr(text, "pmb_api_calls_total{method=\"a\\\"b\\\\c\"} 1\n"));
    /* one HELP per metric name */
    assert_ptr_equal(strstr(text, "# HELP"), strstr(text, "# HELP pmb_api_calls_total"));
    assert_null(strstr(strstr(text, "# HELP") + 1, "# HELP"));
    free(text);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    metrics_reset();
    metrics_observe("pmb_ack_latency_seconds", "ack latency", NULL, 0.0007);
    metrics_observe("pmb_ack_latency_seconds", "ack latency", NULL, 0.2);
    char *text = metrics_render(NULL);
    assert_non_null(strstr(text, "# TYPE pmb_ack_latency_seconds histogram\n"));
    assert_non_null(strstr(text, "pmb_ack_latency_seconds_bucket{le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(text, "pmb_ack_latency_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(text, "pmb_ack_latency_seconds_bucket{le=\"0.25\"} 2\n"));
    assert_non_null(strstr(text, "pmb_ack_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "pmb_ack_latency_seconds_count 2\n"));
    free(text);
    metrics_reset();
}

static void test_gauge_set(void **state)
{
    (void)state;
    metrics_gauge_set("pmb_socket_connected", "1 when connected", NULL, 1);
    metrics_gauge_set("pmb_socket_connected", "1 when connected", NULL, 0);
    char *text = metrics_render(NULL);
    assert_non_null(strstr(text, "# TYPE pmb_socket_connected gauge\npmb_socket_connected 0\n"));
    free(text);
    metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_labels),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_gauge_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
