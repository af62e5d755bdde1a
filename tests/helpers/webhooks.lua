-- tests/helpers/webhooks.lua - a running webhook receiver
-- (webhook_receiver.lua in its own process), endpoints through the API,
-- and the tenant override that lets one tenant send to loopback.
local h = require("helpers.server")
local socket = require("socket")
local cjson = h.json

local M = {}
M.PATH = "/api/v1/webhook_endpoints"

local Receiver = {}
Receiver.__index = Receiver

-- Start a receiver that fails its first fail_first requests with 500 and
-- answers the rest with 200 and body_bytes of body; fail_first "hang":
-- one that accepts every connection and never answers. port reuses a port
-- (a receiver that "comes back").
function M.receiver(fail_first, port, body_bytes)
  local self = setmetatable({}, Receiver)
  self.port = port or h.free_port()
  self.log = h.tmpdir() .. "/received.jsonl"
  self.pid = tonumber(h.run("exec lua5.4 " .. h.sh_quote(h.root .. "/tests/helpers/webhook_receiver.lua") ..
    " " .. self.port .. " " .. h.sh_quote(self.log) .. " " .. (fail_first or 0) .. " " .. (body_bytes or 2) ..
    " >>" .. h.sh_quote(self.log .. ".err") .. " 2>&1 & echo $!"):match("%d+"))
  h.track_pid(self.pid)
  local deadline = socket.gettime() + 5
  while socket.gettime() < deadline do
    if h.read_file(self.log .. ".ready") then return self end
    socket.sleep(0.02)
  end
  error("webhook receiver did not start")
end

function Receiver:url(path)
  return "http://127.0.0.1:" .. self.port .. (path or "/hooks")
end

-- Every request received so far, decoded, with the event parsed as event.
function Receiver:requests()
  local out = {}
  -- whole lines only: the receiver may be writing the last one
  for line in (h.read_file(self.log) or ""):gmatch("([^\n]+)\n") do
    local r = cjson.decode(line)
    local ok, event = pcall(cjson.decode, r.body)
    r.event = ok and event or nil
    out[#out + 1] = r
  end
  return out
end

-- Wait up to timeout seconds until pred(requests) is true; the requests.
function Receiver:wait(pred, timeout)
  local deadline = socket.gettime() + (timeout or 10)
  repeat
    local got = self:requests()
    if pred(got) then return got end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  return self:requests()
end

-- The delivered (answered 200) events, by type.
function Receiver:delivered()
  local out = {}
  for _, r in ipairs(self:requests()) do
    if r.status == 200 and r.event then out[#out + 1] = r end
  end
  return out
end

function Receiver:stop()
  if self.pid then h.run("kill -KILL " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
end

-- A policy directory for M.start: the checkout's modules, plus an
-- override for each tenant given that allows http to 127.0.0.1.
function M.policy_dir(dir, tenants)
  local pdir = dir .. "/policies"
  h.run("mkdir -p " .. h.sh_quote(pdir .. "/tenants") .. " && cp " ..
    h.sh_quote(h.root .. "/policies/allowlist.lua") .. " " .. h.sh_quote(pdir))
  for _, t in ipairs(tenants or {}) do M.allow_loopback(pdir, t) end
  return pdir
end

-- policies/tenants/<id>.lua: this tenant may also send to the suite's
-- loopback receivers; everything else goes to the shared rule.
function M.allow_loopback(pdir, t)
  h.write_file(pdir .. "/tenants/" .. t.id .. ".lua", [[
local shared = ...
return {
  check_webhook_url = function(url, ctx)
    if url.scheme == "http" and url.host == "127.0.0.1" then return true end
    return shared.check_webhook_url(url, ctx)
  end,
  examples = {
    { check = "webhook_url", url = "http://127.0.0.1:9/hooks", allow = true },
    { check = "webhook_url", url = "http://10.0.0.1/hooks", allow = false,
      code = "invalid_webhook_url" },
  },
}
]])
end

-- POST an endpoint with key secret; the response.
function M.create(srv, secret, url)
  local r = srv:request({ method = "POST", path = M.PATH, body = cjson.encode({ url = url }),
    headers = { Authorization = "Bearer " .. secret, ["Content-Type"] = "application/json" } })
  if r.json and r.json.secret then h.remember_secret(r.json.secret) end
  return r
end

-- The value of Ten99Policy-Signature split into t and the v1 list.
function M.parse_signature(header)
  local t, v1 = nil, {}
  for k, v in (header or ""):gmatch("([^=,]+)=([^,]*)") do
    if k == "t" then t = tonumber(v) elseif k == "v1" then v1[#v1 + 1] = v end
  end
  return t, v1
end

-- HMAC-SHA256 hex of "t.body" keyed with secret, by openssl (not hostflow).
function M.expected_signature(secret, t, body)
  local file = os.tmpname()
  h.write_file(file, t .. "." .. body)
  local out = h.run("openssl dgst -sha256 -r -hmac " .. h.sh_quote(secret) .. " " ..
    h.sh_quote(file))
  os.remove(file)
  return out:match("^(%x+)")
end

-- Run the README's webhook verification snippet (between the
-- webhook-verify markers) with python3 on one received request: true when
-- it accepts the signature. tolerance as the snippet's parameter.
function M.readme_verify(secret, header, body, tolerance)
  local readme = assert(h.read_file(h.root .. "/README.md"))
  local block = readme:match("<!%-%- webhook%-verify:start %-%->%s*```python\n(.-)```")
  assert(block, "README has no webhook-verify python block")
  local dir = h.tmpdir()
  h.write_file(dir .. "/verify.py", block)
  h.write_file(dir .. "/body", body)
  h.write_file(dir .. "/secret", secret)
  h.write_file(dir .. "/header", header)
  local out, rc = h.run("cd " .. h.sh_quote(dir) .. " && python3 -c " .. h.sh_quote(
    "exec(open('verify.py').read())\n" ..
    "print(verify(open('secret').read(), open('header').read(), open('body', 'rb').read()" ..
    (tolerance and (", " .. tolerance) or "") .. "))"))
  assert(rc == 0, "the README snippet failed to run: " .. out)
  return out:match("True") ~= nil
end

-- Write n cancelled sessions of tenant t (live), each with its event and
-- one pending delivery to endpoint_id, due now, straight into db (a
-- stopped server's): the outbox a tenant builds by creating and cancelling
-- sessions, in a second instead of minutes. Ids end in "_bl1" … "_bl<n>".
function M.backlog(db, t, endpoint_id, n)
  local now = os.time()
  local rows = db:match("^postgres") and "generate_series(1, %d) AS n(i)" or
    "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %d) "
    .. "SELECT i FROM c) n"
  -- the token hash only has to be unique: 32 bytes of the row number
  local hash = db:match("^postgres") and "convert_to(lpad(i::text, 32, '0'), 'UTF8')" or
    "CAST(printf('%%032d', i) AS BLOB)"
  h.sql(db, (([[
BEGIN;
INSERT INTO sessions (id, tenant_id, contractor_id, return_url, mode, token_hash, status,
  policy_version, created, expires_at, cancelled_at)
SELECT 'hps_bl' || i, '%s', '%s', 'https://app.example.com/done', 'live', ]] .. hash ..
    [[, 'cancelled', 'backlog', %d, %d, %d FROM ]] .. rows .. [[;
INSERT INTO events (id, tenant_id, type, session_id, created)
SELECT 'evt_bl' || substr(id, 7), tenant_id, 'payment.session.cancelled', id, created
FROM sessions WHERE policy_version = 'backlog' AND tenant_id = '%s';
INSERT INTO webhook_deliveries (event_id, endpoint_id, status, next_attempt_ms)
SELECT 'evt_bl' || substr(id, 7), '%s', 'pending', created * 1000
FROM sessions WHERE policy_version = 'backlog' AND tenant_id = '%s';
COMMIT;
]]):format(t.id, t.contractor.id, now, now + 1800, now, n, t.id, endpoint_id, t.id)))
end

-- `hostflow events list --json` rows.
function M.events(db, ...)
  local out, rc, err = h.cli(db, "events", "list", "--json", ...)
  assert(rc == 0, err)
  local rows = {}
  for line in out:gmatch("[^\n]+") do rows[#rows + 1] = cjson.decode(line) end
  return rows
end

return M
