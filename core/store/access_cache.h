/* access_cache.h - one database connection's remembered answers about API
 * keys, tenants and which contractors belong to which tenant.
 *
 * Every create reads all three, and they change rarely (a CLI command, an
 * operator). The database keeps an access generation, a counter that its
 * triggers bump on every change that could make such an answer wrong
 * (store_sqlite.c, migration 6). Each answer is remembered with the
 * generation read before it; a lookup gives it back only for that same
 * generation, read again by the caller in its current snapshot. So an
 * answer from here is exactly what the database says now.
 *
 * Only answers that something exists are kept: a new key, tenant or
 * contractor needs no invalidation. Fixed-size, direct-mapped tables; a
 * collision forgets the older answer. One thread at a time, like the
 * connection it belongs to. */
#ifndef HF_ACCESS_CACHE_H
#define HF_ACCESS_CACHE_H

#include "store.h"

struct access_cache;

/* NULL when out of memory (the caller then reads the database each time). */
struct access_cache *access_cache_new(void);
void access_cache_free(struct access_cache *c);

/* 1 and the key into out when the key with this secret hash is known at
 * generation gen; else 0. */
int access_cache_key(struct access_cache *c, long long gen,
                     const unsigned char secret_hash[HF_HASH_BYTES], struct api_key *out);
void access_cache_put_key(struct access_cache *c, long long gen,
                          const unsigned char secret_hash[HF_HASH_BYTES],
                          const struct api_key *key);

/* 1 and the tenant (its hosts included) into out when known at gen. */
int access_cache_tenant(struct access_cache *c, long long gen, const char *tenant_id,
                        struct tenant *out);
void access_cache_put_tenant(struct access_cache *c, long long gen, const struct tenant *t);

/* 1 when contractor_id is known to belong to tenant_id at gen. */
int access_cache_contractor(struct access_cache *c, long long gen, const char *tenant_id,
                            const char *contractor_id);
void access_cache_put_contractor(struct access_cache *c, long long gen,
                                 const char *tenant_id, const char *contractor_id);

#endif
