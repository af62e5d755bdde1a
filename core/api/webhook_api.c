/* webhook_api.c - /api/v1/webhook_endpoints: register, read, change and
 * delete the URLs a tenant's events are sent to. An endpoint belongs to the tenant and
 * the mode (live or test) of the key that created it, and receives the
 * events of that mode's sessions. */
#define _POSIX_C_SOURCE 200809L
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "json.h"
#include "policy.h"
#include "session_json.h"
#include "store.h"
#include "token.h"
#include "url.h"
#include "webhook_secret.h"
#include "clock.h"

/* The stored "*" or "type,type" as the array the API shows. */
static struct json_t *enabled_json(const char *stored)
{
    struct json_t *a = json_new_array();
    char copy[HF_ENABLED_EVENTS_MAX], *save = NULL;

    snprintf(copy, sizeof copy, "%s", stored);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_push_string(a, t);
    return a;
}

static struct json_t *endpoint_json(const struct webhook_endpoint *e)
{
    struct json_t *o = json_new_object();

    json_put_string(o, "id", e->id);
    json_put_string(o, "url", e->url);
    json_put_string(o, "mode", e->mode);
    json_put_int(o, "created", e->created);
    json_put_string(o, "description", e->description);
    json_put(o, "enabled_events", enabled_json(e->enabled_events));
    json_put_bool(o, "disabled", e->disabled);
    /* after a roll: until when the secret before it still signs too */
    if (e->previous_until_ms > clock_wall_ms())
        json_put_int(o, "previous_secret_expires_at", e->previous_until_ms / 1000);
    else
        json_put_null(o, "previous_secret_expires_at");
    return o;
}

static void server_error(struct http_resp *resp, int rc)
{
    api_fail(resp, rc, NULL, "The server could not handle the request.", NULL);
}

static void not_found(struct http_resp *resp)
{
    api_fail(resp, HF_ENOENDPOINT, NULL, "No such webhook endpoint.", "id");
}

static void bad_url(struct http_resp *resp, const char *message)
{
    api_fail(resp, HF_EINVAL, "invalid_webhook_url", message, "url");
}

/* The endpoint with its new secret: shown this once, wiped after sending. */
static void reply_with_secret(struct http_resp *resp, int status,
                              const struct webhook_endpoint *e, const char *secret)
{
    struct json_t *o = endpoint_json(e);

    json_put_string(o, "secret", secret);
    api_reply(resp, status, o);
    resp->body_secret = 1;
}

/* May the tenant of key send its events to url? 0 when the policy allows
 * it, else -1 with resp set to the refusal. */
static int check_url(struct worker *w, const struct api_key *key, const struct http_req *req,
                     const char *url, struct http_resp *resp)
{
    char err[256];
    struct policy_verdict v;
    struct policy_ctx ctx;
    struct url u;
    int rc;

    if ((rc = url_parse(url, strlen(url), &u)) != URL_OK) {
        snprintf(err, sizeof err, "url is not acceptable: %s.", url_strerror(rc));
        bad_url(resp, err);
        return -1;
    }
    if ((rc = store_tenant_get(w->store, key->tenant_id, &w->tenant)) != 0) {
        server_error(resp, rc);
        return -1;
    }
    if (policy_acquire(w->engine, &w->policy) != 0) {
        api_policy_error(resp);
        return -1;
    }
    snprintf(resp->policy_version, sizeof resp->policy_version, "%s",
             policy_version(w->policy));
    ctx = (struct policy_ctx){
        .tenant = &w->tenant, .mode = key->mode, .method = req->method,
        .path = req->path, .remote_addr = req->remote_addr, .now = clock_now_s()};
    rc = policy_check_webhook_url(w->policy, url, &u, &ctx, &v);
    policy_release(w->engine, &w->policy);
    resp->policy_us = v.us;
    resp->policy_instructions = v.instructions;
    if (rc != 0) {
        api_policy_error(resp);
        return -1;
    }
    resp->decision = v.allow ? "allow" : "deny";
    if (!v.allow) {
        bad_url(resp, v.message);
        return -1;
    }
    return 0;
}

static int plain_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* enabled_events of body into e->enabled_events: "*" when it lists "*",
 * else the known types it lists, in session_event_types order. 0, or -1
 * with resp set. */
static int read_enabled_events(const struct json_t *body, size_t n, struct webhook_endpoint *e,
                               struct http_resp *resp)
{
    int listed[SESSION_EVENT_TYPES] = {0}, all = 0;
    const char *t;
    size_t used = 0;

    for (size_t i = 0; i < n; i++) {
        int known = 0;

        if (json_member_array_string(body, "enabled_events", i, &t) != 0)
            goto bad;
        all |= strcmp(t, "*") == 0;
        for (int k = 0; k < SESSION_EVENT_TYPES; k++)
            if (strcmp(t, session_event_types[k]) == 0)
                known = listed[k] = 1;
        if (!known && strcmp(t, "*") != 0)
            goto bad;
    }
    if (all) {
        snprintf(e->enabled_events, sizeof e->enabled_events, "*");
        return 0;
    }
    e->enabled_events[0] = '\0';
    for (int k = 0; k < SESSION_EVENT_TYPES; k++)
        if (listed[k])
            used += (size_t)snprintf(e->enabled_events + used, sizeof e->enabled_events - used,
                                     "%s%s", used ? "," : "", session_event_types[k]);
    return 0;
bad:
    api_fail(resp, HF_EINVAL, NULL, "enabled_events must list \"*\" or event types: "
         "payment.session.completed, payment.session.cancelled, payment.session.expired.",
         "enabled_events");
    return -1;
}

/* What a tenant may set besides the url: description, enabled_events and
 * disabled of body, those present, into e. 0, or -1 with resp set. */
static int read_settings(const struct json_t *body, struct webhook_endpoint *e,
                         struct http_resp *resp)
{
    const char *d;
    size_t n;
    int rc = json_member_string(body, "description", &d), b;

    if (rc == HF_EINVAL || (rc == 0 && (strlen(d) > HF_ENDPOINT_DESCRIPTION_MAX || !plain_text(d)))) {
        api_fail(resp, HF_EINVAL, NULL, "description must be a string of at most 500 bytes "
             "without control characters.", "description");
        return -1;
    }
    if (rc == 0)
        snprintf(e->description, sizeof e->description, "%s", d);
    rc = json_member_array_size(body, "enabled_events", &n);
    if (rc == HF_EINVAL || (rc == 0 && n == 0)) {
        api_fail(resp, HF_EINVAL, NULL, "enabled_events must be a non-empty array.",
             "enabled_events");
        return -1;
    }
    if (rc == 0 && read_enabled_events(body, n, e, resp) != 0)
        return -1;
    rc = json_member_bool(body, "disabled", &b);
    if (rc == HF_EINVAL) {
        api_fail(resp, HF_EINVAL, NULL, "disabled must be true or false.", "disabled");
        return -1;
    }
    if (rc == 0)
        e->disabled = b;
    return 0;
}

static void create_endpoint(struct worker *w, const struct api_key *key,
                            const struct http_req *req, struct http_resp *resp)
{
    char secret[HF_WEBHOOK_SECRET_CHARS + 1];
    struct json_t *body = NULL;
    struct webhook_endpoint e;
    const char *url;
    int rc;

    if (api_json_body(req, resp, &body) != 0)
        return;
    memset(&e, 0, sizeof e);
    snprintf(e.enabled_events, sizeof e.enabled_events, "*");
    if (api_required_string(body, "url", &url, resp) != 0 ||
        read_settings(body, &e, resp) != 0 || check_url(w, key, req, url, resp) != 0)
        goto out;

    token_id("we_", e.id, sizeof e.id);
    snprintf(e.tenant_id, sizeof e.tenant_id, "%s", key->tenant_id);
    snprintf(e.mode, sizeof e.mode, "%s", key->mode);
    snprintf(e.url, sizeof e.url, "%s", url);
    e.created = clock_now_s();
    webhook_secret_new(w->webhook_key, &e, secret);
    rc = store_endpoint_create(w->store, &e);
    if (rc == HF_ELIMIT) {
        char msg[96];
        snprintf(msg, sizeof msg, "A tenant may have at most %d webhook endpoints "
                 "per mode; delete one first.", HF_ENDPOINTS_MAX);
        api_fail(resp, rc, NULL, msg, NULL);
    } else if (rc != 0) {
        server_error(resp, rc);
    } else {
        reply_with_secret(resp, 201, &e, secret);
    }
    token_wipe(secret, sizeof secret);
out:
    json_free(body);
}

/* PUT: change what the body names (url, description, enabled_events,
 * disabled); the rest, the secret included, stays. */
static void update_endpoint(struct worker *w, const struct api_key *key,
                            const struct http_req *req, const char *id,
                            struct http_resp *resp)
{
    struct json_t *body = NULL;
    struct webhook_endpoint e;
    const char *url;
    int rc;

    if (api_json_body(req, resp, &body) != 0)
        return;
    rc = store_endpoint_get(w->store, key->tenant_id, key->mode, id, &e);
    if (rc != 0) {
        if (rc == HF_ENOTFOUND)
            not_found(resp);
        else
            server_error(resp, rc);
        goto out;
    }
    rc = json_member_string(body, "url", &url);
    if (rc == HF_EINVAL || (rc == 0 && !*url)) {
        api_fail(resp, HF_EINVAL, NULL, "url must be a non-empty string.", "url");
        goto out;
    }
    if (rc == 0 && check_url(w, key, req, url, resp) != 0)
        goto out;
    if (rc == 0)
        snprintf(e.url, sizeof e.url, "%s", url);
    if (read_settings(body, &e, resp) != 0)
        goto out;
    rc = store_endpoint_update(w->store, &e);
    if (rc == HF_ENOTFOUND)
        not_found(resp);
    else if (rc != 0)
        server_error(resp, rc);
    else
        api_reply(resp, 200, endpoint_json(&e));
out:
    json_free(body);
}

#define ROLL_OVERLAP_DEFAULT (24 * 3600)
#define ROLL_OVERLAP_MAX (7 * 24 * 3600)

/* POST {id}/roll_secret [{"overlap_seconds": N}]: a new secret, shown this
 * once; the old one keeps signing beside it for N seconds (default a day,
 * at most a week, 0 to drop it at once), so receivers can switch. */
static void roll_secret(struct worker *w, const struct api_key *key,
                        const struct http_req *req, const char *id,
                        struct http_resp *resp)
{
    char secret[HF_WEBHOOK_SECRET_CHARS + 1];
    struct json_t *body = NULL;
    struct webhook_endpoint e;
    long long overlap = ROLL_OVERLAP_DEFAULT;
    int rc;

    if (req->body_len > 0) { /* the body is optional */
        if (api_json_body(req, resp, &body) != 0)
            return;
        rc = json_member_int(body, "overlap_seconds", &overlap);
        if (rc == HF_EINVAL || overlap < 0 || overlap > ROLL_OVERLAP_MAX) {
            api_fail(resp, HF_EINVAL, NULL, "overlap_seconds must be an integer from 0 to "
                 "604800.", "overlap_seconds");
            goto out;
        }
    }
    rc = store_endpoint_get(w->store, key->tenant_id, key->mode, id, &e);
    if (rc == 0) {
        webhook_secret_new(w->webhook_key, &e, secret);
        e.previous_until_ms = overlap ? clock_wall_ms() + overlap * 1000 : 0;
        rc = store_endpoint_roll_secret(w->store, &e);
    }
    if (rc == HF_ENOTFOUND) {
        not_found(resp);
    } else if (rc != 0) {
        server_error(resp, rc);
    } else {
        reply_with_secret(resp, 200, &e, secret);
    }
    token_wipe(secret, sizeof secret);
out:
    json_free(body);
}

static void list_endpoints(struct worker *w, const struct api_key *key,
                           struct http_resp *resp)
{
    struct webhook_endpoint *all = calloc(HF_ENDPOINTS_MAX, sizeof *all);
    struct json_t *arr;
    size_t n;
    int rc;

    if (!all) {
        server_error(resp, HF_ENOMEM);
        return;
    }
    rc = store_endpoint_list(w->store, key->tenant_id, key->mode, all, HF_ENDPOINTS_MAX, &n);
    if (rc != 0) {
        server_error(resp, rc);
    } else {
        arr = json_new_array();
        for (size_t i = 0; i < n; i++)
            json_push(arr, endpoint_json(&all[i]));
        api_reply(resp, 200, arr);
    }
    free(all);
}

static void get_endpoint(struct worker *w, const struct api_key *key, const char *id,
                         struct http_resp *resp)
{
    struct webhook_endpoint e;
    int rc = store_endpoint_get(w->store, key->tenant_id, key->mode, id, &e);

    if (rc == HF_ENOTFOUND)
        not_found(resp);
    else if (rc != 0)
        server_error(resp, rc);
    else
        api_reply(resp, 200, endpoint_json(&e));
}

static void delete_endpoint(struct worker *w, const struct api_key *key, const char *id,
                            struct http_resp *resp)
{
    int rc = store_endpoint_delete(w->store, key->tenant_id, key->mode, id,
                                   clock_now_s());
    struct json_t *o;

    if (rc == HF_ENOTFOUND) {
        not_found(resp);
    } else if (rc != 0) {
        server_error(resp, rc);
    } else {
        o = json_new_object();
        json_put_string(o, "id", id);
        json_put_bool(o, "deleted", 1);
        api_reply(resp, 200, o);
    }
}

void webhook_api_route(struct worker *w, const struct api_key *key,
                       const struct http_req *req, const char *rest,
                       struct http_resp *resp)
{
    const char *slash;
    char id[HF_ID_MAX];

    if (*rest == '\0' || strcmp(rest, "/") == 0) {
        if (strcmp(req->method, "POST") == 0)
            create_endpoint(w, key, req, resp);
        else if (strcmp(req->method, "GET") == 0)
            list_endpoints(w, key, resp);
        else
            api_method_not_allowed(resp, "GET, POST");
        return;
    }
    rest++;
    slash = strchr(rest, '/');
    if (!api_id_ok(rest, slash ? (size_t)(slash - rest) : strlen(rest))) {
        not_found(resp);
        return;
    }
    snprintf(id, sizeof id, "%.*s", (int)(slash ? slash - rest : (long)strlen(rest)), rest);
    if (slash) {
        if (strcmp(slash, "/roll_secret") != 0)
            api_fail(resp, HF_ENOTFOUND, NULL, "No such resource.", NULL);
        else if (strcmp(req->method, "POST") == 0)
            roll_secret(w, key, req, id, resp);
        else
            api_method_not_allowed(resp, "POST");
        return;
    }
    if (strcmp(req->method, "GET") == 0)
        get_endpoint(w, key, id, resp);
    else if (strcmp(req->method, "PUT") == 0)
        update_endpoint(w, key, req, id, resp);
    else if (strcmp(req->method, "DELETE") == 0)
        delete_endpoint(w, key, id, resp);
    else
        api_method_not_allowed(resp, "GET, PUT, DELETE");
}
