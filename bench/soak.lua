-- wrk script for `make soak`: a mix of the requests a gateway sees, each checked against the
-- answers the policy allows for it. Each request's kind travels in its X-Request-Id, which the
-- gateway returns on every answer, so answers are matched to requests whatever the connection
-- does (reconnects after an answer that closes it). Tokens come from the file named by SOAK_TOKENS (one per
-- line, rewritten by the driver when it rotates keys). Counts per kind go to SOAK_REPORT.
local kinds = {
  { name = "bearer",  path = "/api/items",   weight = 40, ok = { [200] = true } },
  { name = "nobody",  path = "/api/items",   weight = 15, ok = { [401] = true } },
  { name = "badtok",  path = "/api/items",   weight = 5,  ok = { [401] = true } },
  { name = "public",  path = "/public/x",    weight = 15, ok = { [200] = true } },
  { name = "basic",   path = "/basic/x",     weight = 10, ok = { [200] = true } },
  { name = "upload",  path = "/public/up",   weight = 5,  ok = { [200] = true } },
  { name = "big",     path = "/public/big?echo_bytes=262144", weight = 5, ok = { [200] = true } },
  { name = "nothere", path = "/nowhere",     weight = 5,  ok = { [404] = true } },
}
local upload = string.rep("u", 64 * 1024)
local total = 0
for _, k in ipairs(kinds) do total = total + k.weight end

local threads = {}
local tokens = {}
local tokensAt = 0

local function loadTokens()
  local file = io.open(os.getenv("SOAK_TOKENS") or "", "r")
  if not file then return end
  local list = {}
  for line in file:lines() do if #line > 0 then list[#list + 1] = line end end
  file:close()
  if #list > 0 then tokens = list end
end

function setup(thread)
  thread:set("id", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  counts, bad, statuses = {}, {}, {}
  for _, k in ipairs(kinds) do counts[k.name] = 0; bad[k.name] = 0 end
  serial = 0
  loadTokens()
  math.randomseed(os.time() + id)
end

local function pick()
  local r = math.random(total)
  for _, k in ipairs(kinds) do
    r = r - k.weight
    if r <= 0 then return k end
  end
  return kinds[1]
end

function request()
  if os.time() - tokensAt > 5 then loadTokens(); tokensAt = os.time() end
  local k = pick()
  serial = serial + 1
  local headers = { ["Host"] = "soak.example", ["X-Request-Id"] = k.name .. "-" .. id .. "-" .. serial }
  local body = nil
  local method = "GET"
  if k.name == "bearer" then
    headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
  elseif k.name == "badtok" then
    headers["Authorization"] = "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vbmUifQ.e30.c2ln"
  elseif k.name == "basic" then
    headers["Authorization"] = "Basic am9obmRvZTpzZWNyZXQ="
  elseif k.name == "upload" then
    method = "POST"
    body = upload
  end
  return wrk.format(method, k.path, headers, body)
end

local byName = {}
for _, k in ipairs(kinds) do byName[k.name] = k end

function response(status, headers, body)
  local rid = headers["X-Request-Id"] or headers["x-request-id"] or ""
  local k = byName[rid:match("^(%a+)%-")]
  if not k then
    statuses[status] = (statuses[status] or 0) + 1
    counts["unmatched"] = (counts["unmatched"] or 0) + 1
    bad["unmatched"] = (bad["unmatched"] or 0) + 1
    return
  end
  counts[k.name] = counts[k.name] + 1
  statuses[status] = (statuses[status] or 0) + 1
  if not k.ok[status] then bad[k.name] = bad[k.name] + 1 end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("SOAK_REPORT") or "/dev/stdout", "w")
  local all, wrong, byStatus = {}, {}, {}
  for _, thread in ipairs(threads) do
    for name, n in pairs(thread:get("counts")) do all[name] = (all[name] or 0) + n end
    for name, n in pairs(thread:get("bad")) do wrong[name] = (wrong[name] or 0) + n end
    for status, n in pairs(thread:get("statuses")) do byStatus[status] = (byStatus[status] or 0) + n end
  end
  for name, n in pairs(all) do out:write(string.format("kind %s %d %d\n", name, n, wrong[name] or 0)) end
  for status, n in pairs(byStatus) do out:write(string.format("status %d %d\n", status, n)) end
  out:write(string.format("errors connect=%d read=%d write=%d timeout=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  out:close()
end
