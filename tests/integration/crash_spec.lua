-- Crash safety: one database file through SIGKILLs of the server under
-- concurrent load (README "Storage and durability": every 201 is sent
-- only after its commit, and a committed write survives a crash of
-- hostflow itself; writes go through the group-commit writer thread).
--
-- Each round starts the server on the same file, runs 4 load processes
-- (tests/helpers/crash_client.lua) that create sessions with a test key
-- and take about half of them through the hosted flow, and SIGKILLs the
-- server once 100-1000 creates were acknowledged. The clients record an
-- acknowledgement only after reading it whole; after every round the
-- sqlite3 CLI checks that each one is in the file, that the file is
-- intact, and that no URL was redeemed twice. HOSTFLOW_CRASH_SEED replays
-- a run's random choices (when to kill, which sessions take the hosted
-- flow); HOSTFLOW_CRASH_VERBOSE=1 prints a line per round. make test runs 3 rounds; make soak (#soak) runs 20.
--
-- Tagged #sqlite_only: it is about SQLite's own recovery of the file and
-- its WAL after the process that wrote them is killed. On PostgreSQL the
-- database server keeps the commits, not hostflow; postgres_spec.lua kills
-- a node there and checks the other still serves every acknowledged write.
local h = require("helpers.server")
local hosted = require("helpers.hosted")
local socket = require("socket")

local CLIENTS = 4
local SAMPLE = 8 -- URLs of earlier rounds re-tried after each restart, per kind
local VALID_STATUS = { pending = true, completed = true, cancelled = true, expired = true }

local function proc_alive(pid)
  local stat = h.read_file("/proc/" .. pid .. "/stat") or ""
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z"
end

local function wait_gone(pid, seconds)
  local deadline = socket.gettime() + seconds
  while proc_alive(pid) do
    if socket.gettime() > deadline then return false end
    socket.sleep(0.01)
  end
  return true
end

-- The sqlite3 CLI on db. Read-only, so that closing it does not checkpoint
-- the WAL: the next server start must recover the file exactly as the
-- killed server left it.
local function sql(db, query)
  local out, rc = h.run("sqlite3 -readonly -bail -cmd '.timeout 5000' " .. h.sh_quote(db) ..
    " " .. h.sh_quote(query) .. " 2>&1")
  assert(rc == 0, "sqlite3 failed (exit " .. tostring(rc) .. "): " .. out)
  return out
end

-- Up to n distinct random entries of list.
local function sample(list, n)
  local picked, seen = {}, {}
  if #list <= n then
    for i, e in ipairs(list) do picked[i] = e end
    return picked
  end
  while #picked < n do
    local i = math.random(#list)
    if not seen[i] then
      seen[i] = true
      picked[#picked + 1] = list[i]
    end
  end
  return picked
end

-- rounds kills on one file, then a last clean start; asserts nothing
-- acknowledged was lost and no URL redeemed twice.
local function kill_rounds(rounds)
  local began = socket.gettime()
  local seed = tonumber(os.getenv("HOSTFLOW_CRASH_SEED") or "") or
    math.floor(socket.gettime() * 1000) % 2147483647
  local verbose = os.getenv("HOSTFLOW_CRASH_VERBOSE") == "1"
  math.randomseed(seed)

  local dir = h.tmpdir()
  local db = dir .. "/hostflow.db"
  local log = dir .. "/server.log"
  local t = h.tenant(db, "Crash Co")
  local secret = t.test_key.secret

  local srv, clients = nil, {}

  -- Whatever happens: no server, no client left behind.
  finally(function()
    if srv and srv.pid then
      h.run("kill -KILL " .. srv.pid .. " 2>/dev/null")
      wait_gone(srv.pid, 5)
      srv.pid = nil
    end
    for _, c in ipairs(clients) do
      if c.pipe then
        if c.pid and proc_alive(c.pid) then h.run("kill -KILL " .. c.pid .. " 2>/dev/null") end
        c.pipe:close()
        c.pipe = nil
      end
    end
  end)

  -- What the clients were told, over all rounds.
  local created, redeemed, completed = {}, {}, {} -- id -> round
  local token_of = {}                             -- id -> URL path
  local api_paths, redeemed_paths = {}, {}        -- {id, path, round}
  local n_created, n_completed, n_requests, n_wire_errors = 0, 0, 0, 0
  local n_lost, n_duplicated, n_reredeem = 0, 0, 0
  local restart_max, restarts = 0, {}
  local n_rechecked = 0 -- earlier rounds' URLs tried again after a restart
  local wal_max = 0     -- the largest WAL a kill left behind, bytes

  local function context(round)
    return string.format("seed %d, round %d, db %s", seed, round, db)
  end

  -- The server log's lines about ids (evidence for a failure).
  local function log_about(ids)
    local text, lines = h.read_file(log) or "", {}
    for _, id in ipairs(ids) do
      for line in text:gmatch("[^\n]+") do
        if line:find(id, 1, true) then lines[#lines + 1] = line end
      end
    end
    if #lines == 0 then -- a create's log line names no session: show the log's end
      for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
      return table.concat(lines, "\n", math.max(1, #lines - 9))
    end
    return table.concat(lines, "\n")
  end

  -- Every acknowledgement against the file; integrity; at most one
  -- redemption per session. Returns the session count in the file.
  local function verify(round)
    local rows = {}
    for line in sql(db, "SELECT id, status, completed_at IS NOT NULL, redeemed_at IS NOT NULL " ..
        "FROM sessions"):gmatch("[^\n]+") do
      local id, status, c, r = line:match("^([^|]*)|([^|]*)|(%d)|(%d)$")
      assert(id, "unreadable row: " .. line)
      rows[id] = { status = status, completed_at = c == "1", redeemed_at = r == "1" }
    end
    local failures, ids = {}, {}
    local function fail(id, what)
      failures[#failures + 1] = id .. ": " .. what
      ids[#ids + 1] = id
    end
    for id, rd in pairs(created) do
      local row = rows[id]
      if not row then
        fail(id, "201 received in round " .. rd .. ", not in the sessions table")
      elseif not VALID_STATUS[row.status] then
        fail(id, "invalid status " .. row.status)
      end
    end
    for id, rd in pairs(redeemed) do
      local row = rows[id]
      if row and not row.redeemed_at then
        fail(id, "redemption 303 received in round " .. rd .. ", redeemed_at is NULL")
      end
    end
    for id, rd in pairs(completed) do
      local row = rows[id]
      if row and (row.status ~= "completed" or not row.completed_at) then
        fail(id, "completion 303 received in round " .. rd .. ", row has status " ..
          row.status .. (row.completed_at and "" or " and no completed_at"))
      end
    end
    n_lost = n_lost + #failures
    table.sort(failures)
    table.sort(ids)
    local shown = {}
    for i = 1, math.min(10, #failures) do shown[i] = failures[i] end
    assert(#failures == 0, #failures .. " acknowledged writes lost (" .. context(round) ..
      "):\n" .. table.concat(shown, "\n") .. "\nserver log:\n" ..
      log_about({ ids[1], ids[2], ids[3] }))

    assert.are.equal("ok", (sql(db, "PRAGMA integrity_check"):gsub("%s+$", "")),
      "integrity_check, " .. context(round))
    assert.are.equal("", sql(db, "PRAGMA foreign_key_check"),
      "foreign_key_check, " .. context(round))
    local agg = sql(db, "SELECT count(*), " ..
      "(SELECT count(*) FROM sessions WHERE status = 'completed'), " ..
      "(SELECT count(*) FROM sessions WHERE redeemed_at IS NOT NULL), " ..
      "(SELECT count(*) FROM sessions WHERE status = 'completed' AND " ..
      " (redeemed_at IS NULL OR completed_at IS NULL OR browser_hash IS NULL)), " ..
      "(SELECT count(*) FROM sessions WHERE redeemed_at IS NOT NULL AND browser_hash IS NULL) " ..
      "FROM sessions")
    local total, db_completed, db_redeemed, unredeemed_completed, no_browser =
      agg:match("^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)")
    total, db_completed, db_redeemed = tonumber(total), tonumber(db_completed), tonumber(db_redeemed)
    assert(total, "aggregate query: " .. agg)
    assert(db_completed <= db_redeemed, string.format(
      "%d sessions completed but only %d redeemed (%s)", db_completed, db_redeemed, context(round)))
    assert.are.equal("0", unredeemed_completed,
      "completed sessions without redemption, completed_at or browser, " .. context(round))
    assert.are.equal("0", no_browser, "redeemed sessions without browser hash, " .. context(round))
    return total
  end

  for round = 1, rounds do
    local t0 = socket.gettime()
    -- h.start fails unless the server accepts connections within 10 s
    srv = h.start({ dir = dir, db = db })
    local restart = socket.gettime() - t0
    restart_max = math.max(restart_max, restart)
    restarts[#restarts + 1] = restart

    -- Earlier rounds' URLs on the recovered file: a redeemed one stays
    -- spent, one nobody tried to redeem still opens its landing page.
    for _, e in ipairs(sample(redeemed_paths, SAMPLE)) do
      local r = hosted.post_form(srv, e.path, nil, nil)
      n_rechecked = n_rechecked + 1
      if r.status ~= 404 then n_duplicated = n_duplicated + 1 end
      assert.are.equal(404, r.status, "URL of " .. e.id .. " (redeemed in round " .. e.round ..
        ") redeemed again after the restart, " .. context(round))
    end
    for _, e in ipairs(sample(api_paths, SAMPLE)) do
      local r = hosted.get(srv, e.path)
      n_rechecked = n_rechecked + 1
      if r.status ~= 200 then n_lost = n_lost + 1 end
      assert.are.equal(200, r.status, "URL of " .. e.id .. " (created in round " .. e.round ..
        ") no longer opens after the restart, " .. context(round))
    end

    -- the load
    clients = {}
    for i = 1, CLIENTS do
      local c = { out = string.format("%s/round%02d-client%d.out", dir, round, i),
        err = string.format("%s/round%02d-client%d.err", dir, round, i) }
      local cmd = "cd " .. h.sh_quote(h.root) .. " && export HOSTFLOW_ROOT=" ..
        h.sh_quote(h.root) .. " && echo $$ && exec lua5.4 tests/helpers/crash_client.lua " ..
        table.concat({ srv.port, h.sh_quote(secret), t.contractor.id, h.sh_quote(c.out),
          math.random(1, 2147483646) }, " ") .. " 2>" .. h.sh_quote(c.err)
      c.pipe = assert(io.popen(cmd, "r"))
      c.pid = tonumber(c.pipe:read("l"))
      clients[i] = c
      assert(c.pid, "no pid from client " .. i)
    end
    for i, c in ipairs(clients) do
      assert.are.equal("ready", c.pipe:read("l"),
        "client " .. i .. " did not start: " .. (h.read_file(c.err) or ""))
    end

    -- the kill comes after a random number of acknowledged creates
    -- (around 0.2-1.5 s of load), at most 10 s in
    local acks = math.random(100, 1000)
    local function acknowledged()
      local n = 0
      for _, c in ipairs(clients) do
        n = n + select(2, ("\n" .. (h.read_file(c.out) or "")):gsub("\ncreated ", ""))
      end
      return n
    end
    h.wait_for(function() return acknowledged() >= acks end, 10)
    local pid = srv.pid
    h.run("kill -KILL " .. pid)
    assert(wait_gone(pid, 5), "server " .. pid .. " still running 5 s after SIGKILL")
    srv.pid = nil
    local wal = io.open(db .. "-wal", "rb")
    local wal_bytes = wal and wal:seek("end") or 0
    if wal then wal:close() end
    wal_max = math.max(wal_max, wal_bytes)

    -- the clients stop on their own once the server is unreachable for 1 s
    local deadline = socket.gettime() + 5
    for i, c in ipairs(clients) do
      while proc_alive(c.pid) and socket.gettime() < deadline do socket.sleep(0.02) end
      local hung = proc_alive(c.pid)
      if hung then h.run("kill -KILL " .. c.pid) end
      local summary = c.pipe:read("a") or ""
      local ok, how, code = c.pipe:close()
      c.pipe = nil
      assert(not hung, "client " .. i .. " still running 5 s after the kill, " .. context(round))
      assert(ok, string.format("client %d exited (%s %s): %s", i, tostring(how), tostring(code),
        h.read_file(c.err) or ""))
      local reqs, errs = summary:match("requests=(%d+) errors=(%d+)")
      assert(reqs, "client " .. i .. " summary: " .. summary)
      n_requests = n_requests + tonumber(reqs)
      n_wire_errors = n_wire_errors + tonumber(errs)
    end

    -- what the clients were told
    local round_created, round_completed, unexpected, bad_reredeem = 0, 0, {}, {}
    for _, c in ipairs(clients) do
      for line in io.lines(c.out) do
        local kind, id, rest = line:match("^(%S+) (%S+) ?(.*)$")
        if kind == "created" then
          if created[id] then
            n_duplicated = n_duplicated + 1
            bad_reredeem[#bad_reredeem + 1] = "id " .. id .. " created twice"
          else
            created[id] = round
            n_created, round_created = n_created + 1, round_created + 1
          end
        elseif kind == "token" then
          local plan, path = rest:match("^(%S+) (%S+)$")
          token_of[id] = path
          if plan == "api" then
            api_paths[#api_paths + 1] = { id = id, path = path, round = round }
          end
        elseif kind == "redeemed" then
          redeemed[id] = round
          redeemed_paths[#redeemed_paths + 1] = { id = id, path = token_of[id], round = round }
        elseif kind == "reredeem" then
          n_reredeem = n_reredeem + 1
          if rest ~= "404" then
            n_duplicated = n_duplicated + 1
            bad_reredeem[#bad_reredeem + 1] = "spent URL of " .. id .. " answered " .. rest
          end
        elseif kind == "completed" then
          completed[id] = round
          n_completed, round_completed = n_completed + 1, round_completed + 1
        elseif kind == "unexpected" then
          unexpected[#unexpected + 1] = line
        else
          error("unreadable client line: " .. line)
        end
      end
    end
    assert(#bad_reredeem == 0, "double redemption or duplicate id (" .. context(round) .. "):\n" ..
      table.concat(bad_reredeem, "\n", 1, math.min(10, #bad_reredeem)))
    -- the file first: a lost write is the failure that matters most
    local total = verify(round)
    assert(#unexpected == 0, #unexpected .. " unexpected answers (" .. context(round) .. "):\n" ..
      table.concat(unexpected, "\n", 1, math.min(10, #unexpected)))
    assert(round_created > 0, "no session created in round " .. round .. " (" .. context(round) .. ")")
    if verbose then
      io.write(string.format("# round %2d: restart %.3f s, killed after %d creates, %d created, " ..
        "%d completed, %d in the file, WAL left by the kill %d bytes\n", round, restart, acks,
        round_created, round_completed, total, wal_bytes))
    end
  end

  -- A last clean start on the file: it serves what was acknowledged.
  srv = h.start({ dir = dir, db = db })
  local done_ids = {}
  for id in pairs(completed) do done_ids[#done_ids + 1] = { id = id } end
  table.sort(done_ids, function(a, b) return a.id < b.id end)
  for _, e in ipairs(sample(done_ids, SAMPLE)) do
    assert.are.equal("completed", hosted.api_session(srv, secret, e.id).status, e.id)
  end
  srv:stop()
  assert.is_nil(srv.pid)
  local total = verify(rounds + 1)

  table.sort(restarts)
  io.write(string.format("# %d rounds, %d sessions created, %d completed, %d lost, %d duplicated\n",
    rounds, n_created, n_completed, n_lost, n_duplicated))
  io.write(string.format("# crash: seed %d, %d requests (%d failed on the wire: cut off or refused after a kill), %d spent URLs " ..
    "re-posted, %d earlier URLs re-tried after restarts, %d sessions committed but never acknowledged, restart median %.3f s max %.3f s, " ..
    "largest WAL left by a kill %.1f MB, %.1f s\n", seed, n_requests, n_wire_errors, n_reredeem, n_rechecked, total - n_created,
    restarts[math.ceil(#restarts / 2)], restart_max, wal_max / 1e6, socket.gettime() - began))
  io.flush()
  assert.are.equal(0, n_lost)
  assert.are.equal(0, n_duplicated)
end

describe("crash safety (SIGKILL under load, one database file) #sqlite_only: SQLite recovering its file and WAL", function()
  it("keeps every acknowledged write and redeems no URL twice through 3 kills", function()
    kill_rounds(3)
  end)

  it("keeps every acknowledged write and redeems no URL twice through 20 kills #soak", function()
    kill_rounds(20)
  end)
end)
