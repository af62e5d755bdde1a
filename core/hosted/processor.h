/* processor.h - the card processors behind one small interface.
 *
 * A processor turns what the contractor's browser sent into a stored
 * instrument and answers approved (with brand, last four and its
 * reference) or declined (with a sentence for the contractor). What the
 * browser sends depends on the processor: the test processor takes the
 * card fields of hostflow's own form; the live processor (checkout) has
 * its own script on the card page turn the card into a single-use token
 * in the browser, so the card number never reaches hostflow. The caller
 * wipes the card fields and the token; a processor keeps no copy. */
#ifndef HF_PROCESSOR_H
#define HF_PROCESSOR_H

#include <stddef.h>

#include "config.h"
#include "store.h"

struct card {
    char number[20];          /* digits only, 12..19 */
    int exp_month;            /* 1..12 */
    int exp_year;             /* four digits */
    char cvc[5];              /* 3 or 4 digits */
};

#define HF_CARD_TOKEN_MAX 64  /* longest browser token accepted, in bytes */

/* What the browser sent: exactly one of the two, as the processor's
 * browser member says. */
struct card_source {
    const struct card *card;  /* the fields of hostflow's card form, or NULL */
    const char *token;        /* a token the processor's script made, or NULL */
};

/* What the card page of a processor that tokenises in the browser needs. */
struct processor_browser {
    const char *script_url;    /* the processor's script, loaded by the page */
    const char *script_origin; /* its scheme://host[:port]: the page's CSP allows it */
    const char *public_key;    /* handed to the script */
};

struct processor_result {
    int approved;
    struct saved_card saved;  /* when approved */
    char decline[160];        /* when declined: shown to the contractor */
};

struct processor {
    const char *name;
    /* NULL: the card page has card fields and save_card gets src->card.
     * Otherwise the page loads browser->script_url, its form posts a
     * `token`, and save_card gets src->token. */
    const struct processor_browser *browser;
    /* 0 with *out filled (approved or declined), or HF_EUPSTREAM (the
     * processor answered uselessly: 5xx, 401, garbage) or HF_EUNAVAILABLE
     * (no answer, or not now: unreachable, timeout, 429), the cause
     * logged; then nothing was saved. Safe to call from many threads. */
    int (*save_card)(const struct card_source *src, struct processor_result *out);
};

/* Configure the processors from cfg: once, before any worker thread
 * starts (and after httpc_global_init). 0, or -1 with a sentence in err. */
int processor_setup(const struct config *cfg, char *err, size_t errlen);

/* Forget the processors' settings, wiping credentials; after the workers
 * have stopped. */
void processor_teardown(void);

/* The processor for sessions of mode ("test" or "live"); NULL when none is
 * configured for it (live without a Checkout.com secret key). */
const struct processor *processor_for_mode(const char *mode);

/* The test processor (processor_test.c). */
extern const struct processor processor_test;

/* The live processor, Checkout.com (processor_checkout.c); usable only
 * after processor_checkout_setup succeeded. */
extern const struct processor processor_checkout;
int processor_checkout_setup(const struct config *cfg, char *err, size_t errlen);
void processor_checkout_teardown(void);

#endif
