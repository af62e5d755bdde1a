-- tests/helpers/checkout.lua - the Checkout.com stand-in for the live
-- processor's specs: starts tests/helpers/checkout_stub.mjs (node) on a
-- free loopback port, switches its mode, reads back what it received, and
-- makes keys and Frames-like tokens. Secret keys and tokens go to
-- h.remember_secret, so scripts/run-tests checks that none of them
-- reaches a server log or a database.
local socket = require("socket")
local cjson = require("cjson")
local h = require("helpers.server")

local M = {}

local BASE32 = "abcdefghijklmnopqrstuvwxyz234567"

-- n random characters of Checkout.com's id alphabet.
local function random_chars(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(n)
  f:close()
  return (bytes:gsub(".", function(c)
    local i = c:byte() % 32 + 1
    return BASE32:sub(i, i)
  end))
end
M.random_chars = random_chars

-- A fresh secret key (remembered as a secret), public key, token.
function M.secret_key()
  local k = "sk_sbox_" .. random_chars(26)
  h.remember_secret(k)
  return k
end

function M.public_key()
  return "pk_sbox_" .. random_chars(26)
end

function M.token()
  local t = "tok_" .. random_chars(26)
  h.remember_secret(t)
  return t
end

local Stub = {}
Stub.__index = Stub

-- Start a stub expecting secret and public (new ones by default). Its
-- output goes to DIR/checkout-stub.txt. Returns the stub: url, port,
-- secret, public.
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({}, Stub)
  self.dir = opts.dir or h.tmpdir()
  self.secret = opts.secret or M.secret_key()
  self.public = opts.public or M.public_key()
  self.port = h.free_port()
  self.url = "http://127.0.0.1:" .. self.port
  self.frames_url = self.url .. "/js/framesv2.min.js"
  local out = self.dir .. "/checkout-stub.txt"
  local pid = h.run("cd " .. h.sh_quote(h.root) .. " && CHECKOUT_STUB_PORT=" .. self.port ..
    " CHECKOUT_STUB_SECRET_KEY=" .. h.sh_quote(self.secret) ..
    " CHECKOUT_STUB_PUBLIC_KEY=" .. h.sh_quote(self.public) ..
    " exec node tests/helpers/checkout_stub.mjs >>" .. h.sh_quote(out) .. " 2>&1 & echo $!")
  self.pid = tonumber(pid:match("%d+"))
  h.track_pid(self.pid)
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect("127.0.0.1", self.port) then
      c:close()
      return self
    end
    c:close()
    socket.sleep(0.05)
  end
  error("checkout stub did not start:\n" .. (h.read_file(out) or ""))
end

local function call(self, method, path, body)
  local r = h.request(self.port, { method = method, path = path, body = body,
    headers = body and { ["Content-Type"] = "application/json" } or {} })
  assert(r.status == 200, "checkout stub " .. path .. ": " .. tostring(r.status or r.error))
  return r.json
end

-- Answer /instruments as mode says (approve, slow, decline, fail, hang,
-- redirect, huge, garbage); error_codes for decline.
function Stub:mode(name, error_codes)
  call(self, "POST", "/_stub/mode", cjson.encode({ mode = name, error_codes = error_codes }))
end

-- Every request /instruments received, oldest first: {method, path,
-- headers = {authorization, content-type, accept}, body}.
function Stub:requests()
  return call(self, "GET", "/_stub/requests")
end

-- Forget the requests, answer unanswered ones, back to approve.
function Stub:reset()
  call(self, "POST", "/_stub/reset", "{}")
end

function Stub:stop()
  if not self.pid then return end
  h.run("kill " .. self.pid .. " 2>/dev/null")
  local deadline = socket.gettime() + 5
  while socket.gettime() < deadline do
    local stat = h.read_file("/proc/" .. self.pid .. "/stat") or ""
    local state = stat:match("^%d+ %b() (%a)")
    if state == nil or state == "Z" then break end
    socket.sleep(0.02)
  end
  self.pid = nil
end

-- serve flags pointing hostflow at this stub (the secret key goes through
-- the environment: see M.env).
function Stub:args(extra)
  local a = { "--checkout-public-key", self.public, "--checkout-base-url", self.url,
    "--checkout-frames-url", self.frames_url }
  for _, v in ipairs(extra or {}) do a[#a + 1] = v end
  return a
end

function Stub:env(secret)
  return { HOSTFLOW_CHECKOUT_SECRET_KEY = secret or self.secret }
end

return M
