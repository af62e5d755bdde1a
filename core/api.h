/* api.h - the JSON API under /api/v1: per-worker state and the router. */
#ifndef HF_API_H
#define HF_API_H

#include "config.h"
#include "http.h"

struct policy_engine;

/* What every API worker shares: read-only config, the policy engine. */
struct api_shared {
    const struct config *cfg;
    struct policy_engine *engine;
};

/* Per-worker-thread state (a store connection and a policy state) for a
 * struct api_shared; NULL when it cannot be set up (logged). */
void *api_worker_new(void *shared);
void api_worker_free(void *worker);

/* Route and answer one request. */
void api_handle(void *worker, const struct http_req *req, struct http_resp *resp);

#endif
