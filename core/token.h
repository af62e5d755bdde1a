/* token.h - secrets: minting, hashing, constant-time comparison, wiping.
 * The only user of libsodium. */
#ifndef HF_TOKEN_H
#define HF_TOKEN_H

#include <stddef.h>

#define HF_TOKEN_BYTES 32          /* entropy of a URL token or key secret */
#define HF_TOKEN_CHARS 43          /* base64url of 32 bytes, no padding */
#define HF_HASH_BYTES 32           /* SHA-256 */
#define HF_HASH_HEX (2 * HF_HASH_BYTES + 1)
#define HF_ID_RANDOM_CHARS 24      /* random part of an object id */

/* Initialise libsodium; 0 on success, -1 when the CSPRNG is unavailable. */
int token_init(void);

/* Write 32 CSPRNG bytes as unpadded base64url plus NUL into out. */
void token_mint(char out[HF_TOKEN_CHARS + 1]);

/* Write "<prefix><24 random alphanumerics>" into out (size outlen). */
void token_id(const char *prefix, char *out, size_t outlen);

/* SHA-256 of len bytes of s. */
void token_hash(const void *s, size_t len, unsigned char out[HF_HASH_BYTES]);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void token_hex(const unsigned char *bytes, size_t n, char *out);

/* 1 when the n bytes at a and b are equal; time depends on n only. */
int token_equal(const void *a, const void *b, size_t n);

/* Overwrite n bytes at p with zeros in a way the compiler keeps. */
void token_wipe(void *p, size_t n);

#endif
