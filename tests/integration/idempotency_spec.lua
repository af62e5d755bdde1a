-- Idempotent creates: replays, conflicts, tenant scoping and races on one key.
local h = require("helpers.server")
local socket = require("socket")
local cjson = h.json

local SESSIONS = "/api/v1/payment/sessions"

for _, header in ipairs({ "Idempotency-Key", "Ten99Policy-Idempotent-Key" }) do
  describe("POST /api/v1/payment/sessions: idempotency with " .. header, function()
    local srv, t, other

    setup(function() srv, t, other = h.start_with_tenants(nil, "Acme", "Other") end)
    teardown(function() srv:stop() end)

    local function body(who, fields)
      return cjson.encode(h.session_body(who, fields))
    end

    local function create(who, key, b)
      return srv:create(who.key.secret, b or body(who), { [header] = key })
    end

    it("replays the same session for the same key and body, without the URL", function()
      local b = body(t)
      local first = create(t, "replay-1", b)
      assert.are.equal(201, first.status)
      assert.is_string(first.json.url)
      assert.is_nil(first.headers["idempotent-replayed"])
      local again = create(t, "replay-1", b)
      assert.are.equal(201, again.status)
      assert.are.equal("true", again.headers["idempotent-replayed"])
      assert.are.equal(first.json.id, again.json.id)
      assert.are.equal(cjson.null, again.json.url)
      assert.are.same(h.keys_of(first.json), h.keys_of(again.json))
      for k, v in pairs(first.json) do
        if k ~= "url" then assert.are.same(v, again.json[k], k) end
      end
      -- and a third time, still the same
      local third = create(t, "replay-1", b)
      assert.are.equal(first.json.id, third.json.id)
      assert.are.equal(cjson.null, third.json.url)
    end)

    it("creates distinct sessions for distinct keys", function()
      local a = create(t, "distinct-a")
      local b = create(t, "distinct-b")
      assert.are.equal(201, a.status)
      assert.are.equal(201, b.status)
      assert.are_not.equal(a.json.id, b.json.id)
      assert.is_string(b.json.url)
    end)

    it("answers 409 idempotency_key_reused for the same key with a different body", function()
      local first = create(t, "conflict-1")
      assert.are.equal(201, first.status)
      local r = create(t, "conflict-1", body(t, { return_url = "https://app.example.com/elsewhere" }))
      h.assert_error(r, 409, "idempotency_key_reused")
      -- the original still replays
      local again = create(t, "conflict-1")
      assert.are.equal(201, again.status)
      assert.are.equal(first.json.id, again.json.id)
    end)

    it("scopes keys to the tenant: another tenant's same key creates a new session", function()
      local mine = create(t, "shared-key")
      assert.are.equal(201, mine.status)
      local theirs = create(other, "shared-key")
      assert.are.equal(201, theirs.status)
      assert.are_not.equal(mine.json.id, theirs.json.id)
      assert.is_string(theirs.json.url)
      assert.is_nil(theirs.headers["idempotent-replayed"])
      assert.are.equal(other.contractor.id, theirs.json.contractor_id)
      -- and neither tenant can read the other's
      assert.are.equal(404, srv:get(other.key.secret, SESSIONS .. "/" .. mine.json.id).status)
    end)

    it("scopes keys to the mode: the tenant's test key does not replay its live key's", function()
      local live = create(t, "mode-key")
      assert.are.equal(201, live.status)
      local test = srv:create(t.test_key.secret, body(t), { [header] = "mode-key" })
      assert.are.equal(201, test.status)
      assert.are_not.equal(live.json.id, test.json.id)
      assert.is_nil(test.headers["idempotent-replayed"])
      assert.matches("/payment/setup/test_", test.json.url)
    end)

    it("gives exactly one session to 8 concurrent requests with one key", function()
      local b = body(t)
      local data = table.concat({ "POST " .. SESSIONS .. " HTTP/1.1",
        "Host: 127.0.0.1:" .. srv.port, "Connection: close",
        "Authorization: Bearer " .. t.key.secret, "Content-Type: application/json",
        header .. ": race-1", "Content-Length: " .. #b }, "\r\n") .. "\r\n\r\n" .. b
      local conns = {}
      for i = 1, 8 do
        local c = assert(socket.tcp())
        c:settimeout(10)
        assert(c:connect("127.0.0.1", srv.port))
        conns[i] = c
      end
      for _, c in ipairs(conns) do assert(c:send(data)) end
      local ids, urls, replayed = {}, 0, 0
      for _, c in ipairs(conns) do
        local r = h.read_response(c)
        c:close()
        assert.are.equal(201, r.status, tostring(r.body or r.error))
        ids[r.json.id] = true
        if r.json.url ~= cjson.null then urls = urls + 1 end
        if r.headers["idempotent-replayed"] == "true" then replayed = replayed + 1 end
      end
      assert.are.equal(1, #h.keys_of(ids))
      assert.are.equal(1, urls)
      assert.are.equal(7, replayed)
      local list = srv:get(t.key.secret, SESSIONS .. "?limit=100")
      local n = 0
      for _, s in ipairs(list.json) do
        if ids[s.id] then n = n + 1 end
      end
      assert.are.equal(1, n)
    end)

    it("accepts a 255-character key and refuses a 256-character one with 400", function()
      assert.are.equal(201, create(t, ("k"):rep(255)).status)
      local r = create(t, ("k"):rep(256))
      h.assert_error(r, 400, "invalid_input")
    end)
  end)
end
