/* store.h - everything hostflow asks of its database, in its own words.
 *
 * One struct store is one connection, owned by one thread at a time.
 * store.c picks the database by the --db string (a postgres:// or
 * postgresql:// URL, else a SQLite file path) and forwards to its backend
 * (store_sqlite.c, store_pg.c; store_backend.h); nothing outside them
 * knows which database runs. All SQL and every transaction lives behind
 * this header. Functions return 0 or a negative HF_E… code (err.h). */
#ifndef HF_STORE_H
#define HF_STORE_H

#include <stddef.h>

#include "token.h"
#include "url.h"

#define HF_ID_MAX 48          /* "hps_" + random part + NUL, with room */
#define HF_NAME_MAX 200       /* tenant and contractor display names */
#define HF_VERSION_MAX 24     /* policy version string */
#define HF_HOSTS_MAX 100      /* redirect hosts per tenant */
#define HF_IDEMPOTENCY_KEY_MAX 255
#define HF_IDEMPOTENCY_TTL (24 * 3600)

struct store;

struct tenant {
    char id[HF_ID_MAX];
    char name[HF_NAME_MAX + 1];
    long long created;
    size_t n_hosts;
    char hosts[HF_HOSTS_MAX][HF_URL_HOST_MAX + 3]; /* allowed redirect hosts */
};

struct api_key {
    char id[HF_ID_MAX];
    char tenant_id[HF_ID_MAX];
    char mode[8];             /* "live" or "test" */
    char prefix[16];          /* visible start of the secret, for humans */
    long long revoked_at;     /* 0 when active */
    long long created;        /* read by store_key_each only */
};

struct contractor {
    char id[HF_ID_MAX];
    char tenant_id[HF_ID_MAX];
    char name[HF_NAME_MAX + 1];
    long long created;        /* read by store_contractor_each only */
};

struct session {
    char id[HF_ID_MAX];
    char tenant_id[HF_ID_MAX];
    char contractor_id[HF_ID_MAX];
    char return_url[HF_URL_MAX + 1];
    char mode[8];             /* "live" or "test", from the creating key */
    char status[12];          /* pending|completed|cancelled|expired, as of read time */
    char policy_version[HF_VERSION_MAX];
    long long created;
    long long expires_at;
    long long completed_at;   /* 0 = null */
    long long cancelled_at;   /* 0 = null */
};

/* Filters and cursor of a session list. */
/* One page of a list, newest first: at most one cursor (an id of the
 * list's kind), limit 1..100. */
struct list_page {
    const char *starting_after;  /* older than this id, or NULL */
    const char *ending_before;   /* newer than this id, or NULL */
    int limit;
};

struct session_query {
    const char *contractor_id;   /* NULL = any */
    const char *status;          /* NULL = any; one of the four states */
    struct list_page page;       /* cursors are session ids */
};

/* Idempotency of a create: key and the hash of the request body. */
struct idempotency {
    const char *key;                            /* NULL = none */
    unsigned char request_hash[HF_HASH_BYTES];
};

/* What is kept of a saved card: never the number, only these. */
struct saved_card {
    char brand[16];
    char last4[5];
    char reference[64];       /* the processor's id for the stored instrument */
};

/* Make SQLite connections opened from now on use synchronous=FULL (every
 * commit survives power loss) instead of NORMAL (it survives a crash of
 * the process). Call before the first store_open. PostgreSQL commits are
 * as durable as its server's synchronous_commit makes them. */
void store_set_synchronous_full(int full);

/* Open (creating and migrating as needed) the database at path: a SQLite
 * file, or the PostgreSQL database of a postgres:// URL (which must exist;
 * its tables are created). On failure returns HF_ESTORE (HF_EINVAL for a
 * path that names no database: empty, :memory:, a libpq keyword string)
 * with a sentence in err, which never holds a password from the URL. */
int store_open(const char *path, struct store **out, char *err, size_t errlen);
/* path as a log line may show it: a PostgreSQL URL without its password
 * or query string (which may carry password=...). */
void store_describe(const char *path, char *out, size_t outlen);
/* Close; NULL is fine. */
void store_close(struct store *s);
/* 0 when the database answers and can take writes (SQLite: the write lock;
 * PostgreSQL: a primary, not a standby); HF_ESTORE. */
int store_ping(struct store *s);

/* Group the reads that follow into one snapshot (one lock instead of one
 * per query) until store_read_end. Writes go through the writer meanwhile;
 * this connection must not write itself. */
void store_read_begin(struct store *s);
void store_read_end(struct store *s);

/* store_read_begin for a request that creates a session: API key, tenant
 * and contractor answers remembered by the connection are taken at the
 * newest access generation the writer has inserted under, without
 * opening a snapshot to read the generation (SQLite; access_cache.h).
 * store_session_insert then commits only while that generation is still
 * the database's, else it writes nothing and returns HF_ESTALE; a request
 * that ends without that insert asks store_read_current. Elsewhere this is
 * store_read_begin. */
void store_read_begin_optimistic(struct store *s);
/* 1 when every answer since store_read_begin_optimistic is still current
 * (ends the snapshot to read the newest generation); 0 when the request
 * must be answered again after store_read_begin. Always 1 otherwise. */
int store_read_current(struct store *s);

int store_tenant_create(struct store *s, const char *name,
                        const char *const *hosts, size_t n_hosts,
                        struct tenant *out);
/* Replace the tenant's redirect allowlist. HF_ENOTFOUND for no tenant. */
int store_tenant_set_hosts(struct store *s, const char *tenant_id,
                           const char *const *hosts, size_t n_hosts);
int store_tenant_get(struct store *s, const char *tenant_id, struct tenant *out);

/* Record a key: its secret only as a hash plus a visible prefix. */
int store_key_create(struct store *s, const char *tenant_id, const char *mode,
                     const unsigned char secret_hash[HF_HASH_BYTES],
                     const char *prefix, struct api_key *out);
/* Mark revoked (idempotent). HF_ENOTFOUND for no key. */
int store_key_revoke(struct store *s, const char *key_id, long long now);
/* The key whose secret hashes to secret_hash, revoked or not; HF_ENOTFOUND. */
int store_key_find(struct store *s, const unsigned char secret_hash[HF_HASH_BYTES],
                   struct api_key *out);

int store_contractor_create(struct store *s, const char *tenant_id,
                            const char *name, struct contractor *out);

/* The operator's lists (hostflow tenant|key|contractor list): fn is called
 * for each row, oldest first (a tenant without its redirect hosts); a
 * non-zero return from fn stops the walk and is returned. */
int store_tenant_each(struct store *s, int (*fn)(void *arg, const struct tenant *t),
                      void *arg);
int store_key_each(struct store *s, const char *tenant_id,
                   int (*fn)(void *arg, const struct api_key *k), void *arg);
int store_contractor_each(struct store *s, const char *tenant_id,
                          int (*fn)(void *arg, const struct contractor *c), void *arg);
/* 0 when the contractor exists under this tenant; HF_ENOTFOUND otherwise
 * (the same answer for another tenant's contractor and an unknown id). */
int store_contractor_check(struct store *s, const char *tenant_id,
                           const char *contractor_id);

/* Insert a new session with the hash of its URL token, atomically with its
 * idempotency record. If idem->key was already used by this tenant within
 * HF_IDEMPOTENCY_TTL: same body → HF_EEXISTS and *in is overwritten with
 * the stored session; different body → HF_EIDEMPOTENCY. */
int store_session_insert(struct store *s, struct session *in,
                         const unsigned char token_hash[HF_HASH_BYTES],
                         const struct idempotency *idem, long long now);
/* store_session_insert without an idempotency key and without waiting:
 * 0 once the insert is queued, and done(arg, rc) runs later on the writer
 * thread with what store_session_insert would have returned (0 once the
 * row is committed, HF_ESTALE, HF_ESTORE). in and token_hash must stay
 * valid until then, and done must not block: every request of the batch
 * waits for it. Any other return (HF_ESTALE included) means nothing was
 * queued; HF_ESTORE also where inserts are answered only synchronously
 * (PostgreSQL, a connection without a writer) and while the connection's
 * previous later insert is unanswered (it has room for one). */
/* 1 when this connection answers inserts later (store_session_insert_later
 * can queue), 0 when it only inserts synchronously. */
int store_inserts_later(struct store *s);
int store_session_insert_later(struct store *s, struct session *in,
                               const unsigned char token_hash[HF_HASH_BYTES], long long now,
                               void (*done)(void *arg, int rc), void *arg);
/* Look up an idempotency key before doing any work; same results as above,
 * or HF_ENOTFOUND when unused. The replayed session is read under tenant
 * and mode like any other. */
int store_idempotency_find(struct store *s, const char *tenant_id, const char *mode,
                           const struct idempotency *idem, long long now,
                           struct session *out);

/* Sessions are found under (tenant, mode): a live key and a test key of
 * one tenant are separate worlds, and another tenant's or mode's session
 * answers exactly as an unknown id (HF_ENOTFOUND). mode is "live" or
 * "test", the mode of the asking key (or of the session itself). */

/* The session id as it reads at now. */
int store_session_get(struct store *s, const char *tenant_id, const char *mode,
                      const char *id, long long now, struct session *out);
/* Up to q->page.limit sessions, newest first, into out; count in *n. A cursor
 * naming no session of this tenant and mode gives HF_ENOTFOUND. */
int store_session_list(struct store *s, const char *tenant_id, const char *mode,
                       const struct session_query *q, long long now,
                       struct session *out, size_t *n);
/* pending → cancelled. HF_ENOTPENDING when terminal, HF_EEXPIRED when past
 * expires_at. *out is the session after. */
int store_session_cancel(struct store *s, const char *tenant_id, const char *mode,
                         const char *id, long long now, struct session *out);

/* ---- group commit ----
 * The server sends its hot-path writes (session insert, redeem, complete,
 * cancel, expiry) through one writer thread that commits everything queued
 * in one transaction. Without a writer each connection commits its own.
 * On PostgreSQL the writer does nothing: every connection always commits
 * its own transactions, which the server runs side by side. */
struct store_writer;

/* Start the writer (and a WAL checkpointer) on their own connections to
 * the SQLite file path. 0, or HF_ESTORE with err. */
int store_writer_start(const char *path, struct store_writer **out, char *err,
                       size_t errlen);
/* Commit what is queued, stop, checkpoint, free; NULL is fine. Call after
 * every connection that uses it has stopped submitting. */
void store_writer_stop(struct store_writer *w);
/* From now on s sends those writes through w (and leaves checkpoints to it). */
int store_attach_writer(struct store *s, struct store_writer *w);

/* ---- hosted flow ---- */

/* The session whose URL token hashes to token_hash, if it can still be
 * redeemed (pending, unexpired, never redeemed); HF_ENOTFOUND otherwise. */
int store_session_by_token(struct store *s, const unsigned char token_hash[HF_HASH_BYTES],
                           long long now, struct session *out);
/* Redeem the token in one atomic update and bind the session to the
 * browser holding browser_hash's secret: 0 for exactly one caller however
 * many race, HF_ENOTFOUND for every other and for unusable tokens. */
int store_session_redeem(struct store *s, const unsigned char token_hash[HF_HASH_BYTES],
                         const unsigned char browser_hash[HF_HASH_BYTES], long long now,
                         struct session *out);
/* Session id if it is bound to browser_hash (compared in constant time),
 * in whatever state it now is; HF_ENOTFOUND otherwise. */
int store_session_for_browser(struct store *s, const char *id,
                              const unsigned char browser_hash[HF_HASH_BYTES],
                              long long now, struct session *out);
/* pending → completed, keeping card. HF_ENOTPENDING when terminal,
 * HF_EEXPIRED when past expires_at, HF_ENOTFOUND outside (tenant, mode).
 * *out is the session after. */
int store_session_complete(struct store *s, const char *tenant_id, const char *mode,
                           const char *id, const struct saved_card *card, long long now,
                           struct session *out);
/* Write 'expired' on up to HF_EXPIRE_BATCH pending sessions past
 * expires_at, each with its event; count in *n (call again while it is
 * HF_EXPIRE_BATCH). Safe to run on several nodes at once (each sweep may
 * find nothing). */
#define HF_EXPIRE_BATCH 500
int store_sessions_expire(struct store *s, long long now, int *n);

/* ---- webhooks ----
 * Every state change that leaves pending (complete, cancel, expiry) writes
 * an event, and one delivery per webhook endpoint of the session's tenant
 * and mode, in the same transaction as the change itself: the outbox. */

#define HF_SEALED_SECRET_MAX 128   /* a sealed signing secret, in bytes */
#define HF_EVENT_TYPE_MAX 40
#define HF_ENDPOINTS_MAX 16        /* webhook endpoints per tenant and mode */
#define HF_ENDPOINT_DESCRIPTION_MAX 500 /* bytes of an endpoint's description */
#define HF_ENABLED_EVENTS_MAX 128  /* "*" or event types joined by ',' */
#define HF_WEBHOOK_PER_ENDPOINT 4  /* deliveries claimed at once per endpoint */
#define HF_WEBHOOK_PER_TENANT 8    /* ... per tenant, all its endpoints together */

struct webhook_endpoint {
    char id[HF_ID_MAX];
    char tenant_id[HF_ID_MAX];
    char mode[8];             /* "live" or "test": events of sessions of this mode */
    char url[HF_URL_MAX + 1];
    long long created;
    unsigned char secret[HF_SEALED_SECRET_MAX]; /* the signing secret, sealed */
    size_t secret_len;
    char description[HF_ENDPOINT_DESCRIPTION_MAX + 1];
    /* the event types it receives: "*" for all, else types joined by ',' */
    char enabled_events[HF_ENABLED_EVENTS_MAX];
    int disabled;             /* 1: its deliveries wait until it is enabled */
    /* the secret before the last roll, sealed, valid until previous_until_ms
     * (deliveries are signed with both until then); 0 when none */
    unsigned char previous_secret[HF_SEALED_SECRET_MAX];
    size_t previous_secret_len;
    long long previous_until_ms;
};

/* One event for one endpoint, claimed for sending. */
struct webhook_delivery {
    char event_id[HF_ID_MAX];
    char event_type[HF_EVENT_TYPE_MAX];
    long long event_created;
    struct session session;   /* the event's object: terminal, so it stays as sent */
    struct webhook_endpoint endpoint;
    int attempts;             /* attempts made before this one */
    long long lease_until_ms; /* the claim: recording it needs the same value */
    int endpoint_failures;    /* the endpoint's, as endpoint_due has them */
};

/* An endpoint with deliveries to claim (store_endpoints_due). */
struct endpoint_due {
    char id[HF_ID_MAX];
    char tenant_id[HF_ID_MAX];
    int deleted;              /* its pending deliveries are to be failed, not sent */
    int failures;             /* pauses in a row: attempts went unanswered */
    /* how many more deliveries it and its tenant may have in flight: of
     * HF_WEBHOOK_PER_ENDPOINT (1 while failures > 0) and of
     * HF_WEBHOOK_PER_TENANT, those claimed and not recorded yet */
    int slots;
    int tenant_slots;
    int claim;                /* for store_deliveries_claim: how many to take */
};

/* What became of one attempt. */
struct webhook_attempt {
    long long lease_until_ms; /* of the claim this attempt was made under */
    const char *status;       /* "delivered", "pending" (try again) or "failed" */
    long long at_ms;          /* when the attempt was made */
    long long next_ms;        /* for "pending": when to try again */
    int http_status;          /* 0 when no response */
    const char *error;        /* short cause when not delivered, else NULL */
    /* the endpoint: answered (whatever its status) ends its pause and its
     * failures; else, when pause_until_ms is not 0 and the endpoint is not
     * paused already, it is paused until then, with one more failure */
    int answered;
    long long pause_until_ms;
};

/* One row of `hostflow events list`: an event and one of its deliveries. */
struct event_row {
    char id[HF_ID_MAX];
    char type[HF_EVENT_TYPE_MAX];
    char tenant_id[HF_ID_MAX];
    char session_id[HF_ID_MAX];
    long long created;
    char endpoint_id[HF_ID_MAX];  /* "" when the tenant had no endpoint */
    char status[12];              /* pending|delivered|failed, "none" without endpoint */
    int attempts;
    long long next_attempt_ms;
    int last_status;
    char last_error[128];
};

/* Record an endpoint (id chosen by the caller, who sealed its secret to
 * it). HF_ELIMIT when the tenant has HF_ENDPOINTS_MAX in this mode. */
int store_endpoint_create(struct store *s, const struct webhook_endpoint *e);
/* The tenant's endpoints of mode, newest first; count in *n. */
int store_endpoint_list(struct store *s, const char *tenant_id, const char *mode,
                        struct webhook_endpoint *out, size_t max, size_t *n);
int store_endpoint_get(struct store *s, const char *tenant_id, const char *mode,
                       const char *id, struct webhook_endpoint *out);
/* Change url, description, enabled_events and disabled of the endpoint
 * e->id of e->tenant_id and e->mode to e's. HF_ENOTFOUND across tenants
 * and modes. */
int store_endpoint_update(struct store *s, const struct webhook_endpoint *e);
/* Roll the secret: e->secret (sealed, new) becomes the endpoint's, the one
 * it had stays valid until e->previous_until_ms (a previous one before it
 * is dropped). HF_ENOTFOUND across tenants and modes. */
int store_endpoint_roll_secret(struct store *s, const struct webhook_endpoint *e);
/* Delete: no new deliveries, pending ones fail. HF_ENOTFOUND across
 * tenants and modes. */
int store_endpoint_delete(struct store *s, const char *tenant_id, const char *mode,
                          const char *id, long long now);

/* The endpoint recorded last, deleted ones included (their secrets were
 * sealed too): 0 and *out, or HF_ENOTFOUND when there was never one. */
int store_endpoint_newest(struct store *s, struct webhook_endpoint *out);

/* Up to max endpoints with deliveries due at now_ms that are not paused
 * and have slots and tenant_slots left, the one whose oldest due delivery
 * waited longest first; and deleted endpoints with pending deliveries,
 * before them. A read whose cost grows with the number of endpoints that
 * have pending deliveries (a few index probes each), never with their
 * backlog. */
int store_endpoints_due(struct store *s, long long now_ms, struct endpoint_due *out,
                        size_t max, size_t *n);
/* Claim, in one short transaction, up to from[i].claim (at most
 * HF_WEBHOOK_PER_ENDPOINT) of the oldest deliveries due at now_ms of each
 * endpoint of from, up to max in all, for lease_ms: nobody else claims
 * them until the lease ends or store_delivery_record is called. It
 * touches the rows it claims; a deleted endpoint's pending deliveries
 * (from store_endpoints_due, or deleted since) are failed instead. */
int store_deliveries_claim(struct store *s, long long now_ms, long long lease_ms,
                           const struct endpoint_due *from, size_t n_from,
                           struct webhook_delivery *out, size_t max, size_t *n);
/* Record the attempt on a claimed delivery and release the claim; a
 * claim that lapsed and was taken again meanwhile is left to its new
 * holder (HF_ENOTFOUND). */
int store_delivery_record(struct store *s, const char *event_id, const char *endpoint_id,
                          const struct webhook_attempt *a);
/* Events with their deliveries, newest first; status NULL = all, else
 * only deliveries in that state. */
int store_events_list(struct store *s, const char *status, size_t limit,
                      struct event_row *out, size_t *n);
/* Make the event's failed deliveries pending again, due at now_ms; how
 * many in *n. HF_ENOTFOUND for an unknown event. */
int store_event_retry(struct store *s, const char *event_id, long long now_ms, int *n);

/* An event as a tenant reads it (GET /api/v1/events): what its webhooks
 * deliver. */
struct event {
    char id[HF_ID_MAX];
    char type[HF_EVENT_TYPE_MAX];
    long long created;
    struct session session;   /* terminal, so it reads as it was sent */
};

/* Which of a tenant's events to list: one page, newest first. */
struct event_query {
    const char *type;            /* NULL = any */
    struct list_page page;       /* cursors are event ids */
};

/* The event id of tenant_id's sessions of mode; HF_ENOTFOUND across
 * tenants and modes. now as for store_session_get. */
int store_event_get(struct store *s, const char *tenant_id, const char *mode,
                    const char *id, long long now, struct event *out);
/* A page of those events, newest first, into out (q->page.limit of them);
 * count in *n. HF_ENOTFOUND when a cursor names none of them. */
int store_event_page(struct store *s, const char *tenant_id, const char *mode,
                     const struct event_query *q, long long now,
                     struct event *out, size_t *n);

/* ---- policy versions ----
 * A fleet's nodes can take their policy from the store instead of files:
 * `policy publish` stores a version's bundle (policy_source_encode) and
 * makes it active; `policy rollback` makes an earlier one active again.
 * The active version is the one of the newest activation. */

#define HF_ACTOR_MAX 128

struct policy_activation {
    long long seq;            /* increases with every activation */
    char version[HF_VERSION_MAX];
    char action[12];          /* "publish" or "rollback" */
    char actor[HF_ACTOR_MAX]; /* who: user@host, or what --by said */
    long long at;
};

/* Store bundle as version (kept once however often it is published) and
 * activate it. */
int store_policy_publish(struct store *s, const char *version, const void *bundle,
                         size_t len, const char *actor, long long now,
                         struct policy_activation *out);
/* Activate a version stored before; HF_ENOTFOUND when there is none. */
int store_policy_rollback(struct store *s, const char *version, const char *actor,
                          long long now, struct policy_activation *out);
/* The newest activation; HF_ENOTFOUND when nothing was ever published.
 * Cheap: nodes poll it. */
int store_policy_active(struct store *s, struct policy_activation *out);
/* Activations, newest first. */
int store_policy_history(struct store *s, size_t limit, struct policy_activation *out,
                         size_t *n);
/* The stored bundle of version (malloc'd, the caller frees); HF_ENOTFOUND. */
int store_policy_bundle(struct store *s, const char *version, char **bundle, size_t *len);
/* Wait up to timeout_ms for an activation on any node, then return (0);
 * HF_EUNAVAILABLE at once from a database that cannot announce one (the
 * caller polls), HF_ESTORE when the connection is down. Then ask
 * store_policy_active. */
int store_policy_wait(struct store *s, int timeout_ms);

#endif
