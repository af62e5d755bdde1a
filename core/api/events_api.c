/* events_api.c - /api/v1/events: a tenant reads the events its webhooks
 * are sent, the same objects, newest first. Events belong to the tenant
 * and mode of their session, like the endpoints that receive them. */
#define _POSIX_C_SOURCE 200809L
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "json.h"
#include "session_json.h"
#include "store.h"

static void list_events(struct worker *w, const struct api_key *key,
                        const struct http_req *req, struct http_resp *resp)
{
    char type[HF_EVENT_TYPE_MAX], after[HF_ID_MAX], before[HF_ID_MAX];
    struct event_query q = {0};
    struct json_text list = {0};
    struct event *found;
    size_t n;
    int rc;

    if (api_page_params(req, &q.page, after, before, resp) != 0)
        return;
    rc = http_query_param(req, "type", type, sizeof type);
    if (rc != -1) {
        for (size_t i = 0; rc == 0 && i < SESSION_EVENT_TYPES; i++)
            if (strcmp(type, session_event_types[i]) == 0)
                q.type = session_event_types[i];
        if (!q.type) {
            api_fail(resp, HF_EINVAL, NULL, "type must be payment.session.completed, "
                 "payment.session.cancelled or payment.session.expired.", "type");
            return;
        }
    }
    /* a page is up to 100 sessions with their URLs: on the heap, and only
     * for this rarer read */
    if (!(found = calloc((size_t)q.page.limit, sizeof *found))) {
        api_fail(resp, HF_ENOMEM, NULL, "The server could not handle the request.", NULL);
        return;
    }
    rc = store_event_page(w->store, key->tenant_id, key->mode, &q, clock_now_s(), found, &n);
    if (rc == HF_ENOTFOUND) {
        api_unknown_cursor(resp, &q.page, "event");
    } else if (rc != 0) {
        api_fail(resp, rc, NULL, "The server could not handle the request.", NULL);
    } else {
        json_text_open(&list, NULL, '[');
        for (size_t i = 0; i < n; i++)
            session_event_write(&list, found[i].id, found[i].type, found[i].created,
                                &found[i].session);
        json_text_close(&list, ']');
        api_reply_text(resp, 200, json_text_finish(&list));
    }
    free(found);
}

static void get_event(struct worker *w, const struct api_key *key, const char *id,
                      struct http_resp *resp)
{
    struct json_text t = {0};
    struct event e;
    int rc = api_id_ok(id, strlen(id))
                 ? store_event_get(w->store, key->tenant_id, key->mode, id, clock_now_s(), &e)
                 : HF_ENOTFOUND;

    if (rc == HF_ENOTFOUND) {
        api_fail(resp, HF_ENOEVENT, NULL, "No such event.", "id");
    } else if (rc != 0) {
        api_fail(resp, rc, NULL, "The server could not handle the request.", NULL);
    } else {
        session_event_write(&t, e.id, e.type, e.created, &e.session);
        api_reply_text(resp, 200, json_text_finish(&t));
    }
}

void events_api_route(struct worker *w, const struct api_key *key,
                      const struct http_req *req, const char *rest,
                      struct http_resp *resp)
{
    int get = strcmp(req->method, "GET") == 0;

    if (*rest == '\0' || strcmp(rest, "/") == 0) {
        if (get)
            list_events(w, key, req, resp);
        else
            api_method_not_allowed(resp, "GET");
    } else if (strchr(rest + 1, '/')) {
        api_fail(resp, HF_ENOTFOUND, NULL, "No such resource.", NULL);
    } else if (get) {
        get_event(w, key, rest + 1, resp);
    } else {
        api_method_not_allowed(resp, "GET");
    }
}
