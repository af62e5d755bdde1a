/* token.h - secrets: minting, hashing, constant-time comparison, wiping.
 * The only user of libsodium. */
#ifndef HF_TOKEN_H
#define HF_TOKEN_H

#include <stddef.h>

#define HF_TOKEN_BYTES 32          /* entropy of a URL token or key secret */
#define HF_TOKEN_CHARS 43          /* base64url of 32 bytes, no padding */
#define HF_HASH_BYTES 32           /* SHA-256 */
#define HF_HASH_HEX (2 * HF_HASH_BYTES + 1)
#define HF_ID_BODY_CHARS 24      /* what follows an object id's prefix */
#define HF_ID_TIME_CHARS 8         /* of which the milliseconds since 1970 (base 62) */

/* Initialise libsodium; 0 on success, -1 when the CSPRNG is unavailable. */
int token_init(void);

/* Write 32 CSPRNG bytes as unpadded base64url plus NUL into out. */
void token_mint(char out[HF_TOKEN_CHARS + 1]);

/* A session URL's token: 8 characters of the creation time (not secret),
 * then a token_mint (256 secret bits). */
#define HF_URL_TOKEN_CHARS (HF_ID_TIME_CHARS + HF_TOKEN_CHARS)
void token_mint_url(char out[HF_URL_TOKEN_CHARS + 1]);

/* The key a session is stored and found by, from its URL's
 * "<mode>_<token>" (n bytes, already checked to be of that form): the
 * token's 8 time characters, then the first 24 bytes of the SHA-256 of all
 * n bytes. Keys sort by creation time, so an insert writes the last page of
 * their index, not a random one. The 43-character tokens minted before
 * keep their whole SHA-256 as key. */
void token_url_key(const char *s, size_t n, unsigned char out[HF_HASH_BYTES]);

/* Write "<prefix><8 characters of time><16 random alphanumerics>" into
 * out (size outlen): ids of one prefix sort by creation time (to the
 * millisecond); the random part (95 bits) keeps them unique and
 * unguessable. */
void token_id(const char *prefix, char *out, size_t outlen);

/* SHA-256 of len bytes of s. */
void token_hash(const void *s, size_t len, unsigned char out[HF_HASH_BYTES]);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void token_hex(const unsigned char *bytes, size_t n, char *out);

/* 1 when the n bytes at a and b are equal; time depends on n only. */
int token_equal(const void *a, const void *b, size_t n);

/* Overwrite n bytes at p with zeros in a way the compiler keeps. */
void token_wipe(void *p, size_t n);

/* HMAC-SHA256 under the key bytes of the message a then b (alen + blen
 * bytes). */
void token_hmac(const void *key, size_t keylen, const void *a, size_t alen,
                const void *b, size_t blen, unsigned char out[HF_HASH_BYTES]);

/* Sealing secrets that must be read back (webhook signing secrets) under a
 * server key: XChaCha20-Poly1305 with a random nonce; ad (such as the id of
 * the row) is authenticated, so a sealed value cannot be moved to another
 * row. A sealed value is HF_SEAL_OVERHEAD bytes longer than the plain one. */
#define HF_SEAL_KEY_BYTES 32
#define HF_SEAL_OVERHEAD 40        /* nonce + tag */
void token_random(void *out, size_t n);
void token_seal(const unsigned char key[HF_SEAL_KEY_BYTES], const void *plain, size_t n,
                const char *ad, unsigned char *out);
/* 0 and n - HF_SEAL_OVERHEAD plain bytes in out, or -1 when the value was
 * not sealed under this key and ad. */
int token_open(const unsigned char key[HF_SEAL_KEY_BYTES], const unsigned char *sealed,
               size_t n, const char *ad, unsigned char *out);

#endif
