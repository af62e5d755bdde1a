/* http.c - civetweb glue: listener, per-thread workers, bounded request
 * reading, one-write responses, redacted logging. The only civetweb user. */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <civetweb.h>

#include "bigstack.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "token.h"

struct http_server {
    struct mg_context *ctx;
    const struct http_app *app;
    struct sockaddr_in addr;     /* the listener, to wake it when stopping */
};

/* What one civetweb worker thread owns. */
struct http_worker {
    void *app_worker;            /* the application's per-thread state */
    struct bigstack *stack;      /* handlers run here, not on civetweb's 100 KiB */
    char body[HF_BODY_MAX + 2];  /* the request body, reused by every request */
};

/* One handler call, carried onto the big stack. */
struct handler_call {
    const struct http_app *app;
    void *app_worker;
    const struct http_req *req;
    struct http_resp *resp;
};

static void run_handler(void *arg)
{
    struct handler_call *c = arg;

    c->app->handle(c->app_worker, c->req, c->resp);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 402: return "Payment Required";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    return mg_get_header((const struct mg_connection *)req->conn, name);
}

int http_query_param(const struct http_req *req, const char *name, char *out,
                     size_t outlen)
{
    const struct mg_request_info *ri =
        mg_get_request_info((const struct mg_connection *)req->conn);
    int n;

    if (!ri->query_string)
        return -1;
    n = mg_get_var(ri->query_string, strlen(ri->query_string), name, out, outlen);
    return n >= 0 ? 0 : n == -1 ? -1 : -2;
}

int http_req_cookie(const struct http_req *req, const char *name, char *out,
                    size_t outlen)
{
    const char *h = http_req_header(req, "Cookie");
    int n;

    if (!h)
        return -1;
    n = mg_get_cookie(h, name, out, outlen);
    return n >= 0 ? 0 : n == -1 ? -1 : -2;
}

int http_form_field(const struct http_req *req, const char *name, char *out,
                    size_t outlen)
{
    int n;

    if (!req->body)
        return -1;
    n = mg_get_var(req->body, req->body_len, name, out, outlen);
    return n >= 0 ? 0 : n == -1 ? -1 : -2;
}

void http_resp_header(struct http_resp *resp, const char *name, const char *value)
{
    size_t used = strlen(resp->headers);

    snprintf(resp->headers + used, sizeof resp->headers - used, "%s: %s\r\n",
             name, value);
}

/* Headers and body in one buffer, one mg_write: one syscall per response. */
static void send_response(struct mg_connection *conn, const struct http_req *req,
                          const struct http_resp *resp)
{
    char head[HF_RESP_HEADERS_MAX + 512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Request-Id: %s\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "%s\r\n",
                     resp->status, reason(resp->status),
                     resp->content_type ? resp->content_type : "application/json",
                     resp->body_len, req->request_id, resp->headers);
    /* HEAD: the headers GET would send, no body */
    size_t body_len = strcmp(req->method, "HEAD") == 0 ? 0 : resp->body_len;
    size_t total = (size_t)n + body_len;
    char *buf = malloc(total);

    if (!buf) {
        mg_write(conn, head, (size_t)n);
        mg_write(conn, resp->body, body_len);
        return;
    }
    memcpy(buf, head, (size_t)n);
    if (body_len)
        memcpy(buf + n, resp->body, body_len);
    mg_write(conn, buf, total);
    if (resp->body_secret)
        token_wipe(buf, total);
    free(buf);
}

/* Read at most HF_BODY_MAX bytes of body; 0, 413 when there is more, 400
 * when it ended before its Content-Length or its last chunk (the client
 * gave up, or the server is stopping): never a cut body taken for whole. */
static int read_body(struct mg_connection *conn, char *buf, char **out, size_t *len)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    size_t n = 0;
    int r = 0;

    *out = NULL;
    *len = 0;
    if (ri->content_length > HF_BODY_MAX)
        return 413;
    if (ri->content_length == 0)
        return 0;
    while (n <= HF_BODY_MAX &&
           (r = mg_read(conn, buf + n, HF_BODY_MAX + 1 - n)) > 0)
        n += (size_t)r;
    if (n > HF_BODY_MAX) {
        token_wipe(buf, HF_BODY_MAX + 1);
        return 413;
    }
    if (r < 0 || (ri->content_length > 0 && (long long)n != ri->content_length)) {
        token_wipe(buf, n);
        return 400;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static void error_body(struct http_resp *resp, int status, const char *code,
                       const char *message)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "{\"error_code\":\"%s\",\"message\":\"%s\"}", code, message);

    /* only constant strings reach here, never request data */
    resp->status = status;
    resp->body = strdup(buf);
    resp->body_len = resp->body ? (size_t)n : 0;
    resp->error_code = code;
}

/* After an answer to a body it did not read whole, read and drop up to
 * this much more of it: a client still sending when the connection closes
 * would get a reset and could lose the answer; one that goes on past it is
 * cut off. */
#define LINGER_BYTES (1u << 20)

static void linger_read(struct mg_connection *conn)
{
    char buf[16384];
    size_t n = 0;
    int r;

    while (n < LINGER_BYTES && (r = mg_read(conn, buf, sizeof buf)) > 0)
        n += (size_t)r;
}

/* The body was not read to its end: the connection cannot be reused.
 * civetweb must know it too, or it would read and drop whatever length the
 * client declared, for as long as the client sends. */
static void close_after(struct mg_connection *conn, struct http_resp *resp)
{
    http_resp_header(resp, "Connection", "close");
    mg_disable_connection_keep_alive(conn);
}

static int handle(struct mg_connection *conn, void *cbdata)
{
    struct http_server *srv = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct http_worker *worker = mg_get_thread_pointer(conn);
    char request_id[32], *body = NULL;
    struct http_req req;
    struct http_resp resp;
    long long start = clock_mono_us(), duration_us;
    int rc;

    token_id("req_", request_id, sizeof request_id);
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    resp.status = 500;
    req.method = ri->request_method;
    req.path = ri->local_uri ? ri->local_uri : "/";
    req.remote_addr = ri->remote_addr;
    req.request_id = request_id;
    req.conn = conn;

    rc = worker ? read_body(conn, worker->body, &body, &req.body_len) : 500;
    req.body = body;
    if (rc == 413) {
        error_body(&resp, 413, "invalid_request",
                   "Request body is larger than 65536 bytes.");
        close_after(conn, &resp);
    } else if (rc == 400) {
        error_body(&resp, 400, "invalid_request",
                   "The request body ended before its declared length.");
        close_after(conn, &resp);
    } else if (rc != 0 || !worker || !worker->app_worker) {
        error_body(&resp, 500, "internal_error", "The server could not handle the request.");
    } else {
        struct handler_call call = {srv->app, worker->app_worker, &req, &resp};
        bigstack_run(worker->stack, run_handler, &call);
    }
    send_response(conn, &req, &resp);
    if (rc == 413)
        linger_read(conn);
    duration_us = clock_mono_us() - start;
    metrics_http_request(metrics_route(req.method, req.path), resp.status, duration_us);

    log_request(&(struct log_request){
        .request_id = request_id,
        .method = req.method,
        .path = req.path,
        .status = resp.status,
        .duration_us = duration_us,
        .tenant = resp.tenant[0] ? resp.tenant : NULL,
        .policy_version = resp.policy_version[0] ? resp.policy_version : NULL,
        .decision = resp.decision,
        .error_code = resp.error_code,
        .policy_us = resp.policy_us,
    });
    if (resp.body_secret && resp.body)
        token_wipe(resp.body, resp.body_len);
    free(resp.body);
    if (body) /* card numbers and secrets must not outlive the request */
        token_wipe(body, req.body_len);
    return resp.status;
}

static void *init_thread(const struct mg_context *ctx, int thread_type)
{
    struct http_server *srv = mg_get_user_data(ctx);
    struct http_worker *w;

    if (thread_type != 1) /* only connection workers handle requests */
        return NULL;
    w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->stack = bigstack_new();
    if (w->stack)
        w->app_worker = srv->app->worker_new(srv->app->data);
    if (!w->app_worker)
        log_msg(HF_LOG_ERROR, "http: a worker thread could not start; it answers 500");
    return w;
}

static void exit_thread(const struct mg_context *ctx, int thread_type, void *worker)
{
    struct http_server *srv = mg_get_user_data(ctx);
    struct http_worker *w = worker;

    if (thread_type != 1 || !w)
        return;
    if (w->app_worker)
        srv->app->worker_free(w->app_worker);
    bigstack_free(w->stack);
    free(w);
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_msg(HF_LOG_WARN, "http: %s", message);
    return 1;
}

/* Authentication is the application's (API keys, the admin token). Without
 * an auth handler civetweb looks for a .htpasswd file on every request -
 * at "/.htpasswd", having no document root - and would demand its digest
 * authentication of every request if such a file appeared. */
static int no_password_files(struct mg_connection *conn, void *cbdata)
{
    (void)conn;
    (void)cbdata;
    return 1;
}

/* The IPv4 address of "ADDR:PORT" (0.0.0.0 reaches the loopback); left
 * zero when it is not one, and stopping is merely slower. */
static void remember_address(struct http_server *srv, const char *listen)
{
    const char *colon = strrchr(listen, ':');
    char host[64];

    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return;
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (inet_pton(AF_INET, host, &srv->addr.sin_addr) != 1)
        return;
    srv->addr.sin_family = AF_INET;
    srv->addr.sin_port = htons((unsigned short)atoi(colon + 1));
}

int http_start(const char *listen, int threads_n, int keep_alive_ms, const struct http_app *app,
               struct http_server **out, char *err, size_t errlen)
{
    struct http_server *srv = calloc(1, sizeof *srv);
    struct mg_callbacks cb;
    char threads[16], keep_alive[16];
    const char *options[] = {
        "listening_ports", listen,
        "num_threads", threads,
        "request_timeout_ms", "10000",
        "enable_keep_alive", keep_alive_ms > 0 ? "yes" : "no",
        "keep_alive_timeout_ms", keep_alive,
        "tcp_nodelay", "1",
        "max_request_size", "16384",   /* request line + headers */
        "enable_directory_listing", "no",
        NULL};

    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(threads, sizeof threads, "%d", threads_n);
    snprintf(keep_alive, sizeof keep_alive, "%d", keep_alive_ms > 0 ? keep_alive_ms : 1);
    srv->app = app;
    memset(&cb, 0, sizeof cb);
    cb.init_thread = init_thread;
    cb.exit_thread = exit_thread;
    cb.log_message = log_message;
    /* no log_access callback and no access_log_file: civetweb then skips
     * its access log entirely (it would print raw paths, tokens included,
     * and format a local time per request); our log_request line replaces it */
    mg_init_library(0);
    srv->ctx = mg_start(&cb, srv, options);
    if (!srv->ctx) {
        snprintf(err, errlen, "cannot listen on %s (in use, or not a local address)",
                 listen);
        free(srv);
        mg_exit_library();
        return -1;
    }
    mg_set_auth_handler(srv->ctx, "/", no_password_files, NULL);
    mg_set_request_handler(srv->ctx, "/", handle, srv);
    remember_address(srv, listen);
    *out = srv;
    return 0;
}

static void *stop_context(void *ctx)
{
    mg_stop(ctx);
    return NULL;
}

void http_stop(struct http_server *srv)
{
    pthread_t stopper;

    if (!srv)
        return;
    /* civetweb's accept loop notices the stop flag only when its poll()
     * returns, which can take 2 s; a connection of our own wakes it */
    if (pthread_create(&stopper, NULL, stop_context, srv->ctx) == 0) {
        while (pthread_tryjoin_np(stopper, NULL) != 0) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0 && srv->addr.sin_port)
                (void)!connect(fd, (struct sockaddr *)&srv->addr, sizeof srv->addr);
            if (fd >= 0)
                close(fd);
            usleep(20000);
        }
    } else {
        mg_stop(srv->ctx);
    }
    mg_exit_library();
    free(srv);
}
