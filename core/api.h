/* api.h - the JSON API under /api/v1: per-worker state and the router. */
#ifndef HF_API_H
#define HF_API_H

#include "config.h"
#include "http.h"

/* Per-worker-thread state (a store connection and a policy state); NULL
 * when either cannot be opened (logged). */
void *api_worker_new(const struct config *cfg);
void api_worker_free(void *worker);

/* Route and answer one request. */
void api_handle(void *worker, const struct http_req *req, struct http_resp *resp);

#endif
