-- tests/helpers/policy.lua - load a policy file the way hostflow does (a
-- text chunk with a sandbox-like environment and a stub `hostflow` table)
-- and build the url / ctx arguments the core passes.
local M = {}

M.logged = {}

-- The stub of hostflow's helper table: log lines are collected in
-- M.logged; parse_url is not the C parser, so specs pass url tables.
local function stub_hostflow()
  return setmetatable({}, {
    __index = {
      log = function(msg) M.logged[#M.logged + 1] = msg end,
    },
    __newindex = function() error("the hostflow table is read-only") end,
  })
end

-- require as the sandbox offers it: modules of the policy directory only.
local function policy_require(dir, env)
  local loaded = {}
  return function(name)
    assert(name:match("^[%w_]+$"), "require: not a module name of the policy directory")
    if loaded[name] == nil then
      local chunk = assert(loadfile(dir .. "/" .. name .. ".lua", "t", env))
      loaded[name] = chunk(name) or true
    end
    return loaded[name]
  end
end

-- Load a policy or module file; dir is the policy directory (default
-- policies/ of the checkout). Extra arguments are passed to the chunk.
function M.load(path, dir, ...)
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = pcall, select = select, tonumber = tonumber, tostring = tostring,
    type = type, setmetatable = setmetatable, getmetatable = getmetatable,
    string = string, table = table, math = math, utf8 = utf8,
    os = { time = os.time, clock = os.clock },
    hostflow = stub_hostflow(),
  }
  env._G = env
  env.require = policy_require(dir or ((os.getenv("HOSTFLOW_ROOT") or ".") .. "/policies"), env)
  local chunk = assert(loadfile(path, "t", env))
  return chunk(...)
end

-- A url table as the C parser builds it, for a simple URL.
function M.url(raw)
  local scheme, host, port, path, query =
    raw:match("^(%a[%w+.-]*)://([^/?:]+):?(%d*)([^?]*)%??(.*)$")
  local t = { raw = raw, scheme = scheme:lower(), host = host:lower(), path = path }
  t.port = tonumber(port) or (t.scheme == "https" and 443 or t.scheme == "http" and 80 or nil)
  if raw:find("?", 1, true) then t.query = query end
  return t
end

function M.ctx(hosts, fields)
  local ctx = {
    tenant = { id = "tn_test", name = "Test", mode = "live",
      redirect_hosts = hosts or {}, settings = {} },
    contractor = { id = "cn_test" },
    request = { method = "POST", path = "/api/v1/payment/sessions", remote_addr = "127.0.0.1" },
    now = 1700000000,
    rate = { limited = false, retry_after = 0 },
  }
  for k, v in pairs(fields or {}) do ctx[k] = v end
  return ctx
end

return M
