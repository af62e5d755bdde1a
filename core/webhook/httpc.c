/* httpc.c - outgoing HTTP requests: the only user of libcurl. */
#define _POSIX_C_SOURCE 200809L
#include "httpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <curl/curl.h>

#include "err.h"
#include "netaddr.h"
#include "url.h"
#include "version.h"

/* The response body as it arrives, refused past max; or, for a batch,
 * thrown away whatever its size. */
struct sink {
    char *data;
    size_t len, cap, max;
    int too_big;
    int discard;
};

static size_t take(char *chunk, size_t size, size_t n, void *userdata)
{
    struct sink *s = userdata;
    size_t add = size * n;

    if (s->discard)
        return add; /* only the status matters; the timeout bounds the reading */
    if (add > s->max - s->len) {
        s->too_big = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (s->len + add + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        char *grown;

        while (cap < s->len + add + 1)
            cap *= 2;
        grown = realloc(s->data, cap);
        if (!grown)
            return 0;
        s->data = grown;
        s->cap = cap;
    }
    memcpy(s->data + s->len, chunk, add);
    s->len += add;
    s->data[s->len] = '\0';
    return add;
}

int httpc_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void httpc_global_cleanup(void)
{
    curl_global_cleanup();
}

/* No answer at all: worth trying again later. */
static int unreachable(CURLcode c)
{
    return c == CURLE_COULDNT_RESOLVE_HOST || c == CURLE_COULDNT_RESOLVE_PROXY ||
           c == CURLE_COULDNT_CONNECT || c == CURLE_OPERATION_TIMEDOUT ||
           c == CURLE_SEND_ERROR || c == CURLE_RECV_ERROR || c == CURLE_GOT_NOTHING;
}

/* One exchange's own state: what curl points into must outlive it. */
struct exchange {
    CURL *h;
    struct curl_slist *headers;
    struct sink sink;
    char *body;                   /* a batch's copy of the request body */
    long timeout_ms;
    int allow_internal;           /* the URL names an internal address itself */
    int refused_internal;         /* a connection to one was refused */
    void *tag;
    struct exchange *prev, *next; /* a batch's exchanges in flight */
    char curl_err[CURL_ERROR_SIZE];
};

/* Every connection of a refuse_internal request comes through here: an
 * internal address is refused unless the URL named it literally, so a
 * public name that resolves to one (or is re-pointed at one) gets nowhere. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *addr)
{
    struct exchange *x = clientp;

    (void)purpose;
    if (!x->allow_internal && netaddr_is_internal(&addr->addr)) {
        x->refused_internal = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static void exchange_free(struct exchange *x)
{
    if (!x)
        return;
    free(x->sink.data);
    curl_slist_free_all(x->headers);
    if (x->h)
        curl_easy_cleanup(x->h);
    free(x->body);
    free(x);
}

/* A curl handle for req in a new exchange; NULL with err. body is the
 * request body curl reads from (the caller's, or a batch's copy). */
static struct exchange *exchange_new(const struct httpc_request *req, const char *body,
                                     char *err, size_t errlen)
{
    struct exchange *x = calloc(1, sizeof *x);

    if (!x || !(x->h = curl_easy_init())) {
        snprintf(err, errlen, "cannot set up an HTTP request (out of memory?)");
        exchange_free(x);
        return NULL;
    }
    x->sink.max = req->max_body;
    x->timeout_ms = req->timeout_ms;
    for (const char *const *line = req->headers; line && *line; line++) {
        struct curl_slist *more = curl_slist_append(x->headers, *line);

        if (!more) {
            snprintf(err, errlen, "out of memory");
            exchange_free(x);
            return NULL;
        }
        x->headers = more;
    }
    curl_easy_setopt(x->h, CURLOPT_URL, req->url);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->curl_err);
    /* signals cannot time name lookups out in a threaded server */
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "hostflow/" HF_VERSION);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(x->h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_body);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, take);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, &x->sink);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    if (req->refuse_internal) {
        struct url u;

        /* only an address the URL spells out: a name ("localhost" too)
         * resolves to whatever the resolver says */
        x->allow_internal = url_parse(req->url, strlen(req->url), &u) == URL_OK &&
                            netaddr_host_is_literal(u.host) &&
                            netaddr_host_is_internal(u.host);
        curl_easy_setopt(x->h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(x->h, CURLOPT_OPENSOCKETDATA, x);
    }
    if (req->refuse_internal || req->no_proxy)
        curl_easy_setopt(x->h, CURLOPT_PROXY, ""); /* a proxy would connect for us */
    if (body) {
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    if (strcmp(req->method, body ? "POST" : "GET") != 0)
        curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, req->method);
    return x;
}

/* What an ended exchange means: 0 with its status, or HF_E… with err. */
static int outcome(struct exchange *x, CURLcode c, long *status, char *err, size_t errlen)
{
    /* a name with an internal and a public address: curl goes on to the
     * next address after a refused one, and an answer from it counts */
    if (x->refused_internal && c != CURLE_OK) {
        snprintf(err, errlen, "refused: the host resolves to an internal address");
        return HF_EUNAVAILABLE;
    }
    if (c != CURLE_OK) {
        if (x->sink.too_big || c == CURLE_FILESIZE_EXCEEDED)
            snprintf(err, errlen, "the response body is over %zu bytes", x->sink.max);
        else if (c == CURLE_OPERATION_TIMEDOUT)
            snprintf(err, errlen, "no answer within %ld ms (%s)", x->timeout_ms,
                     x->curl_err[0] ? x->curl_err : curl_easy_strerror(c));
        else
            snprintf(err, errlen, "%s", x->curl_err[0] ? x->curl_err : curl_easy_strerror(c));
        return unreachable(c) && !x->sink.too_big ? HF_EUNAVAILABLE : HF_EUPSTREAM;
    }
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

int httpc_send(const struct httpc_request *req, struct httpc_response *out, char *err,
               size_t errlen)
{
    struct exchange *x = exchange_new(req, req->body, err, errlen);
    long status = 0;
    int rc;

    if (!x)
        return HF_EUPSTREAM;
    rc = outcome(x, curl_easy_perform(x->h), &status, err, errlen);
    if (rc == 0 && !x->sink.data && !(x->sink.data = calloc(1, 1))) {
        snprintf(err, errlen, "out of memory");
        rc = HF_EUPSTREAM;
    }
    if (rc == 0) {
        out->status = status;
        out->body = x->sink.data;
        out->body_len = x->sink.len;
        x->sink.data = NULL;
    }
    exchange_free(x);
    return rc;
}

void httpc_response_free(struct httpc_response *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* ---- batches ---------------------------------------------------------- */

struct httpc_batch {
    CURLM *multi;
    size_t in_flight;
    struct exchange *head;        /* in flight, for httpc_batch_free */
};

static void unlink_exchange(struct httpc_batch *b, struct exchange *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        b->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    curl_multi_remove_handle(b->multi, x->h);
    b->in_flight--;
}

int httpc_batch_new(struct httpc_batch **out)
{
    struct httpc_batch *b = calloc(1, sizeof *b);

    if (!b || !(b->multi = curl_multi_init())) {
        free(b);
        return HF_ENOMEM;
    }
    *out = b;
    return 0;
}

int httpc_batch_add(struct httpc_batch *b, const struct httpc_request *req, void *tag,
                    char *err, size_t errlen)
{
    char *body = NULL;
    struct exchange *x;

    if (req->body && !(body = malloc(req->body_len + 1))) {
        snprintf(err, errlen, "out of memory");
        return HF_EUPSTREAM;
    }
    if (body)
        memcpy(body, req->body, req->body_len);
    if (!(x = exchange_new(req, body, err, errlen))) {
        free(body);
        return HF_EUPSTREAM;
    }
    x->body = body;
    x->tag = tag;
    x->sink.discard = 1;
    curl_easy_setopt(x->h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0); /* no limit */
    if (curl_multi_add_handle(b->multi, x->h) != CURLM_OK) {
        snprintf(err, errlen, "cannot start an HTTP request");
        exchange_free(x);
        return HF_EUPSTREAM;
    }
    x->next = b->head;
    if (b->head)
        b->head->prev = x;
    b->head = x;
    b->in_flight++;
    return 0;
}

void httpc_batch_run(struct httpc_batch *b, int wait_ms, struct httpc_result *out,
                     size_t max, size_t *n)
{
    CURLMsg *msg;
    int running, left;

    *n = 0;
    curl_multi_perform(b->multi, &running);
    if (b->in_flight == 0 || running == (int)b->in_flight) {
        curl_multi_poll(b->multi, NULL, 0, wait_ms, NULL);
        curl_multi_perform(b->multi, &running);
    }
    while (*n < max && (msg = curl_multi_info_read(b->multi, &left))) {
        struct exchange *x = NULL;
        struct httpc_result *r = &out[*n];

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        memset(r, 0, sizeof *r);
        r->tag = x->tag;
        r->rc = outcome(x, msg->data.result, &r->status, r->error, sizeof r->error);
        unlink_exchange(b, x);
        exchange_free(x);
        (*n)++;
    }
}

size_t httpc_batch_in_flight(const struct httpc_batch *b)
{
    return b->in_flight;
}

void httpc_batch_wake(struct httpc_batch *b)
{
    curl_multi_wakeup(b->multi);
}

void httpc_batch_free(struct httpc_batch *b, void **abandoned, size_t max, size_t *n)
{
    if (n)
        *n = 0;
    if (!b)
        return;
    while (b->head) {
        struct exchange *x = b->head;

        if (abandoned && n && *n < max)
            abandoned[(*n)++] = x->tag;
        unlink_exchange(b, x);
        exchange_free(x);
    }
    curl_multi_cleanup(b->multi);
    free(b);
}
