-- Secrets stay secret: session tokens and API key secrets never reach the
-- database files or the log; every response is traceable by Request-Id.
local h = require("helpers.server")
local socket = require("socket")

local SESSIONS = "/api/v1/payment/sessions"

-- Everything hostflow keeps for db: the SQLite file, WAL and shm, or a
-- data dump of the PostgreSQL database.
local db_bytes = h.db_bytes

local function contains(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

describe("secrets: session tokens and API keys", function()
  local srv, t, tokens, session_ids, request_ids, responses

  -- request and remember its Request-Id
  local function track(r)
    responses[#responses + 1] = r
    if r.headers and r.headers["request-id"] then
      request_ids[#request_ids + 1] = r.headers["request-id"]
    end
    return r
  end

  -- wait until the log holds the lines of every tracked request (each is
  -- written after its response, by whichever worker served it)
  local function log_settled()
    local deadline = socket.gettime() + 3
    local function all_in(text)
      for _, id in ipairs(request_ids) do
        if not contains(text, id) then return false end
      end
      return true
    end
    local text = srv:log_text()
    while not all_in(text) and socket.gettime() < deadline do
      socket.sleep(0.05)
      text = srv:log_text()
    end
    return text
  end

  setup(function()
    srv, t = h.start_with_tenants(nil, "Acme")
    tokens, session_ids, request_ids, responses = {}, {}, {}, {}
    local body = h.session_body(t)
    for _ = 1, 3 do
      local r = track(srv:create(t.key.secret, body))
      assert.are.equal(201, r.status)
      tokens[#tokens + 1] = r.json.url:match("/payment/setup/live_([%w_-]+)$")
      session_ids[#session_ids + 1] = r.json.id
    end
    local first = track(srv:create(t.key.secret, body, { ["Idempotency-Key"] = "secret-replay" }))
    assert.are.equal(201, first.status)
    tokens[#tokens + 1] = first.json.url:match("/payment/setup/live_([%w_-]+)$")
    session_ids[#session_ids + 1] = first.json.id
    for _ = 1, 2 do
      local again = track(srv:create(t.key.secret, body, { ["Idempotency-Key"] = "secret-replay" }))
      assert.are.equal(201, again.status)
      assert.are.equal("true", again.headers["idempotent-replayed"])
    end
    local test = track(srv:create(t.test_key.secret, body))
    assert.are.equal(201, test.status)
    tokens[#tokens + 1] = test.json.url:match("/payment/setup/test_([%w_-]+)$")
    session_ids[#session_ids + 1] = test.json.id
    -- reads, lists and a cancel, so every statement has touched the files
    track(srv:get(t.key.secret, SESSIONS .. "/" .. session_ids[1]))
    track(srv:get(t.key.secret, SESSIONS .. "?limit=100"))
    track(srv:post(t.key.secret, SESSIONS .. "/" .. session_ids[2] .. "/cancel"))
    -- a browser (or a link scanner) opening the URLs
    track(srv:get(nil, "/payment/setup/live_" .. tokens[1]))
    track(srv:get(nil, "/payment/setup/live_" .. tokens[3] .. "?utm_source=mail"))
    track(srv:get(nil, "/payment/setup/test_" .. tokens[5]))
    track(srv:post(nil, "/payment/setup/live_" .. tokens[4], "x=1"))
    -- a bad key, a good key sent as the wrong scheme
    track(srv:request({ method = "GET", path = SESSIONS,
      headers = { Authorization = "Basic " .. t.key.secret } }))
  end)
  teardown(function() srv:stop() end)

  it("minted one 51-character token per created session", function()
    assert.are.equal(5, #tokens)
    local seen = {}
    for _, tok in ipairs(tokens) do
      assert.are.equal(51, #tok)
      assert.is_nil(seen[tok])
      seen[tok] = true
    end
  end)

  it("stores the sessions (control: the files read are the live database)", function()
    local bytes = db_bytes(srv.db)
    assert.is_true(#bytes > 0)
    for _, id in ipairs(session_ids) do
      assert.is_true(contains(bytes, id), "session id " .. id .. " not found in the database files")
    end
  end)

  it("never writes a token to hostflow.db, -wal or -shm", function()
    local bytes = db_bytes(srv.db)
    for _, tok in ipairs(tokens) do
      assert.is_false(contains(bytes, tok), "token found in the database files")
      -- not even a long piece of it; the first 8 characters are the time,
      -- not secret, and lead the lookup key; the 43 after them are secret
      assert.is_false(contains(bytes, tok:sub(1, 20)), "token prefix found in the database files")
      assert.is_false(contains(bytes, tok:sub(9)), "secret part found in the database files")
      assert.is_false(contains(bytes, tok:sub(9, 20)), "secret piece found in the database files")
    end
  end)

  it("never writes an API key secret to the database files", function()
    local bytes = db_bytes(srv.db)
    for _, key in ipairs({ t.key, t.test_key }) do
      assert.is_false(contains(bytes, key.secret), "key secret found in the database files")
      local random = key.secret:match("^hf_%a+_(.+)$")
      assert.is_false(contains(bytes, random), "random part of the key found in the database")
    end
  end)

  it("never logs a token, not even for GETs of the session URL", function()
    local log = log_settled()
    assert.is_true(#log > 0)
    for _, tok in ipairs(tokens) do
      assert.is_false(contains(log, tok), "token found in the server log")
      assert.is_false(contains(log, tok:sub(1, 16)), "token prefix found in the server log")
    end
    -- the URL GETs were logged, redacted
    assert.is_true(contains(log, "/payment/setup/"))
  end)

  it("never logs an API key secret", function()
    local log = log_settled()
    for _, key in ipairs({ t.key, t.test_key }) do
      assert.is_false(contains(log, key.secret), "key secret found in the server log")
      assert.is_false(contains(log, key.secret:match("^hf_%a+_(.+)$")),
        "random part of the key found in the server log")
    end
  end)

  it("puts a Request-Id on every response, distinct per request", function()
    local seen = {}
    for _, r in ipairs(responses) do
      local id = r.headers["request-id"]
      assert.is_string(id)
      assert.is_true(#id >= 8)
      assert.is_nil(seen[id], "Request-Id repeated: " .. id)
      seen[id] = true
    end
    assert.are.equal(#responses, #request_ids)
  end)

  it("logs one request line per response with its method, path, status and Request-Id", function()
    local log = log_settled()
    for _, r in ipairs(responses) do
      local id = r.headers["request-id"]
      local line
      for l in log:gmatch("[^\n]+") do
        if contains(l, id) then
          assert.is_nil(line, "two log lines carry " .. id)
          line = l
        end
      end
      assert.is_string(line, "no log line for " .. id)
      assert.is_truthy(line:find("status[\"=:%s]*" .. r.status .. "%f[%D]"),
        "status " .. r.status .. " missing: " .. line)
    end
    local created = false
    for l in log:gmatch("[^\n]+") do
      if contains(l, "POST " .. SESSIONS) and contains(l, "status=201") then created = true end
    end
    assert.is_true(created, "no request line 'POST " .. SESSIONS .. " ... status=201'")
  end)
end)
