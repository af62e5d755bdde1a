/* admin.h - the admin listener: health, readiness, metrics, policy status
 * and reload. Loopback by default; optional bearer token. */
#ifndef HF_ADMIN_H
#define HF_ADMIN_H

#include "config.h"
#include "http.h"

struct policy_engine;

struct admin_shared {
    const struct config *cfg;
    struct policy_engine *engine;
    const char *token;           /* HOSTFLOW_ADMIN_TOKEN, NULL = none */
};

/* Per-thread admin state (a store connection for /readyz) for a struct
 * admin_shared; NULL when it cannot be set up (logged). */
void *admin_worker_new(void *shared);
void admin_worker_free(void *worker);
void admin_handle(void *worker, const struct http_req *req, struct http_resp *resp);

#endif
