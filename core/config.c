/* config.c - flags + HOSTFLOW_* environment -> one immutable config. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "token.h"
#include "url.h"

#define CHECKOUT_BASE_URL "https://api.checkout.com"
#define CHECKOUT_FRAMES_URL "https://cdn.checkout.com/js/framesv2.min.js"
#define KEY_MIN 10  /* Checkout.com keys are sk_/pk_ and some 30-50 characters */
#define KEY_MAX 200

enum kind { TEXT, INT, CHOICE };

/* One row per serve flag: its name, its environment variable and the field
 * of struct config it sets (const char * for TEXT, long long for INT, int
 * for CHOICE). */
static const struct option {
    const char *flag;
    const char *env;
    enum kind kind;
    size_t field;           /* offsetof(struct config, …) */
    long long min, max;     /* bounds for INT */
    const char *choices[2]; /* for CHOICE: the words for 0 and 1 */
} options[] = {
#define F(name) offsetof(struct config, name)
    {"--db", "HOSTFLOW_DB", TEXT, F(db_path), 0, 0, {NULL, NULL}},
    {"--listen", "HOSTFLOW_LISTEN", TEXT, F(listen), 0, 0, {NULL, NULL}},
    {"--admin-listen", "HOSTFLOW_ADMIN_LISTEN", TEXT, F(admin_listen), 0, 0, {NULL, NULL}},
    {"--policy", "HOSTFLOW_POLICY", TEXT, F(policy_file), 0, 0, {NULL, NULL}},
    {"--policy-dir", "HOSTFLOW_POLICY_DIR", TEXT, F(policy_dir), 0, 0, {NULL, NULL}},
    {"--policy-source", "HOSTFLOW_POLICY_SOURCE", CHOICE, F(policy_from_store), 0, 0, {"file", "store"}},
    {"--public-url", "HOSTFLOW_PUBLIC_URL", TEXT, F(public_url), 0, 0, {NULL, NULL}},
    {"--port-file", "HOSTFLOW_PORT_FILE", TEXT, F(port_file), 0, 0, {NULL, NULL}},
    {"--threads", "HOSTFLOW_THREADS", INT, F(threads), 1, 1024, {NULL, NULL}},
    {"--keep-alive-ms", "HOSTFLOW_KEEP_ALIVE_MS", INT, F(keep_alive_ms), 0, 60000, {NULL, NULL}},
    {"--session-ttl", "HOSTFLOW_SESSION_TTL", INT, F(session_ttl), 1, 7 * 24 * 3600, {NULL, NULL}},
    {"--rate-create-key", "HOSTFLOW_RATE_CREATE_KEY", INT, F(rate_create_key), 0, 1000000, {NULL, NULL}},
    {"--rate-create-ip", "HOSTFLOW_RATE_CREATE_IP", INT, F(rate_create_ip), 0, 1000000, {NULL, NULL}},
    {"--rate-redeem-ip", "HOSTFLOW_RATE_REDEEM_IP", INT, F(rate_redeem_ip), 0, 1000000, {NULL, NULL}},
    {"--log-format", "HOSTFLOW_LOG_FORMAT", CHOICE, F(log_json), 0, 0, {"text", "json"}},
    {"--synchronous", "HOSTFLOW_SYNCHRONOUS", CHOICE, F(sync_full), 0, 0, {"normal", "full"}},
    {"--webhook-key-file", "HOSTFLOW_WEBHOOK_KEY_FILE", TEXT, F(webhook_key_file), 0, 0, {NULL, NULL}},
    {"--webhook-timeout-ms", "HOSTFLOW_WEBHOOK_TIMEOUT_MS", INT, F(webhook_timeout_ms), 100, 60000, {NULL, NULL}},
    {"--webhook-retry-base-ms", "HOSTFLOW_WEBHOOK_RETRY_BASE_MS", INT, F(webhook_retry_base_ms), 10, 3600000, {NULL, NULL}},
    {"--webhook-retry-for", "HOSTFLOW_WEBHOOK_RETRY_FOR", INT, F(webhook_retry_for), 1, 30 * 24 * 3600, {NULL, NULL}},
    {"--checkout-secret-key", "HOSTFLOW_CHECKOUT_SECRET_KEY", TEXT, F(checkout_secret_key), 0, 0, {NULL, NULL}},
    {"--checkout-secret-key-file", "HOSTFLOW_CHECKOUT_SECRET_KEY_FILE", TEXT, F(checkout_secret_key_file), 0, 0, {NULL, NULL}},
    {"--checkout-public-key", "HOSTFLOW_CHECKOUT_PUBLIC_KEY", TEXT, F(checkout_public_key), 0, 0, {NULL, NULL}},
    {"--checkout-base-url", "HOSTFLOW_CHECKOUT_BASE_URL", TEXT, F(checkout_base_url), 0, 0, {NULL, NULL}},
    {"--checkout-frames-url", "HOSTFLOW_CHECKOUT_FRAMES_URL", TEXT, F(checkout_frames_url), 0, 0, {NULL, NULL}},
    {"--checkout-timeout-ms", "HOSTFLOW_CHECKOUT_TIMEOUT_MS", INT, F(checkout_timeout_ms), 100, 120000, {NULL, NULL}},
#undef F
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static int set(struct config *c, size_t i, const char *v, const char *from,
               char *err, unsigned errlen)
{
    const struct option *o = &options[i];

    char *field = (char *)c + o->field;

    if (o->kind == TEXT) {
        *(const char **)field = v;
    } else if (o->kind == INT) {
        char *end;
        long long n;

        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno || end == v || *end || n < o->min || n > o->max) {
            snprintf(err, errlen, "%s must be an integer from %lld to %lld, got \"%s\"",
                     from, o->min, o->max, v);
            return -1;
        }
        *(long long *)field = n;
    } else {
        int one = strcmp(v, o->choices[1]) == 0;

        if (!one && strcmp(v, o->choices[0]) != 0) {
            snprintf(err, errlen, "%s must be %s or %s, got \"%s\"", from, o->choices[0],
                     o->choices[1], v);
            return -1;
        }
        *(int *)field = one;
    }
    return 0;
}

/* "ADDR:PORT" with a numeric port (0: one the kernel picks) and no TLS
 * suffix. */
static int check_listen(const char *what, const char *v, char *err, unsigned errlen)
{
    const char *colon = strrchr(v, ':');
    char *end;
    long port;

    if (!colon || colon == v) {
        snprintf(err, errlen, "%s must be ADDR:PORT, got \"%s\"", what, v);
        return -1;
    }
    if (v[0] == '[') { /* Debian's civetweb is built without IPv6 */
        snprintf(err, errlen, "%s: this build listens on IPv4 addresses only, got \"%s\"",
                 what, v);
        return -1;
    }
    port = strtol(colon + 1, &end, 10);
    if (*end == 's' || *end == 'r') {
        snprintf(err, errlen, "%s: TLS is terminated in front of hostflow; "
                 "listen on plain HTTP (no '%c' suffix)", what, *end);
        return -1;
    }
    if (end == colon + 1 || *end || port < 0 || port > 65535) {
        snprintf(err, errlen, "%s must be ADDR:PORT with a port 0-65535, got \"%s\"",
                 what, v);
        return -1;
    }
    return 0;
}

/* Check url and make it c->public_url (a heap copy, one spelling). */
static int set_public_url(struct config *c, const char *url, char *err, unsigned errlen)
{
    struct url u;
    size_t n = strlen(url);
    char *copy;

    while (n > 1 && url[n - 1] == '/')
        n--;
    if (url_parse(url, n, &u) != URL_OK ||
        (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0) ||
        u.has_query || u.path[0]) {
        snprintf(err, errlen, "--public-url must be http(s)://host[:port] with no "
                 "path or query, got \"%s\"", url);
        return -1;
    }
    copy = strndup(url, n);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* scheme and host are all there is, and neither minds case: one
     * spelling, so that "HTTPS://" still gets its cookies marked Secure */
    for (char *ch = copy; *ch; ch++)
        *ch = (char)tolower((unsigned char)*ch);
    c->public_url = copy;
    c->public_url_owned = copy;
    return 0;
}

/* 1 for a loopback host: plain http there never crosses a network. */
static int loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
           strncmp(host, "127.", 4) == 0;
}

/* A URL hostflow sends a secret to or loads a script from: https, or http
 * to a loopback address (tests, a local forward proxy); no query. A
 * trailing '/' is cut when trim is set. 0 with *u filled, or -1. */
static int check_service_url(const char *what, const char *v, int trim, struct url *u,
                             size_t *len, char *err, unsigned errlen)
{
    size_t n = strlen(v);

    while (trim && n > 1 && v[n - 1] == '/')
        n--;
    if (url_parse(v, n, u) != URL_OK || u->has_query) {
        snprintf(err, errlen, "%s must be an http(s) URL with no query, got \"%s\"", what, v);
        return -1;
    }
    if (strcmp(u->scheme, "https") != 0 && !loopback(u->host)) {
        snprintf(err, errlen, "%s must be https (plain http only to a loopback address), "
                 "got \"%s\"", what, v);
        return -1;
    }
    *len = n;
    return 0;
}

/* A Checkout.com key: prefix, then letters, digits, '_' and '-' (it goes
 * into an HTTP header or the page, so nothing else may). */
static int key_ok(const char *k, const char *prefix)
{
    size_t n = strlen(k);

    if (n < KEY_MIN || n > KEY_MAX || strncmp(k, prefix, strlen(prefix)) != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '-')
            return 0;
    return 1;
}

/* The secret key from its file: one line, surrounding whitespace cut. */
static int read_secret_file(struct config *c, char *err, unsigned errlen)
{
    char buf[KEY_MAX + 64];
    size_t n, start = 0;
    FILE *f = fopen(c->checkout_secret_key_file, "r");

    if (!f) {
        snprintf(err, errlen, "--checkout-secret-key-file: cannot read \"%s\": %s",
                 c->checkout_secret_key_file, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    while (start < n && isspace((unsigned char)buf[start]))
        start++;
    c->checkout_secret_owned = strdup(buf + start);
    token_wipe(buf, sizeof buf);
    if (!c->checkout_secret_owned) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->checkout_secret_key = c->checkout_secret_owned;
    return 0;
}

/* The live processor's settings: both keys or neither, well-formed URLs.
 * Messages name the setting at fault, never a key's value. */
static int check_checkout(struct config *c, char *err, unsigned errlen)
{
    struct url u;
    size_t n;

    if (c->checkout_secret_key_file && *c->checkout_secret_key_file) {
        if (c->checkout_secret_key && *c->checkout_secret_key) {
            snprintf(err, errlen, "give the Checkout.com secret key once: "
                     "--checkout-secret-key or --checkout-secret-key-file, not both");
            return -1;
        }
        if (read_secret_file(c, err, errlen) != 0)
            return -1;
    }
    if (c->checkout_secret_key && !*c->checkout_secret_key)
        c->checkout_secret_key = NULL;
    if (c->checkout_public_key && !*c->checkout_public_key)
        c->checkout_public_key = NULL;
    if (!c->checkout_secret_key != !c->checkout_public_key) {
        snprintf(err, errlen, "live cards need both Checkout.com keys: %s is missing",
                 c->checkout_secret_key ? "--checkout-public-key" : "--checkout-secret-key");
        return -1;
    }
    if (c->checkout_secret_key && !key_ok(c->checkout_secret_key, "sk_")) {
        snprintf(err, errlen, "the Checkout.com secret key must start with sk_ and have "
                 "%d-%d letters, digits, '_' or '-'", KEY_MIN, KEY_MAX);
        return -1;
    }
    if (c->checkout_public_key && !key_ok(c->checkout_public_key, "pk_")) {
        snprintf(err, errlen, "--checkout-public-key must start with pk_ and have "
                 "%d-%d letters, digits, '_' or '-' (never give the secret key here: "
                 "it would be sent to every browser)", KEY_MIN, KEY_MAX);
        return -1;
    }
    if (check_service_url("--checkout-base-url", c->checkout_base_url, 1, &u, &n, err,
                          errlen) != 0)
        return -1;
    c->checkout_base_url_owned = strndup(c->checkout_base_url, n);
    if (!c->checkout_base_url_owned) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->checkout_base_url = c->checkout_base_url_owned;
    if (check_service_url("--checkout-frames-url", c->checkout_frames_url, 0, &u, &n, err,
                          errlen) != 0)
        return -1;
    if (u.port_explicit)
        snprintf(c->checkout_frames_origin, sizeof c->checkout_frames_origin, "%s://%s:%d",
                 u.scheme, u.host, u.port);
    else
        snprintf(c->checkout_frames_origin, sizeof c->checkout_frames_origin, "%s://%s",
                 u.scheme, u.host);
    return 0;
}

/* The option arg names ("--name" or "--name=value"), or N_OPTIONS. */
static size_t option_of(const char *arg)
{
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);

    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].flag) == len && strncmp(arg, options[i].flag, len) == 0)
            return i;
    return N_OPTIONS;
}

static size_t option_at(size_t field)
{
    size_t i = 0;

    while (i < N_OPTIONS && options[i].field != field)
        i++;
    return i;
}

int config_parse_serve(struct config *c, int argc, char **argv, char *err,
                       unsigned errlen)
{
    int given[N_OPTIONS] = {0};
    size_t key = option_at(offsetof(struct config, checkout_secret_key));
    size_t key_file = option_at(offsetof(struct config, checkout_secret_key_file));

    memset(c, 0, sizeof *c);
    c->db_path = "./hostflow.db";
    c->listen = "127.0.0.1:8080";
    c->admin_listen = "127.0.0.1:8081";
    c->policy_file = access("./policies.lua", R_OK) == 0 ? "./policies.lua"
                                                          : "./policies.example.lua";
    c->policy_dir = "./policies";
    c->threads = 256;
    c->keep_alive_ms = 2000;
    c->rate_create_key = 100;
    c->rate_create_ip = 100;
    c->rate_redeem_ip = 20;
    c->session_ttl = 1800;
    c->webhook_timeout_ms = 10000;
    c->webhook_retry_base_ms = 10000;
    c->webhook_retry_for = 3 * 24 * 3600;
    c->checkout_base_url = CHECKOUT_BASE_URL;
    c->checkout_frames_url = CHECKOUT_FRAMES_URL;
    c->checkout_timeout_ms = 10000;

    /* a flag beats the environment, whatever the environment holds */
    for (int a = 0; a < argc; a++) {
        size_t i = option_of(argv[a]);

        if (i < N_OPTIONS) {
            given[i] = 1;
            if (!strchr(argv[a], '='))
                a++;
        }
    }
    /* the secret key and its file are one setting: given as a flag, either
     * beats both from the environment */
    if (given[key] || given[key_file])
        given[key] = given[key_file] = 1;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *v = getenv(options[i].env);
        if (!given[i] && v && *v && set(c, i, v, options[i].env, err, errlen) != 0)
            return -1;
    }
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a], *eq = strchr(arg, '='), *v;
        size_t i = option_of(arg);

        if (i == N_OPTIONS) {
            snprintf(err, errlen, "unknown option \"%s\" (see hostflow serve --help)", arg);
            return -1;
        }
        if (eq) {
            v = eq + 1;
        } else if (a + 1 < argc) {
            v = argv[++a];
        } else {
            snprintf(err, errlen, "%s needs a value", options[i].flag);
            return -1;
        }
        if (set(c, i, v, options[i].flag, err, errlen) != 0)
            return -1;
        if (options[i].field == offsetof(struct config, checkout_secret_key))
            c->checkout_secret_in_argv = 1;
    }
    if (check_listen("--listen", c->listen, err, errlen) != 0 ||
        check_listen("--admin-listen", c->admin_listen, err, errlen) != 0)
        return -1;
    if (!c->public_url) {
        snprintf(c->default_public_url, sizeof c->default_public_url,
                 "http://%s", c->listen);
        c->public_url = c->default_public_url;
        /* "http://ADDR:0" names no server: config_listening derives it
         * from the port bound */
        c->public_url_from_port = strcmp(strrchr(c->listen, ':'), ":0") == 0;
    }
    if (!c->webhook_key_file) {
        /* beside the database file: "<db>.webhook-key"; for a database
         * URL, in the working directory */
        if (strstr(c->db_path, "://"))
            snprintf(c->default_webhook_key_file, sizeof c->default_webhook_key_file,
                     "./hostflow.webhook-key");
        else
            snprintf(c->default_webhook_key_file, sizeof c->default_webhook_key_file,
                     "%s.webhook-key", c->db_path);
        c->webhook_key_file = c->default_webhook_key_file;
    }
    if (!c->public_url_from_port && set_public_url(c, c->public_url, err, errlen) != 0)
        return -1;
    return check_checkout(c, err, errlen);
}

/* "ADDR:PORT" of listen with port instead of its own, into buf. */
static const char *with_port(const char *listen, int port, char *buf, size_t n)
{
    snprintf(buf, n, "%.*s:%d", (int)(strrchr(listen, ':') - listen), listen, port);
    return buf;
}

int config_listening(struct config *c, int port, int admin_port, char *err, unsigned errlen)
{
    char url[sizeof c->default_public_url];

    c->listen = with_port(c->listen, port, c->bound_listen, sizeof c->bound_listen);
    c->admin_listen = with_port(c->admin_listen, admin_port, c->bound_admin_listen,
                                sizeof c->bound_admin_listen);
    if (!c->public_url_from_port)
        return 0;
    c->public_url_from_port = 0;
    snprintf(url, sizeof url, "http://%s", c->listen);
    return set_public_url(c, url, err, errlen);
}

const char *config_db_path(int *argc, char **argv)
{
    const char *path = getenv("HOSTFLOW_DB");

    if (!path || !*path)
        path = "./hostflow.db";
    for (int a = 0; a < *argc; a++) {
        int used = 0;

        if (strcmp(argv[a], "--db") == 0 && a + 1 < *argc) {
            path = argv[a + 1];
            used = 2;
        } else if (strncmp(argv[a], "--db=", 5) == 0) {
            path = argv[a] + 5;
            used = 1;
        }
        if (used) {
            memmove(&argv[a], &argv[a + used], (size_t)(*argc - a - used) * sizeof *argv);
            *argc -= used;
            a--;
        }
    }
    return path;
}

void config_free(struct config *c)
{
    free(c->public_url_owned);
    c->public_url_owned = NULL;
    if (c->checkout_secret_owned) {
        token_wipe(c->checkout_secret_owned, strlen(c->checkout_secret_owned));
        free(c->checkout_secret_owned);
        c->checkout_secret_owned = NULL;
    }
    free(c->checkout_base_url_owned);
    c->checkout_base_url_owned = NULL;
}
