/* main.c - command dispatch, start-up and shutdown order, signals. The only
 * place that exits. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "api.h"
#include "cli.h"
#include "config.h"
#include "err.h"
#include "expiry.h"
#include "fdio.h"
#include "hosted.h"
#include "http.h"
#include "httpc.h"
#include "json.h"
#include "log.h"
#include "policy.h"
#include "policy_store.h"
#include "policy_watch.h"
#include "processor.h"
#include "ratelimit.h"
#include "store.h"
#include "token.h"
#include "version.h"
#include "webhook.h"
#include "webhook_secret.h"
#include "worker.h"

#define HF_SHUTDOWN_MAX_S 30 /* longest drain before the process ends anyway */


static const char usage[] =
    "usage: hostflow COMMAND [ARGS] [--db PATH]\n"
    "\n"
    "commands:\n"
    "  serve                       run the HTTP server (see serve --help)\n"
    "  tenant create|set-redirect-hosts|show\n"
    "  key create|revoke\n"
    "  contractor create\n"
    "  policy check|reload|publish|history|rollback\n"
    "  events list|retry           webhook events and their deliveries\n"
    "  --version                   print the version\n"
    "\n"
    "Every command takes --db PATH (default $HOSTFLOW_DB, else ./hostflow.db)\n"
    "and --help. A postgres:// or postgresql:// URL instead of PATH uses that\n"
    "PostgreSQL database.\n";

static const char serve_usage[] =
    "usage: hostflow serve [--listen ADDR:PORT] [--admin-listen ADDR:PORT]\n"
    "                      [--policy FILE] [--policy-dir DIR] [--policy-source file|store]\n"
    "                      [--public-url URL] [--port-file FILE]\n"
    "                      [--threads N] [--keep-alive-ms MS] [--session-ttl SECONDS]\n"
    "                      [--log-format json|text] [--synchronous normal|full]\n"
    "                      [--webhook-key-file FILE] [--webhook-timeout-ms MS]\n"
    "                      [--webhook-retry-base-ms MS] [--webhook-retry-for SECONDS]\n"
    "                      [--checkout-public-key pk_…] [--checkout-secret-key-file FILE]\n"
    "                      [--checkout-base-url URL] [--checkout-frames-url URL]\n"
    "                      [--checkout-timeout-ms MS] [--db PATH]\n"
    "\n"
    "  --listen        public API listener (default 127.0.0.1:8080); plain HTTP,\n"
    "                  terminate TLS in front of hostflow; port 0 takes a free\n"
    "                  one (see --port-file and the \"listening on\" log line)\n"
    "  --admin-listen  admin listener (default 127.0.0.1:8081); port 0 as above\n"
    "  --port-file     once both listeners are up, write there (atomically)\n"
    "                  {\"public\":\"ADDR:PORT\",\"admin\":\"ADDR:PORT\"} with the\n"
    "                  ports bound\n"
    "  --policy        policy file (default ./policies.lua if present, else\n"
    "                  ./policies.example.lua)\n"
    "  --policy-dir    policy modules and tenants/ overrides (default ./policies)\n"
    "  --policy-source file (default: --policy and --policy-dir, reloaded when\n"
    "                  they change) or store (the version made active by\n"
    "                  hostflow policy publish/rollback, followed within 1 s)\n"
    "  --public-url    base of the session URLs contractors open\n"
    "                  (default http://<listen>, with the port bound)\n"
    "  --threads       worker threads = simultaneous connections (default 256);\n"
    "                  a connection holds its thread while it stays open\n"
    "  --keep-alive-ms close a keep-alive connection idle this long (default\n"
    "                  2000; 0 disables keep-alive)\n"
    "  --session-ttl   lifetime of new sessions in seconds (default 1800)\n"
    "  --rate-create-key, --rate-create-ip\n"
    "                  session creations per second per API key and per client\n"
    "                  address (default 100 each, bursts of twice that; 0 = no\n"
    "                  limit); over it: 429 with Retry-After, unless the\n"
    "                  policy's check_tenant decides otherwise (ctx.rate)\n"
    "  --rate-redeem-ip\n"
    "                  hosted-link requests per second per client address\n"
    "                  (default 20, bursts of 40)\n"
    "  --log-format    json or text (default text), on stderr\n"
    "  --synchronous   normal (default: a commit survives a crash of hostflow)\n"
    "                  or full (it also survives power loss; slower)\n"
    "  --webhook-key-file\n"
    "                  32-byte key that seals webhook signing secrets in the\n"
    "                  database; created (0600) when missing (default\n"
    "                  <db>.webhook-key, ./hostflow.webhook-key for a database\n"
    "                  URL); every node of a fleet needs the same one\n"
    "  --webhook-timeout-ms\n"
    "                  one delivery attempt, connecting included (default 10000)\n"
    "  --webhook-retry-base-ms\n"
    "                  delay before the first retry (default 10000); it doubles\n"
    "                  per attempt up to an hour, with jitter\n"
    "  --webhook-retry-for\n"
    "                  seconds after its event a delivery is given up as failed\n"
    "                  (default 259200, three days)\n"
    "\n"
    "Live cards (Checkout.com; without both keys live card pages answer 503):\n"
    "  --checkout-secret-key-file\n"
    "                  file holding the secret key (sk_…); or set\n"
    "                  HOSTFLOW_CHECKOUT_SECRET_KEY. --checkout-secret-key also\n"
    "                  works but shows the key to anyone running ps\n"
    "  --checkout-public-key\n"
    "                  public key (pk_…), handed to Frames in the card page\n"
    "  --checkout-base-url\n"
    "                  API base (default https://api.checkout.com; sandbox\n"
    "                  https://api.sandbox.checkout.com, or your account's\n"
    "                  https://{prefix}.api[.sandbox].checkout.com)\n"
    "  --checkout-frames-url\n"
    "                  the Frames script (default\n"
    "                  https://cdn.checkout.com/js/framesv2.min.js)\n"
    "  --checkout-timeout-ms\n"
    "                  one API exchange, connecting included (default 10000)\n"
    "\n"
    "Every flag can also be set as HOSTFLOW_<FLAG> (e.g. HOSTFLOW_LISTEN).\n"
    "HOSTFLOW_ADMIN_TOKEN, when set, is required as a bearer token on the\n"
    "admin listener (except /healthz and /readyz); set but empty, serve\n"
    "refuses to start.\n"
    "The policy reloads on SIGHUP, when its files change, and on\n"
    "POST /admin/v1/policy/reload. SIGTERM or SIGINT stops accepting,\n"
    "finishes in-flight requests and exits 0 (within 30 s); a second one\n"
    "exits at once.\n";

/* Check the database before accepting any connection (and migrate it), so
 * a bad path stops start-up with its reason. */
static int preflight(const struct config *cfg, struct webhook_endpoint *newest,
                     int *has_endpoints)
{
    struct store *s;
    char err[1024];
    int rc;

    if (token_init() != 0) {
        log_msg(HF_LOG_ERROR, "cannot initialise the random number generator");
        return -1;
    }
    if (store_open(cfg->db_path, &s, err, sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "%s", err);
        return -1;
    }
    /* whether a webhook key must exist already (see webhook_key_load), and
     * a secret it must open */
    rc = store_endpoint_newest(s, newest);
    *has_endpoints = rc == 0;
    if (rc == HF_ENOTFOUND)
        rc = 0;
    store_close(s);
    if (rc != 0)
        log_msg(HF_LOG_ERROR, "cannot read the database at start-up");
    return rc == 0 ? 0 : -1;
}

/* The key file must open the secrets this database holds: a node given
 * another key (or a new one) would sign every event with garbage. */
static int key_opens_endpoints(const struct config *cfg,
                               const unsigned char key[HF_SEAL_KEY_BYTES],
                               const struct webhook_endpoint *newest)
{
    char plain[HF_WEBHOOK_SECRET_CHARS + 1];
    int rc = webhook_secret_open(key, newest, plain);

    token_wipe(plain, sizeof plain);
    if (rc != 0)
        log_msg(HF_LOG_ERROR, "webhook key file %s does not open the endpoint secrets in "
                "this database (they were sealed with another key): every node needs the "
                "same key file", cfg->webhook_key_file);
    return rc;
}

/* The bound addresses as JSON in cfg->port_file: written beside it, then
 * renamed, so whoever waits for the file reads all of it or nothing. */
static int write_port_file(const struct config *cfg)
{
    char tmp[4096];
    struct json_t *o = json_new_object();
    char *text;
    int fd, rc = -1;

    json_put_string(o, "public", cfg->listen);
    json_put_string(o, "admin", cfg->admin_listen);
    text = json_encode(o);
    json_free(o);
    snprintf(tmp, sizeof tmp, "%s.tmp", cfg->port_file);
    fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (fd >= 0) {
        rc = fd_write_all(fd, text, strlen(text));
        rc = close(fd) != 0 ? -1 : rc;
        rc = rc == 0 ? rename(tmp, cfg->port_file) : rc;
    }
    free(text);
    if (rc != 0)
        log_msg(HF_LOG_ERROR, "cannot write the port file %s", cfg->port_file);
    return rc;
}

static void reload_on_signal(struct policy_engine *engine)
{
    char msg[HF_POLICY_ERROR_MAX];
    int changed;

    log_msg(HF_LOG_INFO, "SIGHUP: reloading the policy");
    if (policy_engine_reload(engine, &changed, msg, sizeof msg) == 0 && !changed)
        log_msg(HF_LOG_INFO, "policy: version %s unchanged", msg);
}

static int serve(int argc, char **argv)
{
    struct http_server *srv = NULL, *admin = NULL;
    struct policy_engine *engine = NULL;
    struct policy_watch *watch = NULL;
    struct policy_store *policy_store = NULL;
    struct expiry *expiry = NULL;
    struct store_writer *writer = NULL;
    struct webhook_sender *sender = NULL;
    struct webhook_options hooks;
    int has_endpoints = 0;
    struct webhook_endpoint newest_endpoint;
    unsigned char webhook_key[HF_SEAL_KEY_BYTES];
    struct worker_limits limits = {0};

    /* glibc gives a thread arena's free top back to the kernel (madvise)
     * as soon as it passes 128 KiB, and faults it in again at the next
     * request: under load that was a tenth of the writer's time. Keep up
     * to 64 MiB. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    /* the public listener's routes: the layers below call none by name */
    static const struct worker_route routes[] = {
        {"/payment/", hosted_handle}, {NULL, api_handle}, {NULL, NULL}};
    struct worker_shared api_data;
    struct admin_shared admin_data;
    struct http_app api_app = {&api_data, worker_new, worker_free, worker_handle};
    struct http_app admin_app = {&admin_data, admin_worker_new, admin_worker_free,
                                 admin_handle};
    struct config cfg;
    sigset_t signals;
    char err[HF_POLICY_ERROR_MAX], where[1024];
    int sig, rc = 1;

    /* blocked first, before any thread exists, so that only sigwait sees
     * them: a SIGHUP (a reload) while starting must not end the process */
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    for (int a = 0; a < argc; a++)
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            fputs(serve_usage, stdout);
            return 0;
        }
    if (config_parse_serve(&cfg, argc, argv, err, sizeof err) != 0) {
        fprintf(stderr, "hostflow: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    /* set but empty is most likely a secret that did not arrive: an
     * admin listener open to all is not what that operator meant */
    if (getenv("HOSTFLOW_ADMIN_TOKEN") && !*getenv("HOSTFLOW_ADMIN_TOKEN")) {
        fprintf(stderr, "hostflow: HOSTFLOW_ADMIN_TOKEN is set but empty: give it a "
                "token, or unset it for an admin listener without one\n");
        config_free(&cfg);
        return 2;
    }
    log_setup(cfg.log_json, HF_LOG_INFO);
    if (cfg.checkout_secret_in_argv)
        log_msg(HF_LOG_WARN, "the Checkout.com secret key was given as a flag, which ps "
                "shows to every user: prefer --checkout-secret-key-file or "
                "HOSTFLOW_CHECKOUT_SECRET_KEY");
    /* libcurl's global set-up is not thread-safe: before any thread */
    if (httpc_global_init() != 0) {
        log_msg(HF_LOG_ERROR, "cannot initialise libcurl");
        config_free(&cfg);
        return 1;
    }
    store_set_synchronous_full(cfg.sync_full);
    signal(SIGPIPE, SIG_IGN);

    if (preflight(&cfg, &newest_endpoint, &has_endpoints) != 0)
        goto out;
    if (processor_setup(&cfg, err, sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "%s", err);
        goto out;
    }
    if (processor_for_mode("live"))
        log_msg(HF_LOG_INFO, "live cards: Checkout.com at %s, Frames from %s (timeout %lld ms)",
                cfg.checkout_base_url, cfg.checkout_frames_url, cfg.checkout_timeout_ms);
    else
        log_msg(HF_LOG_INFO, "live cards: off (no Checkout.com keys); live card pages "
                "answer 503");
    if (cfg.policy_from_store
            ? policy_store_open(cfg.db_path, &policy_store, &engine, err, sizeof err) != 0
            : policy_engine_new(cfg.policy_file, cfg.policy_dir, &engine, err, sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "policy refused: %s", err);
        goto out;
    }
    if (store_writer_start(cfg.db_path, &writer, err, sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "%s", err);
        goto out;
    }
    if (webhook_key_load(cfg.webhook_key_file, !has_endpoints, webhook_key, err,
                         sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "%s", err);
        goto out;
    }
    if (has_endpoints && key_opens_endpoints(&cfg, webhook_key, &newest_endpoint) != 0)
        goto out;
    hooks = (struct webhook_options){cfg.db_path, webhook_key, cfg.webhook_timeout_ms,
                                     cfg.webhook_retry_base_ms, cfg.webhook_retry_for,
                                     writer};
    if (webhook_sender_start(&hooks, &sender, err, sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "%s", err);
        goto out;
    }
    /* bursts of twice the rate per second */
    limits.create_by_key = ratelimit_new(cfg.rate_create_key, 2.0 * cfg.rate_create_key);
    limits.create_by_ip = ratelimit_new(cfg.rate_create_ip, 2.0 * cfg.rate_create_ip);
    limits.redeem_by_ip = ratelimit_new(cfg.rate_redeem_ip, 2.0 * cfg.rate_redeem_ip);
    api_data = (struct worker_shared){routes, &cfg, engine, writer, &limits, webhook_key};
    admin_data = (struct admin_shared){&cfg, engine, getenv("HOSTFLOW_ADMIN_TOKEN")};
    /* the watcher first: a file saved the moment the server answers must
     * not be missed */
    if (policy_store) {
        if (policy_store_watch(policy_store, err, sizeof err) != 0) {
            log_msg(HF_LOG_ERROR, "%s", err);
            goto out;
        }
    } else if (policy_watch_start(engine, cfg.policy_file, cfg.policy_dir, &watch, err,
                                  sizeof err) != 0) {
        log_msg(HF_LOG_WARN, "policy: %s; files are not watched, reload with SIGHUP", err);
    }
    if (expiry_start(cfg.db_path, writer, &expiry, err, sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "%s", err);
        goto out;
    }
    if (http_start(cfg.admin_listen, 4, (int)cfg.keep_alive_ms, &admin_app, &admin, err,
                   sizeof err) != 0 ||
        http_start(cfg.listen, (int)cfg.threads, (int)cfg.keep_alive_ms, &api_app, &srv, err,
                   sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "%s", err);
        goto out;
    }
    if (config_listening(&cfg, http_port(srv), http_port(admin), err, sizeof err) != 0) {
        log_msg(HF_LOG_ERROR, "%s", err);
        goto out;
    }
    if (cfg.port_file && write_port_file(&cfg) != 0)
        goto out;
    store_describe(cfg.db_path, where, sizeof where);
    log_msg(HF_LOG_INFO, "hostflow %s listening on %s, admin on %s (db %s, public url "
            "%s, %lld threads)", HF_VERSION, cfg.listen, cfg.admin_listen, where,
            cfg.public_url, cfg.threads);
    for (;;) {
        if (sigwait(&signals, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        reload_on_signal(engine);
    }
    log_msg(HF_LOG_INFO, "signal %d: finishing in-flight requests (again to stop at once)",
            sig);
    /* a second SIGTERM or SIGINT ends the process at once, and a drain that
     * hangs is cut off after HF_SHUTDOWN_MAX_S */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigdelset(&signals, SIGHUP); /* stays blocked: a reload asked now must not kill */
    pthread_sigmask(SIG_UNBLOCK, &signals, NULL);
    alarm(HF_SHUTDOWN_MAX_S);
    rc = 0;
out:
    /* reverse order of start: nothing uses the engine once the servers stop */
    policy_watch_stop(watch);
    policy_store_stop(policy_store);
    expiry_stop(expiry);
    http_stop(srv);
    http_stop(admin);
    webhook_sender_stop(sender); /* what it did not send goes out after a restart */
    store_writer_stop(writer); /* after every user of it has stopped */
    token_wipe(webhook_key, sizeof webhook_key);
    ratelimit_free(limits.create_by_key);
    ratelimit_free(limits.create_by_ip);
    ratelimit_free(limits.redeem_by_ip);
    policy_engine_free(engine);
    policy_store_free(policy_store); /* the engine's source: after the engine */
    processor_teardown(); /* after the workers: wipes the secret key */
    httpc_global_cleanup();
    if (rc == 0)
        log_msg(HF_LOG_INFO, "stopped");
    config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    const char *db;
    const char *cmd;

    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("hostflow %s\n", HF_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return serve(argc - 2, argv + 2);
    argc -= 2;
    argv += 2;
    db = config_db_path(&argc, argv); /* every command takes --db */
    if (strcmp(cmd, "policy") == 0)
        return cli_policy(db, argc, argv);
    if (strcmp(cmd, "tenant") == 0)
        return cli_tenant(db, argc, argv);
    if (strcmp(cmd, "key") == 0)
        return cli_key(db, argc, argv);
    if (strcmp(cmd, "contractor") == 0)
        return cli_contractor(db, argc, argv);
    if (strcmp(cmd, "events") == 0)
        return cli_events(db, argc, argv);
    fprintf(stderr, "hostflow: unknown command \"%s\"\n%s", cmd, usage);
    return 2;
}
