/* test_webhook.c - unit tests for the webhook building blocks: which
 * addresses are internal (netaddr.c), sealed secrets, the key file and
 * the signature (webhook_secret.c, token.c), the retry schedule and the
 * share of a claim among endpoints and tenants (webhook.c). */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "netaddr.h"
#include "store.h"
#include "webhook.h"
#include "webhook_secret.h"

static int v4(const char *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET};

    inet_pton(AF_INET, s, &a.sin_addr);
    return netaddr_is_internal((struct sockaddr *)&a);
}

static int v6(const char *s)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};

    inet_pton(AF_INET6, s, &a.sin6_addr);
    return netaddr_is_internal((struct sockaddr *)&a);
}

static void addresses(void)
{
    static const char *const internal4[] = {
        "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "172.31.255.255",
        "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
        "255.255.255.255", "192.0.2.10", "198.18.0.1", "240.0.0.1"};
    static const char *const public4[] = {
        "8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "100.128.0.1",
        "192.169.0.1", "11.0.0.1", "126.255.255.255", "223.255.255.254"};
    static const char *const internal6[] = {
        "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1",
        "::ffff:10.1.2.3", "64:ff9b::a9fe:a9fe", "2001:db8::1", "::127.0.0.1", "fec0::1",
        "64:ff9b:1::a00:5", "2002:a00:5::1", "2002:7f00:1::", "2001:0:a00:5::1", "100::1"};
    static const char *const public6[] = {"2606:4700::1111", "2a00:1450::1",
                                          "::ffff:8.8.8.8", "64:ff9b::808:808",
                                          "2002:808:808::1", "2001:4860::8888", "100:1::1"};
    char name[96];

    for (size_t i = 0; i < sizeof internal4 / sizeof *internal4; i++) {
        snprintf(name, sizeof name, "%s is internal", internal4[i]);
        CHECK(name, v4(internal4[i]));
    }
    for (size_t i = 0; i < sizeof public4 / sizeof *public4; i++) {
        snprintf(name, sizeof name, "%s is public", public4[i]);
        CHECK(name, !v4(public4[i]));
    }
    for (size_t i = 0; i < sizeof internal6 / sizeof *internal6; i++) {
        snprintf(name, sizeof name, "%s is internal", internal6[i]);
        CHECK(name, v6(internal6[i]));
    }
    for (size_t i = 0; i < sizeof public6 / sizeof *public6; i++) {
        snprintf(name, sizeof name, "%s is public", public6[i]);
        CHECK(name, !v6(public6[i]));
    }
    CHECK("host 127.0.0.1 is internal", netaddr_host_is_internal("127.0.0.1"));
    CHECK("host [::1] is internal", netaddr_host_is_internal("[::1]"));
    CHECK("host [::ffff:a9fe:a9fe] is internal", netaddr_host_is_internal("[::ffff:a9fe:a9fe]"));
    CHECK("host localhost is internal", netaddr_host_is_internal("localhost"));
    CHECK("host api.localhost is internal", netaddr_host_is_internal("api.localhost"));
    CHECK("host notlocalhost is a name", !netaddr_host_is_internal("notlocalhost"));
    CHECK("host hooks.example.com is a name", !netaddr_host_is_internal("hooks.example.com"));
    CHECK("host 8.8.8.8 is public", !netaddr_host_is_internal("8.8.8.8"));
    CHECK("host [2606:4700::1111] is public", !netaddr_host_is_internal("[2606:4700::1111]"));
    CHECK("unbracketed ::1 is not a URL host literal", !netaddr_host_is_literal("::1"));
    CHECK("10.0.0.1 is a literal", netaddr_host_is_literal("10.0.0.1"));
    CHECK("a name is not a literal", !netaddr_host_is_literal("example.com"));
}

static int contains(const unsigned char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

static void sealing(const char *dir)
{
    unsigned char key[HF_SEAL_KEY_BYTES], again[HF_SEAL_KEY_BYTES], other[HF_SEAL_KEY_BYTES];
    char path[512], plain[HF_WEBHOOK_SECRET_CHARS + 1], back[HF_WEBHOOK_SECRET_CHARS + 1];
    char err[256];
    struct webhook_endpoint e = {.id = "we_first"}, moved;
    struct stat st;
    FILE *f;

    snprintf(path, sizeof path, "%s/key", dir);
    CHECK("key file is created", webhook_key_load(path, 1, key, err, sizeof err) == 0);
    CHECK("key file is 0600", stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK("key file holds 32 bytes", st.st_size == HF_SEAL_KEY_BYTES);
    CHECK("key file reads back the same key",
          webhook_key_load(path, 1, again, err, sizeof err) == 0 && memcmp(key, again, sizeof key) == 0);

    webhook_secret_new(key, &e, plain);
    CHECK("secret starts whsec_", strncmp(plain, "whsec_", 6) == 0 &&
          strlen(plain) == HF_WEBHOOK_SECRET_CHARS);
    CHECK("sealed secret does not contain the secret",
          e.secret_len == HF_WEBHOOK_SECRET_CHARS + HF_SEAL_OVERHEAD &&
          !contains(e.secret, e.secret_len, plain + 6, 16));
    CHECK("secret opens", webhook_secret_open(key, &e, back) == 0 && strcmp(back, plain) == 0);
    moved = e;
    snprintf(moved.id, sizeof moved.id, "we_second");
    CHECK("a sealed secret moved to another endpoint does not open",
          webhook_secret_open(key, &moved, back) != 0);
    memset(other, 7, sizeof other);
    CHECK("another server key does not open it", webhook_secret_open(other, &e, back) != 0);
    moved = e;
    moved.secret[HF_SEAL_OVERHEAD + 3] ^= 1;
    CHECK("a tampered sealed secret does not open", webhook_secret_open(key, &moved, back) != 0);

    snprintf(path, sizeof path, "%s/short", dir);
    f = fopen(path, "w");
    fputs("too short", f);
    fclose(f);
    CHECK("a key file of the wrong size is refused",
          webhook_key_load(path, 1, key, err, sizeof err) != 0 && strstr(err, "32 bytes"));
    snprintf(path, sizeof path, "%s/never-created", dir);
    CHECK("a missing key file is not replaced when endpoints need the old one",
          webhook_key_load(path, 0, key, err, sizeof err) != 0 && strstr(err, "restore") &&
          access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/missing-dir/key", dir);
    CHECK("an uncreatable key file is refused with the reason",
          webhook_key_load(path, 1, key, err, sizeof err) != 0 && strstr(err, "missing-dir"));
}

static void signing(void)
{
    const char *body = "{\"id\":\"evt_1\"}";
    char sig[HF_SIGNATURE_MAX];

    /* the same HMAC as Python's hmac.new(secret, b"t.body", sha256) */
    webhook_sign("whsec_test_secret_value", 1700000000, body, strlen(body), sig);
    CHECK("signature header value", strcmp(sig, "t=1700000000,v1=d2c6951996317670fff4e13b249a9de8"
                                                "c263eb90912f329fb51e83badd48628c") == 0);
    webhook_sign("whsec_test_secret_valuf", 1700000000, body, strlen(body), sig);
    CHECK("another secret signs differently", !strstr(sig, "d2c69519963176"));
}

static void rolling_signature(void)
{
    const char *body = "{\"id\":\"evt_1\"}";
    char one[HF_SIGNATURE_MAX], other[HF_SIGNATURE_MAX], both[HF_ROLLING_SIGNATURE_MAX];

    webhook_sign("whsec_new", 1700000000, body, strlen(body), one);
    webhook_sign("whsec_old", 1700000000, body, strlen(body), other);
    webhook_sign_rolling("whsec_new", NULL, 1700000000, body, strlen(body), both);
    CHECK("without a previous secret: one v1", strcmp(both, one) == 0);
    webhook_sign_rolling("whsec_new", "whsec_old", 1700000000, body, strlen(body), both);
    CHECK("with one: the current v1, then the previous one, under one t=",
          strncmp(both, one, strlen(one)) == 0 && strcmp(both + strlen(one), strchr(other, ',')) == 0);
}

static void backoff(void)
{
    CHECK("first retry after the base delay", webhook_backoff_ms(10000, 1) == 10000);
    CHECK("then doubling", webhook_backoff_ms(10000, 2) == 20000 &&
          webhook_backoff_ms(10000, 5) == 160000);
    CHECK("never over an hour", webhook_backoff_ms(10000, 10) == 3600000 &&
          webhook_backoff_ms(10000, 1000) == 3600000);
    CHECK("a short base for tests doubles too", webhook_backoff_ms(50, 3) == 200);
}

static struct endpoint_due due(const char *tenant, int slots, int tenant_slots, int deleted)
{
    struct endpoint_due e = {.slots = slots, .tenant_slots = tenant_slots, .deleted = deleted};

    snprintf(e.tenant_id, sizeof e.tenant_id, "%s", tenant);
    return e;
}

static void plan(void)
{
    struct endpoint_due d[4];

    d[0] = due("tn_a", 4, 8, 0);
    d[1] = due("tn_a", 4, 8, 0);
    d[2] = due("tn_a", 4, 8, 0);
    d[3] = due("tn_b", 1, 8, 0);
    CHECK("a tenant's endpoints share its slots, the next tenant gets its own",
          webhook_plan_claims(d, 4, 32) == 3 && d[0].claim == 4 && d[1].claim == 4 &&
          d[2].claim == 0 && d[3].claim == 1);
    d[0] = due("tn_a", 4, 3, 0);
    d[1] = due("tn_a", 2, 3, 0);
    CHECK("and what it has in flight already",
          webhook_plan_claims(d, 2, 32) == 1 && d[0].claim == 3 && d[1].claim == 0);
    d[0] = due("tn_a", 4, 8, 0);
    d[1] = due("tn_b", 4, 8, 0);
    d[2] = due("tn_c", 4, 8, 0);
    CHECK("the room runs out in order of waiting",
          webhook_plan_claims(d, 3, 6) == 2 && d[0].claim == 4 && d[1].claim == 2 &&
          d[2].claim == 0);
    d[0] = due("tn_a", 0, 0, 1);
    d[1] = due("tn_a", 1, 8, 0);
    CHECK("a deleted endpoint gets nothing, and counts as work",
          webhook_plan_claims(d, 2, 32) == 2 && d[0].claim == 0 && d[1].claim == 1);
    CHECK("no room, no work", webhook_plan_claims(d, 1, 0) == 1 && d[0].claim == 0 &&
          webhook_plan_claims(d + 1, 1, 0) == 0 && d[1].claim == 0);
}

int main(void)
{
    char dir[] = "/tmp/hostflow-webhook-test-XXXXXX", cmd[64];

    if (token_init() != 0 || !mkdtemp(dir))
        return 1;
    addresses();
    sealing(dir);
    signing();
    rolling_signature();
    backoff();
    plan();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return CHECK_DONE();
}
