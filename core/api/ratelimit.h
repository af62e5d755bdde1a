/* ratelimit.h - token buckets keyed by a string (an API key id, an IP),
 * in bounded memory, safe to share between threads. */
#ifndef HF_RATELIMIT_H
#define HF_RATELIMIT_H

struct ratelimit;

/* Buckets refilling per_second tokens a second up to burst; NULL when
 * per_second is 0 (no limit) or memory is short. */
struct ratelimit *ratelimit_new(double per_second, double burst);
/* Free; NULL is fine. */
void ratelimit_free(struct ratelimit *rl);

/* Take one token for key at now_ms. 0 when allowed (always, for a NULL
 * limiter); otherwise the whole seconds until a token is back (>= 1). */
int ratelimit_take(struct ratelimit *rl, const char *key, long long now_ms);

/* Milliseconds on a monotonic clock, for ratelimit_take. */
long long ratelimit_now_ms(void);

#endif
