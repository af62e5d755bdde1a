/* admin.c - admin routes: /healthz, /readyz, /metrics, /admin/v1/policy,
 * /admin/v1/policy/reload; in build/hostflow-test also /admin/v1/test/clock. */
#define _POSIX_C_SOURCE 200809L
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "periodic.h"
#include "policy.h"
#include "store.h"
#include "token.h"

struct admin_worker {
    const struct admin_shared *shared;
    struct store *store;
};

void *admin_worker_new(void *shared)
{
    struct admin_worker *w = calloc(1, sizeof *w);
    const struct admin_shared *sh = shared;
    char err[512];

    if (!w)
        return NULL;
    w->shared = sh;
    if (store_open(sh->cfg->db_path, &w->store, err, sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "admin worker: %s", err);
        free(w);
        return NULL;
    }
    return w;
}

void admin_worker_free(void *worker)
{
    struct admin_worker *w = worker;

    if (!w)
        return;
    store_close(w->store);
    free(w);
}

static void text(struct http_resp *resp, int status, const char *content_type,
                 char *body)
{
    resp->status = status;
    resp->content_type = content_type;
    resp->body = body;
    resp->body_len = body ? strlen(body) : 0;
}

static void reply_json(struct http_resp *resp, int status, struct json_t *o)
{
    text(resp, status, "application/json", json_encode(o));
    json_free(o);
}

static void error_json(struct http_resp *resp, int status, const char *code,
                       const char *message)
{
    struct json_t *o = json_new_object();

    json_put_string(o, "error_code", code);
    json_put_string(o, "message", message);
    resp->error_code = code;
    reply_json(resp, status, o);
}

/* Bearer token check, constant time in the token's content. */
static int authorized(const struct admin_shared *sh, const struct http_req *req)
{
    const char *h = http_req_header(req, "Authorization");
    unsigned char want[HF_HASH_BYTES], got[HF_HASH_BYTES];

    if (!sh->token)
        return 1;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    /* hashing first makes the comparison independent of both lengths */
    token_hash(sh->token, strlen(sh->token), want);
    token_hash(h + 7, strlen(h + 7), got);
    return token_equal(want, got, HF_HASH_BYTES);
}

static struct json_t *status_json(const struct policy_status *st)
{
    struct json_t *o = json_new_object(), *reloads = json_new_object();

    json_put_string(o, "version", st->version);
    json_put_string(o, "source", st->source);
    /* what the source offers; differs from version while it fails here */
    json_put_string(o, "wanted_version", st->wanted);
    json_put_int(o, "loaded_at", st->loaded_at);
    json_put_int(reloads, "ok", (long long)st->reloads_ok);
    json_put_int(reloads, "unchanged", (long long)st->reloads_unchanged);
    json_put_int(reloads, "failed", (long long)st->reloads_failed);
    json_put(o, "reloads", reloads);
    if (st->last_error_at) {
        struct json_t *e = json_new_object();
        json_put_string(e, "message", st->last_error);
        json_put_int(e, "at", st->last_error_at);
        json_put(o, "last_error", e);
    } else {
        json_put_null(o, "last_error");
    }
    return o;
}

static void policy_reload(struct admin_worker *w, struct http_resp *resp)
{
    struct policy_status st;
    char msg[HF_POLICY_ERROR_MAX];
    int changed;
    struct json_t *o;

    if (policy_engine_reload(w->shared->engine, &changed, msg, sizeof msg) != 0) {
        error_json(resp, 422, "policy_rejected", msg);
        return;
    }
    policy_engine_status(w->shared->engine, &st);
    o = status_json(&st);
    json_put_bool(o, "changed", changed);
    reply_json(resp, 200, o);
}

#ifdef HOSTFLOW_TEST_CLOCK
#define ADVANCE_MAX_S (400LL * 86400) /* more than any expiry or back-off */

/* POST /admin/v1/test/clock {"advance_seconds": N}: move the clock forward
 * and run every periodic thread once (an expiry sweep, say) before
 * answering, so a test sees what time would bring without waiting for it. */
static void test_clock_advance(const struct http_req *req, struct http_resp *resp)
{
    struct json_t *body = NULL, *o;
    long long seconds = 0;
    char msg[160];

    if (json_parse_body(req->body ? req->body : "", req->body_len, &body, msg, sizeof msg) != 0 ||
        json_member_int(body, "advance_seconds", &seconds) != 0 || seconds < 1 ||
        seconds > ADVANCE_MAX_S) {
        json_free(body);
        snprintf(msg, sizeof msg, "Expected {\"advance_seconds\": N}, 1 <= N <= %lld.",
                 ADVANCE_MAX_S);
        error_json(resp, 400, hf_err_code(HF_EINVAL), msg);
        return;
    }
    json_free(body);
    o = json_new_object();
    json_put_int(o, "offset_seconds", clock_test_advance(seconds));
    periodic_run_all();
    reply_json(resp, 200, o);
}
#endif

static char *metrics(struct admin_worker *w)
{
    struct policy_status st;
    struct metrics_policy m;

    policy_engine_status(w->shared->engine, &st);
    m = (struct metrics_policy){st.version, st.loaded_at, st.reloads_ok, st.reloads_unchanged,
                                st.reloads_failed};
    return metrics_render(&m);
}

void admin_handle(void *worker, const struct http_req *req, struct http_resp *resp)
{
    struct admin_worker *w = worker;
    int get = strcmp(req->method, "GET") == 0;
    int post = strcmp(req->method, "POST") == 0;

    http_resp_header(resp, "Cache-Control", "no-store");
    if (strcmp(req->path, "/healthz") == 0 && get) {
        text(resp, 200, "text/plain", strdup("ok\n"));
        return;
    }
    if (strcmp(req->path, "/readyz") == 0 && get) {
        if (store_ping(w->store) == 0)
            text(resp, 200, "text/plain", strdup("ready\n"));
        else
            text(resp, 503, "text/plain", strdup("database not writable\n"));
        return;
    }
    if (!authorized(w->shared, req)) {
        error_json(resp, 403, "invalid_admin_token", "Missing or invalid admin token.");
        return;
    }
    if (strcmp(req->path, "/metrics") == 0 && get) {
        text(resp, 200, "text/plain; version=0.0.4", metrics(w));
    } else if (strcmp(req->path, "/admin/v1/policy") == 0 && get) {
        struct policy_status st;
        policy_engine_status(w->shared->engine, &st);
        reply_json(resp, 200, status_json(&st));
    } else if (strcmp(req->path, "/admin/v1/policy/reload") == 0 && post) {
        policy_reload(w, resp);
#ifdef HOSTFLOW_TEST_CLOCK
    } else if (strcmp(req->path, "/admin/v1/test/clock") == 0 && post) {
        test_clock_advance(req, resp);
#endif
    } else {
        error_json(resp, 404, hf_err_code(HF_ENOTFOUND), "No such admin route (or wrong method).");
    }
}
