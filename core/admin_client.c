/* admin_client.c - one HTTP request to the admin listener over a socket. */
#define _POSIX_C_SOURCE 200809L
#include "admin_client.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define RESPONSE_MAX (256 * 1024)

static int connect_to(const char *listen, int timeout_ms, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints = {0}, *res = NULL;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = -1, rc;

    if (!colon || (size_t)(colon - listen) >= sizeof host) {
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
    fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
            snprintf(err, errlen, "cannot reach the admin listener at %s: %s "
                     "(is hostflow serve running? set --admin-listen)", listen,
                     strerror(errno));
            close(fd);
            fd = -1;
        }
    } else {
        snprintf(err, errlen, "socket: %s", strerror(errno));
    }
    freeaddrinfo(res);
    return fd;
}

int admin_client_request(const char *listen, const char *method, const char *path,
                         const char *token, int timeout_ms, int *status,
                         char **body, char *err, size_t errlen)
{
    char req[1024], *buf, *start;
    size_t n = 0;
    ssize_t r;
    int fd = connect_to(listen, timeout_ms, err, errlen), len;

    if (fd < 0)
        return -1;
    len = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                   "Content-Length: 0\r\n%s%s%s\r\n",
                   method, path, listen, token ? "Authorization: Bearer " : "",
                   token ? token : "", token ? "\r\n" : "");
    if (len < 0 || (size_t)len >= sizeof req || write(fd, req, (size_t)len) != len) {
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
