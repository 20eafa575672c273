/* envelope.h — what one Socket Mode text frame says, read with the JSON codec: its kind (hello,
 * disconnect, an envelope to ack and deliver, or something to skip), the envelope id whole, the
 * ack to send back, the event id for dedupe. Pure (no sockets, no loop): socketmode.c calls it for
 * every frame, tests/fuzz/fuzz_envelope.c feeds it arbitrary bytes. */
#ifndef PMB_ENVELOPE_H
#define PMB_ENVELOPE_H

#include <stddef.h>

enum envelope_kind {
    ENVELOPE_NOT_JSON,   /* not a JSON object: skipped (and not ackable) */
    ENVELOPE_NO_TYPE,    /* an object without a string "type" */
    ENVELOPE_HELLO,      /* num_connections */
    ENVELOPE_DISCONNECT, /* reason ("unknown" when absent) */
    ENVELOPE_EVENT,      /* events_api, slash_commands, interactive: id and ack are set */
    ENVELOPE_NO_ID,      /* one of those types without a usable envelope_id */
    ENVELOPE_UNKNOWN,    /* a type we do not know (acked all the same when it has an id) */
};

struct envelope {
    enum envelope_kind kind;
    char type[64];
    char *id; /* envelope_id exactly as sent (embedded NULs kept), or NULL */
    size_t id_len;
    char *ack; /* {"envelope_id":...} echoing id byte for byte, or NULL when there is no id */
    size_t ack_len;
    char event_id[128]; /* payload.event_id, or "" */
    double retry_attempt;
    double num_connections;
    char reason[64];
};

/* Read one frame. Always fills e (free it with envelope_free); returns e->kind. */
enum envelope_kind envelope_read(const char *text, size_t len, struct envelope *e);
void envelope_free(struct envelope *e);

#endif
