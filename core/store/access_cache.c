/* access_cache.c - a connection's remembered key, tenant and contractor
 * answers, valid for one access generation (access_cache.h). */
#include "access_cache.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define KEY_SLOTS 64
#define TENANT_SLOTS 8          /* a tenant with all its hosts is ~25 KiB */
#define CONTRACTOR_SLOTS 1024

struct key_slot {
    long long gen;              /* 0: empty */
    unsigned char secret_hash[HF_HASH_BYTES];
    struct api_key key;
};

struct tenant_slot {
    long long gen;
    struct tenant tenant;
};

struct contractor_slot {
    long long gen;
    char tenant_id[HF_ID_MAX];
    char contractor_id[HF_ID_MAX];
};

struct access_cache {
    struct key_slot keys[KEY_SLOTS];
    struct tenant_slot tenants[TENANT_SLOTS];
    struct contractor_slot contractors[CONTRACTOR_SLOTS];
};

struct access_cache *access_cache_new(void)
{
    return calloc(1, sizeof(struct access_cache));
}

void access_cache_free(struct access_cache *c)
{
    if (c)
        token_wipe(c->keys, sizeof c->keys); /* hashes of secrets */
    free(c);
}

/* FNV-1a of a NUL-terminated string, then of another. */
static unsigned long hash_ids(const char *a, const char *b)
{
    unsigned long h = 2166136261u;

    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (; b && *b; b++)
        h = (h ^ (unsigned char)*b) * 16777619u;
    return h;
}

static struct key_slot *key_slot(struct access_cache *c,
                                 const unsigned char secret_hash[HF_HASH_BYTES])
{
    /* the hash of a secret is uniform already; its first bytes pick */
    return &c->keys[(secret_hash[0] | secret_hash[1] << 8) % KEY_SLOTS];
}

int access_cache_key(struct access_cache *c, long long gen,
                     const unsigned char secret_hash[HF_HASH_BYTES], struct api_key *out)
{
    struct key_slot *k;

    if (!c)
        return 0;
    k = key_slot(c, secret_hash);
    if (k->gen != gen || !token_equal(k->secret_hash, secret_hash, HF_HASH_BYTES))
        return 0;
    *out = k->key;
    return 1;
}

void access_cache_put_key(struct access_cache *c, long long gen,
                          const unsigned char secret_hash[HF_HASH_BYTES],
                          const struct api_key *key)
{
    struct key_slot *k;

    if (!c)
        return;
    k = key_slot(c, secret_hash);
    k->gen = gen;
    memcpy(k->secret_hash, secret_hash, HF_HASH_BYTES);
    k->key = *key;
}

/* A tenant without the unused part of its host table. */
static void copy_tenant(struct tenant *to, const struct tenant *from)
{
    memcpy(to, from, offsetof(struct tenant, hosts));
    memcpy(to->hosts, from->hosts, from->n_hosts * sizeof from->hosts[0]);
}

int access_cache_tenant(struct access_cache *c, long long gen, const char *tenant_id,
                        struct tenant *out)
{
    struct tenant_slot *t;

    if (!c)
        return 0;
    t = &c->tenants[hash_ids(tenant_id, NULL) % TENANT_SLOTS];
    if (t->gen != gen || strcmp(t->tenant.id, tenant_id) != 0)
        return 0;
    copy_tenant(out, &t->tenant);
    return 1;
}

void access_cache_put_tenant(struct access_cache *c, long long gen, const struct tenant *tenant)
{
    struct tenant_slot *t;

    if (!c || tenant->n_hosts > HF_HOSTS_MAX)
        return;
    t = &c->tenants[hash_ids(tenant->id, NULL) % TENANT_SLOTS];
    t->gen = gen;
    copy_tenant(&t->tenant, tenant);
}

int access_cache_contractor(struct access_cache *c, long long gen, const char *tenant_id,
                            const char *contractor_id)
{
    struct contractor_slot *s;

    if (!c)
        return 0;
    s = &c->contractors[hash_ids(tenant_id, contractor_id) % CONTRACTOR_SLOTS];
    return s->gen == gen && strcmp(s->tenant_id, tenant_id) == 0 &&
           strcmp(s->contractor_id, contractor_id) == 0;
}

void access_cache_put_contractor(struct access_cache *c, long long gen,
                                 const char *tenant_id, const char *contractor_id)
{
    struct contractor_slot *s;

    if (!c || strlen(tenant_id) >= HF_ID_MAX || strlen(contractor_id) >= HF_ID_MAX)
        return;
    s = &c->contractors[hash_ids(tenant_id, contractor_id) % CONTRACTOR_SLOTS];
    s->gen = gen;
    strcpy(s->tenant_id, tenant_id);
    strcpy(s->contractor_id, contractor_id);
}
