/* periodic.c - the "every N ms, or at once when kicked, until stopped"
 * thread, with the list of running ones that periodic_run_all walks. */
#define _POSIX_C_SOURCE 200809L
#include "periodic.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/prctl.h>

#include "clock.h"

struct periodic {
    char name[16];           /* the thread's name */
    int interval_ms;
    periodic_fn *fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;    /* guards what follows */
    pthread_cond_t wake;     /* on CLOCK_MONOTONIC: a step of the wall clock changes no wait */
    pthread_cond_t ran;      /* a run ended */
    int stopping;
    int kicked;              /* a run was asked for since the last one began */
    unsigned long kicks;     /* kicks so far */
    unsigned long served;    /* kicks before the start of the last run that ended */
    struct periodic *next;   /* in running */
};

static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static struct periodic *running;

static void *run_loop(void *arg)
{
    struct periodic *p = arg;
    int again = 0;

    prctl(PR_SET_NAME, p->name);
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        if (!again && !p->kicked) {
            struct timespec until;

            clock_mono_timespec(clock_mono_us() + p->interval_ms * 1000LL, &until);
            /* a spurious wake-up only runs fn early */
            pthread_cond_timedwait(&p->wake, &p->lock, &until);
            if (p->stopping)
                break;
        }
        unsigned long kicks = p->kicks;

        p->kicked = 0;
        pthread_mutex_unlock(&p->lock);
        again = p->fn(p, p->arg);
        pthread_mutex_lock(&p->lock);
        p->served = kicks;
        pthread_cond_broadcast(&p->ran);
    }
    pthread_cond_broadcast(&p->ran); /* a periodic_run_all waits no more */
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct periodic *periodic_start(const char *name, int interval_ms, periodic_fn *fn, void *arg)
{
    struct periodic *p = calloc(1, sizeof *p);
    pthread_condattr_t monotonic;

    if (!p)
        return NULL;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->interval_ms = interval_ms;
    p->fn = fn;
    p->arg = arg;
    p->kicked = 1; /* the first run is at once */
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &monotonic);
    pthread_condattr_destroy(&monotonic);
    pthread_cond_init(&p->ran, NULL);
    if (pthread_create(&p->thread, NULL, run_loop, p) != 0) {
        pthread_cond_destroy(&p->ran);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    pthread_mutex_lock(&running_lock);
    p->next = running;
    running = p;
    pthread_mutex_unlock(&running_lock);
    return p;
}

/* Ask p for a run; the kick's number. Called with p->lock held. */
static unsigned long kick(struct periodic *p)
{
    p->kicked = 1;
    pthread_cond_signal(&p->wake);
    return ++p->kicks;
}

void periodic_kick(struct periodic *p)
{
    pthread_mutex_lock(&p->lock);
    kick(p);
    pthread_mutex_unlock(&p->lock);
}

void periodic_run_all(void)
{
    /* held throughout: a thread being stopped waits here, not freed under us */
    pthread_mutex_lock(&running_lock);
    for (struct periodic *p = running; p; p = p->next) {
        pthread_mutex_lock(&p->lock);
        kick(p);
        pthread_mutex_unlock(&p->lock);
    }
    for (struct periodic *p = running; p; p = p->next) {
        pthread_mutex_lock(&p->lock);
        while (p->served < p->kicks && !p->stopping)
            pthread_cond_wait(&p->ran, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&running_lock);
}

int periodic_stopping(struct periodic *p)
{
    int stop;

    pthread_mutex_lock(&p->lock);
    stop = p->stopping;
    pthread_mutex_unlock(&p->lock);
    return stop;
}

void periodic_stop(struct periodic *p)
{
    struct periodic **at;

    if (!p)
        return;
    pthread_mutex_lock(&running_lock); /* no kick reaches it once it is freed */
    for (at = &running; *at != p; at = &(*at)->next)
        ;
    *at = p->next;
    pthread_mutex_unlock(&running_lock);
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->ran);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
