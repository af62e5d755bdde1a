/* expiry.c - periodic sweep of pending sessions past their expiry. */
#define _POSIX_C_SOURCE 200809L
#include "expiry.h"

#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "periodic.h"
#include "store.h"

struct expiry {
    struct store *store;         /* used by the sweeping thread only */
    struct periodic *thread;
};

/* periodic_fn: batch after batch until none is left, each with its events. */
static int sweep(struct periodic *p, void *arg)
{
    struct expiry *x = arg;
    int n = 0;

    do {
        if (store_sessions_expire(x->store, clock_now_s(), &n) != 0) {
            log_msg(HF_LOG_WARN, "expiry: sweep failed; retrying");
            break;
        }
        if (n > 0) {
            metrics_sessions_expired((unsigned long)n);
            log_msg(HF_LOG_INFO, "expiry: %d session(s) expired", n);
        }
    } while (n == HF_EXPIRE_BATCH && !periodic_stopping(p)); /* a backlog must not hold up a stop */
    return 0;
}

int expiry_start(const char *db_path, struct store_writer *writer, struct expiry **out,
                 char *err, size_t errlen)
{
    struct expiry *x = calloc(1, sizeof *x);

    if (!x) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (store_open(db_path, &x->store, err, errlen) != 0) {
        free(x);
        return -1;
    }
    store_attach_writer(x->store, writer);
    if (!(x->thread = periodic_start("hf-expiry", HF_EXPIRY_INTERVAL_MS, sweep, x))) {
        snprintf(err, errlen, "cannot start the expiry thread");
        store_close(x->store);
        free(x);
        return -1;
    }
    *out = x;
    return 0;
}

void expiry_stop(struct expiry *x)
{
    if (!x)
        return;
    periodic_stop(x->thread);
    store_close(x->store);
    free(x);
}
