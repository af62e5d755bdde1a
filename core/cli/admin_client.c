/* admin_client.c - one HTTP request to the admin listener over a socket. */
#define _GNU_SOURCE /* asprintf, explicit_bzero */
#include "admin_client.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fdio.h"

#define RESPONSE_MAX (256 * 1024)

/* A connected socket to the first of the address's answers that accepts
 * (a name such as localhost may resolve to ::1 before 127.0.0.1), or -1. */
static int connect_to(const char *listen, int timeout_ms, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints = {0}, *res = NULL;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = -1, rc, why = 0;

    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "admin address must be ADDR:PORT, got \"%s\"", listen);
        return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", listen, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            why = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            why = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot reach the admin listener at %s: %s "
                 "(is hostflow serve running? set --admin-listen)", listen, strerror(why));
    return fd;
}

int admin_client_request(const char *listen, const char *method, const char *path,
                         const char *token, int timeout_ms, int *status,
                         char **body, char *err, size_t errlen)
{
    char *req = NULL, *buf, *start;
    size_t n = 0;
    ssize_t r;
    int fd = connect_to(listen, timeout_ms, err, errlen), len, sent;

    if (fd < 0)
        return -1;
    /* the token's length is the operator's choice: no fixed buffer */
    len = asprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                   "Content-Length: 0\r\n%s%s%s\r\n",
                   method, path, listen, token ? "Authorization: Bearer " : "",
                   token ? token : "", token ? "\r\n" : "");
    sent = len >= 0 && fd_write_all(fd, req, (size_t)len) == 0;
    if (len >= 0) {
        explicit_bzero(req, (size_t)len); /* it holds the token */
        free(req);
    }
    if (!sent) {
        snprintf(err, errlen, "cannot send the request to %s", listen);
        close(fd);
        return -1;
    }
    buf = malloc(RESPONSE_MAX + 1);
    if (!buf) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while (n < RESPONSE_MAX && (r = read(fd, buf + n, RESPONSE_MAX - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1 || !(start = strstr(buf, "\r\n\r\n"))) {
        snprintf(err, errlen, "no HTTP answer from %s", listen);
        free(buf);
        return -1;
    }
    memmove(buf, start + 4, strlen(start + 4) + 1);
    *body = buf;
    return 0;
}
