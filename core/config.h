/* config.h - flags and HOSTFLOW_* environment turned into one config. */
#ifndef HF_CONFIG_H
#define HF_CONFIG_H

struct config {
    const char *db_path;       /* SQLite file, or postgres:// URL */
    const char *listen;        /* ADDR:PORT of the public listener */
    const char *admin_listen;  /* ADDR:PORT of the admin listener */
    const char *policy_file;   /* the policy chunk */
    const char *policy_dir;    /* modules and tenants/ overrides */
    const char *public_url;    /* scheme://host[:port] contractors see, no trailing '/' */
    long long threads;         /* civetweb worker threads = concurrent connections */
    long long keep_alive_ms;   /* an idle keep-alive connection is closed after this */
    long long rate_create_key; /* session creations per second per API key, 0 = no limit */
    long long rate_create_ip;  /* ... per client address */
    long long rate_redeem_ip;  /* hosted-link requests per second per client address */
    long long session_ttl;     /* seconds a new session stays pending */
    int log_json;              /* 1: JSON log lines, 0: text */
    int sync_full;             /* 1: synchronous=FULL, 0: NORMAL */
    char *public_url_owned;    /* heap copy behind public_url */
    char default_public_url[300]; /* "http://<listen>" when not given */
};

/* Fill c with defaults, then HOSTFLOW_* variables, then the serve flags in
 * argv[0..argc). Returns 0, or -1 with a one-line reason in err. Strings in
 * c point into argv, the environment or static storage; public_url may be
 * heap memory owned by c (config_free). */
int config_parse_serve(struct config *c, int argc, char **argv, char *err,
                       unsigned errlen);

/* The database path from --db in argv or the environment or the default;
 * removes the flag and its value from argv. */
const char *config_db_path(int *argc, char **argv);

void config_free(struct config *c);

#endif
