/* fuzz_url.c - url_parse on raw bytes.
 *
 * Any input may be refused; what matters is what an accepted URL looks
 * like. On success every invariant url.h promises is checked and a
 * violation aborts (libFuzzer reports it as a crash):
 *   - the input is 1..HF_URL_MAX bytes of 0x21..0x7e without '\\' or '#';
 *   - scheme is lower-case [a-z][a-z0-9+.-]* and the input starts with it
 *     followed by "://";
 *   - the authority (between "://" and the first '/' or '?') holds no '@';
 *   - host is non-empty and either only [a-z0-9.-] (no empty label, no
 *     label starting or ending with '-') or "[v6]" that inet_pton reads;
 *   - port is 1..65535 when spelled, else 443/80 for https/http, else -1;
 *   - scheme "://" host [":" port] path ["?" query] rebuilds the input
 *     (scheme and host compared case-insensitively), and parsing it again
 *     gives the same struct. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                      \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "fuzz_url: invariant failed: %s (line %d)\n",  \
                    #cond, __LINE__);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

static int lc_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int host_is_name(const char *h)
{
    size_t n = strlen(h), label = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            if (i == label || h[label] == '-' || h[i - 1] == '-' || i - label > 63)
                return 0;
            label = i + 1;
        } else if (!lc_alnum(h[i]) && h[i] != '-') {
            return 0;
        }
    }
    return 1;
}

static int host_is_ipv6(const char *h)
{
    size_t n = strlen(h);
    char text[64];
    unsigned char addr[16];

    if (n < 3 || h[0] != '[' || h[n - 1] != ']' || n - 2 >= sizeof text)
        return 0;
    for (size_t i = 1; i + 1 < n; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f') ||
              h[i] == ':' || h[i] == '.'))
            return 0;
    memcpy(text, h + 1, n - 2);
    text[n - 2] = '\0';
    return inet_pton(AF_INET6, text, addr) == 1;
}

static int ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

static void check_accepted(const char *raw, size_t len, const struct url *u)
{
    static char rebuilt[HF_URL_MAX * 2 + 64];
    static struct url again;
    size_t sl, hl, auth, end, n;
    const char *at;

    REQUIRE(len >= 1 && len <= HF_URL_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        REQUIRE(c >= 0x21 && c <= 0x7e && c != '\\' && c != '#');
    }

    /* scheme */
    sl = strnlen(u->scheme, sizeof u->scheme);
    REQUIRE(sl >= 1 && sl < sizeof u->scheme);
    REQUIRE(u->scheme[0] >= 'a' && u->scheme[0] <= 'z');
    for (size_t i = 1; i < sl; i++)
        REQUIRE(lc_alnum(u->scheme[i]) || u->scheme[i] == '+' ||
                u->scheme[i] == '-' || u->scheme[i] == '.');
    REQUIRE(len > sl + 3 && ieq(raw, u->scheme, sl) &&
            memcmp(raw + sl, "://", 3) == 0);

    /* authority */
    auth = sl + 3;
    for (end = auth; end < len && raw[end] != '/' && raw[end] != '?'; end++)
        ;
    at = memchr(raw + auth, '@', end - auth);
    REQUIRE(at == NULL);

    /* host */
    hl = strnlen(u->host, sizeof u->host);
    REQUIRE(hl >= 1 && hl < sizeof u->host);
    REQUIRE(host_is_name(u->host) || host_is_ipv6(u->host));
    if (u->host[0] != '[')
        REQUIRE(hl <= HF_URL_HOST_MAX);

    /* port */
    if (u->port_explicit) {
        REQUIRE(u->port >= 1 && u->port <= 65535);
    } else if (strcmp(u->scheme, "https") == 0) {
        REQUIRE(u->port == 443);
    } else if (strcmp(u->scheme, "http") == 0) {
        REQUIRE(u->port == 80);
    } else {
        REQUIRE(u->port == -1);
    }

    /* path and query */
    REQUIRE(strnlen(u->path, sizeof u->path) < sizeof u->path);
    REQUIRE(strnlen(u->query, sizeof u->query) < sizeof u->query);
    REQUIRE(u->path[0] == '\0' || u->path[0] == '/');
    REQUIRE(strchr(u->path, '?') == NULL);
    REQUIRE(u->has_query || u->query[0] == '\0');
    REQUIRE(u->has_query == (memchr(raw, '?', len) != NULL));

    /* rebuild and compare */
    n = (size_t)snprintf(rebuilt, sizeof rebuilt, "%s://%s", u->scheme, u->host);
    if (u->port_explicit)
        n += (size_t)snprintf(rebuilt + n, sizeof rebuilt - n, ":%d", u->port);
    n += (size_t)snprintf(rebuilt + n, sizeof rebuilt - n, "%s%s%s", u->path,
                          u->has_query ? "?" : "", u->query);
    REQUIRE(n == len);
    REQUIRE(ieq(rebuilt, raw, end));                    /* scheme://authority */
    REQUIRE(memcmp(rebuilt + end, raw + end, len - end) == 0); /* path?query exactly */

    /* idempotent */
    REQUIRE(url_parse(rebuilt, n, &again) == URL_OK);
    REQUIRE(strcmp(again.scheme, u->scheme) == 0 && strcmp(again.host, u->host) == 0 &&
            again.port == u->port && again.port_explicit == u->port_explicit &&
            strcmp(again.path, u->path) == 0 && strcmp(again.query, u->query) == 0 &&
            again.has_query == u->has_query);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct url u;
    char *raw;
    int rc;

    /* An exact-size heap copy, so ASan sees any read past len. */
    raw = malloc(size ? size : 1);
    if (!raw)
        return 0;
    if (size)
        memcpy(raw, data, size);
    rc = url_parse(raw, size, &u);
    REQUIRE(rc <= 0 && rc >= URL_EPATH);
    REQUIRE(url_strerror(rc) != NULL);
    if (rc == URL_OK)
        check_accepted(raw, size, &u);
    free(raw);
    return 0;
}
