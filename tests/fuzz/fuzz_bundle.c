/* fuzz_bundle.c - policy_source_decode on arbitrary bytes: a policy bundle
 * read back from the database must never be trusted to be well formed.
 *
 * A refusal comes with a sentence; an accepted bundle encodes back to the
 * very same bytes (the format has one spelling per version) and decodes
 * again to the same version. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "policy_source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                        \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_bundle: invariant failed: %s (line %d)\n", \
                    #cond, __LINE__);                                        \
            abort();                                                         \
        }                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy_source *src = NULL, *again = NULL;
    char err[256], *buf, *enc = NULL;
    size_t len;
    int rc;

    buf = malloc(size ? size : 1); /* exact size: ASan sees reads past it */
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    memset(err, 'X', sizeof err);
    rc = policy_source_decode(buf, size, "fuzz", &src, err, sizeof err);
    if (rc != 0) {
        REQUIRE(rc == HF_EPOLICY || rc == HF_ENOMEM);
        REQUIRE(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        free(buf);
        return 0;
    }
    REQUIRE(policy_source_encode(src, &enc, &len) == 0);
    REQUIRE(len == size && memcmp(enc, buf, size) == 0);
    REQUIRE(policy_source_decode(enc, len, "again", &again, err, sizeof err) == 0);
    REQUIRE(strcmp(src->version, again->version) == 0);
    policy_source_free(again);
    policy_source_free(src);
    free(enc);
    free(buf);
    return 0;
}
