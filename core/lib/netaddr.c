/* netaddr.c - address classes for the webhook SSRF guard. */
#define _POSIX_C_SOURCE 200809L
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static int v4_internal(uint32_t a)
{
    static const struct { uint32_t net; int bits; } ranges[] = {
        {0x00000000, 8},  /* "this network" */
        {0x0a000000, 8},  /* private */
        {0x64400000, 10}, /* shared address space (CGNAT) */
        {0x7f000000, 8},  /* loopback */
        {0xa9fe0000, 16}, /* link-local, cloud metadata services */
        {0xac100000, 12}, /* private */
        {0xc0000000, 24}, /* IETF protocol assignments */
        {0xc0000200, 24}, /* documentation */
        {0xc0a80000, 16}, /* private */
        {0xc6120000, 15}, /* benchmarking */
        {0xc6336400, 24}, /* documentation */
        {0xcb007100, 24}, /* documentation */
        {0xe0000000, 4},  /* multicast */
        {0xf0000000, 4},  /* reserved and broadcast */
    };

    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if ((a >> (32 - ranges[i].bits)) == (ranges[i].net >> (32 - ranges[i].bits)))
            return 1;
    return 0;
}

static uint32_t v4_at(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int v6_internal(const unsigned char *b)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    static const unsigned char zero[12] = {0};

    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
        return v4_internal(v4_at(b + 12));
    if (memcmp(b, zero, 12) == 0)
        return 1;                                   /* ::, ::1, IPv4-compatible */
    if (memcmp(b, nat64, 4) == 0 && b[4] == 0 && b[5] == 1)
        return 1;                                   /* local-use NAT64 64:ff9b:1::/48 */
    if (b[0] == 0x20 && b[1] == 0x02)               /* 6to4 2002::/16: its IPv4 decides */
        return v4_internal(v4_at(b + 2));
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0)
        return 1;                                   /* Teredo 2001::/32, tunnelled anywhere */
    if (b[0] == 0x01 && memcmp(b + 1, zero, 7) == 0)
        return 1;                                   /* discard-only 100::/64 */
    if ((b[0] & 0xfe) == 0xfc)                      /* unique local fc00::/7 */
        return 1;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)      /* link-local fe80::/10 */
        return 1;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)      /* site-local fec0::/10 */
        return 1;
    if (b[0] == 0xff)                               /* multicast */
        return 1;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return 1;                                   /* documentation */
    return 0;
}

int netaddr_is_internal(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return v4_internal(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return v6_internal(in6->sin6_addr.s6_addr);
    }
    return 1; /* anything else is not an internet address */
}

/* Parse host as a literal: 4 or 6 with the bytes in out, else 0. */
static int literal(const char *host, unsigned char out[16])
{
    char inner[64];
    size_t n = strlen(host);

    if (inet_pton(AF_INET, host, out) == 1)
        return 4;
    if (n > 2 && n - 2 < sizeof inner && host[0] == '[' && host[n - 1] == ']') {
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        if (inet_pton(AF_INET6, inner, out) == 1)
            return 6;
    }
    return 0;
}

int netaddr_host_is_literal(const char *host)
{
    unsigned char b[16];

    return literal(host, b) != 0;
}

int netaddr_host_is_internal(const char *host)
{
    static const char suffix[] = ".localhost";
    size_t n = strlen(host), s = sizeof suffix - 1;
    unsigned char b[16];

    switch (literal(host, b)) {
    case 4:
        return v4_internal(v4_at(b));
    case 6:
        return v6_internal(b);
    default:
        return strcmp(host, "localhost") == 0 ||
               (n > s && strcmp(host + n - s, suffix) == 0);
    }
}
