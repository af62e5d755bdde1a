-- hostflow tenant list, key list TENANT_ID, contractor list TENANT_ID: what
-- the store holds, oldest first, as text or one JSON object a line; never a
-- key's secret.
local h = require("helpers.server")
local cjson = h.json

local function lines(out)
  local rows = {}
  for line in out:gmatch("[^\n]+") do rows[#rows + 1] = line end
  return rows
end

local function json_rows(db, ...)
  local out, rc, err = h.cli(db, ...)
  assert.are.equal(0, rc, err)
  local rows = {}
  for _, line in ipairs(lines(out)) do rows[#rows + 1] = cjson.decode(line) end
  return rows
end

describe("operator lists", function()
  local dir, db
  setup(function()
    dir = h.tmpdir()
    db = h.new_db(dir)
  end)

  it("say so when there is nothing, and refuse an unknown tenant", function()
    local out, rc = h.cli(db, "tenant", "list")
    assert.are.equal(0, rc)
    assert.matches("no tenants", out)
    assert.are.same({}, json_rows(db, "tenant", "list", "--json"))
    local _, krc, kerr = h.cli(db, "key", "list", "tn_" .. ("Z"):rep(24))
    assert.are.equal(1, krc)
    assert.matches("no tenant with id", kerr)
    local _, crc = h.cli(db, "contractor", "list", "tn_" .. ("Z"):rep(24))
    assert.are.equal(1, crc)
    local _, urc = h.cli(db, "key", "list")
    assert.are.equal(2, urc)
    local help, hrc = h.cli(db, "contractor", "list", "--help")
    assert.are.equal(0, hrc)
    assert.matches("contractor list TENANT_ID", help)
  end)

  it("list tenants, a tenant's keys (revoked or not, never the secret) and contractors", function()
    local a = h.tenant(db, "Acme")
    local b = h.tenant(db, "Beta")
    local out, rc = h.cli(db, "key", "revoke", a.test_key.id)
    assert.are.equal(0, rc, out)

    local tenants = json_rows(db, "tenant", "list", "--json")
    assert.are.equal(2, #tenants)
    assert.are.same({ a.id, "Acme" }, { tenants[1].id, tenants[1].name })
    assert.are.same({ b.id, "Beta" }, { tenants[2].id, tenants[2].name })

    local keys = json_rows(db, "key", "list", a.id, "--json")
    assert.are.equal(2, #keys)
    local by_id = {}
    for _, k in ipairs(keys) do by_id[k.id] = k end
    assert.are.equal("live", by_id[a.key.id].mode)
    assert.are.equal(cjson.null, by_id[a.key.id].revoked_at)
    assert.is_number(by_id[a.test_key.id].revoked_at)
    local text = h.cli(db, "key", "list", a.id)
    assert.matches("revoked", text)
    for _, k in ipairs({ a.key, a.test_key }) do
      assert.is_nil(text:find(k.secret, 1, true), "the secret is never listed")
      assert.is_true(k.secret:sub(1, #by_id[k.id].prefix) == by_id[k.id].prefix)
    end

    local contractors = json_rows(db, "contractor", "list", a.id, "--json")
    assert.are.equal(1, #contractors)
    assert.are.equal(a.contractor.id, contractors[1].id)
    local other = json_rows(db, "contractor", "list", b.id, "--json")
    assert.are.equal(1, #other)
    assert.are_not.equal(a.contractor.id, other[1].id)
  end)
end)
