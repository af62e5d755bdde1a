/* httpc.c - outgoing HTTP requests: the only user of libcurl. */
#include "httpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "err.h"

#ifndef HF_VERSION
#define HF_VERSION "0.1.0"
#endif

/* The response body as it arrives, refused past max. */
struct sink {
    char *data;
    size_t len, cap, max;
    int too_big;
};

static size_t take(char *chunk, size_t size, size_t n, void *userdata)
{
    struct sink *s = userdata;
    size_t add = size * n;

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

int httpc_send(const struct httpc_request *req, struct httpc_response *out, char *err,
               size_t errlen)
{
    char curl_err[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    struct sink sink = {NULL, 0, 0, req->max_body, 0};
    long status = 0;
    CURLcode c;
    CURL *h;
    int rc = 0;

    h = curl_easy_init();
    if (!h) {
        snprintf(err, errlen, "cannot set up an HTTP request (out of memory?)");
        return HF_EUPSTREAM;
    }
    for (const char *const *line = req->headers; line && *line; line++) {
        struct curl_slist *more = curl_slist_append(headers, *line);

        if (!more) {
            snprintf(err, errlen, "out of memory");
            rc = HF_EUPSTREAM;
            goto out;
        }
        headers = more;
    }
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    /* signals cannot time name lookups out in a threaded server */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "hostflow/" HF_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, take);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    if (req->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    if (strcmp(req->method, req->body ? "POST" : "GET") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);

    c = curl_easy_perform(h);
    if (c != CURLE_OK) {
        if (sink.too_big || c == CURLE_FILESIZE_EXCEEDED)
            snprintf(err, errlen, "the response body is over %zu bytes", req->max_body);
        else if (c == CURLE_OPERATION_TIMEDOUT)
            snprintf(err, errlen, "no answer within %ld ms (%s)", req->timeout_ms,
                     curl_err[0] ? curl_err : curl_easy_strerror(c));
        else
            snprintf(err, errlen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(c));
        rc = unreachable(c) && !sink.too_big ? HF_EUNAVAILABLE : HF_EUPSTREAM;
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (!sink.data && !(sink.data = calloc(1, 1))) {
        snprintf(err, errlen, "out of memory");
        rc = HF_EUPSTREAM;
        goto out;
    }
    out->status = status;
    out->body = sink.data;
    out->body_len = sink.len;
    sink.data = NULL;
out:
    free(sink.data);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
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
