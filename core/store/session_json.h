/* session_json.h - the JSON objects tenants read: a session, and the
 * webhook event about one. One rendering for the API and the webhooks, so
 * data.object of an event is exactly what GET of the session returns. */
#ifndef HF_SESSION_JSON_H
#define HF_SESSION_JSON_H

#include "store.h"

struct json_text;

/* The event types there are (SPEC section 7), in the order lists show them. */
#define SESSION_EVENT_TYPES 3
extern const char *const session_event_types[SESSION_EVENT_TYPES];

/* The API object of a session, as member key of the object t has open (or
 * an element, key NULL); url is NULL except right after creation. */
void session_json_write(struct json_text *t, const char *key, const struct session *s,
                        const char *url);
/* The same object alone, as a malloc'd string. */
char *session_json(const struct session *s, const char *url);

/* {"id","type","created","data":{"object":<session>}}, as an element of
 * what t has open (GET /api/v1/events), */
void session_event_write(struct json_text *t, const char *event_id, const char *type,
                         long long created, const struct session *s);
/* or alone as a malloc'd string (the webhook's body). */
char *session_event_body(const char *event_id, const char *type, long long created,
                         const struct session *s);

#endif
