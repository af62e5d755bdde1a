/* metrics.c - Prometheus counters and histograms: fixed tables of C11
 * atomics written with relaxed increments on the hot path, read and
 * formatted only when /metrics is scraped. */
#define _POSIX_C_SOURCE 200809L
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define ADD(counter, n) atomic_fetch_add_explicit(&(counter), (n), memory_order_relaxed)
#define LOAD(counter) atomic_load_explicit(&(counter), memory_order_relaxed)

/* ---- label sets ------------------------------------------------------ */

static const char *const route_names[METRICS_ROUTE_COUNT] = {
    [METRICS_ROUTE_CREATE_SESSION] = "create_session",
    [METRICS_ROUTE_LIST_SESSIONS] = "list_sessions",
    [METRICS_ROUTE_GET_SESSION] = "get_session",
    [METRICS_ROUTE_CANCEL_SESSION] = "cancel_session",
    [METRICS_ROUTE_HOSTED_LANDING] = "hosted_landing",
    [METRICS_ROUTE_HOSTED_REDEEM] = "hosted_redeem",
    [METRICS_ROUTE_HOSTED_CARD] = "hosted_card",
    [METRICS_ROUTE_HOSTED_COMPLETE] = "hosted_complete",
    [METRICS_ROUTE_HOSTED_CANCEL] = "hosted_cancel",
    [METRICS_ROUTE_HOSTED_ASSET] = "hosted_asset",
    [METRICS_ROUTE_WEBHOOK_ENDPOINTS] = "webhook_endpoints",
    [METRICS_ROUTE_ADMIN] = "admin",
    [METRICS_ROUTE_OTHER] = "other",
};

/* Statuses with a series of their own; the rest share "other". */
static const int statuses[] = {200, 201, 303, 400, 402, 403, 404, 405, 408, 409,
                               413, 422, 429, 500, 502, 503};
#define N_STATUSES (sizeof statuses / sizeof statuses[0])
#define STATUS_OTHER N_STATUSES              /* the last column */

static size_t status_index(int status)
{
    for (size_t i = 0; i < N_STATUSES; i++)
        if (statuses[i] == status)
            return i;
    return STATUS_OTHER;
}

enum { CHECK_TENANT, CHECK_RETURN_URL, CHECK_WEBHOOK_URL, N_CHECKS };
static const char *const check_names[N_CHECKS] = {"tenant", "return_url", "webhook_url"};

/* Columns of the decision table: allow, error, then deny by code. */
enum { DEC_ALLOW, DEC_ERROR, DEC_DENY_FIRST, N_DECISIONS = DEC_DENY_FIRST + 5 };
static const char *const deny_codes[] = {"invalid_return_url", "invalid_webhook_url",
                                         "tenant_denied", "rate_limit", "other"};
#define DENY_OTHER 4

/* ---- histograms ------------------------------------------------------ */

#define HIST_MAX_BUCKETS 20

/* Bucket i counts observations in (bound[i-1], bound[i]], not cumulative;
 * the last bucket is +Inf. Cumulated when rendered. */
struct histogram {
    atomic_ulong buckets[HIST_MAX_BUCKETS];
    atomic_ullong sum_us;
};

struct bucket_layout {
    size_t n;                              /* finite bounds; +Inf is bucket n */
    const unsigned long long *bound_ns;
    const char *const *le;                 /* rendered le values, +Inf last */
};

static const unsigned long long http_bound_ns[] = {
    500000ULL, 1000000ULL, 2500000ULL, 5000000ULL, 10000000ULL, 25000000ULL,
    50000000ULL, 100000000ULL, 250000000ULL, 500000000ULL, 1000000000ULL};
static const char *const http_le[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "+Inf"};
static const struct bucket_layout http_layout = {
    sizeof http_bound_ns / sizeof http_bound_ns[0], http_bound_ns, http_le};

static const unsigned long long policy_bound_ns[] = {
    1000ULL, 2500ULL, 5000ULL, 10000ULL, 25000ULL, 50000ULL, 100000ULL, 250000ULL,
    500000ULL, 1000000ULL, 2500000ULL, 5000000ULL, 10000000ULL, 25000000ULL,
    50000000ULL, 100000000ULL};
static const char *const policy_le[] = {
    "0.000001", "0.0000025", "0.000005", "0.00001", "0.000025", "0.00005", "0.0001",
    "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "+Inf"};
static const struct bucket_layout policy_layout = {
    sizeof policy_bound_ns / sizeof policy_bound_ns[0], policy_bound_ns, policy_le};

_Static_assert(sizeof http_le / sizeof http_le[0] ==
               sizeof http_bound_ns / sizeof http_bound_ns[0] + 1, "http le");
_Static_assert(sizeof policy_le / sizeof policy_le[0] ==
               sizeof policy_bound_ns / sizeof policy_bound_ns[0] + 1, "policy le");
_Static_assert(sizeof policy_le / sizeof policy_le[0] <= HIST_MAX_BUCKETS, "buckets");

static void observe(struct histogram *h, const struct bucket_layout *l, long long us)
{
    unsigned long long ns;
    size_t i = 0;

    if (us < 0)
        us = 0;
    ns = (unsigned long long)us * 1000ULL;
    while (i < l->n && ns > l->bound_ns[i])
        i++;
    ADD(h->buckets[i], 1);
    ADD(h->sum_us, (unsigned long long)us);
}

/* ---- the counters ---------------------------------------------------- */

static atomic_ulong http_requests[METRICS_ROUTE_COUNT][N_STATUSES + 1];
static struct histogram http_duration[METRICS_ROUTE_COUNT];
static atomic_ulong policy_decisions[N_CHECKS][N_DECISIONS];
static struct histogram policy_duration;
static atomic_ulong http_answers_later, http_refused_framing;
static atomic_ulong sessions_created, sessions_completed, sessions_cancelled,
    sessions_expired, store_busy_retries, store_group_commits, store_group_commit_writes;
static atomic_ulong webhook_deliveries[3];
static atomic_long webhook_in_flight;
static struct histogram webhook_duration;
static double start_time;

/* Before main: the process start, whichever binary links this file. */
__attribute__((constructor)) static void record_start_time(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- recording ------------------------------------------------------- */

static int prefixed(const char *s, const char *prefix, size_t len)
{
    return strncmp(s, prefix, len) == 0;
}
#define PREFIXED(s, lit) prefixed((s), (lit), sizeof(lit) - 1)

enum metrics_route metrics_route(const char *method, const char *path)
{
    static const char api[] = "/api/v1/payment/sessions";
    int get, post;

    if (!method || !path)
        return METRICS_ROUTE_OTHER;
    get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    post = strcmp(method, "POST") == 0;

    if (PREFIXED(path, api) && (path[sizeof api - 1] == '\0' || path[sizeof api - 1] == '/')) {
        const char *rest = path + sizeof api - 1, *slash;

        if (*rest == '\0' || strcmp(rest, "/") == 0)
            return post ? METRICS_ROUTE_CREATE_SESSION
                 : get ? METRICS_ROUTE_LIST_SESSIONS : METRICS_ROUTE_OTHER;
        slash = strchr(rest + 1, '/');
        if (rest[1] == '\0' || rest[1] == '/')
            return METRICS_ROUTE_OTHER;
        if (!slash)
            return get ? METRICS_ROUTE_GET_SESSION : METRICS_ROUTE_OTHER;
        if (strcmp(slash, "/cancel") == 0 && post)
            return METRICS_ROUTE_CANCEL_SESSION;
        return METRICS_ROUTE_OTHER;
    }
    if (PREFIXED(path, "/payment/")) {
        const char *rest, *slash;

        if (PREFIXED(path, "/payment/assets/"))
            return get ? METRICS_ROUTE_HOSTED_ASSET : METRICS_ROUTE_OTHER;
        if (PREFIXED(path, "/payment/setup/"))
            return get ? METRICS_ROUTE_HOSTED_LANDING
                 : post ? METRICS_ROUTE_HOSTED_REDEEM : METRICS_ROUTE_OTHER;
        if (!PREFIXED(path, "/payment/sessions/"))
            return METRICS_ROUTE_OTHER;
        rest = path + sizeof "/payment/sessions/" - 1;
        if (*rest == '\0' || *rest == '/')
            return METRICS_ROUTE_OTHER;
        slash = strchr(rest, '/');
        if (!slash)
            return get ? METRICS_ROUTE_HOSTED_CARD : METRICS_ROUTE_OTHER;
        if (post && strcmp(slash, "/complete") == 0)
            return METRICS_ROUTE_HOSTED_COMPLETE;
        if (post && strcmp(slash, "/cancel") == 0)
            return METRICS_ROUTE_HOSTED_CANCEL;
        return METRICS_ROUTE_OTHER;
    }
    if (PREFIXED(path, "/api/v1/webhook_endpoints"))
        return METRICS_ROUTE_WEBHOOK_ENDPOINTS;
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
        strcmp(path, "/metrics") == 0 || PREFIXED(path, "/admin/"))
        return METRICS_ROUTE_ADMIN;
    return METRICS_ROUTE_OTHER;
}

void metrics_http_request(enum metrics_route route, int status, long long duration_us)
{
    if ((unsigned)route >= METRICS_ROUTE_COUNT)
        route = METRICS_ROUTE_OTHER;
    ADD(http_requests[route][status_index(status)], 1);
    observe(&http_duration[route], &http_layout, duration_us);
}

void metrics_policy_decision(const char *check, enum metrics_outcome outcome,
                             const char *code, long long duration_us)
{
    size_t c, d;

    if (!check)
        return;
    if (strcmp(check, "tenant") == 0)
        c = CHECK_TENANT;
    else if (strcmp(check, "return_url") == 0)
        c = CHECK_RETURN_URL;
    else if (strcmp(check, "webhook_url") == 0)
        c = CHECK_WEBHOOK_URL;
    else
        return;
    if (outcome == METRICS_ALLOW) {
        d = DEC_ALLOW;
    } else if (outcome == METRICS_DENY) {
        size_t k = 0;
        while (k < DENY_OTHER && !(code && strcmp(code, deny_codes[k]) == 0))
            k++;
        d = DEC_DENY_FIRST + k;
    } else {
        d = DEC_ERROR;
    }
    ADD(policy_decisions[c][d], 1);
    observe(&policy_duration, &policy_layout, duration_us);
}

void metrics_http_answer_later(void) { ADD(http_answers_later, 1); }
void metrics_http_refused_framing(void) { ADD(http_refused_framing, 1); }
void metrics_session_created(void) { ADD(sessions_created, 1); }
void metrics_session_completed(void) { ADD(sessions_completed, 1); }
void metrics_session_cancelled(void) { ADD(sessions_cancelled, 1); }
void metrics_sessions_expired(unsigned long n) { ADD(sessions_expired, n); }
void metrics_store_busy_retry(void) { ADD(store_busy_retries, 1); }

void metrics_store_group_commit(unsigned long n)
{
    ADD(store_group_commits, 1);
    ADD(store_group_commit_writes, n);
}

void metrics_webhook_delivery(enum metrics_delivery outcome, long long duration_us)
{
    if ((unsigned)outcome > METRICS_FAILED)
        return;
    ADD(webhook_deliveries[outcome], 1);
    observe(&webhook_duration, &http_layout, duration_us);
}

void metrics_webhook_in_flight(long n)
{
    atomic_store_explicit(&webhook_in_flight, n, memory_order_relaxed);
}

/* ---- rendering ------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    int failed;
};

__attribute__((format(printf, 2, 3)))
static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len)
            break;
        size_t cap = b->cap * 2 > b->len + (size_t)n + 1 ? b->cap * 2 : b->len + (size_t)n + 1;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    b->len += (size_t)n;
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped as the text format wants. */
static void put_label_value(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(b, "\\\\");
        else if (*s == '"')
            put(b, "\\\"");
        else if (*s == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *s);
    }
}

/* name_bucket/_sum/_count of h; labels ("route=\"x\"") may be NULL. */
static void put_histogram(struct buf *b, const char *name, const char *labels,
                          struct histogram *h, const struct bucket_layout *l)
{
    unsigned long cum = 0;
    unsigned long long sum_us = LOAD(h->sum_us);
    const char *sep = labels ? "," : "";

    if (!labels)
        labels = "";
    for (size_t i = 0; i <= l->n; i++) {
        cum += LOAD(h->buckets[i]);
        put(b, "%s_bucket{%s%sle=\"%s\"} %lu\n", name, labels, sep, l->le[i], cum);
    }
    /* _count is the +Inf bucket, read once: the two always agree */
    put(b, "%s_sum%s%s%s %llu.%06llu\n", name, *labels ? "{" : "", labels,
        *labels ? "}" : "", sum_us / 1000000ULL, sum_us % 1000000ULL);
    put(b, "%s_count%s%s%s %lu\n", name, *labels ? "{" : "", labels,
        *labels ? "}" : "", cum);
}

static unsigned long histogram_count(struct histogram *h, const struct bucket_layout *l)
{
    unsigned long n = 0;

    for (size_t i = 0; i <= l->n; i++)
        n += LOAD(h->buckets[i]);
    return n;
}

static void put_counter(struct buf *b, const char *name, const char *help,
                        atomic_ulong *c)
{
    family(b, name, "counter", help);
    put(b, "%s %lu\n", name, LOAD(*c));
}

static void render_http(struct buf *b)
{
    family(b, "hostflow_http_requests_total", "counter",
           "HTTP requests answered, by route and status code.");
    for (size_t r = 0; r < METRICS_ROUTE_COUNT; r++)
        for (size_t s = 0; s <= N_STATUSES; s++) {
            unsigned long n = LOAD(http_requests[r][s]);
            if (!n)
                continue;
            if (s == STATUS_OTHER)
                put(b, "hostflow_http_requests_total{route=\"%s\",status=\"other\"} %lu\n",
                    route_names[r], n);
            else
                put(b, "hostflow_http_requests_total{route=\"%s\",status=\"%d\"} %lu\n",
                    route_names[r], statuses[s], n);
        }

    family(b, "hostflow_http_request_duration_seconds", "histogram",
           "Time from reading a request to having written its response, by route.");
    for (size_t r = 0; r < METRICS_ROUTE_COUNT; r++) {
        char labels[64];

        if (!histogram_count(&http_duration[r], &http_layout))
            continue;
        snprintf(labels, sizeof labels, "route=\"%s\"", route_names[r]);
        put_histogram(b, "hostflow_http_request_duration_seconds", labels,
                      &http_duration[r], &http_layout);
    }
}

static void render_policy(struct buf *b, const struct metrics_policy *st)
{
    family(b, "hostflow_policy_decisions_total", "counter",
           "Policy decisions by check, outcome and deny code (code is empty "
           "unless denied, other for codes not listed).");
    for (size_t c = 0; c < N_CHECKS; c++)
        for (size_t d = 0; d < N_DECISIONS; d++) {
            unsigned long n = LOAD(policy_decisions[c][d]);
            const char *outcome = d == DEC_ALLOW ? "allow" : d == DEC_ERROR ? "error" : "deny";
            const char *code = d >= DEC_DENY_FIRST ? deny_codes[d - DEC_DENY_FIRST] : "";

            /* allow and error always; a deny code once it happened */
            if (!n && d >= DEC_DENY_FIRST)
                continue;
            put(b, "hostflow_policy_decisions_total{check=\"%s\",outcome=\"%s\",code=\"%s\"} %lu\n",
                check_names[c], outcome, code, n);
        }
    family(b, "hostflow_policy_call_duration_seconds", "histogram",
           "Duration of one policy function call.");
    put_histogram(b, "hostflow_policy_call_duration_seconds", NULL, &policy_duration,
                  &policy_layout);

    if (!st)
        return;
    family(b, "hostflow_policy_info", "gauge", "The active policy version.");
    put(b, "hostflow_policy_info{version=\"");
    put_label_value(b, st->version);
    put(b, "\"} 1\n");
    family(b, "hostflow_policy_loaded_timestamp_seconds", "gauge",
           "When the active policy was activated (Unix seconds).");
    put(b, "hostflow_policy_loaded_timestamp_seconds %lld\n", st->loaded_at);
    family(b, "hostflow_policy_reloads_total", "counter", "Policy reloads by result.");
    put(b, "hostflow_policy_reloads_total{result=\"ok\"} %lu\n"
        "hostflow_policy_reloads_total{result=\"unchanged\"} %lu\n"
        "hostflow_policy_reloads_total{result=\"failed\"} %lu\n",
        st->reloads_ok, st->reloads_unchanged, st->reloads_failed);
}

char *metrics_render(const struct metrics_policy *st)
{
    struct buf b = {malloc(8192), 0, 8192, 0};

    if (!b.p)
        return NULL;
    b.p[0] = '\0';
    render_http(&b);
    put_counter(&b, "hostflow_http_answers_by_writer_total",
                "Answers the SQLite writer sent once their batch committed, "
                "the request's worker thread having gone back to its connection.",
                &http_answers_later);
    family(&b, "hostflow_http_requests_refused_total", "counter",
           "Requests refused with 400 before any handler ran, by reason: framing "
           "(a head civetweb could not parse, or whose end or body's end a proxy "
           "could read differently).");
    put(&b, "hostflow_http_requests_refused_total{reason=\"framing\"} %lu\n",
        LOAD(http_refused_framing));
    render_policy(&b, st);
    put_counter(&b, "hostflow_sessions_created_total", "Sessions created.",
                &sessions_created);
    put_counter(&b, "hostflow_sessions_completed_total",
                "Sessions completed on the hosted card page.", &sessions_completed);
    put_counter(&b, "hostflow_sessions_cancelled_total",
                "Sessions cancelled through the API or the hosted page.",
                &sessions_cancelled);
    put_counter(&b, "hostflow_sessions_expired_total",
                "Pending sessions the expiry sweep marked expired.", &sessions_expired);
    put_counter(&b, "hostflow_store_busy_retries_total",
                "Database operations retried because SQLite was busy or locked.",
                &store_busy_retries);
    put_counter(&b, "hostflow_store_group_commits_total",
                "Transactions the SQLite writer committed for queued writes.",
                &store_group_commits);
    put_counter(&b, "hostflow_store_group_commit_writes_total",
                "Writes carried by those transactions (divide by the commits "
                "for the mean batch size).", &store_group_commit_writes);
    family(&b, "hostflow_webhook_deliveries_total", "counter",
           "Webhook delivery attempts by outcome: delivered (2xx), retry "
           "(scheduled again) or failed (given up).");
    put(&b, "hostflow_webhook_deliveries_total{outcome=\"delivered\"} %lu\n"
        "hostflow_webhook_deliveries_total{outcome=\"retry\"} %lu\n"
        "hostflow_webhook_deliveries_total{outcome=\"failed\"} %lu\n",
        LOAD(webhook_deliveries[METRICS_DELIVERED]), LOAD(webhook_deliveries[METRICS_RETRY]),
        LOAD(webhook_deliveries[METRICS_FAILED]));
    family(&b, "hostflow_webhook_delivery_duration_seconds", "histogram",
           "Duration of one webhook delivery attempt.");
    put_histogram(&b, "hostflow_webhook_delivery_duration_seconds", NULL,
                  &webhook_duration, &http_layout);
    family(&b, "hostflow_webhook_deliveries_in_flight", "gauge",
           "Webhook requests under way.");
    put(&b, "hostflow_webhook_deliveries_in_flight %ld\n",
        atomic_load_explicit(&webhook_in_flight, memory_order_relaxed));
    family(&b, "hostflow_process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch in seconds.");
    put(&b, "hostflow_process_start_time_seconds %.3f\n", start_time);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
