-- Several hostflow nodes on one PostgreSQL database (README "Running
-- several nodes"): what one node writes the other reads and changes; a
-- single-use URL has one winner however the racers are spread over nodes;
-- an idempotency key is one key across nodes; nodes migrate, sweep and
-- reconnect safely side by side.
--
-- Tagged #postgres_only: it needs the database scripts/run-tests starts
-- (HOSTFLOW_TEST_DB_URL); several processes on one SQLite file are not a
-- supported deployment.
local h = require("helpers.server")
local hf = require("helpers.hosted")
local socket = require("socket")
local cjson = h.json

local SESSIONS = "/api/v1/payment/sessions"
local PUBLIC_URL = "https://pay.example.com"
local RETURN_URL = "https://app.example.com/back"

-- Two nodes on one new database, both with the same --public-url (and
-- with test_clock, build/hostflow-test).
local function start_nodes(args, test_clock)
  local db = h.new_db(h.tmpdir())
  local all = { "--public-url", PUBLIC_URL }
  for _, a in ipairs(args or {}) do all[#all + 1] = a end
  local function start() return h.start({ db = db, args = all, test_clock = test_clock }) end
  return start(), start(), db
end

-- Move the test clock of every node seconds forward at the same moment:
-- both requests are sent before either answer is read, so their sweeps
-- (run before the answer) overlap.
local function advance_together(nodes, seconds)
  local body = cjson.encode({ advance_seconds = seconds })
  local conns = {}
  for i, n in ipairs(nodes) do
    conns[i] = assert(socket.tcp())
    conns[i]:settimeout(10)
    assert(conns[i]:connect("127.0.0.1", n.admin_port))
    assert(conns[i]:send("POST /admin/v1/test/clock HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
      "Connection: close\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body))
  end
  for _, c in ipairs(conns) do
    local r = h.read_response(c)
    c:close()
    assert.are.equal(200, r.status, r.body)
  end
end

-- The raw bytes of a create with key secret, body and Idempotency-Key.
local function raw_create(port, secret, body, key)
  return "POST " .. SESSIONS .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. port ..
    "\r\nConnection: close\r\nContent-Type: application/json\r\nAuthorization: Bearer " ..
    secret .. "\r\nIdempotency-Key: " .. key .. "\r\nContent-Length: " .. #body ..
    "\r\n\r\n" .. body
end

local function expired_total(srv)
  local body = srv:admin("GET", "/metrics").body or ""
  return tonumber(body:match("\nhostflow_sessions_expired_total (%d+)")) or 0
end

describe("several nodes on one PostgreSQL #postgres_only", function()
  local one, two, db, t

  setup(function()
    one, two, db = start_nodes()
    t = h.tenant(db, "Fleet")
  end)
  teardown(function()
    if one then one:stop() end
    if two then two:stop() end
  end)

  it("a session created on node 1 reads, lists and cancels on node 2", function()
    local s = one:new_session(t)
    local got = two:get(t.key.secret, SESSIONS .. "/" .. s.id)
    assert.are.equal(200, got.status, got.body)
    assert.are.equal(s.id, got.json.id)
    assert.are.equal("pending", got.json.status)
    local list = two:get(t.key.secret, SESSIONS .. "?contractor=" .. t.contractor.id)
    assert.are.equal(200, list.status)
    assert.are.equal(s.id, list.json[1].id)
    local c = two:post(t.key.secret, SESSIONS .. "/" .. s.id .. "/cancel")
    assert.are.equal(200, c.status, c.body)
    assert.are.equal("cancelled", c.json.status)
    -- node 1 sees the cancel, and refuses a second one as node 2 would
    assert.are.equal("cancelled", hf.api_session(one, t.key.secret, s.id).status)
    h.assert_error(one:post(t.key.secret, SESSIONS .. "/" .. s.id .. "/cancel"), 409,
      "session_not_pending")
  end)

  it("lists page across nodes: cursors from node 1 continue on node 2", function()
    local other = h.tenant(db, "Pages")
    local ids = {}
    for i = 1, 6 do ids[i] = (i % 2 == 0 and one or two):new_session(other).id end
    local first = one:get(other.key.secret, SESSIONS .. "?limit=4")
    assert.are.equal(4, #first.json)
    local rest = two:get(other.key.secret, SESSIONS .. "?limit=4&starting_after=" ..
      first.json[4].id)
    assert.are.equal(2, #rest.json)
    local seen = {}
    for _, page in ipairs({ first.json, rest.json }) do
      for _, s in ipairs(page) do seen[#seen + 1] = s.id end
    end
    for i = 1, 6 do assert.are.equal(ids[7 - i], seen[i]) end
  end)

  it("a URL minted on node 1 is redeemed on node 2 and completed on node 1", function()
    local r = one:create(t.test_key.secret, h.session_body(t, { return_url = RETURN_URL }))
    assert.are.equal(201, r.status, r.body)
    assert.are.equal(PUBLIC_URL, r.json.url:sub(1, #PUBLIC_URL))
    local path = hf.path_of(r.json.url)
    local redeem = hf.post_form(two, path)
    assert.are.equal(303, redeem.status, redeem.body)
    local cookie = hf.cookie_of(redeem)
    assert.is_string(cookie)
    -- the URL is dead on both nodes now
    assert.are.equal(404, hf.post_form(one, path).status)
    assert.are.equal(404, hf.post_form(two, path).status)
    -- the card page of node 2, posted to node 1: cookie and csrf hold anywhere
    local card = hf.get(two, "/payment/sessions/" .. r.json.id, cookie)
    assert.are.equal(200, card.status, card.body)
    local flow = { session = r.json, cookie = cookie, csrf = hf.csrf_of(card.body) }
    local done = hf.complete(one, flow, hf.good_card())
    assert.are.equal(303, done.status, done.body)
    assert.matches("status=completed", done.headers["location"])
    assert.are.equal("completed", hf.api_session(two, t.test_key.secret, r.json.id).status)
  end)

  it("8-way redemption race split over both nodes: exactly one winner", function()
    for _ = 1, 3 do
      local r = one:create(t.test_key.secret, h.session_body(t, { return_url = RETURN_URL }))
      assert.are.equal(201, r.status, r.body)
      local path = hf.path_of(r.json.url)
      local answers = hf.race({ one.port, two.port }, 8, function(port)
        return hf.raw_post(port, path)
      end)
      local won, lost, other = 0, 0, {}
      for _, a in ipairs(answers) do
        if a.status == 303 and hf.cookie_of(a) then
          won = won + 1
        elseif a.status == 404 then
          lost = lost + 1
        else
          other[#other + 1] = tostring(a.status or a.error)
        end
      end
      assert.are.same({}, other)
      assert.are.equal(1, won)
      assert.are.equal(7, lost)
    end
  end)

  it("an idempotency key used on node 1 replays on node 2 and conflicts there", function()
    local body = cjson.encode(h.session_body(t))
    local first = one:create(t.key.secret, body, { ["Idempotency-Key"] = "fleet-1" })
    assert.are.equal(201, first.status, first.body)
    local again = two:create(t.key.secret, body, { ["Idempotency-Key"] = "fleet-1" })
    assert.are.equal(201, again.status, again.body)
    assert.are.equal("true", again.headers["idempotent-replayed"])
    assert.are.equal(first.json.id, again.json.id)
    assert.are.equal(cjson.null, again.json.url)
    local other = cjson.encode(h.session_body(t, { return_url = "https://app.example.com/x" }))
    h.assert_error(two:create(t.key.secret, other, { ["Idempotency-Key"] = "fleet-1" }), 409,
      "idempotency_key_reused")
  end)

  it("one key raced by 8 creates over both nodes makes one session", function()
    local body = cjson.encode(h.session_body(t))
    local answers = hf.race({ one.port, two.port }, 8, function(port)
      return raw_create(port, t.key.secret, body, "fleet-race")
    end)
    local ids, urls, other = {}, 0, {}
    for _, a in ipairs(answers) do
      if a.status == 201 and a.json then
        ids[a.json.id] = true
        if type(a.json.url) == "string" then
          urls = urls + 1
          h.remember_secret(a.json.url:match("/payment/setup/(.*)$"))
        end
      else
        other[#other + 1] = tostring(a.status or a.error) .. " " .. tostring(a.body)
      end
    end
    assert.are.same({}, other)
    assert.are.equal(1, #h.keys_of(ids))
    assert.are.equal(1, urls)
  end)

  it("a node killed with SIGKILL loses nothing it acknowledged: node 2 serves it all", function()
    local extra = h.start({ db = db, args = { "--public-url", PUBLIC_URL } })
    local ids = {}
    for i = 1, 10 do ids[i] = extra:new_session(t).id end
    extra:stop("KILL")
    for _, id in ipairs(ids) do
      assert.are.equal("pending", hf.api_session(two, t.key.secret, id).status)
    end
  end)

  it("both nodes reconnect after the server drops every connection", function()
    local pids = "'{" .. h.sql(db, "SELECT string_agg(pid::text, ',') FROM pg_stat_activity " ..
      "WHERE datname = current_database() AND pid <> pg_backend_pid()") .. "}'::int[]"
    local gone = h.sql(db, "SELECT count(pg_terminate_backend(pid)) FROM unnest(" .. pids ..
      ") AS pid")
    assert.is_true(tonumber(gone) >= 2 * 8, gone)
    local deadline = socket.gettime() + 5
    repeat -- until the server has ended all of them
      local left = h.sql(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(" ..
        pids .. ")")
      if left == "0" then break end
      socket.sleep(0.05)
    until socket.gettime() > deadline
    -- every worker meets its dead connection; none of these may fail
    for i = 1, 12 do
      local node = i % 2 == 0 and one or two
      local s = node:new_session(t)
      assert.are.equal(s.id, hf.api_session(i % 2 == 0 and two or one, t.key.secret, s.id).id)
    end
    local f = hf.open(two, t, t.test_key.secret, { return_url = RETURN_URL })
    assert.are.equal(303, hf.complete(one, f, hf.good_card()).status)
    assert.are.equal(200, one:admin("GET", "/readyz").status)
    assert.are.equal(200, two:admin("GET", "/readyz").status)
    local log = one:log_text() .. two:log_text()
    assert.matches("reconnecting", log)
    -- the log names the database without the password
    local password = h.pg_url:match("^[%w]+://[^:/]*:([^@]*)@")
    assert.is_string(password)
    assert.is_nil(log:find(password, 1, true), "the database password reached the log")
    -- named all the same: the URL without its password
    local user = h.pg_url:match("^[%w]+://([^:/]*):")
    assert.truthy(log:find("://" .. user .. "@", 1, true), log:sub(1, 2000))
  end)
end)

describe("PostgreSQL: nodes side by side #postgres_only", function()
  it("never logs a password given in the URL's query string", function()
    local db = h.new_db(h.tmpdir())
    local password = h.pg_url:match("^[%w]+://[^:/]*:([^@]*)@")
    assert.is_string(password)
    local node = h.start({ db = db .. (db:find("?", 1, true) and "&" or "?") ..
      "password=" .. password })
    local t = h.tenant(db, "Quiet")
    node:new_session(t)
    node:stop()
    local log = node:log_text()
    assert.truthy(log:find("listening on", 1, true), log)
    assert.is_nil(log:find(password, 1, true), "the database password reached the log")
  end)

  it("nodes starting together on an empty database migrate it once", function()
    local db = h.new_db(h.tmpdir())
    local cmds = {}
    for i = 1, 4 do
      cmds[i] = "(" .. h.sh_quote(h.bin) .. " tenant create Racer" .. i ..
        " --json --db " .. h.sh_quote(db) .. " >/dev/null 2>&1; echo $? )"
    end
    local out = h.run("{ " .. table.concat(cmds, " & ") .. " & wait; }")
    assert.are.equal("0\n0\n0\n0", (out:gsub("%s+$", "")))
    assert.are.equal("1\n2\n3\n4\n5\n6\n7\n8\n9",
      h.sql(db, "SELECT version FROM schema_migrations ORDER BY version"))
    assert.are.equal("4", h.sql(db, "SELECT count(*) FROM tenants"))
  end)

  it("expire each session once however many nodes sweep", function()
    local one, two, db = start_nodes({ "--session-ttl", "1" }, true)
    local t = h.tenant(db, "Sweep")
    local ids = {}
    for i = 1, 6 do ids[i] = (i % 2 == 0 and one or two):new_session(t).id end
    advance_together({ one, two }, 2) -- both sweep at once, past every expiry
    assert.are.equal(6, expired_total(one) + expired_total(two))
    advance_together({ one, two }, 1) -- another round on both: nothing more to count
    local total = expired_total(one) + expired_total(two)
    one:stop()
    two:stop()
    assert.are.equal(6, total)
    assert.are.equal("6", h.sql(db, "SELECT count(*) FROM sessions WHERE status = 'expired'"))
  end)

  it("two nodes share the outbox: every event delivered once, none by both", function()
    local wh = require("helpers.webhooks")
    local dir = h.tmpdir()
    local pdir = wh.policy_dir(dir)
    local db = h.new_db(dir)
    local args = { "--public-url", PUBLIC_URL, "--webhook-key-file", dir .. "/shared.key",
      "--webhook-retry-base-ms", "50" }
    local nodes = {}
    for i = 1, 2 do
      nodes[i] = h.start({ db = db, args = args, policy = h.root .. "/policies.example.lua",
        policy_dir = pdir })
    end
    local t = h.tenant(db, "Hooks")
    wh.allow_loopback(pdir, t)
    for _, n in ipairs(nodes) do
      assert.are.equal(200, n:admin("POST", "/admin/v1/policy/reload").status)
    end
    local rx = wh.receiver(0)
    local ep = wh.create(nodes[1], t.test_key.secret, rx:url())
    assert.are.equal(201, ep.status, ep.body)
    local want = 40
    for i = 1, want do
      local n = nodes[i % 2 + 1]
      local s = n:create(t.test_key.secret, h.session_body(t))
      assert.are.equal(200, n:post(t.test_key.secret, SESSIONS .. "/" .. s.json.id ..
        "/cancel").status)
    end
    local got = rx:wait(function(reqs) return #reqs >= want end, 20)
    -- every delivery recorded and neither node sending: none can come twice now
    local function in_flight(n)
      return tonumber(n:admin("GET", "/metrics").body:match(
        "hostflow_webhook_deliveries_in_flight (%d+)"))
    end
    assert.is_true(h.wait_for(function()
      return h.sql(db, "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'")
        == "0" and in_flight(nodes[1]) == 0 and in_flight(nodes[2]) == 0
    end, 10), "the deliveries were not all recorded")
    got = rx:requests()
    local logs = nodes[1]:log_text() .. nodes[2]:log_text()
    for _, n in ipairs(nodes) do n:stop() end
    rx:stop()
    local seen = {}
    for _, r in ipairs(got) do
      assert.is_nil(seen[r.event.id], "delivered twice: " .. r.event.id)
      seen[r.event.id] = true
      local t0, v1 = wh.parse_signature(r.signature)
      assert.are.equal(wh.expected_signature(ep.json.secret, t0, r.body), v1[1])
    end
    assert.are.equal(want, #got)
    local _, delivered = logs:gsub("outcome=delivered", "")
    assert.are.equal(want, delivered)
  end)

  it("a wrong password is refused with a message that does not repeat it", function()
    local url = h.pg_url:gsub("^([%w]+://[^:/]*:)[^@]*@", "%1not-the-password-4711@")
    local out, rc, err = h.cli(url, "tenant", "create", "Nope")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.matches("cannot connect to PostgreSQL", err)
    assert.matches("password authentication failed", err)
    assert.is_nil(err:find("not-the-password-4711", 1, true), err)
  end)

  it("a wrong password given as ?password= is refused, named without it", function()
    local url = h.pg_url:gsub("^([%w]+://[^:/]*):[^@]*@", "%1@") .. "?password=not-the-password-4712"
    local out, rc, err = h.cli(url, "tenant", "create", "Nope")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.matches("password authentication failed", err)
    -- where it tried is named from libpq's reading of the URL: user, host, port, database
    local user, hostport = h.pg_url:match("^[%w]+://([^:/]*):[^@]*@([^/]+)/")
    assert.truthy(err:find("at postgresql://" .. user .. "@" .. hostport .. "/", 1, true), err)
    assert.is_nil(err:find("not-the-password-4712", 1, true), err)
  end)

  for _, case in ipairs({
    { "a bad percent-escape in ?password=", "?password=x%zznot-the-password-4713" },
    { "an unclosed IPv6 host", "" },
  }) do
    it("a URL libpq cannot read is refused clearly, without its password: " .. case[1], function()
      local url = case[2] ~= "" and h.pg_url .. case[2]
        or h.pg_url:gsub("@[^/]+/", "@[::1/"):gsub(":[^:@/]*@", ":not-the-password-4713@", 1)
      local out, rc, err = h.cli(url, "tenant", "create", "Nope")
      assert.are.equal(1, rc)
      assert.are.equal("", out)
      assert.matches("libpq cannot read the --db URL", err, 1, true)
      assert.is_nil(err:find("not-the-password-4713", 1, true), err)
      local password = h.pg_url:match("^[%w]+://[^:/]*:([^@]*)@")
      assert.is_nil(err:find(password, 1, true), err)
    end)
  end

  it("refuses to start on a database that does not exist, naming it", function()
    local url = h.pg_database_url("hf_no_such_database")
    local _, rc, err = h.cli(url, "tenant", "create", "Nope")
    assert.are.equal(1, rc)
    assert.matches("hf_no_such_database", err)
    assert.matches("does not exist", err)
  end)
end)
