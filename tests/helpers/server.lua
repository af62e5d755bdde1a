-- tests/helpers/server.lua - start the real hostflow binary (through
-- tests/helpers/start-server: loopback, ports the kernel picks, a temporary
-- database), drive its CLI, and talk raw HTTP
-- to it. Used by tests/integration/*_spec.lua.
local socket = require("socket")
local cjson = require("cjson")
local luassert = require("luassert")

local M = {}

M.bin = os.getenv("HOSTFLOW_BIN") or "build/hostflow"
-- the same server with a clock tests move (opts.test_clock, Server:advance)
M.test_bin = os.getenv("HOSTFLOW_TEST_BIN") or (M.bin .. "-test")
M.root = os.getenv("HOSTFLOW_ROOT") or "."

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.sh_quote = sh_quote

-- Run a shell command; returns stdout, exit code.
local function run(cmd)
  local p = assert(io.popen(cmd .. "; echo \"__rc=$?\"", "r"))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return out:gsub("__rc=%d+%s*$", ""), rc
end
M.run = run

-- Under $HOSTFLOW_TEST_TMP when set: scripts/run-tests scans the server
-- logs there for sanitizer reports after the suites.
function M.tmpdir()
  local base = os.getenv("HOSTFLOW_TEST_TMP") or "/tmp"
  local out = run("mktemp -d " .. sh_quote(base) .. "/hostflow-test.XXXXXX")
  return (out:gsub("%s+$", ""))
end

-- The database the suite runs on. HOSTFLOW_TEST_DB_URL, a PostgreSQL URL
-- whose role may create databases (scripts/run-tests starts one), selects
-- PostgreSQL: each server then gets a database of its own. Otherwise each
-- gets a SQLite file in its temporary directory.
M.pg_url = os.getenv("HOSTFLOW_TEST_DB_URL")
if M.pg_url == "" then M.pg_url = nil end
M.backend = M.pg_url and "postgres" or "sqlite"

local db_count = 0

-- The same URL naming database name instead.
function M.pg_database_url(name)
  local base, query = M.pg_url:match("^(.-://[^/]*)/?[^?]*(.*)$")
  return base .. "/" .. name .. query
end

-- A new, empty database for one server: its --db value (a fresh PostgreSQL
-- database, or dir/hostflow.db), made by tests/helpers/start-server.
function M.new_db(dir)
  return M.start_server({ "--new-db", "--dir", dir }).db
end

-- One SQL query on db (a server's --db); trimmed output, one row a line,
-- columns separated by '|'.
function M.sql(db, query)
  local cmd
  if db:match("^postgres") then
    cmd = "psql " .. sh_quote(db) .. " -qAtX -v ON_ERROR_STOP=1 -c " .. sh_quote(query)
  else
    cmd = "sqlite3 -cmd '.timeout 2000' " .. sh_quote(db) .. " " .. sh_quote(query)
  end
  local out, rc = M.run(cmd .. " 2>&1")
  luassert.are.equal(0, rc, "query failed: " .. out)
  return (out:gsub("%s+$", ""))
end

-- Everything hostflow keeps for db: for SQLite the bytes of the file, its
-- WAL and shm; for PostgreSQL a data dump of the database.
function M.db_bytes(db)
  if db:match("^postgres") then
    local out, rc = M.run("pg_dump " .. sh_quote(db) .. " --data-only 2>&1")
    luassert.are.equal(0, rc, "pg_dump failed: " .. out)
    return out
  end
  local parts = {}
  for _, suffix in ipairs({ "", "-wal", "-shm", "-journal" }) do
    parts[#parts + 1] = M.read_file(db .. suffix) or ""
  end
  return table.concat(parts, "\0")
end

function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- true once pred() is, polled until seconds have passed; false after.
function M.wait_for(pred, seconds)
  local deadline = socket.gettime() + seconds
  repeat
    if pred() then return true end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return false
end

-- Run `hostflow ARGS... --db DB`; returns stdout, exit code, stderr.
function M.cli(db, ...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = sh_quote(a) end
  local errfile = os.tmpname()
  local out, rc = run(sh_quote(M.bin) .. " " .. table.concat(args, " ") ..
    (db and (" --db " .. sh_quote(db)) or "") .. " 2>" .. errfile)
  local err = M.read_file(errfile) or ""
  os.remove(errfile)
  return out, rc, err
end

-- Run a CLI command that prints --json and decode it.
function M.cli_json(db, ...)
  local out, rc, err = M.cli(db, ...)
  assert(rc == 0, "hostflow " .. table.concat({ ... }, " ") .. " failed: " .. err)
  return cjson.decode(out)
end

-- A tenant with a live key, a test key and one contractor.
function M.tenant(db, name, hosts)
  local args = { "tenant", "create", name or "Acme", "--json" }
  for _, h in ipairs(hosts or { "app.example.com" }) do
    args[#args + 1] = "--redirect-host"
    args[#args + 1] = h
  end
  local t = M.cli_json(db, table.unpack(args))
  t.key = M.cli_json(db, "key", "create", t.id, "--json")
  t.test_key = M.cli_json(db, "key", "create", t.id, "--test", "--json")
  M.remember_secret(t.key.secret)
  M.remember_secret(t.test_key.secret)
  t.contractor = M.cli_json(db, "contractor", "create", t.id, "--json")
  return t
end

-- One raw HTTP/1.1 exchange on a fresh connection. req = {method, path,
-- headers = {name = value}, body, raw = exact bytes to send instead}.
-- Returns {status, headers (lower-case names), body, json}.
function M.request(port, req)
  local c = assert(socket.tcp())
  c:settimeout(10)
  assert(c:connect("127.0.0.1", port))
  local data = req.raw
  if not data then
    local lines = { (req.method or "GET") .. " " .. req.path .. " HTTP/1.1",
      "Host: 127.0.0.1:" .. port, "Connection: close" }
    for k, v in pairs(req.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
    if req.body then lines[#lines + 1] = "Content-Length: " .. #req.body end
    data = table.concat(lines, "\r\n") .. "\r\n\r\n" .. (req.body or "")
  end
  assert(c:send(data))
  local res = M.read_response(c)
  c:close()
  return res
end

-- Read one HTTP/1.1 response from connected socket c: {status, headers
-- (lower-case names), body, json}, or {error} when no status line came;
-- lenient: a cut-off head or body, or a body that is not JSON, is kept as
-- far as it came instead of raising.
function M.read_response(c, lenient)
  local status_line, err = c:receive("*l")
  if not status_line then return { error = err } end
  local res = { status = tonumber(status_line:match("^HTTP/1%.%d (%d%d%d)")), headers = {} }
  while true do
    local line, lerr = c:receive("*l")
    if lenient and not line then break end
    assert(line, lerr)
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k or not lenient then res.headers[k:lower()] = v end
  end
  local len = tonumber(res.headers["content-length"] or "")
  if len then
    res.body = len > 0 and (lenient and (c:receive(len) or "") or assert(c:receive(len))) or ""
  else
    res.body = c:receive("*a") or ""
  end
  if (res.headers["content-type"] or ""):find("application/json", 1, true) and #res.body > 0 then
    if lenient then
      local ok, v = pcall(cjson.decode, res.body)
      res.json = ok and v or nil
    else
      res.json = cjson.decode(res.body)
    end
  end
  return res
end

-- Sorted list of a table's keys.
function M.keys_of(t)
  local k = {}
  for name in pairs(t) do k[#k + 1] = name end
  table.sort(k)
  return k
end

-- Assert the flat error body of SPEC §3: status, application/json, the
-- error_code, a non-empty message, param when given, and no other field.
function M.assert_error(r, status, code, param)
  luassert.are.equal(status, r.status, "status; body: " .. tostring(r.body or r.error))
  luassert.matches("^application/json", r.headers["content-type"] or "")
  luassert.is_table(r.json, "body is not JSON: " .. tostring(r.body))
  luassert.are.equal(code, r.json.error_code)
  luassert.are.equal("string", type(r.json.message))
  luassert.is_true(#r.json.message > 0)
  for k in pairs(r.json) do
    luassert.is_true(k == "error_code" or k == "message" or k == "param",
      "unexpected field in error body: " .. k)
  end
  if param then luassert.are.equal(param, r.json.param) end
  -- the SDKs retry 409 and 5xx unless told not to (SPEC section 3)
  local may_help = status == 429 or (status >= 500 and code ~= "policy_error")
  luassert.are.equal(may_help and "true" or "false", r.headers["ten99policy-should-retry"],
    "Ten99Policy-Should-Retry of a " .. status .. " " .. tostring(code))
end

-- A valid create body for tenant t (its contractor, an allowed return_url);
-- fields override or add keys.
function M.session_body(t, fields)
  local b = { contractor = t.contractor.id, return_url = "https://app.example.com/done" }
  for k, v in pairs(fields or {}) do b[k] = v end
  return b
end

-- The server's end of connected socket c to 127.0.0.1:port, from
-- /proc/net/tcp: {inode, unread = bytes the server has not read yet}, or
-- nil while there is none.
function M.server_end(port, c)
  local _, from = c:getsockname()
  local here, there = (":%04X"):format(port), (":%04X"):format(tonumber(from))
  for line in (M.read_file("/proc/net/tcp") or ""):gmatch("[^\n]+") do
    -- sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode
    local f = {}
    for field in line:gmatch("%S+") do f[#f + 1] = field end
    if f[2] and f[2]:sub(-5) == here and f[3]:sub(-5) == there then
      return { inode = f[10], unread = tonumber(f[5]:match(":(%x+)$"), 16) }
    end
  end
  return nil
end

local Server = {}
Server.__index = Server

-- true once this server process holds the other end of c (civetweb
-- accepted the connection).
function Server:holds(c)
  local e = M.server_end(self.port, c)
  return e ~= nil and M.run("ls -l /proc/" .. self.pid .. "/fd 2>/dev/null")
    :find("socket:[" .. e.inode .. "]", 1, true) ~= nil
end

-- Running, and not a zombie waiting to be reaped (the processes a spec
-- starts are not its children, so their exit status is not its to collect).
local function running(pid)
  local stat = M.read_file("/proc/" .. pid .. "/stat") or ""
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z"
end

-- Run tests/helpers/start-server with args (env: a string of NAME=value
-- words put before it); returns its JSON line, decoded.
function M.start_server(args, env)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = sh_quote(a) end
  local errfile = os.tmpname()
  local out, rc = run((env or "") .. sh_quote(M.root .. "/tests/helpers/start-server") .. " " ..
    table.concat(quoted, " ") .. " 2>" .. errfile)
  local err = M.read_file(errfile) or ""
  os.remove(errfile)
  if rc ~= 0 then error(err, 2) end
  return cjson.decode(out)
end

-- Start a server (tests/helpers/start-server: both listeners on ports the
-- kernel picks, up once its port file says so). opts: dir (default: new
-- temp dir), db (default: a new database, M.new_db), policy (file path),
-- args (extra flags), env (table), wrap (a command's words the server runs
-- under, such as strace: self.pid is then the server's, the wrapper's
-- child), test_clock (run M.test_bin, whose clock Server:advance moves).
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({}, Server)
  local policy = opts.policy or (M.root .. "/policies.example.lua")
  local dir = opts.dir or M.tmpdir()
  local launcher = { "--dir", dir }
  if opts.db then launcher[#launcher + 1] = "--db"; launcher[#launcher + 1] = opts.db end
  for _, w in ipairs(opts.wrap or {}) do
    launcher[#launcher + 1] = "--wrap"
    launcher[#launcher + 1] = w
  end
  launcher[#launcher + 1] = "--"
  local env = "HOSTFLOW_BIN=" .. sh_quote(opts.test_clock and M.test_bin or M.bin) .. " "
  for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. sh_quote(v) .. " " end
  -- the example policy needs the checkout's policies/; a custom policy gets
  -- a directory of its own that a test may fill
  local policy_dir = opts.policy_dir or (opts.policy and (dir .. "/policies")
    or (M.root .. "/policies"))
  local flags = { "--policy", policy, "--policy-dir", policy_dir, "--threads", "8",
    -- suites send bursts from one key and address; limits get their own spec
    "--rate-create-key", "0", "--rate-create-ip", "0", "--rate-redeem-ip", "0" }
  for _, a in ipairs(opts.args or {}) do flags[#flags + 1] = a end
  for _, a in ipairs(flags) do launcher[#launcher + 1] = a end
  local ok, started = pcall(M.start_server, launcher, env)
  if not ok then error("hostflow did not start: " .. tostring(started), 2) end
  self.dir, self.db, self.log = started.dir, started.db, started.log
  self.policy, self.policy_dir = policy, policy_dir
  -- cjson decodes every number as a float: "1234.0" names no process
  self.pid = math.tointeger(started.pid)
  self.wrapper_pid = math.tointeger(started.wrapper_pid) -- nil when it is null
  self.port = tonumber(started.public:match(":(%d+)$"))
  self.admin_port = tonumber(started.admin:match(":(%d+)$"))
  return self
end

-- Start a server (opts as for M.start) with one tenant per name, each
-- allowing app.example.com; returns the server, then the tenants in order.
function M.start_with_tenants(opts, ...)
  local srv, tenants = M.start(opts), {}
  for i, name in ipairs({ ... }) do tenants[i] = M.tenant(srv.db, name) end
  return srv, table.unpack(tenants)
end

function Server:alive()
  return running(self.pid)
end

-- Send a signal (default TERM) and wait up to 10 s for the process to
-- exit; KILL it after that.
function Server:stop(sig)
  if not self.pid then return end
  run("kill -" .. (sig or "TERM") .. " " .. self.pid .. " 2>/dev/null")
  local deadline = socket.gettime() + 10
  while self:alive() and socket.gettime() < deadline do socket.sleep(0.02) end
  if self:alive() then run("kill -KILL " .. self.pid) end
  self.pid = nil
  -- a wrapper (strace) has written all it will once it has exited too
  while self.wrapper_pid and running(self.wrapper_pid) and socket.gettime() < deadline + 10 do
    socket.sleep(0.02)
  end
end

function Server:request(req)
  return M.request(self.port, req)
end

-- A request to the admin listener.
function Server:admin(method, path, token)
  return M.request(self.admin_port, { method = method, path = path,
    headers = token and { Authorization = "Bearer " .. token } or {} })
end

-- Move a test_clock server's clock seconds forward and run its periodic
-- threads (expiry sweep, ...) at once; returns the whole offset in seconds.
function Server:advance(seconds)
  local r = M.request(self.admin_port, { method = "POST", path = "/admin/v1/test/clock",
    body = cjson.encode({ advance_seconds = seconds }) })
  luassert.are.equal(200, r.status, "advance: " .. tostring(r.body))
  return r.json.offset_seconds
end

-- Resident memory of the server process in KiB.
function Server:rss_kib()
  local status = M.read_file("/proc/" .. self.pid .. "/status") or ""
  return tonumber(status:match("VmRSS:%s*(%d+)"))
end

-- POST a JSON body to the sessions API with a key secret.
function Server:create(secret, body, headers)
  local h = { ["Content-Type"] = "application/json" }
  if secret then h["Authorization"] = "Bearer " .. secret end
  for k, v in pairs(headers or {}) do h[k] = v end
  local r = self:request({ method = "POST", path = "/api/v1/payment/sessions", headers = h,
    body = type(body) == "table" and cjson.encode(body) or body })
  if r.json and type(r.json.url) == "string" then
    M.remember_secret(r.json.url:match("/payment/setup/%a+_(.*)$"))
  end
  return r
end

-- POST M.session_body(t, fields) with t's live key; headers as for create.
function Server:create_for(t, fields, headers)
  return self:create(t.key.secret, M.session_body(t, fields), headers)
end

-- Create a session as create_for does, assert the 201, return its object.
function Server:new_session(t, fields)
  local r = self:create_for(t, fields)
  luassert.are.equal(201, r.status, r.body)
  return r.json
end

function Server:get(secret, path)
  return self:request({ method = "GET", path = path,
    headers = secret and { Authorization = "Bearer " .. secret } or {} })
end

function Server:post(secret, path, body)
  return self:request({ method = "POST", path = path, body = body,
    headers = secret and { Authorization = "Bearer " .. secret } or {} })
end

function Server:log_text()
  return M.read_file(self.log) or ""
end

-- Note a process the suite started: scripts/run-tests kills what is left
-- of them at the end, so a spec that fails half-way leaves nothing running.
function M.track_pid(pid)
  local dir = os.getenv("HOSTFLOW_TEST_TMP")
  if not dir or not pid then return end
  local f = assert(io.open(dir .. "/pids", "a"))
  f:write(pid, "\n")
  f:close()
end

-- Note a secret (URL token, key secret, cookie, csrf value) the suite has
-- seen: scripts/run-tests checks at the end that none of them appears in
-- any server log or database file of the run.
function M.remember_secret(value)
  local dir = os.getenv("HOSTFLOW_TEST_TMP")
  if not dir or not value or #value < 8 then return end
  local f = assert(io.open(dir .. "/secrets.txt", "a"))
  f:write(value, "\n")
  f:close()
end

M.json = cjson
return M
