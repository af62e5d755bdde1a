/* test_periodic.c - unit tests for core/lib/periodic.c: the first run at
 * once, runs on a kick and through periodic_run_all, a prompt stop however
 * long the interval. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>

#include "check.h"
#include "clock.h"
#include "periodic.h"

#define LONG_MS 60000 /* no run of the tests below comes from the interval */

static atomic_int runs;

static int count(struct periodic *p, void *arg)
{
    (void)p;
    (void)arg;
    atomic_fetch_add(&runs, 1);
    return 0;
}

/* Wait up to 5 s for runs to reach n. */
static int reached(int n)
{
    long long until = clock_mono_ms() + 5000;

    while (atomic_load(&runs) < n && clock_mono_ms() < until)
        ;
    return atomic_load(&runs) >= n;
}

int main(void)
{
    struct periodic *p = periodic_start("hf-test", LONG_MS, count, NULL);
    long long began;

    CHECK("it starts", p != NULL);
    CHECK("the first run is at once", reached(1));
    periodic_kick(p);
    CHECK("a kick runs it again before the interval", reached(2));
    periodic_run_all();
    CHECK("periodic_run_all returns after a run begun after it was called",
          atomic_load(&runs) >= 3);
    periodic_run_all();
    CHECK("each call waits for a run of its own", atomic_load(&runs) >= 4);
    CHECK("it is not stopping while it runs", !periodic_stopping(p));
    began = clock_mono_ms();
    periodic_stop(p);
    CHECK("a stop wakes the wait instead of sitting out the interval",
          clock_mono_ms() - began < 1000);
    periodic_run_all(); /* off the list: under ASan, touching it would be reported */
    periodic_stop(NULL);
    return CHECK_DONE();
}
