/* store_backend.h - what a database backend provides to store.c: one table
 * of functions behind the store.h API.
 *
 * store.c picks a backend by the --db string and forwards every store.h
 * call to the table of the store (or writer) it is given; no other module
 * sees this header. Each backend (store_sqlite.c, store_pg.c) defines its
 * own struct store and struct store_writer, both beginning with a
 * struct store_head, keeps its functions static and exports only its
 * table.
 *
 * Adding an operation: its declaration in store.h, one row in STORE_CALLS,
 * and in each backend one static function plus one line in its table. A
 * backend that leaves the slot NULL answers HF_ESTORE ("not available on
 * this database") instead of crashing. */
#ifndef HF_STORE_BACKEND_H
#define HF_STORE_BACKEND_H

#include "store.h"

/* Every int-returning operation on an open store, as
 * X(name, (parameters), (arguments)); store_<name> in store.h. */
#define STORE_CALLS(X)                                                          \
    X(ping, (struct store *s), (s))                                             \
    X(attach_writer, (struct store *s, struct store_writer *w), (s, w))         \
    X(tenant_create, (struct store *s, const char *name,                        \
                      const char *const *hosts, size_t n_hosts,                 \
                      struct tenant *out),                                      \
      (s, name, hosts, n_hosts, out))                                           \
    X(tenant_set_hosts, (struct store *s, const char *tenant_id,                \
                         const char *const *hosts, size_t n_hosts),             \
      (s, tenant_id, hosts, n_hosts))                                           \
    X(tenant_get, (struct store *s, const char *tenant_id, struct tenant *out), \
      (s, tenant_id, out))                                                      \
    X(tenant_each, (struct store *s, int (*fn)(void *arg, const struct tenant *t), \
                    void *arg),                                                 \
      (s, fn, arg))                                                             \
    X(key_each, (struct store *s, const char *tenant_id,                        \
                 int (*fn)(void *arg, const struct api_key *k), void *arg),     \
      (s, tenant_id, fn, arg))                                                  \
    X(contractor_each, (struct store *s, const char *tenant_id,                 \
                        int (*fn)(void *arg, const struct contractor *c),       \
                        void *arg),                                             \
      (s, tenant_id, fn, arg))                                                  \
    X(key_create, (struct store *s, const char *tenant_id, const char *mode,    \
                   const unsigned char secret_hash[HF_HASH_BYTES],              \
                   const char *prefix, struct api_key *out),                    \
      (s, tenant_id, mode, secret_hash, prefix, out))                           \
    X(key_revoke, (struct store *s, const char *key_id, long long now),         \
      (s, key_id, now))                                                         \
    X(key_find, (struct store *s, const unsigned char secret_hash[HF_HASH_BYTES], \
                 struct api_key *out),                                          \
      (s, secret_hash, out))                                                    \
    X(contractor_create, (struct store *s, const char *tenant_id,               \
                          const char *name, struct contractor *out),            \
      (s, tenant_id, name, out))                                                \
    X(contractor_check, (struct store *s, const char *tenant_id,                \
                         const char *contractor_id),                            \
      (s, tenant_id, contractor_id))                                            \
    X(session_insert, (struct store *s, struct session *in,                     \
                       const unsigned char token_hash[HF_HASH_BYTES],           \
                       const struct idempotency *idem, long long now),          \
      (s, in, token_hash, idem, now))                                           \
    X(inserts_later, (struct store *s), (s))                                   \
    X(session_insert_later, (struct store *s, struct session *in,               \
                             const unsigned char token_hash[HF_HASH_BYTES],     \
                             long long now, void (*done)(void *arg, int rc),    \
                             void *arg),                                        \
      (s, in, token_hash, now, done, arg))                                      \
    X(idempotency_find, (struct store *s, const char *tenant_id,                \
                         const char *mode, const struct idempotency *idem,      \
                         long long now, struct session *out),                   \
      (s, tenant_id, mode, idem, now, out))                                     \
    X(session_get, (struct store *s, const char *tenant_id, const char *mode,   \
                    const char *id, long long now, struct session *out),        \
      (s, tenant_id, mode, id, now, out))                                       \
    X(session_list, (struct store *s, const char *tenant_id, const char *mode,  \
                     const struct session_query *q, long long now,              \
                     struct session *out, size_t *n),                           \
      (s, tenant_id, mode, q, now, out, n))                                     \
    X(session_cancel, (struct store *s, const char *tenant_id, const char *mode, \
                       const char *id, long long now, struct session *out),     \
      (s, tenant_id, mode, id, now, out))                                       \
    X(session_by_token, (struct store *s,                                       \
                         const unsigned char token_hash[HF_HASH_BYTES],         \
                         long long now, struct session *out),                   \
      (s, token_hash, now, out))                                                \
    X(session_redeem, (struct store *s,                                         \
                       const unsigned char token_hash[HF_HASH_BYTES],           \
                       const unsigned char browser_hash[HF_HASH_BYTES],         \
                       long long now, struct session *out),                     \
      (s, token_hash, browser_hash, now, out))                                  \
    X(session_for_browser, (struct store *s, const char *id,                    \
                            const unsigned char browser_hash[HF_HASH_BYTES],    \
                            long long now, struct session *out),                \
      (s, id, browser_hash, now, out))                                          \
    X(session_complete, (struct store *s, const char *tenant_id,                \
                         const char *mode, const char *id,                      \
                         const struct saved_card *card, long long now,          \
                         struct session *out),                                  \
      (s, tenant_id, mode, id, card, now, out))                                 \
    X(sessions_expire, (struct store *s, long long now, int *n), (s, now, n))     \
    X(endpoint_create, (struct store *s, const struct webhook_endpoint *e), (s, e)) \
    X(endpoint_update, (struct store *s, const struct webhook_endpoint *e), (s, e)) \
    X(endpoint_roll_secret, (struct store *s, const struct webhook_endpoint *e), (s, e)) \
    X(endpoint_list, (struct store *s, const char *tenant_id, const char *mode,  \
                      struct webhook_endpoint *out, size_t max, size_t *n),     \
      (s, tenant_id, mode, out, max, n))                                        \
    X(endpoint_get, (struct store *s, const char *tenant_id, const char *mode,   \
                     const char *id, struct webhook_endpoint *out),             \
      (s, tenant_id, mode, id, out))                                            \
    X(endpoint_delete, (struct store *s, const char *tenant_id, const char *mode, \
                        const char *id, long long now),                         \
      (s, tenant_id, mode, id, now))                                            \
    X(endpoints_due, (struct store *s, long long now_ms, struct endpoint_due *out, \
                      size_t max, size_t *n),                                   \
      (s, now_ms, out, max, n))                                                 \
    X(deliveries_claim, (struct store *s, long long now_ms, long long lease_ms,  \
                         const struct endpoint_due *from, size_t n_from,        \
                         struct webhook_delivery *out, size_t max, size_t *n),  \
      (s, now_ms, lease_ms, from, n_from, out, max, n))                         \
    X(delivery_record, (struct store *s, const char *event_id,                  \
                        const char *endpoint_id, const struct webhook_attempt *a), \
      (s, event_id, endpoint_id, a))                                            \
    X(events_list, (struct store *s, const char *status, size_t limit,          \
                    struct event_row *out, size_t *n),                          \
      (s, status, limit, out, n))                                               \
    X(event_retry, (struct store *s, const char *event_id, long long now_ms, int *n), \
      (s, event_id, now_ms, n))                                                 \
    X(event_get, (struct store *s, const char *tenant_id, const char *mode,     \
                  const char *id, long long now, struct event *out),            \
      (s, tenant_id, mode, id, now, out))                                       \
    X(event_page, (struct store *s, const char *tenant_id, const char *mode,    \
                   const struct event_query *q, long long now,                  \
                   struct event *out, size_t *n),                               \
      (s, tenant_id, mode, q, now, out, n))                                     \
    X(policy_publish, (struct store *s, const char *version, const void *bundle, \
                       size_t len, const char *actor, long long now,            \
                       struct policy_activation *out),                          \
      (s, version, bundle, len, actor, now, out))                               \
    X(policy_rollback, (struct store *s, const char *version, const char *actor, \
                        long long now, struct policy_activation *out),          \
      (s, version, actor, now, out))                                            \
    X(policy_active, (struct store *s, struct policy_activation *out), (s, out)) \
    X(policy_history, (struct store *s, size_t limit, struct policy_activation *out, \
                       size_t *n),                                              \
      (s, limit, out, n))                                                       \
    X(policy_bundle, (struct store *s, const char *version, char **bundle,      \
                      size_t *len),                                             \
      (s, version, bundle, len))                                                \
    X(policy_wait, (struct store *s, int timeout_ms), (s, timeout_ms))           \
    X(endpoint_newest, (struct store *s, struct webhook_endpoint *out), (s, out))

struct store_ops {
    const char *name;          /* "sqlite", "postgres": for log lines */
    int (*open)(const char *path, struct store **out, char *err, size_t errlen);
    void (*close)(struct store *s);
    void (*read_begin)(struct store *s);
    void (*read_end)(struct store *s);
    /* NULL where nothing is remembered: store.c then reads as usual */
    void (*read_begin_optimistic)(struct store *s);
    int (*read_current)(struct store *s);
    int (*writer_start)(const char *path, struct store_writer **out, char *err,
                        size_t errlen);
    void (*writer_stop)(struct store_writer *w);
#define STORE_OPS_FIELD(name, params, args) int (*name) params;
    STORE_CALLS(STORE_OPS_FIELD)
#undef STORE_OPS_FIELD
};

/* The first member of every backend's struct store and struct
 * store_writer: the table of the backend that made it. */
struct store_head {
    const struct store_ops *ops;
};

extern const struct store_ops store_sqlite_ops;  /* store_sqlite.c */
extern const struct store_ops store_pg_ops;      /* store_pg.c */
/* A postgres:// URL without its password or query string, for the log. */
void store_pg_describe(const char *url, char *out, size_t outlen);

#endif
