/* httpc.h - outgoing HTTP requests: the only user of libcurl. One
 * exchange at a time per caller (httpc_send, for the live processor) or
 * many at once from one thread (struct httpc_batch, for webhooks).
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
    int refuse_internal;          /* never connect to an internal address (netaddr.h)
                                   * unless url names it literally; no proxy */
    int no_proxy;                 /* connect to url's host itself, whatever proxy the
                                   * environment names (implied by refuse_internal) */
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

/* ---- many requests from one thread ----
 * A batch keeps requests in flight together; one thread adds them and
 * collects what finished. Response bodies are read and dropped, whatever
 * their size (max_body does not apply; the timeout bounds the reading): a
 * batch answers with the status only. */
struct httpc_batch;

struct httpc_result {
    void *tag;                    /* as given to httpc_batch_add */
    long status;                  /* the HTTP status when rc is 0 */
    int rc;                       /* 0, HF_EUNAVAILABLE or HF_EUPSTREAM as for httpc_send */
    char error[160];              /* when rc is not 0: what went wrong */
};

int httpc_batch_new(struct httpc_batch **out);
/* Start req (url, headers and body are copied). 0, or HF_EUPSTREAM with
 * err when it cannot even be set up. */
int httpc_batch_add(struct httpc_batch *b, const struct httpc_request *req, void *tag,
                    char *err, size_t errlen);
/* Move the requests on, waiting up to wait_ms for something to happen
 * (httpc_batch_wake ends the wait early); up to max finished ones go to
 * out, their count to *n. */
void httpc_batch_run(struct httpc_batch *b, int wait_ms, struct httpc_result *out,
                     size_t max, size_t *n);
size_t httpc_batch_in_flight(const struct httpc_batch *b);
/* From any thread: end the current or next wait of httpc_batch_run. */
void httpc_batch_wake(struct httpc_batch *b);
/* Abandon what is still in flight, tags into abandoned (up to max, count
 * in *n; either may be NULL), and free. NULL is fine. */
void httpc_batch_free(struct httpc_batch *b, void **abandoned, size_t max, size_t *n);

#endif
