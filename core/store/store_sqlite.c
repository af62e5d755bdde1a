/* store_sqlite.c - the store on one SQLite file: all SQL, migrations and
 * transactions. The only user of SQLite. Its functions are static; store.c
 * reaches them through store_sqlite_ops at the bottom. */
#define _DEFAULT_SOURCE /* syscall(2): the group commit's futex */
#include "store_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>
#include <sqlite3.h>
#include <sys/prctl.h>

#include "access_cache.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "periodic.h"

#define BUSY_TIMEOUT_MS 5000

#define ACCESS_TRIGGER(table, change)                                          \
    "CREATE TRIGGER access_" #table "_" #change " AFTER " #change " ON " #table \
    " BEGIN UPDATE access_generation SET n = n + 1; END;"

#define ACCESS_REPLACE_TRIGGER(table, same_row)                                \
    "CREATE TRIGGER access_" #table "_replace BEFORE INSERT ON " #table        \
    " WHEN EXISTS (SELECT 1 FROM " #table " WHERE " same_row ")"              \
    " BEGIN UPDATE access_generation SET n = n + 1; END;"

/* Schema history: migration i brings user_version from i to i+1. Never edit
 * a shipped entry; append a new one. A step is SQL, or a function for an
 * edit SQL cannot spell; either runs inside migrate()'s transaction. */
struct migration {
    const char *sql;
    int (*fn)(struct store *s, char *err, size_t errlen);
};
static int status_check_without_in(struct store *s, char *err, size_t errlen);

static const struct migration migrations[] = {
    {.sql = "CREATE TABLE tenants ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  created INTEGER NOT NULL);"
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
    "  secret_hash BLOB NOT NULL UNIQUE,"
    "  created INTEGER NOT NULL,"
    "  revoked_at INTEGER);"
    "CREATE TABLE contractors ("
    "  id TEXT PRIMARY KEY,"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  name TEXT,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE sessions ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  contractor_id TEXT NOT NULL REFERENCES contractors(id),"
    "  return_url TEXT NOT NULL,"
    "  mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),"
    "  token_hash BLOB NOT NULL UNIQUE,"
    "  status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'cancelled', 'expired')),"
    "  policy_version TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  redeemed_at INTEGER,"
    "  completed_at INTEGER,"
    "  cancelled_at INTEGER);"
    "CREATE INDEX sessions_by_tenant ON sessions (tenant_id, seq);"
    "CREATE INDEX sessions_by_contractor ON sessions (tenant_id, contractor_id, seq);"
    "CREATE TABLE idempotency_keys ("
    "  tenant_id TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  request_hash BLOB NOT NULL,"
    "  session_id TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (tenant_id, key));"},

    /* 2: the hosted flow */
    {.sql = "ALTER TABLE sessions ADD COLUMN browser_hash BLOB;"
    "ALTER TABLE sessions ADD COLUMN card_brand TEXT;"
    "ALTER TABLE sessions ADD COLUMN card_last4 TEXT;"
    "ALTER TABLE sessions ADD COLUMN processor_ref TEXT;"
    "CREATE INDEX sessions_pending_expiry ON sessions (expires_at) WHERE status = 'pending';"},

    /* 3: webhooks and their outbox */
    {.sql = "CREATE TABLE webhook_endpoints ("
    "  id TEXT PRIMARY KEY,"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),"
    "  url TEXT NOT NULL,"
    "  secret_sealed BLOB NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  deleted_at INTEGER);"
    "CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, mode) "
    "  WHERE deleted_at IS NULL;"
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  type TEXT NOT NULL,"
    "  session_id TEXT NOT NULL REFERENCES sessions(id),"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE webhook_deliveries ("
    "  event_id TEXT NOT NULL REFERENCES events(id),"
    "  endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id),"
    "  status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_ms INTEGER NOT NULL,"
    "  lease_until_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_attempt_ms INTEGER,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  PRIMARY KEY (event_id, endpoint_id));"
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) "
    "  WHERE status = 'pending';"},

    /* 4: policy versions published to the store, and which one is active */
    {.sql = "CREATE TABLE policy_bundles ("
    "  version TEXT PRIMARY KEY,"
    "  bundle BLOB NOT NULL,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE policy_activations ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  version TEXT NOT NULL REFERENCES policy_bundles(version),"
    "  action TEXT NOT NULL CHECK (action IN ('publish', 'rollback')),"
    "  actor TEXT NOT NULL,"
    "  at INTEGER NOT NULL);"},

    /* 5: deliveries in flight per endpoint, for a fair claim */
    {.sql = "CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (endpoint_id) "
    "  WHERE lease_until_ms > 0;"},

    /* 6: the access generation (access_cache.h): bumped by every change
     * that could make a remembered key, tenant or contractor wrong. New
     * rows cannot: only what exists is remembered. */
    {.sql = "CREATE TABLE access_generation (n INTEGER NOT NULL);"
    "INSERT INTO access_generation (n) VALUES (1);"
    ACCESS_TRIGGER(tenants, UPDATE) ACCESS_TRIGGER(tenants, DELETE)
    ACCESS_TRIGGER(tenant_redirect_hosts, INSERT) ACCESS_TRIGGER(tenant_redirect_hosts, UPDATE)
    ACCESS_TRIGGER(tenant_redirect_hosts, DELETE)
    ACCESS_TRIGGER(api_keys, UPDATE) ACCESS_TRIGGER(api_keys, DELETE)
    ACCESS_TRIGGER(contractors, UPDATE) ACCESS_TRIGGER(contractors, DELETE)},

    /* 7: INSERT OR REPLACE deletes the row it replaces without firing
     * DELETE triggers (recursive_triggers is off): an insert that meets an
     * existing row bumps the access generation too */
    {.sql = ACCESS_REPLACE_TRIGGER(tenants, "id = NEW.id")
    ACCESS_REPLACE_TRIGGER(contractors, "id = NEW.id")
    ACCESS_REPLACE_TRIGGER(api_keys, "id = NEW.id OR secret_hash = NEW.secret_hash")},

    /* 8: the sessions status CHECK without IN (status_check_without_in) */
    {.fn = status_check_without_in},

    /* 9: sessions are read and listed under (tenant, mode): one mode's list
     * must not walk the other mode's sessions */
    {.sql = "DROP INDEX sessions_by_tenant;"
    "DROP INDEX sessions_by_contractor;"
    "CREATE INDEX sessions_by_tenant_mode ON sessions (tenant_id, mode, seq);"
    "CREATE INDEX sessions_by_tenant_mode_contractor ON sessions "
    "  (tenant_id, mode, contractor_id, seq);"},

    /* 10: claims endpoint by endpoint, never by a scan of every due row;
     * an endpoint that does not answer is paused (store_delivery_record) */
    {.sql = "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries "
    "  (endpoint_id, next_attempt_ms) WHERE status = 'pending';"
    "DROP INDEX webhook_deliveries_due;"
    "ALTER TABLE webhook_endpoints ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE webhook_endpoints ADD COLUMN paused_until_ms INTEGER NOT NULL DEFAULT 0;"},
    /* 10 -> 11: a tenant's events, newest first, for GET /api/v1/events */
    {.sql = "CREATE INDEX events_by_tenant ON events (tenant_id, seq);"},
    /* 11 -> 12: endpoints a tenant can change, filter and pause */
    {.sql = "ALTER TABLE webhook_endpoints ADD COLUMN description TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE webhook_endpoints ADD COLUMN enabled_events TEXT NOT NULL DEFAULT '*';"
    "ALTER TABLE webhook_endpoints ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_sealed BLOB;"
    "ALTER TABLE webhook_endpoints ADD COLUMN previous_until_ms INTEGER NOT NULL DEFAULT 0;"},
};

/* Every statement the store runs, prepared once per connection. */
#define STATEMENTS(X)                                                          \
    X(BEGIN, "BEGIN IMMEDIATE")                                                \
    X(READ_BEGIN, "BEGIN")                                                     \
    X(COMMIT, "COMMIT")                                                        \
    X(ROLLBACK, "ROLLBACK")                                                    \
    X(SAVEPOINT, "SAVEPOINT job")                                              \
    X(RELEASE, "RELEASE job")                                                  \
    X(ROLLBACK_TO, "ROLLBACK TO job")                                          \
    X(ACCESS_GENERATION, "SELECT n FROM access_generation")                    \
    X(TENANT_INSERT, "INSERT INTO tenants (id, name, created) VALUES (?1, ?2, ?3)") \
    X(TENANT_GET, "SELECT id, name, created FROM tenants WHERE id = ?1")       \
    X(TENANT_ALL, "SELECT id, name, created FROM tenants ORDER BY created, id") \
    X(KEYS_OF_TENANT, "SELECT id, tenant_id, mode, prefix, coalesce(revoked_at, 0), created FROM api_keys WHERE tenant_id = ?1 ORDER BY created, id") \
    X(CONTRACTORS_OF_TENANT, "SELECT id, tenant_id, coalesce(name, ''), created FROM contractors WHERE tenant_id = ?1 ORDER BY created, id") \
    X(HOSTS_DELETE, "DELETE FROM tenant_redirect_hosts WHERE tenant_id = ?1")  \
    X(HOST_INSERT, "INSERT OR IGNORE INTO tenant_redirect_hosts (tenant_id, position, host) VALUES (?1, ?2, ?3)") \
    X(HOSTS_GET, "SELECT host FROM tenant_redirect_hosts WHERE tenant_id = ?1 ORDER BY position") \
    X(KEY_INSERT, "INSERT INTO api_keys (id, tenant_id, mode, prefix, secret_hash, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)") \
    X(KEY_REVOKE, "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1") \
    X(KEY_FIND, "SELECT id, tenant_id, mode, prefix, coalesce(revoked_at, 0), secret_hash FROM api_keys WHERE secret_hash = ?1") \
    X(CONTRACTOR_INSERT, "INSERT INTO contractors (id, tenant_id, name, created) VALUES (?1, ?2, ?3, ?4)") \
    X(CONTRACTOR_CHECK, "SELECT 1 FROM contractors WHERE id = ?1 AND tenant_id = ?2") \
    X(SESSION_INSERT, "INSERT INTO sessions (id, tenant_id, contractor_id, return_url, mode, token_hash, status, policy_version, created, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9)") \
    X(SESSION_GET, "SELECT " SESSION_COLUMNS " FROM sessions WHERE tenant_id = ?1 AND mode = ?9 AND id = ?2") \
    X(SESSION_SEQ, "SELECT seq FROM sessions WHERE tenant_id = ?1 AND mode = ?9 AND id = ?2") \
    X(SESSION_LIST_OLDER, "SELECT " SESSION_COLUMNS " FROM sessions WHERE tenant_id = ?1 AND mode = ?9 AND seq < ?2 " LIST_FILTER " ORDER BY seq DESC LIMIT ?6") \
    X(SESSION_LIST_NEWER, "SELECT * FROM (SELECT " SESSION_COLUMNS ", seq FROM sessions WHERE tenant_id = ?1 AND mode = ?9 AND seq > ?2 " LIST_FILTER " ORDER BY seq ASC LIMIT ?6) ORDER BY seq DESC") \
    X(SESSION_BY_TOKEN, "SELECT " SESSION_COLUMNS " FROM sessions WHERE token_hash = ?1 AND status = 'pending' AND expires_at > ?10 AND redeemed_at IS NULL") \
    X(SESSION_REDEEM, "UPDATE sessions SET redeemed_at = ?10, browser_hash = ?2 WHERE token_hash = ?1 AND status = 'pending' AND expires_at > ?10 AND redeemed_at IS NULL") \
    X(SESSION_FOR_BROWSER, "SELECT " SESSION_COLUMNS ", browser_hash FROM sessions WHERE id = ?1 AND browser_hash IS NOT NULL") \
    X(SESSION_COMPLETE, "UPDATE sessions SET status = 'completed', completed_at = ?3, card_brand = ?4, card_last4 = ?5, processor_ref = ?6 WHERE tenant_id = ?1 AND mode = ?9 AND id = ?2 AND status = 'pending' AND expires_at > ?3") \
    X(SESSIONS_EXPIRING, "SELECT id, tenant_id, mode FROM sessions WHERE status = 'pending' AND expires_at <= ?1 LIMIT ?2") \
    X(SESSION_EXPIRE, "UPDATE sessions SET status = 'expired' WHERE id = ?1 AND status = 'pending'") \
    X(SESSION_CANCEL, "UPDATE sessions SET status = 'cancelled', cancelled_at = ?3 WHERE tenant_id = ?1 AND mode = ?9 AND id = ?2 AND status = 'pending' AND expires_at > ?3") \
    X(IDEM_GET, "SELECT request_hash, session_id FROM idempotency_keys WHERE tenant_id = ?1 AND key = ?2 AND created > ?3") \
    X(IDEM_PUT, "INSERT OR REPLACE INTO idempotency_keys (tenant_id, key, request_hash, session_id, created) VALUES (?1, ?2, ?3, ?4, ?5)") \
    X(IDEM_PURGE, "DELETE FROM idempotency_keys WHERE created <= ?1") \
    X(EVENT_INSERT, "INSERT INTO events (id, tenant_id, type, session_id, created) VALUES (?1, ?2, ?3, ?4, ?5)") \
    X(DELIVERIES_INSERT, "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, next_attempt_ms) SELECT ?1, id, 'pending', ?4 FROM webhook_endpoints WHERE tenant_id = ?2 AND mode = ?3 AND deleted_at IS NULL AND (enabled_events = '*' OR instr(',' || enabled_events || ',', ',' || ?5 || ',') > 0)") \
    X(ENDPOINT_INSERT, "INSERT INTO webhook_endpoints (id, tenant_id, mode, url, secret_sealed, created, description, enabled_events) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)") \
    X(ENDPOINT_ROLL, "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, previous_until_ms = ?5, secret_sealed = ?4 WHERE tenant_id = ?1 AND mode = ?2 AND id = ?3 AND deleted_at IS NULL") \
    X(ENDPOINT_UPDATE, "UPDATE webhook_endpoints SET url = ?4, description = ?5, enabled_events = ?6, disabled = ?7 WHERE tenant_id = ?1 AND mode = ?2 AND id = ?3 AND deleted_at IS NULL") \
    X(ENDPOINT_COUNT, "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = ?1 AND mode = ?2 AND deleted_at IS NULL") \
    X(ENDPOINT_LIST, "SELECT " ENDPOINT_COLUMNS " FROM webhook_endpoints WHERE tenant_id = ?1 AND mode = ?2 AND deleted_at IS NULL ORDER BY created DESC, rowid DESC LIMIT ?3") \
    X(ENDPOINT_GET, "SELECT " ENDPOINT_COLUMNS " FROM webhook_endpoints WHERE tenant_id = ?1 AND mode = ?2 AND id = ?3 AND deleted_at IS NULL") \
    X(ENDPOINT_DELETE, "UPDATE webhook_endpoints SET deleted_at = ?4 WHERE tenant_id = ?1 AND mode = ?2 AND id = ?3 AND deleted_at IS NULL") \
    X(ENDPOINT_DELIVERIES_FAIL, "UPDATE webhook_deliveries SET status = 'failed', lease_until_ms = 0, last_error = 'endpoint deleted' WHERE endpoint_id = ?1 AND status = 'pending'") \
    X(ENDPOINTS_DUE, ENDPOINTS_DUE)                                            \
    X(DELIVERIES_DUE_TO, "SELECT d.event_id, ev.type, ev.created, ev.session_id, ev.tenant_id, d.attempts FROM webhook_deliveries d JOIN events ev ON ev.id = d.event_id WHERE d.endpoint_id = ?1 AND d.status = 'pending' AND d.next_attempt_ms <= ?2 AND d.lease_until_ms <= ?2 ORDER BY d.next_attempt_ms LIMIT ?3") \
    X(ENDPOINT_NEWEST, "SELECT " ENDPOINT_COLUMNS " FROM webhook_endpoints ORDER BY created DESC, rowid DESC LIMIT 1") \
    X(ENDPOINT_BY_ID, "SELECT " ENDPOINT_COLUMNS " FROM webhook_endpoints WHERE id = ?1 AND deleted_at IS NULL") \
    X(DELIVERY_LEASE, "UPDATE webhook_deliveries SET lease_until_ms = ?3 WHERE event_id = ?1 AND endpoint_id = ?2") \
    X(DELIVERY_RECORD, "UPDATE webhook_deliveries SET status = ?3, attempts = attempts + 1, next_attempt_ms = ?4, lease_until_ms = 0, last_attempt_ms = ?5, last_status = ?6, last_error = ?7 WHERE event_id = ?1 AND endpoint_id = ?2 AND status = 'pending' AND lease_until_ms = ?8") \
    X(ENDPOINT_ANSWERED, "UPDATE webhook_endpoints SET failures = 0, paused_until_ms = 0 WHERE id = ?1 AND failures > 0") \
    X(ENDPOINT_PAUSE, "UPDATE webhook_endpoints SET failures = failures + 1, paused_until_ms = ?2 WHERE id = ?1 AND paused_until_ms < ?3") \
    X(EVENTS_LIST, "SELECT ev.id, ev.type, ev.tenant_id, ev.session_id, ev.created, coalesce(d.endpoint_id, ''), coalesce(d.status, 'none'), coalesce(d.attempts, 0), coalesce(d.next_attempt_ms, 0), coalesce(d.last_status, 0), coalesce(d.last_error, '') FROM events ev LEFT JOIN webhook_deliveries d ON d.event_id = ev.id WHERE ?1 IS NULL OR d.status = ?1 ORDER BY ev.seq DESC, d.endpoint_id LIMIT ?2") \
    X(EVENT_EXISTS, "SELECT 1 FROM events WHERE id = ?1") \
    X(TENANT_EVENT_GET, "SELECT " SESSION_COLUMNS ", ev_id, ev_type, ev_created " TENANT_EVENTS " AND ev_id = ?2") \
    X(TENANT_EVENT_SEQ, "SELECT ev_seq " TENANT_EVENTS " AND ev_id = ?2") \
    X(TENANT_EVENTS_OLDER, "SELECT " SESSION_COLUMNS ", ev_id, ev_type, ev_created " TENANT_EVENTS " AND ev_seq < ?2 AND (?3 IS NULL OR ev_type = ?3) ORDER BY ev_seq DESC LIMIT ?6") \
    X(TENANT_EVENTS_NEWER, "SELECT * FROM (SELECT " SESSION_COLUMNS ", ev_id, ev_type, ev_created, ev_seq " TENANT_EVENTS " AND ev_seq > ?2 AND (?3 IS NULL OR ev_type = ?3) ORDER BY ev_seq ASC LIMIT ?6) ORDER BY ev_seq DESC") \
    X(BUNDLE_PUT, "INSERT OR IGNORE INTO policy_bundles (version, bundle, created) VALUES (?1, ?2, ?3)") \
    X(BUNDLE_GET, "SELECT bundle FROM policy_bundles WHERE version = ?1") \
    X(ACTIVATION_PUT, "INSERT INTO policy_activations (version, action, actor, at) VALUES (?1, ?2, ?3, ?4)") \
    X(ACTIVATIONS, "SELECT seq, version, action, actor, at FROM policy_activations ORDER BY seq DESC LIMIT ?1") \
    X(EVENT_RETRY, "UPDATE webhook_deliveries SET status = 'pending', next_attempt_ms = ?2, lease_until_ms = 0 WHERE event_id = ?1 AND status = 'failed' AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL)") \
    X(EVENT_ENDPOINTS_UNPAUSE, "UPDATE webhook_endpoints SET paused_until_ms = 0 WHERE paused_until_ms > 0 AND id IN (SELECT endpoint_id FROM webhook_deliveries WHERE event_id = ?1)")

/* ?10 is "now": a pending session past its expiry reads as expired. The
 * statements that find sessions for the API take the tenant as ?1 and the
 * mode as ?9 (store.h). */
#define SESSION_COLUMNS                                                        \
    "id, tenant_id, contractor_id, return_url, mode, "                         \
    "CASE WHEN status = 'pending' AND expires_at <= ?10 THEN 'expired' ELSE status END, " \
    "policy_version, created, expires_at, coalesce(completed_at, 0), coalesce(cancelled_at, 0)"

/* The events of tenant ?1's sessions of mode ?9, each beside its session
 * (the events' columns renamed, so SESSION_COLUMNS names the session's). */
#define TENANT_EVENTS                                                          \
    "FROM (SELECT seq AS ev_seq, id AS ev_id, tenant_id AS ev_tenant, type AS ev_type, " \
    "session_id AS ev_session, created AS ev_created FROM events) "           \
    "JOIN sessions ON id = ev_session WHERE ev_tenant = ?1 AND mode = ?9"

#define ENDPOINT_COLUMNS                                                       \
    "id, tenant_id, mode, url, created, secret_sealed, description, enabled_events, disabled, " \
    "previous_secret_sealed, previous_until_ms"
/* store_endpoints_due at ?1, at most ?2 of them, with ?3 and ?4 =
 * HF_WEBHOOK_PER_ENDPOINT and HF_WEBHOOK_PER_TENANT. The endpoints are
 * found by skipping through the pending deliveries' index from one
 * endpoint to the next (a loose index scan), and each is asked for its
 * oldest due delivery and for the deliveries in flight: a few index
 * probes per endpoint, never a read of its backlog. Those in flight are
 * counted in their own small index, without a status test (only a claim
 * sets a lease, every record clears it): with one, the planner may count
 * through the whole backlog in the pending index instead. */
#define ENDPOINTS_DUE                                                          \
    "WITH RECURSIVE ep(id) AS ("                                               \
    "SELECT (SELECT min(endpoint_id) FROM webhook_deliveries WHERE status = 'pending') " \
    "UNION ALL SELECT (SELECT min(endpoint_id) FROM webhook_deliveries "       \
    "WHERE status = 'pending' AND endpoint_id > ep.id) FROM ep WHERE ep.id IS NOT NULL) " \
    "SELECT id, tenant_id, gone, failures, slots, tenant_slots FROM ("         \
    "SELECT e.id, e.tenant_id, e.deleted_at IS NOT NULL AS gone, e.failures, " \
    "e.paused_until_ms, e.disabled, (CASE WHEN e.failures > 0 THEN 1 ELSE ?3 END) - "     \
    "(SELECT count(*) FROM webhook_deliveries l WHERE l.endpoint_id = e.id "  \
    "AND l.lease_until_ms > 0 AND l.lease_until_ms > ?1) AS slots, ?4 - "     \
    "(SELECT count(*) FROM webhook_deliveries l CROSS JOIN webhook_endpoints t " \
    "ON t.id = l.endpoint_id WHERE l.lease_until_ms > 0 AND l.lease_until_ms > ?1 " \
    "AND t.tenant_id = e.tenant_id) AS tenant_slots, "                        \
    "(SELECT d.next_attempt_ms FROM webhook_deliveries d WHERE d.endpoint_id = e.id " \
    "AND d.status = 'pending' AND d.lease_until_ms <= ?1 ORDER BY d.next_attempt_ms " \
    "LIMIT 1) AS due FROM ep JOIN webhook_endpoints e ON e.id = ep.id) "      \
    "WHERE gone OR (NOT disabled AND paused_until_ms <= ?1 AND slots > 0 AND tenant_slots > 0 " \
    "AND due <= ?1) ORDER BY gone DESC, due LIMIT ?2"

/* ?3 contractor or NULL, ?4 effective status or NULL, ?10 now. */
#define LIST_FILTER                                                            \
    "AND (?3 IS NULL OR contractor_id = ?3) "                                  \
    "AND (?4 IS NULL OR (CASE WHEN status = 'pending' AND expires_at <= ?10 " \
    "THEN 'expired' ELSE status END) = ?4)"

enum stmt_id {
#define STMT_ENUM(name, sql) Q_##name,
    STATEMENTS(STMT_ENUM)
#undef STMT_ENUM
    Q_COUNT
};

static const char *const stmt_sql[] = {
#define STMT_SQL(name, sql) sql,
    STATEMENTS(STMT_SQL)
#undef STMT_SQL
};

/* One write waiting for its group commit; lives on the submitter's stack,
 * or in its store (a later insert). */
struct write_job {
    int (*fn)(struct store *s, void *arg); /* runs inside the batch transaction */
    void *arg;
    int rc;                     /* fn's result, or HF_ESTORE if the commit failed */
    _Atomic int done;           /* set once rc is final; the job may die at once */
    /* a job nobody waits for: called instead, on the writer thread, once rc
     * is final */
    void (*answer)(struct write_job *job);
    struct write_job *next;
};

struct insert_args {
    struct session *in;
    const unsigned char *token_hash;
    const struct idempotency *idem;
    long long now;
    long long expect_gen;       /* an optimistic request's assumption, or 0 */
};

/* An insert whose request does not wait for it (store_session_insert_later). */
struct later_insert {
    struct write_job job;
    struct insert_args args;
    void (*done)(void *arg, int rc);
    void *arg;
    _Atomic int busy;           /* queued and not yet answered */
};

struct store {
    const struct store_ops *ops; /* &store_sqlite_ops (store_backend.h) */
    sqlite3 *db;                /* the connection; one thread at a time */
    sqlite3_stmt *stmt[Q_COUNT]; /* prepared on first use */
    struct store_writer *writer; /* when set, writes go through it */
    struct access_cache *access; /* made at the first key, tenant or contractor read */
    /* store_read_begin_optimistic: remembered answers are looked up at the
     * writer's newest access generation (assumed_gen) instead of reading
     * it; stale is set when a row read meanwhile was of another one */
    int optimistic, stale;
    long long assumed_gen;
    /* the writer's connection: the access generation, read at the first
     * session insert of each transaction (0 until then: generations start
     * at 1). Only CLI commands change the access tables, on connections of
     * their own, and not while the writer's transaction holds the write
     * lock: one read serves the batch */
    long long writing_gen;
    int expected;               /* counted in writer->expected */
    struct later_insert later;  /* one at a time: its request holds the thread */
};


struct store_writer {
    const struct store_ops *ops; /* &store_sqlite_ops */
    struct store *store;        /* the writing connection, used by the thread only */
    struct store *checkpoints;  /* the checkpointing connection */
    pthread_t thread;
    struct periodic *checkpointer; /* NULL until started */
    pthread_mutex_t lock;       /* guards the queue and stopping */
    pthread_cond_t work;        /* jobs queued, or stopping */
    struct write_job *head, *tail;
    int stopping;
    int gathering;              /* the writer waits for more of an open batch */
    _Atomic int expected;       /* optimistic creates begun and not yet queued or ended */
    unsigned long taken;        /* batches taken: a job queued now is in batch `taken` */
    _Atomic unsigned ended[2];  /* futex words: bumped when a batch of that parity ends */
    int wal_frames;             /* frames in the WAL after the last commit */
    _Atomic long long access_gen; /* the access generation of the last session insert; 0 before */
};

/* The cached, reset statement id; NULL (logged) if it cannot be prepared. */
static sqlite3_stmt *prep(struct store *s, enum stmt_id id)
{
    if (!s->stmt[id]) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->stmt[id], NULL) != SQLITE_OK) {
            log_msg(HF_LOG_ERROR, "store: prepare failed: %s", sqlite3_errmsg(s->db));
            return NULL;
        }
    }
    sqlite3_reset(s->stmt[id]);
    sqlite3_clear_bindings(s->stmt[id]);
    return s->stmt[id];
}

/* Run a statement that returns no rows; 0 or HF_ESTORE. */
static int run(struct store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_msg(HF_LOG_ERROR, "store: %s", sqlite3_errmsg(s->db));
        return HF_ESTORE;
    }
    return 0;
}

static int begin(struct store *s)
{
    sqlite3_stmt *st = prep(s, Q_BEGIN);

    s->writing_gen = 0;
    return st ? run(s, st) : HF_ESTORE;
}

/* Commit when rc is 0, else roll back; returns rc or the commit's failure. */
static int finish(struct store *s, int rc)
{
    sqlite3_stmt *st = prep(s, rc == 0 ? Q_COMMIT : Q_ROLLBACK);
    int rc2 = st ? run(s, st) : HF_ESTORE;

    if (rc == 0 && rc2 != 0) {
        st = prep(s, Q_ROLLBACK);
        if (st)
            run(s, st);
        return rc2;
    }
    return rc;
}

/* ---- group commit ------------------------------------------------------
 * One writer thread owns one connection. Workers queue their writes and
 * wait. The writer opens a transaction and runs each write as it comes,
 * while the workers go on serving other requests; it commits once no
 * optimistic create it knows of is still on its way (store.h), or
 * GATHER_US after the batch opened, then wakes the whole batch. A 201 is
 * still sent only after its row is committed, but one commit is shared by
 * every request of the batch, and the writes themselves are not a phase
 * in which everybody waits. */

#define BATCH_MAX 1024            /* commit at once past this many writes */
#define GATHER_US 500            /* the longest a batch stays open */
#define POLL_US 100               /* how often an open batch runs what is queued */
/* The writer's WAL restart copies what the background checkpoints have
 * not yet and syncs, with every request waiting: frequent background
 * checkpoints and a small WAL keep that pause short (p99 at 64
 * connections 7 -> 4.5 ms here, README "Benchmarks"). */
#define CHECKPOINT_EVERY_MS 5
#define WAL_RESTART_FRAMES 1024   /* about 4 MiB of WAL */

static int step_simple(struct store *s, enum stmt_id id)
{
    sqlite3_stmt *st = prep(s, id);

    return st ? run(s, st) : HF_ESTORE;
}

/* Run jobs under a savepoint each, so that a failing one undoes only
 * its own changes; commit once. When SQLite ends the transaction itself (a
 * full disk, an I/O error), nothing of the batch is kept and no later job
 * runs: a savepoint then would open a transaction of its own. */
static void run_batch_guarded(struct store *s, struct write_job *jobs)
{
    int rc = begin(s);

    for (struct write_job *j = jobs; j; j = j->next) {
        if (rc == 0 && sqlite3_get_autocommit(s->db))
            rc = HF_ESTORE;
        if (rc != 0 || step_simple(s, Q_SAVEPOINT) != 0) {
            j->rc = HF_ESTORE;
            continue;
        }
        j->rc = j->fn(s, j->arg);
        if (sqlite3_get_autocommit(s->db)) {
            rc = HF_ESTORE;
            continue;
        }
        /* a job that failed undoes only its own changes */
        if (j->rc != 0)
            step_simple(s, Q_ROLLBACK_TO);
        step_simple(s, Q_RELEASE);
    }
    if (rc == 0 && step_simple(s, Q_COMMIT) == 0)
        return;
    if (!sqlite3_get_autocommit(s->db))
        step_simple(s, Q_ROLLBACK);
    /* nothing of this batch was kept, nor does anything its jobs saw in it
     * stand: a job may have read a batch-mate's row (an idempotent replay
     * of a session that was never committed). Only HF_ESTALE rests on
     * committed data alone (the access generation the batch began at). */
    for (struct write_job *j = jobs; j; j = j->next)
        if (j->rc != HF_ESTALE)
            j->rc = HF_ESTORE;
}

/* Run jobs in the open transaction without savepoints (saving two
 * statements per job, and the page copies a savepoint keeps), appending
 * them to *tail. A job that fails having changed nothing (it refused
 * before writing, or its one failing statement was undone by SQLite)
 * needs no undo. When a failed job did change rows, or SQLite ended the
 * transaction, *broken is set and later jobs wait for the guarded run.
 * Returns how many jobs there were. */
static int run_jobs(struct store *s, struct write_job *jobs, struct write_job ***tail,
                    int *broken)
{
    int n = 0;

    while (jobs) {
        struct write_job *j = jobs;

        jobs = j->next;
        j->next = NULL;
        **tail = j;
        *tail = &j->next;
        n++;
        if (!*broken) {
            sqlite3_int64 before = sqlite3_total_changes64(s->db);

            j->rc = j->fn(s, j->arg);
            if (sqlite3_get_autocommit(s->db) ||
                (j->rc != 0 && sqlite3_total_changes64(s->db) != before))
                *broken = 1;
        }
    }
    return n;
}

/* Take what is queued (lock held). */
static struct write_job *take_queued(struct store_writer *w)
{
    struct write_job *jobs = w->head;

    w->head = w->tail = NULL;
    return jobs;
}

/* Commit the batch, or when that fails or it broke, roll it back and run
 * it again guarded; then publish what it means for optimistic requests. */
static void commit_batch(struct store_writer *w, struct write_job *batch, int n, int broken)
{
    struct store *s = w->store;

    if (broken || step_simple(s, Q_COMMIT) != 0) {
        if (!sqlite3_get_autocommit(s->db))
            step_simple(s, Q_ROLLBACK);
        run_batch_guarded(s, batch);
    }
    metrics_store_group_commit((unsigned long)n);
    if (s->writing_gen > 0) /* optimistic requests assume it next */
        atomic_store(&w->access_gen, s->writing_gen);
}

/* Under steady load readers always hold a recent snapshot, so the
 * background PASSIVE checkpoints never finish and the WAL never starts
 * over. Past a size, restart it between batches, once the last one's
 * requests are woken: this thread is the only writer, so it waits only for
 * readers to move on and copies what the checkpointer has not yet (about a
 * millisecond), while new jobs queue for the next batch. */
static void restart_wal(struct store_writer *w)
{
    if (w->wal_frames > WAL_RESTART_FRAMES) {
        sqlite3_wal_checkpoint_v2(w->store->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
        w->wal_frames = 0;
    }
}

/* One batch: open it with what is queued, run what comes until it is
 * complete, close it to newcomers, commit, wake its jobs. Lock held on
 * entry and exit. */
static void write_batch(struct store_writer *w)
{
    struct write_job *batch = NULL, **tail = &batch, *jobs;
    _Atomic unsigned *word;
    long long due = clock_mono_us() + GATHER_US, now;
    int n = 0, broken = 0;

    jobs = take_queued(w);
    pthread_mutex_unlock(&w->lock);
    broken = begin(w->store) != 0;
    n += run_jobs(w->store, jobs, &tail, &broken);
    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct timespec until;

        if ((jobs = take_queued(w))) {
            pthread_mutex_unlock(&w->lock);
            n += run_jobs(w->store, jobs, &tail, &broken);
            pthread_mutex_lock(&w->lock);
            continue;
        }
        now = clock_mono_us();
        if (broken || w->stopping || n >= BATCH_MAX || now >= due ||
            atomic_load(&w->expected) == 0)
            break;
        /* wake for what arrives meanwhile every POLL_US, or at once when
         * the last expected write is queued */
        clock_mono_timespec(now + POLL_US < due ? now + POLL_US : due, &until);
        w->gathering = 1;
        pthread_cond_timedwait(&w->work, &w->lock, &until);
        w->gathering = 0;
    }
    /* closed: what is queued from now on is the next batch's */
    word = &w->ended[w->taken++ & 1];
    jobs = take_queued(w);
    pthread_mutex_unlock(&w->lock);
    n += run_jobs(w->store, jobs, &tail, &broken);
    commit_batch(w, batch, n, broken);
    for (struct write_job **j = &batch; *j;) {
        if ((*j)->answer) { /* kept for after the wake */
            j = &(*j)->next;
            continue;
        }
        struct write_job *next = (*j)->next; /* the job dies once done */
        atomic_store_explicit(&(*j)->done, 1, memory_order_release);
        *j = next;
    }
    /* one call wakes the whole batch */
    atomic_fetch_add(word, 1);
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    log_hold(); /* the batch's request lines: one write */
    while (batch) {
        struct write_job *next = batch->next;
        batch->answer(batch);
        batch = next;
    }
    log_release();
    restart_wal(w);
    pthread_mutex_lock(&w->lock);
}

static void *writer_loop(void *arg)
{
    struct store_writer *w = arg;

    prctl(PR_SET_NAME, "hf-writer"); /* its name in top -H, ps -L */
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->work, &w->lock);
        if (!w->head)
            break;
        write_batch(w);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* WAL checkpoints off the request path: PASSIVE ones never wait for
 * readers or the writer, and automatic checkpoints are off where the
 * writer is used. */
static int checkpoint(struct periodic *p, void *arg)
{
    struct store_writer *w = arg;

    (void)p;
    sqlite3_wal_checkpoint_v2(w->checkpoints->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return 0;
}

/* sqlite3_wal_hook: remember how large the WAL has grown. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct store_writer *w = arg;

    (void)db;
    (void)name;
    w->wal_frames = frames; /* written and read by the writer thread only */
    return SQLITE_OK;
}

/* s no longer counts as an optimistic create on its way to the writer;
 * 1 when it was the last one that did. */
static int stop_expecting(struct store *s)
{
    if (!s->expected)
        return 0;
    s->expected = 0;
    return atomic_fetch_sub(&s->writer->expected, 1) == 1;
}

/* Queue fn and wait until its batch has ended. Every job of a batch waits
 * on the same word, chosen by the batch's parity: while batch k is open
 * only jobs of k and k + 1 exist. */
/* Queue job; *seen is the futex word of its batch as it was then. */
static _Atomic unsigned *enqueue(struct store_writer *w, struct store *s,
                                 struct write_job *job, unsigned *seen)
{
    _Atomic unsigned *word;

    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    word = &w->ended[w->taken & 1];
    *seen = atomic_load(word);
    /* an idle writer starts a batch; a gathering one is woken only by the
     * last expected write, else it looks every POLL_US */
    if (stop_expecting(s) || !w->gathering)
        pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->lock);
    return word;
}

static int submit(struct store_writer *w, struct store *s,
                  int (*fn)(struct store *, void *), void *arg)
{
    struct write_job job = {.fn = fn, .arg = arg};
    unsigned seen;
    _Atomic unsigned *word = enqueue(w, s, &job, &seen);

    while (!atomic_load_explicit(&job.done, memory_order_acquire)) {
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
        seen = atomic_load(word);
    }
    return job.rc;
}

/* An optimistic create on s is on its way to the writer. */
static void expect_write(struct store *s)
{
    if (s->writer && !s->expected) {
        s->expected = 1;
        atomic_fetch_add(&s->writer->expected, 1);
    }
}

/* It ended without writing: if the open batch waited only for it, wake
 * the writer to commit. */
static void forget_write(struct store *s)
{
    struct store_writer *w = s->writer;

    if (stop_expecting(s)) {
        pthread_mutex_lock(&w->lock);
        if (w->gathering)
            pthread_cond_signal(&w->work);
        pthread_mutex_unlock(&w->lock);
    }
}

/* End the request's reads (its snapshot, and the optimistic mode). */
static void end_snapshot(struct store *s)
{
    s->optimistic = 0;
    if (!sqlite3_get_autocommit(s->db))
        step_simple(s, Q_COMMIT);
}

/* Run fn as one transaction: through the writer when attached, else on
 * this connection. */
static int in_transaction(struct store *s, int (*fn)(struct store *, void *), void *arg)
{
    int rc;

    if (s->writer) {
        /* never wait for the writer while holding a read snapshot: the
         * writer's WAL restart waits for readers, so that would deadlock
         * until the busy timeout */
        end_snapshot(s); /* still expected: submit counts it queued */
        return submit(s->writer, s, fn, arg);
    }
    if ((rc = begin(s)) != 0)
        return rc;
    return finish(s, fn(s, arg));
}

/* What a lookup's sqlite3_step result means: 0 for a row, HF_ENOTFOUND
 * for none, HF_ESTORE for an error. */
static int found(int step_rc)
{
    if (step_rc == SQLITE_ROW)
        return 0;
    return step_rc == SQLITE_DONE ? HF_ENOTFOUND : HF_ESTORE;
}

static void copy_col(sqlite3_stmt *st, int col, char *dst, size_t n)
{
    const unsigned char *v = sqlite3_column_text(st, col);

    snprintf(dst, n, "%s", v ? (const char *)v : "");
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int exec(struct store *s, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;

    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return HF_ESTORE;
    }
    return 0;
}

#define STATUS_IN "CHECK (status IN ('pending', 'completed', 'cancelled', 'expired'))"
#define STATUS_OR "CHECK (status = 'pending' OR status = 'completed' OR " \
                  "status = 'cancelled' OR status = 'expired')"

/* One integer a PRAGMA answers. */
static int pragma_int(struct store *s, const char *sql, int *out)
{
    sqlite3_stmt *st;
    int rc = HF_ESTORE;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return HF_ESTORE;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Migration 8. For an IN list of more than two values SQLite builds a
 * temporary index at every statement that checks it: every session insert
 * and status change did, a sixth of the insert's cost. Spelt with OR it is
 * four comparisons. The two are equivalent, so every stored row meets the
 * new one, and the stored schema text is edited in place as SQLite
 * documents for such changes (lang_altertable.html, "other kinds of table
 * schema changes"): the schema version goes up, no row is copied. */
static int status_check_without_in(struct store *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char bump[64];
    int version, rc, stepped = SQLITE_ERROR;

    if (pragma_int(s, "PRAGMA schema_version", &version) != 0) {
        snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(s->db));
        return HF_ESTORE;
    }
    if ((rc = exec(s, "PRAGMA writable_schema = ON", err, errlen)) != 0)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE sqlite_schema SET sql = replace(sql, ?1, ?2) "
                           "WHERE type = 'table' AND name = 'sessions' AND instr(sql, ?1) > 0",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, STATUS_IN, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, STATUS_OR, -1, SQLITE_STATIC);
        stepped = sqlite3_step(st);
    }
    if (stepped != SQLITE_DONE) {
        snprintf(err, errlen, "sessions table: %s", sqlite3_errmsg(s->db));
        rc = HF_ESTORE;
    } else if (sqlite3_changes(s->db) != 1) {
        snprintf(err, errlen, "sessions table: its status CHECK is not the one migration 1 made");
        rc = HF_ESTORE;
    }
    sqlite3_finalize(st);
    snprintf(bump, sizeof bump, "PRAGMA schema_version = %d", version + 1);
    if (rc == 0)
        rc = exec(s, bump, err, errlen);
    if (exec(s, "PRAGMA writable_schema = OFF", err, errlen) != 0 && rc == 0)
        rc = HF_ESTORE;
    return rc;
}

/* Bring the schema to the newest version, one transaction per step, so a
 * crash mid-migration leaves a consistent older version. */
static int migrate(struct store *s, char *err, size_t errlen)
{
    int have, want = (int)(sizeof migrations / sizeof migrations[0]);

    for (;;) {
        char sql[64];
        int rc;

        if (exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
            return HF_ESTORE;
        if (pragma_int(s, "PRAGMA user_version", &have) != 0) {
            snprintf(err, errlen, "cannot read schema version");
            exec(s, "ROLLBACK", err, errlen);
            return HF_ESTORE;
        }
        if (have >= want) {
            exec(s, "COMMIT", err, errlen);
            if (have > want) {
                snprintf(err, errlen, "database schema version %d is newer than "
                         "this hostflow (%d); upgrade hostflow", have, want);
                return HF_ESTORE;
            }
            return 0;
        }
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", have + 1);
        rc = migrations[have].fn ? migrations[have].fn(s, err, errlen)
                                 : exec(s, migrations[have].sql, err, errlen);
        if (rc == 0)
            rc = exec(s, sql, err, errlen);
        if (rc == 0)
            rc = exec(s, "COMMIT", err, errlen);
        if (rc != 0) {
            char ignored[64];
            exec(s, "ROLLBACK", ignored, sizeof ignored);
            return rc;
        }
        log_msg(HF_LOG_INFO, "store: migrated schema to version %d", have + 1);
    }
}

static int synchronous_full;

void store_set_synchronous_full(int full)
{
    synchronous_full = full;
}

static void configure_sqlite(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* Retry delays in microseconds for the request threads' connections: a
 * lock held by another process (a CLI command) is waited out in growing
 * steps. */
static const int busy_delays_us[] = {
    1000, 2000, 5000, 10000, 15000, 20000, 25000, 25000, 25000, 50000, 50000, 100000};
/* The writer's: its WAL restart waits only for readers to leave the log,
 * which takes microseconds; millisecond sleeps stalled every request. */
static const int writer_delays_us[] = {
    20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000};
_Static_assert(sizeof busy_delays_us == sizeof writer_delays_us, "one length");

/* SQLite's busy handler: back off (delays: one of the tables above) while
 * another connection holds the lock, up to BUSY_TIMEOUT_MS in all,
 * counting every retry. */
static int busy_wait(void *delays, int count)
{
    const int *delay_us = delays;
    const int n = (int)(sizeof busy_delays_us / sizeof busy_delays_us[0]);
    long waited = 0, delay;
    struct timespec ts;

    for (int i = 0; i < count && i < n; i++)
        waited += delay_us[i];
    if (count >= n)
        waited += (long)(count - n) * delay_us[n - 1];
    if (waited >= BUSY_TIMEOUT_MS * 1000L)
        return 0; /* give up: the caller sees SQLITE_BUSY */
    delay = count < n ? delay_us[count] : delay_us[n - 1];
    metrics_store_busy_retry();
    ts.tv_sec = 0;
    ts.tv_nsec = delay * 1000L;
    nanosleep(&ts, NULL);
    return 1;
}

static int sqlite_open(const char *path, struct store **out, char *err, size_t errlen)
{
    static pthread_once_t configured = PTHREAD_ONCE_INIT;

    /* no global memory statistics: their mutex serialised every thread */
    pthread_once(&configured, configure_sqlite);
    struct store *s = calloc(1, sizeof *s);
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    s->ops = &store_sqlite_ops;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        store_close(s);
        return HF_ESTORE;
    }
    sqlite3_busy_handler(s->db, busy_wait, (void *)busy_delays_us);
    /* WAL: readers never block the writer. synchronous=NORMAL: a commit
     * survives a process crash; the last commits may be lost on power loss
     * (README, "Durability"). */
    /* No mmap: the file grows with every checkpoint, and each reader then
     * remapped it at its next read (a munmap and TLB shootdown each time,
     * a seventh of the CPU under load). */
    rc = exec(s, synchronous_full
                     ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
                       "PRAGMA foreign_keys = ON;"
                     : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                       "PRAGMA foreign_keys = ON;",
              err, errlen);
    if (rc == 0)
        rc = migrate(s, err, errlen);
    if (rc != 0) {
        store_close(s);
        return HF_ESTORE;
    }
    *out = s;
    return 0;
}

static void sqlite_close(struct store *s)
{
    if (!s)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    access_cache_free(s->access);
    free(s);
}

static int sqlite_ping(struct store *s)
{
    int rc = begin(s);
    sqlite3_stmt *st;

    if (rc == 0 && (st = prep(s, Q_ROLLBACK)))
        rc = run(s, st);
    return rc;
}

static int put_hosts(struct store *s, const char *tenant_id,
                     const char *const *hosts, size_t n)
{
    sqlite3_stmt *st;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!(st = prep(s, Q_HOST_INSERT)))
            return HF_ESTORE;
        bind_text(st, 1, tenant_id);
        sqlite3_bind_int64(st, 2, (long long)i);
        bind_text(st, 3, hosts[i]);
        rc = run(s, st);
    }
    return rc;
}

static void sqlite_read_begin(struct store *s)
{
    s->optimistic = 0;
    if (sqlite3_get_autocommit(s->db))
        step_simple(s, Q_READ_BEGIN);
}

static void sqlite_read_end(struct store *s)
{
    end_snapshot(s);
    forget_write(s);
}

static void sqlite_read_begin_optimistic(struct store *s)
{
    long long gen = s->writer ? atomic_load(&s->writer->access_gen) : 0;

    sqlite_read_begin(s);
    expect_write(s);
    if (gen > 0) { /* else nothing has been inserted yet: read as usual */
        s->optimistic = 1;
        s->stale = 0;
        s->assumed_gen = gen;
    }
}

/* 0 when the tenant exists, HF_ENOTFOUND when not, HF_ESTORE on failure. */
static int tenant_exists(struct store *s, const char *tenant_id)
{
    sqlite3_stmt *st = prep(s, Q_TENANT_GET);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return found(rc);
}

static int sqlite_tenant_create(struct store *s, const char *name,
                                const char *const *hosts, size_t n_hosts,
                                struct tenant *out)
{
    sqlite3_stmt *st;
    struct tenant t;
    int rc;

    if (n_hosts > HF_HOSTS_MAX)
        return HF_EINVAL;
    memset(&t, 0, sizeof t);
    token_id("tn_", t.id, sizeof t.id);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.created = clock_now_s();
    if ((rc = begin(s)) != 0)
        return rc;
    if (!(st = prep(s, Q_TENANT_INSERT))) {
        rc = HF_ESTORE;
    } else {
        bind_text(st, 1, t.id);
        bind_text(st, 2, t.name);
        sqlite3_bind_int64(st, 3, t.created);
        rc = run(s, st);
    }
    if (rc == 0)
        rc = put_hosts(s, t.id, hosts, n_hosts);
    rc = finish(s, rc);
    if (rc == 0)
        rc = store_tenant_get(s, t.id, out);
    return rc;
}

static int sqlite_tenant_set_hosts(struct store *s, const char *tenant_id,
                                   const char *const *hosts, size_t n_hosts)
{
    sqlite3_stmt *st;
    int rc;

    if (n_hosts > HF_HOSTS_MAX)
        return HF_EINVAL;
    if ((rc = begin(s)) != 0)
        return rc;
    rc = tenant_exists(s, tenant_id);
    if (rc == 0) {
        if (!(st = prep(s, Q_HOSTS_DELETE)))
            rc = HF_ESTORE;
        else {
            bind_text(st, 1, tenant_id);
            rc = run(s, st);
        }
    }
    if (rc == 0)
        rc = put_hosts(s, tenant_id, hosts, n_hosts);
    return finish(s, rc);
}

/* The access generation of this snapshot, read before the answers it
 * vouches for; with the connection's cache made on first use. 0 or
 * HF_ESTORE. */
static int snapshot_generation(struct store *s, long long *gen)
{
    sqlite3_stmt *st = prep(s, Q_ACCESS_GENERATION);
    int rc;

    if (!st)
        return HF_ESTORE;
    rc = sqlite3_step(st);
    *gen = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return HF_ESTORE;
    if (!s->access)
        s->access = access_cache_new(); /* NULL: no cache, still correct */
    return 0;
}

/* The generation to look a remembered answer up at: the one assumed by an
 * optimistic request, else this snapshot's. */
static int lookup_generation(struct store *s, long long *gen)
{
    if (!s->optimistic)
        return snapshot_generation(s, gen);
    *gen = s->assumed_gen;
    return 0;
}

/* Before reading rows for lack of a remembered answer: the generation to
 * remember them with (this snapshot's). An optimistic request whose
 * assumption it contradicts is stale. */
static int row_generation(struct store *s, long long looked_up, long long *gen)
{
    if (!s->optimistic) {
        *gen = looked_up;
        return 0;
    }
    if (snapshot_generation(s, gen) != 0)
        return HF_ESTORE;
    if (*gen != s->assumed_gen)
        s->stale = 1;
    return 0;
}

static int sqlite_read_current(struct store *s)
{
    long long gen;
    int stale = s->stale;

    if (!s->optimistic)
        return 1;
    sqlite_read_end(s); /* the newest generation, not this request's snapshot's */
    return !stale && snapshot_generation(s, &gen) == 0 && gen == s->assumed_gen;
}

static int sqlite_tenant_get(struct store *s, const char *tenant_id, struct tenant *out)
{
    sqlite3_stmt *st;
    long long gen;
    int rc;

    if (lookup_generation(s, &gen) != 0)
        return HF_ESTORE;
    if (access_cache_tenant(s->access, gen, tenant_id, out))
        return 0;
    if (row_generation(s, gen, &gen) != 0 || !(st = prep(s, Q_TENANT_GET)))
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return found(rc);
    }
    copy_col(st, 0, out->id, sizeof out->id);
    copy_col(st, 1, out->name, sizeof out->name);
    out->created = sqlite3_column_int64(st, 2);
    sqlite3_reset(st);

    if (!(st = prep(s, Q_HOSTS_GET)))
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    out->n_hosts = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->n_hosts < HF_HOSTS_MAX)
        copy_col(st, 0, out->hosts[out->n_hosts++], sizeof out->hosts[0]);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return HF_ESTORE;
    access_cache_put_tenant(s->access, gen, out);
    return 0;
}

static int sqlite_key_create(struct store *s, const char *tenant_id, const char *mode,
                             const unsigned char secret_hash[HF_HASH_BYTES],
                             const char *prefix, struct api_key *out)
{
    sqlite3_stmt *st;
    struct api_key k;
    int rc;

    memset(&k, 0, sizeof k);
    token_id("key_", k.id, sizeof k.id);
    snprintf(k.tenant_id, sizeof k.tenant_id, "%s", tenant_id);
    snprintf(k.mode, sizeof k.mode, "%s", mode);
    snprintf(k.prefix, sizeof k.prefix, "%s", prefix);
    if ((rc = begin(s)) != 0)
        return rc;
    rc = tenant_exists(s, tenant_id);
    if (rc == 0) {
        if (!(st = prep(s, Q_KEY_INSERT))) {
            rc = HF_ESTORE;
        } else {
            bind_text(st, 1, k.id);
            bind_text(st, 2, k.tenant_id);
            bind_text(st, 3, k.mode);
            bind_text(st, 4, k.prefix);
            sqlite3_bind_blob(st, 5, secret_hash, HF_HASH_BYTES, SQLITE_STATIC);
            sqlite3_bind_int64(st, 6, clock_now_s());
            rc = run(s, st);
        }
    }
    rc = finish(s, rc);
    if (rc == 0)
        *out = k;
    return rc;
}

static int sqlite_key_revoke(struct store *s, const char *key_id, long long now)
{
    sqlite3_stmt *st;
    int rc;

    if ((rc = begin(s)) != 0)
        return rc;
    if (!(st = prep(s, Q_KEY_REVOKE))) {
        rc = HF_ESTORE;
    } else {
        bind_text(st, 1, key_id);
        sqlite3_bind_int64(st, 2, now);
        rc = run(s, st);
        if (rc == 0 && sqlite3_changes(s->db) == 0)
            rc = HF_ENOTFOUND;
    }
    return finish(s, rc);
}

static int sqlite_key_find(struct store *s, const unsigned char secret_hash[HF_HASH_BYTES],
                           struct api_key *out)
{
    sqlite3_stmt *st;
    long long gen;
    int rc;

    if (lookup_generation(s, &gen) != 0)
        return HF_ESTORE;
    /* a revoked key is read like an unknown one, not answered from memory:
     * both cost the same lookup */
    if (access_cache_key(s->access, gen, secret_hash, out) && !out->revoked_at)
        return 0;
    if (row_generation(s, gen, &gen) != 0 || !(st = prep(s, Q_KEY_FIND)))
        return HF_ESTORE;
    sqlite3_bind_blob(st, 1, secret_hash, HF_HASH_BYTES, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 5) == HF_HASH_BYTES &&
        token_equal(sqlite3_column_blob(st, 5), secret_hash, HF_HASH_BYTES)) {
        copy_col(st, 0, out->id, sizeof out->id);
        copy_col(st, 1, out->tenant_id, sizeof out->tenant_id);
        copy_col(st, 2, out->mode, sizeof out->mode);
        copy_col(st, 3, out->prefix, sizeof out->prefix);
        out->revoked_at = sqlite3_column_int64(st, 4);
        if (!out->revoked_at)
            access_cache_put_key(s->access, gen, secret_hash, out);
        rc = 0;
    } else {
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? HF_ENOTFOUND : HF_ESTORE;
    }
    sqlite3_reset(st);
    return rc;
}

static int sqlite_contractor_create(struct store *s, const char *tenant_id,
                                    const char *name, struct contractor *out)
{
    sqlite3_stmt *st;
    struct contractor c;
    int rc;

    memset(&c, 0, sizeof c);
    token_id("cn_", c.id, sizeof c.id);
    snprintf(c.tenant_id, sizeof c.tenant_id, "%s", tenant_id);
    snprintf(c.name, sizeof c.name, "%s", name ? name : "");
    if ((rc = begin(s)) != 0)
        return rc;
    rc = tenant_exists(s, tenant_id);
    if (rc == 0) {
        if (!(st = prep(s, Q_CONTRACTOR_INSERT))) {
            rc = HF_ESTORE;
        } else {
            bind_text(st, 1, c.id);
            bind_text(st, 2, c.tenant_id);
            bind_text(st, 3, name);
            sqlite3_bind_int64(st, 4, clock_now_s());
            rc = run(s, st);
        }
    }
    rc = finish(s, rc);
    if (rc == 0)
        *out = c;
    return rc;
}

static void read_tenant_row(sqlite3_stmt *st, struct tenant *t)
{

    copy_col(st, 0, t->id, sizeof t->id);
    copy_col(st, 1, t->name, sizeof t->name);
    t->created = sqlite3_column_int64(st, 2);
    t->n_hosts = 0;
}

static void read_key_row(sqlite3_stmt *st, struct api_key *k)
{

    copy_col(st, 0, k->id, sizeof k->id);
    copy_col(st, 1, k->tenant_id, sizeof k->tenant_id);
    copy_col(st, 2, k->mode, sizeof k->mode);
    copy_col(st, 3, k->prefix, sizeof k->prefix);
    k->revoked_at = sqlite3_column_int64(st, 4);
    k->created = sqlite3_column_int64(st, 5);
}

static void read_contractor_row(sqlite3_stmt *st, struct contractor *c)
{

    copy_col(st, 0, c->id, sizeof c->id);
    copy_col(st, 1, c->tenant_id, sizeof c->tenant_id);
    copy_col(st, 2, c->name, sizeof c->name);
    c->created = sqlite3_column_int64(st, 3);
}

static int sqlite_tenant_each(struct store *s, int (*fn)(void *arg, const struct tenant *t),
                              void *arg)
{
    sqlite3_stmt *st = prep(s, Q_TENANT_ALL);
    struct tenant *t = calloc(1, sizeof *t); /* its hosts make it large */
    int rc = SQLITE_DONE, stop = 0;

    if (!st || !t) {
        free(t);
        return HF_ESTORE;
    }
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_tenant_row(st, t);
        stop = fn(arg, t);
    }
    sqlite3_reset(st);
    free(t);
    return stop ? stop : rc == SQLITE_DONE ? 0 : HF_ESTORE;
}

static int sqlite_key_each(struct store *s, const char *tenant_id,
                           int (*fn)(void *arg, const struct api_key *k), void *arg)
{
    sqlite3_stmt *st = prep(s, Q_KEYS_OF_TENANT);
    struct api_key k;
    int rc = SQLITE_DONE, stop = 0;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_key_row(st, &k);
        stop = fn(arg, &k);
    }
    sqlite3_reset(st);
    return stop ? stop : rc == SQLITE_DONE ? 0 : HF_ESTORE;
}

static int sqlite_contractor_each(struct store *s, const char *tenant_id,
                                  int (*fn)(void *arg, const struct contractor *c), void *arg)
{
    sqlite3_stmt *st = prep(s, Q_CONTRACTORS_OF_TENANT);
    struct contractor c;
    int rc = SQLITE_DONE, stop = 0;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_contractor_row(st, &c);
        stop = fn(arg, &c);
    }
    sqlite3_reset(st);
    return stop ? stop : rc == SQLITE_DONE ? 0 : HF_ESTORE;
}

static int sqlite_contractor_check(struct store *s, const char *tenant_id,
                                   const char *contractor_id)
{
    sqlite3_stmt *st;
    long long gen;
    int rc;

    if (lookup_generation(s, &gen) != 0)
        return HF_ESTORE;
    if (access_cache_contractor(s->access, gen, tenant_id, contractor_id))
        return 0;
    if (row_generation(s, gen, &gen) != 0 || !(st = prep(s, Q_CONTRACTOR_CHECK)))
        return HF_ESTORE;
    bind_text(st, 1, contractor_id);
    bind_text(st, 2, tenant_id);
    rc = found(sqlite3_step(st));
    sqlite3_reset(st);
    if (rc == 0)
        access_cache_put_contractor(s->access, gen, tenant_id, contractor_id);
    return rc;
}

static void read_session(sqlite3_stmt *st, struct session *out)
{
    copy_col(st, 0, out->id, sizeof out->id);
    copy_col(st, 1, out->tenant_id, sizeof out->tenant_id);
    copy_col(st, 2, out->contractor_id, sizeof out->contractor_id);
    copy_col(st, 3, out->return_url, sizeof out->return_url);
    copy_col(st, 4, out->mode, sizeof out->mode);
    copy_col(st, 5, out->status, sizeof out->status);
    copy_col(st, 6, out->policy_version, sizeof out->policy_version);
    out->created = sqlite3_column_int64(st, 7);
    out->expires_at = sqlite3_column_int64(st, 8);
    out->completed_at = sqlite3_column_int64(st, 9);
    out->cancelled_at = sqlite3_column_int64(st, 10);
}

static int sqlite_session_get(struct store *s, const char *tenant_id, const char *mode,
                              const char *id, long long now, struct session *out)
{
    sqlite3_stmt *st = prep(s, Q_SESSION_GET);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    bind_text(st, 2, id);
    bind_text(st, 9, mode);
    sqlite3_bind_int64(st, 10, now);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_session(st, out);
    sqlite3_reset(st);
    return found(rc);
}

/* Inside a transaction: the stored result for idem, if any. */
static int idem_lookup(struct store *s, const char *tenant_id, const char *mode,
                       const struct idempotency *idem, long long now,
                       struct session *out)
{
    sqlite3_stmt *st = prep(s, Q_IDEM_GET);
    char session_id[HF_ID_MAX];
    int rc, same;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    bind_text(st, 2, idem->key);
    sqlite3_bind_int64(st, 3, now - HF_IDEMPOTENCY_TTL);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return found(rc);
    }
    same = sqlite3_column_bytes(st, 0) == HF_HASH_BYTES &&
           token_equal(sqlite3_column_blob(st, 0), idem->request_hash, HF_HASH_BYTES);
    copy_col(st, 1, session_id, sizeof session_id);
    sqlite3_reset(st);
    if (!same)
        return HF_EIDEMPOTENCY;
    rc = sqlite_session_get(s, tenant_id, mode, session_id, now, out);
    return rc == 0 ? HF_EEXISTS : rc;
}

static int sqlite_idempotency_find(struct store *s, const char *tenant_id,
                                   const char *mode, const struct idempotency *idem,
                                   long long now, struct session *out)
{
    if (!idem || !idem->key)
        return HF_ENOTFOUND;
    return idem_lookup(s, tenant_id, mode, idem, now, out);
}

static int do_session_insert(struct store *s, void *arg)
{
    struct insert_args *a = arg;
    struct session *in = a->in;
    const struct idempotency *idem = a->idem;
    long long now = a->now;
    sqlite3_stmt *st;
    int rc;

    /* inside the write lock nothing changes the generation under us */
    if (s->writing_gen == 0 && (rc = snapshot_generation(s, &s->writing_gen)) != 0)
        return rc;
    if (a->expect_gen && a->expect_gen != s->writing_gen)
        return HF_ESTALE;
    /* checked again inside the write lock: of two racing requests with one
     * key, the second sees the first's row. Looked up aside: a batch run
     * again must find this request's own session in *in */
    if (idem && idem->key) {
        struct session earlier;

        rc = idem_lookup(s, in->tenant_id, in->mode, idem, now, &earlier);
        if (rc == HF_EEXISTS)
            *in = earlier;
        if (rc != HF_ENOTFOUND)
            return rc;
    }
    if (!(st = prep(s, Q_SESSION_INSERT)))
        return HF_ESTORE;
    bind_text(st, 1, in->id);
    bind_text(st, 2, in->tenant_id);
    bind_text(st, 3, in->contractor_id);
    bind_text(st, 4, in->return_url);
    bind_text(st, 5, in->mode);
    sqlite3_bind_blob(st, 6, a->token_hash, HF_HASH_BYTES, SQLITE_STATIC);
    bind_text(st, 7, in->policy_version);
    sqlite3_bind_int64(st, 8, in->created);
    sqlite3_bind_int64(st, 9, in->expires_at);
    rc = run(s, st);
    if (rc == 0 && idem && idem->key) {
        if (!(st = prep(s, Q_IDEM_PURGE))) {
            rc = HF_ESTORE;
        } else {
            sqlite3_bind_int64(st, 1, now - HF_IDEMPOTENCY_TTL);
            rc = run(s, st);
        }
        if (rc == 0 && !(st = prep(s, Q_IDEM_PUT)))
            rc = HF_ESTORE;
        if (rc == 0) {
            bind_text(st, 1, in->tenant_id);
            bind_text(st, 2, idem->key);
            sqlite3_bind_blob(st, 3, idem->request_hash, HF_HASH_BYTES, SQLITE_STATIC);
            bind_text(st, 4, in->id);
            sqlite3_bind_int64(st, 5, now);
            rc = run(s, st);
        }
    }
    return rc;
}

static int sqlite_session_insert(struct store *s, struct session *in,
                                 const unsigned char token_hash[HF_HASH_BYTES],
                                 const struct idempotency *idem, long long now)
{
    struct insert_args a = {in, token_hash, idem, now, s->optimistic ? s->assumed_gen : 0};

    if (s->optimistic && s->stale)
        return HF_ESTALE;
    return in_transaction(s, do_session_insert, &a);
}

static void answer_later(struct write_job *job)
{
    struct later_insert *l = (struct later_insert *)job;
    void (*done)(void *, int) = l->done;
    void *arg = l->arg;
    int rc = job->rc;

    /* free before done: done lets the request's thread go on to its next */
    atomic_store(&l->busy, 0);
    done(arg, rc);
}

static int sqlite_inserts_later(struct store *s)
{
    return s->writer != NULL;
}

static int sqlite_session_insert_later(struct store *s, struct session *in,
                                       const unsigned char token_hash[HF_HASH_BYTES],
                                       long long now, void (*done)(void *arg, int rc),
                                       void *arg)
{
    struct later_insert *l = &s->later;
    unsigned seen;

    if (!s->writer || atomic_load(&l->busy))
        return HF_ESTORE;
    if (s->optimistic && s->stale)
        return HF_ESTALE;
    atomic_store(&l->busy, 1);
    l->args = (struct insert_args){in, token_hash, NULL, now,
                                   s->optimistic ? s->assumed_gen : 0};
    l->job = (struct write_job){.fn = do_session_insert, .arg = &l->args,
                                .answer = answer_later};
    l->done = done;
    l->arg = arg;
    end_snapshot(s); /* as in_transaction: no snapshot held past the queue */
    enqueue(s->writer, s, &l->job, &seen);
    return 0;
}

/* seq of a cursor id under tenant and mode, by statement q (a session's
 * or an event's); HF_ENOTFOUND if it names nothing there. */
static int cursor_seq(struct store *s, enum stmt_id q, const char *tenant_id,
                      const char *mode, const char *id, long long *seq)
{
    sqlite3_stmt *st = prep(s, q);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    bind_text(st, 2, id);
    bind_text(st, 9, mode);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return found(rc);
}

static int sqlite_session_list(struct store *s, const char *tenant_id, const char *mode,
                               const struct session_query *q, long long now,
                               struct session *out, size_t *n)
{
    int newer = q->page.ending_before != NULL;
    long long seq = newer ? 0 : (long long)9223372036854775807LL;
    sqlite3_stmt *st;
    size_t count = 0;
    int rc;

    if (q->page.starting_after &&
        (rc = cursor_seq(s, Q_SESSION_SEQ, tenant_id, mode, q->page.starting_after, &seq)) != 0)
        return rc;
    if (newer && (rc = cursor_seq(s, Q_SESSION_SEQ, tenant_id, mode, q->page.ending_before, &seq)) != 0)
        return rc;
    if (!(st = prep(s, newer ? Q_SESSION_LIST_NEWER : Q_SESSION_LIST_OLDER)))
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, seq);
    bind_text(st, 3, q->contractor_id);
    bind_text(st, 4, q->status);
    sqlite3_bind_int(st, 6, q->page.limit);
    bind_text(st, 9, mode);
    sqlite3_bind_int64(st, 10, now);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && count < (size_t)q->page.limit)
        read_session(st, &out[count++]);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return HF_ESTORE;
    *n = count;
    return 0;
}


static int sqlite_session_by_token(struct store *s, const unsigned char token_hash[HF_HASH_BYTES],
                                   long long now, struct session *out)
{
    sqlite3_stmt *st = prep(s, Q_SESSION_BY_TOKEN);
    int rc;

    if (!st)
        return HF_ESTORE;
    sqlite3_bind_blob(st, 1, token_hash, HF_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, now);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_session(st, out);
    sqlite3_reset(st);
    return found(rc);
}

struct redeem_args {
    const unsigned char *token_hash;
    const unsigned char *browser_hash;
    long long now;
    struct session *out;
};

static int do_redeem(struct store *s, void *arg)
{
    struct redeem_args *a = arg;
    const unsigned char *token_hash = a->token_hash, *browser_hash = a->browser_hash;
    long long now = a->now;
    struct session *out = a->out;
    sqlite3_stmt *st;
    int rc;

    /* read first (the update clears what the read matches), then the
     * conditional update decides: exactly one racer changes the row */
    rc = sqlite_session_by_token(s, token_hash, now, out);
    if (rc == 0) {
        if (!(st = prep(s, Q_SESSION_REDEEM))) {
            rc = HF_ESTORE;
        } else {
            sqlite3_bind_blob(st, 1, token_hash, HF_HASH_BYTES, SQLITE_STATIC);
            sqlite3_bind_blob(st, 2, browser_hash, HF_HASH_BYTES, SQLITE_STATIC);
            sqlite3_bind_int64(st, 10, now);
            rc = run(s, st);
            if (rc == 0 && sqlite3_changes(s->db) != 1)
                rc = HF_ENOTFOUND;
        }
    }
    return rc;
}

static int sqlite_session_redeem(struct store *s, const unsigned char token_hash[HF_HASH_BYTES],
                                 const unsigned char browser_hash[HF_HASH_BYTES], long long now,
                                 struct session *out)
{
    struct redeem_args a = {token_hash, browser_hash, now, out};

    return in_transaction(s, do_redeem, &a);
}

static int sqlite_session_for_browser(struct store *s, const char *id,
                                      const unsigned char browser_hash[HF_HASH_BYTES],
                                      long long now, struct session *out)
{
    sqlite3_stmt *st = prep(s, Q_SESSION_FOR_BROWSER);
    int rc, same = 0;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 10, now);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        same = sqlite3_column_bytes(st, 11) == HF_HASH_BYTES &&
               token_equal(sqlite3_column_blob(st, 11), browser_hash, HF_HASH_BYTES);
        if (same)
            read_session(st, out);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return same ? 0 : HF_ENOTFOUND;
    return found(rc);
}

/* The event of a session's state change and its deliveries to every
 * endpoint of the tenant and mode, due now: part of the caller's
 * transaction. */
static int emit_event(struct store *s, const char *type, const char *tenant_id,
                      const char *mode, const char *session_id, long long now)
{
    sqlite3_stmt *st = prep(s, Q_EVENT_INSERT);
    char id[HF_ID_MAX];
    int rc;

    if (!st)
        return HF_ESTORE;
    token_id("evt_", id, sizeof id);
    bind_text(st, 1, id);
    bind_text(st, 2, tenant_id);
    bind_text(st, 3, type);
    bind_text(st, 4, session_id);
    sqlite3_bind_int64(st, 5, now);
    if ((rc = run(s, st)) != 0)
        return rc;
    if (!(st = prep(s, Q_DELIVERIES_INSERT)))
        return HF_ESTORE;
    bind_text(st, 1, id);
    bind_text(st, 2, tenant_id);
    bind_text(st, 3, mode);
    sqlite3_bind_int64(st, 4, now * 1000);
    bind_text(st, 5, type);
    return run(s, st);
}

/* pending → a terminal state by statement q (?1 tenant, ?2 id, ?3 now,
 * ?4..?6 the card when given, ?9 mode), in one transaction with the check. */
struct transition_args {
    enum stmt_id q;
    const char *tenant_id;
    const char *mode;
    const char *id;
    const struct saved_card *card;
    long long now;
    struct session *out;
};

static int do_leave_pending(struct store *s, void *arg)
{
    struct transition_args *a = arg;
    const char *tenant_id = a->tenant_id, *mode = a->mode, *id = a->id;
    const struct saved_card *card = a->card;
    long long now = a->now;
    struct session *out = a->out;
    sqlite3_stmt *st;
    int rc;

    rc = sqlite_session_get(s, tenant_id, mode, id, now, out);
    if (rc == 0) {
        if (strcmp(out->status, "expired") == 0)
            rc = HF_EEXPIRED;
        else if (strcmp(out->status, "pending") != 0)
            rc = HF_ENOTPENDING;
    }
    if (rc == 0) {
        if (!(st = prep(s, a->q))) {
            rc = HF_ESTORE;
        } else {
            bind_text(st, 1, tenant_id);
            bind_text(st, 2, id);
            sqlite3_bind_int64(st, 3, now);
            bind_text(st, 9, mode);
            if (card) {
                bind_text(st, 4, card->brand);
                bind_text(st, 5, card->last4);
                bind_text(st, 6, card->reference);
            }
            rc = run(s, st);
        }
    }
    if (rc == 0)
        rc = emit_event(s, a->q == Q_SESSION_CANCEL ? "payment.session.cancelled"
                                                  : "payment.session.completed",
                        tenant_id, mode, id, now);
    if (rc == 0)
        rc = sqlite_session_get(s, tenant_id, mode, id, now, out);
    return rc;
}

static int leave_pending(struct store *s, enum stmt_id q, const char *tenant_id,
                         const char *mode, const char *id, const struct saved_card *card,
                         long long now, struct session *out)
{
    struct transition_args a = {q, tenant_id, mode, id, card, now, out};

    return in_transaction(s, do_leave_pending, &a);
}

static int sqlite_session_cancel(struct store *s, const char *tenant_id, const char *mode,
                                 const char *id, long long now, struct session *out)
{
    return leave_pending(s, Q_SESSION_CANCEL, tenant_id, mode, id, NULL, now, out);
}

static int sqlite_session_complete(struct store *s, const char *tenant_id, const char *mode,
                                   const char *id, const struct saved_card *card,
                                   long long now, struct session *out)
{
    return leave_pending(s, Q_SESSION_COMPLETE, tenant_id, mode, id, card, now, out);
}

struct expire_args {
    long long now;
    int *n;
};

static int do_expire(struct store *s, void *arg)
{
    struct expire_args *a = arg;
    struct {
        char id[HF_ID_MAX], tenant_id[HF_ID_MAX], mode[8];
    } *due = malloc(HF_EXPIRE_BATCH * sizeof *due);
    sqlite3_stmt *st = prep(s, Q_SESSIONS_EXPIRING);
    int rc, n = 0;

    if (!st || !due) {
        free(due);
        return st ? HF_ENOMEM : HF_ESTORE;
    }
    sqlite3_bind_int64(st, 1, a->now);
    sqlite3_bind_int(st, 2, HF_EXPIRE_BATCH);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < HF_EXPIRE_BATCH) {
        copy_col(st, 0, due[n].id, sizeof due[n].id);
        copy_col(st, 1, due[n].tenant_id, sizeof due[n].tenant_id);
        copy_col(st, 2, due[n].mode, sizeof due[n].mode);
        n++;
    }
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : HF_ESTORE;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (!(st = prep(s, Q_SESSION_EXPIRE))) {
            rc = HF_ESTORE;
            break;
        }
        bind_text(st, 1, due[i].id);
        rc = run(s, st);
        if (rc == 0)
            rc = emit_event(s, "payment.session.expired", due[i].tenant_id, due[i].mode,
                            due[i].id, a->now);
    }
    free(due);
    if (rc == 0)
        *a->n = n;
    return rc;
}

static int sqlite_sessions_expire(struct store *s, long long now, int *n)
{
    struct expire_args a = {now, n};

    *n = 0;
    return in_transaction(s, do_expire, &a);
}

static int sqlite_writer_start(const char *path, struct store_writer **out, char *err,
                               size_t errlen)
{
    struct store_writer *w = calloc(1, sizeof *w);
    pthread_condattr_t monotonic;

    if (!w) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    w->ops = &store_sqlite_ops;
    if (store_open(path, &w->store, err, errlen) != 0 ||
        store_open(path, &w->checkpoints, err, errlen) != 0) {
        store_close(w->store);
        free(w);
        return HF_ESTORE;
    }
    exec(w->store, "PRAGMA wal_autocheckpoint = 0", err, errlen);
    sqlite3_busy_handler(w->store->db, busy_wait, (void *)writer_delays_us);
    /* a restarted WAL is cut back to this size instead of staying large */
    exec(w->store, "PRAGMA journal_size_limit = 16777216", err, errlen);
    sqlite3_wal_hook(w->store->db, on_commit, w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&w->work, &monotonic);
    pthread_condattr_destroy(&monotonic);
    if (pthread_create(&w->thread, NULL, writer_loop, w) != 0) {
        snprintf(err, errlen, "cannot start the writer thread");
        store_close(w->store);
        store_close(w->checkpoints);
        free(w);
        return HF_ESTORE;
    }
    if (!(w->checkpointer = periodic_start("hf-checkpoint", CHECKPOINT_EVERY_MS, checkpoint, w))) {
        snprintf(err, errlen, "cannot start the checkpoint thread");
        store_writer_stop(w);
        return HF_ESTORE;
    }
    *out = w;
    return 0;
}

static void sqlite_writer_stop(struct store_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL); /* finishes what is queued first */
    periodic_stop(w->checkpointer);
    /* a last full checkpoint keeps the WAL from outliving the process */
    sqlite3_wal_checkpoint_v2(w->checkpoints->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->work);
    store_close(w->store);
    store_close(w->checkpoints);
    free(w);
}

static int sqlite_attach_writer(struct store *s, struct store_writer *w)
{
    char err[128];

    s->writer = w;
    return exec(s, "PRAGMA wal_autocheckpoint = 0", err, sizeof err);
}

/* ---- webhooks --------------------------------------------------------- */

static void read_endpoint(sqlite3_stmt *st, struct webhook_endpoint *out)
{
    int n = sqlite3_column_bytes(st, 5);

    copy_col(st, 0, out->id, sizeof out->id);
    copy_col(st, 1, out->tenant_id, sizeof out->tenant_id);
    copy_col(st, 2, out->mode, sizeof out->mode);
    copy_col(st, 3, out->url, sizeof out->url);
    out->created = sqlite3_column_int64(st, 4);
    out->secret_len = n > 0 && (size_t)n <= sizeof out->secret ? (size_t)n : 0;
    if (out->secret_len)
        memcpy(out->secret, sqlite3_column_blob(st, 5), out->secret_len);
    copy_col(st, 6, out->description, sizeof out->description);
    copy_col(st, 7, out->enabled_events, sizeof out->enabled_events);
    out->disabled = sqlite3_column_int(st, 8);
    n = sqlite3_column_bytes(st, 9);
    out->previous_secret_len = n > 0 && (size_t)n <= sizeof out->previous_secret ? (size_t)n : 0;
    if (out->previous_secret_len)
        memcpy(out->previous_secret, sqlite3_column_blob(st, 9), out->previous_secret_len);
    out->previous_until_ms = sqlite3_column_int64(st, 10);
}

static int do_endpoint_create(struct store *s, void *arg)
{
    const struct webhook_endpoint *e = arg;
    sqlite3_stmt *st = prep(s, Q_ENDPOINT_COUNT);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, e->tenant_id);
    bind_text(st, 2, e->mode);
    rc = found(sqlite3_step(st));
    if (rc == 0 && sqlite3_column_int(st, 0) >= HF_ENDPOINTS_MAX)
        rc = HF_ELIMIT;
    sqlite3_reset(st);
    if (rc != 0)
        return rc;
    if (!(st = prep(s, Q_ENDPOINT_INSERT)))
        return HF_ESTORE;
    bind_text(st, 1, e->id);
    bind_text(st, 2, e->tenant_id);
    bind_text(st, 3, e->mode);
    bind_text(st, 4, e->url);
    sqlite3_bind_blob(st, 5, e->secret, (int)e->secret_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, e->created);
    bind_text(st, 7, e->description);
    bind_text(st, 8, e->enabled_events);
    return run(s, st);
}

static int sqlite_endpoint_create(struct store *s, const struct webhook_endpoint *e)
{
    return in_transaction(s, do_endpoint_create, (void *)e);
}

static int do_endpoint_update(struct store *s, void *arg)
{
    const struct webhook_endpoint *e = arg;
    sqlite3_stmt *st = prep(s, Q_ENDPOINT_UPDATE);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, e->tenant_id);
    bind_text(st, 2, e->mode);
    bind_text(st, 3, e->id);
    bind_text(st, 4, e->url);
    bind_text(st, 5, e->description);
    bind_text(st, 6, e->enabled_events);
    sqlite3_bind_int(st, 7, e->disabled != 0);
    if ((rc = run(s, st)) != 0)
        return rc;
    return sqlite3_changes(s->db) == 1 ? 0 : HF_ENOTFOUND;
}

static int sqlite_endpoint_update(struct store *s, const struct webhook_endpoint *e)
{
    return in_transaction(s, do_endpoint_update, (void *)e);
}

static int do_endpoint_roll(struct store *s, void *arg)
{
    const struct webhook_endpoint *e = arg;
    sqlite3_stmt *st = prep(s, Q_ENDPOINT_ROLL);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, e->tenant_id);
    bind_text(st, 2, e->mode);
    bind_text(st, 3, e->id);
    sqlite3_bind_blob(st, 4, e->secret, (int)e->secret_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, e->previous_until_ms);
    if ((rc = run(s, st)) != 0)
        return rc;
    return sqlite3_changes(s->db) == 1 ? 0 : HF_ENOTFOUND;
}

static int sqlite_endpoint_roll_secret(struct store *s, const struct webhook_endpoint *e)
{
    return in_transaction(s, do_endpoint_roll, (void *)e);
}

static int sqlite_endpoint_list(struct store *s, const char *tenant_id, const char *mode,
                                struct webhook_endpoint *out, size_t max, size_t *n)
{
    sqlite3_stmt *st = prep(s, Q_ENDPOINT_LIST);
    int rc;

    *n = 0;
    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    bind_text(st, 2, mode);
    sqlite3_bind_int64(st, 3, (long long)max);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
        read_endpoint(st, &out[(*n)++]);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : HF_ESTORE;
}

static int sqlite_endpoint_get(struct store *s, const char *tenant_id, const char *mode,
                               const char *id, struct webhook_endpoint *out)
{
    sqlite3_stmt *st = prep(s, Q_ENDPOINT_GET);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    bind_text(st, 2, mode);
    bind_text(st, 3, id);
    rc = found(sqlite3_step(st));
    if (rc == 0)
        read_endpoint(st, out);
    sqlite3_reset(st);
    return rc;
}

struct endpoint_delete_args {
    const char *tenant_id, *mode, *id;
    long long now;
};

static int do_endpoint_delete(struct store *s, void *arg)
{
    struct endpoint_delete_args *a = arg;
    sqlite3_stmt *st = prep(s, Q_ENDPOINT_DELETE);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, a->tenant_id);
    bind_text(st, 2, a->mode);
    bind_text(st, 3, a->id);
    sqlite3_bind_int64(st, 4, a->now);
    if ((rc = run(s, st)) != 0)
        return rc;
    if (sqlite3_changes(s->db) != 1)
        return HF_ENOTFOUND;
    if (!(st = prep(s, Q_ENDPOINT_DELIVERIES_FAIL)))
        return HF_ESTORE;
    bind_text(st, 1, a->id);
    return run(s, st);
}

static int sqlite_endpoint_delete(struct store *s, const char *tenant_id, const char *mode,
                                  const char *id, long long now)
{
    struct endpoint_delete_args a = {tenant_id, mode, id, now};

    return in_transaction(s, do_endpoint_delete, &a);
}

static int sqlite_endpoints_due(struct store *s, long long now_ms, struct endpoint_due *out,
                                size_t max, size_t *n)
{
    sqlite3_stmt *st = prep(s, Q_ENDPOINTS_DUE);
    int rc = SQLITE_DONE;

    *n = 0;
    if (!st)
        return HF_ESTORE;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, (long long)max);
    sqlite3_bind_int(st, 3, HF_WEBHOOK_PER_ENDPOINT);
    sqlite3_bind_int(st, 4, HF_WEBHOOK_PER_TENANT);
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct endpoint_due *e = &out[(*n)++];

        memset(e, 0, sizeof *e);
        copy_col(st, 0, e->id, sizeof e->id);
        copy_col(st, 1, e->tenant_id, sizeof e->tenant_id);
        e->deleted = sqlite3_column_int(st, 2);
        e->failures = sqlite3_column_int(st, 3);
        e->slots = sqlite3_column_int(st, 4);
        e->tenant_slots = sqlite3_column_int(st, 5);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : HF_ESTORE;
}

struct claim_args {
    long long now_ms, lease_ms;
    const struct endpoint_due *from;
    size_t n_from;
    struct webhook_delivery *out;
    size_t max, *n;
};

static int fail_deliveries(struct store *s, const char *endpoint_id)
{
    sqlite3_stmt *st = prep(s, Q_ENDPOINT_DELIVERIES_FAIL);

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, endpoint_id);
    return run(s, st);
}

/* Claim the oldest due deliveries of e into a->out from *got on: their
 * rows (copied out before the statement is reused), then the endpoint
 * and each session, then the leases. An endpoint deleted since the
 * read is handled as one found deleted. */
static int claim_from(struct store *s, struct claim_args *a, const struct endpoint_due *e,
                      size_t *got)
{
    sqlite3_stmt *st = prep(s, Q_DELIVERIES_DUE_TO);
    char session_ids[HF_WEBHOOK_PER_ENDPOINT][HF_ID_MAX];
    struct webhook_endpoint endpoint;
    size_t want = a->max - *got, k = 0, kept = 0;
    int step = SQLITE_DONE, rc;

    if (!st)
        return HF_ESTORE;
    if (want > (size_t)e->claim)
        want = (size_t)e->claim;
    if (want > HF_WEBHOOK_PER_ENDPOINT)
        want = HF_WEBHOOK_PER_ENDPOINT;
    bind_text(st, 1, e->id);
    sqlite3_bind_int64(st, 2, a->now_ms);
    sqlite3_bind_int64(st, 3, (long long)want);
    while (k < want && (step = sqlite3_step(st)) == SQLITE_ROW) {
        struct webhook_delivery *d = &a->out[*got + k];

        memset(d, 0, sizeof *d);
        copy_col(st, 0, d->event_id, sizeof d->event_id);
        copy_col(st, 1, d->event_type, sizeof d->event_type);
        d->event_created = sqlite3_column_int64(st, 2);
        copy_col(st, 3, session_ids[k], HF_ID_MAX);
        copy_col(st, 4, d->session.tenant_id, sizeof d->session.tenant_id);
        d->attempts = sqlite3_column_int(st, 5);
        d->endpoint_failures = e->failures;
        k++;
    }
    sqlite3_reset(st);
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        return HF_ESTORE;
    if (k == 0)
        return 0;
    if (!(st = prep(s, Q_ENDPOINT_BY_ID)))
        return HF_ESTORE;
    bind_text(st, 1, e->id);
    rc = found(sqlite3_step(st));
    if (rc == 0)
        read_endpoint(st, &endpoint);
    sqlite3_reset(st);
    if (rc != 0)
        return rc == HF_ENOTFOUND ? fail_deliveries(s, e->id) : rc;
    for (size_t i = 0; rc == 0 && i < k; i++) {
        struct webhook_delivery *d = &a->out[*got + i];
        char tenant[HF_ID_MAX];
        int r;

        snprintf(tenant, sizeof tenant, "%s", d->session.tenant_id);
        /* an endpoint only gets its own mode's events */
        r = sqlite_session_get(s, tenant, endpoint.mode, session_ids[i], a->now_ms / 1000,
                               &d->session);
        if (r == HF_ENOTFOUND)
            continue;
        if (r != 0 || !(st = prep(s, Q_DELIVERY_LEASE))) {
            rc = HF_ESTORE;
            break;
        }
        bind_text(st, 1, d->event_id);
        bind_text(st, 2, e->id);
        sqlite3_bind_int64(st, 3, a->now_ms + a->lease_ms);
        if ((rc = run(s, st)) != 0)
            break;
        d->endpoint = endpoint;
        d->lease_until_ms = a->now_ms + a->lease_ms;
        if (kept != i)
            a->out[*got + kept] = *d;
        kept++;
    }
    *got += kept;
    return rc;
}

static int do_claim(struct store *s, void *arg)
{
    struct claim_args *a = arg;
    size_t got = 0;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < a->n_from && got < a->max; i++) {
        const struct endpoint_due *e = &a->from[i];

        if (e->deleted)
            rc = fail_deliveries(s, e->id);
        else if (e->claim > 0)
            rc = claim_from(s, a, e, &got);
    }
    *a->n = rc == 0 ? got : 0;
    return rc;
}

static int sqlite_deliveries_claim(struct store *s, long long now_ms, long long lease_ms,
                                   const struct endpoint_due *from, size_t n_from,
                                   struct webhook_delivery *out, size_t max, size_t *n)
{
    struct claim_args a = {now_ms, lease_ms, from, n_from, out, max, n};

    *n = 0;
    return in_transaction(s, do_claim, &a);
}

struct record_args {
    const char *event_id, *endpoint_id;
    const struct webhook_attempt *at;
};

static int do_record(struct store *s, void *arg)
{
    struct record_args *a = arg;
    sqlite3_stmt *st = prep(s, Q_DELIVERY_RECORD);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, a->event_id);
    bind_text(st, 2, a->endpoint_id);
    bind_text(st, 3, a->at->status);
    sqlite3_bind_int64(st, 4, a->at->next_ms);
    sqlite3_bind_int64(st, 5, a->at->at_ms);
    if (a->at->http_status)
        sqlite3_bind_int(st, 6, a->at->http_status);
    bind_text(st, 7, a->at->error);
    sqlite3_bind_int64(st, 8, a->at->lease_until_ms);
    if ((rc = run(s, st)) != 0)
        return rc;
    if (sqlite3_changes(s->db) != 1)
        return HF_ENOTFOUND;
    if (!a->at->answered && !a->at->pause_until_ms)
        return 0;
    if (!(st = prep(s, a->at->answered ? Q_ENDPOINT_ANSWERED : Q_ENDPOINT_PAUSE)))
        return HF_ESTORE;
    bind_text(st, 1, a->endpoint_id);
    if (!a->at->answered) {
        sqlite3_bind_int64(st, 2, a->at->pause_until_ms);
        sqlite3_bind_int64(st, 3, a->at->at_ms);
    }
    return run(s, st);
}

static int sqlite_delivery_record(struct store *s, const char *event_id, const char *endpoint_id,
                                  const struct webhook_attempt *at)
{
    struct record_args a = {event_id, endpoint_id, at};

    return in_transaction(s, do_record, &a);
}

static int sqlite_events_list(struct store *s, const char *status, size_t limit,
                              struct event_row *out, size_t *n)
{
    sqlite3_stmt *st = prep(s, Q_EVENTS_LIST);
    int rc;

    *n = 0;
    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, status);
    sqlite3_bind_int64(st, 2, (long long)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < limit) {
        struct event_row *r = &out[(*n)++];

        copy_col(st, 0, r->id, sizeof r->id);
        copy_col(st, 1, r->type, sizeof r->type);
        copy_col(st, 2, r->tenant_id, sizeof r->tenant_id);
        copy_col(st, 3, r->session_id, sizeof r->session_id);
        r->created = sqlite3_column_int64(st, 4);
        copy_col(st, 5, r->endpoint_id, sizeof r->endpoint_id);
        copy_col(st, 6, r->status, sizeof r->status);
        r->attempts = sqlite3_column_int(st, 7);
        r->next_attempt_ms = sqlite3_column_int64(st, 8);
        r->last_status = sqlite3_column_int(st, 9);
        copy_col(st, 10, r->last_error, sizeof r->last_error);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : HF_ESTORE;
}

struct retry_args {
    const char *event_id;
    long long now_ms;
    int *n;
};

static int do_retry(struct store *s, void *arg)
{
    struct retry_args *a = arg;
    sqlite3_stmt *st = prep(s, Q_EVENT_EXISTS);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, a->event_id);
    rc = found(sqlite3_step(st));
    sqlite3_reset(st);
    if (rc != 0)
        return rc;
    if (!(st = prep(s, Q_EVENT_RETRY)))
        return HF_ESTORE;
    bind_text(st, 1, a->event_id);
    sqlite3_bind_int64(st, 2, a->now_ms);
    if ((rc = run(s, st)) != 0)
        return rc;
    *a->n = sqlite3_changes(s->db);
    /* the operator says the receiver is back: its endpoint is tried now
     * (one delivery at a time until one is answered) */
    if (!(st = prep(s, Q_EVENT_ENDPOINTS_UNPAUSE)))
        return HF_ESTORE;
    bind_text(st, 1, a->event_id);
    return run(s, st);
}

static int sqlite_event_retry(struct store *s, const char *event_id, long long now_ms, int *n)
{
    struct retry_args a = {event_id, now_ms, n};

    *n = 0;
    return in_transaction(s, do_retry, &a);
}

static void read_event(sqlite3_stmt *st, struct event *out)
{
    read_session(st, &out->session);
    copy_col(st, 11, out->id, sizeof out->id);
    copy_col(st, 12, out->type, sizeof out->type);
    out->created = sqlite3_column_int64(st, 13);
}

static int sqlite_event_get(struct store *s, const char *tenant_id, const char *mode,
                            const char *id, long long now, struct event *out)
{
    sqlite3_stmt *st = prep(s, Q_TENANT_EVENT_GET);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    bind_text(st, 2, id);
    bind_text(st, 9, mode);
    sqlite3_bind_int64(st, 10, now);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_event(st, out);
    sqlite3_reset(st);
    return found(rc);
}

static int sqlite_event_page(struct store *s, const char *tenant_id, const char *mode,
                             const struct event_query *q, long long now,
                             struct event *out, size_t *n)
{
    int newer = q->page.ending_before != NULL;
    const char *cursor = newer ? q->page.ending_before : q->page.starting_after;
    long long seq = newer ? 0 : (long long)9223372036854775807LL;
    sqlite3_stmt *st;
    size_t count = 0;
    int rc;

    if (cursor && (rc = cursor_seq(s, Q_TENANT_EVENT_SEQ, tenant_id, mode, cursor, &seq)) != 0)
        return rc;
    if (!(st = prep(s, newer ? Q_TENANT_EVENTS_NEWER : Q_TENANT_EVENTS_OLDER)))
        return HF_ESTORE;
    bind_text(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, seq);
    bind_text(st, 3, q->type);
    sqlite3_bind_int(st, 6, q->page.limit);
    bind_text(st, 9, mode);
    sqlite3_bind_int64(st, 10, now);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && count < (size_t)q->page.limit)
        read_event(st, &out[count++]);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return HF_ESTORE;
    *n = count;
    return 0;
}

/* ---- policy versions ---------------------------------------------------- */

static void read_activation(sqlite3_stmt *st, struct policy_activation *out)
{
    out->seq = sqlite3_column_int64(st, 0);
    copy_col(st, 1, out->version, sizeof out->version);
    copy_col(st, 2, out->action, sizeof out->action);
    copy_col(st, 3, out->actor, sizeof out->actor);
    out->at = sqlite3_column_int64(st, 4);
}

struct activate_args {
    const char *version, *action, *actor;
    const void *bundle;       /* NULL: the version must be stored already */
    size_t len;
    long long now;
    struct policy_activation *out;
};

static int do_activate(struct store *s, void *arg)
{
    struct activate_args *a = arg;
    sqlite3_stmt *st;
    int rc;

    if (a->bundle) {
        if (!(st = prep(s, Q_BUNDLE_PUT)))
            return HF_ESTORE;
        bind_text(st, 1, a->version);
        sqlite3_bind_blob(st, 2, a->bundle, (int)a->len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, a->now);
        if ((rc = run(s, st)) != 0)
            return rc;
    } else {
        if (!(st = prep(s, Q_BUNDLE_GET)))
            return HF_ESTORE;
        bind_text(st, 1, a->version);
        rc = found(sqlite3_step(st));
        sqlite3_reset(st);
        if (rc != 0)
            return rc;
    }
    if (!(st = prep(s, Q_ACTIVATION_PUT)))
        return HF_ESTORE;
    bind_text(st, 1, a->version);
    bind_text(st, 2, a->action);
    bind_text(st, 3, a->actor);
    sqlite3_bind_int64(st, 4, a->now);
    if ((rc = run(s, st)) != 0)
        return rc;
    a->out->seq = sqlite3_last_insert_rowid(s->db);
    snprintf(a->out->version, sizeof a->out->version, "%s", a->version);
    snprintf(a->out->action, sizeof a->out->action, "%s", a->action);
    snprintf(a->out->actor, sizeof a->out->actor, "%s", a->actor);
    a->out->at = a->now;
    return 0;
}

static int sqlite_policy_publish(struct store *s, const char *version, const void *bundle,
                                 size_t len, const char *actor, long long now,
                                 struct policy_activation *out)
{
    struct activate_args a = {version, "publish", actor, bundle, len, now, out};

    return in_transaction(s, do_activate, &a);
}

static int sqlite_policy_rollback(struct store *s, const char *version, const char *actor,
                                  long long now, struct policy_activation *out)
{
    struct activate_args a = {version, "rollback", actor, NULL, 0, now, out};

    return in_transaction(s, do_activate, &a);
}

static int sqlite_policy_history(struct store *s, size_t limit, struct policy_activation *out,
                                 size_t *n)
{
    sqlite3_stmt *st = prep(s, Q_ACTIVATIONS);
    int rc;

    *n = 0;
    if (!st)
        return HF_ESTORE;
    sqlite3_bind_int64(st, 1, (long long)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < limit)
        read_activation(st, &out[(*n)++]);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : HF_ESTORE;
}

static int sqlite_policy_active(struct store *s, struct policy_activation *out)
{
    size_t n;
    int rc = sqlite_policy_history(s, 1, out, &n);

    return rc != 0 ? rc : n == 1 ? 0 : HF_ENOTFOUND;
}

static int sqlite_policy_bundle(struct store *s, const char *version, char **bundle, size_t *len)
{
    sqlite3_stmt *st = prep(s, Q_BUNDLE_GET);
    int rc;

    if (!st)
        return HF_ESTORE;
    bind_text(st, 1, version);
    rc = found(sqlite3_step(st));
    if (rc == 0) {
        int n = sqlite3_column_bytes(st, 0);
        const void *p = sqlite3_column_blob(st, 0);

        *len = n > 0 ? (size_t)n : 0;
        if (!(*bundle = malloc(*len + 1)))
            rc = HF_ENOMEM;
        else if (*len)
            memcpy(*bundle, p, *len);
    }
    sqlite3_reset(st);
    return rc;
}
static int sqlite_endpoint_newest(struct store *s, struct webhook_endpoint *out)
{
    sqlite3_stmt *st = prep(s, Q_ENDPOINT_NEWEST);
    int rc;

    if (!st)
        return HF_ESTORE;
    rc = found(sqlite3_step(st));
    if (rc == 0)
        read_endpoint(st, out);
    sqlite3_reset(st);
    return rc;
}

/* SQLite cannot announce a publish to other processes: the caller polls. */
static int sqlite_policy_wait(struct store *s, int timeout_ms)
{
    (void)s;
    (void)timeout_ms;
    return HF_EUNAVAILABLE;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .read_begin = sqlite_read_begin,
    .read_end = sqlite_read_end,
    .read_begin_optimistic = sqlite_read_begin_optimistic,
    .read_current = sqlite_read_current,
    .writer_start = sqlite_writer_start,
    .writer_stop = sqlite_writer_stop,
    .ping = sqlite_ping,
    .attach_writer = sqlite_attach_writer,
    .tenant_create = sqlite_tenant_create,
    .tenant_set_hosts = sqlite_tenant_set_hosts,
    .tenant_get = sqlite_tenant_get,
    .key_create = sqlite_key_create,
    .key_revoke = sqlite_key_revoke,
    .key_find = sqlite_key_find,
    .contractor_create = sqlite_contractor_create,
    .tenant_each = sqlite_tenant_each,
    .key_each = sqlite_key_each,
    .contractor_each = sqlite_contractor_each,
    .contractor_check = sqlite_contractor_check,
    .session_insert = sqlite_session_insert,
    .inserts_later = sqlite_inserts_later,
    .session_insert_later = sqlite_session_insert_later,
    .idempotency_find = sqlite_idempotency_find,
    .session_get = sqlite_session_get,
    .session_list = sqlite_session_list,
    .session_cancel = sqlite_session_cancel,
    .session_by_token = sqlite_session_by_token,
    .session_redeem = sqlite_session_redeem,
    .session_for_browser = sqlite_session_for_browser,
    .session_complete = sqlite_session_complete,
    .sessions_expire = sqlite_sessions_expire,
    .endpoint_create = sqlite_endpoint_create,
    .endpoint_update = sqlite_endpoint_update,
    .endpoint_roll_secret = sqlite_endpoint_roll_secret,
    .endpoint_list = sqlite_endpoint_list,
    .endpoint_get = sqlite_endpoint_get,
    .endpoint_delete = sqlite_endpoint_delete,
    .endpoints_due = sqlite_endpoints_due,
    .deliveries_claim = sqlite_deliveries_claim,
    .delivery_record = sqlite_delivery_record,
    .events_list = sqlite_events_list,
    .event_retry = sqlite_event_retry,
    .event_get = sqlite_event_get,
    .event_page = sqlite_event_page,
    .policy_publish = sqlite_policy_publish,
    .policy_rollback = sqlite_policy_rollback,
    .policy_history = sqlite_policy_history,
    .policy_active = sqlite_policy_active,
    .policy_bundle = sqlite_policy_bundle,
    .policy_wait = sqlite_policy_wait,
    .endpoint_newest = sqlite_endpoint_newest,
};
