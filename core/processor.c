/* processor.c - which processor serves which session mode. */
#include "processor.h"

#include <string.h>

const struct processor *processor_for_mode(const char *mode)
{
    if (strcmp(mode, "test") == 0)
        return &processor_test;
    return NULL; /* live cards need the checkout adapter, not built yet */
}
