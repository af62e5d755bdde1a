/* ratelimit.c - striped-lock token buckets in a fixed table.
 *
 * Keys hash to a set of WAYS slots; a key not present takes the slot
 * updated longest ago, starting with a full bucket. Memory stays fixed
 * however many keys (addresses) arrive; an evicted key only regains its
 * burst, which is the price of the bound. */
#define _POSIX_C_SOURCE 200809L
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "clock.h"

#define SLOTS 16384
#define WAYS 8
#define STRIPES 64

struct slot {
    uint64_t hash;            /* 0 = empty */
    double tokens;
    long long updated_ms;
};

struct ratelimit {
    double per_ms;            /* refill rate */
    double burst;             /* bucket size */
    pthread_mutex_t stripe[STRIPES];
    struct slot slots[SLOTS];
};

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

struct ratelimit *ratelimit_new(double per_second, double burst)
{
    struct ratelimit *rl;

    if (per_second <= 0)
        return NULL;
    rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->per_ms = per_second / 1000.0;
    rl->burst = burst >= 1 ? burst : 1;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&rl->stripe[i], NULL);
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&rl->stripe[i]);
    free(rl);
}

int ratelimit_take(struct ratelimit *rl, const char *key, long long now_ms)
{
    uint64_t h;
    size_t set;
    struct slot *s = NULL, *oldest;
    pthread_mutex_t *m;
    int wait_s = 0;

    if (!rl)
        return 0;
    h = hash_key(key);
    set = (size_t)(h % (SLOTS / WAYS)) * WAYS;
    m = &rl->stripe[(set / WAYS) % STRIPES]; /* a set always maps to one stripe */
    pthread_mutex_lock(m);
    oldest = &rl->slots[set];
    for (size_t i = set; i < set + WAYS; i++) {
        if (rl->slots[i].hash == h) {
            s = &rl->slots[i];
            break;
        }
        if (rl->slots[i].updated_ms < oldest->updated_ms)
            oldest = &rl->slots[i];
    }
    if (!s) {
        s = oldest;
        s->hash = h;
        s->tokens = rl->burst;
        s->updated_ms = now_ms;
    }
    s->tokens += (double)(now_ms - s->updated_ms) * rl->per_ms;
    if (s->tokens > rl->burst)
        s->tokens = rl->burst;
    s->updated_ms = now_ms;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
    } else {
        wait_s = (int)ceil((1.0 - s->tokens) / rl->per_ms / 1000.0);
        if (wait_s < 1)
            wait_s = 1;
    }
    pthread_mutex_unlock(m);
    return wait_s;
}

long long ratelimit_now_ms(void)
{
    return clock_mono_ms(); /* the test build's clock moves it */
}
