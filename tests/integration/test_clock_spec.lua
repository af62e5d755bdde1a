-- The test clock: POST /admin/v1/test/clock exists in build/hostflow-test
-- only, moves its clock forward, and runs the expiry sweep before it answers.
local h = require("helpers.server")
local cjson = h.json

local CLOCK = "/admin/v1/test/clock"

local function advance(srv, body)
  return h.request(srv.admin_port, { method = "POST", path = CLOCK, body = body })
end

describe("build/hostflow (the one installed)", function()
  local srv

  setup(function() srv = h.start() end)
  teardown(function() srv:stop() end)

  it("has no test clock: 404 as any unknown admin route", function()
    local r = advance(srv, cjson.encode({ advance_seconds = 60 }))
    local unknown = h.request(srv.admin_port, { method = "POST", path = "/admin/v1/no/such" })
    h.assert_error(r, 404, "resource_not_found")
    assert.are.equal(unknown.body, r.body)
  end)

  it("does not contain the code", function()
    for _, word in ipairs({ CLOCK, "clock_test_advance" }) do
      local out = h.run("grep -c " .. h.sh_quote(word) .. " " .. h.sh_quote(h.bin))
      assert.are.equal("0", (out:gsub("%s+$", "")), word)
    end
  end)
end)

describe("build/hostflow-test: POST /admin/v1/test/clock", function()
  local srv, t

  setup(function()
    srv, t = h.start_with_tenants({ test_clock = true, args = { "--session-ttl", "60" } }, "Acme")
  end)
  teardown(function() srv:stop() end)

  it("refuses anything but a whole number of seconds from 1 to 400 days", function()
    for _, body in ipairs({ "", "{}", '{"advance_seconds": 0}', '{"advance_seconds": -5}',
      '{"advance_seconds": 1.5}', '{"advance_seconds": "10"}', '{"advance_seconds": 34560001}' }) do
      h.assert_error(advance(srv, body), 400, "invalid_input")
    end
    assert.are.equal(404, h.request(srv.admin_port, { method = "GET", path = CLOCK }).status)
  end)

  it("moves the clock forward, answering the whole offset", function()
    local before = srv:new_session(t)
    local first = srv:advance(100)
    assert.are.equal(first + 20, srv:advance(20))
    local after = srv:new_session(t)
    assert.is_true(after.created >= before.created + 120, "created moved with the clock")
  end)

  it("runs the expiry sweep before answering: the session's row says expired", function()
    local sess = srv:new_session(t)
    local row = "SELECT status FROM sessions WHERE id = '" .. sess.id .. "'"
    assert.are.equal("pending", h.sql(srv.db, row))
    srv:advance(61)
    -- a GET reads expired from the clock alone; the row changes only by the sweep
    assert.are.equal("expired", h.sql(srv.db, row))
  end)
end)
