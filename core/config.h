/* config.h - flags and HOSTFLOW_* environment turned into one config,
 * immutable once the listeners are up. */
#ifndef HF_CONFIG_H
#define HF_CONFIG_H

struct config {
    const char *db_path;       /* SQLite file, or postgres:// URL */
    const char *listen;        /* ADDR:PORT of the public listener */
    const char *admin_listen;  /* ADDR:PORT of the admin listener */
    const char *policy_file;   /* the policy chunk */
    const char *policy_dir;    /* modules and tenants/ overrides */
    int policy_from_store;     /* 1: versions come from the store (policy publish) */
    const char *public_url;    /* scheme://host[:port] contractors see, no trailing '/' */
    int public_url_from_port;  /* 1: derived from a --listen on port 0, once bound */
    const char *port_file;     /* where serve writes the bound ports, or NULL */
    long long threads;         /* civetweb worker threads = concurrent connections */
    long long keep_alive_ms;   /* an idle keep-alive connection is closed after this */
    long long rate_create_key; /* session creations per second per API key, 0 = no limit */
    long long rate_create_ip;  /* ... per client address */
    long long rate_redeem_ip;  /* hosted-link requests per second per client address */
    long long session_ttl;     /* seconds a new session stays pending */
    int log_json;              /* 1: JSON log lines, 0: text */
    int sync_full;             /* 1: synchronous=FULL, 0: NORMAL */
    const char *webhook_key_file; /* seals webhook signing secrets */
    long long webhook_timeout_ms; /* one delivery attempt */
    long long webhook_retry_base_ms; /* first retry delay, doubling */
    long long webhook_retry_for;  /* seconds an event is retried before it fails */
    /* the live processor, Checkout.com; no secret key = no live cards */
    const char *checkout_secret_key;      /* sk_…, for the API; never logged */
    const char *checkout_secret_key_file; /* a file holding it instead */
    const char *checkout_public_key;      /* pk_…, handed to Frames in the page */
    const char *checkout_base_url;        /* API base URL, no trailing '/' */
    const char *checkout_frames_url;      /* the Frames script the live page loads */
    long long checkout_timeout_ms;        /* one API exchange, connecting included */
    int checkout_secret_in_argv;          /* 1: the secret came as a flag (ps shows it) */
    char checkout_frames_origin[300];     /* scheme://host[:port] of checkout_frames_url */
    char *public_url_owned;    /* heap copy behind public_url */
    char *checkout_secret_owned;   /* the secret read from its file; wiped by config_free */
    char *checkout_base_url_owned; /* heap copy behind checkout_base_url */
    char default_public_url[300]; /* "http://<listen>" when not given */
    char bound_listen[300];       /* listen with the port bound (config_listening) */
    char bound_admin_listen[300];
    char default_webhook_key_file[4096]; /* "<db>.webhook-key" when not given */
};

/* Fill c with defaults, then HOSTFLOW_* variables, then the serve flags in
 * argv[0..argc). Returns 0, or -1 with a one-line reason in err (which
 * never quotes a secret key). Strings in c point into argv, the
 * environment or static storage; public_url, checkout_base_url and
 * checkout_secret_key may be heap memory owned by c (config_free). */
int config_parse_serve(struct config *c, int argc, char **argv, char *err,
                       unsigned errlen);

/* Once both listeners are up, on the ports they bound (the ones the kernel
 * picked for port 0): listen and admin_listen name them, and a public URL
 * derived from a --listen on port 0 is set. Before any request can know
 * the port, so no worker has read the old value. 0, or -1 with err. */
int config_listening(struct config *c, int port, int admin_port, char *err, unsigned errlen);

/* The database path from --db in argv or the environment or the default;
 * removes the flag and its value from argv. */
const char *config_db_path(int *argc, char **argv);

/* Free what c owns, wiping a secret key read from a file. */
void config_free(struct config *c);

#endif
