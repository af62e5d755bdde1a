/* api.h - what the JSON API's handlers share (api.c, webhook_api.c,
 * events_api.c). */
#ifndef HF_API_H
#define HF_API_H

#include <stddef.h>

#include "worker.h"

#define SESSIONS_PATH "/api/v1/payment/sessions"
#define WEBHOOK_ENDPOINTS_PATH "/api/v1/webhook_endpoints"
#define EVENTS_PATH "/api/v1/events"

struct json_t;
struct api_key;

/* Set resp to the flat error body {"error_code","message"[,"param"]} with
 * the status of rc; code NULL means rc's own code. param may be NULL. */
void api_fail(struct http_resp *resp, int rc, const char *code,
              const char *message, const char *param);
/* Set resp to v encoded (v is freed). */
void api_reply(struct http_resp *resp, int status, struct json_t *v);
/* The same with a body already encoded (malloc'd; the response owns it). */
void api_reply_text(struct http_resp *resp, int status, char *body);
void api_method_not_allowed(struct http_resp *resp, const char *allow);
/* Object ids: letters, digits and '_' only, 1..HF_ID_MAX-1 bytes. */
int api_id_ok(const char *id, size_t n);
/* Content-Type is application/json, parameters such as charset allowed. */
int api_is_json(const char *ct);
/* The request's JSON body into *out (json_free it), or -1 with resp set to
 * the 400 saying why. */
int api_json_body(const struct http_req *req, struct http_resp *resp, struct json_t **out);
/* A string member that must be present and non-empty, or -1 with resp set
 * to the 400 naming it. */
int api_required_string(const struct json_t *body, const char *key, const char **out,
                        struct http_resp *resp);
/* The JSON API: every path the other routes do not take (api.c). */
void api_handle(struct worker *w, const struct http_req *req, struct http_resp *resp);

/* Lists: limit (1..100, default 10) and at most one cursor, from the
 * query string. */
/* The page parameters of req into page (its cursors point into the
 * buffers after and before, HF_ID_MAX each), or -1 with resp set to the
 * 400 naming the bad one. */
int api_page_params(const struct http_req *req, struct list_page *page, char *after,
                    char *before, struct http_resp *resp);
/* resp: the 400 for a cursor of page that names none of the list's items
 * (what: "payment session", "event"). */
void api_unknown_cursor(struct http_resp *resp, const struct list_page *page, const char *what);

/* resp: 500 policy_error, the decision logged as an error. */
void api_policy_error(struct http_resp *resp);

/* /api/v1/events[/{id}] for an authenticated key; rest is what follows
 * the prefix (events_api.c). */
void events_api_route(struct worker *w, const struct api_key *key,
                      const struct http_req *req, const char *rest,
                      struct http_resp *resp);

/* /api/v1/webhook_endpoints[/{id}] for an authenticated key; rest is what
 * follows the prefix (webhook_api.c). */
void webhook_api_route(struct worker *w, const struct api_key *key,
                       const struct http_req *req, const char *rest,
                       struct http_resp *resp);

#endif
