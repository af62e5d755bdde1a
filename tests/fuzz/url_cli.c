/* url_cli.c - url_parse as a line filter, for url_differential.mjs.
 *
 * Reads one URL per line on stdin (a trailing '\n' is not part of it; a
 * '\r' is) and prints, per line, "OK scheme host port" with the effective
 * port (explicit, else 443/80 for https/http, else -1) or "ERR code". */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "url.h"

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    struct url *u = malloc(sizeof *u);

    if (!u)
        return 1;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        int rc;

        if (n > 0 && line[n - 1] == '\n')
            n--;
        rc = url_parse(line, (size_t)n, u);
        if (rc == URL_OK)
            printf("OK %s %s %d\n", u->scheme, u->host, u->port);
        else
            printf("ERR %d\n", rc);
    }
    free(line);
    free(u);
    return ferror(stdout) ? 1 : 0;
}
