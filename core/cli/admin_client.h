/* admin_client.h - the CLI's requests to a running server's admin listener
 * (plain HTTP, loopback or a private address), sent with httpc. */
#ifndef HF_ADMIN_CLIENT_H
#define HF_ADMIN_CLIENT_H

#include <stddef.h>

/* Send method path to "ADDR:PORT" with an optional bearer token; wait at
 * most timeout_ms. 0 with the status and the body (malloc'd, NUL-terminated)
 * or -1 with a sentence in err. */
int admin_client_request(const char *listen, const char *method, const char *path,
                         const char *token, int timeout_ms, int *status,
                         char **body, char *err, size_t errlen);

#endif
