-- tests/helpers/crash_client.lua - one load process of
-- tests/integration/crash_spec.lua. Loops: create a session with a TEST
-- key; for about half of them, land, redeem, try the spent URL once more,
-- open the card page and complete it with 4242 4242 4242 4242. Writes one
-- line to OUTFILE for every acknowledgement it fully received, and only
-- after receiving it:
--   created <id>                a whole 201 (body read and decoded)
--   token <id> <api|hosted> <path>   the session's single-use URL path
--   redeemed <id>               a 303 to /payment/sessions/<id> with a cookie
--   reredeem <id> <status>      a second POST of an already-redeemed URL
--   completed <id>              a 303 to return_url?hps_id=<id>&status=completed
--   unexpected <step> <id> <status> <body>   any other complete answer
-- A request that fails on the wire (refused, reset, cut short) records
-- nothing. Exits on its own once the server has been unreachable for 1 s
-- (or after MAX_SECONDS in all), printing "requests=N errors=M" on stdout.
-- Usage: lua5.4 crash_client.lua PORT TEST_SECRET CONTRACTOR OUTFILE SEED
package.path = (os.getenv("HOSTFLOW_ROOT") or ".") .. "/tests/?.lua;" .. package.path
local h = require("helpers.server")
local hosted = require("helpers.hosted")
local socket = require("socket")

local port, secret, contractor, outfile, seed =
  tonumber(arg[1]), arg[2], arg[3], arg[4], tonumber(arg[5])
assert(port and secret and contractor and outfile and seed, "usage: PORT SECRET CONTRACTOR OUTFILE SEED")

local RETURN_URL = "https://app.example.com/done"
local UNREACHABLE_S = 1.0
local MAX_SECONDS = 30

math.randomseed(seed)
local out = assert(io.open(outfile, "a"))
out:setvbuf("line")
local function record(...)
  out:write(table.concat({ ... }, " "), "\n")
end

-- srv-like object for the helpers.hosted functions
local srv = { request = function(_, req) return h.request(port, req) end }

local requests, errors = 0, 0
local down_since = nil -- first wire failure since the last complete answer

local function unexpected(step, id, r)
  local body = tostring(r.body or ""):gsub("%s+", " "):sub(1, 200)
  record("unexpected", step, id or "-", tostring(r.status), body)
end

-- What a socket says when the server is down, restarting or was killed
-- mid-answer; any other error (a body that is not JSON, a header line
-- without a colon) is the server's answer gone wrong.
local WIRE_ERRORS = { "closed", "refused", "timeout", "reset", "broken pipe", "not connected" }

local function wire_error(err)
  err = tostring(err):lower()
  for _, w in ipairs(WIRE_ERRORS) do
    if err:find(w, 1, true) then return true end
  end
  return false
end

-- One exchange; the response, or nil after a wire failure (connection
-- refused, reset, or an answer cut short).
local function exchange(fn)
  requests = requests + 1
  local ok, r = pcall(fn)
  if ok and r and r.status then
    down_since = nil
    return r
  end
  if not ok and not wire_error(r) then
    unexpected("answer", nil, { status = "malformed", body = tostring(r) })
  end
  errors = errors + 1
  down_since = down_since or socket.gettime()
  return nil
end

-- Creates go over one kept-alive connection, opened again after any
-- failure: from its second request on, the server's writer thread sends
-- the answer once the row is committed, not the request's worker.
local kept
local function create_request(body)
  if not kept then
    local c = assert(socket.tcp())
    c:settimeout(10)
    local ok, err = c:connect("127.0.0.1", port)
    if not ok then
      c:close()
      error(err, 0)
    end
    kept = c
  end
  local ok, r = pcall(function()
    assert(kept:send("POST /api/v1/payment/sessions HTTP/1.1\r\nHost: 127.0.0.1:" .. port ..
      "\r\nAuthorization: Bearer " .. secret .. "\r\nContent-Type: application/json\r\n" ..
      "Content-Length: " .. #body .. "\r\n\r\n" .. body))
    return h.read_response(kept)
  end)
  if not ok or not r.status or (r.headers.connection or ""):lower() == "close" then
    kept:close()
    kept = nil
  end
  if not ok then error(r, 0) end
  if not r.status then error(r.error or "closed", 0) end
  return r
end

local function one_session()
  local r = exchange(function()
    return create_request(h.json.encode({ contractor = contractor, return_url = RETURN_URL }))
  end)
  if not r then return end
  if r.status ~= 201 or type(r.json) ~= "table" or type(r.json.id) ~= "string"
      or type(r.json.url) ~= "string" then
    return unexpected("create", nil, r)
  end
  local id, path = r.json.id, hosted.path_of(r.json.url)
  h.remember_secret(path:match("/payment/setup/%a+_(.*)$"))
  local plan = math.random() < 0.5 and "hosted" or "api"
  record("created", id)
  record("token", id, plan, path)
  if plan ~= "hosted" then return end

  -- landing: shows the page, changes nothing
  r = exchange(function() return hosted.get(srv, path) end)
  if not r then return end
  if r.status ~= 200 then return unexpected("landing", id, r) end

  -- redemption
  r = exchange(function() return hosted.post_form(srv, path, nil, nil) end)
  if not r then return end
  local cookie = r.status == 303 and hosted.cookie_of(r)
  if r.status ~= 303 or r.headers["location"] ~= "/payment/sessions/" .. id or not cookie then
    return unexpected("redeem", id, r)
  end
  record("redeemed", id)

  -- the spent URL once more: must be the 404 page
  r = exchange(function() return hosted.post_form(srv, path, nil, nil) end)
  if not r then return end
  record("reredeem", id, tostring(r.status))

  -- card page and its csrf value
  r = exchange(function() return hosted.get(srv, "/payment/sessions/" .. id, cookie) end)
  if not r then return end
  local csrf = r.status == 200 and hosted.csrf_of(r.body)
  if not csrf then return unexpected("card", id, r) end

  -- save the approved test card
  local flow = { session = { id = id }, cookie = cookie, csrf = csrf }
  r = exchange(function() return hosted.complete(srv, flow, hosted.good_card("4242424242424242")) end)
  if not r then return end
  if r.status ~= 303 or
      r.headers["location"] ~= RETURN_URL .. "?hps_id=" .. id .. "&status=completed" then
    return unexpected("complete", id, r)
  end
  record("completed", id)
end

io.write("ready\n")
io.flush()
local started = socket.gettime()
while true do
  local now = socket.gettime()
  if down_since and now - down_since >= UNREACHABLE_S then break end
  if now - started >= MAX_SECONDS then break end
  if down_since then socket.sleep(0.01) end
  local ok, err = pcall(one_session)
  if not ok then
    record("unexpected", "client", "-", "error", (tostring(err):gsub("%s+", " ")))
  end
end
out:close()
io.write("requests=", requests, " errors=", errors, "\n")
