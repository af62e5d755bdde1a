/* webhook.h - the delivery thread: sends the outbox's events to the
 * tenants' endpoints, signed, retrying with backoff, at least once.
 *
 * One thread drives up to HF_WEBHOOK_IN_FLIGHT requests at once through
 * libcurl's multi interface, so a slow or dead endpoint delays only its own
 * deliveries and never the API: at most HF_WEBHOOK_PER_ENDPOINT of them per
 * endpoint and HF_WEBHOOK_PER_TENANT per tenant (store.h), and an endpoint
 * that does not answer is paused, then tried one delivery at a time. A
 * delivery is claimed with a lease before it is sent and recorded after; a
 * process that dies in between leaves the lease to run out, and the
 * delivery is sent again (hence "at least once": receivers deduplicate by
 * event id). Claims and records go through the store's writer, so on
 * SQLite the thread never holds the write lock against the API. */
#ifndef HF_WEBHOOK_H
#define HF_WEBHOOK_H

#include <stddef.h>

#include "token.h"

#define HF_WEBHOOK_IN_FLIGHT 32

struct endpoint_due;
struct store_writer;

struct webhook_options {
    const char *db_path;
    const unsigned char *key;   /* HF_SEAL_KEY_BYTES: unseals endpoint secrets */
    long long timeout_ms;       /* one attempt, connect included */
    long long retry_base_ms;    /* the first retry's delay; doubles, at most an hour */
    long long retry_for_s;      /* give up once an event is this old */
    struct store_writer *writer; /* claims and records go through it (store.h) */
};

struct webhook_sender;

/* Start the thread on its own store connection. 0, or -1 with err. */
int webhook_sender_start(const struct webhook_options *o, struct webhook_sender **out,
                         char *err, size_t errlen);
/* Let in-flight requests finish for a few seconds, then stop; NULL ok. */
void webhook_sender_stop(struct webhook_sender *s);

/* Share room among the endpoints of due (store_endpoints_due), in order:
 * each gets as many as its slots, HF_WEBHOOK_PER_ENDPOINT, the room left
 * and its tenant's slots allow, less what earlier endpoints of the same
 * tenant got; a deleted one gets none. Sets each claim; returns how many
 * endpoints store_deliveries_claim has work for (deleted ones count). */
size_t webhook_plan_claims(struct endpoint_due *due, size_t n, size_t room);

/* Delay before attempt number attempts + 1, given attempts made so far
 * (>= 1), before jitter: base * 2^(attempts-1), at most an hour. */
long long webhook_backoff_ms(long long base_ms, int attempts);

#endif
