-- The reference policy: https only, exact host from the tenant allowlist.
local P = require("helpers.policy")
local root = os.getenv("HOSTFLOW_ROOT") or "."

describe("policy: policies.example.lua", function()
  local policy = P.load(root .. "/policies.example.lua")
  local hosts = { "app.example.com", "pay.example.org" }

  local function check(raw, list)
    return policy.check_return_url(P.url(raw), P.ctx(list or hosts))
  end

  it("allows https to a listed host", function()
    assert.is_true(check("https://app.example.com/done?x=1"))
    assert.is_true(check("https://pay.example.org"))
  end)

  it("refuses http with invalid_return_url", function()
    local ok, code, msg = check("http://app.example.com/done")
    assert.is_false(ok)
    assert.are.equal("invalid_return_url", code)
    assert.matches("https", msg)
  end)

  it("refuses hosts that only resemble a listed one", function()
    for _, raw in ipairs({ "https://evil.com/", "https://app.example.com.evil.net/",
      "https://evilapp.example.com/", "https://example.com/", "https://sub.app.example.com/" }) do
      local ok, code = check(raw)
      assert.is_false(ok, raw)
      assert.are.equal("invalid_return_url", code)
    end
  end)

  it("refuses everything when the allowlist is empty, and says why", function()
    local ok, code, msg = check("https://app.example.com/", {})
    assert.is_false(ok)
    assert.are.equal("invalid_return_url", code)
    assert.matches("hosted_flow_allowed_redirect_hosts", msg)
  end)

  it("lets every tenant create sessions within the rate limits", function()
    assert.is_true(policy.check_tenant(P.ctx(hosts)))
  end)

  it("refuses with 429 rate_limit and says when to retry when over them", function()
    local ok, code, msg, status = policy.check_tenant(P.ctx(hosts,
      { rate = { limited = true, retry_after = 3 } }))
    assert.is_false(ok)
    assert.are.equal("rate_limit", code)
    assert.matches("3 seconds", msg)
    assert.are.equal(429, status)
  end)
end)
