/* cli.c - tenant, key and contractor commands on the store. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "json.h"
#include "store.h"
#include "token.h"
#include "url.h"
#include "clock.h"

#define KEY_PREFIX_SHOWN 12   /* "hf_live_" + 4 characters */

static const char tenant_usage[] =
    "usage: hostflow tenant create NAME [--redirect-host HOST]... [--json]\n"
    "       hostflow tenant set-redirect-hosts TENANT_ID [HOST]...\n"
    "       hostflow tenant show TENANT_ID [--json]\n"
    "       hostflow tenant list [--json]\n"
    "\n"
    "Tenants own API keys, contractors and sessions. HOST is an exact host\n"
    "name (no scheme, port or path) that return_url may point to; the\n"
    "allowlist is read on every request, so changes apply without restart.\n"
    "Every command takes --db PATH (default $HOSTFLOW_DB, else ./hostflow.db).\n";

static const char key_usage[] =
    "usage: hostflow key create TENANT_ID [--test] [--json]\n"
    "       hostflow key revoke KEY_ID\n"
    "       hostflow key list TENANT_ID [--json]\n"
    "\n"
    "create prints the secret once; only its hash is stored. --test keys make\n"
    "test-mode sessions (test processor). revoke takes effect on the next\n"
    "request. list shows each key's id, mode, the start of its secret and\n"
    "whether it is revoked. Every command takes --db PATH.\n";

static const char contractor_usage[] =
    "usage: hostflow contractor create TENANT_ID [--name NAME] [--json]\n"
    "       hostflow contractor list TENANT_ID [--json]\n"
    "\n"
    "create makes a contractor under the tenant and prints its id (cn_...);\n"
    "list shows the tenant's contractors, oldest first.\n"
    "Every command takes --db PATH.\n";

int cli_usage(const char *text, int status)
{
    fputs(text, status == 0 ? stdout : stderr);
    return status;
}

int cli_is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

struct store *cli_open_store(const char *db_path)
{
    struct store *s;
    char err[512];

    if (token_init() != 0) {
        fprintf(stderr, "hostflow: cannot initialise the random number generator\n");
        return NULL;
    }
    if (store_open(db_path, &s, err, sizeof err) != 0) {
        fprintf(stderr, "hostflow: %s\n", err);
        return NULL;
    }
    return s;
}

void cli_print_json(struct json_t *o)
{
    char *s = json_encode(o);

    puts(s);
    free(s);
    json_free(o);
}

/* A name to keep and show: UTF-8 (as JSON output needs), no control
 * characters (as one line of text output needs), 1 to HF_NAME_MAX bytes. */
static int name_ok(const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return n > 0 && n <= HF_NAME_MAX && json_utf8_ok(name, n);
}

/* Lower-case host in place and check it is a bare host name; 0 or -1. */
static int normalise_host(char *host)
{
    char buf[HF_URL_HOST_MAX + 16];
    struct url u;

    for (char *p = host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strlen(host) > HF_URL_HOST_MAX + 2)
        return -1;
    snprintf(buf, sizeof buf, "https://%s", host);
    if (url_parse(buf, strlen(buf), &u) != URL_OK || u.port_explicit ||
        u.path[0] || u.has_query || strcmp(u.host, host) != 0) {
        fprintf(stderr, "hostflow: \"%s\" is not a host name (give the host "
                "alone: no scheme, port, path or wildcard)\n", host);
        return -1;
    }
    return 0;
}

static struct json_t *tenant_json(const struct tenant *t)
{
    struct json_t *o = json_new_object(), *hosts = json_new_array();

    json_put_string(o, "id", t->id);
    json_put_string(o, "name", t->name);
    for (size_t i = 0; i < t->n_hosts; i++)
        json_push_string(hosts, t->hosts[i]);
    json_put(o, "hosted_flow_allowed_redirect_hosts", hosts);
    json_put_int(o, "created", t->created);
    return o;
}

static void print_tenant(const struct tenant *t)
{
    printf("tenant %s (%s)\nredirect hosts:", t->id, t->name);
    if (t->n_hosts == 0)
        printf(" none (every return_url is refused until you add one)");
    for (size_t i = 0; i < t->n_hosts; i++)
        printf(" %s", t->hosts[i]);
    printf("\n");
}

static int not_found(const char *what, const char *id)
{
    fprintf(stderr, "hostflow: no %s with id %s\n", what, id);
    return 1;
}

static int store_failed(void)
{
    fprintf(stderr, "hostflow: the database refused the change (see the log line above)\n");
    return 1;
}

static int tenant_create(struct store *s, int argc, char **argv)
{
    const char *name = NULL;
    char **hosts = calloc((size_t)argc + 1, sizeof *hosts);
    struct tenant *t = calloc(1, sizeof *t);
    size_t n = 0;
    int json = 0, rc = 2;

    if (!hosts || !t) {
        fprintf(stderr, "hostflow: out of memory\n");
        rc = 1;
        goto out;
    }
    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[a], "--redirect-host") == 0 && a + 1 < argc) {
            hosts[n++] = argv[++a];
        } else if (strncmp(argv[a], "--redirect-host=", 16) == 0) {
            hosts[n++] = argv[a] + 16;
        } else if (argv[a][0] == '-' || name) {
            fprintf(stderr, "hostflow: unexpected argument \"%s\"\n%s", argv[a], tenant_usage);
            goto out;
        } else {
            name = argv[a];
        }
    }
    if (!name || !name_ok(name)) {
        fprintf(stderr, "hostflow: tenant create needs a NAME of 1 to %d bytes of UTF-8 "
                "text without control characters\n%s", HF_NAME_MAX, tenant_usage);
        goto out;
    }
    rc = 1;
    if (n > HF_HOSTS_MAX) {
        fprintf(stderr, "hostflow: at most %d redirect hosts\n", HF_HOSTS_MAX);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (normalise_host(hosts[i]) != 0)
            goto out;
    if (store_tenant_create(s, name, (const char *const *)hosts, n, t) != 0) {
        rc = store_failed();
        goto out;
    }
    if (json) {
        cli_print_json(tenant_json(t));
    } else {
        printf("created ");
        print_tenant(t);
    }
    rc = 0;
out:
    free(hosts);
    free(t);
    return rc;
}

static int tenant_set_hosts(struct store *s, int argc, char **argv)
{
    struct tenant *t;
    int rc;

    if (argc < 1 || argv[0][0] == '-')
        return cli_usage(tenant_usage, 2);
    if (argc - 1 > HF_HOSTS_MAX) {
        fprintf(stderr, "hostflow: at most %d redirect hosts\n", HF_HOSTS_MAX);
        return 1;
    }
    for (int a = 1; a < argc; a++)
        if (normalise_host(argv[a]) != 0)
            return 1;
    rc = store_tenant_set_hosts(s, argv[0], (const char *const *)argv + 1,
                                (size_t)argc - 1);
    if (rc == HF_ENOTFOUND)
        return not_found("tenant", argv[0]);
    if (rc != 0)
        return store_failed();
    if (!(t = calloc(1, sizeof *t)) || store_tenant_get(s, argv[0], t) != 0) {
        free(t);
        return store_failed();
    }
    printf("updated ");
    print_tenant(t);
    free(t);
    return 0;
}

static int tenant_show(struct store *s, int argc, char **argv)
{
    const char *id = NULL;
    struct tenant *t;
    int json = 0, rc;

    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--json") == 0)
            json = 1;
        else if (argv[a][0] == '-' || id)
            return cli_usage(tenant_usage, 2);
        else
            id = argv[a];
    }
    if (!id)
        return cli_usage(tenant_usage, 2);
    if (!(t = calloc(1, sizeof *t)))
        return 1;
    rc = store_tenant_get(s, id, t);
    if (rc == 0) {
        if (json)
            cli_print_json(tenant_json(t));
        else
            print_tenant(t);
    }
    free(t);
    if (rc == HF_ENOTFOUND)
        return not_found("tenant", id);
    return rc == 0 ? 0 : store_failed();
}

int cli_tenant(const char *db_path, int argc, char **argv)
{
    struct store *s;
    int rc;

    if (argc < 1 || cli_is_help(argv[0]))
        return cli_usage(tenant_usage, argc < 1 ? 2 : 0);
    for (int a = 1; a < argc; a++)
        if (cli_is_help(argv[a]))
            return cli_usage(tenant_usage, 0);
    if (strcmp(argv[0], "create") != 0 && strcmp(argv[0], "set-redirect-hosts") != 0 &&
        strcmp(argv[0], "show") != 0 && strcmp(argv[0], "list") != 0) {
        fprintf(stderr, "hostflow: unknown tenant command \"%s\"\n%s", argv[0], tenant_usage);
        return 2;
    }
    if (!(s = cli_open_store(db_path)))
        return 1;
    if (strcmp(argv[0], "create") == 0)
        rc = tenant_create(s, argc - 1, argv + 1);
    else if (strcmp(argv[0], "set-redirect-hosts") == 0)
        rc = tenant_set_hosts(s, argc - 1, argv + 1);
    else if (strcmp(argv[0], "list") == 0)
        rc = cli_tenant_list(s, argc - 1, argv + 1, tenant_usage);
    else
        rc = tenant_show(s, argc - 1, argv + 1);
    store_close(s);
    return rc;
}

static int key_create(struct store *s, int argc, char **argv)
{
    const char *tenant = NULL, *mode = "live";
    char secret[8 + HF_TOKEN_CHARS + 1], token[HF_TOKEN_CHARS + 1];
    char prefix[KEY_PREFIX_SHOWN + 1];
    unsigned char hash[HF_HASH_BYTES];
    struct api_key k;
    int json = 0, rc;

    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--json") == 0)
            json = 1;
        else if (strcmp(argv[a], "--test") == 0)
            mode = "test";
        else if (argv[a][0] == '-' || tenant)
            return cli_usage(key_usage, 2);
        else
            tenant = argv[a];
    }
    if (!tenant)
        return cli_usage(key_usage, 2);
    token_mint(token);
    snprintf(secret, sizeof secret, "hf_%s_%s", mode, token);
    token_wipe(token, sizeof token);
    memcpy(prefix, secret, KEY_PREFIX_SHOWN);
    prefix[KEY_PREFIX_SHOWN] = '\0';
    token_hash(secret, strlen(secret), hash);
    rc = store_key_create(s, tenant, mode, hash, prefix, &k);
    if (rc == 0) {
        if (json) {
            struct json_t *o = json_new_object();
            char *line;

            json_put_string(o, "id", k.id);
            json_put_string(o, "tenant", k.tenant_id);
            json_put_string(o, "mode", k.mode);
            json_put_string(o, "secret", secret);
            line = json_encode(o);
            puts(line);
            token_wipe(line, strlen(line));
            free(line);
            json_free(o);
        } else {
            printf("created %s key %s for %s\nsecret: %s\n"
                   "(shown once: only its hash is stored)\n",
                   k.mode, k.id, k.tenant_id, secret);
        }
    }
    token_wipe(secret, sizeof secret);
    if (rc == HF_ENOTFOUND)
        return not_found("tenant", tenant);
    return rc == 0 ? 0 : store_failed();
}

int cli_key(const char *db_path, int argc, char **argv)
{
    struct store *s;
    int rc;

    if (argc < 1 || cli_is_help(argv[0]))
        return cli_usage(key_usage, argc < 1 ? 2 : 0);
    for (int a = 1; a < argc; a++)
        if (cli_is_help(argv[a]))
            return cli_usage(key_usage, 0);
    if (strcmp(argv[0], "create") != 0 && strcmp(argv[0], "revoke") != 0 &&
        strcmp(argv[0], "list") != 0) {
        fprintf(stderr, "hostflow: unknown key command \"%s\"\n%s", argv[0], key_usage);
        return 2;
    }
    if (strcmp(argv[0], "revoke") == 0 && (argc != 2 || argv[1][0] == '-'))
        return cli_usage(key_usage, 2);
    if (!(s = cli_open_store(db_path)))
        return 1;
    if (strcmp(argv[0], "create") == 0) {
        rc = key_create(s, argc - 1, argv + 1);
    } else if (strcmp(argv[0], "list") == 0) {
        rc = cli_key_list(s, argc - 1, argv + 1, key_usage);
    } else {
        rc = store_key_revoke(s, argv[1], clock_now_s());
        if (rc == 0)
            printf("revoked key %s\n", argv[1]);
        rc = rc == HF_ENOTFOUND ? not_found("key", argv[1]) : rc == 0 ? 0 : store_failed();
    }
    store_close(s);
    return rc;
}

int cli_contractor(const char *db_path, int argc, char **argv)
{
    const char *tenant = NULL, *name = NULL;
    struct contractor c;
    struct store *s;
    int json = 0, rc;

    if (argc < 1 || cli_is_help(argv[0]))
        return cli_usage(contractor_usage, argc < 1 ? 2 : 0);
    if (strcmp(argv[0], "list") == 0) {
        for (int a = 1; a < argc; a++)
            if (cli_is_help(argv[a]))
                return cli_usage(contractor_usage, 0);
        if (!(s = cli_open_store(db_path)))
            return 1;
        rc = cli_contractor_list(s, argc - 1, argv + 1, contractor_usage);
        store_close(s);
        return rc;
    }
    if (strcmp(argv[0], "create") != 0) {
        fprintf(stderr, "hostflow: unknown contractor command \"%s\"\n%s", argv[0],
                contractor_usage);
        return 2;
    }
    for (int a = 1; a < argc; a++) {
        if (cli_is_help(argv[a]))
            return cli_usage(contractor_usage, 0);
        if (strcmp(argv[a], "--json") == 0)
            json = 1;
        else if (strcmp(argv[a], "--name") == 0 && a + 1 < argc)
            name = argv[++a];
        else if (strncmp(argv[a], "--name=", 7) == 0)
            name = argv[a] + 7;
        else if (argv[a][0] == '-' || tenant)
            return cli_usage(contractor_usage, 2);
        else
            tenant = argv[a];
    }
    if (!tenant)
        return cli_usage(contractor_usage, 2);
    if (name && !name_ok(name)) {
        fprintf(stderr, "hostflow: --name must be 1 to %d bytes of UTF-8 text without "
                "control characters\n", HF_NAME_MAX);
        return 2;
    }
    if (!(s = cli_open_store(db_path)))
        return 1;
    rc = store_contractor_create(s, tenant, name, &c);
    store_close(s);
    if (rc == HF_ENOTFOUND)
        return not_found("tenant", tenant);
    if (rc != 0)
        return store_failed();
    if (json) {
        struct json_t *o = json_new_object();
        json_put_string(o, "id", c.id);
        json_put_string(o, "tenant", c.tenant_id);
        if (name)
            json_put_string(o, "name", name);
        cli_print_json(o);
    } else {
        printf("created contractor %s for %s\n", c.id, c.tenant_id);
    }
    return 0;
}
