/* url.h - strict parser for absolute http and https URLs (RFC 3986 subset).
 *
 * Pure: no globals, no allocation; results are copied into the caller's
 * struct. Accepts only scheme "://" host [":" port] path ["?" query] and
 * rejects anything a browser and this parser might read differently:
 * userinfo, fragments (even an empty "#"), control characters, whitespace,
 * backslashes, non-ASCII bytes, percent-encoding in the host, malformed or
 * out-of-range ports, non-canonical numeric hosts, over-long input. */
#ifndef HF_URL_H
#define HF_URL_H

#include <stddef.h>

#define HF_URL_MAX 2048   /* longest URL accepted, in bytes */
#define HF_URL_HOST_MAX 253
/* scheme "://" host ":65535", each at its longest (scheme[], host[] below) */
#define HF_URL_ORIGIN_MAX (31 + 3 + HF_URL_HOST_MAX + 2 + 6)

enum url_err {
    URL_OK = 0,
    URL_ETOOLONG = -1,   /* empty or over HF_URL_MAX bytes */
    URL_ECHAR = -2,      /* control, whitespace, backslash, non-ASCII or NUL byte */
    URL_ESCHEME = -3,    /* missing or malformed scheme, or not http/https */
    URL_ENOAUTHORITY = -4, /* not scheme "://" (relative or opaque URL) */
    URL_EUSERINFO = -5,  /* user:pass@ present */
    URL_EHOST = -6,      /* empty, malformed or percent-encoded host */
    URL_EPORT = -7,      /* empty, non-numeric, zero, leading-zero or > 65535 port */
    URL_EFRAGMENT = -8,  /* '#' anywhere */
    URL_EPATH = -9,      /* character not allowed in path or query, bad %-escape */
};

struct url {
    char scheme[32];                  /* lower-cased, e.g. "https" */
    char host[HF_URL_HOST_MAX + 3];   /* lower-cased; IPv6 keeps its brackets, canonical */
    int port;                         /* explicit port, else scheme default (80/443), else -1 */
    int port_explicit;                /* 1 when the URL spelled a port */
    char path[HF_URL_MAX + 1];        /* as written, "" when absent */
    char query[HF_URL_MAX + 1];       /* after '?', "" when absent */
    int has_query;                    /* 1 when a '?' was present */
    char origin[HF_URL_ORIGIN_MAX + 1]; /* scheme "://" host [":" port], the port only when
                                       * not the scheme's default: as a browser serialises
                                       * it (for CSP sources and origin checks) */
};

/* Parse len bytes of raw into *out. Returns URL_OK or a negative url_err;
 * *out is unspecified on failure. raw need not be NUL-terminated; an
 * embedded NUL is rejected. */
int url_parse(const char *raw, size_t len, struct url *out);

/* A short human sentence for a url_err, for error messages. */
const char *url_strerror(int rc);

#endif
