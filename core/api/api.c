/* api.c - the JSON API: authentication, validation, policy, store. Thin:
 * every decision is delegated to url.c, policy.h or store.h. */
#define _POSIX_C_SOURCE 200809L
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "policy.h"
#include "session_json.h"
#include "store.h"
#include "token.h"
#include "url.h"
#include "clock.h"

#define KEY_SECRET_MAX 128

/* Set resp to the flat error body. param may be NULL. */
void api_fail(struct http_resp *resp, int rc, const char *code,
                 const char *message, const char *param)
{
    struct json_t *o = json_new_object();

    resp->status = hf_err_status(rc);
    resp->error_code = code ? code : hf_err_code(rc);
    json_put_string(o, "error_code", resp->error_code);
    json_put_string(o, "message", message);
    if (param)
        json_put_string(o, "param", param);
    resp->body = json_encode(o);
    resp->body_len = strlen(resp->body);
    json_free(o);
}

void api_reply(struct http_resp *resp, int status, struct json_t *v)
{
    api_reply_text(resp, status, json_encode(v));
    json_free(v);
}

void api_reply_text(struct http_resp *resp, int status, char *body)
{
    resp->status = status;
    resp->body = body;
    resp->body_len = strlen(body);
}

/* Bearer key → key row. Missing, malformed, unknown and revoked keys all
 * cost a hash and one indexed lookup, and all answer the same. */
static int authenticate(struct worker *w, const struct http_req *req,
                        struct api_key *key)
{
    const char *h = http_req_header(req, "Authorization");
    unsigned char hash[HF_HASH_BYTES];
    const char *secret = "";
    size_t len = 0;
    int rc;

    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        secret = h + 7;
        len = strlen(secret);
        if (len > KEY_SECRET_MAX)
            len = 0;
    }
    token_hash(secret, len, hash);
    rc = store_key_find(w->store, hash, key);
    if (rc == HF_ESTORE)
        return rc;
    if (rc != 0 || len == 0 || key->revoked_at)
        return HF_EAUTH;
    return 0;
}

/* Content-Type is application/json, parameters such as charset allowed. */
int api_is_json(const char *ct)
{
    size_t n = strlen("application/json");

    return ct && strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

int api_json_body(const struct http_req *req, struct http_resp *resp, struct json_t **out)
{
    char err[256];

    *out = NULL;
    if (!api_is_json(http_req_header(req, "Content-Type"))) {
        api_fail(resp, HF_EINVAL, NULL, "Content-Type must be application/json.", NULL);
        return -1;
    }
    if (json_parse_body(req->body ? req->body : "", req->body_len, out, err,
                        sizeof err) != 0) {
        api_fail(resp, HF_EINVAL, NULL, err, NULL);
        return -1;
    }
    return 0;
}

int api_required_string(const struct json_t *body, const char *key, const char **out,
                        struct http_resp *resp)
{
    char msg[96];
    int rc = json_member_string(body, key, out);

    if (rc == 0 && **out)
        return 0;
    snprintf(msg, sizeof msg, rc == HF_EINVAL ? "%s must be a string." : "%s is required.", key);
    api_fail(resp, HF_EINVAL, NULL, msg, key);
    return -1;
}

void api_policy_error(struct http_resp *resp)
{
    resp->decision = "error";
    api_fail(resp, HF_EPOLICY, NULL, "The policy could not decide; the request was refused.",
             NULL);
}

/* Idempotency-Key: 1..255 printable ASCII characters. */
static int idempotency_header(const struct http_req *req, const char **out)
{
    const char *k = http_req_header(req, "Ten99Policy-Idempotent-Key");
    size_t n;

    if (!k)
        k = http_req_header(req, "Idempotency-Key");
    *out = k;
    if (!k)
        return 0;
    n = strlen(k);
    if (n == 0 || n > HF_IDEMPOTENCY_KEY_MAX)
        return HF_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x21 || k[i] > 0x7e)
            return HF_EINVAL;
    return 0;
}

static void replay(struct http_resp *resp, const struct session *s)
{
    http_resp_header(resp, "Idempotent-Replayed", "true");
    api_reply_text(resp, 201, session_json(s, NULL));
}

static const char *decision_of(const struct policy_verdict *v)
{
    return v->allow ? "allow" : "deny";
}

/* What one attempt at creating a session came to. */
enum created { CREATED, ANSWERED, STALE, LATER };

/* The 201 of a session, its URL built from the token. */
static void reply_created(struct http_resp *resp, const struct session *s,
                          const char *public_url, const char *token)
{
    char url[512 + HF_URL_TOKEN_CHARS];

    snprintf(url, sizeof url, "%s/payment/setup/%s_%s", public_url, s->mode, token);
    api_reply_text(resp, 201, session_json(s, url));
    resp->body_secret = 1;
    token_wipe(url, sizeof url);
    metrics_session_created();
}

/* The writer's answer to a later insert (on its thread). */
static void inserted_later(void *arg, int rc)
{
    struct later_create *c = arg;

    if (rc == 0)
        reply_created(c->resp, &c->session, c->public_url, c->token);
    else if (rc != HF_ESTALE)
        api_fail(c->resp, HF_ESTORE, NULL, "The server could not handle the request.", NULL);
    token_wipe(c->token, sizeof c->token);
    if (rc == HF_ESTALE) { /* access changed under it: answered again from a snapshot */
        c->again = 1;
        http_later_answer_again(c->later);
    } else {
        http_later_send(c->later);
    }
}

/* Leave the insert and the answer to the writer, so that this thread does
 * not sleep until the commit: LATER, STALE, or ANSWERED when it must be
 * inserted here after all (nothing was queued). */
static enum created insert_later(struct worker *w, const struct http_req *req,
                                 struct http_resp *resp, const struct session *s,
                                 const char *token, const unsigned char *token_hash,
                                 long long now, int rate)
{
    struct later_create *c = &w->later;
    int rc;

    if (!store_inserts_later(w->store) ||
        !(c->later = http_later_begin(req, resp, &c->resp)))
        return ANSWERED;
    c->session = *s;
    memcpy(c->token, token, sizeof c->token);
    memcpy(c->token_hash, token_hash, sizeof c->token_hash);
    c->public_url = w->cfg->public_url;
    c->rate = rate;
    c->again = 0;
    rc = store_session_insert_later(w->store, &c->session, c->token_hash, now,
                                    inserted_later, c);
    if (rc == 0)
        return LATER;
    token_wipe(c->token, sizeof c->token);
    http_later_cancel(c->later);
    return rc == HF_ESTALE ? STALE : ANSWERED;
}

/* rate: the rate limits' answer for this request, or -1 until taken (an
 * attempt run again does not count twice). */
static enum created create_session(struct worker *w, const struct api_key *key,
                                   const struct http_req *req, int *rate,
                                   struct http_resp *resp)
{
    const char *contractor, *return_url, *idem_key;
    struct idempotency idem = {0};
    struct policy_verdict verdict;
    struct policy_ctx ctx;
    struct session s;
    struct url u;
    struct json_t *body = NULL;
    char err[256], token[HF_URL_TOKEN_CHARS + 1], url[512 + HF_URL_TOKEN_CHARS];
    char idem_scoped[HF_IDEMPOTENCY_KEY_MAX + 16];
    unsigned char token_digest[HF_HASH_BYTES];
    long long now = clock_now_s();
    enum created outcome = ANSWERED;
    int rc, retry_after = *rate;

    /* every attempt counts, valid or not: per key, and per client address */
    if (retry_after < 0) {
        retry_after = ratelimit_take(w->limits->create_by_key, key->id, ratelimit_now_ms());
        rc = ratelimit_take(w->limits->create_by_ip, req->remote_addr, ratelimit_now_ms());
        if (rc > retry_after)
            retry_after = rc;
        *rate = retry_after;
    }
    if (idempotency_header(req, &idem_key) != 0) {
        api_fail(resp, HF_EINVAL, NULL, "Idempotency key must be 1 to 255 printable "
             "ASCII characters.", "Idempotency-Key");
        return ANSWERED;
    }
    /* the SDKs read the key back from the answer, whatever it is */
    if (idem_key)
        http_resp_header(resp, "Ten99Policy-Idempotent-Key", idem_key);
    if (api_json_body(req, resp, &body) != 0)
        return ANSWERED;
    if (api_required_string(body, "contractor", &contractor, resp) != 0 ||
        api_required_string(body, "return_url", &return_url, resp) != 0)
        goto out;
    if (idem_key) {
        /* live and test keys of one tenant are separate worlds */
        snprintf(idem_scoped, sizeof idem_scoped, "%s:%s", key->mode, idem_key);
        idem.key = idem_scoped;
        token_hash(req->body, req->body_len, idem.request_hash);
        rc = store_idempotency_find(w->store, key->tenant_id, key->mode, &idem, now, &s);
        if (rc == HF_EEXISTS) {
            replay(resp, &s);
            goto out;
        }
        if (rc == HF_EIDEMPOTENCY) {
            api_fail(resp, rc, NULL, "This idempotency key was used with a "
                 "different request body.", NULL);
            goto out;
        }
        if (rc != HF_ENOTFOUND) {
            api_fail(resp, HF_ESTORE, NULL, "The server could not handle the request.", NULL);
            goto out;
        }
    }
    rc = strlen(contractor) < HF_ID_MAX
             ? store_contractor_check(w->store, key->tenant_id, contractor)
             : HF_ENOTFOUND;
    if (rc != 0) {
        api_fail(resp, rc == HF_ENOTFOUND ? HF_ENOCONTRACTOR : rc, NULL,
             rc == HF_ENOTFOUND ? "No such contractor." : "The server could not "
             "handle the request.", rc == HF_ENOTFOUND ? "contractor" : NULL);
        goto out;
    }
    rc = url_parse(return_url, strlen(return_url), &u);
    if (rc != URL_OK) {
        snprintf(err, sizeof err, "return_url is not acceptable: %s.", url_strerror(rc));
        api_fail(resp, HF_EURL, NULL, err, "return_url");
        goto out;
    }
    if (store_tenant_get(w->store, key->tenant_id, &w->tenant) != 0) {
        api_fail(resp, HF_ESTORE, NULL, "The server could not handle the request.", NULL);
        goto out;
    }

    /* the version this request starts with is the one it finishes with */
    if (policy_acquire(w->engine, &w->policy) != 0) {
        api_policy_error(resp);
        goto out;
    }
    ctx = (struct policy_ctx){
        .tenant = &w->tenant, .mode = key->mode, .contractor_id = contractor,
        .method = req->method, .path = req->path, .remote_addr = req->remote_addr,
        .now = now, .rate_limited = retry_after > 0, .retry_after = retry_after};
    buf_copy(resp->policy_version, sizeof resp->policy_version, policy_version(w->policy));
    rc = policy_check_tenant(w->policy, &ctx, &verdict);
    resp->policy_us = verdict.us;
    resp->policy_instructions = verdict.instructions;
    if (rc == 0 && verdict.allow) {
        rc = policy_check_return_url(w->policy, return_url, &u, &ctx, &verdict);
        resp->policy_us += verdict.us;
        resp->policy_instructions += verdict.instructions;
    }
    policy_release(w->engine, &w->policy); /* not held while the insert waits */
    if (rc != 0) {
        api_policy_error(resp);
        goto out;
    }
    resp->decision = decision_of(&verdict);
    if (!verdict.allow) {
        int is_url = strcmp(verdict.code, "invalid_return_url") == 0;
        api_fail(resp, HF_EDENIED, verdict.code, verdict.message,
             is_url ? "return_url" : NULL);
        resp->status = verdict.status;
        if (resp->status == 429) {
            char seconds[16];
            snprintf(seconds, sizeof seconds, "%d", retry_after > 0 ? retry_after : 1);
            http_resp_header(resp, "Retry-After", seconds);
        }
        goto out;
    }

    memset(&s, 0, sizeof s);
    token_id("hps_", s.id, sizeof s.id);
    buf_copy(s.tenant_id, sizeof s.tenant_id, key->tenant_id);
    buf_copy(s.contractor_id, sizeof s.contractor_id, contractor);
    buf_copy(s.return_url, sizeof s.return_url, return_url);
    buf_copy(s.mode, sizeof s.mode, key->mode);
    buf_copy(s.status, sizeof s.status, "pending");
    buf_copy(s.policy_version, sizeof s.policy_version, resp->policy_version);
    s.created = now;
    s.expires_at = now + w->cfg->session_ttl;
    token_mint_url(token);
    /* the key hashes "<mode>_<token>": the URL only works with its prefix */
    snprintf(url, sizeof url, "%s_%s", s.mode, token);
    token_url_key(url, strlen(url), token_digest);
    token_wipe(url, sizeof url);
    if (!idem.key && (outcome = insert_later(w, req, resp, &s, token, token_digest, now,
                                             *rate)) != ANSWERED) {
        token_wipe(token, sizeof token);
        goto out;
    }
    rc = store_session_insert(w->store, &s, token_digest, idem.key ? &idem : NULL, now);
    if (rc == HF_ESTALE) {
        outcome = STALE;
    } else if (rc == HF_EEXISTS) {
        replay(resp, &s);
    } else if (rc == HF_EIDEMPOTENCY) {
        api_fail(resp, rc, NULL, "This idempotency key was used with a different "
             "request body.", NULL);
    } else if (rc != 0) {
        api_fail(resp, HF_ESTORE, NULL, "The server could not handle the request.", NULL);
    } else {
        reply_created(resp, &s, w->cfg->public_url, token);
        outcome = CREATED;
    }
    token_wipe(token, sizeof token);
out:
    json_free(body);
    return outcome;
}

/* "hps_…" ids: letters, digits and '_' only, shorter than HF_ID_MAX. */
int api_id_ok(const char *id, size_t n)
{
    if (n == 0 || n >= HF_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
              (id[i] >= '0' && id[i] <= '9') || id[i] == '_'))
            return 0;
    return 1;
}

static void not_found(struct http_resp *resp)
{
    api_fail(resp, HF_ENOSESSION, NULL, "No such payment session.", "id");
}

static void get_session(struct worker *w, const struct api_key *key,
                        const char *id, struct http_resp *resp)
{
    struct session s;
    int rc = store_session_get(w->store, key->tenant_id, key->mode, id, clock_now_s(),
                               &s);

    if (rc == HF_ENOTFOUND)
        not_found(resp);
    else if (rc != 0)
        api_fail(resp, rc, NULL, "The server could not handle the request.", NULL);
    else
        api_reply_text(resp, 200, session_json(&s, NULL));
}

static void cancel_session(struct worker *w, const struct api_key *key,
                           const char *id, struct http_resp *resp)
{
    struct session s;
    int rc = store_session_cancel(w->store, key->tenant_id, key->mode, id,
                                  clock_now_s(), &s);

    if (rc == 0) {
        metrics_session_cancelled();
        api_reply_text(resp, 200, session_json(&s, NULL));
    } else if (rc == HF_ENOTFOUND)
        not_found(resp);
    else if (rc == HF_ENOTPENDING)
        api_fail(resp, rc, NULL, "The session is no longer pending.", NULL);
    else if (rc == HF_EEXPIRED)
        api_fail(resp, rc, NULL, "The session has expired.", NULL);
    else
        api_fail(resp, rc, NULL, "The server could not handle the request.", NULL);
}

/* A query parameter that must be absent or a valid id. 0/-1 absent/error. */
static int id_param(const struct http_req *req, const char *name, char *out,
                    const char **ptr, struct http_resp *resp)
{
    char msg[96];
    int rc = http_query_param(req, name, out, HF_ID_MAX);

    *ptr = NULL;
    if (rc == -1)
        return 0;
    if (rc == 0 && api_id_ok(out, strlen(out))) {
        *ptr = out;
        return 0;
    }
    snprintf(msg, sizeof msg, "%s must be an object id.", name);
    api_fail(resp, HF_EINVAL, NULL, msg, name);
    return -1;
}

int api_page_params(const struct http_req *req, struct list_page *p, char *after,
                    char *before, struct http_resp *resp)
{
    char limit[8];
    int rc = http_query_param(req, "limit", limit, sizeof limit);

    p->limit = 10;
    if (rc != -1) {
        char *end;
        long v = rc == 0 ? strtol(limit, &end, 10) : 0;
        if (rc != 0 || end == limit || *end || v < 1 || v > HF_LIST_LIMIT_MAX) {
            api_fail(resp, HF_EINVAL, NULL, "limit must be an integer from 1 to 100.", "limit");
            return -1;
        }
        p->limit = (int)v;
    }
    if (id_param(req, "starting_after", after, &p->starting_after, resp) != 0 ||
        id_param(req, "ending_before", before, &p->ending_before, resp) != 0)
        return -1;
    if (p->starting_after && p->ending_before) {
        api_fail(resp, HF_EINVAL, NULL, "Use starting_after or ending_before, not both.",
             "ending_before");
        return -1;
    }
    return 0;
}

void api_unknown_cursor(struct http_resp *resp, const struct list_page *page, const char *what)
{
    char msg[64];

    snprintf(msg, sizeof msg, "The cursor names no %s.", what);
    api_fail(resp, HF_EINVAL, NULL, msg, page->starting_after ? "starting_after" : "ending_before");
}

static void list_sessions(struct worker *w, const struct api_key *key,
                          const struct http_req *req, struct http_resp *resp)
{
    static const char *const states[] = {"pending", "completed", "cancelled", "expired"};
    char contractor[HF_ID_MAX], status[16], after[HF_ID_MAX], before[HF_ID_MAX];
    struct session_query q = {0};
    struct json_text list = {0};
    size_t n;
    int rc;

    if (api_page_params(req, &q.page, after, before, resp) != 0)
        return;
    rc = http_query_param(req, "status", status, sizeof status);
    if (rc != -1) {
        for (size_t i = 0; rc == 0 && i < 4 && !q.status; i++)
            if (strcmp(status, states[i]) == 0)
                q.status = states[i];
        if (!q.status) {
            api_fail(resp, HF_EINVAL, NULL, "status must be pending, completed, "
                 "cancelled or expired.", "status");
            return;
        }
    }
    rc = http_query_param(req, "contractor", contractor, sizeof contractor);
    if (rc == -2 || (rc == 0 && !api_id_ok(contractor, strlen(contractor))))
        contractor[0] = '\0'; /* no such contractor: nothing to list, cursors still checked */
    q.contractor_id = rc != -1 ? contractor : NULL;
    rc = store_session_list(w->store, key->tenant_id, key->mode, &q, clock_now_s(),
                            w->page, &n);
    if (rc == HF_ENOTFOUND) {
        api_unknown_cursor(resp, &q.page, "payment session");
        return;
    }
    if (rc != 0) {
        api_fail(resp, rc, NULL, "The server could not handle the request.", NULL);
        return;
    }
    json_text_open(&list, NULL, '[');
    for (size_t i = 0; i < n; i++)
        session_json_write(&list, NULL, &w->page[i], NULL);
    json_text_close(&list, ']');
    api_reply_text(resp, 200, json_text_finish(&list));
}

void api_method_not_allowed(struct http_resp *resp, const char *allow)
{
    http_resp_header(resp, "Allow", allow);
    api_fail(resp, HF_EMETHOD, NULL, "This method is not allowed here.", NULL);
}


/* Within /api/v1/payment/sessions, rest is what follows it. */
static void sessions_route(struct worker *w, const struct api_key *key,
                           const struct http_req *req, const char *rest,
                           struct http_resp *resp)
{
    const char *slash;
    char id[HF_ID_MAX];

    if (*rest == '\0' || strcmp(rest, "/") == 0) {
        if (strcmp(req->method, "GET") == 0)
            list_sessions(w, key, req, resp);
        else
            api_method_not_allowed(resp, "GET, POST"); /* POST: create_route */
        return;
    }
    rest++;
    slash = strchr(rest, '/');
    if (!api_id_ok(rest, slash ? (size_t)(slash - rest) : strlen(rest))) {
        not_found(resp);
        return;
    }
    snprintf(id, sizeof id, "%.*s", (int)(slash ? slash - rest : (long)strlen(rest)), rest);
    if (!slash) {
        if (strcmp(req->method, "GET") == 0)
            get_session(w, key, id, resp);
        else
            api_method_not_allowed(resp, "GET");
    } else if (strcmp(slash, "/cancel") == 0) {
        if (strcmp(req->method, "POST") == 0)
            cancel_session(w, key, id, resp);
        else
            api_method_not_allowed(resp, "POST");
    } else {
        api_fail(resp, HF_ENOTFOUND, NULL, "No such resource.", NULL);
    }
}

/* What follows prefix in path when path is prefix or prefix/..., else NULL. */
static const char *under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);

    if (strncmp(path, prefix, n) != 0 || (path[n] != '\0' && path[n] != '/'))
        return NULL;
    return path + n;
}

/* The request's key into key and its tenant into the log line: 0; else
 * the refusal is answered (missing, malformed, unknown and revoked keys
 * alike) and the code returned. */
static int authorize(struct worker *w, const struct http_req *req, struct api_key *key,
                     struct http_resp *resp)
{
    int rc = authenticate(w, req, key);

    if (rc != 0) {
        api_fail(resp, rc, NULL, rc == HF_EAUTH ? "Missing or invalid API key."
             : "The server could not handle the request.", NULL);
        return rc;
    }
    snprintf(resp->tenant, sizeof resp->tenant, "%s", key->tenant_id);
    return 0;
}

/* The answer of an attempt that must not stand, before another one. */
static void forget_answer(struct http_resp *resp)
{
    if (resp->body && resp->body_secret)
        token_wipe(resp->body, resp->body_len);
    free(resp->body);
    memset(resp, 0, sizeof *resp);
    resp->status = 500;
    http_resp_header(resp, "Cache-Control", "no-store");
}

/* POST /api/v1/payment/sessions. The first attempt takes the key, tenant
 * and contractor from what the worker remembers, without a snapshot
 * (store_read_begin_optimistic); a new session is committed only if that
 * was current, and any other answer stands only if it still is. Else
 * (an operator changed access meanwhile) the request is answered again
 * from a snapshot: its policy calls run again, its rate limits are not
 * taken twice. */
static void create_route(struct worker *w, const struct http_req *req, struct http_resp *resp)
{
    struct api_key key;
    int rate = -1, first = 1;

    if (w->later.again) { /* the writer found access changed under the first try */
        w->later.again = 0;
        rate = w->later.rate;
        first = 0;
    }
    for (int optimistic = first; optimistic >= 0; optimistic--) {
        enum created outcome = ANSWERED;

        if (optimistic)
            store_read_begin_optimistic(w->store);
        else
            store_read_begin(w->store);
        if (authorize(w, req, &key, resp) == 0)
            outcome = create_session(w, &key, req, &rate, resp);
        if (outcome == CREATED || outcome == LATER ||
            (outcome == ANSWERED && store_read_current(w->store))) {
            store_read_end(w->store);
            return;
        }
        store_read_end(w->store);
        if (optimistic)
            forget_answer(resp);
    }
}

void api_handle(struct worker *w, const struct http_req *req, struct http_resp *resp)
{
    const char *sessions = under(req->path, SESSIONS_PATH);
    const char *endpoints = under(req->path, WEBHOOK_ENDPOINTS_PATH);
    const char *events = under(req->path, EVENTS_PATH);
    struct api_key key;

    http_resp_header(resp, "Cache-Control", "no-store");
    if (!sessions && !endpoints && !events) {
        api_fail(resp, HF_ENOTFOUND, NULL, "No such resource.", NULL);
        return;
    }
    if (sessions && (*sessions == '\0' || strcmp(sessions, "/") == 0) &&
        strcmp(req->method, "POST") == 0) {
        create_route(w, req, resp);
        return;
    }
    /* the request's reads share one snapshot; its writes go to the writer */
    store_read_begin(w->store);
    if (authorize(w, req, &key, resp) == 0) {
        if (sessions)
            sessions_route(w, &key, req, sessions, resp);
        else if (endpoints)
            webhook_api_route(w, &key, req, endpoints, resp);
        else
            events_api_route(w, &key, req, events, resp);
    }
    store_read_end(w->store);
}
