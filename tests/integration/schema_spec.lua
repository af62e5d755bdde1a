-- Schema migrations of an existing SQLite database: migration 8 rewrites
-- the sessions status CHECK without IN (store_sqlite.c,
-- status_check_without_in) by editing the stored schema in place;
-- migration 9 puts the mode into the sessions' list indexes (modes_spec.lua).
local h = require("helpers.server")

local NEWEST = "12" -- the schema version a new database gets
local STATUS_IN = "CHECK (status IN ('pending', 'completed', 'cancelled', 'expired'))"
local STATUS_OR = "CHECK (status = 'pending' OR status = 'completed' OR "
  .. "status = 'cancelled' OR status = 'expired')"

local function sessions_sql(db)
  return h.sql(db, "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'sessions'")
end

local function plain(s) return (s:gsub("%p", "%%%0")) end

-- the program SQLite compiles for a session insert
local function insert_program(db)
  return h.sql(db, "EXPLAIN INSERT INTO sessions (id, tenant_id, contractor_id, return_url, "
    .. "mode, token_hash, status, policy_version, created, expires_at) "
    .. "VALUES ('a', 'b', 'c', 'd', 'live', x'00', 'pending', 'v', 1, 2)")
end

-- #sqlite_only: the migration edits SQLite's stored schema; PostgreSQL
-- compiles an IN list without a temporary index
describe("schema migrations #sqlite_only", function()
  it("give a new database the status CHECK without IN, and it still refuses other statuses", function()
    local srv = h.start()
    srv:stop()
    assert.are.equal(NEWEST, h.sql(srv.db, "PRAGMA user_version"))
    local sql = sessions_sql(srv.db)
    assert.truthy(sql:find(STATUS_OR, 1, true), sql)
    assert.falsy(sql:find("status IN", 1, true), sql)
    -- one session row compiles with no temporary index of the four values
    assert.falsy(insert_program(srv.db):find("OpenEphemeral", 1, true))
    local out, rc = h.run("sqlite3 " .. h.sh_quote(srv.db) .. " " .. h.sh_quote(
      "INSERT INTO sessions (id, tenant_id, contractor_id, return_url, mode, token_hash, "
      .. "status, policy_version, created, expires_at) VALUES "
      .. "('a', 'b', 'c', 'd', 'live', x'00', 'bogus', 'v', 1, 2)") .. " 2>&1")
    assert.are_not.equal(0, rc)
    assert.truthy(out:find("CHECK constraint failed", 1, true), out)
  end)

  it("migrate a database of version 7 in place, keeping its sessions and their flow", function()
    local srv, t = h.start_with_tenants(nil, "Acme")
    local pending = srv:new_session(t)
    local cancelled = srv:new_session(t)
    assert.are.equal(200, srv:post(t.key.secret,
      "/api/v1/payment/sessions/" .. cancelled.id .. "/cancel").status)
    srv:stop()
    -- put back the schema version 7 wrote, as a database of that version has
    -- it: without migration 11's endpoint columns, 10's events index, 9's
    -- webhook index and columns, then 8's CHECK
    h.sql(srv.db, "ALTER TABLE webhook_endpoints DROP COLUMN description; "
      .. "ALTER TABLE webhook_endpoints DROP COLUMN enabled_events; "
      .. "ALTER TABLE webhook_endpoints DROP COLUMN disabled; "
      .. "ALTER TABLE webhook_endpoints DROP COLUMN previous_secret_sealed; "
      .. "ALTER TABLE webhook_endpoints DROP COLUMN previous_until_ms; "
      .. "DROP INDEX events_by_tenant; DROP INDEX webhook_deliveries_by_endpoint; "
      .. "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) "
      .. "WHERE status = 'pending'; ALTER TABLE webhook_endpoints DROP COLUMN failures; "
      .. "ALTER TABLE webhook_endpoints DROP COLUMN paused_until_ms;")
    local version = tonumber(h.sql(srv.db, "PRAGMA schema_version"))
    h.sql(srv.db, "PRAGMA writable_schema = ON; "
      .. "UPDATE sqlite_schema SET sql = replace(sql, '" .. STATUS_OR:gsub("'", "''") .. "', '"
      .. STATUS_IN:gsub("'", "''") .. "') WHERE type = 'table' AND name = 'sessions'; "
      .. "PRAGMA schema_version = " .. (version + 1) .. "; PRAGMA writable_schema = OFF; "
      .. "DROP INDEX sessions_by_tenant_mode; DROP INDEX sessions_by_tenant_mode_contractor; "
      .. "CREATE INDEX sessions_by_tenant ON sessions (tenant_id, seq); "
      .. "CREATE INDEX sessions_by_contractor ON sessions (tenant_id, contractor_id, seq); "
      .. "PRAGMA user_version = 7;")
    assert.truthy(sessions_sql(srv.db):find(STATUS_IN, 1, true))
    assert.truthy(insert_program(srv.db):find("OpenEphemeral", 1, true),
      "the version 7 schema builds the temporary index this migration removes")
    local before = h.sql(srv.db, "SELECT id, status, token_hash FROM sessions ORDER BY seq")

    local again = h.start({ dir = srv.dir, db = srv.db })
    finally(function() again:stop() end)
    assert.truthy(again:log_text():find("migrated schema to version 8", 1, true))
    assert.truthy(again:log_text():find("migrated schema to version 9", 1, true))
    assert.truthy(again:log_text():find("migrated schema to version 10", 1, true))
    assert.truthy(again:log_text():find("migrated schema to version 11", 1, true))
    assert.truthy(again:log_text():find("migrated schema to version 12", 1, true))
    assert.are.equal(NEWEST, h.sql(srv.db, "PRAGMA user_version"))
    assert.are.equal("sessions_by_tenant_mode\nsessions_by_tenant_mode_contractor",
      h.sql(srv.db, "SELECT name FROM sqlite_schema WHERE type = 'index' AND "
        .. "name LIKE 'sessions_by_%' ORDER BY name"))
    assert.truthy(sessions_sql(srv.db):find(plain(STATUS_OR)))
    assert.falsy(insert_program(srv.db):find("OpenEphemeral", 1, true))
    assert.are.equal("ok", h.sql(srv.db, "PRAGMA integrity_check"))
    assert.are.equal(before, h.sql(srv.db, "SELECT id, status, token_hash FROM sessions ORDER BY seq"))
    -- the kept rows read, list and change as before, and new ones are made
    local got = again:get(t.key.secret, "/api/v1/payment/sessions/" .. pending.id)
    assert.are.equal("pending", got.json.status)
    local listed = again:get(t.key.secret, "/api/v1/payment/sessions").json
    assert.are.same({ cancelled.id, pending.id }, { listed[1].id, listed[2].id })
    assert.are.equal(2, #listed)
    assert.are.equal(200, again:post(t.key.secret,
      "/api/v1/payment/sessions/" .. pending.id .. "/cancel").status)
    assert.are.equal("cancelled", h.sql(srv.db,
      "SELECT status FROM sessions WHERE id = '" .. pending.id .. "'"))
    assert.are.equal(201, again:create_for(t).status)
  end)

  it("refuse to start on a sessions table whose status CHECK it does not recognise", function()
    local srv = h.start()
    srv:stop()
    local version = tonumber(h.sql(srv.db, "PRAGMA schema_version"))
    h.sql(srv.db, "PRAGMA writable_schema = ON; "
      .. "UPDATE sqlite_schema SET sql = replace(sql, '" .. STATUS_OR:gsub("'", "''")
      .. "', 'CHECK (length(status) > 0)') WHERE type = 'table' AND name = 'sessions'; "
      .. "PRAGMA schema_version = " .. (version + 1) .. "; PRAGMA writable_schema = OFF; "
      .. "PRAGMA user_version = 7;")
    local _, rc, err = h.cli(srv.db, "tenant", "show", "tn_none")
    assert.are_not.equal(0, rc)
    assert.truthy(err:find("status CHECK is not the one migration 1 made", 1, true), err)
    -- nothing of the failed step is kept
    assert.are.equal("7", h.sql(srv.db, "PRAGMA user_version"))
    assert.truthy(sessions_sql(srv.db):find("CHECK (length(status) > 0)", 1, true))
  end)
end)
