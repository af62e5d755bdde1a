/* webhook.c - signing and sending events from the outbox (see webhook.h). */
#define _POSIX_C_SOURCE 200809L
#include "webhook.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "session_json.h"
#include "store.h"
#include "url.h"
#include "version.h"
#include "webhook_secret.h"


#define POLL_MS 200               /* how often the outbox is looked at when idle */
#define LEASE_MARGIN_MS 5000      /* a claim outlives its request by this much */
#define RESPONSE_MAX (64 * 1024)  /* bytes of a response body read, then cut */
#define STOP_GRACE_MS 5000        /* in-flight requests may finish this long */
#define BACKOFF_MAX_MS (3600LL * 1000)

struct transfer {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char event_id[HF_ID_MAX];
    char endpoint_id[HF_ID_MAX];
    long long event_created;
    int attempts;                 /* made before this one */
    long long started_ms;
    int allow_internal;           /* the URL itself names an internal address */
    int refused_internal;         /* a connection to one was refused */
    size_t received;
    char error[CURL_ERROR_SIZE];
};

struct webhook_sender {
    struct webhook_options o;
    struct store *store;
    CURLM *multi;
    pthread_t thread;
    atomic_int stopping;
    struct transfer *flight[HF_WEBHOOK_IN_FLIGHT];
    size_t n_flight;
    struct webhook_delivery claimed[HF_WEBHOOK_IN_FLIGHT];
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long webhook_backoff_ms(long long base_ms, int attempts)
{
    long long d = base_ms;

    for (int i = 1; i < attempts && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    return d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
}

/* Between half the delay and all of it, so that endpoints coming back
 * from an outage are not hit by every retry in the same instant. */
static long long jittered(long long d)
{
    unsigned int r;

    token_random(&r, sizeof r);
    return d / 2 + (long long)(r % (unsigned int)(d / 2 + 1));
}

/* Every connection goes through here: an internal address is refused
 * unless the URL named it literally (and so the policy approved it). A
 * public name that resolves to an internal address is refused too. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *addr)
{
    struct transfer *t = clientp;

    (void)purpose;
    if (!t->allow_internal && netaddr_is_internal(&addr->addr)) {
        t->refused_internal = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* Response bodies are not kept; reading stops at RESPONSE_MAX. */
static size_t discard(char *data, size_t size, size_t n, void *clientp)
{
    struct transfer *t = clientp;

    (void)data;
    t->received += size * n;
    return t->received > RESPONSE_MAX ? 0 : size * n;
}

static void transfer_free(struct transfer *t)
{
    if (!t)
        return;
    if (t->easy)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    free(t->body);
    free(t);
}

/* Sign and queue one claimed delivery; NULL when it cannot even be built
 * (then it is recorded as a failed attempt by the caller). */
static struct transfer *transfer_new(struct webhook_sender *s, const struct webhook_delivery *d,
                                     const char **why)
{
    char secret[HF_WEBHOOK_SECRET_CHARS + 1], sig[HF_SIGNATURE_MAX];
    char header[32 + HF_SIGNATURE_MAX];
    struct transfer *t = calloc(1, sizeof *t);
    struct url u;
    size_t len;

    *why = "out of memory";
    if (!t)
        return NULL;
    snprintf(t->event_id, sizeof t->event_id, "%s", d->event_id);
    snprintf(t->endpoint_id, sizeof t->endpoint_id, "%s", d->endpoint.id);
    t->event_created = d->event_created;
    t->attempts = d->attempts;
    if (url_parse(d->endpoint.url, strlen(d->endpoint.url), &u) != URL_OK) {
        *why = "the endpoint URL no longer parses";
        goto fail;
    }
    t->allow_internal = netaddr_host_is_internal(u.host);
    if (webhook_secret_open(s->o.key, &d->endpoint, secret) != 0) {
        *why = "the endpoint secret cannot be unsealed with this server's key file";
        goto fail;
    }
    t->body = session_event_body(d->event_id, d->event_type, d->event_created, &d->session);
    if (!t->body) {
        token_wipe(secret, sizeof secret);
        goto fail;
    }
    len = strlen(t->body);
    t->started_ms = now_ms();
    webhook_sign(secret, t->started_ms / 1000, t->body, len, sig);
    token_wipe(secret, sizeof secret);
    snprintf(header, sizeof header, "Ten99Policy-Signature: %s", sig);
    t->headers = curl_slist_append(NULL, "Content-Type: application/json");
    t->headers = curl_slist_append(t->headers, header);
    t->headers = curl_slist_append(t->headers, "User-Agent: hostflow/" HF_VERSION);
    t->headers = curl_slist_append(t->headers, "Expect:");
    if (!t->headers || !(t->easy = curl_easy_init()))
        goto fail;
    curl_easy_setopt(t->easy, CURLOPT_URL, d->endpoint.url);
    curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(t->easy, CURLOPT_PROXY, "");   /* never an environment proxy */
    curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)s->o.timeout_ms);
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(s->o.timeout_ms < 5000 ? s->o.timeout_ms : 5000));
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(t->easy, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    if (curl_multi_add_handle(s->multi, t->easy) != CURLM_OK)
        goto fail;
    return t;
fail:
    transfer_free(t);
    return NULL;
}

/* Write down how an attempt went and when (if ever) to try again. */
static void record(struct webhook_sender *s, const char *event_id, const char *endpoint_id,
                   long long event_created, int attempts_before, int http_status,
                   const char *error, long long duration_ms)
{
    long long at = now_ms();
    int made = attempts_before + 1;
    struct webhook_attempt a = {.at_ms = at, .http_status = http_status, .error = error};
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
    metrics_webhook_delivery(outcome, duration_ms * 1000);
    if (store_delivery_record(s->store, event_id, endpoint_id, &a) != 0)
        log_msg(HF_LOG_ERROR, "webhook event=%s endpoint=%s: cannot record the attempt; "
                "it will be made again", event_id, endpoint_id);
    if (!error)
        log_msg(HF_LOG_INFO, "webhook event=%s endpoint=%s attempt=%d status=%d "
                "outcome=delivered ms=%lld", event_id, endpoint_id, made, http_status,
                duration_ms);
    else
        log_msg(HF_LOG_WARN, "webhook event=%s endpoint=%s attempt=%d status=%d "
                "outcome=%s ms=%lld error=%s%s", event_id, endpoint_id, made, http_status,
                outcome == METRICS_FAILED ? "failed" : "retry", duration_ms, error,
                outcome == METRICS_FAILED ? " (giving up; hostflow events retry "
                "re-queues it)" : "");
}

static void finish(struct webhook_sender *s, struct transfer *t, CURLcode result)
{
    long code = 0;
    char why[CURL_ERROR_SIZE + 32];
    const char *error = NULL;

    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    if (t->refused_internal) {
        error = "refused: the host resolves to an internal address";
    } else if (result != CURLE_OK) {
        snprintf(why, sizeof why, "%s", t->error[0] ? t->error : curl_easy_strerror(result));
        error = why;
    } else if (code < 200 || code > 299) {
        snprintf(why, sizeof why, "HTTP %ld", code);
        error = why;
    }
    record(s, t->event_id, t->endpoint_id, t->event_created, t->attempts, (int)code, error,
           now_ms() - t->started_ms);
}

static void start_due(struct webhook_sender *s)
{
    size_t room = HF_WEBHOOK_IN_FLIGHT - s->n_flight, n = 0;

    if (room == 0)
        return;
    if (store_deliveries_claim(s->store, now_ms(), s->o.timeout_ms + LEASE_MARGIN_MS,
                               s->claimed, room, &n) != 0) {
        log_msg(HF_LOG_WARN, "webhooks: cannot read the outbox; trying again");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct webhook_delivery *d = &s->claimed[i];
        const char *why;
        struct transfer *t = transfer_new(s, d, &why);

        if (t)
            s->flight[s->n_flight++] = t;
        else
            record(s, d->event_id, d->endpoint.id, d->event_created, d->attempts, 0, why, 0);
        token_wipe(&s->claimed[i].endpoint.secret, sizeof s->claimed[i].endpoint.secret);
    }
}

/* Collect finished requests; forget them. */
static void reap(struct webhook_sender *s)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(s->multi, &left))) {
        struct transfer *t = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        finish(s, t, msg->data.result);
        curl_multi_remove_handle(s->multi, t->easy);
        for (size_t i = 0; i < s->n_flight; i++)
            if (s->flight[i] == t) {
                s->flight[i] = s->flight[--s->n_flight];
                break;
            }
        transfer_free(t);
    }
    metrics_webhook_in_flight((long)s->n_flight);
}

static void *send_loop(void *arg)
{
    struct webhook_sender *s = arg;
    long long grace_until = 0;
    int running;

    for (;;) {
        if (atomic_load(&s->stopping)) {
            if (!grace_until)
                grace_until = now_ms() + STOP_GRACE_MS;
            if (s->n_flight == 0 || now_ms() >= grace_until)
                break;
        } else {
            start_due(s);
        }
        curl_multi_perform(s->multi, &running);
        reap(s);
        curl_multi_poll(s->multi, NULL, 0, POLL_MS, NULL);
    }
    /* what is still in flight keeps its lease and is sent again later */
    for (size_t i = 0; i < s->n_flight; i++) {
        curl_multi_remove_handle(s->multi, s->flight[i]->easy);
        log_msg(HF_LOG_WARN, "webhook event=%s endpoint=%s: cut off by shutdown; "
                "it will be sent again", s->flight[i]->event_id, s->flight[i]->endpoint_id);
        transfer_free(s->flight[i]);
    }
    s->n_flight = 0;
    metrics_webhook_in_flight(0);
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
    s->multi = curl_multi_init();
    if (!s->multi || pthread_create(&s->thread, NULL, send_loop, s) != 0) {
        snprintf(err, errlen, "cannot start the webhook delivery thread");
        if (s->multi)
            curl_multi_cleanup(s->multi);
        store_close(s->store);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void webhook_sender_stop(struct webhook_sender *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    curl_multi_wakeup(s->multi);
    pthread_join(s->thread, NULL);
    curl_multi_cleanup(s->multi);
    store_close(s->store);
    free(s);
}
