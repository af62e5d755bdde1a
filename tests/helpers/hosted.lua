-- tests/helpers/hosted.lua - the browser's side of the hosted flow (SPEC
-- §4) for tests/integration/hosted_flow_spec.lua: the single-use URL's
-- path, the session cookie, form posts, the csrf value of the card page
-- and an N-way race of one raw request. Every cookie and csrf value seen
-- goes to h.remember_secret, so scripts/run-tests can check that none of
-- them reaches a log or a database.
local socket = require("socket")
local luassert = require("luassert")
local h = require("helpers.server")

local M = {}

M.COOKIE = "hf_session"

-- The path of a session url ("http://host:port/payment/setup/test_…").
function M.path_of(url)
  return assert(url:match("^https?://[^/]+(/.*)$"), "not an absolute url: " .. tostring(url))
end

-- The hf_session value of response r's Set-Cookie (remembered as a
-- secret), or nil.
function M.cookie_of(r)
  local sc = r.headers and r.headers["set-cookie"]
  local v = sc and sc:match("^%s*" .. M.COOKIE .. "=([^;]*)")
  if v then h.remember_secret(v) end
  return v
end

-- Attributes of a Set-Cookie value: { name = value or true } with
-- lower-case names (the first pair, the cookie itself, is left out).
function M.cookie_attrs(set_cookie)
  local attrs, first = {}, true
  for part in (set_cookie .. ";"):gmatch("([^;]*);") do
    part = part:match("^%s*(.-)%s*$")
    if first then
      first = false
    elseif part ~= "" then
      local k, v = part:match("^([^=]+)=(.*)$")
      if k then attrs[k:lower()] = v else attrs[part:lower()] = true end
    end
  end
  return attrs
end

-- Percent-encode one form value as a browser does
-- (application/x-www-form-urlencoded: space as '+').
local function form_escape(s)
  return (tostring(s):gsub("[^%w%-%._~ ]", function(c)
    return string.format("%%%02X", c:byte())
  end):gsub(" ", "+"))
end

-- Encode fields, a list of {name, value} pairs (order kept) or a map.
function M.form_encode(fields)
  local parts = {}
  if fields[1] then
    for _, kv in ipairs(fields) do
      parts[#parts + 1] = form_escape(kv[1]) .. "=" .. form_escape(kv[2])
    end
  else
    local names = h.keys_of(fields)
    for _, k in ipairs(names) do
      parts[#parts + 1] = form_escape(k) .. "=" .. form_escape(fields[k])
    end
  end
  return table.concat(parts, "&")
end

local function cookie_headers(cookie, extra)
  local hd = {}
  if cookie then hd["Cookie"] = M.COOKIE .. "=" .. cookie end
  for k, v in pairs(extra or {}) do hd[k] = v end
  return hd
end

-- GET path with the session cookie (or none).
function M.get(srv, path, cookie)
  return srv:request({ method = "GET", path = path, headers = cookie_headers(cookie) })
end

-- POST a form (fields as for form_encode, or nil for an empty body) to
-- path with the session cookie (or none).
function M.post_form(srv, path, fields, cookie)
  return srv:request({ method = "POST", path = path,
    headers = cookie_headers(cookie,
      { ["Content-Type"] = "application/x-www-form-urlencoded" }),
    body = fields and M.form_encode(fields) or "" })
end

-- The csrf value of the card page's forms (remembered as a secret). Both
-- forms must carry the same value; returns nil when the page has none.
function M.csrf_of(html)
  local values = {}
  for v in (html or ""):gmatch('<input type="hidden" name="csrf" value="([^"]*)"') do
    values[#values + 1] = v
    h.remember_secret(v)
  end
  if #values == 0 then return nil end
  for i = 2, #values do
    luassert.are.equal(values[1], values[i], "the two forms carry different csrf values")
  end
  return values[1]
end

-- Occurrences of plain substring needle in s.
function M.count(s, needle)
  local n, i = 0, 1
  while true do
    local a, b = s:find(needle, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

-- The API object of session id, read with key secret.
function M.api_session(srv, secret, id)
  local r = srv:get(secret, "/api/v1/payment/sessions/" .. id)
  luassert.are.equal(200, r.status, r.body)
  return r.json
end

-- Create a session with key secret (fields as for h.session_body), redeem
-- its URL and load the card page, expecting card_status (default 200).
-- Returns a flow table: session (the 201 object), path (of its URL),
-- cookie, csrf, card (the card page response), redeem (the 303).
function M.open(srv, t, secret, fields, card_status)
  local r = srv:create(secret, h.session_body(t, fields))
  luassert.are.equal(201, r.status, r.body)
  local flow = { session = r.json, path = M.path_of(r.json.url) }
  flow.redeem = M.post_form(srv, flow.path, nil, nil)
  luassert.are.equal(303, flow.redeem.status, flow.redeem.body)
  flow.cookie = M.cookie_of(flow.redeem)
  luassert.is_string(flow.cookie, "redemption set no " .. M.COOKIE .. " cookie")
  flow.card = M.get(srv, "/payment/sessions/" .. flow.session.id, flow.cookie)
  luassert.are.equal(card_status or 200, flow.card.status, flow.card.body)
  flow.csrf = M.csrf_of(flow.card.body)
  luassert.is_string(flow.csrf, "card page without csrf value")
  return flow
end

-- POST the card form of flow (card: card_number, exp_month, exp_year,
-- cvc; csrf defaults to the flow's own).
function M.complete(srv, flow, card)
  local fields = { { "card_number", card.card_number or "" },
    { "exp_month", card.exp_month or "" }, { "exp_year", card.exp_year or "" },
    { "cvc", card.cvc or "" } }
  if card.csrf ~= false then fields[#fields + 1] = { "csrf", card.csrf or flow.csrf } end
  return M.post_form(srv, "/payment/sessions/" .. flow.session.id .. "/complete", fields,
    flow.cookie)
end

-- POST the cancel form of flow.
function M.cancel(srv, flow, csrf)
  return M.post_form(srv, "/payment/sessions/" .. flow.session.id .. "/cancel",
    { { "csrf", csrf or flow.csrf } }, flow.cookie)
end

-- A card number, an expiry two years ahead and a cvc that pass validation.
function M.good_card(number)
  return { card_number = number or "4242 4242 4242 4242", exp_month = "12",
    exp_year = tostring(os.date("!*t").year + 2), cvc = "123" }
end

-- Race n copies of one raw request: open n connections, send all n
-- requests before reading any answer, then read all answers. Returns the
-- n responses (h.read_response tables, {error} for a dropped connection).
-- port may be a list of ports (several nodes), taken in turn; raw may then
-- be a function of the port giving its bytes.
function M.race(port, n, raw)
  local conns, bytes = {}, {}
  for i = 1, n do
    local p = type(port) == "table" and port[(i - 1) % #port + 1] or port
    local c = assert(socket.tcp())
    c:settimeout(10)
    assert(c:connect("127.0.0.1", p))
    conns[i] = c
    bytes[i] = type(raw) == "function" and raw(p) or raw
  end
  for i = 1, n do assert(conns[i]:send(bytes[i])) end
  local out = {}
  for i = 1, n do
    out[i] = h.read_response(conns[i], true)
    conns[i]:close()
  end
  return out
end

-- The raw bytes of a bodyless POST of path (as the landing page's
-- Continue button sends it).
function M.raw_post(port, path)
  return "POST " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. port ..
    "\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded" ..
    "\r\nContent-Length: 0\r\n\r\n"
end

-- One SQL query on db, either database; trimmed output (server.lua).
M.sql = h.sql

return M
