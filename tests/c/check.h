/* check.h - the C unit tests' tiny harness: one "ok"/"not ok" line per
 * check (TAP style, counted by scripts/run-tests), exit 1 on any failure. */
#ifndef HF_CHECK_H
#define HF_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(name, cond)                                                    \
    do {                                                                     \
        if (cond) {                                                          \
            check_passed++;                                                  \
            printf("ok - %s\n", (name));                                     \
        } else {                                                             \
            check_failed++;                                                  \
            printf("not ok - %s (%s:%d: %s)\n", (name), __FILE__, __LINE__,  \
                   #cond);                                                   \
        }                                                                    \
        fflush(stdout); /* a crash later must not lose this line */          \
    } while (0)

#define CHECK_DONE() (printf("# %d passed, %d failed\n", check_passed,       \
                             check_failed),                                  \
                      check_failed ? 1 : 0)

#endif
