--- Seeded fuzz run of the cosocket transport's HTTP/1.1 reader (lua/auth0/transport/http1.lua)
-- over the fake cosocket of spec/support/fake_socket.lua. Pure Lua: the reader is Lua, so
-- libFuzzer's C coverage would not see it; this mutates well-formed answers instead.
--
--   luajit csrc/fuzz/fuzz_http1.lua [COUNT] [SEED]          -- e.g. 10000000 20261201
--   luajit csrc/fuzz/fuzz_http1.lua --write-corpus          -- rewrites the seed files
-- Run from the repository root. Every input must end in a response or in `nil, code,
-- message` with a known code, never in a raise; a body never exceeds the cap; the bytes
-- pulled from the server stay within the caps.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local http1 = require "auth0.transport.http1"
local fake = dofile("spec/support/fake_socket.lua")

local MAX_BODY, MAX_HEADER = http1.MAX_BODY, http1.MAX_HEADER
local CODES = { bad_response = true, too_large = true }
local function left() return 1000 end

local OK = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Auth0-RequestId: r1\r\n"
local JSON = '{"access_token":"eyJhbGciOi","expires_in":86400,"token_type":"Bearer"}'
local SEEDS = {
  OK .. "Content-Length: " .. #JSON .. "\r\n\r\n" .. JSON,
  OK .. "Transfer-Encoding: chunked\r\n\r\n10\r\n" .. JSON:sub(1, 16) .. "\r\n" .. ("%x"):format(#JSON - 16)
    .. "\r\n" .. JSON:sub(17) .. "\r\n0\r\n\r\n",
  OK .. "Transfer-Encoding: chunked\r\n\r\n2;a=b\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n",
  OK .. "Connection: close\r\n\r\n" .. JSON,
  "HTTP/1.1 100 Continue\r\n\r\n" .. OK .. "Content-Length: 2\r\n\r\n{}",
  "HTTP/1.0 429 Too Many Requests\r\nRetry-After: 3\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}",
  "HTTP/1.1 204 No Content\r\n\r\n",
  "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
  "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 58\r\n\r\n"
    .. '{"error":"invalid_grant","error_description":"Wrong code"}',
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "HTTP/1.1 302 Found\r\nLocation: https://app/cb?code=x\r\nContent-Length: 0\r\n\r\n",
  "HTTP/1.1 500 Internal Server Error\r\n\r\n<html>oops</html>",
}
local TOKENS = {
  "\r\n", "\r\n\r\n", "\n", "\r", "Transfer-Encoding: chunked\r\n", "Content-Length: 5\r\n",
  "Content-Length: 99999999999\r\n", "0\r\n\r\n", "ffffffff\r\n", "fffffffff\r\n", "0x10\r\n",
  "HTTP/1.1 100 Continue\r\n\r\n", ";", " ", "\t", "-1", "+1", "\0", "Connection: close\r\n",
  "Connection: keep-alive\r\n", "HTTP/1.0 ", "HTTP/1.1 ", "HTTP/2 ", "1000\r\n", ": ",
  "Transfer-Encoding: gzip\r\n", "X-Trailer: a\r\n",
}

-- Park-Miller: the same seed gives the same inputs on Lua 5.4 and LuaJIT.
local function rng(seed)
  local x = seed % 2147483647
  if x <= 0 then x = x + 2147483646 end
  return function(n) x = x * 16807 % 2147483647; return x % n + 1 end
end

local function mutate(s, r)
  for _ = 1, r(4) do
    local op, n = r(9), #s
    local i = r(n + 1)
    if op == 1 and n > 0 then s = s:sub(1, i - 1) .. string.char(r(256) - 1) .. s:sub(i + 1)
    elseif op == 2 then s = s:sub(1, i - 1) .. string.char(r(256) - 1) .. s:sub(i)
    elseif op == 3 then s = s:sub(1, i - 1) .. s:sub(i + r(16))
    elseif op == 4 then s = s:sub(1, i - 1) .. TOKENS[r(#TOKENS)] .. s:sub(i)
    elseif op == 5 then s = s:sub(1, r(n + 1) - 1)
    elseif op == 6 then local j = i + r(32); s = s:sub(1, j) .. s:sub(i, j) .. s:sub(j + 1)
    elseif op == 7 then -- a long run: toward the caps
      local piece = s:sub(i, i + r(8))
      if piece == "" then piece = "a" end
      s = s:sub(1, i - 1) .. piece:rep(math.floor(r(MAX_HEADER / 4) / #piece) + 1) .. s:sub(i)
    elseif op == 8 then s = s:sub(1, i - 1) .. ("%x"):format(r(1048576)) .. s:sub(i)
    else s = s .. TOKENS[r(#TOKENS)] end
  end
  return s
end

-- One input. Returns true (answer read) or false (refused); raises on a broken invariant.
local function check(input, method, seed)
  local sock = fake.new(input, { seed = seed })
  local ok, resp, a, b = pcall(http1.read_response, sock, method, left, true)
  if not ok then error(("reader raised %s on %q"):format(tostring(resp), input:sub(1, 200)), 0) end
  if sock.consumed > MAX_HEADER + MAX_BODY + 8192 then error("read too much: " .. sock.consumed, 0) end
  if resp == nil then
    if not CODES[a] or type(b) ~= "string" then
      error(("bad failure (%s, %s) on %q"):format(tostring(a), tostring(b), input:sub(1, 200)), 0)
    end
    return false
  end
  if type(resp.status) ~= "number" or resp.status < 100 or resp.status > 599 or resp.status % 1 ~= 0
      or type(resp.body) ~= "string" or #resp.body > MAX_BODY or type(resp.headers) ~= "table"
      or type(a) ~= "boolean" then
    error(("bad answer on %q"):format(input:sub(1, 200)), 0)
  end
  for k, v in pairs(resp.headers) do
    if type(k) ~= "string" or k ~= k:lower() or type(v) ~= "string" or v:find("[\r\n%z]") then
      error(("bad header %q on %q"):format(tostring(k), input:sub(1, 200)), 0)
    end
  end
  return true
end

local function read_corpus(dir)
  local out = {}
  local p = io.popen("ls '" .. dir .. "' 2>/dev/null")
  for name in p:lines() do
    local f = io.open(dir .. "/" .. name, "rb")
    if f then out[#out + 1] = f:read("*a"); f:close() end
  end
  p:close()
  return out
end

local _M = {}

--- Runs the corpus, then `opts.count` generated inputs from `opts.seed`.
-- @return { runs, ok, failed, corpus }
function _M.run(opts)
  local r = rng(opts.seed or 1)
  local stats = { runs = 0, ok = 0, failed = 0, corpus = 0 }
  local pool = {}
  for _, s in ipairs(SEEDS) do pool[#pool + 1] = s end
  for _, s in ipairs(read_corpus(opts.corpus or "csrc/fuzz/corpus/fuzz_http1")) do
    pool[#pool + 1] = s
    stats.corpus = stats.corpus + 1
    local res = check(s, "POST", 1)
    stats.runs = stats.runs + 1
    stats[res and "ok" or "failed"] = stats[res and "ok" or "failed"] + 1
  end
  for _ = 1, opts.count do
    local input = mutate(pool[r(#pool)], r)
    local res = check(input, r(8) == 1 and "HEAD" or "POST", r(1000))
    stats.runs = stats.runs + 1
    stats[res and "ok" or "failed"] = stats[res and "ok" or "failed"] + 1
  end
  return stats
end

--- Writes the seeds and one input per distinct outcome of a short run into `dir`.
function _M.write_corpus(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  local seen, n = {}, 0
  local function keep(s)
    n = n + 1
    local f = assert(io.open(("%s/seed%03d"):format(dir, n), "wb"))
    f:write(s)
    f:close()
  end
  for _, s in ipairs(SEEDS) do keep(s) end
  local r = rng(7)
  for _ = 1, 200000 do
    local input = mutate(SEEDS[r(#SEEDS)], r)
    if #input < 4096 then
      local sock = fake.new(input, { seed = 1 })
      local resp, code, msg = http1.read_response(sock, "POST", left, true)
      local key = resp and ("ok " .. math.floor(resp.status / 100)) or (code .. " " .. msg)
      if not seen[key] then seen[key] = true; keep(input) end
    end
  end
  return n
end

if arg and arg[0] and arg[0]:find("fuzz_http1%.lua$") then
  if arg[1] == "--write-corpus" then
    print("fuzz_http1: wrote " .. _M.write_corpus("csrc/fuzz/corpus/fuzz_http1") .. " files")
  else
    local count, seed = tonumber(arg[1]) or 100000, tonumber(arg[2]) or os.time()
    local t0 = os.clock()
    local s = _M.run { count = count, seed = seed }
    print(("fuzz_http1: %d inputs (seed %d), %d read, %d refused, %.1f s CPU")
      :format(s.runs, seed, s.ok, s.failed, os.clock() - t0))
  end
end

return _M
