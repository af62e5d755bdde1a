-- Webhooks (SPEC §7) against the real binary: the endpoints API and its
-- policy, signed events from the outbox for completion, cancellation and
-- expiry, retries with backoff, kill -9 between commit and delivery,
-- giving up and `events retry`, and the operator's view.
local h = require("helpers.server")
local hf = require("helpers.hosted")
local wh = require("helpers.webhooks")
local socket = require("socket")
local cjson = h.json

-- Quick retries so that the suite waits milliseconds, not minutes; a
-- later due time (an expiry, giving up) comes by moving the test clock.
local FAST = { "--webhook-retry-base-ms", "50", "--webhook-timeout-ms", "2000" }

local function start(dir, extra, env)
  local args = {}
  for _, a in ipairs(FAST) do args[#args + 1] = a end
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return h.start({ dir = dir, policy = h.root .. "/policies.example.lua",
    policy_dir = dir .. "/policies", args = args, env = env, test_clock = true })
end

-- A server whose tenant t may send webhooks to loopback receivers (a
-- per-tenant override, reloaded in): dir, srv, t.
local function loopback_server(extra, env)
  local dir = h.tmpdir()
  wh.policy_dir(dir)
  local srv = start(dir, extra, env)
  local t = h.tenant(srv.db, "Acme")
  wh.allow_loopback(dir .. "/policies", t)
  assert.are.equal(200, srv:admin("POST", "/admin/v1/policy/reload").status)
  return dir, srv, t
end

local function of_type(reqs, type_)
  local out = {}
  for _, r in ipairs(reqs) do
    if r.event and r.event.type == type_ then out[#out + 1] = r end
  end
  return out
end

local function assert_signed(r, secret)
  local t, v1 = wh.parse_signature(r.signature)
  assert.is_number(t, "no t= in " .. tostring(r.signature))
  assert.is_true(math.abs(t - os.time()) < 60, "timestamp far from now")
  assert.are.equal(1, #v1)
  assert.are.equal(wh.expected_signature(secret, t, r.body), v1[1],
    "signature does not verify with the endpoint secret")
  assert.are_not.equal(wh.expected_signature(secret .. "x", t, r.body), v1[1])
end

describe("webhook endpoints API (SPEC §7)", function()
  local srv, a, b, pdir

  setup(function()
    local dir = h.tmpdir()
    pdir = wh.policy_dir(dir)
    srv = start(dir)
    a = h.tenant(srv.db, "Acme")
    b = h.tenant(srv.db, "Other")
  end)
  teardown(function() srv:stop() end)

  it("creates an endpoint with a whsec_ secret shown once, then lists, gets and deletes it",
    function()
      local r = wh.create(srv, a.key.secret, "https://hooks.example.com/hostflow")
      assert.are.equal(201, r.status, r.body)
      assert.matches("^we_%w+$", r.json.id)
      assert.are.equal("https://hooks.example.com/hostflow", r.json.url)
      assert.matches("^whsec_[%w_-]+$", r.json.secret)
      assert.are.equal(49, #r.json.secret)
      assert.are.equal("live", r.json.mode)
      assert.are.equal("no-store", r.headers["cache-control"])
      local id = r.json.id

      local list = srv:get(a.key.secret, wh.PATH)
      assert.are.equal(200, list.status)
      assert.are.equal(1, #list.json)
      assert.are.equal(id, list.json[1].id)
      assert.is_nil(list.json[1].secret, "a list must never show the secret")
      local one = srv:get(a.key.secret, wh.PATH .. "/" .. id)
      assert.are.equal(200, one.status)
      assert.is_nil(one.json.secret)
      assert.are.equal(r.json.url, one.json.url)

      -- not another tenant's, nor the same tenant's test mode
      h.assert_error(srv:get(b.key.secret, wh.PATH .. "/" .. id), 404, "invalid_webhook_endpoint_id", "id")
      h.assert_error(srv:get(a.test_key.secret, wh.PATH .. "/" .. id), 404, "invalid_webhook_endpoint_id", "id")
      assert.are.equal(0, #srv:get(b.key.secret, wh.PATH).json)
      local del_other = srv:request({ method = "DELETE", path = wh.PATH .. "/" .. id,
        headers = { Authorization = "Bearer " .. b.key.secret } })
      h.assert_error(del_other, 404, "invalid_webhook_endpoint_id", "id")

      local del = srv:request({ method = "DELETE", path = wh.PATH .. "/" .. id,
        headers = { Authorization = "Bearer " .. a.key.secret } })
      assert.are.equal(200, del.status, del.body)
      assert.are.same({ id = id, deleted = true }, del.json)
      h.assert_error(srv:get(a.key.secret, wh.PATH .. "/" .. id), 404, "invalid_webhook_endpoint_id", "id")
      local again = srv:request({ method = "DELETE", path = wh.PATH .. "/" .. id,
        headers = { Authorization = "Bearer " .. a.key.secret } })
      h.assert_error(again, 404, "invalid_webhook_endpoint_id", "id")
    end)

  it("stores the secret sealed: the database never holds it", function()
    local r = wh.create(srv, a.key.secret, "https://hooks.example.com/sealed")
    assert.are.equal(201, r.status, r.body)
    assert.is_nil(h.db_bytes(srv.db):find(r.json.secret:sub(7), 1, true))
  end)

  it("refuses what the default policy refuses: loopback, private, http, bad URLs", function()
    local refused = {
      "http://127.0.0.1:9/hooks", "https://127.0.0.1/hooks", "https://localhost/hooks",
      "https://10.1.2.3/", "https://169.254.169.254/latest/meta-data",
      "https://[::1]/", "https://[fd00::1]/", "http://hooks.example.com/",
      "https://user:pw@hooks.example.com/", "https://hooks.example.com/#x",
      "ftp://hooks.example.com/", "not a url",
    }
    for _, url in ipairs(refused) do
      local r = wh.create(srv, a.key.secret, url)
      h.assert_error(r, 400, "invalid_webhook_url", "url")
    end
    local m = srv:admin("GET", "/metrics").body
    local denied = m:match('hostflow_policy_decisions_total{check="webhook_url",outcome="deny",'
      .. 'code="invalid_webhook_url"} (%d+)')
    assert.is_true(tonumber(denied or 0) >= 4, "deny decisions counted: " .. tostring(denied))
  end)

  it("validates the request: auth, content type, url field, methods", function()
    local r = srv:request({ method = "POST", path = wh.PATH, body = '{"url":"https://x.example/"}',
      headers = { ["Content-Type"] = "application/json" } })
    h.assert_error(r, 403, "invalid_api_key")
    r = srv:request({ method = "POST", path = wh.PATH, body = "url=x",
      headers = { Authorization = "Bearer " .. a.key.secret,
        ["Content-Type"] = "application/x-www-form-urlencoded" } })
    h.assert_error(r, 400, "invalid_input")
    r = srv:request({ method = "POST", path = wh.PATH, body = '{"url":5}',
      headers = { Authorization = "Bearer " .. a.key.secret, ["Content-Type"] = "application/json" } })
    h.assert_error(r, 400, "invalid_input", "url")
    r = srv:request({ method = "POST", path = wh.PATH, body = '{}',
      headers = { Authorization = "Bearer " .. a.key.secret, ["Content-Type"] = "application/json" } })
    h.assert_error(r, 400, "invalid_input", "url")
    r = srv:request({ method = "PUT", path = wh.PATH,
      headers = { Authorization = "Bearer " .. a.key.secret } })
    h.assert_error(r, 405, "method_not_allowed")
    assert.are.equal("GET, POST", r.headers["allow"])
  end)

  it("allows at most 16 endpoints per tenant and mode", function()
    local fresh = h.tenant(srv.db, "Many")
    for i = 1, 16 do
      assert.are.equal(201, wh.create(srv, fresh.key.secret, "https://h" .. i .. ".example.com/").status)
    end
    h.assert_error(wh.create(srv, fresh.key.secret, "https://h17.example.com/"), 409, "limit_reached")
    assert.are.equal(201, wh.create(srv, fresh.test_key.secret, "https://t.example.com/").status)
  end)

  it("lets a tenant override allow its loopback receiver, for that tenant alone", function()
    wh.allow_loopback(pdir, a)
    local reload = srv:admin("POST", "/admin/v1/policy/reload")
    assert.are.equal(200, reload.status, reload.body)
    assert.are.equal(201, wh.create(srv, a.key.secret, "http://127.0.0.1:9/hooks").status)
    h.assert_error(wh.create(srv, b.key.secret, "http://127.0.0.1:9/hooks"), 400,
      "invalid_webhook_url", "url")
    h.assert_error(wh.create(srv, a.key.secret, "http://10.0.0.1/hooks"), 400,
      "invalid_webhook_url", "url")
  end)
end)

describe("webhook delivery", function()
  local dir, srv, t, rx, secret

  setup(function()
    dir, srv, t = loopback_server({ "--session-ttl", "10" })
    rx = wh.receiver(0)
    local r = wh.create(srv, t.test_key.secret, rx:url("/hooks"))
    assert.are.equal(201, r.status, r.body)
    secret = r.json.secret
  end)
  teardown(function()
    srv:stop()
    rx:stop()
  end)

  it("sends exactly the three event types, signed, with the session as data.object",
    function()
      -- completed through the hosted card page
      local done = hf.open(srv, t, t.test_key.secret, { return_url = "https://app.example.com/x" })
      assert.are.equal(303, hf.complete(srv, done, hf.good_card()).status)
      -- cancelled through the API
      local cancel = srv:create(t.test_key.secret, h.session_body(t))
      assert.are.equal(200, srv:post(t.test_key.secret,
        "/api/v1/payment/sessions/" .. cancel.json.id .. "/cancel").status)
      -- expired by the sweep, which the advance past its ttl runs at once
      local expire = srv:create(t.test_key.secret, h.session_body(t))
      assert.are.equal(201, expire.status)
      srv:advance(11) -- not so far that signatures look stale (assert_signed)

      rx:wait(function(reqs) return #reqs >= 3 end, 15)
      -- nothing more can arrive once every delivery is recorded as done in
      -- one attempt and none is pending or in flight
      assert.is_true(h.wait_for(function()
        local m = srv:admin("GET", "/metrics").body
        return #wh.events(srv.db, "--status", "pending") == 0
          and m:find('hostflow_webhook_deliveries_total{outcome="delivered"} 3\n', 1, true)
          and m:find('hostflow_webhook_deliveries_total{outcome="retry"} 0\n', 1, true)
          and m:find("hostflow_webhook_deliveries_in_flight 0\n", 1, true)
      end, 10), "three deliveries recorded, none pending or in flight")
      local got = rx:requests()
      assert.are.equal(3, #got, "exactly three deliveries")
      local want = {
        ["payment.session.completed"] = done.session.id,
        ["payment.session.cancelled"] = cancel.json.id,
        ["payment.session.expired"] = expire.json.id,
      }
      local seen = {}
      for _, r in ipairs(got) do
        assert.are.equal("POST", r.method)
        assert.are.equal("/hooks", r.path)
        assert.matches("^application/json", r.content_type)
        assert.matches("^hostflow/", r.user_agent)
        assert_signed(r, secret)
        local e = r.event
        assert.matches("^evt_%w+$", e.id)
        assert.is_number(e.created)
        assert.are.same({ "created", "data", "id", "type" }, h.keys_of(e))
        assert.is_string(want[e.type], "unexpected type " .. tostring(e.type))
        assert.is_nil(seen[e.type], "duplicate " .. e.type)
        seen[e.type] = true
        -- data.object is the session exactly as the API shows it
        local api = hf.api_session(srv, t.test_key.secret, want[e.type])
        assert.are.same(api, e.data.object)
      end
      -- the README's verification snippet accepts each real delivery, and
      -- refuses a changed body, another secret and a stale timestamp
      for _, r in ipairs(got) do
        assert.is_true(wh.readme_verify(secret, r.signature, r.body))
      end
      local r1 = got[1]
      assert.is_false(wh.readme_verify(secret, r1.signature, r1.body .. " "))
      assert.is_false(wh.readme_verify(secret .. "x", r1.signature, r1.body))
      local t1 = wh.parse_signature(r1.signature)
      local old = os.time() - 400 -- the README's default tolerance is 300 s
      assert.is_true(wh.readme_verify(secret, "t=" .. old .. ",v1=" ..
        wh.expected_signature(secret, old, r1.body), r1.body, 100000), "a well-signed old one")
      assert.is_false(wh.readme_verify(secret, "t=" .. old .. ",v1=" ..
        wh.expected_signature(secret, old, r1.body), r1.body),
        "a timestamp older than the tolerance is refused")
      assert.is_true(wh.readme_verify(secret, "t=" .. t1 .. ",v1=" .. ("0"):rep(64) ..
        ",v1=" .. r1.signature:match("v1=(%x+)"), r1.body), "any of several v1 entries may match")
      assert.are.equal("completed", of_type(got, "payment.session.completed")[1].event.data.object.status)
      assert.are.equal("cancelled", of_type(got, "payment.session.cancelled")[1].event.data.object.status)
      assert.are.equal("expired", of_type(got, "payment.session.expired")[1].event.data.object.status)

      local rows = wh.events(srv.db, "--status", "delivered")
      assert.are.equal(3, #rows)
      for _, row in ipairs(rows) do
        assert.are.equal(1, row.attempts)
        assert.are.equal(200, row.last_status)
      end
      local m = srv:admin("GET", "/metrics").body
      assert.matches('hostflow_webhook_deliveries_total{outcome="delivered"} 3', m, 1, true)
    end)

  it("sends nothing for a live session to a test-mode endpoint", function()
    local before = #rx:requests()
    local s = srv:create(t.key.secret, h.session_body(t))
    assert.are.equal(200, srv:post(t.key.secret,
      "/api/v1/payment/sessions/" .. s.json.id .. "/cancel").status)
    -- written with its event: no delivery exists that could ever be sent
    local rows = wh.events(srv.db)
    assert.are.equal(s.json.id, rows[1].session)
    assert.are.equal("none", rows[1].status, "the live event has no endpoint to go to")
    assert.are.equal(before, #rx:requests())
  end)

  it("fails a pending delivery whose endpoint was deleted, rather than keep it due forever",
    function()
      -- what a delete racing an event's write can leave behind on
      -- PostgreSQL: a pending delivery the delete did not see
      local gone = wh.create(srv, t.test_key.secret, rx:url("/gone"))
      assert.are.equal(201, gone.status, gone.body)
      local del = srv:request({ method = "DELETE", path = wh.PATH .. "/" .. gone.json.id,
        headers = { Authorization = "Bearer " .. t.test_key.secret } })
      assert.are.equal(200, del.status, del.body)
      local s = srv:create(t.key.secret, h.session_body(t))
      assert.are.equal(200, srv:post(t.key.secret,
        "/api/v1/payment/sessions/" .. s.json.id .. "/cancel").status)
      local event = h.sql(srv.db, "SELECT id FROM events ORDER BY seq DESC LIMIT 1")
      h.sql(srv.db, "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, " ..
        "next_attempt_ms, lease_until_ms) VALUES ('" .. event .. "', '" .. gone.json.id ..
        "', 'pending', 0, 0, 0)")
      local sql = "SELECT status || ' ' || coalesce(last_error, '') FROM webhook_deliveries " ..
        "WHERE endpoint_id = '" .. gone.json.id .. "'"
      local deadline, row = socket.gettime() + 5, nil
      repeat
        socket.sleep(0.1)
        row = h.sql(srv.db, sql)
      until row == "failed endpoint deleted" or socket.gettime() > deadline
      assert.are.equal("failed endpoint deleted", row)
    end)
end)

describe("webhook retries and durability", function()
  it("delivers on the 4th attempt to a receiver that fails the first 3", function()
    local _, srv, t = loopback_server()
    local rx = wh.receiver(3)
    local ep = wh.create(srv, t.test_key.secret, rx:url())
    assert.are.equal(201, ep.status, ep.body)
    local s = srv:create(t.test_key.secret, h.session_body(t))
    srv:post(t.test_key.secret, "/api/v1/payment/sessions/" .. s.json.id .. "/cancel")

    local got = rx:wait(function(reqs) return #reqs >= 4 end, 15)
    srv:stop()
    rx:stop()
    assert.are.equal(4, #got)
    for i = 1, 3 do assert.are.equal(500, got[i].status) end
    assert.are.equal(200, got[4].status)
    -- the same event, each attempt signed afresh
    for i = 1, 4 do
      assert.are.equal(got[1].event.id, got[i].event.id)
      assert_signed(got[i], ep.json.secret)
    end
    local rows = wh.events(srv.db)
    assert.are.equal("delivered", rows[1].status)
    assert.are.equal(4, rows[1].attempts)
    local log = srv:log_text()
    assert.matches("outcome=retry", log, 1, true)
    assert.matches("attempt=4 status=200 outcome=delivered", log, 1, true)
  end)

  it("delivers after a kill -9 between commit and delivery, once restarted", function()
    local dir, srv, t = loopback_server()
    local port = h.free_port() -- nothing listens there yet
    local ep = wh.create(srv, t.test_key.secret, "http://127.0.0.1:" .. port .. "/hooks")
    assert.are.equal(201, ep.status, ep.body)
    local flow = hf.open(srv, t, t.test_key.secret)
    assert.are.equal(303, hf.complete(srv, flow, hf.good_card()).status)
    srv:stop("KILL")

    local rx = wh.receiver(0, port)
    local again = h.start({ dir = dir, db = srv.db, policy = h.root .. "/policies.example.lua",
      policy_dir = dir .. "/policies", args = FAST })
    local got = rx:wait(function(reqs) return #reqs >= 1 end, 15)
    again:stop()
    rx:stop()
    assert.are.equal(1, #got)
    assert.are.equal("payment.session.completed", got[1].event.type)
    assert.are.equal(flow.session.id, got[1].event.data.object.id)
    assert_signed(got[1], ep.json.secret)
  end)

  it("delivers after a kill -9 in the middle of a request, once its claim runs out", function()
    -- a listener that accepts and never answers: the request is in flight
    local sink = assert(socket.bind("127.0.0.1", 0))
    local _, port = sink:getsockname()
    local dir, srv, t = loopback_server()
    local ep = wh.create(srv, t.test_key.secret, "http://127.0.0.1:" .. port .. "/hooks")
    assert.are.equal(201, ep.status, ep.body)
    local s = srv:create(t.test_key.secret, h.session_body(t))
    srv:post(t.test_key.secret, "/api/v1/payment/sessions/" .. s.json.id .. "/cancel")
    local deadline, flying = socket.gettime() + 5, 0
    repeat
      socket.sleep(0.05)
      flying = tonumber(srv:admin("GET", "/metrics").body:match(
        "hostflow_webhook_deliveries_in_flight (%d+)"))
    until flying > 0 or socket.gettime() > deadline
    assert.are.equal(1, flying, "the delivery is in flight")
    srv:stop("KILL")
    sink:close()
    local rows = wh.events(srv.db, "--status", "pending")
    assert.are.equal(1, #rows)
    assert.are.equal("pending", rows[1].status)
    assert.are.equal(0, rows[1].attempts, "the attempt was never recorded")
    assert.are.equal(0, #wh.events(srv.db, "--status", "delivered"))

    local rx = wh.receiver(0, port)
    local again = h.start({ dir = dir, db = srv.db, policy = h.root .. "/policies.example.lua",
      policy_dir = dir .. "/policies", args = FAST })
    -- the dead process's claim (timeout 2 s + 5 s) must run out first
    local got = rx:wait(function(reqs) return #reqs >= 1 end, 20)
    local log = again:log_text()
    again:stop()
    rx:stop()
    assert.are.equal(1, #got, log:sub(-2500))
    assert.are.equal("payment.session.cancelled", got[1].event.type)
    assert_signed(got[1], ep.json.secret)
    assert.are.equal("delivered", wh.events(srv.db)[1].status)
  end)

  -- A stopped server whose database has one endpoint; and its key file.
  local function stopped_with_endpoint()
    local dir, srv, t = loopback_server()
    assert.are.equal(201, wh.create(srv, t.test_key.secret, "https://hooks.example.com/").status)
    srv:stop()
    local key = h.backend == "postgres" and (dir .. "/hostflow.webhook-key")
      or (srv.db .. ".webhook-key")
    return dir, srv, key
  end

  it("refuses to start when the key that sealed its endpoints is missing", function()
    local dir, srv, key = stopped_with_endpoint()
    assert.is_truthy(h.read_file(key), "the key file is where the README says")
    os.remove(key)
    local ok, err = pcall(h.start, { dir = dir, db = srv.db })
    assert.is_false(ok)
    assert.matches("webhook key file .* is missing, but the database has webhook endpoints", err)
    assert.is_nil(h.read_file(key), "no new key was made in its place")
  end)

  it("refuses to start with another key than the one that sealed its endpoints", function()
    local dir, srv, key = stopped_with_endpoint()
    local right = assert(h.read_file(key))
    local other = right:sub(2) .. string.char((right:byte(1) + 1) % 256)
    h.write_file(key, other)
    local ok, err = pcall(h.start, { dir = dir, db = srv.db })
    assert.is_false(ok)
    assert.matches("does not open the endpoint secrets in this database", err)
    assert.are.equal(other, h.read_file(key), "the key file is left as it was")
    -- the right key back: it starts
    h.write_file(key, right)
    srv = h.start({ dir = dir, db = srv.db })
    assert.is_true(srv:alive())
    srv:stop()
  end)

  it("counts a 2xx with a large body as delivered, and goes round no proxy", function()
    -- a proxy nobody runs: a delivery that used it would fail
    local dead = "http://127.0.0.1:9"
    local _, srv, t = loopback_server(nil, { http_proxy = dead, HTTP_PROXY = dead,
      https_proxy = dead, ALL_PROXY = dead })
    local rx = wh.receiver(0, nil, 200 * 1024)
    assert.are.equal(201, wh.create(srv, t.test_key.secret, rx:url()).status)
    local s = srv:create(t.test_key.secret, h.session_body(t))
    srv:post(t.test_key.secret, "/api/v1/payment/sessions/" .. s.json.id .. "/cancel")
    rx:wait(function(reqs) return #reqs >= 1 end, 10)
    -- recorded delivered, it is never tried again
    local rows
    assert.is_true(h.wait_for(function()
      rows = wh.events(srv.db)
      return rows[1].status ~= "pending"
    end, 10), "the delivery was recorded")
    srv:stop()
    rx:stop()
    assert.are.equal(1, #rx:requests())
    assert.are.equal("delivered", rows[1].status)
    assert.are.equal(1, rows[1].attempts)
  end)

  it("an endpoint that hangs holds a few delivery slots, not the other tenants' events",
    function()
      local dir, srv, a = loopback_server({ "--webhook-timeout-ms", "10000" })
      local b = h.tenant(srv.db, "Other")
      wh.allow_loopback(dir .. "/policies", b)
      assert.are.equal(200, srv:admin("POST", "/admin/v1/policy/reload").status)
      local sink = assert(socket.bind("127.0.0.1", 0, 100))
      local _, sink_port = sink:getsockname()
      assert.are.equal(201, wh.create(srv, a.test_key.secret,
        "http://127.0.0.1:" .. sink_port .. "/").status)
      local rx = wh.receiver(0)
      assert.are.equal(201, wh.create(srv, b.test_key.secret, rx:url()).status)
      for _ = 1, 40 do -- more than the 32 slots of the sender
        local s = srv:create(a.test_key.secret, h.session_body(a))
        srv:post(a.test_key.secret, "/api/v1/payment/sessions/" .. s.json.id .. "/cancel")
      end
      local s = srv:create(b.test_key.secret, h.session_body(b))
      srv:post(b.test_key.secret, "/api/v1/payment/sessions/" .. s.json.id .. "/cancel")
      -- B's event arrives while A's requests still hang (they time out at 10 s)
      local got = rx:wait(function(reqs) return #reqs >= 1 end, 5)
      -- B's own request is in flight until its answer is recorded: wait for
      -- that, and for the gauge to drop it (A's stay in flight for 10 s)
      local m
      h.wait_for(function()
        m = srv:admin("GET", "/metrics").body
        return m:match('hostflow_webhook_deliveries_total{outcome="delivered"} 1') ~= nil
          and tonumber(m:match("hostflow_webhook_deliveries_in_flight (%d+)")) <= 4
      end, 5)
      srv:stop()
      rx:stop()
      sink:close()
      assert.are.equal(1, #got, "the other tenant's event waited behind the hung endpoint")
      local flying = tonumber(m:match("hostflow_webhook_deliveries_in_flight (%d+)"))
      assert.is_true(flying <= 4, "in flight to the hung endpoint: " .. flying)
    end)

  it("gives up after --webhook-retry-for, and `events retry` sends it again", function()
    local _, srv, t = loopback_server({ "--webhook-retry-for", "2" })
    local rx = wh.receiver(1000)
    local ep = wh.create(srv, t.test_key.secret, rx:url())
    assert.are.equal(201, ep.status, ep.body)
    local s = srv:create(t.test_key.secret, h.session_body(t))
    srv:post(t.test_key.secret, "/api/v1/payment/sessions/" .. s.json.id .. "/cancel")

    -- a first attempt fails; past the 2 s the next one is the last
    rx:wait(function(reqs) return #reqs >= 1 end, 10)
    srv:advance(3)
    local failed
    h.wait_for(function()
      failed = wh.events(srv.db, "--status", "failed")
      return #failed > 0
    end, 10)
    assert.are.equal(1, #failed, "the delivery should have failed for good")
    assert.are.equal("HTTP 500", failed[1].last_error)
    assert.are.equal(500, failed[1].last_status)
    local attempts = #rx:requests()
    assert.is_true(attempts >= 2, "retried before giving up")
    assert.matches("giving up", srv:log_text(), 1, true)
    -- given up: nothing pending or in flight, every attempt counted
    assert.is_true(h.wait_for(function()
      local m = srv:admin("GET", "/metrics").body
      local retries = tonumber(m:match('hostflow_webhook_deliveries_total{outcome="retry"} (%d+)'))
      return #wh.events(srv.db, "--status", "pending") == 0
        and m:find('hostflow_webhook_deliveries_total{outcome="failed"} 1\n', 1, true)
        and m:find("hostflow_webhook_deliveries_in_flight 0\n", 1, true)
        and retries + 1 == #rx:requests()
    end, 10), "the delivery failed for good after every attempt counted")
    assert.are.equal(attempts, #rx:requests(), "no attempts after giving up")

    -- the operator's view and re-queue
    local text, rc = h.cli(srv.db, "events", "list", "--status", "failed")
    assert.are.equal(0, rc)
    assert.matches(failed[1].id, text, 1, true)
    assert.matches("HTTP 500", text, 1, true)
    rx:stop()
    local ok = wh.receiver(0, rx.port)
    local out, rc2 = h.cli(srv.db, "events", "retry", failed[1].id)
    assert.are.equal(0, rc2)
    assert.matches("1 failed delivery queued again", out, 1, true)
    local got = ok:wait(function(reqs) return #reqs >= 1 end, 10)
    assert.are.equal(1, #got)
    assert.are.equal(failed[1].id, got[1].event.id)
    assert_signed(got[1], ep.json.secret)
    local _, rc3, err = h.cli(srv.db, "events", "retry", "evt_doesnotexist")
    assert.are.equal(1, rc3)
    assert.matches("no event", err, 1, true)
    local m = srv:admin("GET", "/metrics").body
    srv:stop()
    ok:stop()
    assert.is_truthy(m:find('hostflow_webhook_deliveries_total{outcome="failed"} 1', 1, true), m)
  end)

  it("refuses to connect when a name the policy allowed resolves to an internal address, "
    .. "localhost too", function()
      -- this machine's own host name resolves (through /etc/hosts) to one
      local host = (h.run("hostname"):gsub("%s+$", ""))
      local addr = h.run("getent hosts " .. h.sh_quote(host)):match("^(%S+)")
      assert.is_string(addr, "the host name " .. host .. " does not resolve")
      assert.is_truthy(addr:match("^127%.") or addr:match("^10%.") or addr:match("^192%.168%.")
        or addr:match("^172%.") or addr == "::1", host .. " resolves to " .. addr)
      local dir, srv, t = loopback_server()
      -- an override that trusts the name (as a careless one might)
      h.write_file(dir .. "/policies/tenants/" .. t.id .. ".lua",
        "return { check_webhook_url = function() return true end }\n")
      assert.are.equal(200, srv:admin("POST", "/admin/v1/policy/reload").status)
      local rx = wh.receiver(0)
      -- "localhost" is a name as well: only an address the URL spells out
      -- may be internal
      for _, name in ipairs({ host, "localhost" }) do
        local ep = wh.create(srv, t.test_key.secret, "http://" .. name .. ":" .. rx.port .. "/")
        assert.are.equal(201, ep.status, ep.body)
      end
      local s = srv:create(t.test_key.secret, h.session_body(t))
      srv:post(t.test_key.secret, "/api/v1/payment/sessions/" .. s.json.id .. "/cancel")
      local function attempted(rows)
        if #rows < 2 then return false end
        for _, row in ipairs(rows) do
          if row.attempts < 1 then return false end
        end
        return true
      end
      local deadline, rows = socket.gettime() + 5, {}
      repeat
        socket.sleep(0.1)
        rows = wh.events(srv.db)
      until attempted(rows) or socket.gettime() > deadline
      srv:stop()
      rx:stop()
      assert.are.equal(2, #rows, cjson.encode(rows))
      for _, row in ipairs(rows) do
        assert.are.equal("refused: the host resolves to an internal address", row.last_error)
      end
      assert.are.equal(0, #rx:requests(), "nothing reached the receiver")
    end)

  it("an endpoint that never answers does not hold up the API", function()
    -- attempts hang for 10 s: an API waiting on them would take that long
    local _, srv, t = loopback_server({ "--webhook-timeout-ms", "10000" })
    -- a listener that accepts and never reads or answers
    local sink = assert(socket.bind("127.0.0.1", 0))
    local _, sink_port = sink:getsockname()
    local ep = wh.create(srv, t.test_key.secret, "http://127.0.0.1:" .. sink_port .. "/")
    assert.are.equal(201, ep.status)
    for _ = 1, 20 do
      local s = srv:create(t.test_key.secret, h.session_body(t))
      srv:post(t.test_key.secret, "/api/v1/payment/sessions/" .. s.json.id .. "/cancel")
    end
    local function in_flight()
      return tonumber(srv:admin("GET", "/metrics").body:match(
        "hostflow_webhook_deliveries_in_flight (%d+)"))
    end
    local deadline = socket.gettime() + 5
    while in_flight() < 4 and socket.gettime() < deadline do socket.sleep(0.05) end
    assert.are.equal(4, in_flight(), "four deliveries (the cap per endpoint) hang on the sink")
    -- meanwhile the API answers at once
    local t0 = socket.gettime()
    for _ = 1, 20 do assert.are.equal(201, srv:create(t.test_key.secret, h.session_body(t)).status) end
    local took = socket.gettime() - t0
    local still = in_flight()
    srv:stop()
    sink:close()
    assert.are.equal(4, still, "the deliveries were still hanging")
    assert.is_true(took < 5, ("20 creates took %.2f s while deliveries hung"):format(took))
  end)
end)
