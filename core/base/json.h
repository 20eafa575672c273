/* json.h — the C side's few JSON needs, decoded with lua-cjson in a core-owned lua_State that is
 * never reloaded (the project's one JSON codec). Used by http.c (ok/error of Web API answers),
 * socketmode.c (envelope id, type, event id, retry_attempt) and main.c (auth.test). */
#ifndef PMB_JSON_H
#define PMB_JSON_H

#include <stddef.h>

struct json_doc; /* a decoded document */

int json_init(void);
void json_shutdown(void);

/* Decode; NULL when the text is not JSON or not an object/array. An escaped surrogate without its
 * pair (valid JSON grammar, refused by lua-cjson) is read as U+FFFD. Free with json_free.
 * Documents belong to the calling thread's decoder: free them on the thread that parsed them. */
struct json_doc *json_parse(const char *text, size_t len);
void json_free(struct json_doc *doc);

/* Dotted paths into objects: "payload.event.channel". Strings are copied into buf (truncated,
 * always NUL-terminated); return 0 if found with the right type, -1 otherwise. */
int json_get_string(struct json_doc *doc, const char *path, char *buf, size_t size);
/* The whole string at path (embedded NULs kept; *len set): malloc'd, caller frees; NULL if absent
 * or not a string. */
char *json_get_string_dup(struct json_doc *doc, const char *path, size_t *len);
int json_get_number(struct json_doc *doc, const char *path, double *out);
int json_get_bool(struct json_doc *doc, const char *path, int *out);
int json_has(struct json_doc *doc, const char *path);

/* {"key":"value"} with value JSON-escaped. Returns malloc'd text; caller frees. */
char *json_encode_pair(const char *key, const char *value);
char *json_encode_pair_n(const char *key, const char *value, size_t value_len);

/* A flat object of strings, numbers and booleans, encoded by the codec (so every string is
 * escaped), followed by a newline. Returns malloc'd text (*len set); caller frees. */
enum json_field_type { JSON_FIELD_STRING, JSON_FIELD_NUMBER, JSON_FIELD_BOOL };
struct json_field {
    const char *key;
    enum json_field_type type;
    const char *str; /* JSON_FIELD_STRING */
    double num;      /* JSON_FIELD_NUMBER; JSON_FIELD_BOOL: 0 or 1 */
};
char *json_encode_object(const struct json_field *fields, size_t n, size_t *len);

#endif
