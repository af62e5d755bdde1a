/* clock.c - the wall clock, the monotonic clock, a thread's CPU clock. */
#define _POSIX_C_SOURCE 200809L
#include "clock.h"

#include <time.h>

static long long ms_of(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long us_of(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

long long clock_wall_ms(void)
{
    return ms_of(CLOCK_REALTIME);
}

long long clock_now_s(void)
{
    return clock_wall_ms() / 1000;
}

long long clock_mono_ms(void)
{
    return ms_of(CLOCK_MONOTONIC);
}

long long clock_mono_us(void)
{
    return us_of(CLOCK_MONOTONIC);
}

void clock_mono_timespec(long long us, struct timespec *ts)
{
    ts->tv_sec = (time_t)(us / 1000000);
    ts->tv_nsec = (long)(us % 1000000) * 1000;
}

long long clock_thread_cpu_us(void)
{
    return us_of(CLOCK_THREAD_CPUTIME_ID);
}
