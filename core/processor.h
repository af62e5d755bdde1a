/* processor.h - the card processors behind one small interface.
 *
 * A processor turns the card a contractor typed into a stored instrument
 * and answers approved (with brand, last four and its reference) or
 * declined (with a sentence for the contractor). The card number is the
 * caller's to wipe; a processor keeps no copy. */
#ifndef HF_PROCESSOR_H
#define HF_PROCESSOR_H

#include "store.h"

struct card {
    char number[20];          /* digits only, 12..19 */
    int exp_month;            /* 1..12 */
    int exp_year;             /* four digits */
    char cvc[5];              /* 3 or 4 digits */
};

struct processor_result {
    int approved;
    struct saved_card saved;  /* when approved */
    char decline[160];        /* when declined: shown to the contractor */
};

struct processor {
    const char *name;
    /* 0 with *out filled (approved or declined), or HF_E… when the
     * processor could not be asked (then nothing was saved). */
    int (*save_card)(const struct card *card, struct processor_result *out);
};

/* The processor for sessions of mode ("test" or "live"); NULL when none is
 * configured for it. */
const struct processor *processor_for_mode(const char *mode);

/* The test processor (processor_test.c). */
extern const struct processor processor_test;

#endif
