-- One tenant's webhook backlog against everybody else (README "Security
-- model", "Webhooks"): tenant A's endpoint accepts connections and never
-- answers, with tens of thousands of deliveries pending, while tenant B
-- creates and cancels sessions and waits for its own events. Before the
-- claim went endpoint by endpoint, every pass of the delivery thread read
-- every due row under SQLite's write lock (about 50 ms at 20,000 rows, four
-- passes a second): B's writes waited for it, retrying on a busy lock (over
-- a hundred retries in 3 s), and the thread spent a quarter of a core on
-- it; and the endpoint took four new attempts every timeout.
--
-- The backlog is written with SQL into the stopped server's database
-- (helpers/webhooks.lua, backlog): building 20,000 cancelled sessions
-- through the API takes minutes, and the rows are the same.
local h = require("helpers.server")
local wh = require("helpers.webhooks")
local socket = require("socket")

local BACKLOG = 20000
-- attempts give up after 500 ms; an endpoint's pause starts at 0.5-1 s
local ARGS = { "--webhook-timeout-ms", "500", "--webhook-retry-base-ms", "1000" }

local function start(dir, db)
  return h.start({ dir = dir, db = db, policy = h.root .. "/policies.example.lua",
    policy_dir = dir .. "/policies", args = ARGS })
end

local TICKS = tonumber((h.run("getconf CLK_TCK")))

-- CPU seconds the server's delivery thread has used (it names itself
-- hf-webhooks).
local function sender_cpu(srv)
  for tid in h.run("ls /proc/" .. srv.pid .. "/task"):gmatch("%d+") do
    local stat = h.read_file("/proc/" .. srv.pid .. "/task/" .. tid .. "/stat") or ""
    local comm, rest = stat:match("^%d+ %((.-)%) (.*)$")
    if comm == "hf-webhooks" then
      local f = {}
      for w in rest:gmatch("%S+") do f[#f + 1] = w end
      return (tonumber(f[12]) + tonumber(f[13])) / TICKS -- utime + stime
    end
  end
  error("no hf-webhooks thread in the server")
end

local function metric(srv, name)
  local m = srv:admin("GET", "/metrics").body
  return tonumber(m:match("\n" .. name .. " (%d+)")) or 0
end

local function cancel(srv, t, id)
  local r = srv:post(t.key.secret, "/api/v1/payment/sessions/" .. id .. "/cancel")
  assert.are.equal(200, r.status, r.body)
end

local function pending_of(srv, endpoint_id)
  return tonumber(h.sql(srv.db, "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = '"
    .. endpoint_id .. "' AND status = 'pending'"))
end

describe("webhooks: a backlog to an endpoint that never answers", function()
  local dir, srv, a, b, sink, rx, ep_a

  setup(function()
    dir = h.tmpdir()
    wh.policy_dir(dir)
    srv = start(dir)
    a = h.tenant(srv.db, "Backlogged")
    b = h.tenant(srv.db, "Other")
    wh.allow_loopback(dir .. "/policies", a)
    wh.allow_loopback(dir .. "/policies", b)
    assert.are.equal(200, srv:admin("POST", "/admin/v1/policy/reload").status)
    sink = wh.receiver("hang")
    rx = wh.receiver(0)
    local r = wh.create(srv, a.key.secret, sink:url())
    assert.are.equal(201, r.status, r.body)
    ep_a = r.json.id
    assert.are.equal(201, wh.create(srv, b.key.secret, rx:url()).status)
    srv:stop()
    wh.backlog(srv.db, a, ep_a, BACKLOG)
    srv = start(dir, srv.db)
  end)
  teardown(function()
    srv:stop()
    sink:stop()
    rx:stop()
  end)

  it("leaves other tenants' writes alone, does not spin, lets their events through", function()
    -- the thread is at the backlog: A's first attempts hang on the sink
    assert.is_true(h.wait_for(function() return #sink:requests() >= 1 end, 5),
      "no attempt reached the endpoint that never answers")
    local cpu0, busy0, t0 = sender_cpu(srv), metric(srv, "hostflow_store_busy_retries_total"),
      socket.gettime()
    local statuses, cancelled = {}, {}
    while socket.gettime() - t0 < 3 do
      local r = srv:create_for(b)
      local code = tostring(r.status)
      statuses[code] = (statuses[code] or 0) + 1
      if r.status == 201 and #cancelled < 10 then
        cancel(srv, b, r.json.id)
        cancelled[#cancelled + 1] = r.json.id
      end
    end
    -- B's events arrive while A's backlog waits
    local got = rx:wait(function(reqs) return #reqs >= #cancelled end, 5)
    local interval = socket.gettime() - t0
    local cpu = sender_cpu(srv) - cpu0
    local busy = metric(srv, "hostflow_store_busy_retries_total") - busy0
    local attempts_a = #sink:requests()

    assert.are.same({ "201" }, h.keys_of(statuses), "create answers: " .. h.json.encode(statuses))
    assert.is_true(statuses["201"] >= 50, "creates in 3 s: " .. statuses["201"])
    assert.are.equal(#cancelled, #got, "B's events, with A's backlog pending")
    for _, req in ipairs(got) do assert.are.equal(200, req.status) end
    -- nothing held SQLite's write lock against the writer (PostgreSQL has
    -- no busy retries at all); nor did the expiry sweep, a writer's job too,
    -- or any write fail
    assert.is_true(busy <= 5, "busy-lock retries while B wrote: " .. busy)
    local log = srv:log_text()
    for _, bad in ipairs({ "database is locked", "sweep failed", "cannot record", "cannot read" }) do
      assert.is_nil(log:find(bad, 1, true), bad)
    end
    -- a thread that re-read the backlog on every pass used a quarter of a core
    assert.is_true(cpu < 0.05 * interval,
      ("the delivery thread used %.2f s of CPU in %.1f s"):format(cpu, interval))
    -- A's endpoint is paused after its first four attempts hang, then tried
    -- once per pause (0.5-1 s, doubling): without pauses, four every 500 ms
    assert.is_true(attempts_a <= 10, "attempts to the endpoint that never answers: " .. attempts_a)
    assert.is_true(attempts_a >= 5, "tried again once its first pause ended: " .. attempts_a)
    -- deferred, not dropped: every delivery of A's is still pending
    assert.are.equal(BACKLOG, pending_of(srv, ep_a))
    assert.is_true(tonumber(h.sql(srv.db, "SELECT failures FROM webhook_endpoints WHERE id = '"
      .. ep_a .. "'")) >= 1, "the endpoint counts its failures")
  end)

  it("sends the backlog once the endpoint answers again, and drops none of it", function()
    local function paused_until()
      return tonumber(h.sql(srv.db, "SELECT paused_until_ms FROM webhook_endpoints WHERE id = '"
        .. ep_a .. "'"))
    end
    sink:stop() -- its connections close: those attempts fail as well
    -- paused before anything answers there again (a receiver started first
    -- could take the next attempt and end the pause before it is seen)
    assert.is_true(h.wait_for(function() return paused_until() > os.time() * 1000 end, 15),
      "the endpoint is paused")
    local ok = wh.receiver(0, sink.port)
    finally(function() ok:stop() end)
    -- the operator, told the receiver is back, retries an event: that ends
    -- the pause of its endpoint at once (the next one would take seconds)
    local out, rc = h.cli(srv.db, "events", "retry", "evt_bl1")
    assert.are.equal(0, rc, out)
    assert.are.equal(0, paused_until())
    local got = ok:wait(function(reqs) return #reqs >= 200 end, 10)
    assert.is_true(#got >= 200, "backlog deliveries since the endpoint answers: " .. #got)
    for _, req in ipairs(got) do
      assert.are.equal(200, req.status)
      assert.matches("^evt_bl%d+$", req.event.id)
    end
    -- the first answer ended the pause: the rest flow at full pace
    assert.are.equal("0", h.sql(srv.db, "SELECT failures FROM webhook_endpoints WHERE id = '"
      .. ep_a .. "'"))
    -- each delivery of the backlog was delivered or waits its turn
    local by_status = h.sql(srv.db, "SELECT status || ' ' || count(*) FROM webhook_deliveries "
      .. "WHERE endpoint_id = '" .. ep_a .. "' GROUP BY status ORDER BY status")
    local delivered, pending = by_status:match("^delivered (%d+)\npending (%d+)$")
    assert.is_truthy(delivered, by_status)
    assert.is_true(tonumber(delivered) >= 100, by_status)
    assert.are.equal(BACKLOG, tonumber(delivered) + tonumber(pending))
  end)
end)

describe("webhooks: a tenant's endpoints that hang", function()
  it("hold at most 8 of the 32 delivery slots together, not 4 each", function()
    local dir = h.tmpdir()
    wh.policy_dir(dir)
    -- attempts hang for 10 s: none ends during the test
    local srv = h.start({ dir = dir, policy = h.root .. "/policies.example.lua",
      policy_dir = dir .. "/policies", args = { "--webhook-timeout-ms", "10000" } })
    local sink, rx = wh.receiver("hang"), wh.receiver(0)
    finally(function()
      srv:stop()
      sink:stop()
      rx:stop()
    end)
    local t, u = h.tenant(srv.db, "Hanging"), h.tenant(srv.db, "Other")
    wh.allow_loopback(dir .. "/policies", t)
    wh.allow_loopback(dir .. "/policies", u)
    assert.are.equal(200, srv:admin("POST", "/admin/v1/policy/reload").status)
    for _ = 1, 3 do assert.are.equal(201, wh.create(srv, t.key.secret, sink:url()).status) end
    assert.are.equal(201, wh.create(srv, u.key.secret, rx:url()).status)
    for _ = 1, 6 do cancel(srv, t, srv:new_session(t).id) end -- 6 for each endpoint
    assert.is_true(h.wait_for(function() return #sink:requests() >= 8 end, 5))
    -- the other tenant's event is claimed after those: by then every claim
    -- the hanging tenant could make was made
    cancel(srv, u, srv:new_session(u).id)
    assert.are.equal(1, #rx:wait(function(reqs) return #reqs >= 1 end, 5))
    assert.are.equal(8, #sink:requests(), "connections of the hanging tenant's attempts")
    -- the other tenant's own attempt ends once its answer is read
    local flying
    assert.is_true(h.wait_for(function()
      flying = tonumber(srv:admin("GET", "/metrics").body:match(
        "hostflow_webhook_deliveries_in_flight (%d+)"))
      return flying == 8
    end, 5), "in flight: " .. tostring(flying))
  end)
end)
