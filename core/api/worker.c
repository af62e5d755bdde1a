/* worker.c - per-thread state of the public listener and its router. */
#include "worker.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy.h"

void *worker_new(void *shared)
{
    const struct worker_shared *sh = shared;
    struct worker *w = calloc(1, sizeof *w);
    char err[512];

    if (!w)
        return NULL;
    w->routes = sh->routes;
    w->cfg = sh->cfg;
    w->limits = sh->limits;
    w->engine = sh->engine;
    w->webhook_key = sh->webhook_key;
    w->page = calloc(HF_LIST_LIMIT_MAX, sizeof *w->page);
    if (!w->page || store_open(w->cfg->db_path, &w->store, err, sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "worker: %s", w->page ? err : "out of memory");
        worker_free(w);
        return NULL;
    }
    store_attach_writer(w->store, sh->writer);
    /* the policy state is built at the first request that needs it */
    return w;
}

void worker_free(void *worker)
{
    struct worker *w = worker;

    if (!w)
        return;
    store_close(w->store);
    policy_free(w->policy);
    free(w->page);
    free(w);
}

void worker_handle(void *worker, const struct http_req *req, struct http_resp *resp)
{
    /* for load balancers, and the benchmark's trivial-handler ceiling */
    if (strcmp(req->path, "/healthz") == 0 && strcmp(req->method, "GET") == 0) {
        resp->status = 200;
        resp->content_type = "text/plain";
        resp->body = strdup("ok\n");
        resp->body_len = resp->body ? 3 : 0;
        return;
    }
    for (const struct worker_route *r = ((struct worker *)worker)->routes; r->handle; r++)
        if (!r->prefix || strncmp(req->path, r->prefix, strlen(r->prefix)) == 0) {
            r->handle(worker, req, resp);
            return;
        }
    resp->status = 404;
}
