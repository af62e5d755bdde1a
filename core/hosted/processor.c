/* processor.c - which processor serves which session mode. */
#include "processor.h"

#include <string.h>

static int live_ready; /* set before the workers start, read-only after */

int processor_setup(const struct config *cfg, char *err, size_t errlen)
{
    live_ready = 0;
    if (!cfg->checkout_secret_key)
        return 0; /* live cards stay off: their card page answers 503 */
    if (processor_checkout_setup(cfg, err, errlen) != 0)
        return -1;
    live_ready = 1;
    return 0;
}

void processor_teardown(void)
{
    if (live_ready)
        processor_checkout_teardown();
    live_ready = 0;
}

const struct processor *processor_for_mode(const char *mode)
{
    if (strcmp(mode, "test") == 0)
        return &processor_test;
    if (strcmp(mode, "live") == 0 && live_ready)
        return &processor_checkout;
    return NULL;
}
