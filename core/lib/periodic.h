/* periodic.h - a thread that runs a function every N ms until stopped,
 * and at once when kicked. */
#ifndef HF_PERIODIC_H
#define HF_PERIODIC_H

struct periodic;

/* One run. p is its thread (for periodic_stopping). Return 0 to wait the
 * interval before the next run, 1 when fn waited itself and may run again
 * at once (a stop or kick still comes first). */
typedef int periodic_fn(struct periodic *p, void *arg);

/* Start a thread named name (top -H, ps -L; at most 15 bytes) that runs
 * fn(p, arg) at once, then every interval_ms. NULL if it cannot start. */
struct periodic *periodic_start(const char *name, int interval_ms, periodic_fn *fn, void *arg);
/* Run fn now instead of at the end of the wait (once, if it is running). */
void periodic_kick(struct periodic *p);
/* Kick every thread started and not yet stopped, and return once each
 * has ended a run begun after the kick. */
void periodic_run_all(void);
/* 1 once a stop was asked: a long run checks it between steps. */
int periodic_stopping(struct periodic *p);
/* Wake the thread, wait for a run in progress to end, join it and free.
 * NULL is fine. */
void periodic_stop(struct periodic *p);

#endif
