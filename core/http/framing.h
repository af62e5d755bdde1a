/* framing.h - one way only to tell where a request ends: the checks of
 * RFC 9112 that civetweb 1.15 leaves out, made on the request head it has
 * parsed, so that a proxy in front of hostflow and hostflow cannot read a
 * request's body differently (request smuggling). Pure: no I/O, no
 * civetweb; http.c hands the head over. */
#ifndef HF_FRAMING_H
#define HF_FRAMING_H

#include <stddef.h>

#define FRAMING_HEADERS_MAX 64   /* civetweb's MG_MAX_HEADERS */

/* A request head as civetweb 1.15 leaves it in its request buffer: the
 * strings point into that buffer, where civetweb has overwritten every
 * ':', CR and LF it parsed (and any space before a ':') with NUL. */
struct framing_head {
    const char *method;          /* where the request line starts */
    const char *version;         /* "1.1": what follows "HTTP/" */
    int n;                       /* headers civetweb kept, at most 64 */
    const char *const *names;    /* n names and n values */
    const char *const *values;
    size_t buffer_size;          /* civetweb's max_request_size */
};

/* 0 when the head frames the request one way only; HF_EINVAL otherwise,
 * with *why a constant sentence (no request data) for the answer and the
 * log. */
int framing_check(const struct framing_head *h, const char **why);

#endif
