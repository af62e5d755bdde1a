-- Abuse limits: session creation per API key and per client address, and
-- hosted-link requests per address; 429 with Retry-After; the policy may
-- override the creation limits through ctx.rate.
local h = require("helpers.server")

local function start(args, opts)
  return h.start({ policy = opts and opts.policy, args = args,
    test_clock = opts and opts.test_clock })
end

local function assert_429(r)
  h.assert_error(r, 429, "rate_limit")
  local wait = tonumber(r.headers["retry-after"])
  assert.is_number(wait)
  assert.is_true(wait >= 1)
end

describe("rate limits: session creation per API key", function()
  local srv, t
  setup(function()
    srv = start({ "--rate-create-key", "2", "--rate-create-ip", "0" })
    t = h.tenant(srv.db, "Acme")
  end)
  teardown(function() srv:stop() end)

  it("allows a burst of twice the rate, then answers 429 with Retry-After", function()
    for i = 1, 4 do assert.are.equal(201, srv:create_for(t).status, "create " .. i) end
    assert_429(srv:create_for(t))
  end)

  it("counts each key on its own", function()
    local r = srv:create(t.test_key.secret, h.session_body(t))
    assert.are.equal(201, r.status)
  end)
end)

describe("rate limits: a bucket refills with time (the test clock)", function()
  it("lets a key that met its limit burst again once the clock moved on", function()
    local srv = start({ "--rate-create-key", "1", "--rate-create-ip", "0" }, { test_clock = true })
    local t = h.tenant(srv.db, "Acme")
    local r
    for _ = 1, 10 do
      r = srv:create_for(t)
      if r.status == 429 then break end
    end
    assert_429(r)
    srv:advance(60)
    -- a full burst of 2 at once: real time alone refills 1 a second
    local statuses = { srv:create_for(t).status, srv:create_for(t).status }
    srv:stop()
    assert.are.same({ 201, 201 }, statuses)
  end)
end)

describe("rate limits: session creation per client address", function()
  it("limits one address across keys and tenants", function()
    local srv = start({ "--rate-create-key", "0", "--rate-create-ip", "2" })
    local a, b = h.tenant(srv.db, "A"), h.tenant(srv.db, "B")
    local statuses = {}
    for i = 1, 3 do
      statuses[#statuses + 1] = srv:create_for(a).status
      statuses[#statuses + 1] = srv:create_for(b).status
    end
    srv:stop()
    assert.are.same({ 201, 201, 201, 201, 429, 429 }, statuses)
  end)
end)

describe("rate limits: the policy overrides through ctx.rate", function()
  it("lets an exempt tenant past the limit and holds the others to it", function()
    local srv = start({ "--rate-create-key", "1", "--rate-create-ip", "0" },
      { policy = h.root .. "/tests/fixtures/policy_rate_exempt.lua" })
    local exempt, other = h.tenant(srv.db, "Exempt"), h.tenant(srv.db, "Other")
    local exempt_statuses, other_statuses = {}, {}
    for _ = 1, 4 do
      exempt_statuses[#exempt_statuses + 1] = srv:create_for(exempt).status
      other_statuses[#other_statuses + 1] = srv:create_for(other).status
    end
    srv:stop()
    assert.are.same({ 201, 201, 201, 201 }, exempt_statuses)
    assert.are.same({ 201, 201, 429, 429 }, other_statuses)
  end)
end)

describe("rate limits: hosted links per client address", function()
  it("slows down token guessing with a 429 page and Retry-After", function()
    local srv = start({ "--rate-redeem-ip", "2" })
    local statuses, last = {}, nil
    for i = 1, 5 do
      last = srv:request({ method = "GET", path = "/payment/setup/live_" .. string.rep("A", 42) .. i })
      statuses[#statuses + 1] = last.status
    end
    srv:stop()
    assert.are.same({ 404, 404, 404, 404, 429 }, statuses)
    assert.is_true(tonumber(last.headers["retry-after"]) >= 1)
    assert.matches("text/html", last.headers["content-type"])
  end)
end)
