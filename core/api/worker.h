/* worker.h - what one public-listener worker thread owns, and the router
 * that hands each request to the handlers main.c registers (the API, the
 * hosted pages): this layer calls none of them by name. */
#ifndef HF_WORKER_H
#define HF_WORKER_H

#include "config.h"
#include "http.h"
#include "store.h"
#include "token.h"

struct policy_engine;
struct policy;

#define HF_LIST_LIMIT_MAX 100

/* What every worker shares: read-only config, the policy engine. */
/* Rate limiters; NULL members impose no limit. */
struct worker_limits {
    struct ratelimit *create_by_key;
    struct ratelimit *create_by_ip;
    struct ratelimit *redeem_by_ip;
};

struct worker;

/* One route: the first whose prefix starts the path takes the request; a
 * NULL prefix takes every path. A table ends with a NULL handle. */
struct worker_route {
    const char *prefix;
    void (*handle)(struct worker *w, const struct http_req *req, struct http_resp *resp);
};

struct worker_shared {
    const struct worker_route *routes;
    const struct config *cfg;
    struct policy_engine *engine;
    struct store_writer *writer;   /* group commit for the hot-path writes */
    const struct worker_limits *limits;
    const unsigned char *webhook_key; /* seals endpoint secrets (HF_SEAL_KEY_BYTES) */
};

/* A create whose insert the writer answers (api.c): what the answer needs
 * until then. */
struct later_create {
    struct session session;
    char token[HF_URL_TOKEN_CHARS + 1];
    unsigned char token_hash[HF_HASH_BYTES];
    const char *public_url;
    struct http_later *later;
    struct http_resp *resp;
    int rate;                     /* the rate limits' answer, for an answer again */
    int again;                    /* answered again: from a snapshot, limits taken */
};

struct worker {
    const struct worker_route *routes;
    const struct config *cfg;
    const struct worker_limits *limits;
    struct policy_engine *engine;
    const unsigned char *webhook_key;
    struct store *store;          /* this thread's connection */
    struct policy *policy;        /* the Lua state borrowed for this request (policy_acquire) */
    struct tenant tenant;         /* scratch: the tenant of the request */
    struct session *page;         /* scratch: HF_LIST_LIMIT_MAX sessions */
    struct later_create later;    /* this thread's create in the writer's hands */
};

/* A worker for a struct worker_shared; NULL when it cannot be set up
 * (logged). */
void *worker_new(void *shared);
void worker_free(void *worker);

/* Route one request: GET /healthz here, the rest by the routes. */
void worker_handle(void *worker, const struct http_req *req, struct http_resp *resp);

#endif
