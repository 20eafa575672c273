/* test_envelope.c — reading Socket Mode frames (core/net/envelope.c): kinds, the ack echoing the
 * envelope id byte for byte (long, with a NUL, beside a lone surrogate), and what is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/json.h"
#include "net/envelope.h"

static enum envelope_kind read_str(const char *text, struct envelope *e)
{
    return envelope_read(text, strlen(text), e);
}

static void test_kinds(void **state)
{
    struct envelope e;
    (void)state;
    assert_int_equal(ENVELOPE_HELLO, read_str("{\"type\":\"hello\",\"num_connections\":3}", &e));
    assert_true(e.num_connections == 3);
    assert_null(e.ack);
    envelope_free(&e);
    assert_int_equal(ENVELOPE_DISCONNECT, read_str("{\"type\":\"disconnect\"}", &e));
    assert_string_equal("unknown", e.reason);
    envelope_free(&e);
    assert_int_equal(ENVELOPE_NOT_JSON, read_str("not json", &e));
    envelope_free(&e);
    assert_int_equal(ENVELOPE_NOT_JSON, read_str("\"a string\"", &e));
    envelope_free(&e);
    assert_int_equal(ENVELOPE_NO_TYPE, read_str("{\"envelope_id\":\"x\"}", &e));
    assert_non_null(e.ack); /* acked even so */
    envelope_free(&e);
    assert_int_equal(ENVELOPE_NO_ID,
                     read_str("{\"type\":\"events_api\",\"envelope_id\":\"\"}", &e));
    assert_null(e.ack);
    envelope_free(&e);
    assert_int_equal(ENVELOPE_UNKNOWN,
                     read_str("{\"type\":\"new_thing\",\"envelope_id\":\"u1\"}", &e));
    assert_string_equal("{\"envelope_id\":\"u1\"}", e.ack);
    envelope_free(&e);
    assert_int_equal(
        ENVELOPE_EVENT,
        read_str("{\"type\":\"interactive\",\"envelope_id\":\"i1\",\"retry_attempt\":2,"
                 "\"payload\":{\"event_id\":\"Ev1\"}}",
                 &e));
    assert_string_equal("Ev1", e.event_id);
    assert_true(e.retry_attempt == 2);
    envelope_free(&e);
}

/* The ack, decoded, must be the id exactly. */
static void assert_ack_echoes(const struct envelope *e, const char *id, size_t id_len)
{
    size_t got_len = 0;
    struct json_doc *doc = json_parse(e->ack, e->ack_len);
    assert_non_null(doc);
    char *got = json_get_string_dup(doc, "envelope_id", &got_len);
    assert_non_null(got);
    assert_int_equal(id_len, got_len);
    assert_memory_equal(id, got, id_len);
    free(got);
    json_free(doc);
}

static void test_ack_echoes_the_id_whole(void **state)
{
    struct envelope e;
    char id[301], frame[512];
    (void)state;
    memset(id, 'k', 300);
    id[300] = '\0';
    snprintf(frame, sizeof frame, "{\"type\":\"events_api\",\"envelope_id\":\"%s\"}", id);
    assert_int_equal(ENVELOPE_EVENT, read_str(frame, &e));
    assert_int_equal(300, e.id_len);
    assert_ack_echoes(&e, id, 300);
    envelope_free(&e);

    assert_int_equal(ENVELOPE_EVENT,
                     read_str("{\"type\":\"events_api\",\"envelope_id\":\"nul\\u0000id\"}", &e));
    assert_int_equal(6, e.id_len);
    assert_ack_echoes(&e, "nul\0id", 6);
    envelope_free(&e);
}

static void test_lone_surrogate_does_not_block_the_ack(void **state)
{
    struct envelope e;
    (void)state;
    assert_int_equal(
        ENVELOPE_EVENT,
        read_str("{\"type\":\"events_api\",\"envelope_id\":\"s1\",\"payload\":"
                 "{\"event\":{\"text\":\"broken \\ud800 here\"},\"event_id\":\"Ev9\"}}",
                 &e));
    assert_string_equal("{\"envelope_id\":\"s1\"}", e.ack);
    assert_string_equal("Ev9", e.event_id);
    envelope_free(&e);
    /* a well-formed pair stays as it is */
    assert_int_equal(ENVELOPE_EVENT, read_str("{\"type\":\"events_api\",\"envelope_id\":"
                                              "\"\\ud83d\\ude00\"}",
                                              &e));
    assert_int_equal(4, e.id_len);
    assert_memory_equal("\xf0\x9f\x98\x80", e.id, 4);
    envelope_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_ack_echoes_the_id_whole),
        cmocka_unit_test(test_lone_surrogate_does_not_block_the_ack),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_shutdown();
    return rc;
}
