-- tests/helpers/load_client.lua - one client of the reload storm test:
-- creates sessions for SECONDS, alternating a return_url every policy
-- version allows with one every version refuses, and prints
-- "ok=N wrong=M" and each wrong answer. Usage:
--   lua5.4 load_client.lua PORT SECRET CONTRACTOR SECONDS
package.path = (os.getenv("HOSTFLOW_ROOT") or ".") .. "/tests/?.lua;" .. package.path
local h = require("helpers.server")
local socket = require("socket")

local port, secret, contractor, seconds = tonumber(arg[1]), arg[2], arg[3], tonumber(arg[4])
local cases = {
  { url = "https://app.example.com/done", want = 201 },
  { url = "https://evil.example.net/done", want = 400 },
}
local ok, wrong, i = 0, 0, 0
local deadline = socket.gettime() + seconds
while socket.gettime() < deadline do
  i = i + 1
  local case = cases[i % 2 + 1]
  local r = h.request(port, { method = "POST", path = "/api/v1/payment/sessions",
    headers = { Authorization = "Bearer " .. secret, ["Content-Type"] = "application/json" },
    body = h.json.encode({ contractor = contractor, return_url = case.url }) })
  if r.status == case.want then
    ok = ok + 1
  else
    wrong = wrong + 1
    io.write("wrong: ", case.url, " -> ", tostring(r.status), " ", tostring(r.body or r.error), "\n")
  end
end
io.write("ok=", ok, " wrong=", wrong, "\n")
