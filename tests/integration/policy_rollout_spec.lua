-- Fleet policy rollout: `hostflow policy publish|history|rollback` and
-- nodes serving with --policy-source store. Two hostflow processes share
-- one database; a published version must be active on both within a
-- second, a broken one refused by publish, one that fails on the nodes
-- left out (each keeps its last good version and reports why), and a
-- rollback restores the old decision everywhere.
local h = require("helpers.server")
local hf = require("helpers.hosted")
local socket = require("socket")
local cjson = h.json

-- The shared rule plus a staging host for every tenant, in a module, so
-- that bundles carry modules too.
local STAGING_POLICY = [[
local staging = require("staging")
local policy = {}
function policy.check_return_url(url, ctx)
  if url.scheme == "https" and url.host == staging.host then return true end
  for _, host in ipairs(ctx.tenant.redirect_hosts) do
    if url.scheme == "https" and url.host == host then return true end
  end
  return false, "invalid_return_url", "host not allowed"
end
policy.examples = {
  { url = "https://staging.example.com/x", redirect_hosts = {}, allow = true },
}
return policy
]]

local function policy_version(srv)
  local r = srv:admin("GET", "/admin/v1/policy")
  assert.are.equal(200, r.status, r.body)
  return r.json
end

-- Wait until every node runs version; the seconds it took.
local function converge(nodes, version, limit)
  local t0 = socket.gettime()
  repeat
    local all = true
    for _, n in ipairs(nodes) do
      if policy_version(n).version ~= version then all = false end
    end
    if all then return socket.gettime() - t0 end
    socket.sleep(0.02)
  until socket.gettime() - t0 > limit
  return nil
end

local function publish(db, file, dir, by)
  local out, rc, err = h.cli(db, "policy", "publish", file, "--policy-dir", dir, "--by", by)
  return out, rc, err
end

describe("policy rollout through the store", function()
  local dir, db, nodes, t, v1, v2, future

  local function staging_status(node)
    return node:create(t.key.secret, h.session_body(t, {
      return_url = "https://staging.example.com/done" })).status
  end

  setup(function()
    dir = h.tmpdir()
    db = h.new_db(dir)
    -- v1: the example policy with the checkout's modules
    local out, rc, err = publish(db, h.root .. "/policies.example.lua", h.root .. "/policies", "alice")
    assert.are.equal(0, rc, err)
    v1 = out:match("published policy version (%x+)")
    assert.is_string(v1, out)
    nodes = {}
    for i = 1, 2 do
      nodes[i] = h.start({ dir = h.tmpdir(), db = db, args = { "--policy-source", "store" } })
    end
    t = h.tenant(db, "Acme")
  end)
  teardown(function()
    for _, n in ipairs(nodes or {}) do n:stop() end
  end)

  it("refuses to start a store-sourced node when nothing was published", function()
    local empty = h.tmpdir()
    local ok, err = pcall(h.start, { dir = empty, db = h.new_db(empty),
      args = { "--policy-source", "store" } })
    assert.is_false(ok)
    assert.matches("no policy was ever published", err, 1, true)
  end)

  it("starts every node on the active version, from the store", function()
    for _, n in ipairs(nodes) do
      local st = policy_version(n)
      assert.are.equal(v1, st.version)
      assert.are.equal("store", st.source)
      assert.are.equal(v1, st.wanted_version)
      assert.are.equal(400, staging_status(n))
    end
  end)

  it("activates a published version on both nodes within a second", function()
    local pdir = h.tmpdir()
    h.write_file(pdir .. "/staging.lua", 'return { host = "staging.example.com" }')
    h.write_file(pdir .. "/policy.lua", STAGING_POLICY)
    local out, rc, err = publish(db, pdir .. "/policy.lua", pdir, "bob")
    assert.are.equal(0, rc, err)
    v2 = out:match("published policy version (%x+)")
    assert.are_not.equal(v1, v2)
    local took = converge(nodes, v2, 1.0)
    assert.is_number(took, "both nodes should run " .. v2 .. " within 1 s")
    for _, n in ipairs(nodes) do assert.are.equal(201, staging_status(n)) end
    -- the session records the version that approved it
    local s = nodes[2]:new_session(t, { return_url = "https://staging.example.com/y" })
    assert.are.equal(v2, hf.sql(db, "SELECT policy_version FROM sessions WHERE id = '" .. s.id .. "'"))
  end)

  it("refuses to publish a version that does not pass its checks", function()
    local pdir = h.tmpdir()
    h.write_file(pdir .. "/policy.lua", "return { check_return_url = function( }")
    local _, rc, err = publish(db, pdir .. "/policy.lua", pdir, "mallory")
    assert.are.equal(1, rc)
    assert.matches("policy.lua:1:", err, 1, true)
    assert.matches("not published", err, 1, true)
    h.write_file(pdir .. "/policy.lua", [[
return { check_return_url = function() return true end,
         examples = { { url = "https://x.example/", allow = false } } }]])
    _, rc, err = publish(db, pdir .. "/policy.lua", pdir, "mallory")
    assert.are.equal(1, rc)
    assert.matches("expected deny", err, 1, true)
    local hist = h.cli(db, "policy", "history")
    assert.is_nil(hist:find("mallory", 1, true))
    -- the store's active version is still v2, the only one nodes follow
    local newest = cjson.decode(h.cli(db, "policy", "history", "--json"):match("^[^\n]+"))
    assert.are.same({ v2, true }, { newest.version, newest.active })
    for _, n in ipairs(nodes) do assert.are.equal(v2, policy_version(n).version) end
  end)

  it("keeps each node on its last good version when the active one fails there", function()
    -- a bundle written by a newer hostflow, whose policy needs a helper
    -- this binary lacks: it passed there, it cannot load here
    local text = "local x = hostflow.helper_from_the_future()\nreturn {}\n"
    local bundle = "hostflow-policy-bundle 1\nP " .. #text .. "\n" .. text .. "\n"
    local hex = bundle:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    local blob = h.backend == "postgres" and ("decode('" .. hex .. "', 'hex')")
      or ("X'" .. hex .. "'")
    -- its version as hostflow names one (policy_source.c), computed apart
    local file = dir .. "/future.lua"
    h.write_file(file, text)
    future = h.run("python3 -c " .. h.sh_quote("import hashlib,sys\n" ..
      "t = open(sys.argv[1], 'rb').read()\n" ..
      "print(hashlib.sha256(bytes(32) + b'policy\\0\\0' + t).digest()[:8].hex())") ..
      " " .. h.sh_quote(file)):match("%x+")
    hf.sql(db, "INSERT INTO policy_bundles (version, bundle, created) VALUES " ..
      "('" .. future .. "', " .. blob .. ", " .. os.time() .. ")")
    hf.sql(db, "INSERT INTO policy_activations (version, action, actor, at) VALUES " ..
      "('" .. future .. "', 'publish', 'newer@elsewhere', " .. os.time() .. ")")
    for _, n in ipairs(nodes) do
      local deadline = socket.gettime() + 1
      local st
      repeat
        socket.sleep(0.05)
        st = policy_version(n)
      until st.last_error ~= cjson.null or socket.gettime() > deadline
      assert.are.equal(v2, st.version, "the node keeps its last good version")
      assert.are.equal(future, st.wanted_version, "and shows the one it was offered")
      assert.are.equal(1, st.reloads.failed)
      assert.matches("helper_from_the_future", st.last_error.message, 1, true)
      assert.matches("reload refused, version " .. v2 .. " keeps serving", n:log_text(), 1, true)
      assert.are.equal(201, staging_status(n), "and keeps deciding with it")
    end
  end)

  it("rolls back: the old decision returns on both nodes", function()
    local out, rc, err = h.cli(db, "policy", "rollback", v1, "--by", "carol")
    assert.are.equal(0, rc, err)
    assert.matches("active again", out, 1, true)
    assert.is_number(converge(nodes, v1, 1.0), "both nodes back on " .. v1 .. " within 1 s")
    for _, n in ipairs(nodes) do assert.are.equal(400, staging_status(n)) end

    local hist = h.cli(db, "policy", "history", "--json")
    local rows = {}
    for line in hist:gmatch("[^\n]+") do rows[#rows + 1] = cjson.decode(line) end
    assert.are.equal(4, #rows)
    assert.are.same({ "rollback", v1, "carol", true },
      { rows[1].action, rows[1].version, rows[1].by, rows[1].active })
    assert.are.same({ "publish", future, "newer@elsewhere" },
      { rows[2].action, rows[2].version, rows[2].by })
    assert.are.same({ "publish", v2, "bob" }, { rows[3].action, rows[3].version, rows[3].by })
    assert.are.same({ "publish", v1, "alice" }, { rows[4].action, rows[4].version, rows[4].by })
    _, rc, err = h.cli(db, "policy", "rollback", "0123456789abcdef")
    assert.are.equal(1, rc)
    assert.matches("no published policy version", err, 1, true)
    -- a row whose texts are not the version it names (damaged, or edited
    -- by hand): every node would refuse it, so it is not activated
    hf.sql(db, "INSERT INTO policy_bundles (version, bundle, created) SELECT " ..
      "'deadbeefdeadbeef', bundle, created FROM policy_bundles WHERE version = '" .. v2 .. "'")
    _, rc, err = h.cli(db, "policy", "rollback", "deadbeefdeadbeef")
    assert.are.equal(1, rc)
    assert.matches("the stored texts of deadbeefdeadbeef hash to " .. v2, err, 1, true)
    assert.are.equal(v1, policy_version(nodes[1]).version)
  end)

  it("a node serving from files is not moved by the store", function()
    local local_node = h.start({ dir = h.tmpdir(), db = db })
    local before = policy_version(local_node)
    local pdir = h.tmpdir()
    h.write_file(pdir .. "/staging.lua", 'return { host = "staging.example.com" }')
    h.write_file(pdir .. "/policy.lua", STAGING_POLICY)
    local _, rc, err = publish(db, pdir .. "/policy.lua", pdir, "dave")
    assert.are.equal(0, rc, err)
    assert.is_number(converge(nodes, v2, 1.0), "the store-sourced nodes follow")
    local after = policy_version(local_node)
    local status = staging_status(local_node)
    local_node:stop()
    assert.are.equal("file", before.source)
    assert.are.equal(before.version, after.version, "the file-sourced node did not move")
    assert.are.equal(400, status, "and still decides by its files")
  end)
end)
