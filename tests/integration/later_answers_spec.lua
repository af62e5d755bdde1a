-- Creates on a kept-alive connection: from its second request on, the
-- worker thread leaves the insert and the answer to the writer thread,
-- which sends the 201 once the row is committed. Order on the connection,
-- a client gone before its answer, an answer given again when access
-- changed under the writer, and a stop with answers outstanding.
local h = require("helpers.server")
local socket = require("socket")

local function create_bytes(port, t, n)
  local body = h.json.encode({ contractor = t.contractor.id,
    return_url = "https://app.example.com/done?n=" .. n })
  return "POST /api/v1/payment/sessions HTTP/1.1\r\nHost: 127.0.0.1:" .. port ..
    "\r\nAuthorization: Bearer " .. t.key.secret ..
    "\r\nContent-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
end

-- A kept-alive connection that has answered one create already.
local function warm_connection(srv, t)
  local c = assert(socket.tcp())
  c:settimeout(10)
  assert(c:connect("127.0.0.1", srv.port))
  assert(c:send(create_bytes(srv.port, t, 0)))
  local r = h.read_response(c)
  assert.are.equal(201, r.status)
  h.remember_secret(r.json.url:match("_([^_/]+)$"))
  return c, r
end

local function sessions(srv, t)
  local r = srv:get(t.key.secret, "/api/v1/payment/sessions?limit=100")
  assert.are.equal(200, r.status)
  return r.json
end

-- How many answers the writer has sent (0 on PostgreSQL: there every
-- create waits for its own transaction).
local function by_writer(srv)
  local m = srv:admin("GET", "/metrics")
  return tonumber(m.body:match("\nhostflow_http_answers_by_writer_total (%d+)"))
end

local eventually = h.wait_for

describe("answers the writer sends", function()
  local srv, t

  before_each(function() srv, t = h.start_with_tenants({}, "Acme") end)
  after_each(function() srv:stop() end)

  it("answers pipelined creates in order, each with its own committed session", function()
    local c = warm_connection(srv, t)
    local before = by_writer(srv)
    local burst = {}
    for n = 1, 8 do burst[n] = create_bytes(srv.port, t, n) end
    assert(c:send(table.concat(burst)))
    local ids, seen = {}, {}
    for n = 1, 8 do
      local r = h.read_response(c)
      assert.are.equal(201, r.status, r.body)
      assert.are.equal("https://app.example.com/done?n=" .. n, r.json.return_url)
      h.remember_secret(r.json.url:match("_([^_/]+)$"))
      assert.is_nil(seen[r.headers["request-id"]])
      seen[r.headers["request-id"]] = true
      ids[#ids + 1] = r.json.id
    end
    c:close()
    assert.are.equal(h.backend == "sqlite" and 8 or 0, by_writer(srv) - before)
    local listed = {}
    for _, s in ipairs(sessions(srv, t)) do listed[s.id] = true end
    for _, id in ipairs(ids) do assert.is_true(listed[id], id) end
    local log = srv:log_text()
    for rid in pairs(seen) do
      assert.truthy(log:find("id=" .. rid .. " POST /api/v1/payment/sessions status=201", 1, true), rid)
    end
  end)

  it("answers a create before civetweb's own answer to a malformed request behind it",
    function()
      local c = warm_connection(srv, t)
      assert(c:send(create_bytes(srv.port, t, 1) .. "NOT HTTP\r\n\r\n"))
      local r = h.read_response(c)
      assert.are.equal(201, r.status, r.body)
      assert.are.equal("https://app.example.com/done?n=1", r.json.return_url)
      h.remember_secret(r.json.url:match("_([^_/]+)$"))
      local second = h.read_response(c, true)
      assert.is_true(second.status == nil or second.status >= 400, tostring(second.status))
      c:close()
    end)

  it("answers a create before civetweb's own answer to a CORS preflight behind it", function()
    local c = warm_connection(srv, t)
    assert(c:send(create_bytes(srv.port, t, 1) .. "OPTIONS /api/v1/payment/sessions HTTP/1.1\r\n" ..
      "Host: x\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: POST\r\n\r\n"))
    local r = h.read_response(c)
    assert.are.equal(201, r.status, r.body)
    assert.are.equal("https://app.example.com/done?n=1", r.json.return_url)
    h.remember_secret(r.json.url:match("_([^_/]+)$"))
    local second = h.read_response(c, true)
    assert.is_not_nil(second.status, "the preflight is answered after the create")
    c:close()
  end)

  it("commits and logs a create whose client left before its answer", function()
    local c = warm_connection(srv, t)
    assert(c:send(create_bytes(srv.port, t, 1)))
    c:close()
    assert.is_true(eventually(function()
      local _, count = srv:log_text():gsub("POST /api/v1/payment/sessions status=201", "")
      return count == 2
    end, 5))
    assert.are.equal(2, #sessions(srv, t))
    assert.is_true(srv:alive())
  end)

  it("answers again from a snapshot, and closes, when a key was revoked under the writer #sqlite_only",
    function()
      local c = warm_connection(srv, t)
      local out, rc = h.cli(srv.db, "key", "revoke", t.key.id)
      assert.are.equal(0, rc, out)
      assert(c:send(create_bytes(srv.port, t, 1)))
      local r = h.read_response(c)
      h.assert_error(r, 403, "invalid_api_key")
      assert.are.equal("close", r.headers["connection"])
      assert.is_nil(c:receive(1), "the connection is closed after that answer")
      c:close()
      -- the live key is revoked, and the test key sees only test sessions
      assert.are.equal("1", h.sql(srv.db, "SELECT count(*) FROM sessions WHERE tenant_id = '"
        .. t.id .. "'"), "only the first create was made")
      local _, count = srv:log_text():gsub("POST /api/v1/payment/sessions status=201", "")
      assert.are.equal(1, count, "only the first create was made")
    end)

  it("answers again with a 201, once, when access changed but the answer did not #sqlite_only",
    function()
    local c = warm_connection(srv, t)
    local out, rc = h.cli(srv.db, "tenant", "set-redirect-hosts", t.id,
      "app.example.com", "new.example.com")
    assert.are.equal(0, rc, out)
    assert(c:send(create_bytes(srv.port, t, 1)))
    local r = h.read_response(c)
    assert.are.equal(201, r.status, r.body)
    h.remember_secret(r.json.url:match("_([^_/]+)$"))
    assert.are.equal("close", r.headers["connection"])
    c:close()
    local list = sessions(srv, t)
    assert.are.equal(2, #list)
    assert.are.equal(r.json.id, list[1].id)
  end)

  it("sends every outstanding answer before a stop closes the connections #sqlite_only",
    function()
      srv:stop()
      srv = h.start({ dir = srv.dir, db = srv.db, args = { "--keep-alive-ms", "30000" } })
      local conns = {}
      for i = 1, 6 do conns[i] = warm_connection(srv, t) end
      -- another process holds the write lock until told to let go: the
      -- creates wait in the writer's hands while the server is asked to stop
      local locked, release = srv.dir .. "/locked", srv.dir .. "/release"
      h.write_file(srv.dir .. "/lock.sql", "BEGIN IMMEDIATE;\n.shell touch " .. locked ..
        "\n.shell i=0; while [ ! -e " .. release .. " ] && [ $i -lt 400 ]; do sleep 0.025;" ..
        " i=$((i+1)); done\nCOMMIT;\n")
      h.run("(sqlite3 " .. h.sh_quote(srv.db) .. " <" .. h.sh_quote(srv.dir .. "/lock.sql") ..
        " >/dev/null 2>&1 &)")
      assert.is_true(eventually(function() return h.read_file(locked) ~= nil end, 5))
      for i, c in ipairs(conns) do assert(c:send(create_bytes(srv.port, t, i))) end
      -- every create read by the server, so in the writer's hands
      assert.is_true(eventually(function()
        for _, c in ipairs(conns) do
          local e = h.server_end(srv.port, c)
          if not e or e.unread > 0 then return false end
        end
        return true
      end, 5), "the server did not read every request")
      h.run("kill -TERM " .. srv.pid)
      assert.is_true(eventually(function()
        return srv:log_text():find("again to stop at once", 1, true) ~= nil or not srv:alive()
      end, 5), "no drain logged after SIGTERM")
      assert.is_true(srv:alive(), "the stop waits for the answers the writer owes")
      h.write_file(release, "")
      local created = {}
      for _, c in ipairs(conns) do
        local r = h.read_response(c)
        assert.are.equal(201, r.status, r.body)
        h.remember_secret(r.json.url:match("_([^_/]+)$"))
        created[#created + 1] = r.json.id
        c:close()
      end
      assert.is_true(eventually(function() return not srv:alive() end, 10))
      local log = srv:log_text()
      srv = h.start({ dir = srv.dir, db = srv.db })
      local listed = {}
      for _, s in ipairs(sessions(srv, t)) do listed[s.id] = true end
      for _, id in ipairs(created) do assert.is_true(listed[id], "acknowledged, then lost: " .. id) end
      local _, answered = log:gsub("POST /api/v1/payment/sessions status=201", "")
      assert.are.equal(12, answered, "six warm-up creates and six the stop waited for")
    end)
end)
