-- tests/helpers/wrk_mixed.lua - a wrk script: session creates with 5% of
-- requests malformed in rotating ways; counts responses by status class
-- and prints them as one line "statuses 2xx=N 4xx=N 5xx=N other=N".
-- Environment: HF_SECRET (a live key), HF_CONTRACTOR.
local secret = os.getenv("HF_SECRET")
local contractor = os.getenv("HF_CONTRACTOR")
local good = '{"contractor":"' .. contractor .. '","return_url":"https://app.example.com/done"}'
local bad = {
  { body = '{"contractor":', ctype = "application/json" },                 -- truncated
  { body = good, ctype = "text/plain" },                                   -- wrong type
  { body = '{"contractor":"a","contractor":"b","return_url":"x"}', ctype = "application/json" },
  { body = string.rep("[", 5000), ctype = "application/json" },           -- deep
  { body = '{"contractor":"' .. contractor .. '","return_url":"https://app.example.com/#x"}',
    ctype = "application/json" },                                         -- fragment
  { body = "\255\254\0garbage", ctype = "application/json" },              -- not UTF-8
  { body = good, ctype = "application/json", auth = "Bearer nope" },      -- unknown key
  { body = string.rep("x", 70000), ctype = "application/json" },         -- too big
}
local n = 0

request = function()
  n = n + 1
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. secret }
  local body = good
  if n % 20 == 0 then
    local b = bad[(n / 20) % #bad + 1]
    headers["Content-Type"] = b.ctype
    if b.auth then headers["Authorization"] = b.auth end
    body = b.body
  end
  return wrk.format("POST", "/api/v1/payment/sessions", headers, body)
end

local counts = {}
response = function(status)
  local class = math.floor(status / 100)
  counts[class] = (counts[class] or 0) + 1
end

-- each thread has its own counts; gather them through the thread objects
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
done = function()
  local total = { 0, 0, 0, 0 }
  for _, t in ipairs(threads) do
    for i, class in ipairs({ 2, 4, 5 }) do
      total[i] = total[i] + (t:get("c" .. class) or 0)
    end
    total[4] = total[4] + (t:get("cother") or 0)
  end
  io.write(string.format("statuses 2xx=%d 4xx=%d 5xx=%d other=%d\n", total[1], total[2], total[3], total[4]))
end

-- publish this thread's counts where done() can read them
local publish = response
response = function(status, headers, body)
  publish(status)
  c2 = counts[2] or 0
  c4 = counts[4] or 0
  c5 = counts[5] or 0
  cother = (counts[1] or 0) + (counts[3] or 0)
end
