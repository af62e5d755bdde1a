/* test_framing.c - unit tests for core/http/framing.c on request heads laid out
 * as civetweb 1.15 leaves them in its buffer (every ':', CR and LF it
 * parsed, and spaces before a ':', overwritten with NUL). The integration
 * spec request_framing_spec.lua sends the same cases through civetweb. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "framing.h"

#define BUF_SIZE 16384

struct head {
    char buf[BUF_SIZE];
    const char *names[FRAMING_HEADERS_MAX + 1], *values[FRAMING_HEADERS_MAX + 1];
    struct framing_head h;
};

/* Lay out "GET / HTTP/version" and n "name: value" lines as civetweb
 * does; a name may carry its own gap, such as "\0" for a space before the
 * colon (civetweb writes a NUL over it), and a value its leading blanks. */
static struct head *build(const char *version, int n, const char *const *lines)
{
    struct head *t = calloc(1, sizeof *t);
    size_t at = 0;

#define PUT(s, len) (memcpy(t->buf + at, (s), (len)), at += (len))
    PUT("GET\0/\0HTTP/", 11);
    t->h.version = t->buf + at;
    PUT(version, strlen(version));
    PUT("\0\0", 2);
    for (int i = 0; i < n; i++) {
        const char *name = lines[2 * i], *gap = strchr(name, '|');
        const char *value = lines[2 * i + 1];
        size_t blanks = strspn(value, " ");

        t->names[i] = t->buf + at;
        PUT(name, gap ? (size_t)(gap - name) : strlen(name));
        for (; gap && *gap == '|'; gap++) /* a NUL over each space before the colon */
            PUT("\0", 1);
        PUT("\0", 1); /* over the colon */
        PUT(value, blanks);
        t->values[i] = t->buf + at;
        PUT(value + blanks, strlen(value + blanks));
        PUT("\0\0", 2);
    }
    PUT("\r\0", 2);
#undef PUT
    t->h.method = t->buf;
    t->h.n = n;
    t->h.names = t->names;
    t->h.values = t->values;
    t->h.buffer_size = BUF_SIZE;
    return t;
}

/* framing_check of t; frees it. */
static int verdict(struct head *t)
{
    const char *why = "unset";
    int rc = framing_check(&t->h, &why);

    if ((rc == 0) != (why == NULL))
        rc = 99; /* a refusal must say why, an acceptance must not */
    free(t);
    return rc;
}

static int one(const char *name, const char *value)
{
    const char *lines[] = {"Host", " h", name, value};

    return verdict(build("1.1", 2, lines));
}

static int two(const char *n1, const char *v1, const char *n2, const char *v2)
{
    const char *lines[] = {"Host", " h", n1, v1, n2, v2};

    return verdict(build("1.1", 3, lines));
}

/* A head whose bytes after the request line are tail (len bytes) instead
 * of civetweb's layout of lines; names and values are found in it in
 * order. */
static int raw(const char *tail, size_t len, int n, const char *const *strings)
{
    struct head *t = calloc(1, sizeof *t);
    size_t at;
    const char *from;

    memcpy(t->buf, "GET\0/\0HTTP/1.1", 14);
    t->h.version = t->buf + 11;
    at = 14;
    memcpy(t->buf + at, tail, len);
    from = t->buf + at;
    for (int i = 0; i < 2 * n; i++) {
        const char *s = strings[i];
        const char *p = from;

        while (p < t->buf + at + len && memcmp(p, s, strlen(s)) != 0)
            p++;
        (i % 2 ? t->values : t->names)[i / 2] = p;
        from = p + strlen(s);
    }
    t->h.method = t->buf;
    t->h.n = n;
    t->h.names = t->names;
    t->h.values = t->values;
    t->h.buffer_size = BUF_SIZE;
    return verdict(t);
}

#define RAW(tail, n, ...) raw((tail), sizeof(tail) - 1, (n), (const char *const[]){__VA_ARGS__})

int main(void)
{
    CHECK("a plain head passes", one("Content-Type", " application/json") == 0);
    CHECK("a value right after the colon passes", one("X-A", "v") == 0);
    CHECK("several blanks after the colon pass", one("X-A", "    v") == 0);
    CHECK("an empty value passes", one("X-A", "") == 0);

    /* civetweb's layout, and each way of leaving it */
    CHECK("Host and Content-Length in civetweb's layout pass",
          RAW("\0\0Host\0 h\0\0Content-Length\0 5\0\0\r\0", 2,
              "Host", "h", "Content-Length", "5") == 0);
    CHECK("a space before a colon (a NUL civetweb wrote over it) is refused",
          one("Content-Length|", " 5") == HF_EINVAL);
    CHECK("two spaces before a colon are refused", one("Transfer-Encoding||", " chunked") == HF_EINVAL);
    CHECK("a space before the colon of any header is refused", one("X-A|", " v") == HF_EINVAL);
    CHECK("a bare LF after a header line is refused",
          RAW("\0\0Host\0 h\0Content-Length\0 5\0\0\r\0", 2,
              "Host", "h", "Content-Length", "5") == HF_EINVAL);
    CHECK("a bare LF after the request line is refused",
          RAW("\0Host\0 h\0\0\r\0", 1, "Host", "h") == HF_EINVAL);
    CHECK("whitespace before the first header line is refused",
          RAW("\0\0\0\0Host\0 h\0\0\r\0", 1, "Host", "h") == HF_EINVAL);
    CHECK("an obs-fold after the last header civetweb kept is refused",
          RAW("\0\0Host\0 h\0\0X-A\0 a\0\0  b\r\nContent-Length: 5\r\n\r\0", 2,
              "Host", "h", "X-A", "a") == HF_EINVAL);
    CHECK("a line starting with ':' after it is refused",
          RAW("\0\0Host\0 h\0\0:b\r\nContent-Length: 5\r\n\r\0", 1, "Host", "h") == HF_EINVAL);
    CHECK("a line starting with a byte over 126 is refused",
          RAW("\0\0Host\0 h\0\0\xc3\xa9: b\r\n\r\0", 1, "Host", "h") == HF_EINVAL);
    CHECK("a lone CR line is refused",
          RAW("\0\0Host\0 h\0\0\rX: b\r\n\r\0", 1, "Host", "h") == HF_EINVAL);
    CHECK("a header block ending in CRLF LF is refused",
          RAW("\0\0Host\0 h\0\0\0", 1, "Host", "h") == HF_EINVAL);
    CHECK("a value away from its name (not civetweb's layout) is refused",
          RAW("\0\0Host\0 x h\0\0\r\0", 1, "Host", "h") == HF_EINVAL);
    {
        /* civetweb copying strings elsewhere would break the chain */
        const char *lines[] = {"Host", " h"};
        struct head *t = build("1.1", 1, lines);

        t->names[0] = "Host";
        CHECK("a name outside the buffer is refused", verdict(t) == HF_EINVAL);
    }
    {
        /* a head ending in LF LF that fills civetweb's buffer to its last
         * byte: refused without reading past it (ASan would see it) */
        static const char head[] = "GET\0/\0HTTP/1.1\0\0Host\0 h\0";
        struct framing_head h = {0};
        const char *names[1], *values[1], *why;
        char *buf = malloc(sizeof head);

        memcpy(buf, head, sizeof head);
        names[0] = buf + 16;
        values[0] = buf + 22;
        h = (struct framing_head){buf, buf + 11, 1, names, values, sizeof head};
        CHECK("a head ending at the buffer's end is refused unread past it",
              framing_check(&h, &why) == HF_EINVAL && why != NULL);
        free(buf);
    }
    {
        const char *lines[] = {"Host", " h"};
        struct head *t = build("1.1", 1, lines);

        t->h.buffer_size = (size_t)(t->values[0] + 5 - t->buf); /* "h\0\0\r\0" ends it */
        CHECK("a CRLF-ended head filling the buffer exactly passes", verdict(t) == 0);
    }

    /* header count */
    {
        static const char *lines[2 * (FRAMING_HEADERS_MAX + 1)];
        char names[FRAMING_HEADERS_MAX + 1][8];

        for (int i = 0; i <= FRAMING_HEADERS_MAX; i++) {
            snprintf(names[i], sizeof names[i], "X-%d", i);
            lines[2 * i] = names[i];
            lines[2 * i + 1] = " v";
        }
        CHECK("63 headers pass", verdict(build("1.1", 63, lines)) == 0);
        CHECK("64 headers (civetweb's limit: there may be more) are refused",
              verdict(build("1.1", 64, lines)) == HF_EINVAL);
    }
    CHECK("an HTTP/1.1 request without a header is refused", verdict(build("1.1", 0, NULL)) == HF_EINVAL);
    CHECK("an HTTP/1.0 request without a header passes", verdict(build("1.0", 0, NULL)) == 0);

    /* Content-Length */
    CHECK("Content-Length 0 passes", one("Content-Length", " 0") == 0);
    CHECK("Content-Length 84 passes", one("Content-Length", " 84") == 0);
    CHECK("Content-Length of 18 digits passes", one("Content-Length", " 999999999999999999") == 0);
    CHECK("a lower-case name is the same header", one("content-length", " 84abc") == HF_EINVAL);
    static const char *const bad_lengths[] = {
        "84abc", "84 abc", "+84", "-1", "0084", "00", "84, 84", "", "84 ", "0x54", "1e3",
        "1234567890123456789", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_lengths / sizeof bad_lengths[0]; i++) {
        char label[80];

        snprintf(label, sizeof label, "Content-Length \"%s\" is refused", bad_lengths[i]);
        CHECK(label, one("Content-Length", bad_lengths[i]) == HF_EINVAL);
    }
    CHECK("two Content-Length headers differing are refused",
          two("Content-Length", " 0", "Content-Length", " 84") == HF_EINVAL);
    CHECK("two Content-Length headers alike are refused",
          two("Content-Length", " 84", "content-length", " 84") == HF_EINVAL);

    /* Transfer-Encoding */
    CHECK("Transfer-Encoding chunked passes", one("Transfer-Encoding", " chunked") == 0);
    CHECK("its value is case-insensitive", one("transfer-encoding", " Chunked") == 0);
    static const char *const bad_codings[] = {
        "gzip, chunked", "chunked, chunked", "identity", "gzip", "chunked ", "", "chunked;q=1"};
    for (size_t i = 0; i < sizeof bad_codings / sizeof bad_codings[0]; i++) {
        char label[80];

        snprintf(label, sizeof label, "Transfer-Encoding \"%s\" is refused", bad_codings[i]);
        CHECK(label, one("Transfer-Encoding", bad_codings[i]) == HF_EINVAL);
    }
    CHECK("two Transfer-Encoding headers are refused",
          two("Transfer-Encoding", " chunked", "Transfer-Encoding", " chunked") == HF_EINVAL);
    CHECK("Content-Length with Transfer-Encoding is refused",
          two("Content-Length", " 5", "Transfer-Encoding", " chunked") == HF_EINVAL);
    CHECK("Transfer-Encoding with Content-Length is refused",
          two("Transfer-Encoding", " chunked", "Content-Length", " 5") == HF_EINVAL);
    {
        const char *lines[] = {"Host", " h", "Transfer-Encoding", " chunked"};
        const char *length[] = {"Host", " h", "Content-Length", " 5"};

        CHECK("Transfer-Encoding in HTTP/1.0 is refused", verdict(build("1.0", 2, lines)) == HF_EINVAL);
        CHECK("Content-Length in HTTP/1.0 passes", verdict(build("1.0", 2, length)) == 0);
    }
    return CHECK_DONE();
}
