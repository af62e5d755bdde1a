/* admin_client.c - one request to the admin listener, through httpc. */
#define _GNU_SOURCE /* asprintf, explicit_bzero */
#include "admin_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "httpc.h"

#define RESPONSE_MAX (256 * 1024)

int admin_client_request(const char *listen, const char *method, const char *path,
                         const char *token, int timeout_ms, int *status,
                         char **body, char *err, size_t errlen)
{
    const char *colon = strrchr(listen, ':');
    char *url = NULL, *auth = NULL, why[256];
    const char *headers[2] = {NULL, NULL};
    struct httpc_response out = {0};
    int rc, auth_len = 0;

    if (!colon || colon == listen || !colon[1]) {
        snprintf(err, errlen, "admin address must be ADDR:PORT, got \"%s\"", listen);
        return -1;
    }
    /* the token's length is the operator's choice: no fixed buffer */
    if (asprintf(&url, "http://%s%s", listen, path) < 0 ||
        (token && (auth_len = asprintf(&auth, "Authorization: Bearer %s", token)) < 0)) {
        free(url);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    headers[0] = auth;
    if (httpc_global_init() != 0) {
        snprintf(why, sizeof why, "cannot initialise libcurl");
        rc = HF_EUPSTREAM;
    } else {
        /* the admin listener is plain HTTP on a loopback or private address:
         * no internal-address rule, and never a proxy, which would see the token */
        struct httpc_request req = {
            .method = method,
            .url = url,
            .headers = headers,
            .connect_timeout_ms = timeout_ms,
            .timeout_ms = timeout_ms,
            .max_body = RESPONSE_MAX,
            .no_proxy = 1,
        };

        rc = httpc_send(&req, &out, why, sizeof why);
        httpc_global_cleanup();
    }
    if (auth) {
        explicit_bzero(auth, (size_t)auth_len);
        free(auth);
    }
    free(url);
    if (rc == HF_EUNAVAILABLE) {
        snprintf(err, errlen, "cannot reach the admin listener at %s: %s "
                 "(is hostflow serve running? set --admin-listen)", listen, why);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "no usable HTTP answer from %s: %s", listen, why);
        return -1;
    }
    *status = (int)out.status;
    *body = out.body;
    return 0;
}
