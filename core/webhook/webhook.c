/* webhook.c - signing and sending events from the outbox (see webhook.h). */
#define _POSIX_C_SOURCE 200809L
#include "webhook.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "log.h"
#include "metrics.h"
#include "clock.h"
#include "err.h"
#include "httpc.h"
#include "session_json.h"
#include "store.h"
#include "webhook_secret.h"


#define POLL_MS 200               /* how often the outbox is looked at when idle */
#define LEASE_MARGIN_MS 5000      /* a claim outlives its request by this much */
#define RESPONSE_MAX (64 * 1024)  /* bytes of a response body read, then cut */
#define STOP_GRACE_MS 5000        /* in-flight requests may finish this long */
#define BACKOFF_MAX_MS (3600LL * 1000)

/* One delivery in flight: what the attempt's record needs. */
struct transfer {
    char event_id[HF_ID_MAX];
    char endpoint_id[HF_ID_MAX];
    long long event_created;
    int attempts;                 /* made before this one */
    long long lease_until_ms;     /* the claim it is sent under */
    int endpoint_failures;        /* the endpoint's, at the claim */
    long long started_ms;
};

/* How far an attempt got: a sent one that had no answer pauses its
 * endpoint, an answered one ends the pause. */
enum reach { NOT_SENT, NO_ANSWER, ANSWERED };

struct webhook_sender {
    struct webhook_options o;
    struct store *store;
    struct httpc_batch *batch;
    pthread_t thread;
    atomic_int stopping;
    struct endpoint_due due[HF_WEBHOOK_IN_FLIGHT];
    struct webhook_delivery claimed[HF_WEBHOOK_IN_FLIGHT];
    struct httpc_result done[HF_WEBHOOK_IN_FLIGHT];
};

long long webhook_backoff_ms(long long base_ms, int attempts)
{
    long long d = base_ms;

    for (int i = 1; i < attempts && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    return d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
}

size_t webhook_plan_claims(struct endpoint_due *due, size_t n, size_t room)
{
    size_t busy = 0, taken = 0;

    for (size_t i = 0; i < n; i++) {
        struct endpoint_due *e = &due[i];
        long long take = e->slots;
        long long tenant_left = e->tenant_slots;

        e->claim = 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(due[j].tenant_id, e->tenant_id) == 0)
                tenant_left -= due[j].claim;
        if (take > tenant_left)
            take = tenant_left;
        if (take > (long long)(room - taken))
            take = (long long)(room - taken);
        if (!e->deleted && take > 0) {
            e->claim = (int)take;
            taken += (size_t)take;
        }
        busy += e->deleted || e->claim > 0;
    }
    return busy;
}

/* Between half the delay and all of it, so that endpoints coming back
 * from an outage are not hit by every retry in the same instant. */
static long long jittered(long long d)
{
    unsigned int r;

    token_random(&r, sizeof r);
    return d / 2 + (long long)(r % (unsigned int)(d / 2 + 1));
}

/* Sign d and add it to the batch; NULL with why when it cannot even be
 * sent (then the caller records a failed attempt). */
static struct transfer *send_one(struct webhook_sender *s, const struct webhook_delivery *d,
                                 char *why, size_t whylen)
{
    char secret[HF_WEBHOOK_SECRET_CHARS + 1], previous[HF_WEBHOOK_SECRET_CHARS + 1];
    char sig[HF_ROLLING_SIGNATURE_MAX], header[32 + HF_ROLLING_SIGNATURE_MAX];
    int has_previous;
    const char *headers[] = {"Content-Type: application/json", header, "Expect:", NULL};
    struct transfer *t = calloc(1, sizeof *t);
    struct httpc_request req = {
        .method = "POST", .url = d->endpoint.url, .headers = headers,
        .timeout_ms = (long)s->o.timeout_ms, .max_body = RESPONSE_MAX, .refuse_internal = 1,
        .connect_timeout_ms = (long)(s->o.timeout_ms < 5000 ? s->o.timeout_ms : 5000)};
    char *body;

    snprintf(why, whylen, "out of memory");
    if (!t)
        return NULL;
    snprintf(t->event_id, sizeof t->event_id, "%s", d->event_id);
    snprintf(t->endpoint_id, sizeof t->endpoint_id, "%s", d->endpoint.id);
    t->event_created = d->event_created;
    t->attempts = d->attempts;
    t->lease_until_ms = d->lease_until_ms;
    t->endpoint_failures = d->endpoint_failures;
    if (webhook_secret_open(s->o.key, &d->endpoint, secret) != 0) {
        snprintf(why, whylen, "the endpoint secret cannot be unsealed with this server's "
                 "key file");
        free(t);
        return NULL;
    }
    body = session_event_body(d->event_id, d->event_type, d->event_created, &d->session);
    if (body) {
        t->started_ms = clock_wall_ms();
        /* while a rolled secret overlaps, a receiver may verify with either */
        has_previous = webhook_previous_secret_open(s->o.key, &d->endpoint, t->started_ms,
                                                    previous) == 0;
        webhook_sign_rolling(secret, has_previous ? previous : NULL, t->started_ms / 1000,
                             body, strlen(body), sig);
        snprintf(header, sizeof header, "Ten99Policy-Signature: %s", sig);
        req.body = body;
        req.body_len = strlen(body);
    }
    token_wipe(secret, sizeof secret);
    token_wipe(previous, sizeof previous);
    if (!body || httpc_batch_add(s->batch, &req, t, why, whylen) != 0) {
        free(body);
        free(t);
        return NULL;
    }
    free(body); /* the batch sends its own copy */
    return t;
}

/* Write down how an attempt went and when (if ever) to try again; and,
 * for one that had no answer, pause its endpoint: an endpoint that hangs
 * or refuses would otherwise hold its slots with its whole backlog, one
 * timeout after another. The pause grows as a retry does. */
static void record(struct webhook_sender *s, const struct transfer *t, enum reach reach,
                   int http_status, const char *error, long long duration_ms)
{
    const char *event_id = t->event_id, *endpoint_id = t->endpoint_id;
    long long at = clock_wall_ms(), event_created = t->event_created;
    int made = t->attempts + 1, rc;
    char paused[48] = "";
    struct webhook_attempt a = {.lease_until_ms = t->lease_until_ms, .at_ms = at,
                                .http_status = http_status, .error = error,
                                .answered = reach == ANSWERED};
    enum metrics_delivery outcome;

    if (!error) {
        a.status = "delivered";
        outcome = METRICS_DELIVERED;
    } else {
        a.next_ms = at + jittered(webhook_backoff_ms(s->o.retry_base_ms, made));
        if (a.next_ms > (event_created + s->o.retry_for_s) * 1000) {
            a.status = "failed";
            outcome = METRICS_FAILED;
        } else {
            a.status = "pending";
            outcome = METRICS_RETRY;
        }
    }
    if (reach == NO_ANSWER) {
        long long pause = jittered(webhook_backoff_ms(s->o.retry_base_ms,
                                                      t->endpoint_failures + 1));

        a.pause_until_ms = at + pause;
        snprintf(paused, sizeof paused, "; endpoint paused for %lld ms", pause);
    }
    metrics_webhook_delivery(outcome, duration_ms * 1000);
    rc = store_delivery_record(s->store, event_id, endpoint_id, &a);
    if (rc == HF_ENOTFOUND)
        log_msg(HF_LOG_WARN, "webhook event=%s endpoint=%s: the claim lapsed during the "
                "attempt and was taken again; its holder records the outcome",
                event_id, endpoint_id);
    else if (rc != 0)
        log_msg(HF_LOG_ERROR, "webhook event=%s endpoint=%s: cannot record the attempt; "
                "it will be made again", event_id, endpoint_id);
    if (!error)
        log_msg(HF_LOG_INFO, "webhook event=%s endpoint=%s attempt=%d status=%d "
                "outcome=delivered ms=%lld", event_id, endpoint_id, made, http_status,
                duration_ms);
    else
        log_msg(HF_LOG_WARN, "webhook event=%s endpoint=%s attempt=%d status=%d "
                "outcome=%s ms=%lld error=%s%s%s", event_id, endpoint_id, made, http_status,
                outcome == METRICS_FAILED ? "failed" : "retry", duration_ms, error,
                outcome == METRICS_FAILED ? " (giving up; hostflow events retry "
                "re-queues it)" : "", paused);
}

static void finish(struct webhook_sender *s, const struct httpc_result *r)
{
    struct transfer *t = r->tag;
    char why[sizeof r->error + 16];
    const char *error = NULL;

    if (r->rc != 0) {
        error = r->error;
    } else if (r->status < 200 || r->status > 299) {
        snprintf(why, sizeof why, "HTTP %ld", r->status);
        error = why;
    }
    record(s, t, r->rc == 0 ? ANSWERED : NO_ANSWER, r->rc == 0 ? (int)r->status : 0, error,
           clock_wall_ms() - t->started_ms);
    free(t);
}

/* Claim what may be sent now and send it. Nothing to claim costs one read
 * (store_endpoints_due); then the loop waits for a transfer to finish or
 * POLL_MS, whatever the backlog of an endpoint that cannot take more. */
static void start_due(struct webhook_sender *s)
{
    size_t room = HF_WEBHOOK_IN_FLIGHT - httpc_batch_in_flight(s->batch), m = 0, n = 0;
    long long now = clock_wall_ms();

    if (room == 0)
        return;
    if (store_endpoints_due(s->store, now, s->due, HF_WEBHOOK_IN_FLIGHT, &m) != 0 ||
        (webhook_plan_claims(s->due, m, room) > 0 &&
         store_deliveries_claim(s->store, now, s->o.timeout_ms + LEASE_MARGIN_MS, s->due, m,
                                s->claimed, room, &n) != 0)) {
        log_msg(HF_LOG_WARN, "webhooks: cannot read the outbox; trying again");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct webhook_delivery *d = &s->claimed[i];
        char why[160];

        if (!send_one(s, d, why, sizeof why)) {
            struct transfer t = {.event_created = d->event_created, .attempts = d->attempts,
                                 .lease_until_ms = d->lease_until_ms};

            snprintf(t.event_id, sizeof t.event_id, "%s", d->event_id);
            snprintf(t.endpoint_id, sizeof t.endpoint_id, "%s", d->endpoint.id);
            record(s, &t, NOT_SENT, 0, why, 0);
        }
        token_wipe(&s->claimed[i].endpoint.secret, sizeof s->claimed[i].endpoint.secret);
    }
}

static void *send_loop(void *arg)
{
    struct webhook_sender *s = arg;
    long long grace_until = 0;
    size_t n;

    prctl(PR_SET_NAME, "hf-webhooks"); /* its name in top -H, ps -L */
    for (;;) {
        /* what finished is recorded before anything new is claimed */
        httpc_batch_run(s->batch, POLL_MS, s->done, HF_WEBHOOK_IN_FLIGHT, &n);
        for (size_t i = 0; i < n; i++)
            finish(s, &s->done[i]);
        if (atomic_load(&s->stopping)) {
            if (!grace_until)
                grace_until = clock_wall_ms() + STOP_GRACE_MS;
            if (httpc_batch_in_flight(s->batch) == 0 || clock_wall_ms() >= grace_until)
                break;
        } else {
            start_due(s);
        }
        metrics_webhook_in_flight((long)httpc_batch_in_flight(s->batch));
    }
    return NULL;
}

int webhook_sender_start(const struct webhook_options *o, struct webhook_sender **out,
                         char *err, size_t errlen)
{
    struct webhook_sender *s = calloc(1, sizeof *s);

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->o = *o;
    if (store_open(o->db_path, &s->store, err, errlen) != 0) {
        free(s);
        return -1;
    }
    /* SQLite: no second writing connection, whose claims and records would
     * hold the write lock against the request path's writer */
    store_attach_writer(s->store, o->writer);
    if (httpc_batch_new(&s->batch) != 0 ||
        pthread_create(&s->thread, NULL, send_loop, s) != 0) {
        snprintf(err, errlen, "cannot start the webhook delivery thread");
        httpc_batch_free(s->batch, NULL, 0, NULL);
        store_close(s->store);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void webhook_sender_stop(struct webhook_sender *s)
{
    void *cut[HF_WEBHOOK_IN_FLIGHT];
    size_t n;

    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    httpc_batch_wake(s->batch);
    pthread_join(s->thread, NULL);
    /* what is still in flight keeps its lease and is sent again later */
    httpc_batch_free(s->batch, cut, HF_WEBHOOK_IN_FLIGHT, &n);
    for (size_t i = 0; i < n; i++) {
        struct transfer *t = cut[i];

        log_msg(HF_LOG_WARN, "webhook event=%s endpoint=%s: cut off by shutdown; "
                "it will be sent again", t->event_id, t->endpoint_id);
        free(t);
    }
    metrics_webhook_in_flight(0);
    store_close(s->store);
    free(s);
}
