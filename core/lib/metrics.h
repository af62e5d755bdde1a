/* metrics.h - process-wide Prometheus counters and histograms, rendered by
 * GET /metrics on the admin listener.
 *
 * Every recording function is lock-free (C11 atomics on fixed tables), does
 * not allocate and may be called from any thread at any time, before or
 * after the servers start. Label sets are fixed at compile time: a route
 * name, never a path; a known policy code or "other", never the policy's
 * own string. No id, token or tenant ever becomes a label value. */
#ifndef HF_METRICS_H
#define HF_METRICS_H

/* The route of a request, derived from method and path alone. */
enum metrics_route {
    METRICS_ROUTE_CREATE_SESSION,   /* POST /api/v1/payment/sessions */
    METRICS_ROUTE_LIST_SESSIONS,    /* GET  /api/v1/payment/sessions */
    METRICS_ROUTE_GET_SESSION,      /* GET  /api/v1/payment/sessions/{id} */
    METRICS_ROUTE_CANCEL_SESSION,   /* POST /api/v1/payment/sessions/{id}/cancel */
    METRICS_ROUTE_HOSTED_LANDING,   /* GET  /payment/setup/{token} */
    METRICS_ROUTE_HOSTED_REDEEM,    /* POST /payment/setup/{token} */
    METRICS_ROUTE_HOSTED_CARD,      /* GET  /payment/sessions/{id} */
    METRICS_ROUTE_HOSTED_COMPLETE,  /* POST /payment/sessions/{id}/complete */
    METRICS_ROUTE_HOSTED_CANCEL,    /* POST /payment/sessions/{id}/cancel */
    METRICS_ROUTE_HOSTED_ASSET,     /* GET  /payment/assets/... */
    METRICS_ROUTE_WEBHOOK_ENDPOINTS, /* /api/v1/webhook_endpoints[/{id}] */
    METRICS_ROUTE_ADMIN,            /* /healthz /readyz /metrics /admin/... */
    METRICS_ROUTE_OTHER,            /* anything else, wrong methods included */
    METRICS_ROUTE_COUNT
};

/* Outcome of one policy call. */
enum metrics_outcome {
    METRICS_ALLOW,
    METRICS_DENY,
    METRICS_ERROR
};

/* Classify a request; HEAD counts as GET. Never NULL-sensitive: a NULL
 * method or path is METRICS_ROUTE_OTHER. */
enum metrics_route metrics_route(const char *method, const char *path);

/* One answered request: hostflow_http_requests_total{route,status} and
 * hostflow_http_request_duration_seconds{route}. Called by http.c once per
 * request, after the response is written. */
void metrics_http_request(enum metrics_route route, int status, long long duration_us);

/* One policy decision: hostflow_policy_decisions_total{check,outcome,code}
 * and hostflow_policy_call_duration_seconds. check is "tenant",
 * "return_url" or "webhook_url" (anything else is not counted); code is the deny code and is
 * ignored unless outcome is METRICS_DENY. Called by policy_call.c for decisions
 * of a serving engine, not for examples. */
void metrics_policy_decision(const char *check, enum metrics_outcome outcome,
                             const char *code, long long duration_us);

/* hostflow_sessions_created_total: call once per session inserted by
 * POST /api/v1/payment/sessions (after its commit; not for an idempotent
 * replay, which creates nothing). */
void metrics_session_created(void);
/* An answer given by another thread than the request's (http_later_send). */
void metrics_http_answer_later(void);
/* hostflow_http_requests_refused_total{reason="framing"}: a request http.c
 * refused before any handler because of its framing (framing.h) or a head
 * civetweb could not parse. */
void metrics_http_refused_framing(void);
/* hostflow_sessions_completed_total: call once per session that moved
 * pending -> completed (the hosted card form succeeded and committed). */
void metrics_session_completed(void);
/* hostflow_sessions_cancelled_total: call once per session that moved
 * pending -> cancelled, through the API or the hosted page alike. */
void metrics_session_cancelled(void);
/* hostflow_sessions_expired_total: add n sessions the expiry sweep moved
 * pending -> expired. Called by expiry.c. */
void metrics_sessions_expired(unsigned long n);
/* hostflow_store_busy_retries_total: call once each time a store operation
 * met SQLITE_BUSY/SQLITE_LOCKED and is retried. */
void metrics_store_busy_retry(void);
/* One group commit of the SQLite writer that carried n writes:
 * hostflow_store_group_commits_total and
 * hostflow_store_group_commit_writes_total (their ratio is the mean batch). */
void metrics_store_group_commit(unsigned long n);

/* Webhook delivery attempts that ended: delivered (2xx), retry (will be
 * tried again) or failed (gave up); hostflow_webhook_deliveries_total
 * {outcome} and hostflow_webhook_delivery_duration_seconds. Called by
 * webhook.c. */
enum metrics_delivery { METRICS_DELIVERED, METRICS_RETRY, METRICS_FAILED };
void metrics_webhook_delivery(enum metrics_delivery outcome, long long duration_us);
/* hostflow_webhook_deliveries_in_flight: requests under way now. */
void metrics_webhook_in_flight(long n);

/* The active policy as its gauges show it (hostflow_policy_info,
 * _loaded_timestamp_seconds, _reloads_total): the caller copies it from
 * the policy engine's status, which this layer does not know. */
struct metrics_policy {
    const char *version;
    long long loaded_at;
    unsigned long reloads_ok, reloads_unchanged, reloads_failed;
};

/* The whole exposition (text format 0.0.4) with the policy gauges of st
 * (none when NULL), in a malloc'd NUL-terminated buffer the caller frees;
 * NULL when out of memory. Serve it as "text/plain; version=0.0.4". */
char *metrics_render(const struct metrics_policy *st);

#endif
