/* framing.c - refuse a request head whose end, or whose body's end, a
 * proxy could see elsewhere than civetweb does (RFC 9112 sections 5.1, 5.2
 * and 6.3). Each rule says what civetweb 1.15 would do without it. */
#define _POSIX_C_SOURCE 200809L
#include "framing.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "err.h"

/* A Content-Length civetweb and every proxy read alike: 1 to 18 digits,
 * no sign, no leading zero but in "0". civetweb takes the value with
 * strtoll, so "+84", "84abc", "84, 84" and "0084" would all be 84 to it. */
static int length_ok(const char *v)
{
    size_t digits = strspn(v, "0123456789");

    return digits >= 1 && digits <= 18 && v[digits] == '\0' && (v[0] != '0' || digits == 1);
}

/* What mg_request_info cannot tell, read from civetweb's request buffer.
 * civetweb parses the header lines in order and stops without a word at
 * the first that does not start with a name (an obs-fold's space, a ':',
 * a byte over 126, a lone CR), ignoring it and every line after; it skips
 * whitespace before the first line, drops spaces between a name and its
 * ':', and takes a bare LF for a line end. What it leaves behind, each
 * CR, LF and ':' overwritten with NUL:
 *
 *     1.1\0\0Host\0 x\0\0Content-Length\0 5\0\0\r\0
 *
 * so every line must end in two NULs with the next name right after them,
 * a name must be followed by its colon's NUL and blanks only, and the last
 * line by the empty line's CR and (overwritten) LF. Any other layout is
 * refused, civetweb's own should it change. Every byte read lies in the
 * header block (between pointers known to be in it, or before the NUL
 * civetweb writes over its last byte) but the empty line's two: when the
 * block ends in a bare LF LF after the last header they lie just past it,
 * still in civetweb's buffer unless the block fills it to the last byte.
 * That is refused unread when the block starts at the request line; blank
 * lines before it, which civetweb skips unseen, hide it (README, Security
 * model: a read of up to two bytes past the buffer). */
static const char *layout_fault(const struct framing_head *h)
{
    const char *end = h->version + strlen(h->version); /* the request line's */

    for (int i = 0; i < h->n; i++) {
        const char *q;

        if ((uintptr_t)h->names[i] != (uintptr_t)end + 2 || end[1] != '\0')
            return "A header line does not end in CRLF, or begins with whitespace.";
        for (q = h->names[i] + strlen(h->names[i]) + 1; q != h->values[i]; q++)
            if (*q != ' ' && *q != '\t')
                return *q == '\0' ? "Whitespace between a header name and its colon."
                                  : "The request head is malformed.";
        end = h->values[i] + strlen(h->values[i]);
    }
    if ((uintptr_t)end + 4 - (uintptr_t)h->method > h->buffer_size)
        return "The request head is malformed.";
    if (end[1] != '\0')
        return "A header line does not end in CRLF, or begins with whitespace.";
    if (end[2] != '\r' || end[3] != '\0')
        return "A header line is folded or is not a header field.";
    return NULL;
}

int framing_check(const struct framing_head *h, const char **why)
{
    const char *length = NULL, *coding = NULL;
    int lengths = 0, codings = 0;
    int http10 = strcmp(h->version, "1.0") == 0;

    *why = NULL;
    /* civetweb keeps 64 headers and ignores the rest: 64 may be more */
    if (h->n >= FRAMING_HEADERS_MAX)
        *why = "The request has 64 header lines or more.";
    /* without a header there is no line end to check; HTTP/1.0 closes the
     * connection after the answer, HTTP/1.1 would need Host anyway */
    else if (h->n == 0 && !http10)
        *why = "An HTTP/1.1 request needs a Host header.";
    else if (h->n > 0)
        *why = layout_fault(h);
    if (*why)
        return HF_EINVAL;
    for (int i = 0; i < h->n; i++) {
        if (strcasecmp(h->names[i], "Content-Length") == 0) {
            lengths++;
            length = h->values[i];
        } else if (strcasecmp(h->names[i], "Transfer-Encoding") == 0) {
            codings++;
            coding = h->values[i];
        }
    }
    /* civetweb reads the first of each and ignores the others */
    if (lengths > 1)
        *why = "Content-Length is repeated.";
    else if (length && !length_ok(length))
        *why = "Content-Length is not 1 to 18 digits without sign or leading zero.";
    else if (codings > 1)
        *why = "Transfer-Encoding is repeated.";
    /* civetweb ignores "identity" and refuses other codings; chunked must
     * be the only one */
    else if (coding && strcasecmp(coding, "chunked") != 0)
        *why = "Transfer-Encoding is not chunked alone.";
    /* civetweb prefers one and keeps the connection open */
    else if (coding && length)
        *why = "The request has both Content-Length and Transfer-Encoding.";
    /* an HTTP/1.0 proxy would not decode chunks */
    else if (coding && http10)
        *why = "Transfer-Encoding in an HTTP/1.0 request.";
    return *why ? HF_EINVAL : 0;
}
