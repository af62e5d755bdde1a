/* http.c - civetweb glue: listener, per-thread workers, bounded request
 * reading, one-write responses, redacted logging. The only civetweb user. */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <civetweb.h>

#include "bigstack.h"
#include "clock.h"
#include "err.h"
#include "framing.h"
#include "log.h"
#include "metrics.h"
#include "token.h"

struct http_server {
    struct mg_context *ctx;
    const struct http_app *app;
    struct sockaddr_in addr;     /* the listener, to wake it when stopping */
    int port;                    /* the port bound (the kernel's pick for 0) */
};

#define SAVED_MAX 16384          /* civetweb's max_request_size below */
#define SAVED_HEADERS_MAX 64     /* civetweb's MG_MAX_HEADERS */

enum later_state {
    LATER_NONE,                  /* nothing outstanding */
    LATER_QUEUED,                /* another thread answers */
    LATER_UNSENT,                /* answered; the worker sends the rest, then closes */
    LATER_AGAIN,                 /* the worker answers again, then closes */
    LATER_WAITING = 0x100,       /* or'ed in: the worker thread sleeps on the state */
};

/* A request whose answer another thread gives: what it needs of the
 * request, copied (civetweb reuses its buffer for the next one), and the
 * answer. One per worker thread: a connection takes no new request while
 * its answer is outstanding. */
struct http_later {
    _Atomic int state;           /* enum later_state; a futex word */
    _Atomic int closing;         /* civetweb closes the connection after the answer */
    int fd;                      /* the connection's socket */
    long long start;             /* when the request arrived */
    struct http_req req;         /* its strings point into saved */
    struct http_resp resp;
    const char *query;
    const char *names[SAVED_HEADERS_MAX], *values[SAVED_HEADERS_MAX];
    int n_headers;
    char saved[SAVED_MAX + 512];
    size_t saved_used;
    char *unsent;                /* LATER_UNSENT: the whole answer, and how */
    size_t unsent_len, unsent_from; /* much of it went out already */
};

/* What one civetweb worker thread owns. */
struct http_worker {
    void *app_worker;            /* the application's per-thread state */
    struct bigstack *stack;      /* handlers run here, not on civetweb's 100 KiB */
    int fd;                      /* the connection's socket once found; -1 not
                                  * looked for yet, -2 not found */
    int requests;                /* requests on this connection so far */
    int later_begun;             /* this request's answer is later's */
    long long start;             /* when this request arrived */
    struct http_later later;
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
    const struct http_later *l = req->again;

    if (!l)
        return mg_get_header((const struct mg_connection *)req->conn, name);
    for (int i = 0; i < l->n_headers; i++)
        if (strcasecmp(l->names[i], name) == 0)
            return l->values[i];
    return NULL;
}

int http_query_param(const struct http_req *req, const char *name, char *out,
                     size_t outlen)
{
    const char *query = req->again ? req->again->query
        : mg_get_request_info((const struct mg_connection *)req->conn)->query_string;
    int n;

    if (!query)
        return -1;
    n = mg_get_var(query, strlen(query), name, out, outlen);
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

/* The Ten99Policy-Should-Retry header line of an error answer ("" for
 * others): the reference SDKs retry every 409 and 5xx unless it says
 * false. A retry may help when hostflow or an upstream failed, or after a
 * rate limit's Retry-After; never for a refusal or a policy error. */
static const char *should_retry(const struct http_resp *resp)
{
    if (!resp->error_code)
        return "";
    if (resp->status == 429 ||
        (resp->status >= 500 && strcmp(resp->error_code, hf_err_code(HF_EPOLICY)) != 0))
        return "Ten99Policy-Should-Retry: true\r\n";
    return "Ten99Policy-Should-Retry: false\r\n";
}

/* The status line and headers into head (HF_RESP_HEADERS_MAX + 512);
 * their length. */
static size_t format_head(char *head, const struct http_req *req,
                          const struct http_resp *resp)
{
    int n = snprintf(head, HF_RESP_HEADERS_MAX + 512,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Request-Id: %s\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "%s%s\r\n",
                     resp->status, reason(resp->status),
                     resp->content_type ? resp->content_type : "application/json",
                     resp->body_len, req->request_id, should_retry(resp), resp->headers);

    return n > 0 ? (size_t)n : 0;
}

/* Headers and body in one malloc'd buffer (its length in *len), for one
 * write: one syscall per response. NULL when out of memory. */
static char *format_response(const struct http_req *req, const struct http_resp *resp,
                             size_t *len)
{
    char head[HF_RESP_HEADERS_MAX + 512];
    size_t n = format_head(head, req, resp);
    /* HEAD: the headers GET would send, no body */
    size_t body_len = strcmp(req->method, "HEAD") == 0 ? 0 : resp->body_len;
    char *buf = malloc(n + body_len);

    if (buf) {
        memcpy(buf, head, n);
        if (body_len)
            memcpy(buf + n, resp->body, body_len);
        *len = n + body_len;
    }
    return buf;
}

/* Drop a formatted response, wiped first when it carries a secret. */
static void drop_response(char *buf, size_t len, const struct http_resp *resp)
{
    if (buf && resp->body_secret)
        token_wipe(buf, len);
    free(buf);
}

static void send_response(struct mg_connection *conn, const struct http_req *req,
                          const struct http_resp *resp)
{
    size_t total;
    char *buf = format_response(req, resp, &total);

    if (!buf) {
        char head[HF_RESP_HEADERS_MAX + 512];

        mg_write(conn, head, format_head(head, req, resp));
        if (strcmp(req->method, "HEAD") != 0)
            mg_write(conn, resp->body, resp->body_len);
        return;
    }
    mg_write(conn, buf, total);
    drop_response(buf, total, resp);
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

/* The request's line for the log, and its metrics. */
static void account(const struct http_req *req, const struct http_resp *resp,
                    long long duration_us)
{
    metrics_http_request(metrics_route(req->method, req->path), resp->status, duration_us);
    log_request(&(struct log_request){
        .request_id = req->request_id,
        .method = req->method,
        .path = req->path,
        .status = resp->status,
        .duration_us = duration_us,
        .tenant = resp->tenant[0] ? resp->tenant : NULL,
        .policy_version = resp->policy_version[0] ? resp->policy_version : NULL,
        .decision = resp->decision,
        .error_code = resp->error_code,
        .policy_us = resp->policy_us,
        .policy_instructions = resp->policy_instructions,
    });
}

/* The handler's answer is done with: card numbers and secrets must not
 * outlive the request. */
static void forget_request(struct http_req *req, struct http_resp *resp)
{
    if (resp->body_secret && resp->body)
        token_wipe(resp->body, resp->body_len);
    free(resp->body);
    resp->body = NULL;
    if (req->body)
        token_wipe((char *)req->body, req->body_len);
}

/* ---- answers given later ---------------------------------------------- */

/* Publish st and wake the worker thread if it sleeps on the state. Nothing
 * of l is read after the exchange: the worker may reuse it, or exit and
 * free it, at once (the wake only names the address). */
static void later_publish(struct http_later *l, int st)
{
    if (atomic_exchange(&l->state, st) & LATER_WAITING)
        syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Publish st for a worker thread that must close the connection: shut
 * its reading side first, so that the worker wakes from its wait for the
 * next request (it reads the end of the stream, and civetweb closes the
 * connection, calling connection_closing first). Before publishing: once
 * published, the worker may close the socket at any moment. */
static void later_publish_closing(struct http_later *l, int st)
{
    shutdown(l->fd, SHUT_RD);
    later_publish(l, st);
}

/* Wait until no other thread is answering l; its state then. */
static int later_wait(struct http_later *l)
{
    int st = atomic_load(&l->state);

    while ((st & ~LATER_WAITING) == LATER_QUEUED) {
        if (st == LATER_QUEUED &&
            !atomic_compare_exchange_strong(&l->state, &st, LATER_QUEUED | LATER_WAITING))
            continue; /* published meanwhile: st holds the new state */
        syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, LATER_QUEUED | LATER_WAITING,
                NULL, NULL, 0);
        st = atomic_load(&l->state);
    }
    return st;
}

/* Send what the socket takes now; how much that was (all of it, or less
 * when its buffer is full or the client has gone: a gone client's bytes
 * count as sent, there is nobody to send them to). */
static size_t send_now(int fd, const char *buf, size_t len)
{
    size_t sent = 0;

    while (sent < len) {
        ssize_t n = send(fd, buf + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n > 0)
            sent += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else
            return len;
    }
    return sent;
}

#define SEND_TIMEOUT_MS 10000     /* civetweb's request_timeout_ms below */

/* Send all of buf, waiting for the socket at most SEND_TIMEOUT_MS in all;
 * 0, or -1 when it did not all go out. */
static int send_waiting(int fd, const char *buf, size_t len)
{
    long long until = clock_mono_us() + SEND_TIMEOUT_MS * 1000LL;

    for (;;) {
        size_t n = send_now(fd, buf, len);
        struct pollfd p = {fd, POLLOUT, 0};
        long long left = until - clock_mono_us();

        buf += n;
        len -= n;
        if (len == 0)
            return 0;
        if (left <= 0 || (poll(&p, 1, (int)(left / 1000) + 1) < 0 && errno != EINTR))
            return -1;
    }
}

/* The answer before a close went out: end our side and read what the
 * client still sends until it closes its own (bounded), so that closing
 * with unread data does not reset the connection and take the answer with
 * it. civetweb's own lingering cannot, once the reading side is shut. */
static void linger_closing(int fd)
{
    long long until = clock_mono_us() + 1000000;
    size_t n = 0;
    char buf[4096];

    shutdown(fd, SHUT_WR);
    while (n < LINGER_BYTES) {
        struct pollfd p = {fd, POLLIN, 0};
        long long left = until - clock_mono_us();
        ssize_t r;

        if (left <= 0 || poll(&p, 1, (int)(left / 1000) + 1) <= 0)
            return;
        if ((r = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) <= 0)
            return;
        n += (size_t)r;
    }
}

/* 1 when fd is the TCP connection ri arrived on: its peer's address and
 * port, and our port. */
static int is_connection(int fd, const struct mg_request_info *ri)
{
    struct sockaddr_in peer, local;
    socklen_t plen = sizeof peer, llen = sizeof local;
    char addr[INET_ADDRSTRLEN];

    if (getpeername(fd, (struct sockaddr *)&peer, &plen) != 0 || plen != sizeof peer ||
        peer.sin_family != AF_INET || ntohs(peer.sin_port) != ri->remote_port ||
        getsockname(fd, (struct sockaddr *)&local, &llen) != 0 || llen != sizeof local ||
        ntohs(local.sin_port) != ri->server_port ||
        !inet_ntop(AF_INET, &peer.sin_addr, addr, sizeof addr))
        return 0;
    return strcmp(addr, ri->remote_addr) == 0;
}

/* The socket of the request's connection, which civetweb does not tell:
 * found among the descriptors by its addresses once per connection, and
 * checked again at every use, for a number is reused once its connection
 * closes. -1 when not found. */
static int connection_socket(struct http_worker *w, const struct mg_request_info *ri)
{
    struct rlimit lim;
    int max = 65536;

    if (w->fd == -2) /* looked for on this connection already */
        return -1;
    if (w->fd >= 0 && is_connection(w->fd, ri))
        return w->fd;
    w->fd = -2;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < (rlim_t)max)
        max = (int)lim.rlim_cur;
    for (int fd = 0; fd < max; fd++)
        if (is_connection(fd, ri))
            return w->fd = fd;
    return -1;
}

/* A copy of s in l->saved; NULL when it is full. */
static const char *save(struct http_later *l, const char *s)
{
    size_t n = strlen(s) + 1;
    char *at = l->saved + l->saved_used;

    if (n > sizeof l->saved - l->saved_used)
        return NULL;
    memcpy(at, s, n);
    l->saved_used += n;
    return at;
}

/* Copy what a handler may read of the request into l; 0, or -1 when it
 * does not fit. */
static int save_request(struct http_later *l, const struct http_req *req,
                        const struct mg_request_info *ri)
{
    l->saved_used = 0;
    l->req = *req;
    l->req.conn = NULL;
    l->req.again = l;
    l->req.method = save(l, req->method);
    l->req.path = save(l, req->path);
    l->req.remote_addr = save(l, req->remote_addr);
    l->req.request_id = save(l, req->request_id);
    l->query = ri->query_string ? save(l, ri->query_string) : NULL;
    l->n_headers = 0;
    for (int i = 0; i < ri->num_headers && i < SAVED_HEADERS_MAX; i++) {
        l->names[i] = save(l, ri->http_headers[i].name);
        l->values[i] = save(l, ri->http_headers[i].value);
        if (!l->names[i] || !l->values[i])
            return -1;
        l->n_headers++;
    }
    return l->req.method && l->req.path && l->req.remote_addr && l->req.request_id &&
           (!ri->query_string || l->query) ? 0 : -1;
}

struct http_later *http_later_begin(const struct http_req *req, struct http_resp *resp,
                                    struct http_resp **later_resp)
{
    const struct mg_connection *conn = req->conn;
    const struct mg_request_info *ri;
    struct http_worker *w;
    struct http_later *l;

    int queued = 0;

    if (req->again || !conn || !(w = mg_get_thread_pointer(conn)))
        return NULL;
    /* finding a connection's socket costs more than one wait: not for its
     * first request, which may be its only one */
    ri = mg_get_request_info(conn);
    if (w->requests < 2 || (w->later.fd = connection_socket(w, ri)) < 0)
        return NULL;
    /* earlier answers the client's window has not let out yet (a client
     * reading slowly): this one might not fit, and the writer must not wait */
    if (ioctl(w->later.fd, SIOCOUTQNSD, &queued) != 0 || queued > 0)
        return NULL;
    l = &w->later;
    if (save_request(l, req, ri) != 0) {
        token_wipe(l->saved, l->saved_used);
        return NULL;
    }
    atomic_store(&l->closing, 0);
    l->start = w->start;
    l->resp = *resp; /* headers and log fields so far; the body is the answer's */
    l->resp.body = NULL;
    l->resp.body_len = 0;
    l->resp.body_secret = 0;
    atomic_store(&l->state, LATER_QUEUED);
    w->later_begun = 1;
    *later_resp = &l->resp;
    return l;
}

void http_later_cancel(struct http_later *l)
{
    struct http_worker *w = (struct http_worker *)((char *)l - offsetof(struct http_worker, later));

    w->later_begun = 0;
    token_wipe(l->saved, l->saved_used);
    atomic_store(&l->state, LATER_NONE);
}

void http_later_send(struct http_later *l)
{
    size_t len = 0, sent;
    char *buf;

    if (atomic_load(&l->closing)) /* civetweb waits to close the connection */
        http_resp_header(&l->resp, "Connection", "close");
    if (!(buf = format_response(&l->req, &l->resp, &len))) {
        static const char oom[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";

        l->resp.status = 500;
        account(&l->req, &l->resp, clock_mono_us() - l->start);
        send_now(l->fd, oom, sizeof oom - 1);
        forget_request(&l->req, &l->resp);
        token_wipe(l->saved, l->saved_used);
        /* the connection ends with that answer: nothing left to send, but
         * the worker closes it, unanswered pipelined requests and all */
        l->unsent = NULL;
        l->unsent_len = l->unsent_from = 0;
        later_publish_closing(l, LATER_UNSENT);
        return;
    }
    account(&l->req, &l->resp, clock_mono_us() - l->start);
    metrics_http_answer_later();
    sent = send_now(l->fd, buf, len);
    token_wipe(l->saved, l->saved_used);
    if (sent < len) {
        /* the socket is full: the worker thread sends the rest and
         * closes (this thread never waits for a client) */
        l->unsent = buf;
        l->unsent_len = len;
        l->unsent_from = sent;
        later_publish_closing(l, LATER_UNSENT);
        return;
    }
    drop_response(buf, len, &l->resp);
    forget_request(&l->req, &l->resp);
    later_publish(l, LATER_NONE);
}

void http_later_answer_again(struct http_later *l)
{
    later_publish_closing(l, LATER_AGAIN);
}

/* Finish what a later answer left to this thread: the rest of a slow
 * client's answer, or the request answered again. Returns 1 when the
 * connection must close. */
static int later_settle(struct http_server *srv, struct http_worker *w, int closing)
{
    struct http_later *l = &w->later;
    int st;

    if (!w->later_begun)
        return 0;
    w->later_begun = 0;
    if (closing)
        atomic_store(&l->closing, 1);
    st = later_wait(l);
    if (st == LATER_UNSENT) {
        if (send_waiting(l->fd, l->unsent + l->unsent_from,
                         l->unsent_len - l->unsent_from) == 0)
            linger_closing(l->fd);
        drop_response(l->unsent, l->unsent_len, &l->resp);
        l->unsent = NULL;
        forget_request(&l->req, &l->resp);
    } else if (st == LATER_AGAIN) {
        struct http_resp resp = {.status = 500};
        struct handler_call call = {srv->app, w->app_worker, &l->req, &resp};
        size_t len;
        char *buf;

        bigstack_run(w->stack, run_handler, &call);
        http_resp_header(&resp, "Connection", "close");
        if ((buf = format_response(&l->req, &resp, &len))) {
            if (send_waiting(l->fd, buf, len) == 0)
                linger_closing(l->fd);
            drop_response(buf, len, &resp);
        } else { /* out of memory: head and body apart */
            char head[HF_RESP_HEADERS_MAX + 512];

            if (send_waiting(l->fd, head, format_head(head, &l->req, &resp)) == 0 &&
                send_waiting(l->fd, resp.body, resp.body_len) == 0)
                linger_closing(l->fd);
        }
        account(&l->req, &resp, clock_mono_us() - l->start);
        forget_request(&l->req, &resp);
        token_wipe(l->saved, l->saved_used);
    }
    atomic_store(&l->state, LATER_NONE);
    return st == LATER_UNSENT || st == LATER_AGAIN;
}

/* civetweb's connection_close: before the socket closes, whatever is
 * outstanding on it is answered. */
static void connection_closing(const struct mg_connection *conn)
{
    struct http_worker *w = mg_get_thread_pointer(conn);

    if (!w)
        return;
    later_settle(mg_get_user_data(mg_get_context(conn)), w, 1);
    w->fd = -1;
    w->requests = 0;
}

/* Answer 400 to a request whose framing is in doubt, and close: where it
 * ends, and so where the next request begins, is what is in doubt, so
 * civetweb must read nothing more of the connection (not even to discard
 * a body). why is a constant sentence; no header value is logged. */
static void refuse_framing(struct mg_connection *conn, const char *method, const char *path,
                           const char *why)
{
    char request_id[32];
    struct http_req req = {.method = method, .path = path, .request_id = request_id,
                           .conn = conn};
    struct http_resp resp = {.status = 500};
    long long start = clock_mono_us();

    token_id("req_", request_id, sizeof request_id);
    error_body(&resp, 400, hf_err_code(HF_EINVAL), why);
    close_after(conn, &resp);
    send_response(conn, &req, &resp);
    metrics_http_refused_framing();
    log_msg(HF_LOG_WARN, "http: %s refused: %s", request_id, why);
    account(&req, &resp, clock_mono_us() - start);
    forget_request(&req, &resp);
}

/* The framing of the request civetweb has just parsed; 0, or HF_EINVAL
 * with *why (framing.h). */
static int check_framing(const struct mg_request_info *ri, const char **why)
{
    const char *names[FRAMING_HEADERS_MAX], *values[FRAMING_HEADERS_MAX];
    struct framing_head head = {ri->request_method, ri->http_version, ri->num_headers,
                                names, values, SAVED_MAX};

    for (int i = 0; i < ri->num_headers && i < FRAMING_HEADERS_MAX; i++) {
        names[i] = ri->http_headers[i].name;
        values[i] = ri->http_headers[i].value;
    }
    return framing_check(&head, why);
}

/* civetweb's begin_request, before it looks at the request at all (it
 * answers some itself, such as CORS preflights): a pipelined request waits
 * for the answer before it, then its framing is checked. 0 lets civetweb
 * go on; 503 (for its records; nothing is sent) when the connection closes
 * after that answer; 400 when the framing was refused. */
static int request_begins(struct mg_connection *conn)
{
    struct http_worker *w = mg_get_thread_pointer(conn);
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *why;

    if (w && later_settle(mg_get_user_data(mg_get_context(conn)), w, 0)) {
        mg_disable_connection_keep_alive(conn);
        return 503;
    }
    if (check_framing(ri, &why) != 0) {
        refuse_framing(conn, ri->request_method, ri->local_uri ? ri->local_uri : "/", why);
        return 400;
    }
    return 0;
}

/* civetweb's http_error: civetweb answers a malformed or oversized next
 * request itself, before any begin_request; the answer before it goes
 * first. A head civetweb could not parse or frame (400, or 411 for a
 * Content-Length strtoll refused) gets the same answer as one refused
 * above; the request's strings may not be this request's, so none is
 * logged. 0 (nothing more is sent) when the connection closes after that
 * answer or the answer is given here. */
static int error_answer(struct mg_connection *conn, int status, const char *message)
{
    struct http_worker *w = mg_get_thread_pointer(conn);

    (void)message; /* may quote the request */
    if (w && later_settle(mg_get_user_data(mg_get_context(conn)), w, 0))
        return 0;
    if (status == 400 || status == 411) {
        refuse_framing(conn, "-", "-", "The request head is malformed.");
        return 0;
    }
    return 1;
}

static int handle(struct mg_connection *conn, void *cbdata)
{
    struct http_server *srv = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct http_worker *worker = mg_get_thread_pointer(conn);
    char request_id[32], *body = NULL;
    struct http_req req;
    struct http_resp resp;
    long long start = clock_mono_us();
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
    if (worker) {
        worker->requests++;
        worker->start = start;
    }

    rc = worker ? read_body(conn, worker->body, &body, &req.body_len) : 500;
    req.body = body;
    if (rc == 413) {
        error_body(&resp, 413, hf_err_code(HF_ETOOBIG),
                   "Request body is larger than 65536 bytes.");
        close_after(conn, &resp);
    } else if (rc == 400) {
        error_body(&resp, 400, hf_err_code(HF_EINVAL),
                   "The request body ended before its declared length.");
        close_after(conn, &resp);
    } else if (rc != 0 || !worker || !worker->app_worker) {
        error_body(&resp, 500, "internal_error", "The server could not handle the request.");
    } else {
        struct handler_call call = {srv->app, worker->app_worker, &req, &resp};
        bigstack_run(worker->stack, run_handler, &call);
        if (worker->later_begun)
            return 202; /* answered by another thread; for civetweb's records */
    }
    send_response(conn, &req, &resp);
    if (rc == 413)
        linger_read(conn);
    account(&req, &resp, clock_mono_us() - start);
    forget_request(&req, &resp);
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
    w->fd = -1;
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

/* The port bound, and the IPv4 address of "ADDR:PORT" (0.0.0.0 reaches
 * the loopback) with it; the address is left zero when it is not one, and
 * stopping is merely slower. */
static void remember_address(struct http_server *srv, const char *listen)
{
    struct mg_server_port bound;
    const char *colon = strrchr(listen, ':');
    char host[64];

    if (mg_get_server_ports(srv->ctx, 1, &bound) == 1)
        srv->port = bound.port;
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return;
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (inet_pton(AF_INET, host, &srv->addr.sin_addr) != 1)
        return;
    srv->addr.sin_family = AF_INET;
    srv->addr.sin_port = htons((unsigned short)srv->port);
}

int http_port(const struct http_server *srv)
{
    return srv->port;
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
    cb.connection_close = connection_closing;
    cb.http_error = error_answer;
    cb.begin_request = request_begins;
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
