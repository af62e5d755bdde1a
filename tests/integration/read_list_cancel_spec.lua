-- Reading, listing, paging and cancelling sessions; expiry read at once.
local h = require("helpers.server")
local cjson = h.json

local SESSIONS = "/api/v1/payment/sessions"

local assert_error = h.assert_error

local function ids(list)
  local out = {}
  for i, s in ipairs(list) do out[i] = s.id end
  return out
end

local function list(srv, who, query)
  return srv:get(who.key.secret, SESSIONS .. (query and ("?" .. query) or ""))
end

describe("GET /api/v1/payment/sessions/{id}", function()
  local srv, t, other, created

  setup(function()
    srv, t, other = h.start_with_tenants(nil, "Acme", "Other")
    created = srv:new_session(t)
  end)
  teardown(function() srv:stop() end)

  it("returns the same object as the create, with url null", function()
    local r = srv:get(t.key.secret, SESSIONS .. "/" .. created.id)
    assert.are.equal(200, r.status)
    assert.matches("^application/json", r.headers["content-type"] or "")
    assert.are.equal(cjson.null, r.json.url)
    assert.are.same(h.keys_of(created), h.keys_of(r.json))
    for k, v in pairs(created) do
      if k ~= "url" then assert.are.same(v, r.json[k], k) end
    end
  end)

  it("never shows the url again, also for a test-mode session", function()
    local r = srv:create(t.test_key.secret, h.session_body(t))
    assert.are.equal(201, r.status)
    local g = srv:get(t.test_key.secret, SESSIONS .. "/" .. r.json.id)
    assert.are.equal(200, g.status)
    assert.are.equal(cjson.null, g.json.url)
    assert.is_nil(g.body:find(r.json.url:match("test_([%w_-]+)$"), 1, true))
  end)

  it("answers another tenant's session with a 404 identical to an unknown id", function()
    local foreign = srv:get(other.key.secret, SESSIONS .. "/" .. created.id)
    local unknown = srv:get(other.key.secret, SESSIONS .. "/hps_" .. ("Z"):rep(24))
    assert_error(foreign, 404, "invalid_session_id", "id")
    assert.are.equal(404, unknown.status)
    assert.are.equal(unknown.body, foreign.body)
  end)

  it("answers 404 for malformed and over-long ids", function()
    assert.are.equal(404, srv:get(t.key.secret, SESSIONS .. "/hps_%27%20or%201=1").status)
    assert.are.equal(404, srv:get(t.key.secret, SESSIONS .. "/hps_" .. ("a"):rep(300)).status)
  end)

  it("needs a valid API key", function()
    assert_error(srv:get(nil, SESSIONS .. "/" .. created.id), 403, "invalid_api_key")
    assert_error(srv:get("hf_live_nope", SESSIONS .. "/" .. created.id), 403, "invalid_api_key")
    assert_error(srv:get(nil, SESSIONS), 403, "invalid_api_key")
  end)
end)

describe("GET /api/v1/payment/sessions: lists and paging", function()
  local srv, p, s, other, c2, all, by_contractor, cancelled_id

  setup(function()
    srv, p = h.start_with_tenants(nil, "Pager")
    c2 = h.cli_json(srv.db, "contractor", "create", p.id, "--json")
    all, by_contractor = {}, { [p.contractor.id] = {}, [c2.id] = {} }
    for i = 1, 25 do
      local c = (i % 3 == 0) and c2.id or p.contractor.id
      local sess = srv:new_session(p, { contractor = c })
      table.insert(all, 1, sess.id) -- newest first
      table.insert(by_contractor[c], 1, sess.id)
    end
    s = h.tenant(srv.db, "States", { "app.example.com" })
    srv:new_session(s)
    cancelled_id = srv:new_session(s).id
    srv:new_session(s)
    assert.are.equal(200, srv:post(s.key.secret, SESSIONS .. "/" .. cancelled_id .. "/cancel").status)
    other = h.tenant(srv.db, "Other", { "app.example.com" })
  end)
  teardown(function() srv:stop() end)

  it("is a bare JSON array, newest first, 10 by default", function()
    local r = list(srv, p)
    assert.are.equal(200, r.status)
    assert.matches("^application/json", r.headers["content-type"] or "")
    assert.matches("^%s*%[", r.body)
    assert.are.same({ table.unpack(all, 1, 10) }, ids(r.json))
    for _, sess in ipairs(r.json) do
      assert.are.equal(cjson.null, sess.url)
      assert.are.equal("pending", sess.status)
    end
  end)

  it("honours limit 1..100", function()
    assert.are.same({ all[1] }, ids(list(srv, p, "limit=1").json))
    assert.are.same(all, ids(list(srv, p, "limit=100").json))
    assert.are.same({ table.unpack(all, 1, 25) }, ids(list(srv, p, "limit=25").json))
  end)

  for _, bad in ipairs({ "0", "101", "abc", "-1", "", "10abc", "99999999999999999999" }) do
    it("refuses limit=" .. bad .. " with 400 param limit", function()
      assert_error(list(srv, p, "limit=" .. bad), 400, "invalid_input", "limit")
    end)
  end

  it("walks 25 sessions with starting_after in pages of 10, no gaps or duplicates", function()
    local seen, cursor, pages = {}, nil, {}
    for _ = 1, 10 do
      local r = list(srv, p, "limit=10" .. (cursor and ("&starting_after=" .. cursor) or ""))
      assert.are.equal(200, r.status)
      pages[#pages + 1] = #r.json
      if #r.json == 0 then break end
      for _, sess in ipairs(r.json) do seen[#seen + 1] = sess.id end
      cursor = r.json[#r.json].id
    end
    assert.are.same({ 10, 10, 5, 0 }, pages)
    assert.are.same(all, seen)
  end)

  it("walks back with ending_before from the oldest, pages newest first", function()
    local cursor, seen, pages = all[#all], {}, {}
    for _ = 1, 10 do
      local r = list(srv, p, "limit=10&ending_before=" .. cursor)
      assert.are.equal(200, r.status)
      pages[#pages + 1] = #r.json
      if #r.json == 0 then break end
      -- each page is newest first and sits just above the cursor
      local page = ids(r.json)
      for i = #page, 1, -1 do table.insert(seen, 1, page[i]) end
      cursor = r.json[1].id
    end
    assert.are.same({ 10, 10, 4, 0 }, pages)
    assert.are.same({ table.unpack(all, 1, 24) }, seen)
    -- the first backward page is exactly the 10 sessions above the oldest
    assert.are.same({ table.unpack(all, 15, 24) },
      ids(list(srv, p, "limit=10&ending_before=" .. all[25]).json))
  end)

  it("answers an empty array past the end and before the start", function()
    local r = list(srv, p, "starting_after=" .. all[#all])
    assert.are.equal(200, r.status)
    assert.matches("^%s*%[%s*%]%s*$", r.body)
    r = list(srv, p, "ending_before=" .. all[1])
    assert.are.equal(200, r.status)
    assert.matches("^%s*%[%s*%]%s*$", r.body)
  end)

  it("refuses both cursors at once", function()
    assert_error(list(srv, p, "starting_after=" .. all[5] .. "&ending_before=" .. all[1]),
      400, "invalid_input")
  end)

  it("refuses an unknown cursor and another tenant's session as cursor", function()
    assert_error(list(srv, p, "starting_after=hps_" .. ("Q"):rep(24)), 400, "invalid_input",
      "starting_after")
    assert_error(list(srv, p, "ending_before=hps_" .. ("Q"):rep(24)), 400, "invalid_input",
      "ending_before")
    assert_error(list(srv, other, "starting_after=" .. all[1]), 400, "invalid_input",
      "starting_after")
  end)

  it("filters by contractor, with paging", function()
    local want = by_contractor[c2.id]
    assert.are.equal(8, #want)
    assert.are.same(want, ids(list(srv, p, "contractor=" .. c2.id .. "&limit=100").json))
    local first = ids(list(srv, p, "contractor=" .. c2.id .. "&limit=5").json)
    assert.are.same({ table.unpack(want, 1, 5) }, first)
    local second = ids(list(srv, p, "contractor=" .. c2.id .. "&limit=5&starting_after=" .. first[5]).json)
    assert.are.same({ table.unpack(want, 6, 8) }, second)
    assert.are.same({ table.unpack(by_contractor[p.contractor.id], 1, 10) },
      ids(list(srv, p, "contractor=" .. p.contractor.id).json))
  end)

  it("lists nothing for another tenant's contractor", function()
    local r = list(srv, other, "contractor=" .. c2.id)
    assert.are.equal(200, r.status)
    assert.matches("^%s*%[%s*%]%s*$", r.body)
  end)

  it("lists nothing for a malformed contractor, but still checks the cursors", function()
    local r = list(srv, p, "contractor=bad!")
    assert.are.equal(200, r.status)
    assert.matches("^%s*%[%s*%]%s*$", r.body)
    assert_error(list(srv, p, "contractor=bad!&starting_after=hps_" .. ("Q"):rep(24)), 400,
      "invalid_input", "starting_after")
    assert_error(list(srv, p, "contractor=" .. ("c"):rep(300) .. "&starting_after=zz%21"), 400,
      "invalid_input", "starting_after")
    assert_error(list(srv, p, "contractor=bad!&starting_after=" .. c2.id ..
      "&ending_before=" .. c2.id), 400, "invalid_input", "ending_before")
  end)

  it("lists only the caller's sessions", function()
    local r = list(srv, other, "limit=100")
    assert.are.equal(200, r.status)
    assert.matches("^%s*%[%s*%]%s*$", r.body)
  end)

  it("filters by status", function()
    local pending = list(srv, s, "status=pending")
    assert.are.equal(200, pending.status)
    assert.are.equal(2, #pending.json)
    for _, sess in ipairs(pending.json) do assert.are.equal("pending", sess.status) end
    local cancelled = list(srv, s, "status=cancelled")
    assert.are.same({ cancelled_id }, ids(cancelled.json))
    assert.are.equal("cancelled", cancelled.json[1].status)
    local expired = list(srv, s, "status=expired")
    assert.are.equal(200, expired.status)
    assert.matches("^%s*%[%s*%]%s*$", expired.body)
  end)

  it("refuses an unknown status with 400 param status", function()
    assert_error(list(srv, s, "status=bogus"), 400, "invalid_input", "status")
    assert_error(list(srv, s, "status=PENDING"), 400, "invalid_input", "status")
  end)
end)

describe("POST /api/v1/payment/sessions/{id}/cancel", function()
  local srv, t, other

  setup(function() srv, t, other = h.start_with_tenants(nil, "Acme", "Other") end)
  teardown(function() srv:stop() end)

  it("cancels a pending session: 200, status cancelled, cancelled_at set", function()
    local sess = srv:new_session(t)
    local before = os.time()
    local r = srv:post(t.key.secret, SESSIONS .. "/" .. sess.id .. "/cancel")
    assert.are.equal(200, r.status, r.body)
    assert.matches("^application/json", r.headers["content-type"] or "")
    assert.are.equal(sess.id, r.json.id)
    assert.are.equal("cancelled", r.json.status)
    assert.are.equal("number", type(r.json.cancelled_at))
    assert.is_true(r.json.cancelled_at >= sess.created and r.json.cancelled_at <= before + 5)
    assert.are.equal(cjson.null, r.json.completed_at)
    assert.are.equal(cjson.null, r.json.url)
    local g = srv:get(t.key.secret, SESSIONS .. "/" .. sess.id)
    assert.are.equal("cancelled", g.json.status)
    assert.are.equal(r.json.cancelled_at, g.json.cancelled_at)
  end)

  it("answers 409 session_not_pending to a second cancel", function()
    local sess = srv:new_session(t)
    assert.are.equal(200, srv:post(t.key.secret, SESSIONS .. "/" .. sess.id .. "/cancel").status)
    assert_error(srv:post(t.key.secret, SESSIONS .. "/" .. sess.id .. "/cancel"), 409,
      "session_not_pending")
  end)

  it("answers 404 across tenants, identical to an unknown id, and changes nothing", function()
    local sess = srv:new_session(t)
    local foreign = srv:post(other.key.secret, SESSIONS .. "/" .. sess.id .. "/cancel")
    local unknown = srv:post(other.key.secret, SESSIONS .. "/hps_" .. ("Y"):rep(24) .. "/cancel")
    assert.are.equal(404, foreign.status)
    assert.are.equal(404, unknown.status)
    assert.are.equal(unknown.body, foreign.body)
    assert.are.equal("pending", srv:get(t.key.secret, SESSIONS .. "/" .. sess.id).json.status)
  end)

  it("needs a valid API key", function()
    local sess = srv:new_session(t)
    assert_error(srv:post(nil, SESSIONS .. "/" .. sess.id .. "/cancel"), 403, "invalid_api_key")
    assert.are.equal("pending", srv:get(t.key.secret, SESSIONS .. "/" .. sess.id).json.status)
  end)
end)

-- A TTL long enough that no session expires on a slow machine before the
-- test moves the clock past it.
describe("sessions past expires_at read as expired (ttl 60 s, the clock moved 61 s)", function()
  local srv, t, idle, to_cancel, cancelled

  setup(function()
    srv, t = h.start_with_tenants({ test_clock = true, args = { "--session-ttl", "60" } }, "Acme")
    idle = srv:new_session(t)
    to_cancel = srv:new_session(t)
    cancelled = srv:new_session(t)
    assert.are.equal(200, srv:post(t.key.secret, SESSIONS .. "/" .. cancelled.id .. "/cancel").status)
    srv:advance(61)
  end)
  teardown(function() srv:stop() end)

  it("sets expires_at to created + ttl", function()
    assert.are.equal(idle.created + 60, idle.expires_at)
  end)

  it("reads expired on GET", function()
    local r = srv:get(t.key.secret, SESSIONS .. "/" .. idle.id)
    assert.are.equal(200, r.status)
    assert.are.equal("expired", r.json.status)
    assert.are.equal(cjson.null, r.json.cancelled_at)
    assert.are.equal(cjson.null, r.json.completed_at)
  end)

  it("keeps a session cancelled before expiry cancelled", function()
    assert.are.equal("cancelled", srv:get(t.key.secret, SESSIONS .. "/" .. cancelled.id).json.status)
  end)

  it("is found by ?status=expired and not by ?status=pending", function()
    local expired = list(srv, t, "status=expired")
    assert.are.equal(200, expired.status)
    local found = {}
    for _, sess in ipairs(expired.json) do
      assert.are.equal("expired", sess.status)
      found[sess.id] = true
    end
    assert.is_true(found[idle.id])
    assert.is_true(found[to_cancel.id])
    assert.is_nil(found[cancelled.id])
    local pending = list(srv, t, "status=pending")
    assert.are.equal(200, pending.status)
    assert.matches("^%s*%[%s*%]%s*$", pending.body)
    for _, sess in ipairs(list(srv, t).json) do
      assert.are_not.equal("pending", sess.status)
    end
  end)

  it("answers 409 session_expired to cancel, and stays expired", function()
    assert_error(srv:post(t.key.secret, SESSIONS .. "/" .. to_cancel.id .. "/cancel"), 409,
      "session_expired")
    local g = srv:get(t.key.secret, SESSIONS .. "/" .. to_cancel.id)
    assert.are.equal("expired", g.json.status)
    assert.are.equal(cjson.null, g.json.cancelled_at)
  end)
end)
