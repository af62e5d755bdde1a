-- civetweb's own password files play no part: authentication is API keys
-- and the admin token. Without an auth handler civetweb looks for a
-- .htpasswd on every request (at "/.htpasswd", having no document root)
-- and would demand digest authentication if one appeared there. The
-- server runs under strace, which records every system call that names a
-- file, so the test sees what the server looks up.
local h = require("helpers.server")

describe("civetweb password files", function()
  it("are never looked up, whatever the route or method", function()
    local _, traced = h.run("strace -f -qq -e trace=none true 2>&1")
    assert(traced == 0, "strace cannot trace a child here (make deps installs it)")
    local dir = h.tmpdir()
    local trace = dir .. "/files.trace"
    -- LeakSanitizer cannot run under ptrace (make sanitize): it would stop
    -- with a fatal error instead of checking this server
    local asan = os.getenv("ASAN_OPTIONS")
    local srv = h.start({ dir = dir,
      env = asan and { ASAN_OPTIONS = asan .. ":detect_leaks=0" } or nil,
      wrap = { "strace", "-f", "-qq", "-e", "trace=%file", "-o", trace } })
    local t = h.tenant(srv.db, "Acme")
    local s = srv:new_session(t)
    local answers = {
      srv:get(t.key.secret, "/api/v1/payment/sessions?limit=1").status,
      srv:get(t.key.secret, "/api/v1/payment/sessions/" .. s.id).status,
      srv:request({ method = "DELETE", path = "/api/v1/webhook_endpoints/we_none",
        headers = { Authorization = "Bearer " .. t.key.secret } }).status,
      srv:request({ method = "PUT", path = "/api/v1/payment/sessions" }).status,
      srv:get(nil, "/payment/setup/live_unknown").status,
      srv:get(nil, "/healthz").status,
      srv:admin("GET", "/metrics").status,
    }
    srv:stop()
    assert.are.same({ 200, 200, 404, 403, 404, 200, 200 }, answers)

    local text = assert(h.read_file(trace), "strace wrote no trace")
    -- the trace is of the server's file calls: it read its policy
    assert.truthy(text:find("policies.example.lua", 1, true), text:sub(1, 2000))
    for line in text:gmatch("[^\n]+") do
      assert.is_nil(line:find("htpasswd", 1, true), line)
    end
  end)
end)
