/* envelope.c — one Socket Mode frame read into a struct envelope with json.c (the one codec):
 * the ack is built here, from the id exactly as Slack sent it, before anything else looks at the
 * frame. socketmode.c acts on the result; nothing here keeps state between frames. */
#include "net/envelope.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"

static int envelope_is_event_type(const char *type)
{
    return strcmp(type, "events_api") == 0 || strcmp(type, "slash_commands") == 0 ||
           strcmp(type, "interactive") == 0;
}

enum envelope_kind envelope_read(const char *text, size_t len, struct envelope *e)
{
    struct json_doc *doc;
    memset(e, 0, sizeof *e);
    doc = json_parse(text, len);
    if (!doc) {
        return e->kind = ENVELOPE_NOT_JSON;
    }
    e->id = json_get_string_dup(doc, "envelope_id", &e->id_len);
    if (e->id && e->id_len == 0) {
        free(e->id);
        e->id = NULL;
    }
    if (e->id) {
        e->ack = json_encode_pair_n("envelope_id", e->id, e->id_len);
        e->ack_len = e->ack ? strlen(e->ack) : 0;
    }
    if (json_get_string(doc, "type", e->type, sizeof e->type) < 0) {
        e->kind = ENVELOPE_NO_TYPE;
    } else if (strcmp(e->type, "hello") == 0) {
        e->kind = ENVELOPE_HELLO;
        if (json_get_number(doc, "num_connections", &e->num_connections) < 0) {
            e->num_connections = 0;
        }
    } else if (strcmp(e->type, "disconnect") == 0) {
        e->kind = ENVELOPE_DISCONNECT;
        if (json_get_string(doc, "reason", e->reason, sizeof e->reason) < 0) {
            strcpy(e->reason, "unknown");
        }
    } else if (!envelope_is_event_type(e->type)) {
        e->kind = ENVELOPE_UNKNOWN;
    } else if (!e->id) {
        e->kind = ENVELOPE_NO_ID;
    } else {
        e->kind = ENVELOPE_EVENT;
        if (json_get_string(doc, "payload.event_id", e->event_id, sizeof e->event_id) < 0) {
            e->event_id[0] = '\0';
        }
        if (json_get_number(doc, "retry_attempt", &e->retry_attempt) < 0) {
            e->retry_attempt = 0;
        }
    }
    json_free(doc);
    return e->kind;
}

void envelope_free(struct envelope *e)
{
    free(e->id);
    free(e->ack);
    e->id = e->ack = NULL;
}
