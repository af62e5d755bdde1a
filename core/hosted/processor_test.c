/* processor_test.c - the test processor of sessions made with test keys:
 * 4242 4242 4242 4242 is approved, 4000 0000 0000 0002 declined, any other
 * number declined with a hint. Nothing leaves the process. */
#include "processor.h"

#include <stdio.h>
#include <string.h>

#include "token.h"

static const char card_ok[] = "4242424242424242";
static const char card_declined[] = "4000000000000002";

static int save_card(const struct card_source *src, struct processor_result *out)
{
    const struct card *card = src->card;

    memset(out, 0, sizeof *out);
    if (strcmp(card->number, card_ok) == 0) {
        char id[32];

        token_id("card_test_", id, sizeof id);
        out->approved = 1;
        snprintf(out->saved.brand, sizeof out->saved.brand, "visa");
        snprintf(out->saved.last4, sizeof out->saved.last4, "4242");
        snprintf(out->saved.reference, sizeof out->saved.reference, "%s", id);
    } else if (strcmp(card->number, card_declined) == 0) {
        snprintf(out->decline, sizeof out->decline, "Your card was declined.");
    } else {
        snprintf(out->decline, sizeof out->decline,
                 "Your card was declined. In test mode, use 4242 4242 4242 4242.");
    }
    return 0;
}

const struct processor processor_test = {"test", NULL, save_card};
