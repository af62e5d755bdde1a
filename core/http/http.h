/* http.h - the HTTP server seen from the handlers: a request in, a response
 * out. http.c is the only user of civetweb; handlers never see it. */
#ifndef HF_HTTP_H
#define HF_HTTP_H

#include <stddef.h>


#define HF_BODY_MAX (64 * 1024)   /* largest request body accepted */
#define HF_RESP_HEADERS_MAX 4096

struct http_req {
    const char *method;
    const char *path;          /* URL-decoded path, no query */
    const char *body;          /* NUL-terminated copy, NULL when empty */
    size_t body_len;
    const char *remote_addr;
    const char *request_id;    /* also sent back as Request-Id */
    const void *conn;          /* http.c's; handlers pass it back only */
    const struct http_later *again; /* http.c's: a request answered again */
};

struct http_resp {
    int status;
    const char *content_type;      /* static string */
    char *body;                    /* malloc'd; http.c frees it */
    size_t body_len;
    int body_secret;               /* 1: wipe the body after sending */
    char headers[HF_RESP_HEADERS_MAX]; /* extra "Name: value\r\n" lines */
    /* for the request log line */
    char tenant[48];
    char policy_version[24];
    const char *decision;
    const char *error_code;
    long long policy_us;           /* time spent in the policy, 0 if none */
    long policy_instructions;      /* of its budget it used (policy_verdict) */
};

/* The request header name (case-insensitive); NULL when absent. */
const char *http_req_header(const struct http_req *req, const char *name);

/* Query parameter name, URL-decoded, into out. 0 found, -1 absent, -2 when
 * longer than outlen - 1. */
int http_query_param(const struct http_req *req, const char *name, char *out,
                     size_t outlen);

/* Cookie name of the request into out: same returns as http_query_param. */
int http_req_cookie(const struct http_req *req, const char *name, char *out,
                    size_t outlen);

/* Field name of an application/x-www-form-urlencoded body, URL-decoded,
 * into out: same returns as http_query_param. */
int http_form_field(const struct http_req *req, const char *name, char *out,
                    size_t outlen);

/* ---- answers given later, by another thread ---------------------------
 * A handler whose answer waits on another thread (a group commit) can
 * leave the answering to that thread: the worker thread then goes back to
 * its connection instead of sleeping, and the connection takes no new
 * request until the answer is sent. */
struct http_later;

/* The request's answer may be given later: *later_resp is where it goes
 * (resp's headers and log fields so far, no body; the handler then leaves
 * resp alone). NULL when it cannot be, and the handler answers as usual: a
 * connection's first request, a request answered again, a socket whose
 * earlier answers the client has not taken yet. The http_later must then
 * reach exactly one of the three functions below. */
struct http_later *http_later_begin(const struct http_req *req, struct http_resp *resp,
                                    struct http_resp **later_resp);
/* Send *later_resp and log the request; any thread, once. Never blocks:
 * what the socket does not take at once the worker thread sends. */
void http_later_send(struct http_later *l);
/* Answer the request again on its worker thread (handle is called again
 * with req->again set) and close the connection after; any thread, once. */
void http_later_answer_again(struct http_later *l);
/* The handler answers after all; on the handler's thread, before it
 * returns. */
void http_later_cancel(struct http_later *l);

/* Append one "name: value" header line to resp. */
void http_resp_header(struct http_resp *resp, const char *name, const char *value);

/* What http.c needs from the application. */
struct http_app {
    void *data;                     /* passed to worker_new */
    /* Per-worker-thread state: created on the thread, used only there. */
    void *(*worker_new)(void *data);
    void (*worker_free)(void *worker);
    /* Fill resp for req; resp arrives zeroed with status 500. */
    void (*handle)(void *worker, const struct http_req *req, struct http_resp *resp);
};

struct http_server;

/* Listen on "ADDR:PORT" with threads workers serving app. 0, or -1 with a
 * sentence in err. */
int http_start(const char *listen, int threads, int keep_alive_ms, const struct http_app *app,
               struct http_server **out, char *err, size_t errlen);
/* The port srv listens on (the one the kernel picked for port 0). */
int http_port(const struct http_server *srv);
/* Stop accepting, let in-flight requests finish, free; NULL is fine. */
void http_stop(struct http_server *srv);

#endif
