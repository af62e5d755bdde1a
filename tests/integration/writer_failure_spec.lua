-- A write that fails after changing rows, inside a batch of other writes
-- (README "Storage and durability": the writer then rolls the batch back
-- and runs it again with a savepoint around each write). A trigger the
-- test adds to the database refuses the idempotency record of some
-- creates, after their session row was inserted in the open batch.
local h = require("helpers.server")
local socket = require("socket")
local cjson = h.json

local SESSIONS = "/api/v1/payment/sessions"

-- #sqlite_only: the batch and its guarded run are the SQLite writer's
describe("the SQLite writer #sqlite_only", function()
  local srv, t

  setup(function()
    srv, t = h.start_with_tenants(nil, "Acme")
    h.sql(srv.db, "CREATE TRIGGER refuse_boom BEFORE INSERT ON idempotency_keys " ..
      "WHEN NEW.key LIKE '%boom%' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;")
  end)
  teardown(function() srv:stop() end)

  -- all requests sent at once on their own connections, then all read;
  -- bodies[i] (default: a new session body) is sent with keys[i]
  local function at_once(keys, bodies)
    local conns, out = {}, {}
    for i, key in ipairs(keys) do
      local b = cjson.encode((bodies or {})[i] or h.session_body(t))
      local c = assert(socket.tcp())
      c:settimeout(10)
      assert(c:connect("127.0.0.1", srv.port))
      conns[i] = c
      assert(c:send(table.concat({ "POST " .. SESSIONS .. " HTTP/1.1",
        "Host: 127.0.0.1:" .. srv.port, "Connection: close",
        "Authorization: Bearer " .. t.key.secret, "Content-Type: application/json",
        "Idempotency-Key: " .. key, "Content-Length: " .. #b }, "\r\n") .. "\r\n\r\n" .. b))
    end
    for i, c in ipairs(conns) do
      out[i] = h.read_response(c)
      c:close()
    end
    return out
  end

  it("undoes only the failed write of a batch and commits the others", function()
    local before = tonumber(h.sql(srv.db, "SELECT count(*) FROM sessions"))
    for round = 1, 5 do
      local keys = {}
      for i = 1, 12 do
        keys[i] = (i % 4 == 0 and "boom-" or "fine-") .. round .. "-" .. i
      end
      local replies = at_once(keys)
      for i, r in ipairs(replies) do
        if keys[i]:match("^boom") then
          h.assert_error(r, 500, "internal_error")
        else
          assert.are.equal(201, r.status, tostring(r.body or r.error))
          assert.are.equal(r.json.id, h.sql(srv.db,
            "SELECT id FROM sessions WHERE id = '" .. r.json.id .. "'"))
        end
      end
    end
    -- 9 of every 12 were kept, and no refused one left a row behind
    assert.are.equal(before + 5 * 9, tonumber(h.sql(srv.db, "SELECT count(*) FROM sessions")))
    assert.are.equal("0", h.sql(srv.db, "SELECT count(*) FROM idempotency_keys WHERE key LIKE '%boom%'"))
    assert.are.equal(tostring(5 * 9),
      h.sql(srv.db, "SELECT count(*) FROM idempotency_keys WHERE key LIKE '%fine-%'"))
    -- and the server goes on
    assert.are.equal(201, srv:create_for(t).status)
  end)

  it("answers nothing from a batch that SQLite itself rolled back", function()
    -- RAISE(ROLLBACK) ends the whole transaction, as a full disk would
    h.sql(srv.db, "CREATE TRIGGER rollback_doom BEFORE INSERT ON idempotency_keys " ..
      "WHEN NEW.key LIKE '%doom%' BEGIN SELECT RAISE(ROLLBACK, 'rolled back by the test'); END;")
    finally(function() h.sql(srv.db, "DROP TRIGGER IF EXISTS rollback_doom") end)
    local replayed_missing, rolled_back = 0, 0
    for round = 1, 20 do
      -- twins (one key, one body) and a doomed create, in one batch: the
      -- second twin finds the first's row in the batch, which is then lost
      local twin = h.session_body(t)
      local replies = at_once({ "twin-" .. round, "twin-" .. round, "doom-" .. round },
        { twin, twin })
      h.assert_error(replies[3], 500, "internal_error")
      for i = 1, 2 do
        local r = replies[i]
        if r.status == 201 then
          local kept = h.sql(srv.db, "SELECT id FROM sessions WHERE id = '" .. r.json.id .. "'")
          if kept ~= r.json.id then replayed_missing = replayed_missing + 1 end
        else
          h.assert_error(r, 500, "internal_error")
          rolled_back = rolled_back + 1
        end
      end
    end
    print(("# twins answered 500 with their batch: %d of 40"):format(rolled_back))
    assert.are.equal(0, replayed_missing, "a 201 named a session that is not in the database")
    assert.is_true(rolled_back > 0, "no twin shared a batch with the doomed create")
    h.sql(srv.db, "DROP TRIGGER rollback_doom")
    assert.are.equal(201, srv:create_for(t).status)
  end)
end)
