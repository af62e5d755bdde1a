/* session_json.h - the JSON objects tenants read: a session, and the
 * webhook event about one. One rendering for the API and the webhooks, so
 * data.object of an event is exactly what GET of the session returns. */
#ifndef HF_SESSION_JSON_H
#define HF_SESSION_JSON_H

#include "store.h"

struct json_t;

/* The API object of a session; url is NULL except right after creation. */
struct json_t *session_json(const struct session *s, const char *url);

/* {"id","type","created","data":{"object":<session>}} as a malloc'd
 * string, or NULL when out of memory. */
char *session_event_body(const char *event_id, const char *type, long long created,
                         const struct session *s);

#endif
