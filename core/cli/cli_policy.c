/* cli_policy.c - `hostflow policy check|reload` (files, a running server)
 * and `policy publish|history|rollback` (versions in the store). */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin_client.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "policy.h"
#include "policy_source.h"
#include "policy_store.h"
#include "store.h"
#include "clock.h"

#define RELOAD_TIMEOUT_MS 10000

static const char policy_usage[] =
    "usage: hostflow policy check [FILE] [--policy-dir DIR]\n"
    "       hostflow policy reload [--admin-listen ADDR:PORT]\n"
    "       hostflow policy publish [FILE] [--policy-dir DIR] [--by WHO] [--db PATH]\n"
    "       hostflow policy history [--limit N] [--json] [--db PATH]\n"
    "       hostflow policy rollback VERSION [--by WHO] [--db PATH]\n"
    "\n"
    "check   compile FILE (default ./policies.lua if present, else\n"
    "        ./policies.example.lua) with the modules and tenants/ overrides\n"
    "        of DIR (default $HOSTFLOW_POLICY_DIR, else ./policies) and run\n"
    "        every example; exit 1 with file:line on the first failure.\n"
    "reload  ask the running server's admin listener (default\n"
    "        $HOSTFLOW_ADMIN_LISTEN, else 127.0.0.1:8081; token from\n"
    "        $HOSTFLOW_ADMIN_TOKEN) to reload; prints the active version or\n"
    "        why the new files were refused (the old policy keeps serving).\n"
    "publish run check, then store FILE and DIR as a version in the database\n"
    "        and make it active: every node serving with --policy-source store\n"
    "        switches to it within a second (or keeps its last good version\n"
    "        and reports why in GET /admin/v1/policy).\n"
    "history list published versions and rollbacks, newest first, with who\n"
    "        and when; * marks the active one.\n"
    "rollback make an earlier published VERSION active again (it is checked\n"
    "        first). WHO defaults to user@host.\n";

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);

    return v && *v ? v : def;
}

/* [FILE] [--policy-dir DIR] [--by WHO] (by NULL: not accepted); -1 after
 * printing the usage. */
static int files_args(int argc, char **argv, const char **file, const char **dir,
                      const char **by)
{
    *file = NULL;
    *dir = env_or("HOSTFLOW_POLICY_DIR", "./policies");
    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--policy-dir") == 0 && a + 1 < argc)
            *dir = argv[++a];
        else if (strncmp(argv[a], "--policy-dir=", 13) == 0)
            *dir = argv[a] + 13;
        else if (by && strcmp(argv[a], "--by") == 0 && a + 1 < argc)
            *by = argv[++a];
        else if (argv[a][0] == '-' || *file) {
            fprintf(stderr, "hostflow: unexpected argument \"%s\"\n%s", argv[a], policy_usage);
            return -1;
        } else
            *file = argv[a];
    }
    if (!*file)
        *file = env_or("HOSTFLOW_POLICY", access("./policies.lua", R_OK) == 0
                                             ? "./policies.lua" : "./policies.example.lua");
    log_setup(0, HF_LOG_WARN); /* the policy's own log lines stay quiet */
    return 0;
}

static int check(int argc, char **argv)
{
    const char *file, *dir;
    char msg[HF_POLICY_ERROR_MAX];

    if (files_args(argc, argv, &file, &dir, NULL) != 0)
        return 2;
    if (policy_check_files(file, dir, msg, sizeof msg) != 0) {
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    printf("ok: %s\n", msg);
    return 0;
}

static int reload(int argc, char **argv)
{
    const char *listen = env_or("HOSTFLOW_ADMIN_LISTEN", "127.0.0.1:8081");
    struct json_t *o = NULL;
    const char *version, *message;
    char err[512], *body = NULL;
    int status, rc = 1;

    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--admin-listen") == 0 && a + 1 < argc)
            listen = argv[++a];
        else if (strncmp(argv[a], "--admin-listen=", 15) == 0)
            listen = argv[a] + 15;
        else {
            fprintf(stderr, "hostflow: unexpected argument \"%s\"\n%s", argv[a], policy_usage);
            return 2;
        }
    }
    if (admin_client_request(listen, "POST", "/admin/v1/policy/reload",
                             getenv("HOSTFLOW_ADMIN_TOKEN"), RELOAD_TIMEOUT_MS,
                             &status, &body, err, sizeof err) != 0) {
        fprintf(stderr, "hostflow: %s\n", err);
        return 1;
    }
    if (json_parse_body(body, strlen(body), &o, err, sizeof err) != 0) {
        fprintf(stderr, "hostflow: unexpected answer (HTTP %d) from %s\n", status, listen);
    } else if (status == 200 && json_member_string(o, "version", &version) == 0) {
        printf("policy version %s active\n", version);
        rc = 0;
    } else if (json_member_string(o, "message", &message) == 0) {
        fprintf(stderr, "hostflow: reload refused (HTTP %d): %s\n", status, message);
    } else {
        fprintf(stderr, "hostflow: reload failed (HTTP %d)\n", status);
    }
    json_free(o);
    free(body);
    return rc;
}

/* Who publishes: --by when given, else "user@host". */
static void actor_of(const char *by, char *out, size_t n)
{
    const char *user = getenv("SUDO_USER");
    struct passwd *pw;
    char host[64] = "localhost";

    if (by) {
        snprintf(out, n, "%s", by);
        return;
    }
    if (!user || !*user)
        user = getenv("USER");
    if ((!user || !*user) && (pw = getpwuid(getuid())))
        user = pw->pw_name;
    gethostname(host, sizeof host - 1);
    snprintf(out, n, "%s@%s", user && *user ? user : "unknown", host);
}

/* The active activation's version, "" when none. */
static int active_version(struct store *s, char *out, size_t n)
{
    struct policy_activation act;
    int rc = store_policy_active(s, &act);

    snprintf(out, n, "%s", rc == 0 ? act.version : "");
    return rc == HF_ENOTFOUND ? 0 : rc;
}

static int publish(const char *db, int argc, char **argv)
{
    const char *file, *dir, *by = NULL;
    char msg[HF_POLICY_ERROR_MAX], actor[HF_ACTOR_MAX], version[24], active[24];
    struct policy_activation act;
    struct policy_source *src;
    char *bundle = NULL;
    size_t len;
    struct store *s;
    int rc;

    if (files_args(argc, argv, &file, &dir, &by) != 0)
        return 2;
    if (policy_source_read(file, dir, &src, msg, sizeof msg) != 0) {
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    snprintf(version, sizeof version, "%s", src->version);
    if (policy_source_encode(src, &bundle, &len) != 0) {
        policy_source_free(src);
        fprintf(stderr, "hostflow: out of memory\n");
        return 1;
    }
    /* the same gate as a reload: nothing that fails here is published */
    if (policy_check_source(src, msg, sizeof msg) != 0) {
        fprintf(stderr, "%s\nhostflow: not published\n", msg);
        free(bundle);
        return 1;
    }
    if (!(s = cli_open_store(db))) {
        free(bundle);
        return 1;
    }
    rc = active_version(s, active, sizeof active);
    if (rc == 0 && strcmp(active, version) == 0) {
        printf("policy version %s is already active\n", version);
    } else if (rc == 0) {
        actor_of(by, actor, sizeof actor);
        rc = store_policy_publish(s, version, bundle, len, actor, clock_now_s(), &act);
        if (rc == 0)
            printf("published policy version %s (activation %lld by %s); nodes with "
                   "--policy-source store switch to it within a second\n", version,
                   act.seq, act.actor);
    }
    if (rc != 0)
        fprintf(stderr, "hostflow: cannot publish (%s)\n", hf_err_code(rc));
    store_close(s);
    free(bundle);
    return rc == 0 ? 0 : 1;
}

static int rollback(const char *db, int argc, char **argv)
{
    const char *version = NULL, *by = NULL;
    char msg[HF_POLICY_ERROR_MAX], actor[HF_ACTOR_MAX], label[48], active[24];
    struct policy_activation act;
    struct policy_source *src;
    char *bundle = NULL;
    size_t len;
    struct store *s;
    int rc;

    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--by") == 0 && a + 1 < argc)
            by = argv[++a];
        else if (argv[a][0] == '-' || version)
            return cli_usage(policy_usage, 2);
        else
            version = argv[a];
    }
    if (!version)
        return cli_usage(policy_usage, 2);
    log_setup(0, HF_LOG_WARN);
    if (!(s = cli_open_store(db)))
        return 1;
    rc = store_policy_bundle(s, version, &bundle, &len);
    if (rc == HF_ENOTFOUND) {
        fprintf(stderr, "hostflow: no published policy version %s (see hostflow policy "
                "history)\n", version);
        store_close(s);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "hostflow: cannot read version %s (%s)\n", version, hf_err_code(rc));
        goto out;
    }
    policy_store_label(version, label, sizeof label);
    /* checked again: this binary may judge it differently than the one
     * that published it */
    if ((rc = policy_source_decode(bundle, len, label, &src, msg, sizeof msg)) == 0 &&
        strcmp(src->version, version) != 0) {
        /* every node would refuse it at once: a damaged or edited row */
        snprintf(msg, sizeof msg, "hostflow: the stored texts of %s hash to %s", version,
                 src->version);
        policy_source_free(src);
        rc = HF_EPOLICY;
    }
    if (rc != 0 || (rc = policy_check_source(src, msg, sizeof msg)) != 0) {
        fprintf(stderr, "%s\nhostflow: version %s does not pass; not activated\n", msg,
                version);
        goto out;
    }
    if ((rc = active_version(s, active, sizeof active)) == 0 && strcmp(active, version) == 0) {
        printf("policy version %s is already active\n", version);
        goto out;
    }
    actor_of(by, actor, sizeof actor);
    if (rc == 0)
        rc = store_policy_rollback(s, version, actor, clock_now_s(), &act);
    if (rc == 0)
        printf("policy version %s active again (activation %lld by %s)\n", version,
               act.seq, act.actor);
    else
        fprintf(stderr, "hostflow: cannot roll back (%s)\n", hf_err_code(rc));
out:
    free(bundle);
    store_close(s);
    return rc == 0 ? 0 : 1;
}

static int history(const char *db, int argc, char **argv)
{
    struct policy_activation *rows;
    long limit = 20;
    int json = 0, rc;
    struct store *s;
    size_t n;

    for (int a = 0; a < argc; a++) {
        char *end;

        if (strcmp(argv[a], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[a], "--limit") == 0 && a + 1 < argc) {
            limit = strtol(argv[++a], &end, 10);
            if (*end || limit < 1 || limit > 1000) {
                fprintf(stderr, "hostflow: --limit must be 1 to 1000\n");
                return 2;
            }
        } else {
            return cli_usage(policy_usage, 2);
        }
    }
    if (!(rows = calloc((size_t)limit, sizeof *rows)))
        return 1;
    if (!(s = cli_open_store(db))) {
        free(rows);
        return 1;
    }
    rc = store_policy_history(s, (size_t)limit, rows, &n);
    store_close(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct policy_activation *r = &rows[i];
        char when[32];
        time_t t = (time_t)r->at;

        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        if (json) {
            struct json_t *o = json_new_object();

            json_put_int(o, "activation", r->seq);
            json_put_string(o, "version", r->version);
            json_put_string(o, "action", r->action);
            json_put_string(o, "by", r->actor);
            json_put_int(o, "at", r->at);
            json_put_bool(o, "active", i == 0);
            cli_print_json(o);
        } else {
            printf("%c %6lld  %s  %-8s  %s  %s\n", i == 0 ? '*' : ' ', r->seq, when,
                   r->action, r->version, r->actor);
        }
    }
    if (rc != 0)
        fprintf(stderr, "hostflow: cannot read the policy history (%s)\n", hf_err_code(rc));
    else if (n == 0 && !json)
        fprintf(stderr, "no policy version was ever published to this database\n");
    free(rows);
    return rc == 0 ? 0 : 1;
}

int cli_policy(const char *db, int argc, char **argv)
{
    if (argc < 1)
        return fputs(policy_usage, stderr), 2;
    for (int a = 0; a < argc; a++)
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0)
            return fputs(policy_usage, stdout), 0;
    if (strcmp(argv[0], "check") == 0)
        return check(argc - 1, argv + 1);
    if (strcmp(argv[0], "reload") == 0)
        return reload(argc - 1, argv + 1);
    if (strcmp(argv[0], "publish") == 0)
        return publish(db, argc - 1, argv + 1);
    if (strcmp(argv[0], "history") == 0)
        return history(db, argc - 1, argv + 1);
    if (strcmp(argv[0], "rollback") == 0)
        return rollback(db, argc - 1, argv + 1);
    fprintf(stderr, "hostflow: unknown policy command \"%s\"\n%s", argv[0], policy_usage);
    return 2;
}
