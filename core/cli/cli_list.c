/* cli_list.c - what the store holds, for the operator: tenant list, key
 * list TENANT_ID, contractor list TENANT_ID. One line a row (tab-separated
 * text, or one JSON object with --json), oldest first. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "json.h"
#include "store.h"

struct listing {
    int json;
    size_t rows;
};

/* t as "2026-12-07T20:00:00Z" into out (21 bytes). */
static const char *iso_time(long long t, char out[21])
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 21, "%lld", t);
    return out;
}

static int print_tenant_row(void *arg, const struct tenant *t)
{
    struct listing *l = arg;
    char when[21];

    l->rows++;
    if (l->json) {
        struct json_t *o = json_new_object();
        json_put_string(o, "id", t->id);
        json_put_string(o, "name", t->name);
        json_put_int(o, "created", t->created);
        cli_print_json(o);
    } else {
        printf("%s\t%s\t%s\n", t->id, iso_time(t->created, when), t->name);
    }
    return 0;
}

static int print_key_row(void *arg, const struct api_key *k)
{
    struct listing *l = arg;
    char when[21], revoked[21];

    l->rows++;
    if (l->json) {
        struct json_t *o = json_new_object();
        json_put_string(o, "id", k->id);
        json_put_string(o, "tenant", k->tenant_id);
        json_put_string(o, "mode", k->mode);
        json_put_string(o, "prefix", k->prefix);
        json_put_int(o, "created", k->created);
        if (k->revoked_at)
            json_put_int(o, "revoked_at", k->revoked_at);
        else
            json_put_null(o, "revoked_at");
        cli_print_json(o);
    } else {
        printf("%s\t%s\t%s…\t%s\t%s%s\n", k->id, k->mode, k->prefix,
               iso_time(k->created, when), k->revoked_at ? "revoked " : "active",
               k->revoked_at ? iso_time(k->revoked_at, revoked) : "");
    }
    return 0;
}

static int print_contractor_row(void *arg, const struct contractor *c)
{
    struct listing *l = arg;
    char when[21];

    l->rows++;
    if (l->json) {
        struct json_t *o = json_new_object();
        json_put_string(o, "id", c->id);
        json_put_string(o, "tenant", c->tenant_id);
        json_put_string(o, "name", c->name[0] ? c->name : NULL);
        json_put_int(o, "created", c->created);
        cli_print_json(o);
    } else {
        printf("%s\t%s\t%s\n", c->id, iso_time(c->created, when), c->name[0] ? c->name : "-");
    }
    return 0;
}

/* [TENANT_ID] [--json] after "list": 0, or 2 (usage) for anything else. */
static int list_args(int argc, char **argv, int need_tenant, const char **tenant, int *json)
{
    *tenant = NULL;
    *json = 0;
    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--json") == 0)
            *json = 1;
        else if (argv[a][0] == '-' || *tenant || !need_tenant)
            return 2;
        else
            *tenant = argv[a];
    }
    return need_tenant && !*tenant ? 2 : 0;
}

/* The end of a listing: its exit status, and a word when it was empty. */
static int finish(const struct listing *l, int rc, const char *none)
{
    if (rc != 0) {
        fprintf(stderr, "hostflow: the database could not be read (see the log line above)\n");
        return 1;
    }
    if (!l->json && l->rows == 0)
        printf("%s\n", none);
    return 0;
}

int cli_tenant_list(struct store *s, int argc, char **argv, const char *usage)
{
    struct listing l = {0};
    const char *unused;

    if (list_args(argc, argv, 0, &unused, &l.json) != 0)
        return cli_usage(usage, 2);
    return finish(&l, store_tenant_each(s, print_tenant_row, &l), "no tenants");
}

/* Keys and contractors of a tenant: an unknown tenant is an error, not an
 * empty list. */
static int tenant_known(struct store *s, const char *id)
{
    struct tenant *t = calloc(1, sizeof *t);
    int rc = t ? store_tenant_get(s, id, t) : HF_ENOMEM;

    free(t);
    if (rc == HF_ENOTFOUND)
        fprintf(stderr, "hostflow: no tenant with id %s\n", id);
    else if (rc != 0)
        fprintf(stderr, "hostflow: the database could not be read (see the log line above)\n");
    return rc == 0;
}

int cli_key_list(struct store *s, int argc, char **argv, const char *usage)
{
    struct listing l = {0};
    const char *tenant;

    if (list_args(argc, argv, 1, &tenant, &l.json) != 0)
        return cli_usage(usage, 2);
    if (!tenant_known(s, tenant))
        return 1;
    return finish(&l, store_key_each(s, tenant, print_key_row, &l), "no keys");
}

int cli_contractor_list(struct store *s, int argc, char **argv, const char *usage)
{
    struct listing l = {0};
    const char *tenant;

    if (list_args(argc, argv, 1, &tenant, &l.json) != 0)
        return cli_usage(usage, 2);
    if (!tenant_known(s, tenant))
        return 1;
    return finish(&l, store_contractor_each(s, tenant, print_contractor_row, &l),
                  "no contractors");
}
