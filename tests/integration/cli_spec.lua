-- The command line of SPEC §2: help, usage errors, --json objects, live
-- allowlist changes, refused serve configurations and signals.
local h = require("helpers.server")
local socket = require("socket")
local cjson = h.json

local FIXTURES = h.root .. "/tests/fixtures/"
local SESSIONS = "/api/v1/payment/sessions"
local q = h.sh_quote

-- Run hostflow with args in cwd dir, env prefix and a hard time limit (a
-- serve that wrongly starts must not hang the suite); stdout, rc, stderr.
local function hostflow(opts, ...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = q(a) end
  local errfile = os.tmpname()
  local out, rc = h.run("cd " .. q(opts.cwd or "/tmp") .. " && " .. (opts.env or "") ..
    " timeout -s KILL " .. (opts.timeout or 5) .. " " .. q(h.bin) .. " " ..
    table.concat(args, " ") .. " 2>" .. q(errfile) .. " </dev/null")
  local err = h.read_file(errfile) or ""
  os.remove(errfile)
  return out, rc, err
end

local function lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

describe("hostflow CLI: help and usage errors", function()
  local dir, db

  setup(function()
    dir = h.tmpdir()
    db = h.new_db(dir)
  end)

  for _, cmd in ipairs({ { "--help" }, { "serve", "--help" }, { "tenant", "--help" },
    { "key", "--help" }, { "contractor", "--help" } }) do
    it("`hostflow " .. table.concat(cmd, " ") .. "` exits 0 and prints usage", function()
      local out, rc, err = hostflow({ cwd = dir }, table.unpack(cmd))
      assert.are.equal(0, rc, err)
      assert.matches("[Uu]sage", out)
      assert.matches("hostflow", out)
    end)
  end

  it("`hostflow --version` prints a version", function()
    local out, rc = hostflow({ cwd = dir }, "--version")
    assert.are.equal(0, rc)
    assert.matches("%d+%.%d+", out)
  end)

  it("`hostflow` alone exits 2 with usage on stderr", function()
    local out, rc, err = hostflow({ cwd = dir })
    assert.are.equal(2, rc)
    assert.matches("[Uu]sage", err)
    assert.are.equal("", out)
  end)

  it("an unknown command exits 2", function()
    local _, rc, err = hostflow({ cwd = dir }, "frobnicate", "--db", db)
    assert.are.equal(2, rc)
    assert.matches("frobnicate", err)
  end)

  it("`tenant create` without a name exits 2", function()
    local _, rc, err = hostflow({ cwd = dir }, "tenant", "create", "--db", db)
    assert.are.equal(2, rc)
    assert.is_true(#err > 0)
  end)

  it("`tenant show tn_nope` exits 1 with a one-line error", function()
    local out, rc, err = hostflow({ cwd = dir }, "tenant", "show", "tn_nope", "--db", db)
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.are.equal(1, #lines(err), err)
    assert.matches("tn_nope", err)
  end)

  it("`tenant set-redirect-hosts ID https://x` exits 1 and leaves the allowlist alone", function()
    local t = h.cli_json(db, "tenant", "create", "Acme", "--redirect-host", "app.example.com", "--json")
    local _, rc, err = hostflow({ cwd = dir }, "tenant", "set-redirect-hosts", t.id, "https://x", "--db", db)
    assert.are.equal(1, rc)
    assert.is_true(#err > 0)
    for _, bad in ipairs({ "x.com:443", "x.com/path", "*.x.com", "" }) do
      local _, rc2 = hostflow({ cwd = dir }, "tenant", "set-redirect-hosts", t.id, bad, "--db", db)
      assert.are.equal(1, rc2, bad)
    end
    local shown = h.cli_json(db, "tenant", "show", t.id, "--json")
    assert.are.same({ "app.example.com" }, shown.hosted_flow_allowed_redirect_hosts)
  end)

  it("`key create tn_nope` exits 1", function()
    local out, rc, err = hostflow({ cwd = dir }, "key", "create", "tn_nope", "--db", db)
    assert.are.equal(1, rc)
    assert.is_true(#err > 0)
    assert.is_nil(out:find("hf_", 1, true))
  end)

  it("`contractor create tn_nope` and `key revoke key_nope` exit 1", function()
    local _, rc = hostflow({ cwd = dir }, "contractor", "create", "tn_nope", "--db", db)
    assert.are.equal(1, rc)
    _, rc = hostflow({ cwd = dir }, "key", "revoke", "key_nope", "--db", db)
    assert.are.equal(1, rc)
  end)
end)

describe("hostflow CLI: --json output", function()
  local dir, db

  setup(function()
    dir = h.tmpdir()
    db = h.new_db(dir)
  end)

  it("tenant create prints one JSON line with id, name and the allowlist", function()
    local out, rc, err = hostflow({ cwd = dir }, "tenant", "create", "Acme Inc",
      "--redirect-host", "app.example.com", "--redirect-host", "Pay.Example.ORG", "--json", "--db", db)
    assert.are.equal(0, rc, err)
    assert.are.equal(1, #lines(out))
    local t = cjson.decode(out)
    assert.matches("^tn_%w+$", t.id)
    assert.are.equal("Acme Inc", t.name)
    assert.are.same({ "app.example.com", "pay.example.org" }, t.hosted_flow_allowed_redirect_hosts)
    local shown = h.cli_json(db, "tenant", "show", t.id, "--json")
    assert.are.equal(t.id, shown.id)
    assert.are.equal(t.name, shown.name)
    assert.are.same(t.hosted_flow_allowed_redirect_hosts, shown.hosted_flow_allowed_redirect_hosts)
  end)

  it("a tenant without hosts has an empty JSON array", function()
    local t = h.cli_json(db, "tenant", "create", "Empty", "--json")
    assert.are.equal("table", type(t.hosted_flow_allowed_redirect_hosts))
    assert.are.equal(0, #t.hosted_flow_allowed_redirect_hosts)
  end)

  it("key create prints id, tenant and secret; --test makes a distinct key", function()
    local t = h.cli_json(db, "tenant", "create", "Keys", "--json")
    local out, rc = hostflow({ cwd = dir }, "key", "create", t.id, "--json", "--db", db)
    assert.are.equal(0, rc)
    assert.are.equal(1, #lines(out))
    local k = cjson.decode(out)
    assert.matches("^key_%w+$", k.id)
    assert.are.equal(t.id, k.tenant)
    assert.is_string(k.secret)
    assert.is_true(#k.secret >= 43)
    local k2 = h.cli_json(db, "key", "create", t.id, "--test", "--json")
    assert.are_not.equal(k.id, k2.id)
    assert.are_not.equal(k.secret, k2.secret)
  end)

  it("contractor create prints id and tenant", function()
    local t = h.cli_json(db, "tenant", "create", "Contractors", "--json")
    local out, rc = hostflow({ cwd = dir }, "contractor", "create", t.id, "--name", "Jane", "--json", "--db", db)
    assert.are.equal(0, rc)
    assert.are.equal(1, #lines(out))
    local c = cjson.decode(out)
    assert.matches("^cn_%w+$", c.id)
    assert.are.equal(t.id, c.tenant)
  end)

  it("refuses names that are not UTF-8 text or hold control characters, with exit 2",
    function()
      local t = h.cli_json(db, "tenant", "create", "Names", "--json")
      local before = h.sql(db, "SELECT count(*) FROM tenants")
      for _, bad in ipairs({ "Evil\nCo", "Bell\a", "Latin1 \xe9t\xe9", ("x"):rep(201) }) do
        local _, rc, err = hostflow({ cwd = dir }, "tenant", "create", bad, "--db", db)
        assert.are.equal(2, rc, bad)
        assert.matches("UTF-8 text without control characters", err, 1, true)
        _, rc, err = hostflow({ cwd = dir }, "contractor", "create", t.id, "--name", bad, "--db", db)
        assert.are.equal(2, rc, bad)
        assert.matches("UTF-8 text without control characters", err, 1, true)
      end
      assert.are.equal(before, h.sql(db, "SELECT count(*) FROM tenants"))
      local ok = h.cli_json(db, "tenant", "create", "Ünïcode Cø", "--json")
      assert.are.equal("Ünïcode Cø", ok.name)
    end)

  it("without --json prints a short human line, not JSON", function()
    local out, rc = hostflow({ cwd = dir }, "tenant", "create", "Human", "--db", db)
    assert.are.equal(0, rc)
    assert.matches("tn_%w+", out)
    assert.is_false(pcall(cjson.decode, out))
  end)

  it("honours HOSTFLOW_DB when --db is absent", function()
    local cwd = h.tmpdir()
    local envdb = h.backend == "sqlite" and dir .. "/from-env.db" or h.new_db(dir)
    local out, rc, err = hostflow({ cwd = cwd, env = "HOSTFLOW_DB=" .. q(envdb) },
      "tenant", "create", "EnvTenant", "--json")
    assert.are.equal(0, rc, err)
    local t = cjson.decode(out)
    if h.backend == "sqlite" then
      assert.is_not_nil(h.read_file(envdb), "HOSTFLOW_DB file was not created")
    end
    assert.is_nil(h.read_file(cwd .. "/hostflow.db"), "./hostflow.db was used instead")
    -- visible through --db on the same database, and through the env again
    assert.are.equal("EnvTenant", h.cli_json(envdb, "tenant", "show", t.id, "--json").name)
    local out2, rc2 = hostflow({ cwd = cwd, env = "HOSTFLOW_DB=" .. q(envdb) },
      "tenant", "show", t.id, "--json")
    assert.are.equal(0, rc2)
    assert.are.equal(t.id, cjson.decode(out2).id)
    -- and not in the default ./hostflow.db of another directory
    local other = h.tmpdir()
    local _, rc3 = hostflow({ cwd = other }, "tenant", "show", t.id)
    assert.are.equal(1, rc3)
  end)
end)

describe("hostflow CLI: tenant set-redirect-hosts on a running server", function()
  local srv, t

  setup(function() srv, t = h.start_with_tenants(nil, "Acme") end)
  teardown(function() srv:stop() end)

  local function create(url)
    return srv:create_for(t, { return_url = url })
  end

  it("applies to the next request without a restart", function()
    assert.are.equal(400, create("https://new.example.org/back").status)
    local _, rc, err = h.cli(srv.db, "tenant", "set-redirect-hosts", t.id, "app.example.com", "new.example.org")
    assert.are.equal(0, rc, err)
    assert.are.equal(201, create("https://new.example.org/back").status)
    assert.are.equal(201, create("https://app.example.com/back").status)
    -- every worker thread (8) has likely judged a URL of the tenant, and
    -- each remembers tenants (access_cache.h): none may keep the old hosts
    for _ = 1, 24 do assert.are.equal(201, create("https://new.example.org/back").status) end
    _, rc, err = h.cli(srv.db, "tenant", "set-redirect-hosts", t.id, "app.example.com")
    assert.are.equal(0, rc, err)
    for _ = 1, 24 do
      h.assert_error(create("https://new.example.org/back"), 400, "invalid_return_url")
    end
    assert.are.equal(201, create("https://app.example.com/back").status)
    -- an empty allowlist refuses everything
    _, rc = h.cli(srv.db, "tenant", "set-redirect-hosts", t.id)
    assert.are.equal(0, rc)
    assert.are.equal(400, create("https://app.example.com/back").status)
    -- and a host added back is allowed at once by every worker, also those
    -- that just refused it (a refusal is answered again when access changed)
    _, rc = h.cli(srv.db, "tenant", "set-redirect-hosts", t.id, "app.example.com")
    assert.are.equal(0, rc)
    assert.are.equal(201, create("https://app.example.com/back").status)
    for _ = 1, 24 do
      h.assert_error(create("https://new.example.org/back"), 400, "invalid_return_url")
    end
    _, rc = h.cli(srv.db, "tenant", "set-redirect-hosts", t.id, "app.example.com", "new.example.org")
    assert.are.equal(0, rc)
    for _ = 1, 24 do assert.are.equal(201, create("https://new.example.org/back").status) end
  end)

  it("applies a key created while the server runs", function()
    local k = h.cli_json(srv.db, "key", "create", t.id, "--json")
    local _, rc = h.cli(srv.db, "tenant", "set-redirect-hosts", t.id, "app.example.com")
    assert.are.equal(0, rc)
    local r = srv:create(k.secret, h.session_body(t, { return_url = "https://app.example.com/x" }))
    assert.are.equal(201, r.status)
  end)
end)

describe("hostflow serve: refused configurations", function()
  local dir

  setup(function() dir = h.tmpdir() end)

  local function serve(env, ...)
    return hostflow({ cwd = dir, env = env }, "serve", "--admin-listen", "127.0.0.1:0",
      "--db", dir .. "/hostflow.db", "--policy", h.root .. "/policies.example.lua", ...)
  end

  it("refuses a TLS listener (127.0.0.1:8443s) with a message about TLS", function()
    local out, rc, err = serve(nil, "--listen", "127.0.0.1:8443s")
    assert.is_true(rc ~= 0 and rc ~= 137, "exit code " .. tostring(rc))
    assert.matches("TLS", out .. err)
  end)

  it("refuses --threads 0 with exit 2", function()
    local _, rc, err = serve(nil, "--listen", "127.0.0.1:0", "--threads", "0")
    assert.are.equal(2, rc)
    assert.matches("threads", err)
  end)

  it("takes a flag over the environment, whatever the environment holds", function()
    local _, rc, err = serve("HOSTFLOW_THREADS=abc", "--listen", "127.0.0.1:0",
      "--threads", "0")
    assert.are.equal(2, rc)
    assert.matches("--threads", err, 1, true)
    assert.is_nil(err:find("HOSTFLOW_THREADS", 1, true), err)
  end)

  it("refuses an empty --db or :memory: rather than keep nothing", function()
    for _, db in ipairs({ "--db=", "--db=:memory:" }) do
      local _, rc, err = hostflow({ cwd = dir }, "tenant", "create", "Acme", db)
      assert.are.equal(1, rc, db)
      assert.matches("--db needs a SQLite file path or a postgres:// URL", err, 1, true)
    end
  end)

  it("refuses an IPv6 listen address with exit 2: civetweb here has no IPv6", function()
    for _, flag in ipairs({ "--listen", "--admin-listen" }) do
      local _, rc, err = serve(nil, flag, "[::1]:0")
      assert.are.equal(2, rc, flag)
      assert.matches(flag .. ": this build listens on IPv4 addresses only", err, 1, true)
    end
  end)

  it("refuses HOSTFLOW_THREADS=0 from the environment with exit 2", function()
    local _, rc = serve("HOSTFLOW_THREADS=0", "--listen", "127.0.0.1:0")
    assert.are.equal(2, rc)
  end)

  it("refuses an empty HOSTFLOW_ADMIN_TOKEN with exit 2 rather than open the admin listener",
    function()
      local _, rc, err = serve("HOSTFLOW_ADMIN_TOKEN=", "--listen", "127.0.0.1:0")
      assert.are.equal(2, rc)
      assert.matches("HOSTFLOW_ADMIN_TOKEN is set but empty", err)
    end)

  it("refuses a libpq keyword string as --db instead of making a file of that name",
    function()
      for _, db in ipairs({ "host=db dbname=hostflow password=kw-secret",
        "host=/run/postgresql dbname=hostflow password=kw-secret" }) do
        local _, rc, err = hostflow({ cwd = dir }, "tenant", "create", "Acme", "--db", db)
        assert.are.equal(1, rc, db)
        assert.matches("libpq keyword string", err, 1, true)
        assert.is_nil(err:find("kw-secret", 1, true))
      end
      assert.is_nil(h.read_file(dir .. "/host=db dbname=hostflow password=kw-secret"))
    end)

  it("refuses an unknown option with exit 2", function()
    local _, rc = serve(nil, "--listen", "127.0.0.1:0", "--bogus", "1")
    assert.are.equal(2, rc)
  end)

  it("refuses a policy with a syntax error: exit 1, naming file:line", function()
    local out, rc, err = serve(nil, "--listen", "127.0.0.1:0",
      "--policy", FIXTURES .. "policy_syntax_error.lua")
    assert.are.equal(1, rc)
    assert.matches("policy_syntax_error%.lua:%d+", out .. err)
  end)

  it("refuses a missing policy file with exit 1", function()
    local _, rc, err = serve(nil, "--listen", "127.0.0.1:0",
      "--policy", dir .. "/nope.lua")
    assert.are.equal(1, rc)
    assert.matches("nope%.lua", err)
  end)
end)

describe("hostflow policy check (SPEC §2)", function()
  it("accepts policies.example.lua with exit 0", function()
    local _, rc, err = hostflow({}, "policy", "check", h.root .. "/policies.example.lua",
      "--policy-dir", h.root .. "/policies")
    assert.are.equal(0, rc, err)
  end)

  it("refuses a policy with a syntax error: exit 1, naming file:line", function()
    local out, rc, err = hostflow({}, "policy", "check", FIXTURES .. "policy_syntax_error.lua")
    assert.are.equal(1, rc, err)
    assert.matches("policy_syntax_error%.lua:%d+", out .. err)
  end)
end)

describe("hostflow serve: port 0", function()
  it("listens on ports the kernel picks, names them in its port file and log line, " ..
    "and derives the public URL from the bound port", function()
    local srv, t = h.start_with_tenants(nil, "Acme") -- --listen 127.0.0.1:0 (start-server)
    local ports = h.json.decode(h.read_file(srv.dir .. "/ports.json"))
    assert.are.same({ public = "127.0.0.1:" .. srv.port, admin = "127.0.0.1:" .. srv.admin_port },
      ports)
    assert.are_not.equal(0, srv.port)
    assert.truthy(srv:log_text():find(("listening on 127.0.0.1:%d, admin on 127.0.0.1:%d")
      :format(srv.port, srv.admin_port), 1, true))
    assert.are.equal(200, srv:admin("GET", "/healthz").status)
    local s = srv:new_session(t)
    assert.are.equal("http://127.0.0.1:" .. srv.port .. "/payment/setup/", s.url:match("^.*/setup/"))
    srv:stop()
  end)
end)

describe("hostflow serve: signals", function()
  local srv, t

  setup(function() srv, t = h.start_with_tenants(nil, "Acme") end)
  teardown(function() srv:stop() end)

  it("keeps serving after SIGHUP", function()
    h.run("kill -HUP " .. srv.pid)
    assert.is_true(h.wait_for(function()
      return srv:log_text():find("policy: version %x+ unchanged") ~= nil or not srv:alive()
    end, 5), "no reload logged after SIGHUP")
    assert.is_true(srv:alive())
    local r = srv:create_for(t, { return_url = "https://app.example.com/x" })
    assert.are.equal(201, r.status)
  end)

  it("exits within 5 s of SIGTERM and stops accepting", function()
    assert.are.equal(200, srv:get(t.key.secret, SESSIONS).status)
    local port = srv.port
    h.run("kill -TERM " .. srv.pid)
    local deadline = socket.gettime() + 5
    while srv:alive() and socket.gettime() < deadline do socket.sleep(0.05) end
    assert.is_false(srv:alive(), "hostflow still running 5 s after SIGTERM")
    assert.truthy(srv:log_text():find("info  stopped", 1, true))
    srv.pid = nil
    local c = socket.tcp()
    c:settimeout(1)
    assert.is_nil(c:connect("127.0.0.1", port))
    c:close()
  end)
end)

-- true once signal number sig is pending for pid, blocked (ShdPnd in
-- /proc/PID/status, a bit mask).
local function pending(pid, sig)
  local mask = (h.read_file("/proc/" .. pid .. "/status") or ""):match("ShdPnd:%s*(%x+)")
  return mask ~= nil and (tonumber(mask, 16) >> (sig - 1)) & 1 == 1
end

describe("hostflow serve: a second signal", function()
  it("drains a request in flight on SIGTERM, and a second SIGTERM exits at once", function()
    local srv, t = h.start_with_tenants(nil, "Acme")
    -- a request whose body never comes: the drain waits for it
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", srv.port))
    assert(c:send("POST /api/v1/payment/sessions HTTP/1.1\r\nHost: x\r\n" ..
      "Authorization: Bearer " .. t.key.secret .. "\r\nContent-Type: application/json\r\n" ..
      "Content-Length: 100\r\n\r\n{"))
    assert.is_true(h.wait_for(function() return srv:holds(c) end, 5),
      "the server did not accept the connection")
    h.run("kill -TERM " .. srv.pid)
    assert.is_true(h.wait_for(function()
      return srv:log_text():find("again to stop at once", 1, true) ~= nil or not srv:alive()
    end, 5), "no drain logged after SIGTERM")
    assert.is_true(srv:alive(), "exited before its in-flight request finished")
    -- a reload asked meanwhile (logrotate, a closed terminal) is no stop:
    -- it stays pending, blocked, and the drain goes on
    h.run("kill -HUP " .. srv.pid)
    assert.is_true(h.wait_for(function() return pending(srv.pid, 1) or not srv:alive() end, 5))
    assert.is_true(srv:alive(), "a SIGHUP during the drain ended the process")
    assert.is_nil(srv:log_text():find("info  stopped", 1, true), "stopped before its request")
    local t0 = socket.gettime()
    h.run("kill -TERM " .. srv.pid)
    while srv:alive() and socket.gettime() - t0 < 3 do socket.sleep(0.02) end
    local took = socket.gettime() - t0
    c:close()
    assert.is_false(srv:alive())
    assert.is_true(took < 1, "took " .. took .. " s after the second SIGTERM")
    srv.pid = nil
  end)
end)
