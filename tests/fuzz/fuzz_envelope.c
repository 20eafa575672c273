/* fuzz_envelope.c — libFuzzer harness for the envelope path (core/net/envelope.c over json.c):
 * any bytes as a Socket Mode frame. Oracles: no crash or leak (ASan), an event always has an id,
 * and whenever an id was read its ack decodes back to exactly that id (no truncation, NULs kept). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "net/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct envelope e;
    envelope_read((const char *)data, size, &e);
    if (e.kind == ENVELOPE_EVENT && !e.id) {
        abort();
    }
    if (e.id) {
        size_t len = 0;
        struct json_doc *doc = e.ack ? json_parse(e.ack, e.ack_len) : NULL;
        char *back = doc ? json_get_string_dup(doc, "envelope_id", &len) : NULL;
        if (!back || len != e.id_len || memcmp(back, e.id, len) != 0) {
            abort(); /* the ack would not name the envelope Slack sent */
        }
        free(back);
        json_free(doc);
    }
    envelope_free(&e);
    return 0;
}
