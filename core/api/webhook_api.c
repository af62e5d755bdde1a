/* webhook_api.c - /api/v1/webhook_endpoints: register, read and delete the
 * URLs a tenant's events are sent to. An endpoint belongs to the tenant and
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
#include "store.h"
#include "token.h"
#include "url.h"
#include "webhook_secret.h"
#include "clock.h"

static struct json_t *endpoint_json(const struct webhook_endpoint *e)
{
    struct json_t *o = json_new_object();

    json_put_string(o, "id", e->id);
    json_put_string(o, "url", e->url);
    json_put_string(o, "mode", e->mode);
    json_put_int(o, "created", e->created);
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

static void create_endpoint(struct worker *w, const struct api_key *key,
                            const struct http_req *req, struct http_resp *resp)
{
    char err[256], secret[HF_WEBHOOK_SECRET_CHARS + 1];
    struct json_t *body = NULL, *o;
    struct webhook_endpoint e;
    struct policy_verdict v;
    struct policy_ctx ctx;
    const char *url;
    struct url u;
    int rc;

    if (api_json_body(req, resp, &body) != 0)
        return;
    if (api_required_string(body, "url", &url, resp) != 0)
        goto out;
    if ((rc = url_parse(url, strlen(url), &u)) != URL_OK) {
        snprintf(err, sizeof err, "url is not acceptable: %s.", url_strerror(rc));
        bad_url(resp, err);
        goto out;
    }
    if ((rc = store_tenant_get(w->store, key->tenant_id, &w->tenant)) != 0) {
        server_error(resp, rc);
        goto out;
    }
    if (policy_acquire(w->engine, &w->policy) != 0) {
        api_policy_error(resp);
        goto out;
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
        goto out;
    }
    resp->decision = v.allow ? "allow" : "deny";
    if (!v.allow) {
        bad_url(resp, v.message);
        goto out;
    }

    memset(&e, 0, sizeof e);
    token_id("we_", e.id, sizeof e.id);
    snprintf(e.tenant_id, sizeof e.tenant_id, "%s", key->tenant_id);
    snprintf(e.mode, sizeof e.mode, "%s", key->mode);
    snprintf(e.url, sizeof e.url, "%s", url);
    e.created = ctx.now;
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
        o = endpoint_json(&e);
        json_put_string(o, "secret", secret); /* shown this once */
        api_reply(resp, 201, o);
        resp->body_secret = 1;
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
    if (!api_id_ok(rest, strlen(rest))) {
        not_found(resp);
        return;
    }
    snprintf(id, sizeof id, "%s", rest);
    if (strcmp(req->method, "GET") == 0)
        get_endpoint(w, key, id, resp);
    else if (strcmp(req->method, "DELETE") == 0)
        delete_endpoint(w, key, id, resp);
    else
        api_method_not_allowed(resp, "GET, DELETE");
}
