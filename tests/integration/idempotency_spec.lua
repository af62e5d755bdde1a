-- Idempotent creates: replays, conflicts, tenant scoping and races on one key.
local h = require("helpers.server")
local socket = require("socket")
local cjson = h.json

local SESSIONS = "/api/v1/payment/sessions"

local function keys_of(t)
  local k = {}
  for name in pairs(t) do k[#k + 1] = name end
  table.sort(k)
  return k
end

-- Read one HTTP/1.1 response from a connected socket.
local function read_response(c)
  local line, err = c:receive("*l")
  if not line then return { error = err } end
  local res = { status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)")), headers = {} }
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    res.headers[k:lower()] = v
  end
  local len = tonumber(res.headers["content-length"] or "")
  res.body = len and (len > 0 and assert(c:receive(len)) or "") or (c:receive("*a") or "")
  if (res.headers["content-type"] or ""):find("application/json", 1, true) and #res.body > 0 then
    res.json = cjson.decode(res.body)
  end
  return res
end

for _, header in ipairs({ "Idempotency-Key", "Ten99Policy-Idempotent-Key" }) do
  describe("POST /api/v1/payment/sessions: idempotency with " .. header, function()
    local srv, t, other

    setup(function()
      srv = h.start()
      t = h.tenant(srv.db, "Acme", { "app.example.com" })
      other = h.tenant(srv.db, "Other", { "app.example.com" })
    end)
    teardown(function() srv:stop() end)

    local function body(who, fields)
      local b = { contractor = who.contractor.id, return_url = "https://app.example.com/done" }
      for k, v in pairs(fields or {}) do b[k] = v end
      return cjson.encode(b)
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
      assert.are.same(keys_of(first.json), keys_of(again.json))
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
      assert.are.equal(409, r.status)
      assert.matches("^application/json", r.headers["content-type"] or "")
      assert.are.equal("idempotency_key_reused", r.json.error_code)
      assert.is_string(r.json.message)
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
        local r = read_response(c)
        c:close()
        assert.are.equal(201, r.status, tostring(r.body or r.error))
        ids[r.json.id] = true
        if r.json.url ~= cjson.null then urls = urls + 1 end
        if r.headers["idempotent-replayed"] == "true" then replayed = replayed + 1 end
      end
      assert.are.equal(1, #keys_of(ids))
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
      assert.are.equal(400, r.status)
      assert.matches("^application/json", r.headers["content-type"] or "")
      assert.are.equal("invalid_request", r.json.error_code)
    end)
  end)
end
