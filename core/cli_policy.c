/* cli_policy.c - `hostflow policy check` and `hostflow policy reload`. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_client.h"
#include "json.h"
#include "log.h"
#include "policy.h"

#define RELOAD_TIMEOUT_MS 10000

static const char policy_usage[] =
    "usage: hostflow policy check [FILE] [--policy-dir DIR]\n"
    "       hostflow policy reload [--admin-listen ADDR:PORT]\n"
    "\n"
    "check   compile FILE (default ./policies.lua if present, else\n"
    "        ./policies.example.lua) with the modules and tenants/ overrides\n"
    "        of DIR (default $HOSTFLOW_POLICY_DIR, else ./policies) and run\n"
    "        every example; exit 1 with file:line on the first failure.\n"
    "reload  ask the running server's admin listener (default\n"
    "        $HOSTFLOW_ADMIN_LISTEN, else 127.0.0.1:8081; token from\n"
    "        $HOSTFLOW_ADMIN_TOKEN) to reload; prints the active version or\n"
    "        why the new files were refused (the old policy keeps serving).\n";

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);

    return v && *v ? v : def;
}

static int check(int argc, char **argv)
{
    const char *file = NULL, *dir = env_or("HOSTFLOW_POLICY_DIR", "./policies");
    char msg[HF_POLICY_ERROR_MAX];

    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--policy-dir") == 0 && a + 1 < argc)
            dir = argv[++a];
        else if (strncmp(argv[a], "--policy-dir=", 13) == 0)
            dir = argv[a] + 13;
        else if (argv[a][0] == '-' || file) {
            fprintf(stderr, "hostflow: unexpected argument \"%s\"\n%s", argv[a], policy_usage);
            return 2;
        } else
            file = argv[a];
    }
    if (!file)
        file = env_or("HOSTFLOW_POLICY", access("./policies.lua", R_OK) == 0
                                            ? "./policies.lua" : "./policies.example.lua");
    log_setup(0, HF_LOG_WARN); /* the policy's own log lines stay quiet */
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

int cli_policy(int argc, char **argv)
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
    fprintf(stderr, "hostflow: unknown policy command \"%s\"\n%s", argv[0], policy_usage);
    return 2;
}
