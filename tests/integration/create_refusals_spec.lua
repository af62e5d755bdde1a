-- POST /api/v1/payment/sessions: every refusal of SPEC §3's table, through
-- the real binary and raw HTTP.
local h = require("helpers.server")
local socket = require("socket")
local cjson = h.json

local FIXTURES = h.root .. "/tests/fixtures/"
local SESSIONS = "/api/v1/payment/sessions"

-- One raw exchange like h.request, with a read timeout; status is nil when
-- no response came (timeout, reset).
local function exchange(port, data, timeout)
  local c = assert(socket.tcp())
  c:settimeout(timeout or 10)
  assert(c:connect("127.0.0.1", port))
  local ok, serr = c:send(data)
  local res = h.read_response(c, true)
  c:close()
  if not res.headers then
    return { error = res.error or serr, sent = ok }
  end
  return res
end

local function raw_post(port, headers, body)
  local lines = { "POST " .. SESSIONS .. " HTTP/1.1", "Host: 127.0.0.1:" .. port,
    "Connection: close" }
  for _, kv in ipairs(headers) do lines[#lines + 1] = kv end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local assert_error = h.assert_error
local valid = h.session_body

describe("POST /api/v1/payment/sessions: invalid_input", function()
  local srv, t

  setup(function() srv, t = h.start_with_tenants(nil, "Acme") end)
  teardown(function() srv:stop() end)

  local function post(ctype, body)
    local hdr = { Authorization = "Bearer " .. t.key.secret }
    if ctype then hdr["Content-Type"] = ctype end
    return srv:request({ method = "POST", path = SESSIONS, headers = hdr, body = body })
  end

  it("accepts the valid body (control), charset parameter and unknown fields", function()
    assert.are.equal(201, post("application/json", cjson.encode(valid(t))).status)
    assert.are.equal(201, post("application/json; charset=utf-8", cjson.encode(valid(t))).status)
    local r = post("application/json", '{"contractor":"' .. t.contractor.id ..
      '","return_url":"https://app.example.com/done","extra":{"a":[[1,2]],"b":null}}')
    assert.are.equal(201, r.status)
  end)

  it("refuses Content-Type text/plain", function()
    assert_error(post("text/plain", cjson.encode(valid(t))), 400, "invalid_input")
  end)

  it("refuses Content-Type application/jsonp and application/x-www-form-urlencoded", function()
    assert_error(post("application/jsonp", cjson.encode(valid(t))), 400, "invalid_input")
    assert_error(post("application/x-www-form-urlencoded", "contractor=" .. t.contractor.id ..
      "&return_url=https%3A%2F%2Fapp.example.com%2F"), 400, "invalid_input")
  end)

  it("refuses a request without Content-Type", function()
    assert_error(post(nil, cjson.encode(valid(t))), 400, "invalid_input")
  end)

  it("refuses a body that is not JSON", function()
    assert_error(post("application/json", "contractor=" .. t.contractor.id), 400, "invalid_input")
    assert_error(post("application/json", '{"contractor":"' .. t.contractor.id .. '",'),
      400, "invalid_input")
  end)

  it("refuses an empty body", function()
    assert_error(post("application/json", ""), 400, "invalid_input")
    assert_error(post("application/json", nil), 400, "invalid_input")
  end)

  it("refuses a JSON array, string, number or null instead of an object", function()
    assert_error(post("application/json", "[" .. cjson.encode(valid(t)) .. "]"), 400, "invalid_input")
    assert_error(post("application/json", '"' .. t.contractor.id .. '"'), 400, "invalid_input")
    assert_error(post("application/json", "42"), 400, "invalid_input")
    assert_error(post("application/json", "null"), 400, "invalid_input")
  end)

  it("refuses nesting deeper than 16 levels", function()
    local b = '{"contractor":"' .. t.contractor.id ..
      '","return_url":"https://app.example.com/done","a":' .. ("["):rep(40) .. ("]"):rep(40) .. "}"
    assert_error(post("application/json", b), 400, "invalid_input")
  end)


  it("refuses a duplicated key", function()
    local b = '{"contractor":"' .. t.contractor.id .. '","contractor":"cn_other",' ..
      '"return_url":"https://app.example.com/done"}'
    assert_error(post("application/json", b), 400, "invalid_input")
    b = '{"return_url":"https://evil.com/","contractor":"' .. t.contractor.id ..
      '","return_url":"https://app.example.com/done"}'
    assert_error(post("application/json", b), 400, "invalid_input")
  end)

  it("refuses a duplicated unknown key too", function()
    local b = '{"x":1,"contractor":"' .. t.contractor.id ..
      '","return_url":"https://app.example.com/done","x":2}'
    assert_error(post("application/json", b), 400, "invalid_input")
  end)

  it("refuses a missing contractor with param contractor", function()
    assert_error(post("application/json", '{"return_url":"https://app.example.com/done"}'),
      400, "invalid_input", "contractor")
    assert_error(post("application/json", '{"contractor":null,"return_url":"https://app.example.com/done"}'),
      400, "invalid_input", "contractor")
  end)

  it("refuses a missing return_url with param return_url", function()
    assert_error(post("application/json", '{"contractor":"' .. t.contractor.id .. '"}'),
      400, "invalid_input", "return_url")
  end)

  it("refuses contractor as a number", function()
    assert_error(post("application/json", '{"contractor":12345,"return_url":"https://app.example.com/done"}'),
      400, "invalid_input", "contractor")
  end)

  it("refuses return_url as an object", function()
    assert_error(post("application/json", '{"contractor":"' .. t.contractor.id ..
      '","return_url":{"href":"https://app.example.com/done"}}'), 400, "invalid_input", "return_url")
    assert_error(post("application/json", '{"contractor":"' .. t.contractor.id ..
      '","return_url":["https://app.example.com/done"]}'), 400, "invalid_input", "return_url")
  end)

  it("refuses invalid UTF-8 bytes inside a JSON string", function()
    local b = '{"contractor":"' .. t.contractor.id .. '","return_url":"https://app.example.com/\xff"}'
    assert_error(post("application/json", b), 400, "invalid_input")
    b = '{"contractor":"' .. t.contractor.id .. '\xc0\xaf","return_url":"https://app.example.com/done"}'
    assert_error(post("application/json", b), 400, "invalid_input")
    b = '{"contractor":"' .. t.contractor.id .. '","return_url":"https://app.example.com/done","n":"\xed\xa0\x80"}'
    assert_error(post("application/json", b), 400, "invalid_input")
  end)

  it("refuses a \\u0000 inside a string", function()
    local b = '{"contractor":"' .. t.contractor.id .. '\\u0000x","return_url":"https://app.example.com/done"}'
    assert_error(post("application/json", b), 400, "invalid_input")
    b = '{"contractor":"' .. t.contractor.id .. '","return_url":"https://app.example.com/done\\u0000.evil.com"}'
    assert_error(post("application/json", b), 400, "invalid_input")
  end)
end)

-- A few KB of brackets must be refused like 40 levels, not crash the server;
-- one server per depth so that one crash does not hide the other result.
for _, depth in ipairs({ 1000, 20000 }) do
  describe("POST /api/v1/payment/sessions: hostile nesting of " .. depth .. " levels", function()
    local srv, t

    setup(function() srv, t = h.start_with_tenants(nil, "Acme") end)
    teardown(function() srv:stop() end)

    it("is refused with 400 invalid_input and the server stays up", function()
      local b = '{"contractor":"' .. t.contractor.id ..
        '","return_url":"https://app.example.com/done","a":' ..
        ("["):rep(depth) .. ("]"):rep(depth) .. "}"
      local r = exchange(srv.port, raw_post(srv.port, { "Authorization: Bearer " .. t.key.secret,
        "Content-Type: application/json" }, b), 5)
      assert_error(r, 400, "invalid_input")
      assert.are.equal(201, srv:create_for(t).status)
    end)
  end)
end

describe("POST /api/v1/payment/sessions: body size", function()
  local srv, t

  setup(function() srv, t = h.start_with_tenants(nil, "Acme") end)
  teardown(function() srv:stop() end)

  local function padded(n)
    local b = cjson.encode(valid(t, { pad = "" }))
    return (b:gsub('"pad":""', '"pad":"' .. ("x"):rep(n - #b) .. '"'))
  end

  local function assert_too_big(r)
    assert.is_truthy(r.status == 413 or r.status == 400, "status " .. tostring(r.status) ..
      " " .. tostring(r.error))
    assert_error(r, r.status, "invalid_input")
  end

  it("accepts a 60000-byte body (under 64 KiB)", function()
    local b = padded(60000)
    assert.are.equal(60000, #b)
    assert.are.equal(201, srv:create(t.key.secret, b).status)
  end)

  it("refuses a body over 64 KiB with invalid_input and stays healthy", function()
    local b = padded(70000)
    assert_too_big(srv:create(t.key.secret, b))
    assert.are.equal(201, srv:create_for(t).status)
  end)

  it("refuses a body of 65537 bytes", function()
    assert_too_big(srv:create(t.key.secret, padded(65537)))
    assert.are.equal(201, srv:create_for(t).status)
  end)

  it("closes the connection after a 413, not reading the rest of the declared body",
    function()
      local c = assert(socket.tcp())
      c:settimeout(5)
      assert(c:connect("127.0.0.1", srv.port))
      assert(c:send("POST " .. SESSIONS .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
        "Authorization: Bearer " .. t.key.secret .. "\r\nContent-Type: application/json\r\n" ..
        "Content-Length: 1000000000\r\n\r\n" .. ("x"):rep(100000)))
      local r = h.read_response(c)
      assert_error(r, 413, "invalid_input")
      -- a server that went on reading would take all 10^9 bytes
      local more, chunk = 0, ("y"):rep(65536)
      while more < 64 * 1024 * 1024 do
        local ok = c:send(chunk)
        if not ok then break end
        more = more + #chunk
      end
      c:close()
      assert.is_true(more < 64 * 1024 * 1024, ("the server read %d more bytes"):format(more))
      assert.are.equal(201, srv:create_for(t).status)
    end)

  it("refuses a body that ends before its Content-Length, whole as it may look", function()
    local body = cjson.encode(valid(t))
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", srv.port))
    assert(c:send("POST " .. SESSIONS .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
      "Authorization: Bearer " .. t.key.secret .. "\r\nContent-Type: application/json\r\n" ..
      "Content-Length: " .. (#body + 50) .. "\r\n\r\n" .. body))
    c:shutdown("send") -- the client gives up: the rest never comes
    local r = h.read_response(c)
    c:close()
    assert_error(r, 400, "invalid_input")
    assert.are.equal(201, srv:create_for(t).status)
  end)

  it("refuses a chunked body over 64 KiB and stays healthy", function()
    local b = padded(70000)
    local chunks = {}
    for i = 1, #b, 8192 do
      local part = b:sub(i, i + 8191)
      chunks[#chunks + 1] = ("%x\r\n%s\r\n"):format(#part, part)
    end
    local data = "POST " .. SESSIONS .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. srv.port ..
      "\r\nConnection: close\r\nAuthorization: Bearer " .. t.key.secret ..
      "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" ..
      table.concat(chunks) .. "0\r\n\r\n"
    assert_too_big(exchange(srv.port, data, 10))
    assert.are.equal(201, srv:create_for(t).status)
  end)
end)

describe("POST /api/v1/payment/sessions: invalid_return_url", function()
  local srv, t, empty

  setup(function()
    srv, t = h.start_with_tenants(nil, "Acme")
    empty = h.tenant(srv.db, "NoHosts", {})
  end)
  teardown(function() srv:stop() end)

  local function refused(url, who)
    who = who or t
    assert_error(srv:create_for(who, { return_url = url }),
      400, "invalid_return_url", "return_url")
  end

  it("accepts https on the allowlisted host (control)", function()
    local r = srv:create_for(t, { return_url = "https://app.example.com/done?x=1&y=%20" })
    assert.are.equal(201, r.status)
    assert.are.equal("https://app.example.com/done?x=1&y=%20", r.json.return_url)
  end)

  it("accepts a port on the allowed host (example policy compares the host only)", function()
    assert.are.equal(201, srv:create_for(t, { return_url = "https://app.example.com:8443/done" }).status)
  end)

  it("accepts an upper-case scheme and host (lower-cased before the policy)", function()
    assert.are.equal(201, srv:create_for(t, { return_url = "HTTPS://APP.Example.COM/done" }).status)
  end)

  it("refuses http:// by policy", function() refused("http://app.example.com/done") end)
  it("refuses another scheme", function() refused("javascript://app.example.com/%0aalert(1)") end)
  it("refuses a host not on the allowlist", function() refused("https://evil.com/done") end)
  it("refuses the suffix trick", function() refused("https://app.example.com.evil.net/") end)
  it("refuses a host that merely ends with the allowed one", function()
    refused("https://evil-app.example.com")
    refused("https://x.app.example.com/")
  end)
  it("refuses the parent domain of the allowed host", function() refused("https://example.com/") end)
  it("refuses userinfo", function()
    refused("https://app.example.com@evil.com/")
    refused("https://user:pass@app.example.com/")
  end)
  it("refuses a fragment", function() refused("https://app.example.com/done#x") end)
  it("refuses an empty fragment", function() refused("https://app.example.com/#") end)
  it("refuses a backslash", function()
    refused("https://app.example.com\\@evil.com")
    refused("https://app.example.com\\evil.com/")
  end)
  it("refuses a tab, newline or space inside", function()
    refused("https://app.example.com/do\tne")
    refused("https://app.exa\tmple.com/")
    refused("https://app.example.com/\nx")
    refused("https://app.example.com/ x")
  end)
  it("refuses a URL over 2048 bytes", function()
    refused("https://app.example.com/" .. ("a"):rep(2048))
  end)
  it("accepts a URL of exactly 2048 bytes", function()
    local u = "https://app.example.com/"
    u = u .. ("a"):rep(2048 - #u)
    local r = srv:create_for(t, { return_url = u })
    assert.are.equal(201, r.status)
    assert.are.equal(u, r.json.return_url)
  end)
  it("refuses https: without //", function()
    refused("https:app.example.com")
    refused("https:/app.example.com/")
    refused("//app.example.com/")
  end)
  it("refuses a non-ASCII host", function()
    refused("https://äpp.example.com/")
    refused("https://app.example.com\u{3002}evil.com/")
  end)
  it("refuses an empty or malformed host", function()
    refused("https:///done")
    refused("https://app.example.com:99999/")
    refused("https://app..example.com/")
  end)
  it("refuses everything for a tenant without redirect hosts", function()
    refused("https://app.example.com/done", empty)
  end)
end)

describe("POST /api/v1/payment/sessions: invalid_api_key", function()
  local srv, t

  setup(function() srv, t = h.start_with_tenants(nil, "Acme") end)
  teardown(function() srv:stop() end)

  local function with_auth(value)
    local hdr = { ["Content-Type"] = "application/json" }
    if value then hdr.Authorization = value end
    return srv:request({ method = "POST", path = SESSIONS, headers = hdr, body = cjson.encode(valid(t)) })
  end

  it("accepts the tenant's key (control)", function()
    assert.are.equal(201, with_auth("Bearer " .. t.key.secret).status)
  end)

  it("refuses a request without Authorization", function()
    assert_error(with_auth(nil), 403, "invalid_api_key")
  end)

  it("refuses Basic credentials", function()
    assert_error(with_auth("Basic xxx"), 403, "invalid_api_key")
    assert_error(with_auth("Basic " .. t.key.secret), 403, "invalid_api_key")
  end)

  it("refuses an empty Bearer", function()
    assert_error(with_auth("Bearer "), 403, "invalid_api_key")
    assert_error(with_auth("Bearer"), 403, "invalid_api_key")
  end)

  it("refuses the secret without the Bearer scheme", function()
    assert_error(with_auth(t.key.secret), 403, "invalid_api_key")
  end)

  it("refuses an unknown secret and a truncated or extended real one", function()
    assert_error(with_auth("Bearer hf_live_" .. ("A"):rep(43)), 403, "invalid_api_key")
    assert_error(with_auth("Bearer " .. t.key.secret:sub(1, -2)), 403, "invalid_api_key")
    assert_error(with_auth("Bearer " .. t.key.secret .. "x"), 403, "invalid_api_key")
  end)

  it("refuses a 10 KB header value", function()
    assert_error(with_auth("Bearer " .. ("a"):rep(10240)), 403, "invalid_api_key")
    assert_error(with_auth("Bearer " .. t.key.secret .. ("a"):rep(10240)), 403, "invalid_api_key")
  end)

  it("refuses a key revoked while the server runs, at once, and identically to an unknown one", function()
    local k = h.cli_json(srv.db, "key", "create", t.id, "--json")
    -- every worker thread (8) has likely answered for the key, and each
    -- remembers keys (access_cache.h): none may go on accepting it
    for _ = 1, 24 do assert.are.equal(201, with_auth("Bearer " .. k.secret).status) end
    local _, rc, err = h.cli(srv.db, "key", "revoke", k.id)
    assert.are.equal(0, rc, err)
    for _ = 1, 24 do assert_error(with_auth("Bearer " .. k.secret), 403, "invalid_api_key") end
    local revoked = with_auth("Bearer " .. k.secret)
    local unknown = with_auth("Bearer hf_live_" .. ("B"):rep(43))
    assert_error(unknown, 403, "invalid_api_key")
    assert.are.equal(unknown.body, revoked.body)
    -- the tenant's other key is unaffected
    assert.are.equal(201, with_auth("Bearer " .. t.key.secret).status)
  end)

  -- INSERT OR REPLACE deletes the old row without DELETE triggers: the
  -- access generation must move all the same (migration 7)
  it("refuses at once a key revoked by an SQL INSERT OR REPLACE #sqlite_only", function()
    local k = h.cli_json(srv.db, "key", "create", t.id, "--json")
    for _ = 1, 24 do assert.are.equal(201, with_auth("Bearer " .. k.secret).status) end
    h.sql(srv.db, "INSERT OR REPLACE INTO api_keys (id, tenant_id, mode, prefix, secret_hash, "
      .. "created, revoked_at) SELECT id, tenant_id, mode, prefix, secret_hash, created, 1 "
      .. "FROM api_keys WHERE id = '" .. k.id .. "'")
    for _ = 1, 24 do assert_error(with_auth("Bearer " .. k.secret), 403, "invalid_api_key") end
  end)
end)

describe("POST /api/v1/payment/sessions: invalid_contractor_id and idempotency_key_reused", function()
  local srv, t, other

  setup(function() srv, t, other = h.start_with_tenants(nil, "Acme", "Other") end)
  teardown(function() srv:stop() end)

  it("answers 404 for a 300-character contractor id, identical to an unknown one", function()
    local long = srv:create_for(t, { contractor = "cn_" .. ("a"):rep(297) })
    local unknown = srv:create_for(t, { contractor = "cn_doesnotexist000000000000" })
    local foreign = srv:create_for(t, { contractor = other.contractor.id })
    assert_error(long, 404, "invalid_contractor_id")
    assert_error(unknown, 404, "invalid_contractor_id")
    assert.are.equal(unknown.body, long.body)
    assert.are.equal(unknown.body, foreign.body)
  end)

  it("refuses at once a contractor moved to another tenant by an SQL INSERT OR REPLACE #sqlite_only",
    function()
      local c = h.cli_json(srv.db, "contractor", "create", t.id, "--json")
      for _ = 1, 24 do assert.are.equal(201, srv:create_for(t, { contractor = c.id }).status) end
      h.sql(srv.db, "INSERT OR REPLACE INTO contractors (id, tenant_id, name, created) "
        .. "SELECT id, '" .. other.id .. "', name, created FROM contractors WHERE id = '" .. c.id .. "'")
      for _ = 1, 24 do
        assert_error(srv:create_for(t, { contractor = c.id }), 404, "invalid_contractor_id")
      end
    end)

  it("answers 409 idempotency_key_reused for one key with two bodies", function()
    local hdr = { ["Idempotency-Key"] = "refusals-409" }
    local first = srv:create_for(t, nil, hdr)
    assert.are.equal(201, first.status)
    local again = srv:create_for(t, { return_url = "https://app.example.com/other" }, hdr)
    assert_error(again, 409, "idempotency_key_reused")
  end)
end)

-- Policies that fail: each request must answer 500 policy_error (never 201,
-- never a hang) and the server must keep answering.
local failing = {
  { file = "policy_raises.lua", what = "raises an error" },
  { file = "policy_loops.lua", what = "loops forever" },
  { file = "policy_pcall_loop.lua", what = "loops forever around pcall" },
  { file = "policy_bad_return.lua", what = "returns a string instead of a boolean" },
  { file = "policy_memory.lua", what = "allocates without bound" },
  { file = "policy_pattern.lua", what = "runs a catastrophic pattern" },
}

for _, case in ipairs(failing) do
  describe("POST /api/v1/payment/sessions: policy_error when check_return_url " .. case.what, function()
    local srv, t

    setup(function() srv, t = h.start_with_tenants({ policy = FIXTURES .. case.file }, "Acme") end)
    teardown(function() srv:stop() end)

    local function create()
      return exchange(srv.port, raw_post(srv.port, { "Authorization: Bearer " .. t.key.secret,
        "Content-Type: application/json" }, cjson.encode(valid(t))), 3)
    end

    it("fails closed with 500 policy_error, and the next requests still answer", function()
      local r = create()
      assert.is_not_nil(r.status, "no response within 3 s: " .. tostring(r.error))
      assert_error(r, 500, "policy_error")
      r = create()
      assert.is_not_nil(r.status, "second request: no response within 3 s: " .. tostring(r.error))
      assert_error(r, 500, "policy_error")
      local list = srv:get(t.key.secret, SESSIONS)
      assert.are.equal(200, list.status)
      assert.are.equal("[]", list.body)
      assert.is_true(srv:alive())
    end)
  end)
end

describe("POST /api/v1/payment/sessions: check_tenant refusals", function()
  local srv, limited, s200, s999, allowed

  setup(function()
    srv, limited, s200, s999, allowed = h.start_with_tenants({ policy = FIXTURES .. "policy_tenant.lua" },
      "Limited", "Status200", "Status999", "Allowed")
  end)
  teardown(function() srv:stop() end)

  it("lets an allowed tenant create (control)", function()
    assert.are.equal(201, srv:create_for(allowed).status)
  end)

  it("answers the policy's 429 with its code and message", function()
    local r = srv:create_for(limited)
    assert_error(r, 429, "rate_limit")
    assert.are.equal("slow down", r.json.message)
  end)

  it("falls back to 403 when the policy asks for status 200", function()
    local r = srv:create_for(s200)
    assert_error(r, 403, "paused")
    assert.are.equal("tenant paused", r.json.message)
  end)

  it("falls back to 403 when the policy asks for status 999", function()
    local r = srv:create_for(s999)
    assert_error(r, 403, "paused")
  end)
end)

describe("/api/v1: methods and unknown paths", function()
  local srv, t

  setup(function() srv, t = h.start_with_tenants(nil, "Acme") end)
  teardown(function() srv:stop() end)

  local function req(method, path)
    return srv:request({ method = method, path = path,
      headers = { Authorization = "Bearer " .. t.key.secret } })
  end

  it("answers 405 with a JSON error to DELETE on the collection", function()
    local r = req("DELETE", SESSIONS)
    assert.are.equal(405, r.status)
    assert.matches("^application/json", r.headers["content-type"] or "")
    assert.is_string(r.json.error_code)
    assert.is_string(r.json.message)
  end)

  it("answers 405 to PUT on a session and GET on cancel", function()
    local s = srv:create_for(t)
    assert.are.equal(405, req("PUT", SESSIONS .. "/" .. s.json.id).status)
    assert.are.equal(405, req("GET", SESSIONS .. "/" .. s.json.id .. "/cancel").status)
  end)

  it("answers 404 JSON to an unknown path", function()
    local r = req("GET", "/api/v1/nope")
    assert.are.equal(404, r.status)
    assert.matches("^application/json", r.headers["content-type"] or "")
    assert.is_string(r.json.error_code)
    r = req("POST", SESSIONS .. "/x/y/z")
    assert.are.equal(404, r.status)
    assert.matches("^application/json", r.headers["content-type"] or "")
  end)
end)
