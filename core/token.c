/* token.c - secrets: the only user of libsodium. */
#include "token.h"

#include <string.h>
#include <sodium.h>

/* Per-thread buffer of CSPRNG output: one getrandom call serves many
 * tokens and ids. Bytes are wiped as they are handed out. */
#define POOL_BYTES 512
static _Thread_local unsigned char pool[POOL_BYTES];
static _Thread_local size_t pool_used = POOL_BYTES;

static void random_bytes(unsigned char *out, size_t n)
{
    while (n > 0) {
        size_t take;

        if (pool_used == POOL_BYTES) {
            randombytes_buf(pool, sizeof pool);
            pool_used = 0;
        }
        take = POOL_BYTES - pool_used < n ? POOL_BYTES - pool_used : n;
        memcpy(out, pool + pool_used, take);
        sodium_memzero(pool + pool_used, take);
        pool_used += take;
        out += take;
        n -= take;
    }
}

static const char alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

int token_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void token_mint(char out[HF_TOKEN_CHARS + 1])
{
    unsigned char raw[HF_TOKEN_BYTES];

    random_bytes(raw, sizeof raw);
    sodium_bin2base64(out, HF_TOKEN_CHARS + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

void token_id(const char *prefix, char *out, size_t outlen)
{
    size_t n = strlen(prefix), end;
    unsigned char raw[32];
    size_t used = sizeof raw;

    if (outlen < n + 1)
        n = outlen - 1;
    memcpy(out, prefix, n);
    end = n + HF_ID_RANDOM_CHARS < outlen ? n + HF_ID_RANDOM_CHARS : outlen - 1;
    /* random bytes from the thread's pool, not a call per character; bytes of 248 and
     * above are skipped so that every character is equally likely */
    while (n < end) {
        unsigned char b;

        if (used == sizeof raw) {
            random_bytes(raw, sizeof raw);
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
