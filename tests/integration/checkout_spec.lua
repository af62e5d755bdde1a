-- The live processor, checkout, against the real binary and a local
-- stand-in for Checkout.com (tests/helpers/checkout_stub.mjs): the live
-- card page and its CSP, the token exchange, refused tokens, every way
-- the API can fail (500, 401, no answer, unreachable, redirect, oversized
-- or broken answers), parallel saves, the secret key kept out of logs and
-- pages, and the settings serve refuses. What the stub cannot prove —
-- that Checkout.com itself answers this way — README.md says.
local h = require("helpers.server")
local hf = require("helpers.hosted")
local co = require("helpers.checkout")
local socket = require("socket")
local cjson = h.json

local RETURN_URL = "https://app.example.com/done?order=42"
local TIMEOUT_MS = 1000

local function complete_path(f)
  return "/payment/sessions/" .. f.session.id .. "/complete"
end

-- The live card form's POST as raw bytes (to send several at once).
local function raw_complete(f, token)
  local body = hf.form_encode({ { "token", token }, { "csrf", f.csrf } })
  return "POST " .. complete_path(f) .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
    "Connection: close\r\nCookie: " .. hf.COOKIE .. "=" .. f.cookie .. "\r\n" ..
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " .. #body ..
    "\r\n\r\n" .. body
end

-- POST the live card form: the token Frames made and the csrf value.
local function complete(srv, f, token)
  local fields = {}
  if token then fields[#fields + 1] = { "token", token } end
  fields[#fields + 1] = { "csrf", f.csrf }
  return hf.post_form(srv, complete_path(f), fields, f.cookie)
end

local function decline_of(body)
  return (body or ""):match('<p[^>]-id="decline"[^>]*>(.-)</p>')
end

-- The CSP header as { directive = "sources" }.
local function csp_of(r)
  local d = {}
  for part in ((r.headers["content-security-policy"] or "") .. ";"):gmatch("([^;]*);") do
    local name, sources = part:match("^%s*(%S+)%s*(.-)%s*$")
    if name then d[name] = sources end
  end
  return d
end

local function status_of(srv, t, id)
  return hf.api_session(srv, t.key.secret, id).status
end

local function count_lines(text, needle)
  return hf.count(text, needle)
end

describe("live processor checkout (against the local stub)", function()
  local stub, srv, t, tokens

  setup(function()
    stub = co.start()
    srv = h.start({ args = stub:args({ "--checkout-timeout-ms", tostring(TIMEOUT_MS) }),
      env = stub:env() })
    t = h.tenant(srv.db, "Acme Live")
    tokens = {}
  end)
  teardown(function()
    srv:stop()
    stub:stop()
  end)
  before_each(function() stub:reset() end)

  local function open()
    return hf.open(srv, t, t.key.secret, { return_url = RETURN_URL })
  end

  local function token()
    local tok = co.token()
    tokens[#tokens + 1] = tok
    return tok
  end

  it("1. the live card page loads Frames from the configured URL and posts a token; its CSP "
    .. "allows the Frames origin for scripts, frames and requests and nothing else", function()
    local f = open()
    local body = f.card.body
    assert.is_truthy(body:find('<script src="' .. stub.frames_url .. '"></script>', 1, true), body)
    assert.is_truthy(body:find('<script src="/payment/assets/card.js"></script>', 1, true))
    assert.is_truthy(body:find('data-public-key="' .. stub.public .. '"', 1, true))
    assert.is_truthy(body:find('class="card-frame"', 1, true))
    assert.is_truthy(body:find('name="token"', 1, true))
    assert.are.equal(2, hf.count(body, 'name="csrf"'))
    for _, field in ipairs({ "card_number", "exp_month", "exp_year", "cvc" }) do
      assert.is_nil(body:find('name="' .. field .. '"', 1, true), "live page has " .. field)
    end
    assert.is_nil(body:find(stub.secret, 1, true), "secret key in the page")
    for _, v in pairs(f.card.headers) do assert.is_nil(v:find(stub.secret, 1, true)) end

    local csp = csp_of(f.card)
    assert.are.equal("'none'", csp["default-src"])
    assert.are.equal("'self' " .. stub.url, csp["script-src"])
    assert.are.equal(stub.url, csp["frame-src"])
    assert.are.equal(stub.url, csp["connect-src"])
    assert.are.equal("'none'", csp["frame-ancestors"])
    assert.is_truthy((" " .. csp["form-action"] .. " "):find(" https://app.example.com ", 1, true))
    local raw = f.card.headers["content-security-policy"]
    assert.is_nil(raw:find("unsafe", 1, true), raw)
    assert.is_nil(raw:find("*", 1, true), raw)

    local js = srv:request({ method = "GET", path = "/payment/assets/card.js" })
    assert.are.equal(200, js.status)
    assert.matches("^text/javascript", js.headers["content-type"] or "")
    assert.are.equal("nosniff", js.headers["x-content-type-options"])
    assert.is_truthy(js.body:find("Frames.init", 1, true))
    assert.is_truthy(js.body:find("submitCard", 1, true))

    -- the test-mode page of the same server stays without any script
    local tf = hf.open(srv, t, t.test_key.secret, { return_url = RETURN_URL })
    local tcsp = csp_of(tf.card)
    assert.is_nil(tcsp["script-src"])
    assert.is_nil(tcsp["frame-src"])
    assert.is_nil(tcsp["connect-src"])
    assert.is_nil(tf.card.body:find("<script", 1, true))
    assert.is_truthy(tf.card.body:find('name="card_number"', 1, true))
    assert.are.equal(0, #stub:requests())
  end)

  it("2. a token is exchanged for an instrument (Bearer secret key, {type, token}): 303 back "
    .. "with hps_id and status; brand, last4 and the src_ id are stored", function()
    local f = open()
    local tok = token()
    local r = complete(srv, f, tok)
    assert.are.equal(303, r.status, r.body)
    assert.are.equal(RETURN_URL .. "&hps_id=" .. f.session.id .. "&status=completed",
      r.headers["location"])
    local reqs = stub:requests()
    assert.are.equal(1, #reqs)
    assert.are.equal("POST", reqs[1].method)
    assert.are.equal("/instruments", reqs[1].path)
    assert.are.equal("Bearer " .. stub.secret, reqs[1].headers.authorization)
    assert.matches("^application/json", reqs[1].headers["content-type"])
    assert.are.same({ type = "token", token = tok }, cjson.decode(reqs[1].body))
    local s = hf.api_session(srv, t.key.secret, f.session.id)
    assert.are.equal("completed", s.status)
    assert.are.equal("number", type(s.completed_at))
    local row = hf.sql(srv.db, "select card_brand || '|' || card_last4 || '|' || processor_ref " ..
      "from sessions where id='" .. f.session.id .. "'")
    assert.matches("^visa|4242|src_[a-z0-9]+$", row)
    -- the session is done: its card page and a second token are the 404 page
    assert.are.equal(404, hf.get(srv, "/payment/sessions/" .. f.session.id, f.cookie).status)
    assert.are.equal(404, complete(srv, f, token()).status)
    assert.are.equal(1, #stub:requests())
  end)

  it("3. a refused token (422) shows a sentence on the card page (402); the session stays "
    .. "pending and the next token completes it", function()
    local f = open()
    stub:mode("decline", { "token_expired" })
    local d = complete(srv, f, token())
    assert.are.equal(402, d.status, d.body)
    local msg = decline_of(d.body)
    assert.is_string(msg, "no decline sentence: " .. d.body)
    assert.matches("expired", msg)
    -- still the live card page, with the same csrf value
    assert.is_truthy(d.body:find('name="token"', 1, true))
    assert.are.equal(f.csrf, hf.csrf_of(d.body))
    assert.are.equal(stub.url, csp_of(d)["frame-src"])
    assert.are.equal("pending", status_of(srv, t, f.session.id))

    stub:mode("decline", { "card_number_invalid" })
    local d2 = complete(srv, f, token())
    assert.are.equal(402, d2.status, d2.body)
    assert.matches("declined", decline_of(d2.body))
    assert.are.equal("pending", status_of(srv, t, f.session.id))
    assert.matches("instrument refused %(422 card_number_invalid%) request_id=req_", srv:log_text())

    stub:mode("approve")
    local ok = complete(srv, f, token())
    assert.are.equal(303, ok.status, ok.body)
    assert.are.equal("completed", status_of(srv, t, f.session.id))
  end)

  it("4. Checkout.com failing (500) is an error page (502), not a decline; pending; logged",
    function()
      local f = open()
      stub:mode("fail")
      local r = complete(srv, f, token())
      assert.are.equal(502, r.status, r.body)
      local msg = decline_of(r.body)
      assert.is_string(msg, r.body)
      assert.matches("could not be saved right now", msg)
      assert.is_truthy(r.body:find('name="token"', 1, true), "the page offers another try")
      assert.are.equal("pending", status_of(srv, t, f.session.id))
      assert.matches("checkout: POST /instruments answered 500", srv:log_text())
      assert.matches("hosted: session " .. f.session.id .. " card not saved", srv:log_text())
    end)

  it("5. no answer within --checkout-timeout-ms: 503 after about that long; pending; logged",
    function()
      local f = open()
      stub:mode("hang")
      local t0 = socket.gettime()
      local r = complete(srv, f, token())
      local took = socket.gettime() - t0
      assert.are.equal(503, r.status, r.body)
      assert.is_string(decline_of(r.body))
      assert.is_true(took >= TIMEOUT_MS / 1000 - 0.1 and took < TIMEOUT_MS / 1000 + 3,
        "answered after " .. took .. " s")
      assert.are.equal("pending", status_of(srv, t, f.session.id))
      assert.matches("no answer within " .. TIMEOUT_MS .. " ms", srv:log_text())
    end)

  it("6. a redirect is not followed, an oversized or non-JSON answer is not used: 502 each",
    function()
      local f = open()
      stub:mode("redirect")
      assert.are.equal(502, complete(srv, f, token()).status)
      local reqs = stub:requests()
      assert.are.equal(1, #reqs, "the redirect was followed")
      assert.matches("answered 302", srv:log_text())

      stub:mode("huge")
      assert.are.equal(502, complete(srv, f, token()).status)
      assert.matches("response body is over 65536 bytes", srv:log_text())

      stub:mode("garbage")
      assert.are.equal(502, complete(srv, f, token()).status)
      assert.matches("instrument answer %(201%) is not a JSON object", srv:log_text())
      assert.are.equal("pending", status_of(srv, t, f.session.id))
    end)

  it("7. a missing or malformed token, or card fields, are refused on the page (422) without "
    .. "asking Checkout.com", function()
    local f = open()
    local none = complete(srv, f, nil)
    assert.are.equal(422, none.status, none.body)
    assert.is_truthy(none.body:find('id="error-number"', 1, true), none.body)
    assert.is_truthy(none.body:find('name="token"', 1, true))
    for _, bad in ipairs({ "", "tok_", "tok_<script>alert(1)</script>", "src_abcdefghijklmnop",
      "tok_" .. ("a"):rep(80), "4242424242424242" }) do
      local r = complete(srv, f, bad)
      assert.are.equal(422, r.status, "token " .. bad .. ": " .. r.body)
      assert.is_nil(r.body:find("<script>alert", 1, true))
      assert.is_nil(r.body:find("4242424242424242", 1, true))
    end
    -- a client that skips Frames and posts a card number gets nowhere
    local card = hf.complete(srv, f, hf.good_card())
    assert.are.equal(422, card.status, card.body)
    -- the number, not any "4242": random ids and csrf values may hold that
    assert.is_nil(card.body:find("4242424242424242", 1, true))
    assert.is_nil(card.body:find("4242 4242", 1, true))
    assert.are.equal(0, #stub:requests())
    assert.are.equal("pending", status_of(srv, t, f.session.id))
    -- and a wrong csrf value is refused before any of that
    local forged = hf.post_form(srv, complete_path(f), { { "token", token() }, { "csrf", ("0"):rep(32) } },
      f.cookie)
    assert.are.equal(403, forged.status)
    assert.are.equal(0, #stub:requests())
  end)

  it("8. eight sessions saving at once each get their own instrument", function()
    local flows, raws = {}, {}
    for i = 1, 8 do
      flows[i] = open()
      flows[i].token = token()
      raws[i] = raw_complete(flows[i], flows[i].token)
    end
    local conns = {}
    for i = 1, 8 do
      conns[i] = assert(socket.tcp())
      conns[i]:settimeout(10)
      assert(conns[i]:connect("127.0.0.1", srv.port))
    end
    for i = 1, 8 do assert(conns[i]:send(raws[i])) end
    for i = 1, 8 do
      local r = h.read_response(conns[i], true)
      conns[i]:close()
      assert.are.equal(303, r.status, tostring(r.body or r.error))
      assert.are.equal(RETURN_URL .. "&hps_id=" .. flows[i].session.id .. "&status=completed",
        r.headers["location"])
    end
    local seen = {}
    for _, req in ipairs(stub:requests()) do seen[cjson.decode(req.body).token] = true end
    for i = 1, 8 do
      assert.is_true(seen[flows[i].token], "token of flow " .. i .. " not exchanged")
      assert.are.equal("completed", status_of(srv, t, flows[i].session.id))
    end
    local refs = hf.sql(srv.db, "select count(distinct processor_ref) from sessions where " ..
      "processor_ref like 'src_%'")
    assert.is_true(tonumber(refs) >= 8, refs)
  end)

  it("8b. two saves of one session at once (a double click) save one card, and both are "
    .. "sent back to the tenant", function()
    stub:mode("slow")
    local f = open()
    local conns = {}
    for i = 1, 2 do
      conns[i] = assert(socket.tcp())
      conns[i]:settimeout(10)
      assert(conns[i]:connect("127.0.0.1", srv.port))
      assert(conns[i]:send(raw_complete(f, token())))
    end
    for i = 1, 2 do
      local r = h.read_response(conns[i], true)
      conns[i]:close()
      assert.are.equal(303, r.status, tostring(r.body or r.error))
      assert.are.equal(RETURN_URL .. "&hps_id=" .. f.session.id .. "&status=completed",
        r.headers["location"])
    end
    assert.are.equal(1, #stub:requests(), "cards saved at the processor")
    assert.are.equal("completed", status_of(srv, t, f.session.id))
  end)

  it("8c. a session cancelled while its card is being saved stays cancelled, and the log "
    .. "names the instrument that belongs to no session", function()
    stub:mode("slow")
    local f = open()
    local c = assert(socket.tcp())
    c:settimeout(10)
    assert(c:connect("127.0.0.1", srv.port))
    assert(c:send(raw_complete(f, token())))
    local deadline = socket.gettime() + 5
    while #stub:requests() == 0 and socket.gettime() < deadline do socket.sleep(0.02) end
    assert.are.equal(1, #stub:requests(), "the save never reached the stub")
    local cancelled = srv:post(t.key.secret, "/api/v1/payment/sessions/" .. f.session.id ..
      "/cancel")
    assert.are.equal(200, cancelled.status, cancelled.body)
    local r = h.read_response(c, true)
    c:close()
    assert.are.equal(404, r.status, tostring(r.body or r.error))
    assert.are.equal("cancelled", status_of(srv, t, f.session.id))
    assert.are.equal(1, #stub:requests())
    local line = srv:log_text():match("[^\n]*session " .. f.session.id ..
      " ended while its card was being saved[^\n]*")
    assert.is_string(line, "no log line about the instrument")
    assert.truthy(line:find("instrument src_", 1, true), line)
  end)

  it("9. neither the secret key nor any token reaches the log", function()
    local log = srv:log_text()
    assert.is_true(#tokens > 10)
    assert.is_nil(log:find(stub.secret, 1, true), "secret key in the log")
    assert.is_nil(log:find(stub.secret:sub(4), 1, true), "secret key (without sk_) in the log")
    for _, tok in ipairs(tokens) do
      assert.is_nil(log:find(tok, 1, true), "token " .. tok .. " in the log")
      assert.is_nil(log:find(tok:sub(5), 1, true), "token body in the log")
    end
    assert.are.equal(1, count_lines(log, "live cards: Checkout.com at " .. stub.url))
  end)
end)

describe("live processor checkout: Checkout.com refusing the key or out of reach", function()
  local stub

  setup(function() stub = co.start() end)
  teardown(function() stub:stop() end)

  -- Open a live session on a server started with args/env, post a token,
  -- return the answer, the session's status and the server log.
  local function attempt(args, env)
    local srv = h.start({ args = args, env = env })
    local ok, r, status, log = pcall(function()
      local t = h.tenant(srv.db, "Acme Off")
      local f = hf.open(srv, t, t.key.secret, { return_url = RETURN_URL })
      local answer = complete(srv, f, co.token())
      return answer, status_of(srv, t, f.session.id), srv:log_text()
    end)
    srv:stop()
    assert(ok, r)
    return r, status, log
  end

  it("10. a wrong secret key (401) is an error page (502) and a log line naming the cause, "
    .. "never the key", function()
    local wrong = co.secret_key()
    local r, status, log = attempt(stub:args({ "--checkout-timeout-ms", "2000" }),
      stub:env(wrong))
    assert.are.equal(502, r.status, r.body)
    assert.is_string(decline_of(r.body))
    assert.are.equal("pending", status)
    assert.matches("POST /instruments answered 401: the secret key was refused", log)
    assert.is_nil(log:find(wrong, 1, true))
    assert.is_nil(r.body:find(wrong, 1, true))
    local reqs = stub:requests()
    assert.are.equal("Bearer " .. wrong, reqs[#reqs].headers.authorization)
  end)

  it("11. Checkout.com unreachable (connection refused): 503 at once; pending; logged", function()
    local closed = "http://127.0.0.1:" .. h.free_port()
    local t0 = socket.gettime()
    local r, status, log = attempt({ "--checkout-public-key", stub.public,
      "--checkout-base-url", closed, "--checkout-frames-url", stub.frames_url }, stub:env())
    assert.are.equal(503, r.status, r.body)
    assert.is_string(decline_of(r.body))
    assert.are.equal("pending", status)
    assert.matches("checkout: POST /instruments failed: ", log)
    assert.is_true(socket.gettime() - t0 < 8)
  end)

  it("12. the secret key may come from a file (whitespace around it ignored); given as a "
    .. "flag it works but the log warns that ps shows it", function()
    local dir = h.tmpdir()
    local file = dir .. "/checkout-secret"
    h.write_file(file, "\n  " .. stub.secret .. "  \n")
    local r, status, log = attempt(stub:args({ "--checkout-secret-key-file", file }), {})
    assert.are.equal(303, r.status, r.body)
    assert.are.equal("completed", status)
    assert.is_nil(log:find("ps shows", 1, true))

    local r2, status2, log2 = attempt(stub:args({ "--checkout-secret-key", stub.secret }), {})
    assert.are.equal(303, r2.status, r2.body)
    assert.are.equal("completed", status2)
    assert.matches("secret key was given as a flag, which ps shows", log2)
    assert.is_nil(log2:find(stub.secret, 1, true))
  end)
end)

describe("live processor checkout: settings serve refuses", function()
  -- Run serve with args and env; it must refuse before listening.
  -- Returns exit status and stderr.
  local function serve(args, env)
    local dir = h.tmpdir()
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = h.sh_quote(a) end
    local prefix = ""
    for k, v in pairs(env or {}) do prefix = prefix .. k .. "=" .. h.sh_quote(v) .. " " end
    local errfile = dir .. "/refused.txt"
    local _, rc = h.run("cd " .. h.sh_quote(dir) .. " && " .. prefix .. "timeout 10 " ..
      h.sh_quote(h.bin) .. " serve --listen 127.0.0.1:" .. h.free_port() ..
      " --admin-listen 127.0.0.1:" .. h.free_port() .. " --db " .. h.sh_quote(dir .. "/h.db") ..
      " --policy " .. h.sh_quote(h.root .. "/policies.example.lua") .. " --policy-dir " ..
      h.sh_quote(h.root .. "/policies") .. " " .. table.concat(quoted, " ") .. " 2>" ..
      h.sh_quote(errfile))
    return rc, h.read_file(errfile) or ""
  end

  it("13. half, swapped, malformed or unsafe Checkout.com settings stop start-up (exit 2) with "
    .. "a reason that never quotes a key", function()
    local secret, public = co.secret_key(), co.public_key()
    local dir = h.tmpdir()
    local cases = {
      { "secret key without public key", {}, { HOSTFLOW_CHECKOUT_SECRET_KEY = secret },
        "--checkout%-public%-key is missing" },
      { "public key without secret key", { "--checkout-public-key", public }, {},
        "--checkout%-secret%-key is missing" },
      { "the secret key given as the public key", { "--checkout-public-key", secret },
        { HOSTFLOW_CHECKOUT_SECRET_KEY = secret }, "must start with pk_" },
      { "a public key as the secret key", { "--checkout-public-key", public },
        { HOSTFLOW_CHECKOUT_SECRET_KEY = public }, "secret key must start with sk_" },
      { "a secret key with a header break", { "--checkout-public-key", public },
        { HOSTFLOW_CHECKOUT_SECRET_KEY = secret .. "\r\nX-Evil: 1" }, "secret key must start" },
      { "plain http to a remote API", { "--checkout-public-key", public,
        "--checkout-base-url", "http://api.checkout.com" },
        { HOSTFLOW_CHECKOUT_SECRET_KEY = secret }, "must be https" },
      { "a Frames URL with a query", { "--checkout-public-key", public,
        "--checkout-frames-url", "https://cdn.checkout.com/js/framesv2.min.js?v=1" },
        { HOSTFLOW_CHECKOUT_SECRET_KEY = secret }, "no query" },
      { "a Frames URL that is not http(s)", { "--checkout-public-key", public,
        "--checkout-frames-url", "javascript:alert(1)" },
        { HOSTFLOW_CHECKOUT_SECRET_KEY = secret }, "checkout%-frames%-url must be" },
      { "the secret key twice", { "--checkout-public-key", public,
        "--checkout-secret-key", secret, "--checkout-secret-key-file", dir .. "/nope" }, {},
        "not both" },
      -- a flag beats the environment: the file named is read, not the key
      { "a key file flag over the environment's key", { "--checkout-public-key", public,
        "--checkout-secret-key-file", dir .. "/nope" },
        { HOSTFLOW_CHECKOUT_SECRET_KEY = secret }, "cannot read" },
      { "a secret key file that cannot be read", { "--checkout-public-key", public,
        "--checkout-secret-key-file", dir .. "/nope" }, {}, "cannot read" },
      { "a timeout out of range", { "--checkout-timeout-ms", "0" }, {}, "from 100 to 120000" },
    }
    for _, c in ipairs(cases) do
      local rc, err = serve(c[2], c[3])
      assert.are.equal(2, rc, c[1] .. ": exit " .. tostring(rc) .. ", stderr: " .. err)
      assert.matches(c[4], err, c[1])
      assert.is_nil(err:find(secret, 1, true), c[1] .. ": the secret key was quoted: " .. err)
      assert.is_nil(err:find(secret:sub(4), 1, true), c[1] .. ": the secret key was quoted")
    end
  end)
end)
