/* store_pg.c - the store on a PostgreSQL database shared by any number of
 * hostflow nodes: all SQL, migrations and transactions for it. The only
 * user of libpq.
 *
 * One struct store is one connection with its own prepared statements.
 * Every write is one transaction on the caller's connection; the group
 * commit writer of the SQLite store has no work here. What store.h
 * promises holds across nodes because each decision is one conditional
 * statement the server serialises: a unique key for idempotency, an
 * UPDATE ... WHERE redeemed_at IS NULL ... RETURNING for redemption, an
 * UPDATE ... WHERE status = 'pending' for cancel and completion. */
#define _POSIX_C_SOURCE 200809L
#include "store_backend.h"

#include <assert.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>

#include "err.h"
#include "log.h"
#include "clock.h"

/* Keys of the advisory locks (per database): one node migrates at a time,
 * one node sweeps at a time. Arbitrary, fixed forever. */
#define MIGRATION_LOCK "7238541901"
#define EXPIRY_LOCK "7238541902"

#define CONNECT_TIMEOUT_S "10"
#define PARAMS_MAX 12           /* the most any statement takes: 9 */
#define WHERE_MAX 256

/* Schema history: migration i brings the database from version i to i+1
 * (recorded in schema_migrations). The same versions as the SQLite store;
 * never edit a shipped entry, append a new one. */
static const char *const migrations[] = {
    "CREATE TABLE tenants ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  created BIGINT NOT NULL);"
    "CREATE TABLE tenant_redirect_hosts ("
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  position INTEGER NOT NULL,"
    "  host TEXT NOT NULL,"
    "  PRIMARY KEY (tenant_id, host));"
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY,"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),"
    "  prefix TEXT NOT NULL,"
    "  secret_hash BYTEA NOT NULL UNIQUE,"
    "  created BIGINT NOT NULL,"
    "  revoked_at BIGINT);"
    "CREATE TABLE contractors ("
    "  id TEXT PRIMARY KEY,"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  name TEXT,"
    "  created BIGINT NOT NULL);"
    "CREATE TABLE sessions ("
    "  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  contractor_id TEXT NOT NULL REFERENCES contractors(id),"
    "  return_url TEXT NOT NULL,"
    "  mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),"
    "  token_hash BYTEA NOT NULL UNIQUE,"
    "  status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'cancelled', 'expired')),"
    "  policy_version TEXT NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL,"
    "  redeemed_at BIGINT,"
    "  completed_at BIGINT,"
    "  cancelled_at BIGINT);"
    "CREATE INDEX sessions_by_tenant ON sessions (tenant_id, seq);"
    "CREATE INDEX sessions_by_contractor ON sessions (tenant_id, contractor_id, seq);"
    "CREATE TABLE idempotency_keys ("
    "  tenant_id TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  request_hash BYTEA NOT NULL,"
    "  session_id TEXT NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  PRIMARY KEY (tenant_id, key));"
    "CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created);",

    /* 2: the hosted flow */
    "ALTER TABLE sessions ADD COLUMN browser_hash BYTEA;"
    "ALTER TABLE sessions ADD COLUMN card_brand TEXT;"
    "ALTER TABLE sessions ADD COLUMN card_last4 TEXT;"
    "ALTER TABLE sessions ADD COLUMN processor_ref TEXT;"
    "CREATE INDEX sessions_pending_expiry ON sessions (expires_at) WHERE status = 'pending';",

    /* 3: webhooks and their outbox */
    "CREATE TABLE webhook_endpoints ("
    "  id TEXT PRIMARY KEY,"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),"
    "  url TEXT NOT NULL,"
    "  secret_sealed BYTEA NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  deleted_at BIGINT);"
    "CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, mode) "
    "  WHERE deleted_at IS NULL;"
    "CREATE TABLE events ("
    "  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  type TEXT NOT NULL,"
    "  session_id TEXT NOT NULL REFERENCES sessions(id),"
    "  created BIGINT NOT NULL);"
    "CREATE TABLE webhook_deliveries ("
    "  event_id TEXT NOT NULL REFERENCES events(id),"
    "  endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id),"
    "  status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_ms BIGINT NOT NULL,"
    "  lease_until_ms BIGINT NOT NULL DEFAULT 0,"
    "  last_attempt_ms BIGINT,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  PRIMARY KEY (event_id, endpoint_id));"
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) "
    "  WHERE status = 'pending';",

    /* 4: policy versions published to the store, and which one is active */
    "CREATE TABLE policy_bundles ("
    "  version TEXT PRIMARY KEY,"
    "  bundle BYTEA NOT NULL,"
    "  created BIGINT NOT NULL);"
    "CREATE TABLE policy_activations ("
    "  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  version TEXT NOT NULL REFERENCES policy_bundles(version),"
    "  action TEXT NOT NULL CHECK (action IN ('publish', 'rollback')),"
    "  actor TEXT NOT NULL,"
    "  at BIGINT NOT NULL);",

    /* 5: deliveries in flight per endpoint, for a fair claim */
    "CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (endpoint_id) "
    "  WHERE lease_until_ms > 0;",

    /* 6 (SQLite's 9): sessions are read and listed under (tenant, mode):
     * one mode's list must not walk the other mode's sessions */
    "DROP INDEX sessions_by_tenant;"
    "DROP INDEX sessions_by_contractor;"
    "CREATE INDEX sessions_by_tenant_mode ON sessions (tenant_id, mode, seq);"
    "CREATE INDEX sessions_by_tenant_mode_contractor ON sessions "
    "  (tenant_id, mode, contractor_id, seq);",

    /* 7 (SQLite's 10): claims endpoint by endpoint, never by a scan of every due row;
     * an endpoint that does not answer is paused (store_delivery_record) */
    "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries "
    "  (endpoint_id, next_attempt_ms) WHERE status = 'pending';"
    "DROP INDEX webhook_deliveries_due;"
    "ALTER TABLE webhook_endpoints ADD COLUMN failures INTEGER NOT NULL DEFAULT 0,"
    "  ADD COLUMN paused_until_ms BIGINT NOT NULL DEFAULT 0;",

    /* 8 (SQLite's 11): a tenant's events, newest first, for GET /api/v1/events */
    "CREATE INDEX events_by_tenant ON events (tenant_id, seq);",

    /* 9 (SQLite's 12): endpoints a tenant can change, filter and pause */
    "ALTER TABLE webhook_endpoints ADD COLUMN description TEXT NOT NULL DEFAULT '',"
    "  ADD COLUMN enabled_events TEXT NOT NULL DEFAULT '*',"
    "  ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0,"
    "  ADD COLUMN previous_secret_sealed BYTEA,"
    "  ADD COLUMN previous_until_ms BIGINT NOT NULL DEFAULT 0;",
};

/* The events of tenant $1's sessions of mode $2, each beside its session
 * (the events' columns renamed, so SESSION_COLUMNS names the session's). */
#define TENANT_EVENTS                                                          \
    "FROM (SELECT seq AS ev_seq, id AS ev_id, tenant_id AS ev_tenant, type AS ev_type, " \
    "session_id AS ev_session, created AS ev_created FROM events) ev "        \
    "JOIN sessions ON id = ev_session WHERE ev_tenant = $1 AND mode = $2"

/* The session as the API shows it, "now" being parameter now: a pending
 * session past its expiry reads as expired. */
#define SESSION_COLUMNS(now)                                                   \
    "id, tenant_id, contractor_id, return_url, mode, "                         \
    "CASE WHEN status = 'pending' AND expires_at <= " now " THEN 'expired' "   \
    "ELSE status END, policy_version, created, expires_at, "                   \
    "coalesce(completed_at, 0), coalesce(cancelled_at, 0)"

#define ENDPOINT_COLUMNS                                                       \
    "id, tenant_id, mode, url, created, secret_sealed, description, enabled_events, disabled, " \
    "previous_secret_sealed, previous_until_ms"
#define POLICY_CHANNEL "hostflow_policy"

/* $4 contractor or NULL, $5 effective status or NULL, $7 now. */
#define LIST_FILTER                                                            \
    "AND ($4::text IS NULL OR contractor_id = $4) "                            \
    "AND ($5::text IS NULL OR (CASE WHEN status = 'pending' AND expires_at <= $7 " \
    "THEN 'expired' ELSE status END) = $5)"

/* Every statement the store runs, prepared once per connection:
 * X(name, is a read that may be retried on a new connection, sql). The
 * statements that find sessions for the API take the tenant as $1 and the
 * mode as $2 (store.h). */
#define STATEMENTS(X)                                                          \
    X(TENANT_INSERT, 0, "INSERT INTO tenants (id, name, created) VALUES ($1, $2, $3)") \
    X(TENANT_GET, 1, "SELECT id, name, created FROM tenants WHERE id = $1")   \
    X(TENANT_ALL, 1, "SELECT id, name, created FROM tenants ORDER BY created, id") \
    X(KEYS_OF_TENANT, 1, "SELECT id, tenant_id, mode, prefix, coalesce(revoked_at, 0), " \
      "created FROM api_keys WHERE tenant_id = $1 ORDER BY created, id")       \
    X(CONTRACTORS_OF_TENANT, 1, "SELECT id, tenant_id, coalesce(name, ''), created " \
      "FROM contractors WHERE tenant_id = $1 ORDER BY created, id")            \
    X(TENANT_LOCK, 0, "SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE") \
    X(HOSTS_DELETE, 0, "DELETE FROM tenant_redirect_hosts WHERE tenant_id = $1") \
    X(HOST_INSERT, 0, "INSERT INTO tenant_redirect_hosts (tenant_id, position, host) " \
      "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")                            \
    X(HOSTS_GET, 1, "SELECT host FROM tenant_redirect_hosts WHERE tenant_id = $1 " \
      "ORDER BY position")                                                     \
    X(KEY_INSERT, 0, "INSERT INTO api_keys (id, tenant_id, mode, prefix, secret_hash, " \
      "created) VALUES ($1, $2, $3, $4, $5, $6)")                              \
    X(KEY_REVOKE, 0, "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) " \
      "WHERE id = $1")                                                         \
    X(KEY_FIND, 1, "SELECT id, tenant_id, mode, prefix, coalesce(revoked_at, 0), " \
      "encode(secret_hash, 'hex') FROM api_keys WHERE secret_hash = $1")      \
    X(CONTRACTOR_INSERT, 0, "INSERT INTO contractors (id, tenant_id, name, created) " \
      "VALUES ($1, $2, $3, $4)")                                               \
    X(CONTRACTOR_CHECK, 1, "SELECT 1 FROM contractors WHERE id = $1 AND tenant_id = $2") \
    X(SESSION_INSERT, 0, "INSERT INTO sessions (id, tenant_id, contractor_id, return_url, " \
      "mode, token_hash, status, policy_version, created, expires_at) "        \
      "VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)")                \
    X(SESSION_GET, 1, "SELECT " SESSION_COLUMNS("$4") " FROM sessions "       \
      "WHERE tenant_id = $1 AND mode = $2 AND id = $3")                        \
    X(SESSION_SEQ, 1, "SELECT seq FROM sessions "                              \
      "WHERE tenant_id = $1 AND mode = $2 AND id = $3")                        \
    X(SESSION_LIST_OLDER, 1, "SELECT " SESSION_COLUMNS("$7") " FROM sessions " \
      "WHERE tenant_id = $1 AND mode = $2 AND seq < $3 " LIST_FILTER          \
      " ORDER BY seq DESC LIMIT $6")                                           \
    X(SESSION_LIST_NEWER, 1, "SELECT * FROM (SELECT " SESSION_COLUMNS("$7") ", seq " \
      "FROM sessions WHERE tenant_id = $1 AND mode = $2 AND seq > $3 " LIST_FILTER \
      " ORDER BY seq ASC LIMIT $6) page ORDER BY seq DESC")                   \
    X(SESSION_BY_TOKEN, 1, "SELECT " SESSION_COLUMNS("$2") " FROM sessions "  \
      "WHERE token_hash = $1 AND status = 'pending' AND expires_at > $2 "      \
      "AND redeemed_at IS NULL")                                               \
    X(SESSION_REDEEM, 0, "UPDATE sessions SET redeemed_at = $3, browser_hash = $2 " \
      "WHERE token_hash = $1 AND status = 'pending' AND expires_at > $3 "      \
      "AND redeemed_at IS NULL RETURNING " SESSION_COLUMNS("$3"))             \
    X(SESSION_FOR_BROWSER, 1, "SELECT " SESSION_COLUMNS("$2") ", "            \
      "encode(browser_hash, 'hex') FROM sessions "                             \
      "WHERE id = $1 AND browser_hash IS NOT NULL")                            \
    X(SESSION_COMPLETE, 0, "UPDATE sessions SET status = 'completed', completed_at = $4, " \
      "card_brand = $5, card_last4 = $6, processor_ref = $7 "                  \
      "WHERE tenant_id = $1 AND mode = $2 AND id = $3 AND status = 'pending' " \
      "AND expires_at > $4 RETURNING " SESSION_COLUMNS("$4"))                  \
    X(SESSION_CANCEL, 0, "UPDATE sessions SET status = 'cancelled', cancelled_at = $4 " \
      "WHERE tenant_id = $1 AND mode = $2 AND id = $3 AND status = 'pending' " \
      "AND expires_at > $4 RETURNING " SESSION_COLUMNS("$4"))                  \
    X(EXPIRY_LOCK_TRY, 0, "SELECT pg_try_advisory_xact_lock(" EXPIRY_LOCK ")") \
    X(SESSIONS_EXPIRE, 0, "UPDATE sessions SET status = 'expired' WHERE id IN " \
      "(SELECT id FROM sessions WHERE status = 'pending' AND expires_at <= $1 " \
      "LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, tenant_id, mode")        \
    X(IDEM_GET, 1, "SELECT encode(request_hash, 'hex'), session_id FROM idempotency_keys " \
      "WHERE tenant_id = $1 AND key = $2 AND created > $3")                    \
    X(IDEM_CLAIM, 0, "INSERT INTO idempotency_keys AS k (tenant_id, key, request_hash, " \
      "session_id, created) VALUES ($1, $2, $3, $4, $5) "                      \
      "ON CONFLICT (tenant_id, key) DO UPDATE SET request_hash = excluded.request_hash, " \
      "session_id = excluded.session_id, created = excluded.created "          \
      "WHERE k.created <= $6 RETURNING 1")                                     \
    X(IDEM_PURGE, 0, "DELETE FROM idempotency_keys WHERE created <= $1")       \
    X(PING, 1, "SELECT pg_is_in_recovery()")                                  \
    X(EVENT_INSERT, 0, "INSERT INTO events (id, tenant_id, type, session_id, created) " \
      "VALUES ($1, $2, $3, $4, $5)")                                           \
    X(DELIVERIES_INSERT, 0, "INSERT INTO webhook_deliveries (event_id, endpoint_id, " \
      "status, next_attempt_ms) SELECT $1, id, 'pending', $4 FROM webhook_endpoints " \
      "WHERE tenant_id = $2 AND mode = $3 AND deleted_at IS NULL AND "         \
      "(enabled_events = '*' OR $5 = ANY (string_to_array(enabled_events, ',')))") \
    X(ENDPOINT_INSERT, 0, "INSERT INTO webhook_endpoints (id, tenant_id, mode, url, " \
      "secret_sealed, created, description, enabled_events) "                  \
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")                               \
    X(ENDPOINT_ROLL, 0, "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, " \
      "previous_until_ms = $5, secret_sealed = $4 "                            \
      "WHERE tenant_id = $1 AND mode = $2 AND id = $3 AND deleted_at IS NULL") \
    X(ENDPOINT_UPDATE, 0, "UPDATE webhook_endpoints SET url = $4, description = $5, " \
      "enabled_events = $6, disabled = $7 "                                    \
      "WHERE tenant_id = $1 AND mode = $2 AND id = $3 AND deleted_at IS NULL") \
    X(ENDPOINT_COUNT, 0, "SELECT count(*) FROM webhook_endpoints "             \
      "WHERE tenant_id = $1 AND mode = $2 AND deleted_at IS NULL")             \
    X(ENDPOINT_LIST, 1, "SELECT " ENDPOINT_COLUMNS " FROM webhook_endpoints "  \
      "WHERE tenant_id = $1 AND mode = $2 AND deleted_at IS NULL "             \
      "ORDER BY created DESC, id DESC LIMIT $3")                               \
    X(ENDPOINT_GET, 1, "SELECT " ENDPOINT_COLUMNS " FROM webhook_endpoints "   \
      "WHERE tenant_id = $1 AND mode = $2 AND id = $3 AND deleted_at IS NULL") \
    X(ENDPOINT_BY_ID, 1, "SELECT " ENDPOINT_COLUMNS " FROM webhook_endpoints " \
      "WHERE id = $1 AND deleted_at IS NULL")                                  \
    X(ENDPOINT_DELETE, 0, "UPDATE webhook_endpoints SET deleted_at = $4 "      \
      "WHERE tenant_id = $1 AND mode = $2 AND id = $3 AND deleted_at IS NULL") \
    X(ENDPOINT_DELIVERIES_FAIL, 0, "UPDATE webhook_deliveries SET status = 'failed', " \
      "lease_until_ms = 0, last_error = 'endpoint deleted' "                   \
      "WHERE endpoint_id = $1 AND status = 'pending'")                         \
    X(ENDPOINT_NEWEST, 1, "SELECT " ENDPOINT_COLUMNS " FROM webhook_endpoints " \
      "ORDER BY created DESC, id DESC LIMIT 1")                                \
    X(ENDPOINTS_DUE, 1, "WITH RECURSIVE ep(id) AS (SELECT (SELECT min(endpoint_id) " \
      "FROM webhook_deliveries WHERE status = 'pending') UNION ALL "           \
      "SELECT (SELECT min(endpoint_id) FROM webhook_deliveries "               \
      "WHERE status = 'pending' AND endpoint_id > ep.id) FROM ep WHERE ep.id IS NOT NULL) " \
      "SELECT id, tenant_id, gone, failures, slots, tenant_slots FROM ("       \
      "SELECT e.id, e.tenant_id, e.deleted_at IS NOT NULL AS gone, e.failures, " \
      "e.paused_until_ms, e.disabled, (CASE WHEN e.failures > 0 THEN 1 ELSE $3 END) - "    \
      "(SELECT count(*) FROM webhook_deliveries l WHERE l.endpoint_id = e.id " \
      "AND l.lease_until_ms > 0 AND l.lease_until_ms > $1) AS slots, $4 - "    \
      "(SELECT count(*) FROM webhook_deliveries l JOIN webhook_endpoints t "   \
      "ON t.id = l.endpoint_id WHERE l.lease_until_ms > 0 AND l.lease_until_ms > $1 " \
      "AND t.tenant_id = e.tenant_id) AS tenant_slots, "                       \
      "(SELECT d.next_attempt_ms FROM webhook_deliveries d WHERE d.endpoint_id = e.id " \
      "AND d.status = 'pending' AND d.lease_until_ms <= $1 ORDER BY d.next_attempt_ms " \
      "LIMIT 1) AS due FROM ep JOIN webhook_endpoints e ON e.id = ep.id) c "  \
      "WHERE gone OR (disabled = 0 AND paused_until_ms <= $1 AND slots > 0 AND tenant_slots > 0 " \
      "AND due <= $1) ORDER BY gone DESC, due LIMIT $2")                       \
    X(ENDPOINT_CLAIM, 0, "UPDATE webhook_deliveries d SET lease_until_ms = $2 + $3 " \
      "FROM events ev WHERE (d.event_id, d.endpoint_id) IN (SELECT w.event_id, " \
      "w.endpoint_id FROM webhook_deliveries w WHERE w.endpoint_id = $1 "      \
      "AND w.status = 'pending' AND w.next_attempt_ms <= $2 AND w.lease_until_ms <= $2 " \
      "ORDER BY w.next_attempt_ms LIMIT $4 FOR UPDATE SKIP LOCKED) "           \
      "AND ev.id = d.event_id RETURNING d.event_id, ev.type, ev.created, "     \
      "ev.session_id, ev.tenant_id, d.attempts, d.lease_until_ms")             \
    X(DELIVERY_RECORD, 0, "UPDATE webhook_deliveries SET status = $3, "        \
      "attempts = attempts + 1, next_attempt_ms = $4, lease_until_ms = 0, "    \
      "last_attempt_ms = $5, last_status = $6, last_error = $7 "               \
      "WHERE event_id = $1 AND endpoint_id = $2 AND status = 'pending' "       \
      "AND lease_until_ms = $8")                                               \
    X(ENDPOINT_ANSWERED, 0, "UPDATE webhook_endpoints SET failures = 0, "       \
      "paused_until_ms = 0 WHERE id = $1 AND failures > 0")                    \
    X(ENDPOINT_PAUSE, 0, "UPDATE webhook_endpoints SET failures = failures + 1, " \
      "paused_until_ms = $2 WHERE id = $1 AND paused_until_ms < $3")           \
    X(EVENTS_LIST, 1, "SELECT ev.id, ev.type, ev.tenant_id, ev.session_id, ev.created, " \
      "coalesce(d.endpoint_id, ''), coalesce(d.status, 'none'), "              \
      "coalesce(d.attempts, 0), coalesce(d.next_attempt_ms, 0), "              \
      "coalesce(d.last_status, 0), coalesce(d.last_error, '') FROM events ev " \
      "LEFT JOIN webhook_deliveries d ON d.event_id = ev.id "                  \
      "WHERE $1::text IS NULL OR d.status = $1 ORDER BY ev.seq DESC, d.endpoint_id LIMIT $2") \
    X(EVENT_EXISTS, 1, "SELECT 1 FROM events WHERE id = $1")                   \
    X(TENANT_EVENT_GET, 1, "SELECT " SESSION_COLUMNS("$4") ", ev_id, ev_type, ev_created " \
      TENANT_EVENTS " AND ev_id = $3")                                         \
    X(TENANT_EVENT_SEQ, 1, "SELECT ev_seq " TENANT_EVENTS " AND ev_id = $3")   \
    X(TENANT_EVENTS_OLDER, 1, "SELECT " SESSION_COLUMNS("$6") ", ev_id, ev_type, ev_created " \
      TENANT_EVENTS " AND ev_seq < $3 AND ($4::text IS NULL OR ev_type = $4) " \
      "ORDER BY ev_seq DESC LIMIT $5")                                         \
    X(TENANT_EVENTS_NEWER, 1, "SELECT * FROM (SELECT " SESSION_COLUMNS("$6") ", ev_id, ev_type, " \
      "ev_created, ev_seq " TENANT_EVENTS " AND ev_seq > $3 AND ($4::text IS NULL OR ev_type = $4) " \
      "ORDER BY ev_seq ASC LIMIT $5) page ORDER BY ev_seq DESC")               \
    X(EVENT_RETRY, 0, "UPDATE webhook_deliveries SET status = 'pending', "     \
      "next_attempt_ms = $2, lease_until_ms = 0 WHERE event_id = $1 AND status = 'failed' " \
      "AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL)") \
    X(EVENT_ENDPOINTS_UNPAUSE, 0, "UPDATE webhook_endpoints SET paused_until_ms = 0 " \
      "WHERE paused_until_ms > 0 AND id IN (SELECT endpoint_id FROM webhook_deliveries " \
      "WHERE event_id = $1)")                                                  \
    X(BUNDLE_PUT, 0, "INSERT INTO policy_bundles (version, bundle, created) "  \
      "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")                            \
    X(BUNDLE_GET, 1, "SELECT bundle FROM policy_bundles WHERE version = $1")   \
    X(ACTIVATION_PUT, 0, "INSERT INTO policy_activations (version, action, actor, at) " \
      "VALUES ($1, $2, $3, $4) RETURNING seq")                                 \
    X(ACTIVATIONS, 1, "SELECT seq, version, action, actor, at FROM policy_activations " \
      "ORDER BY seq DESC LIMIT $1")                                            \
    X(POLICY_NOTIFY, 0, "SELECT pg_notify('" POLICY_CHANNEL "', $1)")

enum stmt_id {
#define STMT_ENUM(name, read, sql) Q_##name,
    STATEMENTS(STMT_ENUM)
#undef STMT_ENUM
    Q_COUNT
};

static const struct {
    const char *name;          /* the prepared statement's name, and for logs */
    int read;                  /* 1: a plain read, safe to run again */
    const char *sql;
} stmts[] = {
#define STMT_ROW(name, read, sql) {#name, read, sql},
    STATEMENTS(STMT_ROW)
#undef STMT_ROW
};

struct store {
    const struct store_ops *ops; /* &store_pg_ops (store_backend.h) */
    PGconn *conn;              /* the connection; one thread at a time */
    char prepared[Q_COUNT];    /* 1 once stmts[i] is prepared on conn */
    int in_tx;                 /* inside a write transaction */
    int in_read;               /* inside a read snapshot (store_read_begin) */
    int listening;             /* LISTEN hostflow_policy was sent on conn */
    char where[WHERE_MAX];     /* the URL without its password, for messages */
};

/* Nothing to do: each connection commits its own transactions. It exists
 * so that the server starts and stops the same on either database. */
struct store_writer {
    const struct store_ops *ops; /* &store_pg_ops */
};

/* Parameters of one statement: text, or binary for hashes. */
struct params {
    int n;
    const char *values[PARAMS_MAX];
    int lengths[PARAMS_MAX];
    int formats[PARAMS_MAX];
    char ints[PARAMS_MAX][24]; /* the text of integer parameters */
};

static void p_text(struct params *p, const char *v)
{
    assert(p->n < PARAMS_MAX);
    p->values[p->n] = v;
    p->lengths[p->n] = 0;
    p->formats[p->n] = 0;
    p->n++;
}

static void p_int(struct params *p, long long v)
{
    assert(p->n < PARAMS_MAX);
    snprintf(p->ints[p->n], sizeof p->ints[0], "%lld", v);
    p_text(p, p->ints[p->n]);
}

/* n bytes sent as binary (bytea), borrowed until the statement ran. */
static void p_bytes(struct params *p, const void *v, size_t n)
{
    assert(p->n < PARAMS_MAX);
    p->values[p->n] = v;
    p->lengths[p->n] = (int)n;
    p->formats[p->n] = 1;
    p->n++;
}

static void p_hash(struct params *p, const unsigned char h[HF_HASH_BYTES])
{
    p_bytes(p, h, HF_HASH_BYTES);
}

/* NULL for a NULL v (p_text sends NULL as SQL NULL too). */
static void p_int_or_null(struct params *p, long long v, int is_null)
{
    if (is_null)
        p_text(p, NULL);
    else
        p_int(p, v);
}

/* ---- the connection string never reaches a message with its password ---- */

/* A conninfo option's value as libpq read it, NULL when unset or empty. */
static const char *option(const PQconninfoOption *o, const char *keyword)
{
    for (; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o->val && *o->val ? o->val : NULL;
    return NULL;
}

/* Where the database is, from libpq's reading of the URL: user, host,
 * port and database (from the authority, the path or ?host= and friends),
 * never the password, whether in the userinfo or a ?password= parameter. */
static void describe_options(const PQconninfoOption *o, char *out, size_t outlen)
{
    const char *user = option(o, "user"), *host = option(o, "host");
    const char *port = option(o, "port"), *dbname = option(o, "dbname");

    snprintf(out, outlen, "postgresql://%s%s%s%s%s/%s", user ? user : "", user ? "@" : "",
             host ? host : "", port ? ":" : "", port ? port : "", dbname ? dbname : "");
}

void store_pg_describe(const char *url, char *out, size_t outlen)
{
    PQconninfoOption *o = PQconninfoParse(url, NULL);

    if (o)
        describe_options(o, out, outlen);
    else
        snprintf(out, outlen, "a postgres:// URL libpq cannot read");
    PQconninfoFree(o);
}

/* Copy a libpq message into out: one line (line breaks and tabs become
 * one space), with password (NULL or "" for none) cut out should the
 * message quote it, and when cut_quoted every "..." span cut out too: what
 * libpq quotes from a URL it could not read may be the password, which
 * it then never told us. */
static void scrub(const char *msg, const char *password, int cut_quoted, char *out,
                  size_t outlen)
{
    size_t len = password ? strlen(password) : 0, o = 0;
    const char *end;

    while (msg && *msg && o + 1 < outlen) {
        const char *tag = "[redacted]";
        size_t skip = 0;

        if (len >= 1 && strncmp(msg, password, len) == 0) {
            skip = len;
        } else if (cut_quoted && *msg == '"' && (end = strchr(msg + 1, '"')) != NULL) {
            skip = (size_t)(end + 1 - msg);
            tag = "\"[redacted]\"";
        }
        if (skip) {
            while (*tag && o + 1 < outlen)
                out[o++] = *tag++;
            msg += skip;
            continue;
        }
        if ((unsigned char)*msg < 0x20 || *msg == ' ') {
            if (o > 0 && out[o - 1] != ' ')
                out[o++] = ' ';
        } else {
            out[o++] = *msg;
        }
        msg++;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/* ---- running statements ----------------------------------------------- */

/* A failed statement's cause in the log: SQLSTATE and primary message. */
static void log_failure(struct store *s, enum log_level level, const char *what,
                        const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char msg[512];

    scrub(primary ? primary : PQerrorMessage(s->conn), NULL, 0, msg, sizeof msg);
    log_msg(level, "store: %s on %s: %s%s%s", what, s->where, state ? state : "",
            state ? " " : "", msg);
}

/* libpq's NOTICE lines (e.g. "relation already exists, skipping") go to
 * the log at debug level instead of raw onto stderr. */
static void on_notice(void *arg, const char *message)
{
    char msg[512];

    (void)arg;
    scrub(message, NULL, 0, msg, sizeof msg);
    log_msg(HF_LOG_DEBUG, "store: postgres: %s", msg);
}

/* After the server dropped the connection: PQreset once. Statements must
 * be prepared again on the new session, and any transaction is gone. */
static int reconnect(struct store *s)
{
    char msg[512];

    log_msg(HF_LOG_WARN, "store: connection to %s lost; reconnecting", s->where);
    PQreset(s->conn);
    memset(s->prepared, 0, sizeof s->prepared);
    s->in_tx = 0;
    s->in_read = 0;
    s->listening = 0; /* a new session listens to nothing yet */
    if (PQstatus(s->conn) != CONNECTION_OK) {
        scrub(PQerrorMessage(s->conn), NULL, 0, msg, sizeof msg);
        log_msg(HF_LOG_ERROR, "store: cannot reconnect to %s: %s", s->where, msg);
        return HF_ESTORE;
    }
    return 0;
}

/* Outside a write transaction, a connection already known to be broken is
 * reset before use. Inside one it is not: the statements before the break
 * are lost, so the transaction must fail rather than go on half-done. */
static int usable(struct store *s)
{
    if (PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    if (!s->in_tx)
        return reconnect(s);
    log_msg(HF_LOG_ERROR, "store: connection to %s lost inside a transaction; it is "
            "rolled back", s->where);
    return HF_ESTORE;
}

/* A failed statement inside the read snapshot aborts it; end it so that
 * the reads after it still run (without the snapshot). */
static void after_failure(struct store *s)
{
    if (s->in_read && PQtransactionStatus(s->conn) == PQTRANS_INERROR) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        s->in_read = 0;
    }
}

/* Whether a failure may be repeated on a fresh connection: only the
 * first, when the connection broke, outside a write transaction, for a
 * statement whose repetition cannot do anything twice. */
static int retriable(const struct store *s, int attempt, int idempotent)
{
    return attempt == 0 && idempotent && !s->in_tx && PQstatus(s->conn) == CONNECTION_BAD;
}

/* Prepare q on this connection unless it is; NULL, or the failed result. */
static PGresult *prepare(struct store *s, enum stmt_id q)
{
    PGresult *r;

    if (s->prepared[q])
        return NULL;
    r = PQprepare(s->conn, stmts[q].name, stmts[q].sql, 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return r;
    PQclear(r);
    s->prepared[q] = 1;
    return NULL;
}

/* Run statement q; its result (the caller PQclears it), or NULL with the
 * cause logged. */
static PGresult *run(struct store *s, enum stmt_id q, const struct params *p)
{
    for (int attempt = 0;; attempt++) {
        PGresult *r;
        int retry;

        if (usable(s) != 0)
            break;
        if (!(r = prepare(s, q))) {
            ExecStatusType st;

            r = PQexecPrepared(s->conn, stmts[q].name, p->n, p->values, p->lengths,
                               p->formats, 0);
            st = PQresultStatus(r);
            if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
                return r;
        }
        retry = retriable(s, attempt, stmts[q].read);
        log_failure(s, retry ? HF_LOG_WARN : HF_LOG_ERROR, stmts[q].name, r);
        PQclear(r);
        if (!retry || reconnect(s) != 0)
            break;
    }
    after_failure(s);
    return NULL;
}

/* Run q for its effect only; 0 or HF_ESTORE. *changed (if given) gets the
 * number of rows it changed. */
static int exec_stmt(struct store *s, enum stmt_id q, const struct params *p, int *changed)
{
    PGresult *r = run(s, q, p);

    if (!r)
        return HF_ESTORE;
    if (changed)
        *changed = atoi(PQcmdTuples(r));
    PQclear(r);
    return 0;
}

/* A transaction-control command; a broken connection is reset and the
 * command sent again when retry is set (BEGIN: nothing was lost). */
static int control(struct store *s, const char *sql, const char *want, int retry)
{
    for (int attempt = 0;; attempt++) {
        PGresult *r;
        int again;

        if (usable(s) != 0)
            return HF_ESTORE;
        r = PQexec(s->conn, sql);
        if (PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), want) == 0) {
            PQclear(r);
            return 0;
        }
        again = retriable(s, attempt, retry);
        log_failure(s, again ? HF_LOG_WARN : HF_LOG_ERROR, sql, r);
        PQclear(r);
        if (!again || reconnect(s) != 0)
            return HF_ESTORE;
    }
}

/* ---- transactions -------------------------------------------------------- */

static void pg_read_end(struct store *s);

/* Start a write transaction (ending the read snapshot first, as the SQLite
 * store does before it hands a write to its writer). */
static int tx_begin(struct store *s)
{
    pg_read_end(s);
    if (control(s, "BEGIN", "BEGIN", 1) != 0)
        return HF_ESTORE;
    s->in_tx = 1;
    return 0;
}

/* Commit when rc is 0, else roll back; rc, or HF_ESTORE if the commit
 * failed (the outcome of a commit cut off by a broken connection is
 * unknown to us; the next call reconnects). */
static int tx_finish(struct store *s, int rc)
{
    if (PQstatus(s->conn) != CONNECTION_OK) {
        rc = HF_ESTORE;
    } else if (rc == 0) {
        if (control(s, "COMMIT", "COMMIT", 0) != 0)
            rc = HF_ESTORE;
    } else {
        control(s, "ROLLBACK", "ROLLBACK", 0);
    }
    s->in_tx = 0;
    return rc;
}

/* ---- results ------------------------------------------------------------ */

static void copy_val(const PGresult *r, int row, int col, char *dst, size_t n)
{
    snprintf(dst, n, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static long long int_val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* 1 when column col (hex text of a bytea) holds h; constant time. */
static int hash_equal(const PGresult *r, int row, int col, const unsigned char h[HF_HASH_BYTES])
{
    char want[HF_HASH_HEX];
    const char *v = PQgetvalue(r, row, col);

    token_hex(h, HF_HASH_BYTES, want);
    return !PQgetisnull(r, row, col) && strlen(v) == HF_HASH_HEX - 1 &&
           token_equal(v, want, HF_HASH_HEX - 1);
}

static void read_session(const PGresult *r, int row, struct session *out)
{
    copy_val(r, row, 0, out->id, sizeof out->id);
    copy_val(r, row, 1, out->tenant_id, sizeof out->tenant_id);
    copy_val(r, row, 2, out->contractor_id, sizeof out->contractor_id);
    copy_val(r, row, 3, out->return_url, sizeof out->return_url);
    copy_val(r, row, 4, out->mode, sizeof out->mode);
    copy_val(r, row, 5, out->status, sizeof out->status);
    copy_val(r, row, 6, out->policy_version, sizeof out->policy_version);
    out->created = int_val(r, row, 7);
    out->expires_at = int_val(r, row, 8);
    out->completed_at = int_val(r, row, 9);
    out->cancelled_at = int_val(r, row, 10);
}

/* Run a lookup; 0 with the result in *out when it has a row (caller
 * PQclears), HF_ENOTFOUND for none, HF_ESTORE on failure. */
static int lookup(struct store *s, enum stmt_id q, const struct params *p, PGresult **out)
{
    PGresult *r = run(s, q, p);

    if (!r)
        return HF_ESTORE;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return HF_ENOTFOUND;
    }
    *out = r;
    return 0;
}

/* ---- schema ------------------------------------------------------------- */

static int simple(struct store *s, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        scrub(PQresultErrorMessage(r), NULL, 0, err, errlen);
        rc = HF_ESTORE;
    }
    PQclear(r);
    return rc;
}

static int schema_version(struct store *s, int *out)
{
    PGresult *r = PQexec(s->conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    int rc = HF_ESTORE;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        *out = atoi(PQgetvalue(r, 0, 0));
        rc = 0;
    }
    PQclear(r);
    return rc;
}

/* Bring the schema to the newest version, one transaction per step, under
 * an advisory lock: of several nodes starting at once, one migrates and
 * the others wait, then find nothing left to do. */
static int migrate(struct store *s, char *err, size_t errlen)
{
    int want = (int)(sizeof migrations / sizeof migrations[0]), have = 0, rc;
    char why[512], ignored[64];

    rc = simple(s, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", why, sizeof why);
    if (rc == 0)
        rc = simple(s, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       "  version INTEGER PRIMARY KEY,"
                       "  applied_at TIMESTAMPTZ NOT NULL DEFAULT now())", why, sizeof why);
    while (rc == 0) {
        char sql[96];

        if (schema_version(s, &have) != 0) {
            snprintf(why, sizeof why, "cannot read the schema version");
            rc = HF_ESTORE;
            break;
        }
        if (have >= want)
            break;
        snprintf(sql, sizeof sql, "INSERT INTO schema_migrations (version) VALUES (%d)",
                 have + 1);
        rc = simple(s, "BEGIN", why, sizeof why);
        if (rc == 0)
            rc = simple(s, migrations[have], why, sizeof why);
        if (rc == 0)
            rc = simple(s, sql, why, sizeof why);
        if (rc == 0)
            rc = simple(s, "COMMIT", why, sizeof why);
        if (rc != 0) {
            simple(s, "ROLLBACK", ignored, sizeof ignored);
            break;
        }
        log_msg(HF_LOG_INFO, "store: migrated the PostgreSQL schema to version %d", have + 1);
    }
    simple(s, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")", ignored, sizeof ignored);
    if (rc != 0) {
        snprintf(err, errlen, "cannot migrate the database at %s: %s", s->where, why);
        return HF_ESTORE;
    }
    if (have > want) {
        snprintf(err, errlen, "database schema version %d is newer than this hostflow "
                 "(%d); upgrade hostflow", have, want);
        return HF_ESTORE;
    }
    return 0;
}

/* Migrate once per process and database: the first connection does it,
 * the rest (one per worker thread) skip the lock round trips. */
static int migrate_once(struct store *s, const char *url, char *err, size_t errlen)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static char *done_for;      /* the url last brought up to date */
    int rc = 0;

    pthread_mutex_lock(&lock);
    if (!done_for || strcmp(done_for, url) != 0) {
        rc = migrate(s, err, errlen);
        if (rc == 0) {
            free(done_for);
            done_for = strdup(url);
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ---- store.h ------------------------------------------------------------ */

static void pg_close(struct store *s)
{
    if (!s)
        return;
    PQfinish(s->conn);
    free(s);
}

static int pg_open(const char *path, struct store **out, char *err, size_t errlen)
{
    /* the URL comes last: whatever it sets wins over these defaults */
    const char *const keys[] = {"application_name", "connect_timeout", "client_encoding",
                                "dbname", NULL};
    const char *const values[] = {"hostflow", CONNECT_TIMEOUT_S, "UTF8", path, NULL};
    struct store *s = calloc(1, sizeof *s);
    PQconninfoOption *o;
    char msg[512], *why = NULL;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    s->ops = &store_pg_ops;
    if (!(o = PQconninfoParse(path, &why))) {
        scrub(why ? why : "out of memory", NULL, 1, msg, sizeof msg);
        snprintf(err, errlen, "cannot connect to PostgreSQL: libpq cannot read the --db "
                 "URL: %s", msg);
        PQfreemem(why);
        pg_close(s);
        return HF_ESTORE;
    }
    describe_options(o, s->where, sizeof s->where);
    s->conn = PQconnectdbParams(keys, values, 1);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        scrub(s->conn ? PQerrorMessage(s->conn) : "out of memory", option(o, "password"), 0,
              msg, sizeof msg);
        snprintf(err, errlen, "cannot connect to PostgreSQL at %s: %s", s->where, msg);
        PQconninfoFree(o);
        pg_close(s);
        return HF_ESTORE;
    }
    PQconninfoFree(o);
    PQsetNoticeProcessor(s->conn, on_notice, NULL);
    if (migrate_once(s, path, err, errlen) != 0) {
        pg_close(s);
        return HF_ESTORE;
    }
    *out = s;
    return 0;
}

/* The server answers and takes writes (a standby in recovery does not). */
static int pg_ping(struct store *s)
{
    struct params p = {0};
    PGresult *r = run(s, Q_PING, &p);
    int rc = HF_ESTORE;

    if (r && PQntuples(r) == 1) {
        rc = strcmp(PQgetvalue(r, 0, 0), "f") == 0 ? 0 : HF_ESTORE;
        if (rc != 0)
            log_msg(HF_LOG_WARN, "store: %s is in recovery (read-only)", s->where);
    }
    PQclear(r);
    return rc;
}

/* One REPEATABLE READ, READ ONLY transaction: the reads until
 * store_read_end see one snapshot. */
static void pg_read_begin(struct store *s)
{
    if (s->in_read || s->in_tx)
        return;
    if (control(s, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", "BEGIN", 1) == 0)
        s->in_read = 1;
}

static void pg_read_end(struct store *s)
{
    if (!s->in_read)
        return;
    s->in_read = 0;
    if (PQstatus(s->conn) == CONNECTION_OK)
        control(s, "COMMIT", "COMMIT", 0);
}

static int put_hosts(struct store *s, const char *tenant_id, const char *const *hosts,
                     size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        struct params p = {0};

        p_text(&p, tenant_id);
        p_int(&p, (long long)i);
        p_text(&p, hosts[i]);
        rc = exec_stmt(s, Q_HOST_INSERT, &p, NULL);
    }
    return rc;
}

/* 0 when the tenant exists (locked until the transaction ends when lock
 * is set), HF_ENOTFOUND when not, HF_ESTORE on failure. */
static int tenant_exists(struct store *s, const char *tenant_id, int lock)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    p_text(&p, tenant_id);
    rc = lookup(s, lock ? Q_TENANT_LOCK : Q_TENANT_GET, &p, &r);
    PQclear(r);
    return rc;
}

static int pg_tenant_get(struct store *s, const char *tenant_id, struct tenant *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    p_text(&p, tenant_id);
    if ((rc = lookup(s, Q_TENANT_GET, &p, &r)) != 0)
        return rc;
    copy_val(r, 0, 0, out->id, sizeof out->id);
    copy_val(r, 0, 1, out->name, sizeof out->name);
    out->created = int_val(r, 0, 2);
    PQclear(r);
    if (!(r = run(s, Q_HOSTS_GET, &p)))
        return HF_ESTORE;
    out->n_hosts = 0;
    for (int i = 0; i < PQntuples(r) && out->n_hosts < HF_HOSTS_MAX; i++)
        copy_val(r, i, 0, out->hosts[out->n_hosts++], sizeof out->hosts[0]);
    PQclear(r);
    return 0;
}

static int pg_tenant_create(struct store *s, const char *name, const char *const *hosts,
                            size_t n_hosts, struct tenant *out)
{
    struct params p = {0};
    struct tenant t;
    int rc;

    if (n_hosts > HF_HOSTS_MAX)
        return HF_EINVAL;
    memset(&t, 0, sizeof t);
    token_id("tn_", t.id, sizeof t.id);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.created = clock_now_s();
    if ((rc = tx_begin(s)) != 0)
        return rc;
    p_text(&p, t.id);
    p_text(&p, t.name);
    p_int(&p, t.created);
    rc = exec_stmt(s, Q_TENANT_INSERT, &p, NULL);
    if (rc == 0)
        rc = put_hosts(s, t.id, hosts, n_hosts);
    rc = tx_finish(s, rc);
    if (rc == 0)
        rc = pg_tenant_get(s, t.id, out);
    return rc;
}

/* The tenant row is locked first, so that two replacements at once apply
 * one after the other instead of mixing their lists (a NO KEY lock: the
 * tenant's session inserts, which only share-lock its key, go on). */
static int pg_tenant_set_hosts(struct store *s, const char *tenant_id,
                               const char *const *hosts, size_t n_hosts)
{
    struct params p = {0};
    int rc;

    if (n_hosts > HF_HOSTS_MAX)
        return HF_EINVAL;
    if ((rc = tx_begin(s)) != 0)
        return rc;
    rc = tenant_exists(s, tenant_id, 1);
    if (rc == 0) {
        p_text(&p, tenant_id);
        rc = exec_stmt(s, Q_HOSTS_DELETE, &p, NULL);
    }
    if (rc == 0)
        rc = put_hosts(s, tenant_id, hosts, n_hosts);
    return tx_finish(s, rc);
}

static int pg_key_create(struct store *s, const char *tenant_id, const char *mode,
                         const unsigned char secret_hash[HF_HASH_BYTES],
                         const char *prefix, struct api_key *out)
{
    struct params p = {0};
    struct api_key k;
    int rc;

    memset(&k, 0, sizeof k);
    token_id("key_", k.id, sizeof k.id);
    snprintf(k.tenant_id, sizeof k.tenant_id, "%s", tenant_id);
    snprintf(k.mode, sizeof k.mode, "%s", mode);
    snprintf(k.prefix, sizeof k.prefix, "%s", prefix);
    if ((rc = tx_begin(s)) != 0)
        return rc;
    rc = tenant_exists(s, tenant_id, 0);
    if (rc == 0) {
        p_text(&p, k.id);
        p_text(&p, k.tenant_id);
        p_text(&p, k.mode);
        p_text(&p, k.prefix);
        p_hash(&p, secret_hash);
        p_int(&p, clock_now_s());
        rc = exec_stmt(s, Q_KEY_INSERT, &p, NULL);
    }
    rc = tx_finish(s, rc);
    if (rc == 0)
        *out = k;
    return rc;
}

static int pg_key_revoke(struct store *s, const char *key_id, long long now)
{
    struct params p = {0};
    int rc, changed = 0;

    if ((rc = tx_begin(s)) != 0)
        return rc;
    p_text(&p, key_id);
    p_int(&p, now);
    rc = exec_stmt(s, Q_KEY_REVOKE, &p, &changed);
    if (rc == 0 && changed == 0)
        rc = HF_ENOTFOUND;
    return tx_finish(s, rc);
}

static int pg_key_find(struct store *s, const unsigned char secret_hash[HF_HASH_BYTES],
                       struct api_key *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    p_hash(&p, secret_hash);
    if ((rc = lookup(s, Q_KEY_FIND, &p, &r)) != 0)
        return rc;
    if (hash_equal(r, 0, 5, secret_hash)) {
        copy_val(r, 0, 0, out->id, sizeof out->id);
        copy_val(r, 0, 1, out->tenant_id, sizeof out->tenant_id);
        copy_val(r, 0, 2, out->mode, sizeof out->mode);
        copy_val(r, 0, 3, out->prefix, sizeof out->prefix);
        out->revoked_at = int_val(r, 0, 4);
    } else {
        rc = HF_ENOTFOUND;
    }
    PQclear(r);
    return rc;
}

static int pg_contractor_create(struct store *s, const char *tenant_id, const char *name,
                                struct contractor *out)
{
    struct params p = {0};
    struct contractor c;
    int rc;

    memset(&c, 0, sizeof c);
    token_id("cn_", c.id, sizeof c.id);
    snprintf(c.tenant_id, sizeof c.tenant_id, "%s", tenant_id);
    snprintf(c.name, sizeof c.name, "%s", name ? name : "");
    if ((rc = tx_begin(s)) != 0)
        return rc;
    rc = tenant_exists(s, tenant_id, 0);
    if (rc == 0) {
        p_text(&p, c.id);
        p_text(&p, c.tenant_id);
        p_text(&p, name);
        p_int(&p, clock_now_s());
        rc = exec_stmt(s, Q_CONTRACTOR_INSERT, &p, NULL);
    }
    rc = tx_finish(s, rc);
    if (rc == 0)
        *out = c;
    return rc;
}

static int pg_tenant_each(struct store *s, int (*fn)(void *arg, const struct tenant *t),
                          void *arg)
{
    struct params p = {0};
    struct tenant *t = calloc(1, sizeof *t); /* its hosts make it large */
    PGresult *r = t ? run(s, Q_TENANT_ALL, &p) : NULL;
    int stop = 0;

    for (int i = 0; r && !stop && i < PQntuples(r); i++) {
        copy_val(r, i, 0, t->id, sizeof t->id);
        copy_val(r, i, 1, t->name, sizeof t->name);
        t->created = int_val(r, i, 2);
        stop = fn(arg, t);
    }
    free(t);
    if (!r)
        return HF_ESTORE;
    PQclear(r);
    return stop;
}

static int pg_key_each(struct store *s, const char *tenant_id,
                       int (*fn)(void *arg, const struct api_key *k), void *arg)
{
    struct params p = {0};
    struct api_key k;
    PGresult *r;
    int stop = 0;

    p_text(&p, tenant_id);
    if (!(r = run(s, Q_KEYS_OF_TENANT, &p)))
        return HF_ESTORE;
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        memset(&k, 0, sizeof k);
        copy_val(r, i, 0, k.id, sizeof k.id);
        copy_val(r, i, 1, k.tenant_id, sizeof k.tenant_id);
        copy_val(r, i, 2, k.mode, sizeof k.mode);
        copy_val(r, i, 3, k.prefix, sizeof k.prefix);
        k.revoked_at = int_val(r, i, 4);
        k.created = int_val(r, i, 5);
        stop = fn(arg, &k);
    }
    PQclear(r);
    return stop;
}

static int pg_contractor_each(struct store *s, const char *tenant_id,
                              int (*fn)(void *arg, const struct contractor *c), void *arg)
{
    struct params p = {0};
    struct contractor c;
    PGresult *r;
    int stop = 0;

    p_text(&p, tenant_id);
    if (!(r = run(s, Q_CONTRACTORS_OF_TENANT, &p)))
        return HF_ESTORE;
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        copy_val(r, i, 0, c.id, sizeof c.id);
        copy_val(r, i, 1, c.tenant_id, sizeof c.tenant_id);
        copy_val(r, i, 2, c.name, sizeof c.name);
        c.created = int_val(r, i, 3);
        stop = fn(arg, &c);
    }
    PQclear(r);
    return stop;
}

static int pg_contractor_check(struct store *s, const char *tenant_id,
                               const char *contractor_id)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    p_text(&p, contractor_id);
    p_text(&p, tenant_id);
    rc = lookup(s, Q_CONTRACTOR_CHECK, &p, &r);
    PQclear(r);
    return rc;
}

static int pg_session_get(struct store *s, const char *tenant_id, const char *mode,
                          const char *id, long long now, struct session *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_text(&p, id);
    p_int(&p, now);
    if ((rc = lookup(s, Q_SESSION_GET, &p, &r)) == 0)
        read_session(r, 0, out);
    PQclear(r);
    return rc;
}

/* The stored result for idem, if any: HF_EEXISTS with the session, or
 * HF_EIDEMPOTENCY for another body, or HF_ENOTFOUND. */
static int idem_lookup(struct store *s, const char *tenant_id, const char *mode,
                       const struct idempotency *idem, long long now, struct session *out)
{
    struct params p = {0};
    char session_id[HF_ID_MAX];
    PGresult *r = NULL;
    int rc, same;

    p_text(&p, tenant_id);
    p_text(&p, idem->key);
    p_int(&p, now - HF_IDEMPOTENCY_TTL);
    if ((rc = lookup(s, Q_IDEM_GET, &p, &r)) != 0)
        return rc;
    same = hash_equal(r, 0, 0, idem->request_hash);
    copy_val(r, 0, 1, session_id, sizeof session_id);
    PQclear(r);
    if (!same)
        return HF_EIDEMPOTENCY;
    rc = pg_session_get(s, tenant_id, mode, session_id, now, out);
    return rc == 0 ? HF_EEXISTS : rc;
}

static int pg_idempotency_find(struct store *s, const char *tenant_id, const char *mode,
                               const struct idempotency *idem, long long now,
                               struct session *out)
{
    if (!idem || !idem->key)
        return HF_ENOTFOUND;
    return idem_lookup(s, tenant_id, mode, idem, now, out);
}

/* The idempotency key is claimed first, by an insert the unique key
 * serialises across nodes: of two requests with one key, the second
 * waits for the first to commit and then finds its row. A row older than
 * HF_IDEMPOTENCY_TTL is taken over. */
/* Each PostgreSQL insert is a transaction of its own, answered at once:
 * the caller inserts with pg_session_insert instead. */
static int pg_inserts_later(struct store *s)
{
    (void)s;
    return 0;
}

static int pg_session_insert_later(struct store *s, struct session *in,
                                   const unsigned char token_hash[HF_HASH_BYTES],
                                   long long now, void (*done)(void *arg, int rc),
                                   void *arg)
{
    (void)s, (void)in, (void)token_hash, (void)now, (void)done, (void)arg;
    return HF_ESTORE;
}

static int pg_session_insert(struct store *s, struct session *in,
                             const unsigned char token_hash[HF_HASH_BYTES],
                             const struct idempotency *idem, long long now)
{
    struct params p = {0};
    int rc;

    if ((rc = tx_begin(s)) != 0)
        return rc;
    if (idem && idem->key) {
        PGresult *r;

        p_text(&p, in->tenant_id);
        p_text(&p, idem->key);
        p_hash(&p, idem->request_hash);
        p_text(&p, in->id);
        p_int(&p, now);
        p_int(&p, now - HF_IDEMPOTENCY_TTL);
        if (!(r = run(s, Q_IDEM_CLAIM, &p))) {
            rc = HF_ESTORE;
        } else if (PQntuples(r) == 0) {
            /* someone else's, and live: answer as they were answered */
            rc = idem_lookup(s, in->tenant_id, in->mode, idem, now, in);
            if (rc == HF_ENOTFOUND)
                rc = HF_ESTORE;
        }
        PQclear(r);
    }
    if (rc == 0) {
        memset(&p, 0, sizeof p);
        p_text(&p, in->id);
        p_text(&p, in->tenant_id);
        p_text(&p, in->contractor_id);
        p_text(&p, in->return_url);
        p_text(&p, in->mode);
        p_hash(&p, token_hash);
        p_text(&p, in->policy_version);
        p_int(&p, in->created);
        p_int(&p, in->expires_at);
        rc = exec_stmt(s, Q_SESSION_INSERT, &p, NULL);
    }
    return tx_finish(s, rc);
}

/* seq of a cursor id under tenant and mode, by statement q (a session's
 * or an event's); HF_ENOTFOUND if it names nothing there. */
static int cursor_seq(struct store *s, enum stmt_id q, const char *tenant_id,
                      const char *mode, const char *id, long long *seq)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_text(&p, id);
    if ((rc = lookup(s, q, &p, &r)) == 0)
        *seq = int_val(r, 0, 0);
    PQclear(r);
    return rc;
}

static int pg_session_list(struct store *s, const char *tenant_id, const char *mode,
                           const struct session_query *q, long long now,
                           struct session *out, size_t *n)
{
    int newer = q->page.ending_before != NULL;
    long long seq = newer ? 0 : (long long)9223372036854775807LL;
    struct params p = {0};
    size_t count = 0;
    PGresult *r;
    int rc;

    if (q->page.starting_after &&
        (rc = cursor_seq(s, Q_SESSION_SEQ, tenant_id, mode, q->page.starting_after, &seq)) != 0)
        return rc;
    if (newer && (rc = cursor_seq(s, Q_SESSION_SEQ, tenant_id, mode, q->page.ending_before, &seq)) != 0)
        return rc;
    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_int(&p, seq);
    p_text(&p, q->contractor_id);
    p_text(&p, q->status);
    p_int(&p, q->page.limit);
    p_int(&p, now);
    if (!(r = run(s, newer ? Q_SESSION_LIST_NEWER : Q_SESSION_LIST_OLDER, &p)))
        return HF_ESTORE;
    for (int i = 0; i < PQntuples(r) && count < (size_t)q->page.limit; i++)
        read_session(r, i, &out[count++]);
    PQclear(r);
    *n = count;
    return 0;
}

static int pg_session_by_token(struct store *s, const unsigned char token_hash[HF_HASH_BYTES],
                               long long now, struct session *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    p_hash(&p, token_hash);
    p_int(&p, now);
    if ((rc = lookup(s, Q_SESSION_BY_TOKEN, &p, &r)) == 0)
        read_session(r, 0, out);
    PQclear(r);
    return rc;
}

/* One conditional UPDATE decides: a racer on any node waits for the row
 * lock, then finds redeemed_at set and changes nothing. */
static int pg_session_redeem(struct store *s, const unsigned char token_hash[HF_HASH_BYTES],
                             const unsigned char browser_hash[HF_HASH_BYTES], long long now,
                             struct session *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    if ((rc = tx_begin(s)) != 0)
        return rc;
    p_hash(&p, token_hash);
    p_hash(&p, browser_hash);
    p_int(&p, now);
    if ((rc = lookup(s, Q_SESSION_REDEEM, &p, &r)) == 0)
        read_session(r, 0, out);
    PQclear(r);
    return tx_finish(s, rc);
}

static int pg_session_for_browser(struct store *s, const char *id,
                                  const unsigned char browser_hash[HF_HASH_BYTES],
                                  long long now, struct session *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    p_text(&p, id);
    p_int(&p, now);
    if ((rc = lookup(s, Q_SESSION_FOR_BROWSER, &p, &r)) != 0)
        return rc;
    if (hash_equal(r, 0, 11, browser_hash))
        read_session(r, 0, out);
    else
        rc = HF_ENOTFOUND;
    PQclear(r);
    return rc;
}

/* The event of a session's state change and its deliveries to every
 * endpoint of the tenant and mode, due now: part of the caller's
 * transaction (the outbox). */
static int emit_event(struct store *s, const char *type, const char *tenant_id,
                      const char *mode, const char *session_id, long long now)
{
    struct params p = {0};
    char id[HF_ID_MAX];
    int rc;

    token_id("evt_", id, sizeof id);
    p_text(&p, id);
    p_text(&p, tenant_id);
    p_text(&p, type);
    p_text(&p, session_id);
    p_int(&p, now);
    if ((rc = exec_stmt(s, Q_EVENT_INSERT, &p, NULL)) != 0)
        return rc;
    memset(&p, 0, sizeof p);
    p_text(&p, id);
    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_int(&p, now * 1000);
    p_text(&p, type);
    return exec_stmt(s, Q_DELIVERIES_INSERT, &p, NULL);
}

/* pending → a terminal state by statement q ($1 tenant, $2 mode, $3 id,
 * $4 now, $5..$7 the card when given): the conditional UPDATE decides, and
 * when it changed nothing the session as it now reads says why. */
static int leave_pending(struct store *s, enum stmt_id q, const char *tenant_id,
                         const char *mode, const char *id, const struct saved_card *card,
                         long long now, struct session *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    if ((rc = tx_begin(s)) != 0)
        return rc;
    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_text(&p, id);
    p_int(&p, now);
    if (card) {
        p_text(&p, card->brand);
        p_text(&p, card->last4);
        p_text(&p, card->reference);
    }
    rc = lookup(s, q, &p, &r);
    if (rc == 0) {
        read_session(r, 0, out);
        PQclear(r);
        rc = emit_event(s, q == Q_SESSION_CANCEL ? "payment.session.cancelled"
                                                 : "payment.session.completed",
                        tenant_id, mode, id, now);
    } else if (rc == HF_ENOTFOUND) {
        rc = pg_session_get(s, tenant_id, mode, id, now, out);
        if (rc == 0)
            rc = strcmp(out->status, "expired") == 0 ? HF_EEXPIRED : HF_ENOTPENDING;
    }
    return tx_finish(s, rc); /* a refusal changed nothing: rolled back */
}

static int pg_session_cancel(struct store *s, const char *tenant_id, const char *mode,
                             const char *id, long long now, struct session *out)
{
    return leave_pending(s, Q_SESSION_CANCEL, tenant_id, mode, id, NULL, now, out);
}

static int pg_session_complete(struct store *s, const char *tenant_id, const char *mode,
                               const char *id, const struct saved_card *card, long long now,
                               struct session *out)
{
    return leave_pending(s, Q_SESSION_COMPLETE, tenant_id, mode, id, card, now, out);
}

/* Every node sweeps; the advisory lock lets one at a time do it and the
 * others skip this round (and the row locks would keep two sweeps apart
 * anyway). Each expired session gets its event. The sweep also drops
 * idempotency records past their retention (the SQLite store does that on
 * insert). */
static int pg_sessions_expire(struct store *s, long long now, int *n)
{
    struct params p = {0};
    PGresult *r;
    int rc, mine;

    *n = 0;
    if ((rc = tx_begin(s)) != 0)
        return rc;
    if (!(r = run(s, Q_EXPIRY_LOCK_TRY, &p)))
        return tx_finish(s, HF_ESTORE);
    mine = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (mine) {
        p_int(&p, now);
        p_int(&p, HF_EXPIRE_BATCH);
        if (!(r = run(s, Q_SESSIONS_EXPIRE, &p)))
            rc = HF_ESTORE;
        for (int i = 0; rc == 0 && i < PQntuples(r); i++)
            rc = emit_event(s, "payment.session.expired", PQgetvalue(r, i, 1),
                            PQgetvalue(r, i, 2), PQgetvalue(r, i, 0), now);
        if (r) {
            *n = PQntuples(r);
            PQclear(r);
        }
        if (rc == 0) {
            memset(&p, 0, sizeof p);
            p_int(&p, now - HF_IDEMPOTENCY_TTL);
            rc = exec_stmt(s, Q_IDEM_PURGE, &p, NULL);
        }
    }
    rc = tx_finish(s, rc);
    if (rc != 0)
        *n = 0;
    return rc;
}

/* ---- webhooks ------------------------------------------------------------ */

/* A bytea column (text format) into out; its length, 0 when it does not fit. */
static size_t bytes_val(const PGresult *r, int row, int col, unsigned char *out, size_t max)
{
    size_t n = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);

    if (!raw)
        return 0;
    if (n <= max)
        memcpy(out, raw, n);
    else
        n = 0;
    PQfreemem(raw);
    return n;
}

static void read_endpoint(const PGresult *r, int row, struct webhook_endpoint *out)
{
    copy_val(r, row, 0, out->id, sizeof out->id);
    copy_val(r, row, 1, out->tenant_id, sizeof out->tenant_id);
    copy_val(r, row, 2, out->mode, sizeof out->mode);
    copy_val(r, row, 3, out->url, sizeof out->url);
    out->created = int_val(r, row, 4);
    out->secret_len = bytes_val(r, row, 5, out->secret, sizeof out->secret);
    copy_val(r, row, 6, out->description, sizeof out->description);
    copy_val(r, row, 7, out->enabled_events, sizeof out->enabled_events);
    out->disabled = (int)int_val(r, row, 8);
    out->previous_secret_len = bytes_val(r, row, 9, out->previous_secret,
                                         sizeof out->previous_secret);
    out->previous_until_ms = int_val(r, row, 10);
}

/* The tenant's row is locked first, so two nodes creating endpoints for
 * one tenant at once cannot both pass the limit. */
static int pg_endpoint_create(struct store *s, const struct webhook_endpoint *e)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    if ((rc = tx_begin(s)) != 0)
        return rc;
    rc = tenant_exists(s, e->tenant_id, 1);
    if (rc == 0) {
        p_text(&p, e->tenant_id);
        p_text(&p, e->mode);
        rc = lookup(s, Q_ENDPOINT_COUNT, &p, &r);
    }
    if (rc == 0) {
        if (int_val(r, 0, 0) >= HF_ENDPOINTS_MAX)
            rc = HF_ELIMIT;
        PQclear(r);
    }
    if (rc == 0) {
        memset(&p, 0, sizeof p);
        p_text(&p, e->id);
        p_text(&p, e->tenant_id);
        p_text(&p, e->mode);
        p_text(&p, e->url);
        p_bytes(&p, e->secret, e->secret_len);
        p_int(&p, e->created);
        p_text(&p, e->description);
        p_text(&p, e->enabled_events);
        rc = exec_stmt(s, Q_ENDPOINT_INSERT, &p, NULL);
    }
    return tx_finish(s, rc);
}

static int pg_endpoint_roll_secret(struct store *s, const struct webhook_endpoint *e)
{
    struct params p = {0};
    int rc, changed = 0;

    if ((rc = tx_begin(s)) != 0)
        return rc;
    p_text(&p, e->tenant_id);
    p_text(&p, e->mode);
    p_text(&p, e->id);
    p_bytes(&p, e->secret, e->secret_len);
    p_int(&p, e->previous_until_ms);
    rc = exec_stmt(s, Q_ENDPOINT_ROLL, &p, &changed);
    if (rc == 0 && changed != 1)
        rc = HF_ENOTFOUND;
    return tx_finish(s, rc);
}

static int pg_endpoint_update(struct store *s, const struct webhook_endpoint *e)
{
    struct params p = {0};
    int rc, changed = 0;

    if ((rc = tx_begin(s)) != 0)
        return rc;
    p_text(&p, e->tenant_id);
    p_text(&p, e->mode);
    p_text(&p, e->id);
    p_text(&p, e->url);
    p_text(&p, e->description);
    p_text(&p, e->enabled_events);
    p_int(&p, e->disabled != 0);
    rc = exec_stmt(s, Q_ENDPOINT_UPDATE, &p, &changed);
    if (rc == 0 && changed != 1)
        rc = HF_ENOTFOUND;
    return tx_finish(s, rc);
}

static int pg_endpoint_list(struct store *s, const char *tenant_id, const char *mode,
                            struct webhook_endpoint *out, size_t max, size_t *n)
{
    struct params p = {0};
    PGresult *r;

    *n = 0;
    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_int(&p, (long long)max);
    if (!(r = run(s, Q_ENDPOINT_LIST, &p)))
        return HF_ESTORE;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        read_endpoint(r, i, &out[(*n)++]);
    PQclear(r);
    return 0;
}

static int pg_endpoint_get(struct store *s, const char *tenant_id, const char *mode,
                           const char *id, struct webhook_endpoint *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;

    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_text(&p, id);
    if ((rc = lookup(s, Q_ENDPOINT_GET, &p, &r)) == 0) {
        read_endpoint(r, 0, out);
        PQclear(r);
    }
    return rc;
}

static int pg_endpoint_delete(struct store *s, const char *tenant_id, const char *mode,
                              const char *id, long long now)
{
    struct params p = {0};
    int rc, changed = 0;

    if ((rc = tx_begin(s)) != 0)
        return rc;
    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_text(&p, id);
    p_int(&p, now);
    rc = exec_stmt(s, Q_ENDPOINT_DELETE, &p, &changed);
    if (rc == 0 && changed != 1)
        rc = HF_ENOTFOUND;
    if (rc == 0) {
        memset(&p, 0, sizeof p);
        p_text(&p, id);
        rc = exec_stmt(s, Q_ENDPOINT_DELIVERIES_FAIL, &p, NULL);
    }
    return tx_finish(s, rc);
}

static int pg_endpoint_newest(struct store *s, struct webhook_endpoint *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;

    if ((rc = lookup(s, Q_ENDPOINT_NEWEST, &p, &r)) == 0) {
        read_endpoint(r, 0, out);
        PQclear(r);
    }
    return rc;
}

/* store_endpoints_due: the statement is ENDPOINTS_DUE (the SQLite store
 * says how it reads). */
static int pg_endpoints_due(struct store *s, long long now_ms, struct endpoint_due *out,
                            size_t max, size_t *n)
{
    struct params p = {0};
    PGresult *r;

    *n = 0;
    p_int(&p, now_ms);
    p_int(&p, (long long)max);
    p_int(&p, HF_WEBHOOK_PER_ENDPOINT);
    p_int(&p, HF_WEBHOOK_PER_TENANT);
    if (!(r = run(s, Q_ENDPOINTS_DUE, &p)))
        return HF_ESTORE;
    for (int i = 0; i < PQntuples(r) && *n < max; i++) {
        struct endpoint_due *e = &out[(*n)++];

        memset(e, 0, sizeof *e);
        copy_val(r, i, 0, e->id, sizeof e->id);
        copy_val(r, i, 1, e->tenant_id, sizeof e->tenant_id);
        e->deleted = strcmp(PQgetvalue(r, i, 2), "t") == 0;
        e->failures = (int)int_val(r, i, 3);
        e->slots = (int)int_val(r, i, 4);
        e->tenant_slots = (int)int_val(r, i, 5);
    }
    PQclear(r);
    return 0;
}

/* Claim the oldest due deliveries of e into out from *n on, then read the
 * endpoint and each session. Leases are taken with FOR UPDATE SKIP
 * LOCKED: nodes claiming at the same moment take different deliveries
 * and never wait for each other. An endpoint deleted since the read has
 * its deliveries failed: the delete failed those it could see, but not
 * one an event was writing meanwhile (its lock on the endpoint does not
 * stop the delete). */
static int claim_from(struct store *s, const struct endpoint_due *e, long long now_ms,
                      long long lease_ms, struct webhook_delivery *out, size_t max,
                      size_t *n)
{
    struct params p = {0}, q = {0};
    struct webhook_endpoint endpoint;
    size_t want = max - *n;
    PGresult *r, *er = NULL;
    int rc;

    if (want > (size_t)e->claim)
        want = (size_t)e->claim;
    if (want > HF_WEBHOOK_PER_ENDPOINT)
        want = HF_WEBHOOK_PER_ENDPOINT;
    p_text(&p, e->id);
    p_int(&p, now_ms);
    p_int(&p, lease_ms);
    p_int(&p, (long long)want);
    if (!(r = run(s, Q_ENDPOINT_CLAIM, &p)))
        return HF_ESTORE;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    p_text(&q, e->id);
    rc = lookup(s, Q_ENDPOINT_BY_ID, &q, &er);
    if (rc != 0) {
        PQclear(r);
        return rc == HF_ENOTFOUND ? exec_stmt(s, Q_ENDPOINT_DELIVERIES_FAIL, &q, NULL) : rc;
    }
    read_endpoint(er, 0, &endpoint);
    PQclear(er);
    for (int i = 0; rc == 0 && i < PQntuples(r) && *n < max; i++) {
        struct webhook_delivery *d = &out[*n];
        int found;

        memset(d, 0, sizeof *d);
        copy_val(r, i, 0, d->event_id, sizeof d->event_id);
        copy_val(r, i, 1, d->event_type, sizeof d->event_type);
        d->event_created = int_val(r, i, 2);
        d->attempts = (int)int_val(r, i, 5);
        d->lease_until_ms = int_val(r, i, 6);
        d->endpoint_failures = e->failures;
        /* an endpoint only gets its own mode's events */
        found = pg_session_get(s, PQgetvalue(r, i, 4), endpoint.mode, PQgetvalue(r, i, 3),
                               now_ms / 1000, &d->session);
        if (found == 0) {
            d->endpoint = endpoint;
            (*n)++;
        } else if (found != HF_ENOTFOUND) {
            rc = found;
        }
    }
    PQclear(r);
    return rc;
}

static int pg_deliveries_claim(struct store *s, long long now_ms, long long lease_ms,
                               const struct endpoint_due *from, size_t n_from,
                               struct webhook_delivery *out, size_t max, size_t *n)
{
    int rc;

    *n = 0;
    if ((rc = tx_begin(s)) != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n_from && *n < max; i++) {
        struct params q = {0};

        p_text(&q, from[i].id);
        if (from[i].deleted)
            rc = exec_stmt(s, Q_ENDPOINT_DELIVERIES_FAIL, &q, NULL);
        else if (from[i].claim > 0)
            rc = claim_from(s, &from[i], now_ms, lease_ms, out, max, n);
    }
    rc = tx_finish(s, rc);
    if (rc != 0)
        *n = 0;
    return rc;
}

static int pg_delivery_record(struct store *s, const char *event_id, const char *endpoint_id,
                              const struct webhook_attempt *a)
{
    struct params p = {0};
    int rc, changed = 0;

    p_text(&p, event_id);
    p_text(&p, endpoint_id);
    p_text(&p, a->status);
    p_int(&p, a->next_ms);
    p_int(&p, a->at_ms);
    p_int_or_null(&p, a->http_status, a->http_status == 0);
    p_text(&p, a->error);
    p_int(&p, a->lease_until_ms);
    rc = exec_stmt(s, Q_DELIVERY_RECORD, &p, &changed);
    if (rc != 0 || changed != 1)
        return rc == 0 ? HF_ENOTFOUND : rc;
    if (!a->answered && !a->pause_until_ms)
        return 0;
    memset(&p, 0, sizeof p);
    p_text(&p, endpoint_id);
    if (!a->answered) {
        p_int(&p, a->pause_until_ms);
        p_int(&p, a->at_ms);
    }
    return exec_stmt(s, a->answered ? Q_ENDPOINT_ANSWERED : Q_ENDPOINT_PAUSE, &p, NULL);
}

static int pg_events_list(struct store *s, const char *status, size_t limit,
                          struct event_row *out, size_t *n)
{
    struct params p = {0};
    PGresult *r;

    *n = 0;
    p_text(&p, status);
    p_int(&p, (long long)limit);
    if (!(r = run(s, Q_EVENTS_LIST, &p)))
        return HF_ESTORE;
    for (int i = 0; i < PQntuples(r) && *n < limit; i++) {
        struct event_row *e = &out[(*n)++];

        copy_val(r, i, 0, e->id, sizeof e->id);
        copy_val(r, i, 1, e->type, sizeof e->type);
        copy_val(r, i, 2, e->tenant_id, sizeof e->tenant_id);
        copy_val(r, i, 3, e->session_id, sizeof e->session_id);
        e->created = int_val(r, i, 4);
        copy_val(r, i, 5, e->endpoint_id, sizeof e->endpoint_id);
        copy_val(r, i, 6, e->status, sizeof e->status);
        e->attempts = (int)int_val(r, i, 7);
        e->next_attempt_ms = int_val(r, i, 8);
        e->last_status = (int)int_val(r, i, 9);
        copy_val(r, i, 10, e->last_error, sizeof e->last_error);
    }
    PQclear(r);
    return 0;
}

static int pg_event_retry(struct store *s, const char *event_id, long long now_ms, int *n)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    *n = 0;
    if ((rc = tx_begin(s)) != 0)
        return rc;
    p_text(&p, event_id);
    rc = lookup(s, Q_EVENT_EXISTS, &p, &r);
    PQclear(r);
    if (rc == 0) {
        p_int(&p, now_ms);
        rc = exec_stmt(s, Q_EVENT_RETRY, &p, n);
    }
    if (rc == 0) { /* as the SQLite store: the receiver is back */
        struct params q = {0};

        p_text(&q, event_id);
        rc = exec_stmt(s, Q_EVENT_ENDPOINTS_UNPAUSE, &q, NULL);
    }
    return tx_finish(s, rc);
}

static void read_event(const PGresult *r, int row, struct event *out)
{
    read_session(r, row, &out->session);
    copy_val(r, row, 11, out->id, sizeof out->id);
    copy_val(r, row, 12, out->type, sizeof out->type);
    out->created = int_val(r, row, 13);
}

static int pg_event_get(struct store *s, const char *tenant_id, const char *mode,
                        const char *id, long long now, struct event *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_text(&p, id);
    p_int(&p, now);
    if ((rc = lookup(s, Q_TENANT_EVENT_GET, &p, &r)) == 0)
        read_event(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_event_page(struct store *s, const char *tenant_id, const char *mode,
                         const struct event_query *q, long long now,
                         struct event *out, size_t *n)
{
    int newer = q->page.ending_before != NULL;
    const char *cursor = newer ? q->page.ending_before : q->page.starting_after;
    long long seq = newer ? 0 : (long long)9223372036854775807LL;
    struct params p = {0};
    size_t count = 0;
    PGresult *r = NULL;
    int rc;

    if (cursor && (rc = cursor_seq(s, Q_TENANT_EVENT_SEQ, tenant_id, mode, cursor, &seq)) != 0)
        return rc;
    p_text(&p, tenant_id);
    p_text(&p, mode);
    p_int(&p, seq);
    p_text(&p, q->type);
    p_int(&p, q->page.limit);
    p_int(&p, now);
    if (!(r = run(s, newer ? Q_TENANT_EVENTS_NEWER : Q_TENANT_EVENTS_OLDER, &p)))
        return HF_ESTORE;
    for (int i = 0; i < PQntuples(r) && count < (size_t)q->page.limit; i++)
        read_event(r, i, &out[count++]);
    PQclear(r);
    *n = count;
    return 0;
}

/* ---- policy versions ----------------------------------------------------- */

/* Store the bundle (once), record the activation and tell every listening
 * node; the notification is delivered at commit. */
static int activate(struct store *s, const char *version, const char *action,
                    const void *bundle, size_t len, const char *actor, long long now,
                    struct policy_activation *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    if ((rc = tx_begin(s)) != 0)
        return rc;
    p_text(&p, version);
    if (bundle) {
        p_bytes(&p, bundle, len);
        p_int(&p, now);
        rc = exec_stmt(s, Q_BUNDLE_PUT, &p, NULL);
    } else {
        rc = lookup(s, Q_BUNDLE_GET, &p, &r);
        PQclear(r);
        r = NULL;
    }
    if (rc == 0) {
        memset(&p, 0, sizeof p);
        p_text(&p, version);
        p_text(&p, action);
        p_text(&p, actor);
        p_int(&p, now);
        rc = lookup(s, Q_ACTIVATION_PUT, &p, &r);
    }
    if (rc == 0) {
        out->seq = int_val(r, 0, 0);
        PQclear(r);
        snprintf(out->version, sizeof out->version, "%s", version);
        snprintf(out->action, sizeof out->action, "%s", action);
        snprintf(out->actor, sizeof out->actor, "%s", actor);
        out->at = now;
        memset(&p, 0, sizeof p);
        p_text(&p, version);
        rc = exec_stmt(s, Q_POLICY_NOTIFY, &p, NULL);
    }
    return tx_finish(s, rc);
}

static int pg_policy_publish(struct store *s, const char *version, const void *bundle,
                             size_t len, const char *actor, long long now,
                             struct policy_activation *out)
{
    return activate(s, version, "publish", bundle, len, actor, now, out);
}

static int pg_policy_rollback(struct store *s, const char *version, const char *actor,
                              long long now, struct policy_activation *out)
{
    return activate(s, version, "rollback", NULL, 0, actor, now, out);
}

static int pg_policy_history(struct store *s, size_t limit, struct policy_activation *out,
                             size_t *n)
{
    struct params p = {0};
    PGresult *r;

    *n = 0;
    p_int(&p, (long long)limit);
    if (!(r = run(s, Q_ACTIVATIONS, &p)))
        return HF_ESTORE;
    for (int i = 0; i < PQntuples(r) && *n < limit; i++) {
        struct policy_activation *a = &out[(*n)++];

        a->seq = int_val(r, i, 0);
        copy_val(r, i, 1, a->version, sizeof a->version);
        copy_val(r, i, 2, a->action, sizeof a->action);
        copy_val(r, i, 3, a->actor, sizeof a->actor);
        a->at = int_val(r, i, 4);
    }
    PQclear(r);
    return 0;
}

static int pg_policy_active(struct store *s, struct policy_activation *out)
{
    size_t n;
    int rc = pg_policy_history(s, 1, out, &n);

    return rc != 0 ? rc : n == 1 ? 0 : HF_ENOTFOUND;
}

static int pg_policy_bundle(struct store *s, const char *version, char **bundle, size_t *len)
{
    struct params p = {0};
    PGresult *r;
    unsigned char *raw;
    int rc;

    p_text(&p, version);
    if ((rc = lookup(s, Q_BUNDLE_GET, &p, &r)) != 0)
        return rc;
    raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), len);
    PQclear(r);
    if (!raw || !(*bundle = malloc(*len + 1))) {
        PQfreemem(raw);
        return HF_ENOMEM;
    }
    memcpy(*bundle, raw, *len);
    PQfreemem(raw);
    return 0;
}

/* LISTEN on this connection (once), then wait up to timeout_ms for a
 * notification: a publish on any node wakes every node at once. */
static int pg_policy_wait(struct store *s, int timeout_ms)
{
    struct pollfd pfd;
    PGnotify *note;

    if (usable(s) != 0)
        return HF_ESTORE;
    if (!s->listening) {
        if (control(s, "LISTEN " POLICY_CHANNEL, "LISTEN", 1) != 0)
            return HF_ESTORE;
        s->listening = 1;
    }
    pfd.fd = PQsocket(s->conn);
    pfd.events = POLLIN;
    if (pfd.fd >= 0 && poll(&pfd, 1, timeout_ms) > 0 && PQconsumeInput(s->conn) == 0) {
        after_failure(s);
        s->listening = 0; /* a new connection listens again */
        return HF_ESTORE;
    }
    while ((note = PQnotifies(s->conn)))
        PQfreemem(note); /* which version does not matter: the caller asks */
    return 0;
}

static int pg_writer_start(const char *path, struct store_writer **out, char *err,
                           size_t errlen)
{
    struct store_writer *w = calloc(1, sizeof *w);

    (void)path;
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    w->ops = &store_pg_ops;
    *out = w;
    return 0;
}

static void pg_writer_stop(struct store_writer *w)
{
    free(w);
}

static int pg_attach_writer(struct store *s, struct store_writer *w)
{
    (void)s;
    (void)w;
    return 0;
}

const struct store_ops store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .read_begin = pg_read_begin,
    .read_end = pg_read_end,
    .writer_start = pg_writer_start,
    .writer_stop = pg_writer_stop,
    .ping = pg_ping,
    .attach_writer = pg_attach_writer,
    .tenant_create = pg_tenant_create,
    .tenant_set_hosts = pg_tenant_set_hosts,
    .tenant_get = pg_tenant_get,
    .key_create = pg_key_create,
    .key_revoke = pg_key_revoke,
    .key_find = pg_key_find,
    .contractor_create = pg_contractor_create,
    .tenant_each = pg_tenant_each,
    .key_each = pg_key_each,
    .contractor_each = pg_contractor_each,
    .contractor_check = pg_contractor_check,
    .session_insert = pg_session_insert,
    .inserts_later = pg_inserts_later,
    .session_insert_later = pg_session_insert_later,
    .idempotency_find = pg_idempotency_find,
    .session_get = pg_session_get,
    .session_list = pg_session_list,
    .session_cancel = pg_session_cancel,
    .session_by_token = pg_session_by_token,
    .session_redeem = pg_session_redeem,
    .session_for_browser = pg_session_for_browser,
    .session_complete = pg_session_complete,
    .sessions_expire = pg_sessions_expire,
    .endpoint_create = pg_endpoint_create,
    .endpoint_update = pg_endpoint_update,
    .endpoint_roll_secret = pg_endpoint_roll_secret,
    .endpoint_list = pg_endpoint_list,
    .endpoint_get = pg_endpoint_get,
    .endpoint_delete = pg_endpoint_delete,
    .endpoints_due = pg_endpoints_due,
    .deliveries_claim = pg_deliveries_claim,
    .delivery_record = pg_delivery_record,
    .events_list = pg_events_list,
    .event_retry = pg_event_retry,
    .event_get = pg_event_get,
    .event_page = pg_event_page,
    .policy_publish = pg_policy_publish,
    .policy_rollback = pg_policy_rollback,
    .policy_active = pg_policy_active,
    .policy_history = pg_policy_history,
    .policy_bundle = pg_policy_bundle,
    .policy_wait = pg_policy_wait,
    .endpoint_newest = pg_endpoint_newest,
};
