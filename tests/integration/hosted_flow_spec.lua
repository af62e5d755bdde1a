-- The hosted flow (SPEC §4) over HTTP against the real binary: landing,
-- single-use redemption (also raced), the card page and its csrf, card
-- validation, the test processor's decline and success, both cancels, the
-- redirect back, expiry, live mode without a processor, the stylesheet.
-- The live processor itself: checkout_spec.lua.
local h = require("helpers.server")
local hf = require("helpers.hosted")
local socket = require("socket")
local cjson = h.json

local SESSIONS = "/api/v1/payment/sessions"
local RETURN_URL = "https://app.example.com/done?order=42"
local TENANT_NAME = 'Acme <b>&"'
local TENANT_NAME_ESCAPED = "Acme &lt;b&gt;&amp;&quot;"

-- The 404 page of a token that never existed, and of a malformed one.
local UNKNOWN_TOKEN = "/payment/setup/live_" .. ("A"):rep(43)
local MALFORMED_TOKEN = "/payment/setup/xyz"

local function assert_page_headers(r)
  assert.matches("^text/html", r.headers["content-type"] or "")
  assert.are.equal("no-store", r.headers["cache-control"])
  assert.are.equal("no-referrer", r.headers["referrer-policy"])
  assert.are.equal("DENY", r.headers["x-frame-options"])
  local csp = r.headers["content-security-policy"] or ""
  assert.is_truthy(csp:find("default-src 'none'", 1, true), "CSP: " .. csp)
  assert.is_truthy(csp:find("frame-ancestors 'none'", 1, true), "CSP: " .. csp)
  assert.is_nil(csp:find("unsafe-inline", 1, true), "CSP: " .. csp)
end

-- The gone page: 404, the hosted headers, and the same bytes as reference.
local function assert_gone(r, reference, what)
  assert.are.equal(404, r.status, what .. ": " .. tostring(r.body))
  assert_page_headers(r)
  assert.are.equal(reference, r.body, what .. ": body differs from the unknown-token page")
end

local function status_of(srv, secret, id)
  return hf.api_session(srv, secret, id).status
end

describe("hosted flow (SPEC §4)", function()
  local srv, t, gone_body

  setup(function()
    srv = h.start()
    t = h.tenant(srv.db, TENANT_NAME)
    gone_body = srv:request({ method = "GET", path = UNKNOWN_TOKEN }).body
  end)
  teardown(function() srv:stop() end)

  local function open(fields, secret)
    return hf.open(srv, t, secret or t.test_key.secret,
      fields or { return_url = RETURN_URL })
  end

  it("still opens a 43-character token minted before tokens began with their time",
    function()
      local s = srv:create(t.test_key.secret, h.session_body(t, { return_url = RETURN_URL }))
      assert.are.equal(201, s.status, s.body)
      -- such a session was stored under the whole SHA-256 of its URL token
      local old = "test_" .. ("Q"):rep(40) .. "x-_"
      local hex = h.run("printf %s " .. old .. " | sha256sum"):match("^(%x+)")
      local blob = srv.db:match("^postgres") and ("decode('" .. hex .. "', 'hex')")
        or ("X'" .. hex .. "'")
      h.sql(srv.db, "UPDATE sessions SET token_hash = " .. blob .. " WHERE id = '" .. s.json.id .. "'")
      local landing = hf.get(srv, "/payment/setup/" .. old)
      assert.are.equal(200, landing.status, landing.body)
      assert.are.equal(303, hf.post_form(srv, "/payment/setup/" .. old, nil, nil).status)
      assert_gone(hf.get(srv, hf.path_of(s.json.url)), gone_body, "the new-form token it replaced")
    end)

  it("1. landing GET shows the escaped tenant name, strict headers, and changes nothing",
    function()
      local s = srv:create(t.test_key.secret, h.session_body(t, { return_url = RETURN_URL }))
      assert.are.equal(201, s.status, s.body)
      local path = hf.path_of(s.json.url)
      local r = srv:request({ method = "GET", path = path })
      assert.are.equal(200, r.status, r.body)
      assert_page_headers(r)
      assert.is_truthy(r.body:find(TENANT_NAME_ESCAPED, 1, true), r.body)
      assert.is_nil(r.body:find(TENANT_NAME, 1, true), "raw tenant name in the page")
      assert.is_nil(r.body:find("<b>", 1, true))
      -- the Continue button posts to the same URL
      assert.is_truthy(r.body:find('method="post" action="' .. path .. '"', 1, true), r.body)
      for _ = 1, 2 do
        local again = srv:request({ method = "GET", path = path })
        assert.are.equal(200, again.status)
        assert.are.equal(r.body, again.body)
      end
      assert.are.equal("pending", status_of(srv, t.test_key.secret, s.json.id))
      local p = hf.post_form(srv, path, nil, nil)
      assert.are.equal(303, p.status, p.body)
      assert.is_string(hf.cookie_of(p))
    end)

  it("1b. HEAD of a landing URL answers like GET without a body and leaves the link usable",
    function()
      local s = srv:create(t.test_key.secret, h.session_body(t, { return_url = RETURN_URL }))
      local path = hf.path_of(s.json.url)
      local c = assert(socket.tcp())
      c:settimeout(5)
      assert(c:connect("127.0.0.1", srv.port))
      assert(c:send("HEAD " .. path .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
      local raw = c:receive("*a")
      c:close()
      assert.matches("^HTTP/1%.1 200", raw)
      local head, rest = raw:match("^(.-\r\n\r\n)(.*)$")
      assert.matches("Content%-Length: [1-9]%d*", head)
      assert.are.equal("", rest)
      assert.are.equal(200, srv:request({ method = "GET", path = path }).status)
      assert.are.equal(303, hf.post_form(srv, path, nil, nil).status)
    end)

  it("2. redemption POST: 303 to the card page with an HttpOnly SameSite=Strict cookie; "
    .. "Secure only under an https public URL", function()
    local s = srv:create(t.test_key.secret, h.session_body(t, { return_url = RETURN_URL }))
    assert.are.equal(201, s.status, s.body)
    local id = s.json.id
    local r = hf.post_form(srv, hf.path_of(s.json.url), nil, nil)
    assert.are.equal(303, r.status, r.body)
    assert.are.equal("/payment/sessions/" .. id, r.headers["location"])
    local sc = r.headers["set-cookie"]
    assert.is_string(sc, "no Set-Cookie")
    assert.is_string(hf.cookie_of(r))
    assert.is_true(#hf.cookie_of(r) >= 32, "short cookie secret")
    local attrs = hf.cookie_attrs(sc)
    assert.is_true(attrs.httponly, sc)
    assert.are.equal("strict", (attrs.samesite or ""):lower(), sc)
    assert.are.equal("/payment/sessions/" .. id, attrs.path, sc)
    assert.is_nil(attrs.secure, "Secure over an http public URL: " .. sc)

    -- spelt in capitals: scheme and host are case-blind, the Secure rule too
    local secure = h.start({ args = { "--public-url", "HTTPS://Pay.Example.TEST" } })
    local ok, err = pcall(function()
      local st = h.tenant(secure.db, "Secure Co")
      local c = secure:create(st.test_key.secret, h.session_body(st, { return_url = RETURN_URL }))
      assert.are.equal(201, c.status, c.body)
      assert.are.equal(1, (c.json.url:find("https://pay.example.test/payment/setup/test_",
        1, true)), c.json.url)
      local sr = hf.post_form(secure, hf.path_of(c.json.url), nil, nil)
      assert.are.equal(303, sr.status, sr.body)
      assert.is_string(hf.cookie_of(sr))
      local sattrs = hf.cookie_attrs(sr.headers["set-cookie"])
      assert.is_true(sattrs.secure, "no Secure under https: " .. sr.headers["set-cookie"])
      assert.is_true(sattrs.httponly)
      assert.are.equal("strict", (sattrs.samesite or ""):lower())
    end)
    secure:stop()
    assert(ok, err)
  end)

  it("3. after redemption the token is dead: every later GET/POST, and completed, cancelled, "
    .. "unknown and malformed tokens, get the same 404 page", function()
    assert_gone(srv:request({ method = "GET", path = UNKNOWN_TOKEN }), gone_body, "unknown GET")
    assert_gone(hf.post_form(srv, UNKNOWN_TOKEN), gone_body, "unknown POST")
    assert_gone(srv:request({ method = "GET", path = MALFORMED_TOKEN }), gone_body, "malformed GET")
    assert_gone(hf.post_form(srv, MALFORMED_TOKEN), gone_body, "malformed POST")

    -- redeemed
    local used = open()
    assert_gone(srv:request({ method = "GET", path = used.path }), gone_body, "used GET")
    assert_gone(hf.post_form(srv, used.path), gone_body, "used POST")
    assert_gone(hf.post_form(srv, used.path), gone_body, "used POST again")

    -- completed
    local done = open()
    local c = hf.complete(srv, done, hf.good_card())
    assert.are.equal(303, c.status, c.body)
    assert_gone(srv:request({ method = "GET", path = done.path }), gone_body, "completed GET")
    assert_gone(hf.post_form(srv, done.path), gone_body, "completed POST")

    -- cancelled via the API before anyone landed
    local s = srv:create(t.test_key.secret, h.session_body(t, { return_url = RETURN_URL }))
    assert.are.equal(201, s.status, s.body)
    local x = srv:post(t.test_key.secret, SESSIONS .. "/" .. s.json.id .. "/cancel")
    assert.are.equal(200, x.status, x.body)
    local path = hf.path_of(s.json.url)
    assert_gone(srv:request({ method = "GET", path = path }), gone_body, "cancelled GET")
    assert_gone(hf.post_form(srv, path), gone_body, "cancelled POST")
    -- (an expired session's link: see "expiry" below, on its own server)
  end)

  it("4. 8-way redemption race: exactly one browser gets in", function()
    local s = srv:create(t.test_key.secret, h.session_body(t, { return_url = RETURN_URL }))
    assert.are.equal(201, s.status, s.body)
    local path = hf.path_of(s.json.url)
    local answers = hf.race(srv.port, 8, hf.raw_post(srv.port, path))
    local won, lost, other = 0, 0, {}
    for _, r in ipairs(answers) do
      if r.status == 303 and hf.cookie_of(r) then
        won = won + 1
        assert.are.equal("/payment/sessions/" .. s.json.id, r.headers["location"])
      elseif r.status == 404 then
        lost = lost + 1
        assert.are.equal(gone_body, r.body)
        assert.is_nil(r.headers["set-cookie"])
      else
        other[#other + 1] = tostring(r.status or r.error)
      end
    end
    assert.are.same({}, other)
    assert.are.equal(1, won)
    assert.are.equal(7, lost)
  end)

  it("5. card page needs the session's own cookie; has the card and cancel forms", function()
    local f = open()
    local page = "/payment/sessions/" .. f.session.id
    assert_gone(hf.get(srv, page, nil), gone_body, "no cookie")
    assert_gone(hf.get(srv, page, ("A"):rep(43)), gone_body, "wrong cookie")
    assert_gone(hf.get(srv, page, "short"), gone_body, "malformed cookie")
    -- another session's (valid) cookie does not open this one
    local g = open()
    assert_gone(hf.get(srv, page, g.cookie), gone_body, "another session's cookie")

    local r = f.card
    assert.are.equal(200, r.status)
    assert_page_headers(r)
    for _, name in ipairs({ "card_number", "exp_month", "exp_year", "cvc", "csrf" }) do
      assert.is_truthy(r.body:find('name="' .. name .. '"', 1, true), "no field " .. name)
    end
    assert.is_truthy(r.body:find('method="post" action="' .. page .. '/complete"', 1, true))
    assert.is_truthy(r.body:find('method="post" action="' .. page .. '/cancel"', 1, true))
    assert.are.equal(2, hf.count(r.body, 'name="csrf"'))
    local csp = r.headers["content-security-policy"]
    local fa = csp:match("form%-action ([^;]*)") or ""
    assert.is_truthy((" " .. fa .. " "):find(" https://app.example.com ", 1, true), csp)
    -- the cookie value itself never appears in the page
    assert.is_nil(r.body:find(f.cookie, 1, true))
  end)

  it("6. complete refuses a wrong or missing csrf (403) and a cookie-less post (404)", function()
    local f = open()
    local wrong = hf.complete(srv, f, (function()
      local c = hf.good_card(); c.csrf = ("0"):rep(32); return c end)())
    assert.are.equal(403, wrong.status, wrong.body)
    assert_page_headers(wrong)
    local none = hf.complete(srv, f, (function()
      local c = hf.good_card(); c.csrf = false; return c end)())
    assert.are.equal(403, none.status, none.body)
    -- another session's csrf is as wrong as a made-up one
    local g = open()
    local foreign = hf.complete(srv, f, (function()
      local c = hf.good_card(); c.csrf = g.csrf; return c end)())
    assert.are.equal(403, foreign.status, foreign.body)
    assert.are.equal("pending", status_of(srv, t.test_key.secret, f.session.id))
    local bare = hf.post_form(srv, "/payment/sessions/" .. f.session.id .. "/complete",
      { { "card_number", "4242424242424242" }, { "exp_month", "12" },
        { "exp_year", tostring(os.date("!*t").year + 2) }, { "cvc", "123" },
        { "csrf", f.csrf } }, nil)
    assert_gone(bare, gone_body, "cookie-less complete")
    assert.are.equal("pending", status_of(srv, t.test_key.secret, f.session.id))
    -- the cancel form guards the same way
    local nc = hf.cancel(srv, f, ("0"):rep(32))
    assert.are.equal(403, nc.status, nc.body)
    assert.are.equal("pending", status_of(srv, t.test_key.secret, f.session.id))
  end)

  it("7. invalid card input: 422 with three error messages, no card number echoed", function()
    local f = open()
    local year = os.date("!*t").year
    local r = hf.complete(srv, f, { card_number = "4242 4242 4242 4241", exp_month = "1",
      exp_year = tostring(year - 1), cvc = "12" })
    assert.are.equal(422, r.status, r.body)
    assert_page_headers(r)
    assert.are.equal(3, hf.count(r.body, 'class="error"'), r.body)
    assert.is_nil(r.body:find("4242424242424241", 1, true), "card number echoed")
    assert.is_nil(r.body:find("4242 4242 4242 4241", 1, true), "card number echoed")
    -- the page is usable again: same csrf, still both forms
    assert.are.equal(f.csrf, hf.csrf_of(r.body))
    assert.are.equal("pending", status_of(srv, t.test_key.secret, f.session.id))
  end)

  it("8. a declined card leaves the session pending; 4242… completes and redirects back",
    function()
      local f = open()
      local d = hf.complete(srv, f, hf.good_card("4000 0000 0000 0002"))
      assert.are.equal(402, d.status, d.body)
      assert_page_headers(d)
      local decline = d.body:match('<p[^>]-id="decline"[^>]*>(.-)</p>')
      assert.is_string(decline, "no id=\"decline\" element: " .. d.body)
      assert.is_truthy(decline:lower():find("declined", 1, true), decline)
      assert.is_nil(d.body:find("4000000000000002", 1, true))
      assert.is_nil(d.body:find("4000 0000 0000 0002", 1, true))
      assert.are.equal("pending", status_of(srv, t.test_key.secret, f.session.id))

      local before = os.time()
      local ok = hf.complete(srv, f, hf.good_card("4242 4242 4242 4242"))
      assert.are.equal(303, ok.status, ok.body)
      assert.are.equal(RETURN_URL .. "&hps_id=" .. f.session.id .. "&status=completed",
        ok.headers["location"])
      local s = hf.api_session(srv, t.test_key.secret, f.session.id)
      assert.are.equal("completed", s.status)
      assert.are.equal("number", type(s.completed_at))
      assert.are.equal(math.floor(s.completed_at), s.completed_at)
      assert.is_true(s.completed_at >= before - 2 and s.completed_at <= os.time() + 2,
        "completed_at " .. tostring(s.completed_at))
      assert.are.equal(cjson.null, s.cancelled_at)

      local again = hf.complete(srv, f, hf.good_card("4242 4242 4242 4242"))
      assert_gone(again, gone_body, "second complete")
      assert_gone(hf.get(srv, "/payment/sessions/" .. f.session.id, f.cookie), gone_body,
        "card page after completion")
      assert.are.equal("completed", status_of(srv, t.test_key.secret, f.session.id))
    end)

  it("9a. cancel from the card page: 303 back with status=cancelled", function()
    local f = open()
    local before = os.time()
    local r = hf.cancel(srv, f)
    assert.are.equal(303, r.status, r.body)
    assert.are.equal(RETURN_URL .. "&hps_id=" .. f.session.id .. "&status=cancelled",
      r.headers["location"])
    local s = hf.api_session(srv, t.test_key.secret, f.session.id)
    assert.are.equal("cancelled", s.status)
    assert.are.equal("number", type(s.cancelled_at))
    assert.is_true(s.cancelled_at >= before - 2 and s.cancelled_at <= os.time() + 2)
    assert.are.equal(cjson.null, s.completed_at)
    assert_gone(hf.get(srv, "/payment/sessions/" .. f.session.id, f.cookie), gone_body,
      "card page after cancel")
    assert_gone(hf.complete(srv, f, hf.good_card()), gone_body, "complete after cancel")
  end)

  it("9b. cancel via the API after redemption: card page and complete are gone", function()
    local f = open()
    local x = srv:post(t.test_key.secret, SESSIONS .. "/" .. f.session.id .. "/cancel")
    assert.are.equal(200, x.status, x.body)
    assert.are.equal("cancelled", x.json.status)
    assert_gone(hf.get(srv, "/payment/sessions/" .. f.session.id, f.cookie), gone_body,
      "card page after API cancel")
    assert_gone(hf.complete(srv, f, hf.good_card()), gone_body, "complete after API cancel")
    assert_gone(hf.cancel(srv, f), gone_body, "cancel after API cancel")
    local s = hf.api_session(srv, t.test_key.secret, f.session.id)
    assert.are.equal("cancelled", s.status)
    assert.are.equal(cjson.null, s.completed_at)
  end)

  it("10. the redirect adds hps_id and status to the return_url's query, keeping it verbatim",
    function()
      local bare = open({ return_url = "https://app.example.com/done" })
      local r = hf.complete(srv, bare, hf.good_card())
      assert.are.equal(303, r.status, r.body)
      assert.are.equal("https://app.example.com/done?hps_id=" .. bare.session.id ..
        "&status=completed", r.headers["location"])

      local q = open({ return_url = "https://app.example.com/done?a=1&b=x%20y" })
      local r2 = hf.complete(srv, q, hf.good_card())
      assert.are.equal(303, r2.status, r2.body)
      assert.are.equal("https://app.example.com/done?a=1&b=x%20y&hps_id=" .. q.session.id ..
        "&status=completed", r2.headers["location"])
    end)

  it("12. without Checkout.com keys a live session's card page answers 503 with a message "
    .. "and no card form; complete reads nothing and answers 503; cancel still works",
    function()
      local f = hf.open(srv, t, t.key.secret, { return_url = RETURN_URL }, 503)
      assert.matches("/payment/setup/live_", f.path)
      assert_page_headers(f.card)
      local msg = f.card.body:match('<p[^>]-id="decline"[^>]*>(.-)</p>')
      assert.is_string(msg, "no message: " .. f.card.body)
      assert.is_true(#msg > 0)
      -- no field invites a live card number to a server that cannot use it
      assert.is_nil(f.card.body:find('id="card-form"', 1, true), f.card.body)
      assert.is_nil(f.card.body:find('name="card_number"', 1, true))
      assert.is_nil(f.card.body:find("<script", 1, true))
      local r = hf.complete(srv, f, hf.good_card())
      assert.are.equal(503, r.status, r.body)
      assert_page_headers(r)
      assert.is_string(r.body:match('<p[^>]-id="decline"[^>]*>(.-)</p>'))
      assert.is_nil(r.body:find("4242424242424242", 1, true))
      assert.are.equal("pending", status_of(srv, t.key.secret, f.session.id))
      local c = hf.cancel(srv, f)
      assert.are.equal(303, c.status, c.body)
      assert.are.equal(RETURN_URL .. "&hps_id=" .. f.session.id .. "&status=cancelled",
        c.headers["location"])
    end)

  it("13. the stylesheet is served as text/css", function()
    local r = srv:request({ method = "GET", path = "/payment/assets/hosted.css" })
    assert.are.equal(200, r.status)
    assert.matches("^text/css", r.headers["content-type"] or "")
    assert.is_true(#r.body > 0)
  end)
end)

describe("hosted flow: expiry (--session-ttl 60, the test clock moved past it)", function()
  local srv, t, gone_body, unredeemed, redeemed, expires_at, moved

  -- once, for every test after 11a: the clock to 2 s past the later
  -- expiry (the advance also runs the sweep)
  local function past_expiry()
    if not moved then
      moved = srv:advance(math.max(1, expires_at + 2 - math.floor(socket.gettime())))
    end
  end

  setup(function()
    srv = h.start({ test_clock = true, args = { "--session-ttl", "60" } })
    t = h.tenant(srv.db, "Shortlived")
    local s = srv:create(t.test_key.secret, h.session_body(t, { return_url = RETURN_URL }))
    assert.are.equal(201, s.status, s.body)
    unredeemed = { session = s.json, path = hf.path_of(s.json.url) }
    redeemed = hf.open(srv, t, t.test_key.secret, { return_url = RETURN_URL })
    expires_at = math.max(unredeemed.session.expires_at, redeemed.session.expires_at)
    gone_body = srv:request({ method = "GET", path = UNKNOWN_TOKEN }).body
  end)
  teardown(function() srv:stop() end)

  it("11a. the TTL applies: expires_at = created + 60, row pending before expiry", function()
    assert.are.equal(unredeemed.session.created + 60, unredeemed.session.expires_at)
    assert.are.equal("pending",
      hf.sql(srv.db, "select status from sessions where id='" .. unredeemed.session.id .. "'"))
  end)

  it("11b. after expiry landing and redemption get the unknown-token 404 page; API says expired",
    function()
      past_expiry()
      assert_gone(srv:request({ method = "GET", path = unredeemed.path }), gone_body,
        "expired landing")
      assert_gone(hf.post_form(srv, unredeemed.path), gone_body, "expired redeem")
      assert.are.equal("expired", status_of(srv, t.test_key.secret, unredeemed.session.id))
    end)

  it("11c. a session redeemed before expiry cannot be completed or cancelled after it",
    function()
      past_expiry()
      local page = "/payment/sessions/" .. redeemed.session.id
      assert_gone(hf.get(srv, page, redeemed.cookie), gone_body, "card page after expiry")
      assert_gone(hf.complete(srv, redeemed, hf.good_card()), gone_body,
        "complete after expiry")
      assert_gone(hf.cancel(srv, redeemed), gone_body, "cancel after expiry")
      assert.are.equal("expired", status_of(srv, t.test_key.secret, redeemed.session.id))
    end)

  it("11d. the sweep writes status 'expired' into the database row", function()
    past_expiry()
    local q = "select status from sessions where id in ('" .. unredeemed.session.id ..
      "','" .. redeemed.session.id .. "') order by id"
    local got
    assert.is_true(h.wait_for(function()
      got = hf.sql(srv.db, q)
      return got == "expired\nexpired"
    end, 5), "the rows say " .. tostring(got))
  end)
end)
