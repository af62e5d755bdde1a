/* clock.c - the wall clock, the monotonic clock, a thread's CPU clock;
 * in build/hostflow-test, the first two with an offset tests move. */
#define _POSIX_C_SOURCE 200809L
#include "clock.h"

#include <time.h>

#ifdef HOSTFLOW_TEST_CLOCK
#include <stdatomic.h>

static _Atomic long long offset_us; /* only grows */

long long clock_test_advance(long long seconds)
{
    return (atomic_fetch_add(&offset_us, seconds * 1000000) + seconds * 1000000) / 1000000;
}

#define OFFSET_US() atomic_load(&offset_us)
#else
#define OFFSET_US() 0LL
#endif

static long long us_of(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

long long clock_wall_ms(void)
{
    return (us_of(CLOCK_REALTIME) + OFFSET_US()) / 1000;
}

long long clock_now_s(void)
{
    return clock_wall_ms() / 1000;
}

long long clock_mono_ms(void)
{
    return clock_mono_us() / 1000;
}

long long clock_mono_us(void)
{
    return us_of(CLOCK_MONOTONIC) + OFFSET_US();
}

void clock_mono_timespec(long long us, struct timespec *ts)
{
    /* the condition variable waits on the real clock: an advance made
     * since us was computed only shortens the wait */
    us -= OFFSET_US();
    ts->tv_sec = (time_t)(us / 1000000);
    ts->tv_nsec = (long)(us % 1000000) * 1000;
}

long long clock_thread_cpu_us(void)
{
    return us_of(CLOCK_THREAD_CPUTIME_ID);
}
