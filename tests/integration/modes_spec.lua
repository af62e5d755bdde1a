-- Live and test keys of one tenant are separate worlds (README "Security
-- model"): each key reads, lists, pages and cancels only the sessions of
-- its own mode, and the other mode's session answers exactly as an
-- unknown id; idempotency keys replay per mode; a session URL works only
-- with the mode prefix it was minted with. Runs on either database.
local h = require("helpers.server")
local hf = require("helpers.hosted")
local cjson = h.json

local SESSIONS = "/api/v1/payment/sessions"
local UNKNOWN = "hps_" .. ("Z"):rep(24)

local function ids(list)
  local out = {}
  for i, s in ipairs(list) do out[i] = s.id end
  return out
end

-- The same answer, byte for byte: status, body and every header but the
-- request's own id.
local function assert_same_answer(expected, got, what)
  assert.are.equal(expected.status, got.status, what .. ": status")
  assert.are.equal(expected.body, got.body, what .. ": body")
  local want, have = {}, {}
  for k, v in pairs(expected.headers) do if k ~= "request-id" then want[k] = v end end
  for k, v in pairs(got.headers) do if k ~= "request-id" then have[k] = v end end
  assert.are.same(want, have, what .. ": headers")
end

describe("live and test keys of one tenant: sessions", function()
  local srv, t, c2, keys, made, by_contractor, contractor_of, cancelled

  local function list(mode, query)
    return srv:get(keys[mode], SESSIONS .. (query and ("?" .. query) or ""))
  end

  setup(function()
    srv, t = h.start_with_tenants(nil, "Acme")
    c2 = h.cli_json(srv.db, "contractor", "create", t.id, "--json")
    keys = { live = t.key.secret, test = t.test_key.secret }
    made, contractor_of = { live = {}, test = {} }, {} -- made: newest first
    by_contractor = { live = { [t.contractor.id] = {}, [c2.id] = {} },
      test = { [t.contractor.id] = {}, [c2.id] = {} } }
    -- interleaved, so that any page of one mode would take in the other's
    for i = 1, 14 do
      local mode = i % 2 == 1 and "live" or "test"
      local c = (i % 4 < 2) and t.contractor.id or c2.id
      local r = srv:create(keys[mode], h.session_body(t, { contractor = c }))
      assert.are.equal(201, r.status, r.body)
      assert.matches("/payment/setup/" .. mode .. "_", r.json.url)
      table.insert(made[mode], 1, r.json.id)
      table.insert(by_contractor[mode][c], 1, r.json.id)
      contractor_of[r.json.id] = c
    end
    cancelled = {}
    for _, mode in ipairs({ "live", "test" }) do
      cancelled[mode] = made[mode][4]
      assert.are.equal(200, srv:post(keys[mode],
        SESSIONS .. "/" .. cancelled[mode] .. "/cancel").status)
    end
  end)
  teardown(function() srv:stop() end)

  for _, pair in ipairs({ { "live", "test" }, { "test", "live" } }) do
    local mine, theirs = pair[1], pair[2]

    it("the " .. mine .. " key reads its sessions; the " .. theirs .. " key's answer as unknown",
      function()
        local unknown = srv:get(keys[mine], SESSIONS .. "/" .. UNKNOWN)
        h.assert_error(unknown, 404, unknown.json.error_code, "id")
        for _, id in ipairs(made[mine]) do
          local r = srv:get(keys[mine], SESSIONS .. "/" .. id)
          assert.are.equal(200, r.status, r.body)
          assert.are.equal(id, r.json.id)
        end
        -- pending and cancelled ones alike: nothing of their state shows
        for _, id in ipairs(made[theirs]) do
          assert_same_answer(unknown, srv:get(keys[mine], SESSIONS .. "/" .. id),
            mine .. " key reading " .. theirs .. " session " .. id)
        end
      end)

    it("the " .. mine .. " key lists only " .. mine .. " sessions, newest first", function()
      local r = list(mine, "limit=100")
      assert.are.equal(200, r.status, r.body)
      assert.are.same(made[mine], ids(r.json))
      assert.are.same({ table.unpack(made[mine], 1, 3) }, ids(list(mine, "limit=3").json))
    end)

    it("the " .. mine .. " key filters by contractor and status within its mode", function()
      for _, c in ipairs({ t.contractor.id, c2.id }) do
        assert.are.same(by_contractor[mine][c],
          ids(list(mine, "contractor=" .. c .. "&limit=100").json))
      end
      assert.are.same({ cancelled[mine] }, ids(list(mine, "status=cancelled").json))
      local pending = {}
      for _, id in ipairs(made[mine]) do
        if id ~= cancelled[mine] then pending[#pending + 1] = id end
      end
      assert.are.same(pending, ids(list(mine, "status=pending&limit=100").json))
      local c = contractor_of[cancelled[mine]]
      assert.are.same({ cancelled[mine] }, ids(list(mine, "status=cancelled&contractor=" .. c).json))
      local other_c = c == c2.id and t.contractor.id or c2.id
      assert.matches("^%s*%[%s*%]%s*$", list(mine, "status=cancelled&contractor=" .. other_c).body)
    end)

    it("the " .. mine .. " key pages through its own mode with both cursors", function()
      local seen, cursor = {}, nil
      for _ = 1, 10 do
        local r = list(mine, "limit=2" .. (cursor and ("&starting_after=" .. cursor) or ""))
        assert.are.equal(200, r.status, r.body)
        if #r.json == 0 then break end
        for _, s in ipairs(r.json) do seen[#seen + 1] = s.id end
        cursor = r.json[#r.json].id
      end
      assert.are.same(made[mine], seen)
      seen, cursor = {}, made[mine][#made[mine]]
      for _ = 1, 10 do
        local r = list(mine, "limit=2&ending_before=" .. cursor)
        assert.are.equal(200, r.status, r.body)
        if #r.json == 0 then break end
        for i = #r.json, 1, -1 do table.insert(seen, 1, r.json[i].id) end
        cursor = r.json[1].id
      end
      assert.are.same({ table.unpack(made[mine], 1, #made[mine] - 1) }, seen)
      -- with a filter too
      local want = by_contractor[mine][c2.id]
      assert.are.same({ table.unpack(want, 2) }, ids(list(mine,
        "contractor=" .. c2.id .. "&limit=100&starting_after=" .. want[1]).json))
    end)

    it("the " .. mine .. " key's list answers a " .. theirs .. " cursor as an unknown one",
      function()
        for _, query in ipairs({ "", "limit=5&", "contractor=" .. c2.id .. "&status=pending&" }) do
          for _, cursor in ipairs({ "starting_after", "ending_before" }) do
            local unknown = list(mine, query .. cursor .. "=" .. UNKNOWN)
            h.assert_error(unknown, 400, unknown.json.error_code, cursor)
            for _, id in ipairs({ made[theirs][1], made[theirs][#made[theirs]],
              cancelled[theirs] }) do
              assert_same_answer(unknown, list(mine, query .. cursor .. "=" .. id),
                mine .. " list, " .. query .. cursor .. " = " .. theirs .. " session")
            end
          end
        end
      end)
  end

  it("cancels only with the session's own mode; the other key's cancel answers as unknown",
    function()
      for _, pair in ipairs({ { "live", "test" }, { "test", "live" } }) do
        local mine, theirs = pair[1], pair[2]
        local sess = srv:create(keys[mine], h.session_body(t))
        assert.are.equal(201, sess.status, sess.body)
        local id = sess.json.id
        local unknown = srv:post(keys[theirs], SESSIONS .. "/" .. UNKNOWN .. "/cancel")
        h.assert_error(unknown, 404, unknown.json.error_code, "id")
        assert_same_answer(unknown, srv:post(keys[theirs], SESSIONS .. "/" .. id .. "/cancel"),
          theirs .. " key cancelling a pending " .. mine .. " session")
        -- untouched, as read back with its own key and in the database
        local g = srv:get(keys[mine], SESSIONS .. "/" .. id)
        assert.are.equal("pending", g.json.status)
        assert.are.equal(cjson.null, g.json.cancelled_at)
        assert.are.equal("pending|", h.sql(srv.db,
          "SELECT status, cancelled_at FROM sessions WHERE id = '" .. id .. "'"))
        assert.are.equal("0", h.sql(srv.db,
          "SELECT count(*) FROM events WHERE session_id = '" .. id .. "'"))
        -- its own key cancels it; then the other's still answers as unknown, not 409
        local r = srv:post(keys[mine], SESSIONS .. "/" .. id .. "/cancel")
        assert.are.equal(200, r.status, r.body)
        assert.are.equal("cancelled", r.json.status)
        assert_same_answer(unknown, srv:post(keys[theirs], SESSIONS .. "/" .. id .. "/cancel"),
          theirs .. " key cancelling a cancelled " .. mine .. " session")
      end
    end)

  it("replays an idempotency key per mode, each with its own session", function()
    local first, again = {}, {}
    for _, mode in ipairs({ "live", "test" }) do
      first[mode] = srv:create(keys[mode], h.session_body(t), { ["Idempotency-Key"] = "both" })
      assert.are.equal(201, first[mode].status, first[mode].body)
      assert.is_nil(first[mode].headers["idempotent-replayed"])
    end
    for _, mode in ipairs({ "live", "test" }) do
      again[mode] = srv:create(keys[mode], h.session_body(t), { ["Idempotency-Key"] = "both" })
      assert.are.equal(201, again[mode].status, again[mode].body)
      assert.are.equal("true", again[mode].headers["idempotent-replayed"])
      assert.are.equal(first[mode].json.id, again[mode].json.id)
    end
    assert.are_not.equal(first.live.json.id, first.test.json.id)
  end)
end)

describe("live and test keys of one tenant: session URLs", function()
  local srv, t, gone

  setup(function()
    srv, t = h.start_with_tenants(nil, "Acme")
    gone = srv:request({ method = "GET", path = "/payment/setup/live_" .. ("A"):rep(43) })
    assert.are.equal(404, gone.status)
  end)
  teardown(function() srv:stop() end)

  for _, pair in ipairs({ { "test", "live" }, { "live", "test" } }) do
    local mode, other = pair[1], pair[2]

    it("a " .. mode .. " session's URL with the " .. other .. "_ prefix is an unknown token",
      function()
        local secret = mode == "live" and t.key.secret or t.test_key.secret
        local r = srv:create(secret, h.session_body(t))
        assert.are.equal(201, r.status, r.body)
        local path = hf.path_of(r.json.url)
        local swapped = path:gsub("/" .. mode .. "_", "/" .. other .. "_", 1)
        assert.are_not.equal(path, swapped)
        assert_same_answer(gone, hf.get(srv, swapped), "GET of the swapped URL")
        local post = hf.post_form(srv, swapped, nil, nil)
        assert.are.equal(404, post.status)
        assert.are.equal(gone.body, post.body)
        assert.is_nil(post.headers["set-cookie"])
        assert.are.equal("pending", hf.api_session(srv, secret, r.json.id).status)
        -- the URL as minted still opens once
        assert.are.equal(303, hf.post_form(srv, path, nil, nil).status)
      end)
  end
end)

describe("live and test keys of one tenant: the index of scoped lists", function()
  it("lists a tenant's sessions of one mode from an index led by (tenant, mode)", function()
    local srv = h.start()
    srv:stop()
    local defs
    if h.backend == "sqlite" then
      defs = h.sql(srv.db, "SELECT name || ': ' || sql FROM sqlite_schema "
        .. "WHERE type = 'index' AND tbl_name = 'sessions' AND sql IS NOT NULL ORDER BY name")
      local plan = h.sql(srv.db, "EXPLAIN QUERY PLAN SELECT id FROM sessions "
        .. "WHERE tenant_id = 'tn_a' AND mode = 'test' AND seq < 10 ORDER BY seq DESC LIMIT 10")
      assert.truthy(plan:find("USING INDEX sessions_by_tenant_mode (tenant_id=? AND mode=? AND "
        .. "seq<?)", 1, true), plan)
    else
      defs = h.sql(srv.db, "SELECT indexname || ': ' || indexdef FROM pg_indexes "
        .. "WHERE tablename = 'sessions' ORDER BY indexname")
    end
    assert.truthy(defs:find("sessions_by_tenant_mode: [^\n]*%(tenant_id, mode, seq%)"), defs)
    assert.truthy(defs:find(
      "sessions_by_tenant_mode_contractor: [^\n]*%(tenant_id, mode, contractor_id, seq%)"), defs)
    -- the indexes without the mode are gone: nothing reads by tenant alone
    assert.falsy(defs:find("sessions_by_tenant:", 1, true), defs)
    assert.falsy(defs:find("sessions_by_contractor:", 1, true), defs)
  end)

  -- SQLite's migration in place: schema_spec.lua
  it("migrates a PostgreSQL database of version 5 in place, keeping its sessions #postgres_only",
    function()
      local srv, t = h.start_with_tenants(nil, "Acme")
      local live = srv:new_session(t)
      local test = srv:create(t.test_key.secret, h.session_body(t)).json
      srv:stop()
      -- put back what version 5 had (7, the webhook claim's, 8, the events
      -- index, and 9, the endpoints' new columns, undone too)
      h.sql(srv.db, "DROP INDEX events_by_tenant; "
        .. "ALTER TABLE webhook_endpoints DROP COLUMN description, DROP COLUMN enabled_events, "
        .. "DROP COLUMN disabled, DROP COLUMN previous_secret_sealed, "
        .. "DROP COLUMN previous_until_ms; "
        .. "DROP INDEX sessions_by_tenant_mode; "
        .. "DROP INDEX sessions_by_tenant_mode_contractor; "
        .. "CREATE INDEX sessions_by_tenant ON sessions (tenant_id, seq); "
        .. "CREATE INDEX sessions_by_contractor ON sessions (tenant_id, contractor_id, seq); "
        .. "DROP INDEX webhook_deliveries_by_endpoint; "
        .. "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) "
        .. "WHERE status = 'pending'; "
        .. "ALTER TABLE webhook_endpoints DROP COLUMN failures, DROP COLUMN paused_until_ms; "
        .. "DELETE FROM schema_migrations WHERE version >= 6")
      local again = h.start({ dir = srv.dir, db = srv.db })
      finally(function() again:stop() end)
      assert.truthy(again:log_text():find("migrated the PostgreSQL schema to version 6", 1, true))
      assert.are.equal("sessions_by_tenant_mode\nsessions_by_tenant_mode_contractor",
        h.sql(srv.db, "SELECT indexname FROM pg_indexes WHERE tablename = 'sessions' "
          .. "AND indexname LIKE 'sessions_by_%' ORDER BY indexname"))
      assert.are.same({ live.id }, ids(again:get(t.key.secret, SESSIONS).json))
      assert.are.same({ test.id }, ids(again:get(t.test_key.secret, SESSIONS).json))
    end)
end)
