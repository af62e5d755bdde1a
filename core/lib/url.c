/* url.c - strict parser for absolute http(s)-style URLs (see url.h).
 *
 * The parsed host decides where a browser is sent, so every rule here is
 * about refusing strings that a WHATWG URL parser could read as another
 * host: anything unusual is rejected rather than repaired. Bounds come from
 * len only; raw is never assumed to be NUL-terminated. */
#include "url.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* Longest IPv6 literal text inet_pton can take, without the NUL. */
#define V6_TEXT_MAX (INET6_ADDRSTRLEN - 1)
#define LABEL_MAX 63

/* Locale-independent classes: isalpha() and friends depend on LC_CTYPE. */
static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Copy n bytes lower-cased and NUL-terminate; callers size dst. */
static void copy_lower(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = lower(src[i]);
    dst[n] = '\0';
}

/* RFC 3986 pchar (without the pct-encoded form) plus '/'. */
static int is_pchar(unsigned char c)
{
    if (is_alpha(c) || is_digit(c))
        return 1;
    /* strchr would match the terminator for c == 0. */
    return c != '\0' && strchr("-._~!$&'()*+,;=:@/", c) != NULL;
}

/* Path or query: pchar, '/', '?' when allow_qmark, and %HH escapes. */
static int check_part(const char *s, size_t n, int allow_qmark)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3 || !is_hex((unsigned char)s[i + 1]) ||
                !is_hex((unsigned char)s[i + 2]))
                return 0;
            i += 2;
        } else if (!(is_pchar(c) || (allow_qmark && c == '?'))) {
            return 0;
        }
    }
    return 1;
}

/* 1-5 digits, no leading zero, 1..65535. The length cap comes before any
 * arithmetic, so the value can never exceed 99999 and cannot overflow. */
static int parse_port(const char *s, size_t n, int *port)
{
    int v = 0;

    if (n == 0 || n > 5 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return 0;
    *port = v;
    return 1;
}

/* Exactly a.b.c.d, each 0..255 without leading zeros: the only numeric
 * spelling that WHATWG's IPv4 parser reads back as itself. */
static int is_canonical_ipv4(const char *s, size_t n)
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        size_t start = i;
        int v = 0;

        if (part > 0) {
            if (i >= n || s[i] != '.')
                return 0;
            start = ++i;
        }
        while (i < n && is_digit((unsigned char)s[i]) && i - start < 3)
            v = v * 10 + (s[i++] - '0');
        if (i == start || v > 255)
            return 0;
        if (s[start] == '0' && i - start > 1)
            return 0;
    }
    return i == n;
}

/* WHATWG "ends in a number": a last label of digits or 0x-prefixed makes
 * the whole host an IPv4 candidate (e.g. "0x7f.1", "127.1", "2130706433"). */
static int looks_numeric(const char *label, size_t n)
{
    if (n >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X'))
        return 1;
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)label[i]))
            return 0;
    return 1;
}

/* A registered name (LDH labels) or canonical dotted-decimal IPv4. */
static int parse_name(const char *s, size_t n, char *host)
{
    size_t label = 0; /* start of the current label */

    if (n == 0 || n > HF_URL_HOST_MAX)
        return URL_EHOST;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t ll = i - label;
            if (ll == 0 || ll > LABEL_MAX || s[label] == '-' ||
                s[i - 1] == '-')
                return URL_EHOST;
            if (i == n && looks_numeric(s + label, ll) &&
                !is_canonical_ipv4(s, n))
                return URL_EHOST;
            label = i + 1;
        } else if (!is_alpha((unsigned char)s[i]) &&
                   !is_digit((unsigned char)s[i]) && s[i] != '-') {
            /* Covers '%': no percent-decoding into the host. */
            return URL_EHOST;
        }
    }
    copy_lower(host, s, n);
    return URL_OK;
}

/* "[...]" holding an IPv6 address in its one canonical spelling (RFC 5952,
 * lower case, no embedded IPv4): browsers rewrite any other spelling, so
 * "[0::1]" would reach "[::1]" past a policy that compared strings. Zone
 * ids ("%25eth0") and anything else fail the character check. */
static int parse_ipv6(const char *s, size_t n, char *host)
{
    char text[V6_TEXT_MAX + 1];
    unsigned char addr[16];
    size_t tn;

    if (n < 3 || s[0] != '[' || s[n - 1] != ']')
        return URL_EHOST;
    tn = n - 2;
    if (tn > V6_TEXT_MAX)
        return URL_EHOST;
    for (size_t i = 0; i < tn; i++) {
        unsigned char c = (unsigned char)s[1 + i];
        if (!is_hex(c) && c != ':' && c != '.')
            return URL_EHOST;
        text[i] = (char)c;
    }
    text[tn] = '\0';
    if (inet_pton(AF_INET6, text, addr) != 1)
        return URL_EHOST;
    copy_lower(host, s, n);
    {
        char canonical[INET6_ADDRSTRLEN];

        if (memchr(text, '.', tn) || !inet_ntop(AF_INET6, addr, canonical, sizeof canonical) ||
            strlen(canonical) != tn || memcmp(canonical, host + 1, tn) != 0)
            return URL_EHOST;
    }
    return URL_OK;
}

/* host [":" port] from the n bytes at a; n may be 0 (an empty host). */
static int parse_authority(const char *a, size_t n, struct url *out)
{
    size_t hn; /* host length */
    int rc;

    if (memchr(a, '@', n))
        return URL_EUSERINFO;
    if (n > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close)
            return URL_EHOST;
        hn = (size_t)(close - a) + 1;
        /* After "]" only a port may follow. */
        if (hn < n && a[hn] != ':')
            return URL_EHOST;
        rc = parse_ipv6(a, hn, out->host);
    } else {
        const char *colon = memchr(a, ':', n);
        hn = colon ? (size_t)(colon - a) : n;
        rc = parse_name(a, hn, out->host);
    }
    if (rc != URL_OK)
        return rc;
    if (hn < n) {
        if (!parse_port(a + hn + 1, n - hn - 1, &out->port))
            return URL_EPORT;
        out->port_explicit = 1;
    }
    return URL_OK;
}

int url_parse(const char *raw, size_t len, struct url *out)
{
    size_t i, auth, end, qm;
    int rc, default_port;

    if (raw == NULL || len == 0 || len > HF_URL_MAX)
        return URL_ETOOLONG;
    /* Bytes first: browsers strip or rewrite these before parsing. */
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c < 0x21 || c >= 0x7f || c == '\\')
            return URL_ECHAR;
    }
    if (memchr(raw, '#', len))
        return URL_EFRAGMENT;

    memset(out, 0, sizeof *out);
    out->port = -1;

    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    if (!is_alpha((unsigned char)raw[0]))
        return URL_ESCHEME;
    for (i = 1; i < len && raw[i] != ':'; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.')
            return URL_ESCHEME;
    }
    if (i == len || i >= sizeof out->scheme)
        return URL_ESCHEME;
    copy_lower(out->scheme, raw, i);
    /* web URLs only: other schemes (file:, ftp:) are parsed differently by
     * browsers, and no return or webhook URL needs them */
    if (strcmp(out->scheme, "http") != 0 && strcmp(out->scheme, "https") != 0)
        return URL_ESCHEME;

    /* Only "scheme://": "https:b.com" and "https:/b.com" mean different
     * things to different parsers. */
    if (len - i < 3 || raw[i + 1] != '/' || raw[i + 2] != '/')
        return URL_ENOAUTHORITY;
    auth = i + 3;
    for (end = auth; end < len && raw[end] != '/' && raw[end] != '?'; end++)
        ;
    rc = parse_authority(raw + auth, end - auth, out);
    if (rc != URL_OK)
        return rc;

    for (qm = end; qm < len && raw[qm] != '?'; qm++)
        ;
    if (!check_part(raw + end, qm - end, 0))
        return URL_EPATH;
    memcpy(out->path, raw + end, qm - end);
    out->path[qm - end] = '\0';
    if (qm < len) {
        if (!check_part(raw + qm + 1, len - qm - 1, 1))
            return URL_EPATH;
        memcpy(out->query, raw + qm + 1, len - qm - 1);
        out->query[len - qm - 1] = '\0';
        out->has_query = 1;
    }

    default_port = strcmp(out->scheme, "https") == 0 ? 443 : 80;
    if (!out->port_explicit)
        out->port = default_port;
    if (out->port == default_port)
        snprintf(out->origin, sizeof out->origin, "%s://%s", out->scheme, out->host);
    else
        snprintf(out->origin, sizeof out->origin, "%s://%s:%d", out->scheme, out->host,
                 out->port);
    return URL_OK;
}

const char *url_strerror(int rc)
{
    switch (rc) {
    case URL_OK:
        return "valid URL";
    case URL_ETOOLONG:
        return "URL is empty or too long";
    case URL_ECHAR:
        return "URL contains a control, space, backslash or non-ASCII byte";
    case URL_ESCHEME:
        return "URL has a missing or malformed scheme";
    case URL_ENOAUTHORITY:
        return "URL is not of the form scheme://host";
    case URL_EUSERINFO:
        return "URL must not contain user:password@";
    case URL_EHOST:
        return "URL host is empty or malformed";
    case URL_EPORT:
        return "URL port is malformed or out of range";
    case URL_EFRAGMENT:
        return "URL must not contain a '#' fragment";
    case URL_EPATH:
        return "URL path or query contains a disallowed character";
    }
    return "unknown URL error";
}
