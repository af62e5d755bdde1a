/* json.h - JSON in and out: the only user of jansson.
 *
 * Parsing is strict (UTF-8 only, duplicate keys rejected, depth bounded);
 * encoding walks trees built with jansson and writes exactly jansson's
 * compact form (one escaper; fuzz_json checks it against json_dumps),
 * never string concatenation. */
#ifndef HF_JSON_H
#define HF_JSON_H

#include <stddef.h>

#include "buf.h"

struct json_t; /* jansson's value; opaque to the rest of hostflow */

#define HF_JSON_MAX_DEPTH 16 /* request bodies nest no deeper than this */

/* 1 when s[0..n) is UTF-8 as jansson accepts it: shortest forms only, no
 * surrogates, nothing past U+10FFFF. */
int json_utf8_ok(const char *s, size_t n);

/* Parse len bytes as one JSON object. 0 and *out (free with json_free) on
 * success; HF_EINVAL with a client-safe sentence in err otherwise. */
int json_parse_body(const char *buf, size_t len, struct json_t **out,
                    char *err, size_t errlen);

/* json_parse_body's fast path, for its tests: a flat object whose values
 * are printable-ASCII strings without escapes, true, false or null, parsed
 * into the tree jansson would build; NULL for any other input (valid or
 * not), which json_parse_body then hands to jansson. */
struct json_t *json_parse_flat(const char *buf, size_t len);

/* Drop a reference; NULL is fine. */
void json_free(struct json_t *v);

/* String member key of obj: 0 and *out (borrowed from obj, valid until
 * json_free); HF_ENOTFOUND when absent; HF_EINVAL when not a string. */
int json_member_string(const struct json_t *obj, const char *key,
                       const char **out);

/* Integer member key of obj: 0 and *out; HF_ENOTFOUND when absent;
 * HF_EINVAL when not an integer. */
int json_member_int(const struct json_t *obj, const char *key, long long *out);

/* String element i of array member key of obj: 0 and *out (borrowed from
 * obj, valid until json_free); HF_ENOTFOUND when key is absent or the
 * array shorter; HF_EINVAL when it is not an array or the element not a
 * string. */
int json_member_array_string(const struct json_t *obj, const char *key, size_t i,
                             const char **out);

/* Builders. They never fail short of memory exhaustion (then they abort).
 * A NULL string value is encoded as null. json_put and json_push take
 * ownership of child. */
struct json_t *json_new_object(void);
struct json_t *json_new_array(void);
void json_put_string(struct json_t *obj, const char *key, const char *v);
void json_put_int(struct json_t *obj, const char *key, long long v);
void json_put_bool(struct json_t *obj, const char *key, int v);
void json_put_null(struct json_t *obj, const char *key);
void json_put(struct json_t *obj, const char *key, struct json_t *child);
void json_push(struct json_t *arr, struct json_t *child);
void json_push_string(struct json_t *arr, const char *v);

/* Compact encoding, malloc'd (caller frees with free()); aborts on OOM. */
char *json_encode(const struct json_t *v);

/* Writing JSON text directly, for the responses every request makes: the
 * bytes are exactly json_encode's of the tree the builders above would
 * make from the same calls (invalid UTF-8 and NULL strings become null),
 * without building the tree. Start from a zeroed struct json_text; key
 * is a name from the code (ASCII), NULL for an array element or the
 * outermost value. Aborts on OOM. */
struct json_text {
    struct buf out;
    int first;   /* nothing written yet in the open object or array */
};
void json_text_open(struct json_text *t, const char *key, char bracket); /* '{' or '[' */
void json_text_close(struct json_text *t, char bracket);                 /* '}' or ']' */
void json_text_string(struct json_text *t, const char *key, const char *v);
void json_text_int(struct json_text *t, const char *key, long long v);
void json_text_null(struct json_text *t, const char *key);
/* The text, malloc'd and NUL-terminated; t is spent. */
char *json_text_finish(struct json_text *t);

#endif
