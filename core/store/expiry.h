/* expiry.h - the background sweep that writes 'expired' on pending
 * sessions past expires_at. Reads already show them expired at once; the
 * sweep makes the state change a row change that later work (events) can
 * hang on. */
#ifndef HF_EXPIRY_H
#define HF_EXPIRY_H

#include <stddef.h>

#define HF_EXPIRY_INTERVAL_MS 1000

struct expiry;

/* Start sweeping db_path every HF_EXPIRY_INTERVAL_MS on a thread with its
 * own connection, writing through writer. 0, or -1 with err. */
struct store_writer;
int expiry_start(const char *db_path, struct store_writer *writer, struct expiry **out,
                 char *err, size_t errlen);
/* Stop the thread and free; NULL is fine. */
void expiry_stop(struct expiry *x);

#endif
