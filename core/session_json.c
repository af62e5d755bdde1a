/* session_json.c - a session and its events as JSON. */
#include "session_json.h"

#include "json.h"

static void put_time(struct json_t *o, const char *key, long long t)
{
    if (t)
        json_put_int(o, key, t);
    else
        json_put_null(o, key);
}

struct json_t *session_json(const struct session *s, const char *url)
{
    struct json_t *o = json_new_object();

    json_put_string(o, "id", s->id);
    json_put_string(o, "contractor_id", s->contractor_id);
    json_put_string(o, "return_url", s->return_url);
    json_put_string(o, "status", s->status);
    json_put_string(o, "url", url);
    json_put_string(o, "processor", "checkout");
    json_put_int(o, "created", s->created);
    json_put_int(o, "expires_at", s->expires_at);
    put_time(o, "completed_at", s->completed_at);
    put_time(o, "cancelled_at", s->cancelled_at);
    return o;
}

char *session_event_body(const char *event_id, const char *type, long long created,
                         const struct session *s)
{
    struct json_t *o = json_new_object(), *data = json_new_object();
    char *body;

    json_put_string(o, "id", event_id);
    json_put_string(o, "type", type);
    json_put_int(o, "created", created);
    json_put(data, "object", session_json(s, NULL));
    json_put(o, "data", data);
    body = json_encode(o);
    json_free(o);
    return body;
}
