/* token.c - secrets: the only user of libsodium. */
#include "token.h"

#include <string.h>
#include <time.h>
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

/* Characters in ASCII order, so that ids sort by their time part. */
static const char sorted62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* The milliseconds since 1970 as n characters of sorted62, most
 * significant first. */
static void put_time(char *out, size_t n)
{
    struct timespec ts;
    unsigned long long ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
    for (size_t i = n; i > 0; i--) {
        out[i - 1] = sorted62[ms % 62];
        ms /= 62;
    }
}

void token_mint_url(char out[HF_URL_TOKEN_CHARS + 1])
{
    put_time(out, HF_ID_TIME_CHARS);
    token_mint(out + HF_ID_TIME_CHARS);
}

void token_url_key(const char *s, size_t n, unsigned char out[HF_HASH_BYTES])
{
    const char *token = memchr(s, '_', n);
    unsigned char digest[HF_HASH_BYTES];

    token_hash(s, n, digest);
    if (!token || (size_t)(s + n - (token + 1)) != HF_URL_TOKEN_CHARS) {
        memcpy(out, digest, HF_HASH_BYTES); /* a 43-character token */
        return;
    }
    memcpy(out, token + 1, HF_ID_TIME_CHARS);
    memcpy(out + HF_ID_TIME_CHARS, digest, HF_HASH_BYTES - HF_ID_TIME_CHARS);
    sodium_memzero(digest, sizeof digest);
}

void token_id(const char *prefix, char *out, size_t outlen)
{
    size_t n = strlen(prefix), end;
    unsigned char raw[32];
    size_t used = sizeof raw;
    char time[HF_ID_TIME_CHARS];

    if (outlen < n + 1)
        n = outlen - 1;
    memcpy(out, prefix, n);
    end = n + HF_ID_BODY_CHARS < outlen ? n + HF_ID_BODY_CHARS : outlen - 1;
    /* the time first: new rows land beside each other in an index on the
     * id instead of on a random page each (see README, Benchmarks) */
    put_time(time, sizeof time);
    for (size_t i = 0; i < HF_ID_TIME_CHARS && n < end; i++)
        out[n++] = time[i];
    /* then random bytes from the thread's pool, not a call per character;
     * bytes of 248 and above are skipped so that every character is
     * equally likely */
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

void token_hmac(const void *key, size_t keylen, const void *a, size_t alen,
                const void *b, size_t blen, unsigned char out[HF_HASH_BYTES])
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, a, alen);
    crypto_auth_hmacsha256_update(&st, b, blen);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

void token_random(void *out, size_t n)
{
    randombytes_buf(out, n);
}

void token_seal(const unsigned char key[HF_SEAL_KEY_BYTES], const void *plain, size_t n,
                const char *ad, unsigned char *out)
{
    unsigned char *nonce = out;

    randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, NULL, plain, n,
        (const unsigned char *)ad, strlen(ad), NULL, nonce, key);
}

int token_open(const unsigned char key[HF_SEAL_KEY_BYTES], const unsigned char *sealed,
               size_t n, const char *ad, unsigned char *out)
{
    const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

    if (n < HF_SEAL_OVERHEAD)
        return -1;
    return crypto_aead_xchacha20poly1305_ietf_decrypt(
               out, NULL, NULL, sealed + nb, n - nb, (const unsigned char *)ad,
               strlen(ad), sealed, key) == 0 ? 0 : -1;
}

_Static_assert(HF_SEAL_OVERHEAD == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
               crypto_aead_xchacha20poly1305_ietf_ABYTES, "seal overhead");
_Static_assert(HF_SEAL_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "seal key");
