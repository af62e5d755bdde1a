-- The reference SDKs understand hostflow's errors (SPEC section 3): each
-- error code names an SDK exception class the way the SDKs derive it, every
-- error says whether a retry may help, and an idempotency key comes back in
-- the header the SDK reads.
local h = require("helpers.server")

local SESSIONS = "/api/v1/payment/sessions"
local ENDPOINTS = "/api/v1/webhook_endpoints"

-- What both SDKs do with an error_code: "invalid_api_key" -> "InvalidApiKeyError".
local function class_of(code)
  return (code:gsub("_?(%a)(%a*)", function(first, rest) return first:upper() .. rest end)) .. "Error"
end

local function sdk_classes()
  local classes = { python = {}, node = {} }
  for line in h.read_file(h.root .. "/tests/fixtures/sdk_error_classes.txt"):gmatch("[^\n]+") do
    local sdk, name = line:match("^(%a+): (%w+)$")
    if sdk then classes[sdk][name] = true end
  end
  return classes
end

describe("errors the reference SDKs understand", function()
  local srv, t, classes
  setup(function()
    srv = h.start({ args = { "--rate-create-key", "1", "--rate-create-ip", "0" } })
    t = h.tenant(srv.db, "Acme")
    classes = sdk_classes()
  end)
  teardown(function() srv:stop() end)

  it("derives class names as the SDKs do", function()
    assert.are.equal("InvalidApiKeyError", class_of("invalid_api_key"))
    assert.are.equal("InvalidWebhookEndpointIdError", class_of("invalid_webhook_endpoint_id"))
    assert.are.equal("RateLimitError", class_of("rate_limit"))
  end)

  -- Each case: how to provoke it, its status and code, and which SDKs
  -- have its class (SPEC section 3 names these codes for that reason).
  local cases = {
    { "a body that is not JSON", 400, "invalid_input", { "python", "node" },
      function() return srv:create(t.key.secret, "{") end },
    { "no API key", 403, "invalid_api_key", { "python", "node" },
      function() return srv:get(nil, SESSIONS) end },
    { "an unknown contractor", 404, "invalid_contractor_id", { "python", "node" },
      function() return srv:create_for(t, { contractor = "cn_" .. ("Z"):rep(24) }) end },
    { "an unknown session", 404, "invalid_session_id", { "python", "node" },
      function() return srv:get(t.key.secret, SESSIONS .. "/hps_" .. ("Z"):rep(24)) end },
    { "an unknown webhook endpoint", 404, "invalid_webhook_endpoint_id", { "python", "node" },
      function() return srv:get(t.key.secret, ENDPOINTS .. "/we_" .. ("Z"):rep(24)) end },
    { "an unknown route", 404, "resource_not_found", { "python", "node" },
      function() return srv:get(t.key.secret, "/api/v1/nope") end },
  }
  for _, c in ipairs(cases) do
    local what, status, code, sdks, provoke = c[1], c[2], c[3], c[4], c[5]
    it("answers " .. what .. " with " .. status .. " " .. code .. ", a class of the SDKs", function()
      local r = provoke()
      h.assert_error(r, status, code) -- also checks Ten99Policy-Should-Retry
      for _, sdk in ipairs(sdks) do
        assert.is_true(classes[sdk][class_of(code)], sdk .. " SDK has no " .. class_of(code))
      end
    end)
  end

  it("answers over the rate limit with 429 rate_limit (Python's RateLimitError), retryable", function()
    local r
    for _ = 1, 3 do r = srv:create_for(t) end
    h.assert_error(r, 429, "rate_limit")
    assert.are.equal("true", r.headers["ten99policy-should-retry"])
    assert.is_true(classes.python[class_of("rate_limit")])
  end)

  it("never answers invalid_request", function()
    -- the Python SDK's InvalidRequestError takes other arguments and loses
    -- the error's body: the codes above are what replaced it
    for _, body in ipairs({ "{", "[]", '{"contractor":1}' }) do
      local r = srv:create(t.key.secret, body)
      assert.are_not.equal("invalid_request", r.json and r.json.error_code)
    end
  end)
end)

describe("idempotency keys in answers", function()
  local srv, t
  setup(function()
    srv = h.start()
    t = h.tenant(srv.db, "Acme")
  end)
  teardown(function() srv:stop() end)

  it("echoes the key on a create, its replay and its refusals", function()
    local key = "order-" .. math.random(1e9)
    local first = srv:create_for(t, nil, { ["Ten99Policy-Idempotent-Key"] = key })
    assert.are.equal(201, first.status)
    assert.are.equal(key, first.headers["ten99policy-idempotent-key"])
    local again = srv:create_for(t, nil, { ["Idempotency-Key"] = key })
    assert.are.equal(201, again.status)
    assert.are.equal("true", again.headers["idempotent-replayed"])
    assert.are.equal(key, again.headers["ten99policy-idempotent-key"])
    local reused = srv:create_for(t, { return_url = "https://app.example.com/other" },
      { ["Ten99Policy-Idempotent-Key"] = key })
    h.assert_error(reused, 409, "idempotency_key_reused")
    assert.are.equal(key, reused.headers["ten99policy-idempotent-key"])
    -- a permanent refusal: the SDK must not send it three times
    assert.are.equal("false", reused.headers["ten99policy-should-retry"])
    local bad = srv:create(t.key.secret, "{", { ["Ten99Policy-Idempotent-Key"] = key })
    h.assert_error(bad, 400, "invalid_input")
    assert.are.equal(key, bad.headers["ten99policy-idempotent-key"])
  end)

  it("takes the mode from the key, whatever Ten99Policy-Environment says", function()
    local r = srv:create_for(t, nil, { ["Ten99Policy-Environment"] = "sandbox" })
    assert.are.equal(201, r.status, r.body)
    assert.matches("/payment/setup/live_", r.json.url)
    assert.are.equal(200, srv:get(t.key.secret, SESSIONS .. "/" .. r.json.id).status)
    assert.are.equal(404, srv:get(t.test_key.secret, SESSIONS .. "/" .. r.json.id).status)
  end)

  it("sends no key header when the request had none", function()
    local r = srv:create_for(t)
    assert.are.equal(201, r.status)
    assert.is_nil(r.headers["ten99policy-idempotent-key"])
  end)
end)
