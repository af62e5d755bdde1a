/* httpc.h - outgoing HTTP requests, one at a time per caller (the live
 * processor), and libcurl's process-wide set-up. webhook.c drives many
 * requests at once through libcurl's multi interface itself.
 *
 * One bounded exchange per call: connect and total timeouts, certificate
 * and host name verification on, http and https only, no redirect
 * followed, the response body capped. Each call uses a handle of its own,
 * so worker threads call httpc_send in parallel without a lock once
 * httpc_global_init has run. */
#ifndef HF_HTTPC_H
#define HF_HTTPC_H

#include <stddef.h>

struct httpc_request {
    const char *method;           /* "GET", "POST", … */
    const char *url;              /* absolute http:// or https:// URL */
    const char *const *headers;   /* "Name: value" lines, NULL-terminated; NULL for none */
    const char *body;             /* sent as is; NULL for none */
    size_t body_len;
    long connect_timeout_ms;      /* name lookup, TCP and TLS set-up */
    long timeout_ms;              /* the whole exchange */
    size_t max_body;              /* a longer response body is an error */
};

struct httpc_response {
    long status;                  /* the HTTP status */
    char *body;                   /* malloc'd and NUL-terminated; httpc_response_free */
    size_t body_len;
};

/* Set libcurl up for the whole process: once, before any other thread
 * starts. 0, or -1 when libcurl cannot be initialised. */
int httpc_global_init(void);

/* Undo httpc_global_init, after every thread that sent has stopped. */
void httpc_global_cleanup(void);

/* Send req and read the answer. 0 with *out filled, whatever the HTTP
 * status (the caller judges it; free with httpc_response_free);
 * HF_EUNAVAILABLE when no answer came (name not found, refused, reset,
 * timed out); HF_EUPSTREAM when the answer could not be used (TLS
 * verification failed, body over max_body, broken HTTP). On failure a
 * sentence for the log goes to err; it never holds a header value, so a
 * credential in a header cannot reach it. */
int httpc_send(const struct httpc_request *req, struct httpc_response *out, char *err,
               size_t errlen);

/* Free a response's body; NULL is fine. */
void httpc_response_free(struct httpc_response *r);

#endif
