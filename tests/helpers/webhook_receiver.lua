-- tests/helpers/webhook_receiver.lua - a webhook endpoint for the suite.
--
--   lua5.4 webhook_receiver.lua PORT LOGFILE [FAIL_FIRST [BODY_BYTES]]
--   lua5.4 webhook_receiver.lua PORT LOGFILE hang
--
-- Accepts HTTP/1.1 POSTs on 127.0.0.1:PORT one at a time, answers the
-- first FAIL_FIRST (default 0) with 500 and the rest with 200 (with a body
-- of BODY_BYTES bytes, default 2), and appends
-- one JSON line per request to LOGFILE: {n, status, path, signature, type,
-- body} (body as received, byte for byte). With "hang" it accepts every
-- connection and never reads from it, answers or closes it (an endpoint
-- that never answers), and logs {n, hung = true} for each. LOGFILE.ready
-- appears once it listens. It runs until killed.
local socket = require("socket")
local cjson = require("cjson")

local port, logfile = tonumber(arg[1]), arg[2]
local hang = arg[3] == "hang"
local fail_first = hang and 0 or tonumber(arg[3] or "0")
local body_bytes = tonumber(arg[4] or "2")
-- a port just given up (the suite reuses one for a receiver that "comes
-- back") may take a moment to be free again
local server, why
for _ = 1, 60 do
  server, why = socket.bind("127.0.0.1", port)
  if server then break end
  socket.sleep(0.05)
end
assert(server, why)
-- ready: the suite waits for this file, not by connecting (a connect to a
-- free port in the ephemeral range can meet itself and take the port)
local ready = assert(io.open(logfile .. ".ready", "w"))
ready:close()
local n = 0
local held = {} -- hang: every connection, kept open

local function log(entry)
  local f = assert(io.open(logfile, "a"))
  f:write(cjson.encode(entry), "\n")
  f:close()
end

local function handle(c)
  c:settimeout(5)
  local line = c:receive("*l")
  if not line then return end
  local method, path = line:match("^(%u+) (%S+) HTTP/1%.1$")
  local headers = {}
  while true do
    local h = c:receive("*l")
    if not h or h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    if k then headers[k:lower()] = v end
  end
  local body = ""
  local len = tonumber(headers["content-length"] or "0")
  if len and len > 0 then body = c:receive(len) or "" end
  n = n + 1
  local status = n <= fail_first and 500 or 200
  log({ n = n, status = status, method = method, path = path,
    signature = headers["ten99policy-signature"], content_type = headers["content-type"],
    user_agent = headers["user-agent"], body = body })
  local reply = status == 200 and ("k"):rep(body_bytes) or "failing on purpose"
  c:send("HTTP/1.1 " .. status .. " X\r\nContent-Length: " .. #reply ..
    "\r\nConnection: close\r\n\r\n" .. reply)
end

while true do
  local c = server:accept()
  if c and hang then
    n = n + 1
    held[#held + 1] = c
    log({ n = n, hung = true })
  elseif c then
    pcall(handle, c)
    c:close()
  end
end
