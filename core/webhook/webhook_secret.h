/* webhook_secret.h - the signing secrets of webhook endpoints.
 *
 * A tenant verifies each event with its endpoint's secret, so hostflow must
 * be able to read the secret back to sign: a hash would not do. Secrets are
 * stored sealed under a server key kept outside the database (a file, 0600)
 * with the endpoint id as associated data, so a copy of the database alone
 * reveals none of them and a sealed secret cannot be moved to another row. */
#ifndef HF_WEBHOOK_SECRET_H
#define HF_WEBHOOK_SECRET_H

#include <stddef.h>

#include "store.h"
#include "token.h"

#define HF_WEBHOOK_SECRET_CHARS (6 + HF_TOKEN_CHARS)   /* "whsec_" + 43 */
/* "t=<unix>,v1=<64 hex>" */
#define HF_SIGNATURE_MAX (2 + 20 + 4 + 2 * HF_HASH_BYTES + 1)
/* "t=<unix>,v1=<64 hex>,v1=<64 hex>" */
#define HF_ROLLING_SIGNATURE_MAX (HF_SIGNATURE_MAX + 4 + 2 * HF_HASH_BYTES)

/* Read the 32-byte key at path. When the file does not exist it is
 * created (mode 0600, random) if may_create, and refused otherwise (a
 * database whose endpoints were sealed with a key must get that key back,
 * not a new one). 0, or -1 with a sentence in err. */
int webhook_key_load(const char *path, int may_create,
                     unsigned char key[HF_SEAL_KEY_BYTES], char *err, size_t errlen);

/* Mint a secret for endpoint e (its id set): the plain "whsec_…" string
 * into plain, the sealed form into e->secret / e->secret_len. */
void webhook_secret_new(const unsigned char key[HF_SEAL_KEY_BYTES],
                        struct webhook_endpoint *e,
                        char plain[HF_WEBHOOK_SECRET_CHARS + 1]);

/* Unseal e's secret into plain; -1 when it was not sealed under key for e
 * (another server key, or a row tampered with). */
int webhook_secret_open(const unsigned char key[HF_SEAL_KEY_BYTES],
                        const struct webhook_endpoint *e,
                        char plain[HF_WEBHOOK_SECRET_CHARS + 1]);

/* Unseal e's previous secret (the one before its last roll) into plain
 * when it is still valid at now_ms; -1 when there is none, it has lapsed
 * or it cannot be unsealed. */
int webhook_previous_secret_open(const unsigned char key[HF_SEAL_KEY_BYTES],
                                 const struct webhook_endpoint *e, long long now_ms,
                                 char plain[HF_WEBHOOK_SECRET_CHARS + 1]);

/* The Ten99Policy-Signature value for body sent at time t: "t=<t>,v1=<hex
 * HMAC-SHA256 keyed with the whole secret string over "<t>.<body>">". */
void webhook_sign(const char *secret, long long t, const char *body, size_t len,
                  char out[HF_SIGNATURE_MAX]);
/* The same with one v1= per secret, for an endpoint whose secret rolls:
 * "t=<t>,v1=<current>,v1=<previous>"; previous may be NULL. */
void webhook_sign_rolling(const char *secret, const char *previous, long long t,
                          const char *body, size_t len, char out[HF_ROLLING_SIGNATURE_MAX]);

#endif
