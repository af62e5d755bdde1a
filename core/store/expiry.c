/* expiry.c - periodic sweep of pending sessions past their expiry. */
#define _POSIX_C_SOURCE 200809L
#include "expiry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/prctl.h>

#include "log.h"
#include "metrics.h"
#include "store.h"
#include "clock.h"

struct expiry {
    struct store *store;         /* owned by the sweeping thread once started */
    pthread_t thread;
    pthread_mutex_t lock;        /* guards stopping */
    pthread_cond_t wake;
    int stopping;
};

static int stop_asked(struct expiry *x)
{
    int stop;

    pthread_mutex_lock(&x->lock);
    stop = x->stopping;
    pthread_mutex_unlock(&x->lock);
    return stop;
}

static void *sweep_loop(void *arg)
{
    struct expiry *x = arg;

    prctl(PR_SET_NAME, "hf-expiry"); /* its name in top -H, ps -L */
    pthread_mutex_lock(&x->lock);
    while (!x->stopping) {
        struct timespec until;
        int n = 0;

        pthread_mutex_unlock(&x->lock);
        /* batch after batch until none is left, each with its events */
        do {
            if (store_sessions_expire(x->store, clock_now_s(), &n) != 0) {
                log_msg(HF_LOG_WARN, "expiry: sweep failed; retrying");
                break;
            }
            if (n > 0) {
                metrics_sessions_expired((unsigned long)n);
                log_msg(HF_LOG_INFO, "expiry: %d session(s) expired", n);
            }
        } while (n == HF_EXPIRE_BATCH && !stop_asked(x)); /* a backlog must not hold up a stop */
        pthread_mutex_lock(&x->lock);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += HF_EXPIRY_INTERVAL_MS / 1000;
        until.tv_nsec += (HF_EXPIRY_INTERVAL_MS % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (!x->stopping)
            pthread_cond_timedwait(&x->wake, &x->lock, &until);
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
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
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->wake, NULL);
    if (pthread_create(&x->thread, NULL, sweep_loop, x) != 0) {
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
    pthread_mutex_lock(&x->lock);
    x->stopping = 1;
    pthread_cond_signal(&x->wake);
    pthread_mutex_unlock(&x->lock);
    pthread_join(x->thread, NULL);
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->wake);
    store_close(x->store);
    free(x);
}
