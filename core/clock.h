/* clock.h - the two clocks hostflow reads. */
#ifndef HF_CLOCK_H
#define HF_CLOCK_H

/* Wall-clock time since 1970: for what is stored or sent (due times,
 * signatures). */
long long clock_wall_ms(void);
/* A clock that never jumps: for intervals and timeouts in one process. */
long long clock_mono_ms(void);
/* The same in microseconds: for durations measured and short waits. */
long long clock_mono_us(void);
/* Sleep ms milliseconds (less if a signal interrupts it). */
void clock_sleep_ms(int ms);

#endif
