-- policies/allowlist.lua: exact host matching.
local P = require("helpers.policy")
local root = os.getenv("HOSTFLOW_ROOT") or "."

describe("policy: policies/allowlist.lua", function()
  local allowlist = P.load(root .. "/policies/allowlist.lua")

  it("finds exact members only", function()
    local list = { "app.example.com", "pay.example.org" }
    assert.is_true(allowlist.contains(list, "app.example.com"))
    assert.is_false(allowlist.contains(list, "example.com"))
    assert.is_false(allowlist.contains(list, "APP.example.com"))
    assert.is_false(allowlist.contains({}, "app.example.com"))
  end)

  it("allows https to a listed host", function()
    assert.is_true(allowlist.https_host_allowed(P.url("https://app.example.com/x"), { "app.example.com" }))
  end)

  it("explains each refusal", function()
    local ok, why = allowlist.https_host_allowed(P.url("http://app.example.com/"), { "app.example.com" })
    assert.is_false(ok)
    assert.matches("https", why)
    ok, why = allowlist.https_host_allowed(P.url("https://app.example.com/"), {})
    assert.is_false(ok)
    assert.matches("no hosted_flow_allowed_redirect_hosts", why)
    ok, why = allowlist.https_host_allowed(P.url("https://evil.example.com/"), { "app.example.com" })
    assert.is_false(ok)
    assert.matches("not in hosted_flow_allowed_redirect_hosts", why)
  end)
end)
