-- GET /metrics on the admin listener: promtool check metrics checks the
-- Prometheus text format (0.0.4) of every scrape, then the counters and
-- histograms are checked against the traffic that made them.
local h = require("helpers.server")
local hf = require("helpers.hosted")
local socket = require("socket")
local cjson = h.json

local FIXTURES = h.root .. "/tests/fixtures/"
local SESSIONS = "/api/v1/payment/sessions"
local RETURN_URL = "https://app.example.com/done"

-- ---- reading an exposition -------------------------------------------------
-- The format is promtool's to check (promtool check metrics, Debian's
-- prometheus package); this only reads the samples the assertions need.

-- Labels of "{...}" starting at position i of line: an ordered list of
-- {name, value} (escapes undone) and the position after "}".
local function read_labels(line, i)
  local labels = {}
  i = i + 1
  while line:sub(i, i) ~= "}" and line:sub(i, i) ~= "" do
    local name = line:match("^[^=]*", i)
    i = i + #name + 2 -- past name="
    local value = {}
    while line:sub(i, i) ~= '"' and line:sub(i, i) ~= "" do
      local c = line:sub(i, i)
      if c == "\\" then
        local e = line:sub(i + 1, i + 1)
        value[#value + 1] = e == "n" and "\n" or e
        i = i + 2
      else
        value[#value + 1] = c
        i = i + 1
      end
    end
    labels[#labels + 1] = { name, table.concat(value) }
    i = i + 1
    if line:sub(i, i) == "," then i = i + 1 end
  end
  return labels, i + 1
end

local function series_key(name, labels)
  local parts = {}
  for _, kv in ipairs(labels) do parts[#parts + 1] = kv[1] .. "=" .. string.format("%q", kv[2]) end
  table.sort(parts)
  return name .. "{" .. table.concat(parts, ",") .. "}"
end

-- {samples = {{name, labels, map, value, line}}, types = {family = type},
-- help = {family = text}} of an exposition promtool has passed.
local function read(text)
  local m = { samples = {}, types = {}, help = {} }
  for line in text:gmatch("([^\n]*)\n") do
    local kind, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
    if kind == "HELP" then
      m.help[name] = rest
    elseif kind == "TYPE" then
      m.types[name] = rest
    elseif line ~= "" and line:sub(1, 1) ~= "#" then
      local sample = line:match("^[^{ ]+")
      local labels, i = {}, #sample + 1
      if line:sub(i, i) == "{" then labels, i = read_labels(line, i) end
      local map = {}
      for _, kv in ipairs(labels) do map[kv[1]] = kv[2] end
      local v = line:sub(i):match("^ ?(%S+)")
      m.samples[#m.samples + 1] = { name = sample, labels = labels, map = map, line = line,
        value = v == "+Inf" and math.huge or tonumber(v) }
    end
  end
  return m
end

-- promtool check metrics on text: its output (problems, one a line) and
-- whether it passed (exit 0: parsed, and nothing for its linter).
local function promtool(text)
  local file = os.tmpname()
  h.write_file(file, text)
  local out, rc = h.run("promtool check metrics < " .. h.sh_quote(file) .. " 2>&1")
  os.remove(file)
  return out, rc == 0
end

-- ---- helpers ---------------------------------------------------------------

-- Scrape, assert a 200 exposition promtool passes, return what it says.
local function scrape(srv, token)
  local r = srv:admin("GET", "/metrics", token)
  assert.are.equal(200, r.status, r.body)
  assert.are.equal("text/plain; version=0.0.4", r.headers["content-type"])
  local problems, clean = promtool(r.body)
  assert.is_true(clean, "promtool check metrics:\n" .. problems .. "exposition:\n" .. r.body)
  local m = read(r.body)
  m.text = r.body
  return m
end

-- The value of the sample name{labels} (exactly these labels), or 0 when
-- the series is absent (series appear at their first increment).
local function value(m, name, labels)
  local want = series_key(name, (function()
    local l = {}
    for k, v in pairs(labels or {}) do l[#l + 1] = { k, v } end
    return l
  end)())
  for _, s in ipairs(m.samples) do
    if s.name == name and series_key(s.name, s.labels) == want then return s.value end
  end
  return 0
end

-- Request counters are bumped once the response is written, so a client
-- can read its answer a moment before the count moves: poll briefly.
local function eventually(srv, pred, seconds, token)
  local deadline = socket.gettime() + (seconds or 2)
  local m
  repeat
    m = scrape(srv, token)
    if pred(m) then return m end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return m
end

local function requests(m, route, status)
  return value(m, "hostflow_http_requests_total", { route = route, status = tostring(status) })
end

local function decisions(m, check, outcome, code)
  return value(m, "hostflow_policy_decisions_total",
    { check = check, outcome = outcome, code = code or "" })
end

describe("metrics: the format check", function()
  -- the check scrape() relies on can fail: promtool is there and refuses
  it("refuses what promtool refuses", function()
    local ok_counter = "# HELP a_total A.\n# TYPE a_total counter\n"
    assert.is_true(select(2, promtool(ok_counter .. 'a_total{x="1"} 3\n')))
    for name, text in pairs({
      unquoted = ok_counter .. "a_total{x=1} 1\n",
      no_total = "# HELP a A.\n# TYPE a counter\na 1\n",
      duplicate_type = ok_counter .. "# TYPE a_total counter\na_total 1\n",
      bad_value = ok_counter .. "a_total one\n",
    }) do
      assert.is_false(select(2, promtool(text)), name .. " was accepted")
    end
  end)
end)

-- ---- the server -------------------------------------------------------------

describe("GET /metrics", function()
  local srv, t

  setup(function() srv, t = h.start_with_tenants(nil, "Acme") end)
  teardown(function() srv:stop() end)

  it("is a clean exposition with every family, HELP and TYPE, after mixed traffic", function()
    -- a bit of everything: created, refused, read, listed, cancelled, hosted
    -- pages, the stylesheet, admin routes, unknown paths and wrong methods
    local s = srv:new_session(t)
    srv:create_for(t, { return_url = "http://app.example.com/" })
    srv:create("hf_live_nope", h.session_body(t))
    srv:get(t.key.secret, SESSIONS .. "/" .. s.id)
    srv:get(t.key.secret, SESSIONS .. "?limit=2")
    srv:post(t.key.secret, SESSIONS .. "/" .. s.id .. "/cancel")
    srv:request({ method = "DELETE", path = SESSIONS })
    srv:request({ method = "GET", path = "/payment/setup/live_" .. string.rep("x", 43) })
    srv:request({ method = "GET", path = "/payment/assets/hosted.css" })
    srv:request({ method = "GET", path = "/nowhere" })
    srv:admin("GET", "/healthz")
    srv:admin("GET", "/admin/v1/nothing")
    srv:admin("GET", "/admin/v1/policy")
    -- a request is counted after its answer is written: wait for the last ones
    local m = eventually(srv, function(x)
      return requests(x, "hosted_asset", 200) == 1 and requests(x, "other", 404) >= 1 and
        requests(x, "admin", 200) >= 2 and requests(x, "admin", 404) >= 1
    end)
    for _, family in ipairs({
      "hostflow_http_requests_total", "hostflow_http_request_duration_seconds",
      "hostflow_http_answers_by_writer_total",
      "hostflow_policy_decisions_total", "hostflow_policy_call_duration_seconds",
      "hostflow_policy_info", "hostflow_policy_loaded_timestamp_seconds",
      "hostflow_policy_reloads_total", "hostflow_sessions_created_total",
      "hostflow_sessions_completed_total", "hostflow_sessions_cancelled_total",
      "hostflow_sessions_expired_total", "hostflow_store_busy_retries_total",
      "hostflow_store_group_commits_total", "hostflow_store_group_commit_writes_total",
      "hostflow_process_start_time_seconds" }) do
      assert.is_string(m.help[family], "no HELP for " .. family)
      assert.is_not_nil(m.types[family], "no TYPE for " .. family)
    end
    assert.are.equal("histogram", m.types.hostflow_http_request_duration_seconds)
    assert.are.equal("histogram", m.types.hostflow_policy_call_duration_seconds)
    assert.are.equal("gauge", m.types.hostflow_process_start_time_seconds)
    for _, sm in ipairs(m.samples) do
      assert.is_true(sm.name:match("^hostflow_") ~= nil, sm.line)
    end
    -- every route got its own name
    assert.are.equal(1, requests(m, "create_session", 201))
    assert.are.equal(1, requests(m, "get_session", 200))
    assert.are.equal(1, requests(m, "list_sessions", 200))
    assert.are.equal(1, requests(m, "cancel_session", 200))
    assert.are.equal(1, requests(m, "hosted_landing", 404))
    assert.are.equal(1, requests(m, "hosted_asset", 200))
    assert.is_true(requests(m, "other", 404) >= 1)
    assert.is_true(requests(m, "admin", 200) >= 2)
    assert.is_true(requests(m, "admin", 404) >= 1)
    local start = value(m, "hostflow_process_start_time_seconds")
    assert.is_true(start > os.time() - 600 and start <= os.time() + 1, tostring(start))
  end)

  it("counts N creates under create_session/201 and observes their durations", function()
    local before = scrape(srv)
    local n = 5
    for _ = 1, n do srv:new_session(t) end
    local c0 = requests(before, "create_session", 201)
    local d0 = value(before, "hostflow_http_request_duration_seconds_count",
      { route = "create_session" })
    local after = eventually(srv, function(m)
      return requests(m, "create_session", 201) >= c0 + n
    end)
    assert.are.equal(c0 + n, requests(after, "create_session", 201))
    local d1 = value(after, "hostflow_http_request_duration_seconds_count",
      { route = "create_session" })
    assert.is_true(d1 >= d0 + n, ("duration count %s -> %s"):format(d0, d1))
    assert.is_true(value(after, "hostflow_http_request_duration_seconds_sum",
      { route = "create_session" }) > 0)
    -- two policy calls per create, each observed
    assert.is_true(value(after, "hostflow_policy_call_duration_seconds_count") >=
      value(before, "hostflow_policy_call_duration_seconds_count") + 2 * n)
  end)

  -- the metrics before and after two creates and one cancel
  local function two_created_one_cancelled()
    local before = scrape(srv)
    local a = srv:new_session(t)
    srv:new_session(t)
    assert.are.equal(200, srv:post(t.key.secret, SESSIONS .. "/" .. a.id .. "/cancel").status)
    return before, scrape(srv)
  end

  it("counts sessions created and cancelled", function()
    local before, after = two_created_one_cancelled()
    assert.are.equal(value(before, "hostflow_sessions_created_total") + 2,
      value(after, "hostflow_sessions_created_total"))
    assert.are.equal(value(before, "hostflow_sessions_cancelled_total") + 1,
      value(after, "hostflow_sessions_cancelled_total"))
  end)

  it("counts the SQLite writer's group commits and the writes they carried #sqlite_only", function()
    local before, after = two_created_one_cancelled()
    local commits = value(after, "hostflow_store_group_commits_total")
      - value(before, "hostflow_store_group_commits_total")
    local writes = value(after, "hostflow_store_group_commit_writes_total")
      - value(before, "hostflow_store_group_commit_writes_total")
    assert.is_true(commits >= 1, "commits: " .. commits)
    assert.is_true(writes >= 3 and writes >= commits, "writes: " .. writes .. ", commits: " .. commits)
  end)

  -- operators tell the threads apart in top -H and ps -L
  it("runs its background threads under names of their own", function()
    local names = {}
    for comm in h.run("cat /proc/" .. srv.pid .. "/task/*/comm"):gmatch("[^\n]+") do
      names[comm] = true
    end
    -- a policy file (this server's): watched; policies from the store: polled
    local want = { "hf-expiry", "hf-webhooks", "hf-policy-watch", "civetweb-worker" }
    if h.backend == "sqlite" then -- PostgreSQL nodes have no writer thread
      want[#want + 1] = "hf-writer"
      want[#want + 1] = "hf-checkpoint"
    end
    for _, name in ipairs(want) do assert.truthy(names[name], name) end
  end)

  it("counts a 400 and a 403 under their statuses", function()
    local before = scrape(srv)
    h.assert_error(srv:create_for(t, { return_url = "https://evil.example.net/" }), 400,
      "invalid_return_url")
    h.assert_error(srv:create("hf_live_AAAAbogus", h.session_body(t)), 403, "invalid_api_key")
    local want400 = requests(before, "create_session", 400) + 1
    local want403 = requests(before, "create_session", 403) + 1
    local after = eventually(srv, function(m)
      return requests(m, "create_session", 400) >= want400 and
        requests(m, "create_session", 403) >= want403
    end)
    assert.are.equal(want400, requests(after, "create_session", 400))
    assert.are.equal(want403, requests(after, "create_session", 403))
  end)

  it("counts policy decisions: allow for both checks, deny with its code", function()
    local before = scrape(srv)
    srv:new_session(t)
    srv:new_session(t)
    h.assert_error(srv:create_for(t, { return_url = "http://app.example.com/" }), 400,
      "invalid_return_url")
    local after = scrape(srv) -- decisions are counted before the answer is sent
    assert.are.equal(decisions(before, "tenant", "allow") + 3, decisions(after, "tenant", "allow"))
    assert.are.equal(decisions(before, "return_url", "allow") + 2,
      decisions(after, "return_url", "allow"))
    assert.are.equal(decisions(before, "return_url", "deny", "invalid_return_url") + 1,
      decisions(after, "return_url", "deny", "invalid_return_url"))
    assert.are.equal(0, decisions(after, "tenant", "error"))
    assert.are.equal(0, decisions(after, "return_url", "error"))
  end)

  it("carries the active policy version of /admin/v1/policy in policy_info", function()
    local version = srv:admin("GET", "/admin/v1/policy").json.version
    local m = scrape(srv)
    assert.are.equal(1, value(m, "hostflow_policy_info", { version = version }))
    local infos = 0
    for _, s in ipairs(m.samples) do
      if s.name == "hostflow_policy_info" then infos = infos + 1 end
    end
    assert.are.equal(1, infos)
    local r = srv:admin("POST", "/admin/v1/policy/reload")
    assert.are.equal(200, r.status, r.body)
    assert.is_false(r.json.changed)
    local m2 = scrape(srv)
    assert.are.equal(value(m, "hostflow_policy_reloads_total", { result = "unchanged" }) + 1,
      value(m2, "hostflow_policy_reloads_total", { result = "unchanged" }))
    assert.are.equal(1, value(m2, "hostflow_policy_info", { version = version }))
  end)

  it("keeps paths, ids, tokens and secrets out of every label value", function()
    local flow = hf.open(srv, t, t.test_key.secret, { return_url = RETURN_URL })
    local token = flow.path:match("/payment/setup/(.*)$")
    srv:request({ method = "GET", path = flow.path })
    srv:request({ method = "GET", path = "/payment/setup/live_" .. token:sub(6) })
    srv:get(t.key.secret, SESSIONS .. "/" .. flow.session.id)
    local m = eventually(srv, function(x) return requests(x, "hosted_card", 200) >= 1 end)
    assert.is_true(requests(m, "hosted_redeem", 303) >= 1)
    assert.is_true(requests(m, "hosted_landing", 404) >= 1)
    local secrets = { token, flow.session.id, flow.cookie, flow.csrf, t.key.secret,
      t.test_key.secret, t.id, t.contractor.id }
    for _, s in ipairs(m.samples) do
      for _, kv in ipairs(s.labels) do
        local v = kv[2]
        assert.is_nil(v:find("payment/setup", 1, true), s.line)
        assert.is_nil(v:find("/", 1, true), s.line)
        for _, secret in ipairs(secrets) do
          assert.is_nil(v:find(secret, 1, true), s.line)
        end
      end
    end
    for _, secret in ipairs(secrets) do
      assert.is_nil(m.text:find(secret, 1, true), "metrics text holds " .. secret)
    end
  end)
end)

describe("GET /metrics: policy denies and errors", function()
  it("counts a tenant deny by its known code, an unknown code as other", function()
    local srv = h.start({ policy = FIXTURES .. "policy_tenant.lua" })
    local limited = h.tenant(srv.db, "Limited")
    local paused = h.tenant(srv.db, "Status200")
    local ok = h.tenant(srv.db, "Fine")
    h.assert_error(srv:create_for(limited), 429, "rate_limit")
    srv:create_for(paused)
    srv:new_session(ok)
    local m = scrape(srv)
    srv:stop()
    assert.are.equal(1, decisions(m, "tenant", "deny", "rate_limit"))
    assert.are.equal(1, decisions(m, "tenant", "deny", "other"))
    assert.are.equal(1, decisions(m, "tenant", "allow"))
    assert.are.equal(1, decisions(m, "return_url", "allow"))
    assert.is_nil(m.text:find("paused", 1, true))
    assert.are.equal(1, requests(m, "create_session", 429))
  end)

  it("counts a raising policy as error, answered 500", function()
    local srv = h.start({ policy = FIXTURES .. "policy_raises.lua" })
    local t = h.tenant(srv.db, "Acme")
    h.assert_error(srv:create_for(t), 500, "policy_error")
    local m = eventually(srv, function(x) return requests(x, "create_session", 500) == 1 end)
    srv:stop()
    assert.are.equal(1, decisions(m, "return_url", "error"))
    assert.are.equal(1, requests(m, "create_session", 500))
    assert.is_nil(m.text:find("boom", 1, true))
  end)
end)

describe("GET /metrics: expiry and the admin token", function()
  it("adds the sweep's count to hostflow_sessions_expired_total", function()
    local srv = h.start({ args = { "--session-ttl", "1" } })
    local t = h.tenant(srv.db, "Shortlived")
    srv:new_session(t)
    srv:new_session(t)
    local m = eventually(srv, function(x)
      return value(x, "hostflow_sessions_expired_total") >= 2
    end, 5)
    srv:stop()
    assert.are.equal(2, value(m, "hostflow_sessions_expired_total"))
  end)

  it("needs the admin token when one is set, and does not count its value", function()
    local token = "metrics-admin-token-0123456789"
    local srv = h.start({ env = { HOSTFLOW_ADMIN_TOKEN = token } })
    local r = srv:admin("GET", "/metrics")
    h.assert_error(r, 403, "invalid_admin_token")
    local m = eventually(srv, function(x) return requests(x, "admin", 403) >= 1 end, 2, token)
    srv:stop()
    assert.are.equal(1, requests(m, "admin", 403))
    assert.is_nil(m.text:find(token, 1, true))
    assert.is_nil(cjson.encode(m.samples):find(token, 1, true))
  end)
end)
