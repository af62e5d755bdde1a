/* fuzz_log.c - log_redact into buffers of every awkward size.
 *
 * The input (cut at its first NUL, as a C string would be) is redacted
 * into exact-size heap buffers from 1 byte up to one that can never
 * truncate. Each output must be NUL-terminated inside its buffer (ASan
 * catches a write past it) and must not contain a secret: a hosted-flow
 * token path "/payment/setup/live_" or ".../test_", a key marker
 * "hf_live_"/"hf_test_" or a Checkout.com "sk_"/"tok_" followed by 20 or
 * more base64url characters, nor a raw control byte. outlen 0 must write
 * nothing. The untruncated output must start with every truncated one
 * (truncation only cuts). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                      \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "fuzz_log: invariant failed: %s (line %d)\n",  \
                    #cond, __LINE__);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

#define SECRET_RUN 20

static const char *const markers[] = {
    "/payment/setup/live_", "/payment/setup/test_", "hf_live_", "hf_test_", "sk_", "tok_",
};

static int b64url(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void check_output(const char *out, size_t outlen)
{
    const char *nul = memchr(out, '\0', outlen);
    size_t n;

    REQUIRE(nul != NULL);
    n = (size_t)(nul - out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        REQUIRE(c >= 0x20 && c != 0x7f);
    }
    for (size_t m = 0; m < sizeof markers / sizeof markers[0]; m++) {
        size_t ml = strlen(markers[m]);
        for (const char *p = strstr(out, markers[m]); p; p = strstr(p + 1, markers[m])) {
            size_t run = 0;
            while (b64url(p[ml + run]))
                run++;
            if (run >= SECRET_RUN)
                fprintf(stderr, "fuzz_log: secret survived: \"%s\"\n", out);
            REQUIRE(run < SECRET_RUN);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t small[] = {1, 2, 3, 4, 5, 8, 13, 16, 21, 31, 32, 64};
    char *in = malloc(size + 1), *full, *out;
    size_t inlen, fulllen;
    char canary = 'Z';

    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    inlen = strlen(in);

    /* worst case: 4 output bytes per input byte (\xNN), "[redacted]" adds less */
    fulllen = 4 * inlen + 32;
    full = malloc(fulllen);
    log_redact(in, full, fulllen);
    check_output(full, fulllen);
    REQUIRE(strlen(full) + 1 < fulllen); /* never truncated */

    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        out = malloc(small[i]);
        log_redact(in, out, small[i]);
        check_output(out, small[i]);
        REQUIRE(strncmp(out, full, strlen(out)) == 0);
        free(out);
    }
    for (size_t len = inlen; len <= inlen + 2; len++) {
        out = malloc(len ? len : 1);
        log_redact(in, out, len);
        if (len)
            check_output(out, len);
        free(out);
    }
    log_redact(in, &canary, 0);
    REQUIRE(canary == 'Z');

    free(full);
    free(in);
    return 0;
}
