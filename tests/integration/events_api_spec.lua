-- GET /api/v1/events[/{id}]: a tenant reads its events, the objects its
-- webhooks are sent, newest first, scoped to the key's tenant and mode.
local h = require("helpers.server")

local SESSIONS = "/api/v1/payment/sessions"
local EVENTS = "/api/v1/events"

local function cancel(srv, secret, id)
  local r = srv:post(secret, SESSIONS .. "/" .. id .. "/cancel", "")
  assert.are.equal(200, r.status, r.body)
  return r.json
end

describe("events API", function()
  local srv, t, other, cancelled
  setup(function()
    srv = h.start()
    t = h.tenant(srv.db, "Acme")
    other = h.tenant(srv.db, "Other")
    cancelled = {}
    for i = 1, 3 do
      local s = srv:new_session(t)
      cancelled[i] = cancel(srv, t.key.secret, s.id)
    end
  end)
  teardown(function() srv:stop() end)

  local function list(secret, query)
    return srv:get(secret, EVENTS .. (query and ("?" .. query) or ""))
  end

  it("lists the tenant's events newest first, each the object its webhooks carry", function()
    local r = list(t.key.secret)
    assert.are.equal(200, r.status, r.body)
    assert.are.equal(3, #r.json)
    for i, e in ipairs(r.json) do
      local s = cancelled[4 - i]
      assert.matches("^evt_", e.id)
      assert.are.equal("payment.session.cancelled", e.type)
      assert.is_number(e.created)
      local keys = {}
      for k in pairs(e) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.are.same({ "created", "data", "id", "type" }, keys)
      -- data.object is exactly what GET of the session returns
      local g = srv:get(t.key.secret, SESSIONS .. "/" .. s.id)
      assert.are.same(g.json, e.data.object)
      assert.are.equal("cancelled", e.data.object.status)
    end
  end)

  it("reads one event as the list shows it", function()
    local first = list(t.key.secret).json[1]
    local r = srv:get(t.key.secret, EVENTS .. "/" .. first.id)
    assert.are.equal(200, r.status, r.body)
    assert.are.same(first, r.json)
  end)

  it("answers another tenant's event, and the other mode's, exactly as an unknown one", function()
    local id = list(t.key.secret).json[1].id
    local unknown = srv:get(other.key.secret, EVENTS .. "/evt_" .. ("Z"):rep(24))
    h.assert_error(unknown, 404, "invalid_event_id", "id")
    local foreign = srv:get(other.key.secret, EVENTS .. "/" .. id)
    h.assert_error(foreign, 404, "invalid_event_id", "id")
    assert.are.equal(unknown.body, foreign.body)
    h.assert_error(srv:get(t.test_key.secret, EVENTS .. "/" .. id), 404, "invalid_event_id", "id")
    assert.are.same({}, list(other.key.secret).json)
    assert.are.same({}, list(t.test_key.secret).json)
    h.assert_error(srv:get(t.key.secret, EVENTS .. "/not-an-id!"), 404, "invalid_event_id", "id")
  end)

  it("pages with limit and the event id cursors", function()
    local all = list(t.key.secret).json
    local p1 = list(t.key.secret, "limit=2").json
    assert.are.same({ all[1].id, all[2].id }, { p1[1].id, p1[2].id })
    local p2 = list(t.key.secret, "limit=2&starting_after=" .. p1[2].id).json
    assert.are.equal(1, #p2)
    assert.are.equal(all[3].id, p2[1].id)
    local back = list(t.key.secret, "limit=2&ending_before=" .. all[3].id).json
    assert.are.same({ all[1].id, all[2].id }, { back[1].id, back[2].id })
    assert.are.same({}, list(t.key.secret, "starting_after=" .. all[3].id).json)
  end)

  it("filters by type", function()
    assert.are.equal(3, #list(t.key.secret, "type=payment.session.cancelled").json)
    assert.are.same({}, list(t.key.secret, "type=payment.session.completed").json)
    assert.are.same({}, list(t.key.secret, "type=payment.session.expired").json)
  end)

  it("refuses bad parameters with 400 invalid_input naming them", function()
    local id = list(t.key.secret).json[1].id
    h.assert_error(list(t.key.secret, "type=payment.session"), 400, "invalid_input", "type")
    h.assert_error(list(t.key.secret, "limit=0"), 400, "invalid_input", "limit")
    h.assert_error(list(t.key.secret, "limit=101"), 400, "invalid_input", "limit")
    h.assert_error(list(t.key.secret, "starting_after=evt_" .. ("Q"):rep(24)), 400,
      "invalid_input", "starting_after")
    h.assert_error(list(other.key.secret, "ending_before=" .. id), 400, "invalid_input",
      "ending_before")
    h.assert_error(list(t.key.secret, "starting_after=" .. id .. "&ending_before=" .. id), 400,
      "invalid_input", "ending_before")
  end)

  it("needs a key and allows only GET", function()
    h.assert_error(srv:get(nil, EVENTS), 403, "invalid_api_key")
    local r = srv:post(t.key.secret, EVENTS, "{}")
    assert.are.equal(405, r.status)
    assert.are.equal("GET", r.headers["allow"])
    local id = list(t.key.secret).json[1].id
    assert.are.equal(405, srv:post(t.key.secret, EVENTS .. "/" .. id, "{}").status)
    h.assert_error(srv:get(t.key.secret, EVENTS .. "/" .. id .. "/x"), 404, "resource_not_found")
  end)
end)
