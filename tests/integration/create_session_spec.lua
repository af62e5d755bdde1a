-- Creating a payment session: the 201 contract and every refusal.
local h = require("helpers.server")
local cjson = h.json
local socket = require("socket")

describe("POST /api/v1/payment/sessions", function()
  local srv, t, other

  setup(function() srv, t, other = h.start_with_tenants(nil, "Acme", "Other") end)
  teardown(function() srv:stop() end)

  it("answers 201 with exactly the session fields", function()
    local r = srv:create_for(t)
    assert.are.equal(201, r.status)
    assert.are.same({ "cancelled_at", "completed_at", "contractor_id", "created",
      "expires_at", "id", "processor", "return_url", "status", "url" }, h.keys_of(r.json))
    assert.matches("^hps_%w+$", r.json.id)
    assert.are.equal(t.contractor.id, r.json.contractor_id)
    assert.are.equal("https://app.example.com/done", r.json.return_url)
    assert.are.equal("pending", r.json.status)
    assert.are.equal("checkout", r.json.processor)
    assert.are.equal(r.json.created + 1800, r.json.expires_at)
    assert.are.equal(cjson.null, r.json.completed_at)
    assert.are.equal(cjson.null, r.json.cancelled_at)
    assert.matches("^http://127%.0%.0%.1:" .. srv.port .. "/payment/setup/live_[%w_-]+$", r.json.url)
    -- 8 characters of time (they order the lookup index), then 43 of
    -- base64url: 256 bits from the CSPRNG
    local token = r.json.url:match("live_([%w_-]+)$")
    assert.are.equal(51, #token)
    assert.matches("^%w%w%w%w%w%w%w%w", token)
  end)

  it("starts the tokens of later sessions with a later time", function()
    local first = srv:create_for(t).json.url:match("live_(%w+)")
    -- sessions made in one millisecond share the prefix: make more until
    -- the millisecond has changed, and never one whose prefix sorts before
    local second
    assert.is_true(h.wait_for(function()
      second = srv:create_for(t).json.url:match("live_(%w+)")
      assert.is_true(first:sub(1, 8) <= second:sub(1, 8), first .. " then " .. second)
      return first:sub(1, 8) ~= second:sub(1, 8)
    end, 5))
    assert.is_true(first:sub(1, 8) < second:sub(1, 8), first .. " then " .. second)
  end)

  it("makes test-mode URLs for test keys", function()
    local r = srv:create(t.test_key.secret, h.session_body(t))
    assert.are.equal(201, r.status)
    assert.matches("/payment/setup/test_[%w_-]+$", r.json.url)
  end)

  it("answers 404 identically for another tenant's contractor and an unknown one", function()
    local a = srv:create_for(t, { contractor = other.contractor.id })
    local b = srv:create_for(t, { contractor = "cn_doesnotexist000000000000" })
    h.assert_error(a, 404, "invalid_contractor_id")
    assert.are.equal(404, b.status)
    assert.are.equal(a.body, b.body)
  end)

  it("logs the decision, its code, the policy version and time on the request's line", function()
    local ok = srv:create_for(t)
    local denied = srv:create_for(t, { return_url = "https://evil.example.net/" })
    local version = srv:admin("GET", "/admin/v1/policy").json.version
    local function line_of(r)
      local id = r.headers["request-id"]
      for _ = 1, 40 do
        for l in srv:log_text():gmatch("[^\n]+") do
          if l:find(id, 1, true) then return l end
        end
        socket.sleep(0.05)
      end
    end
    local a, d = line_of(ok), line_of(denied)
    assert.matches("tenant=" .. t.id, a)
    assert.matches("policy=" .. version .. " decision=allow policy_us=%d+ policy_instructions=%d+", a)
    assert.matches("decision=deny policy_us=%d+ policy_instructions=%d+ error=invalid_return_url", d)
  end)
end)
