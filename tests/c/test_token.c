/* test_token.c - unit tests for core/lib/token.c: the shape of URL tokens and
 * ids, and the key a session is found by. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "check.h"
#include "token.h"

static int all_in(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(set, s[i]))
            return 0;
    return 1;
}

/* Seconds on the monotonic clock. */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char alnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char base64url[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

static void url_tokens(void)
{
    char a[HF_URL_TOKEN_CHARS + 1], b[HF_URL_TOKEN_CHARS + 1];
    char url[8 + HF_URL_TOKEN_CHARS];
    unsigned char key[HF_HASH_BYTES], digest[HF_HASH_BYTES];
    double deadline = now_s() + 1;

    /* b once its time part (milliseconds) has moved on from a's */
    token_mint_url(a);
    do
        token_mint_url(b);
    while (memcmp(a, b, HF_ID_TIME_CHARS) == 0 && now_s() < deadline);
    CHECK("a URL token has 51 characters", strlen(a) == 51);
    CHECK("it starts with 8 alphanumerics of time", all_in(a, 8, alnum));
    CHECK("then 43 of base64url", all_in(a + 8, 43, base64url));
    CHECK("a later token sorts after an earlier one", memcmp(a, b, 8) < 0);
    CHECK("the secret parts differ", memcmp(a + 8, b + 8, 43) != 0);

    snprintf(url, sizeof url, "live_%s", a);
    token_url_key(url, strlen(url), key);
    token_hash(url, strlen(url), digest);
    CHECK("the key starts with the token's time", memcmp(key, a, 8) == 0);
    CHECK("then the SHA-256 of the whole, mode included", memcmp(key + 8, digest, 24) == 0);
    url[0] = 't'; /* "tive_…": another string, another key */
    token_url_key(url, strlen(url), digest);
    CHECK("the mode is part of the key", memcmp(key, digest, HF_HASH_BYTES) != 0);
}

static void legacy_tokens(void)
{
    const char *old = "test_QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQx-_";
    unsigned char key[HF_HASH_BYTES], digest[HF_HASH_BYTES];

    CHECK("the older token has 43 characters", strlen(old) == 5 + HF_TOKEN_CHARS);
    token_url_key(old, strlen(old), key);
    token_hash(old, strlen(old), digest);
    CHECK("an older token's key is its whole SHA-256", memcmp(key, digest, HF_HASH_BYTES) == 0);
}

static void ids(void)
{
    char a[4 + HF_ID_BODY_CHARS + 1], b[4 + HF_ID_BODY_CHARS + 1];
    double deadline = now_s() + 1;

    token_id("hps_", a, sizeof a);
    do
        token_id("hps_", b, sizeof b);
    while (memcmp(a, b, 4 + HF_ID_TIME_CHARS) == 0 && now_s() < deadline);
    CHECK("an id is its prefix and 24 alphanumerics",
          strncmp(a, "hps_", 4) == 0 && strlen(a) == 28 && all_in(a + 4, 24, alnum));
    CHECK("ids sort by time", strcmp(a, b) < 0);
}

int main(void)
{
    if (token_init() != 0)
        return 1;
    url_tokens();
    legacy_tokens();
    ids();
    return CHECK_DONE();
}
