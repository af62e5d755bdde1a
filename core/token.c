/* token.c - secrets: the only user of libsodium. */
#include "token.h"

#include <string.h>
#include <sodium.h>

static const char alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

int token_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void token_mint(char out[HF_TOKEN_CHARS + 1])
{
    unsigned char raw[HF_TOKEN_BYTES];

    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, HF_TOKEN_CHARS + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

void token_id(const char *prefix, char *out, size_t outlen)
{
    size_t n = strlen(prefix), end;
    unsigned char raw[64];
    size_t used = sizeof raw;

    if (outlen < n + 1)
        n = outlen - 1;
    memcpy(out, prefix, n);
    end = n + HF_ID_RANDOM_CHARS < outlen ? n + HF_ID_RANDOM_CHARS : outlen - 1;
    /* one CSPRNG call per 64 bytes, not one per character; bytes of 248 and
     * above are skipped so that every character is equally likely */
    while (n < end) {
        unsigned char b;

        if (used == sizeof raw) {
            randombytes_buf(raw, sizeof raw);
            used = 0;
        }
        b = raw[used++];
        if (b < 248)
            out[n++] = alnum[b % 62];
    }
    out[n] = '\0';
    sodium_memzero(raw, sizeof raw);
}

void token_hash(const void *s, size_t len, unsigned char out[HF_HASH_BYTES])
{
    crypto_hash_sha256(out, s, len);
}

void token_hex(const unsigned char *bytes, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, bytes, n);
}

int token_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

void token_wipe(void *p, size_t n)
{
    sodium_memzero(p, n);
}
