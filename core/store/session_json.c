/* session_json.c - a session and its events as JSON. */
#include "session_json.h"

#include "json.h"

const char *const session_event_types[SESSION_EVENT_TYPES] = {
    "payment.session.completed", "payment.session.cancelled", "payment.session.expired"};

static void put_time(struct json_text *t, const char *key, long long v)
{
    if (v)
        json_text_int(t, key, v);
    else
        json_text_null(t, key);
}

void session_json_write(struct json_text *t, const char *key, const struct session *s,
                        const char *url)
{
    json_text_open(t, key, '{');
    json_text_string(t, "id", s->id);
    json_text_string(t, "contractor_id", s->contractor_id);
    json_text_string(t, "return_url", s->return_url);
    json_text_string(t, "status", s->status);
    json_text_string(t, "url", url);
    json_text_string(t, "processor", "checkout");
    json_text_int(t, "created", s->created);
    json_text_int(t, "expires_at", s->expires_at);
    put_time(t, "completed_at", s->completed_at);
    put_time(t, "cancelled_at", s->cancelled_at);
    json_text_close(t, '}');
}

char *session_json(const struct session *s, const char *url)
{
    struct json_text t = {0};

    session_json_write(&t, NULL, s, url);
    return json_text_finish(&t);
}

void session_event_write(struct json_text *t, const char *event_id, const char *type,
                         long long created, const struct session *s)
{
    json_text_open(t, NULL, '{');
    json_text_string(t, "id", event_id);
    json_text_string(t, "type", type);
    json_text_int(t, "created", created);
    json_text_open(t, "data", '{');
    session_json_write(t, "object", s, NULL);
    json_text_close(t, '}');
    json_text_close(t, '}');
}

char *session_event_body(const char *event_id, const char *type, long long created,
                         const struct session *s)
{
    struct json_text t = {0};

    session_event_write(&t, event_id, type, created, s);
    return json_text_finish(&t);
}
