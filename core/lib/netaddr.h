/* netaddr.h - which addresses a webhook may reach.
 *
 * Server-side request forgery is the threat: an endpoint URL must not turn
 * hostflow into a client of the operator's own network. "Internal" here is
 * every address that is not a public unicast one: loopback, private,
 * link-local, shared (CGNAT), unspecified, multicast, documentation and
 * reserved ranges, and IPv6 forms that embed such an IPv4 address. */
#ifndef HF_NETADDR_H
#define HF_NETADDR_H

#include <sys/socket.h>

/* 1 when the socket address is internal. */
int netaddr_is_internal(const struct sockaddr *sa);

/* For a host as url.c spells it (IPv6 in brackets): 1 when it is an
 * internal address literal or a localhost name, else 0 (a public literal,
 * or a name whose addresses are only known at connection time). */
int netaddr_host_is_internal(const char *host);

/* 1 when host is an IPv4 or bracketed IPv6 literal. */
int netaddr_host_is_literal(const char *host);

#endif
