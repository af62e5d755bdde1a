-- civetweb gives each open connection a worker thread of its own: the
-- default thread count must serve 200 keep-alive clients at once, none
-- starving behind the others.
local h = require("helpers.server")
local socket = require("socket")

local CLIENTS = 200

describe("connections: 200 concurrent keep-alive clients", function()
  local srv, t

  -- the default --threads (the helper passes a small one for other specs)
  setup(function() srv, t = h.start_with_tenants({ args = { "--threads", "256" } }, "Acme") end)
  teardown(function() srv:stop() end)

  it("answers every client on its own open connection within 5 s, three times over", function()
    local conns = {}
    for i = 1, CLIENTS do
      local c = assert(socket.tcp())
      c:settimeout(5)
      assert(c:connect("127.0.0.1", srv.port))
      conns[i] = c
    end
    local request = "GET /api/v1/payment/sessions?limit=1 HTTP/1.1\r\nHost: x\r\n" ..
      "Authorization: Bearer " .. t.key.secret .. "\r\n\r\n"
    local slowest = 0
    for round = 1, 3 do
      -- every client asks before any is answered: all 200 are open at once
      for _, c in ipairs(conns) do assert(c:send(request)) end
      local t0 = socket.gettime()
      for i, c in ipairs(conns) do
        local r = h.read_response(c)
        assert.are.equal(200, r.status, ("client %d, round %d"):format(i, round))
        assert.is_nil((r.headers.connection or ""):lower():find("close"))
      end
      slowest = math.max(slowest, socket.gettime() - t0)
    end
    for _, c in ipairs(conns) do c:close() end
    print(("# slowest round: %.3f s for %d clients"):format(slowest, CLIENTS))
    assert.is_true(slowest < 5)
  end)
end)
