-- Webhook endpoints a tenant can change: PUT of url (through the policy),
-- description, enabled_events (which event types it receives) and disabled
-- (its deliveries wait), as the SDKs' Webhooks.create/modify send them.
local h = require("helpers.server")
local wh = require("helpers.webhooks")
local cjson = h.json

local CANCELLED, COMPLETED = "payment.session.cancelled", "payment.session.completed"

local function send(srv, method, secret, path, body)
  local r = srv:request({ method = method, path = path, body = cjson.encode(body),
    headers = { Authorization = "Bearer " .. secret, ["Content-Type"] = "application/json" } })
  if r.json and r.json.secret then h.remember_secret(r.json.secret) end
  return r
end

local function cancel_one(srv, t)
  local s = srv:new_session(t)
  local r = srv:post(t.key.secret, "/api/v1/payment/sessions/" .. s.id .. "/cancel", "")
  assert.are.equal(200, r.status, r.body)
  return s.id
end

-- The delivery rows of endpoint id in `hostflow events list`.
local function deliveries_of(srv, id)
  local out = {}
  for _, row in ipairs(wh.events(srv.db)) do
    if row.endpoint == id then out[#out + 1] = row end
  end
  return out
end

-- A server whose tenant t (with another, other) may send to loopback
-- receivers: srv, t, other.
local function start()
  local dir = h.tmpdir()
  wh.policy_dir(dir)
  local srv = h.start({ dir = dir, policy = h.root .. "/policies.example.lua",
    policy_dir = dir .. "/policies",
    args = { "--webhook-retry-base-ms", "50", "--webhook-timeout-ms", "2000" } })
  local t, other = h.tenant(srv.db, "Acme"), h.tenant(srv.db, "Other")
  wh.allow_loopback(dir .. "/policies", t)
  assert.are.equal(200, srv:admin("POST", "/admin/v1/policy/reload").status)
  return srv, t, other
end

describe("webhook endpoints a tenant changes", function()
  local srv, t, other

  setup(function() srv, t, other = start() end)
  teardown(function() srv:stop() end)

  it("takes description and enabled_events on create and shows them", function()
    local r = send(srv, "POST", t.key.secret, wh.PATH, { url = "https://a.example.com/h",
      description = "billing hooks", enabled_events = { COMPLETED } })
    assert.are.equal(201, r.status, r.body)
    assert.are.equal("billing hooks", r.json.description)
    assert.are.same({ COMPLETED }, r.json.enabled_events)
    assert.are.equal(false, r.json.disabled)
    local g = srv:get(t.key.secret, wh.PATH .. "/" .. r.json.id)
    assert.are.same({ COMPLETED }, g.json.enabled_events)
    assert.is_nil(g.json.secret)
    local plain = wh.create(srv, t.key.secret, "https://b.example.com/h")
    assert.are.same({ "*" }, plain.json.enabled_events)
    assert.are.equal("", plain.json.description)
  end)

  it("changes what PUT names and keeps the rest", function()
    local e = wh.create(srv, t.key.secret, "https://c.example.com/h").json
    local r = send(srv, "PUT", t.key.secret, wh.PATH .. "/" .. e.id,
      { description = "renamed", enabled_events = { CANCELLED, COMPLETED, CANCELLED } })
    assert.are.equal(200, r.status, r.body)
    assert.are.equal(e.url, r.json.url)
    assert.are.equal("renamed", r.json.description)
    assert.are.same({ COMPLETED, CANCELLED }, r.json.enabled_events)
    r = send(srv, "PUT", t.key.secret, wh.PATH .. "/" .. e.id, { url = "https://d.example.com/new" })
    assert.are.equal(200, r.status, r.body)
    assert.are.equal("https://d.example.com/new", r.json.url)
    assert.are.equal("renamed", r.json.description)
    local g = srv:get(t.key.secret, wh.PATH .. "/" .. e.id)
    assert.are.same(r.json, g.json)
    r = send(srv, "PUT", t.key.secret, wh.PATH .. "/" .. e.id, { enabled_events = { "*", CANCELLED } })
    assert.are.same({ "*" }, r.json.enabled_events)
  end)

  it("asks the policy about a new url, and refuses bad fields naming them", function()
    local e = wh.create(srv, t.key.secret, "https://e.example.com/h").json
    local path = wh.PATH .. "/" .. e.id
    h.assert_error(send(srv, "PUT", t.key.secret, path, { url = "http://10.0.0.1/h" }), 400,
      "invalid_webhook_url", "url")
    h.assert_error(send(srv, "PUT", t.key.secret, path, { url = "" }), 400, "invalid_input", "url")
    h.assert_error(send(srv, "PUT", t.key.secret, path, { url = 7 }), 400, "invalid_input", "url")
    h.assert_error(send(srv, "PUT", t.key.secret, path, { enabled_events = {} }), 400,
      "invalid_input", "enabled_events")
    h.assert_error(send(srv, "PUT", t.key.secret, path, { enabled_events = { "payment.*" } }), 400,
      "invalid_input", "enabled_events")
    h.assert_error(send(srv, "PUT", t.key.secret, path, { enabled_events = "*" }), 400,
      "invalid_input", "enabled_events")
    h.assert_error(send(srv, "PUT", t.key.secret, path, { description = ("x"):rep(501) }), 400,
      "invalid_input", "description")
    h.assert_error(send(srv, "PUT", t.key.secret, path, { description = "a\nb" }), 400,
      "invalid_input", "description")
    h.assert_error(send(srv, "PUT", t.key.secret, path, { disabled = "yes" }), 400,
      "invalid_input", "disabled")
    h.assert_error(send(srv, "POST", t.key.secret, wh.PATH,
      { url = "https://f.example.com/h", enabled_events = { "nope" } }), 400, "invalid_input",
      "enabled_events")
    -- nothing of a refused change was kept
    assert.are.same(e, (function()
      local g = srv:get(t.key.secret, path).json
      g.secret = e.secret
      return g
    end)())
  end)

  it("answers another tenant's endpoint, and the other mode's, as an unknown one", function()
    local e = wh.create(srv, t.key.secret, "https://g.example.com/h").json
    local unknown = send(srv, "PUT", other.key.secret, wh.PATH .. "/we_" .. ("Z"):rep(24), { description = "x" })
    h.assert_error(unknown, 404, "invalid_webhook_endpoint_id", "id")
    local foreign = send(srv, "PUT", other.key.secret, wh.PATH .. "/" .. e.id, { description = "x" })
    assert.are.equal(unknown.body, foreign.body)
    h.assert_error(send(srv, "PUT", t.test_key.secret, wh.PATH .. "/" .. e.id, { description = "x" }),
      404, "invalid_webhook_endpoint_id", "id")
    assert.are.equal("", srv:get(t.key.secret, wh.PATH .. "/" .. e.id).json.description)
    local r = srv:request({ method = "PATCH", path = wh.PATH .. "/" .. e.id,
      headers = { Authorization = "Bearer " .. t.key.secret } })
    assert.are.equal(405, r.status)
    assert.are.equal("GET, PUT, DELETE", r.headers["allow"])
  end)
end)

describe("webhook endpoints: which events reach them", function()
  local srv, t, rx

  setup(function()
    srv, t = start()
    rx = wh.receiver(0)
  end)
  teardown(function()
    srv:stop()
    rx:stop()
  end)

  it("queues an event only for the endpoints whose enabled_events list its type", function()
    local all = wh.create(srv, t.key.secret, rx:url("/all")).json
    local completed_only = send(srv, "POST", t.key.secret, wh.PATH,
      { url = rx:url("/completed"), enabled_events = { COMPLETED } }).json
    cancel_one(srv, t)
    local got = rx:wait(function(reqs) return #reqs >= 1 end)
    assert.are.equal(1, #got)
    assert.are.equal("/all", got[1].path)
    assert.are.equal(CANCELLED, got[1].event.type)
    -- the outbox holds no row at all for the endpoint that does not want it
    assert.are.equal(1, #deliveries_of(srv, all.id))
    assert.are.same({}, deliveries_of(srv, completed_only.id))
    for _, e in ipairs({ all, completed_only }) do
      assert.are.equal(200, h.request(srv.port, { method = "DELETE", path = wh.PATH .. "/" .. e.id,
        headers = { Authorization = "Bearer " .. t.key.secret } }).status)
    end
  end)

  it("keeps a disabled endpoint's deliveries until it is enabled again", function()
    local paused = wh.create(srv, t.key.secret, rx:url("/paused")).json
    local live = wh.create(srv, t.key.secret, rx:url("/live")).json
    local path = wh.PATH .. "/" .. paused.id
    assert.are.equal(true, send(srv, "PUT", t.key.secret, path, { disabled = true }).json.disabled)
    local before = #rx:requests()
    cancel_one(srv, t)
    -- the enabled endpoint's copy arrives; the disabled one's stays queued, untried
    local got = rx:wait(function(reqs)
      for i = before + 1, #reqs do if reqs[i].path == "/live" then return true end end
    end)
    for i = before + 1, #got do assert.are_not.equal("/paused", got[i].path) end
    local rows = deliveries_of(srv, paused.id)
    assert.are.equal(1, #rows)
    assert.are.equal("pending", rows[1].status)
    assert.are.equal(0, rows[1].attempts)
    assert.are.equal("delivered", deliveries_of(srv, live.id)[1].status)
    -- enabled again: it is sent
    assert.are.equal(false, send(srv, "PUT", t.key.secret, path, { disabled = false }).json.disabled)
    got = rx:wait(function(reqs)
      for i = before + 1, #reqs do if reqs[i].path == "/paused" then return true end end
    end)
    local seen = false
    for i = before + 1, #got do seen = seen or got[i].path == "/paused" end
    assert.is_true(seen, "the re-enabled endpoint got its delivery")
    assert.are.equal("delivered", deliveries_of(srv, paused.id)[1].status)
  end)
end)

describe("webhook endpoints: rolling the signing secret", function()
  local srv, t, other, rx

  setup(function()
    srv, t, other = start()
    rx = wh.receiver(0)
  end)
  teardown(function()
    srv:stop()
    rx:stop()
  end)

  local function roll(secret, id, body)
    local r = srv:request({ method = "POST", path = wh.PATH .. "/" .. id .. "/roll_secret",
      body = body and cjson.encode(body) or nil,
      headers = { Authorization = "Bearer " .. secret, ["Content-Type"] = "application/json" } })
    if r.json and r.json.secret then h.remember_secret(r.json.secret) end
    return r
  end

  -- The next delivery to path after n requests, and the secrets whose
  -- signature it carries (of those given).
  local function next_delivery(path, n, secrets)
    local got = rx:wait(function(reqs)
      for i = n + 1, #reqs do if reqs[i].path == path then return true end end
    end)
    for i = n + 1, #got do
      if got[i].path == path then
        local ts, v1 = wh.parse_signature(got[i].signature)
        local signed = {}
        for name, secret in pairs(secrets) do
          local want = wh.expected_signature(secret, ts, got[i].body)
          for _, v in ipairs(v1) do if v == want then signed[name] = true end end
        end
        return got[i], v1, signed
      end
    end
    error("no delivery to " .. path)
  end

  it("signs with the new and the old secret while they overlap, then with the new alone", function()
    local created = wh.create(srv, t.key.secret, rx:url("/roll"))
    assert.are.equal(201, created.status, created.body)
    local id, old = created.json.id, created.json.secret
    local r = roll(t.key.secret, id)
    assert.are.equal(200, r.status, r.body)
    local new = r.json.secret
    assert.matches("^whsec_", new)
    assert.are_not.equal(old, new)
    assert.are.equal("no-store", r.headers["cache-control"])
    -- a day by default
    assert.is_true(math.abs(r.json.previous_secret_expires_at - (os.time() + 86400)) <= 5)
    local g = srv:get(t.key.secret, wh.PATH .. "/" .. id)
    assert.is_nil(g.json.secret)
    assert.are.equal(r.json.previous_secret_expires_at, g.json.previous_secret_expires_at)

    local n = #rx:requests()
    cancel_one(srv, t)
    local _, v1, signed = next_delivery("/roll", n, { old = old, new = new })
    assert.are.equal(2, #v1, "one v1= per live secret")
    assert.is_true(signed.new and signed.old, "verifies with either secret")

    -- overlap 0: the old secret (now the one from the first roll) stops at once
    r = roll(t.key.secret, id, { overlap_seconds = 0 })
    assert.are.equal(200, r.status, r.body)
    assert.are.equal(cjson.null, r.json.previous_secret_expires_at)
    local newest = r.json.secret
    n = #rx:requests()
    cancel_one(srv, t)
    _, v1, signed = next_delivery("/roll", n, { old = old, new = new, newest = newest })
    assert.are.equal(1, #v1)
    assert.is_true(signed.newest)
    assert.is_nil(signed.new)
    assert.is_nil(signed.old)
  end)

  it("refuses a bad overlap and answers another tenant's endpoint as unknown", function()
    local e = wh.create(srv, t.key.secret, "https://r.example.com/h").json
    for _, bad in ipairs({ -1, 604801, 1.5, "60" }) do
      h.assert_error(roll(t.key.secret, e.id, { overlap_seconds = bad }), 400, "invalid_input",
        "overlap_seconds")
    end
    assert.are.equal(200, roll(t.key.secret, e.id, { overlap_seconds = 604800 }).status)
    h.assert_error(roll(other.key.secret, e.id), 404, "invalid_webhook_endpoint_id", "id")
    h.assert_error(roll(t.test_key.secret, e.id), 404, "invalid_webhook_endpoint_id", "id")
    local r = srv:get(t.key.secret, wh.PATH .. "/" .. e.id .. "/roll_secret")
    assert.are.equal(405, r.status)
    assert.are.equal("POST", r.headers["allow"])
    h.assert_error(srv:get(t.key.secret, wh.PATH .. "/" .. e.id .. "/nope"), 404, "resource_not_found")
  end)
end)
