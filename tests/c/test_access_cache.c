/* test_access_cache.c - unit tests for core/store/access_cache.c: answers come
 * back only for the generation they were read at, and only for exactly
 * what was asked. */
#include <stdio.h>
#include <string.h>

#include "access_cache.h"
#include "check.h"

static void keys(struct access_cache *c)
{
    unsigned char hash[HF_HASH_BYTES], other[HF_HASH_BYTES];
    struct api_key k = {.id = "key_1", .tenant_id = "tn_1", .mode = "live"}, out;

    memset(hash, 7, sizeof hash);
    memcpy(other, hash, sizeof other);
    other[HF_HASH_BYTES - 1] ^= 1; /* same slot, another secret */
    CHECK("an empty cache knows no key", !access_cache_key(c, 1, hash, &out));
    access_cache_put_key(c, 5, hash, &k);
    CHECK("a key comes back at its generation",
          access_cache_key(c, 5, hash, &out) && strcmp(out.id, "key_1") == 0);
    CHECK("not at a later one", !access_cache_key(c, 6, hash, &out));
    CHECK("not for another secret in its slot", !access_cache_key(c, 5, other, &out));
    access_cache_put_key(c, 5, other, &(struct api_key){.id = "key_2"});
    CHECK("a collision forgets the older key", !access_cache_key(c, 5, hash, &out));
    CHECK("and keeps the newer", access_cache_key(c, 5, other, &out) && strcmp(out.id, "key_2") == 0);
}

static void tenants(struct access_cache *c)
{
    static struct tenant t, out;

    snprintf(t.id, sizeof t.id, "tn_1");
    snprintf(t.name, sizeof t.name, "Acme");
    t.n_hosts = 2;
    snprintf(t.hosts[0], sizeof t.hosts[0], "a.example.com");
    snprintf(t.hosts[1], sizeof t.hosts[1], "b.example.com");
    access_cache_put_tenant(c, 3, &t);
    memset(&out, 0, sizeof out);
    CHECK("a tenant comes back with its hosts",
          access_cache_tenant(c, 3, "tn_1", &out) && out.n_hosts == 2 &&
              strcmp(out.name, "Acme") == 0 && strcmp(out.hosts[1], "b.example.com") == 0);
    CHECK("not at another generation", !access_cache_tenant(c, 4, "tn_1", &out));
    CHECK("not for another id", !access_cache_tenant(c, 3, "tn_2", &out));
}

static void contractors(struct access_cache *c)
{
    access_cache_put_contractor(c, 9, "tn_1", "ctr_1");
    CHECK("a contractor of its tenant is known", access_cache_contractor(c, 9, "tn_1", "ctr_1"));
    CHECK("not under another tenant", !access_cache_contractor(c, 9, "tn_2", "ctr_1"));
    CHECK("not at another generation", !access_cache_contractor(c, 10, "tn_1", "ctr_1"));
    CHECK("ids are not run together", !access_cache_contractor(c, 9, "tn_1ctr", "_1"));
}

int main(void)
{
    struct access_cache *c = access_cache_new();

    CHECK("a cache is made", c != NULL);
    if (!c)
        return CHECK_DONE();
    keys(c);
    tenants(c);
    contractors(c);
    CHECK("without a cache nothing is known",
          !access_cache_contractor(NULL, 9, "tn_1", "ctr_1"));
    access_cache_free(c);
    return CHECK_DONE();
}
