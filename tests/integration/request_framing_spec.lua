-- Request framing (RFC 9112 section 6.3): a request whose end, or whose
-- body's end, a proxy could read differently from hostflow is refused with
-- one 400 and the connection closed, before any handler runs. Each case
-- goes out in one write whose body is itself a request with another
-- tenant's key, as a proxy reusing its upstream connection would pass it
-- on: that request must never be answered.
local h = require("helpers.server")
local socket = require("socket")

local LIST = "/api/v1/payment/sessions?limit=1"

-- Everything the server sends on c until it closes, and whether it did
-- (false: still open when the read timed out).
local function read_to_eof(c)
  local parts = {}
  while true do
    local data, err, partial = c:receive(8192)
    parts[#parts + 1] = data or partial
    if not data then return table.concat(parts), err == "closed" end
  end
end

-- Send data in one write; the first answer, what came after it and
-- whether the server then closed the connection.
local function exchange(port, data)
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect("127.0.0.1", port))
  assert(c:send(data))
  local first = h.read_response(c, true)
  local rest, closed = read_to_eof(c)
  c:close()
  return first, rest, closed
end

local function chunked(body)
  return ("%x\r\n%s\r\n0\r\n\r\n"):format(#body, body)
end

describe("request framing", function()
  local srv, a, b, inner, b_session, refused = nil, nil, nil, nil, nil, 0

  setup(function()
    -- a long keep-alive: a connection left open is seen as such
    srv, a, b = h.start_with_tenants({ args = { "--keep-alive-ms", "30000" } }, "Acme", "Other")
    b_session = srv:new_session(b).id
    inner = "GET " .. LIST .. " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " ..
      b.key.secret .. "\r\n\r\n"
  end)
  teardown(function() srv:stop() end)

  -- A request of tenant a: header lines (each ending in CRLF) then body.
  local function request(lines, body, opts)
    opts = opts or {}
    return (opts.method or "GET") .. " " .. (opts.path or LIST) .. " HTTP/" ..
      (opts.version or "1.1") .. "\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " ..
      a.key.secret .. "\r\n" .. lines .. "\r\n" .. (body or "")
  end

  local function assert_refused(data, port)
    local r, rest, closed = exchange(port or srv.port, data)
    h.assert_error(r, 400, "invalid_input")
    assert.are.equal("close", (r.headers.connection or ""):lower())
    assert.are.equal("", rest, "a second answer came")
    assert.is_true(closed, "the connection was left open")
    refused = refused + 1
  end

  -- n filler header lines
  local function fillers(n)
    local t = {}
    for i = 1, n do t[i] = ("X-Filler-%d: v\r\n"):format(i) end
    return table.concat(t)
  end

  local len = function() return #inner end
  local cases = {
    -- Host and Authorization are the first two header lines
    { "a Content-Length after 64 header lines",
      function() return request(fillers(62) .. "Content-Length: " .. len() .. "\r\n", inner) end },
    { "a Content-Length as the 64th header line (civetweb's limit: there may be more)",
      function() return request(fillers(61) .. "Content-Length: " .. len() .. "\r\n", inner) end },
    { "a Content-Length after a folded line",
      function() return request("X-A: a\r\n  b\r\nContent-Length: " .. len() .. "\r\n", inner) end },
    { "a Content-Length after a line folded with a tab",
      function() return request("X-A: a\r\n\tb\r\nContent-Length: " .. len() .. "\r\n", inner) end },
    { "a Content-Length after a line starting with ':'",
      function() return request("X-A: a\r\n:b\r\nContent-Length: " .. len() .. "\r\n", inner) end },
    { "a Content-Length after a line starting with a non-ASCII byte",
      function() return request("X-A: a\r\n\xc3\xa9: b\r\nContent-Length: " .. len() .. "\r\n", inner) end },
    { "a Content-Length after a lone CR",
      function() return request("X-A: a\r\n\rX-B: b\r\nContent-Length: " .. len() .. "\r\n", inner) end },
    { "a Content-Length after a line ended by a bare LF",
      function() return request("X-A: a\nContent-Length: " .. len() .. "\r\n", inner) end },
    { "whitespace before the first header line",
      function()
        return "GET " .. LIST .. " HTTP/1.1\r\n Content-Length: " .. len() ..
          "\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " .. a.key.secret .. "\r\n\r\n" .. inner
      end },
    { "an HTTP/1.1 request without any header",
      function() return "GET " .. LIST .. " HTTP/1.1\r\n\r\n" .. inner end },
    { "a space before Content-Length's colon",
      function() return request("Content-Length : " .. len() .. "\r\n", inner) end },
    { "a space before Transfer-Encoding's colon",
      function() return request("Transfer-Encoding : chunked\r\n", chunked(inner)) end },
    { "a space before another header's colon",
      function() return request("X-A : a\r\nContent-Length: " .. len() .. "\r\n", inner) end },
    { "a tab before a colon",
      function() return request("Content-Length\t: " .. len() .. "\r\n", inner) end },
    { "two Content-Length headers that differ",
      function() return request("Content-Length: 0\r\nContent-Length: " .. len() .. "\r\n", inner) end },
    { "two Content-Length headers alike",
      function() return request(("Content-Length: %d\r\n"):rep(2):format(len(), len()), inner) end },
    { "Content-Length and Transfer-Encoding",
      function()
        return request("Content-Length: " .. #chunked(inner) .. "\r\nTransfer-Encoding: chunked\r\n",
          chunked(inner))
      end },
    { "Transfer-Encoding: gzip, chunked",
      function() return request("Transfer-Encoding: gzip, chunked\r\n", chunked(inner)) end },
    { "Transfer-Encoding: chunked, chunked",
      function() return request("Transfer-Encoding: chunked, chunked\r\n", chunked(inner)) end },
    { "two Transfer-Encoding headers",
      function()
        return request("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", chunked(inner))
      end },
    { "Transfer-Encoding: identity",
      function() return request("Transfer-Encoding: identity\r\n", inner) end },
    { "Transfer-Encoding: chunked with a trailing space",
      function() return request("Transfer-Encoding: chunked \r\n", chunked(inner)) end },
    { "Transfer-Encoding in an HTTP/1.0 request",
      function()
        return request("Transfer-Encoding: chunked\r\n", chunked(inner), { version = "1.0" })
      end },
  }
  for _, v in ipairs({ "%dabc", "%d abc", "+%d", "00%d", "%d, %d", "-1", "", "1%018d" }) do
    cases[#cases + 1] = { ("Content-Length %q"):format(v:format(84, 84)), function()
      return request("Content-Length: " .. v:format(len(), len()) .. "\r\n", inner)
    end }
  end

  for _, case in ipairs(cases) do
    it("refuses " .. case[1], function() assert_refused(case[2]()) end)
  end

  it("refuses on the admin listener too", function()
    assert_refused(request("Content-Length: " .. #chunked(inner) ..
      "\r\nTransfer-Encoding: chunked\r\n", chunked(inner), { path = "/healthz" }), srv.admin_port)
  end)

  -- the request, then one that closes the connection: what a proxy would
  -- send next on it
  local function assert_answered(data, status)
    local sentinel = "GET /api/v1/payment/sessions/" .. b_session .. " HTTP/1.1\r\nHost: x\r\n" ..
      "Authorization: Bearer " .. a.key.secret .. "\r\nConnection: close\r\n\r\n"
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", srv.port))
    assert(c:send(data .. sentinel))
    local r = h.read_response(c)
    assert.are.equal(status, r.status, r.body)
    if r.json and type(r.json.url) == "string" then
      h.remember_secret(r.json.url:match("/payment/setup/%a+_(.*)$"))
    end
    -- the next answer is the sentinel's (another tenant's session is not
    -- found), not the body's (that tenant's list)
    local second = h.read_response(c)
    h.assert_error(second, 404, "invalid_session_id")
    local rest, closed = read_to_eof(c)
    c:close()
    assert.are.equal("", rest)
    assert.is_true(closed)
  end

  local function create(lines, body)
    return request("Content-Type: application/json\r\n" .. lines, body,
      { method = "POST", path = "/api/v1/payment/sessions" })
  end

  it("answers a create with Content-Length as usual", function()
    local body = h.json.encode(h.session_body(a))
    assert_answered(create("Content-Length: " .. #body .. "\r\n", body), 201)
  end)

  it("answers a chunked create as usual", function()
    local body = h.json.encode(h.session_body(a))
    assert_answered(create("Transfer-Encoding: Chunked\r\n", chunked(body)), 201)
  end)

  it("answers 63 header lines, the last Content-Length, reading the body as one", function()
    assert_answered(request(fillers(60) .. "Content-Length: " .. len() .. "\r\n", inner), 200)
  end)

  it("counts each refusal and logs it without header values", function()
    local m = srv:admin("GET", "/metrics")
    assert.are.equal(refused,
      tonumber(m.body:match('\nhostflow_http_requests_refused_total{reason="framing"} (%d+)')))
    local log = srv:log_text()
    assert.is_truthy(log:find("refused: Content-Length is repeated.", 1, true))
    assert.is_truthy(log:find("refused: The request head is malformed.", 1, true))
    assert.is_nil(log:find(a.key.secret, 1, true))
    assert.is_nil(log:find(b.key.secret, 1, true))
  end)
end)
