/* clock.h - the clocks hostflow reads. */
#ifndef HF_CLOCK_H
#define HF_CLOCK_H

#include <time.h>

/* Wall-clock time since 1970: for what is stored or sent (due times,
 * signatures). */
long long clock_wall_ms(void);
/* The same in seconds: the "now" of sessions, keys, policies and sweeps. */
long long clock_now_s(void);
/* A clock that never jumps: for intervals and timeouts in one process. */
long long clock_mono_ms(void);
/* The same in microseconds: for durations measured and short waits. */
long long clock_mono_us(void);
/* A clock_mono_us() time as the timespec a wait on a CLOCK_MONOTONIC
 * condition variable takes. */
void clock_mono_timespec(long long us, struct timespec *ts);
/* CPU time the calling thread has used, in microseconds (a system call). */
long long clock_thread_cpu_us(void);

#ifdef HOSTFLOW_TEST_CLOCK
/* build/hostflow-test only: move the wall and monotonic clocks above
 * forward by seconds (> 0) for good; returns the whole offset in seconds.
 * Waits until a clock_mono_timespec time end no later for it. */
long long clock_test_advance(long long seconds);
#endif

#endif
