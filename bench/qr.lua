--- Benchmark of issue #14: what building the QR matrix of an otpauth URI costs, against the
-- cost of `auth0.totp` (one TOTP code) measured in the same run.
--   lua5.4 bench/qr.lua [N] [ROUNDS]      (N = 2000 codes per round, ROUNDS = 5)
--   luajit bench/qr.lua [N] [ROUNDS]
-- Needs `make` (and `make luajit` for LuaJIT). Prints per operation the median over the rounds
-- of the mean time per call (CPU time of this thread), its ratio to `auth0.totp`, and whether
-- each `auth0.qr` row stays under the 0.2 ms target (a frame's share for an enrollment screen).
-- libqrencode spends about three quarters of a build choosing the mask (scoring all 8 on the
-- whole symbol), so the cost grows with the symbol's area: level H and long URIs cost more.
local jit = rawget(_G, "jit")
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/build/lua5.4/?.so;") .. package.cpath

local auth0 = require "auth0"
local qr = require "auth0.qr"
local core = require "auth0.core"

local format, clock = string.format, core.thread_cpu

local USAGE = "usage: lua5.4 bench/qr.lua [N] [ROUNDS]"
local N, ROUNDS = tonumber(arg[1] or 2000), tonumber(arg[2] or 5)
assert(N and N >= 1 and N <= 10000000 and N % 1 == 0, USAGE)
assert(ROUNDS and ROUNDS >= 1 and ROUNDS <= 100 and ROUNDS % 1 == 0, USAGE)

local SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
-- what an MFA enrollment answer carries (barcode_uri), and a long one (issuer and account
-- near their usual maximum)
local URI = "otpauth://totp/Acme%20Games:alice%40example.com?secret=" .. SECRET .. "&issuer=Acme%20Games"
local LONG = "otpauth://totp/" .. ("Example%20Game%20Studio%20"):rep(3) .. ":" ..
  ("player.name"):rep(6) .. "%40example.com?secret=" .. SECRET .. "&issuer=" ..
  ("Example%20Game%20Studio%20"):rep(3) .. "&algorithm=SHA1&digits=6&period=30"

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

-- Median over ROUNDS of the mean CPU seconds per call of f.
local function measure(f)
  local per = {}
  for r = 1, ROUNDS do
    collectgarbage()
    local t0 = clock()
    for _ = 1, N do f() end
    per[r] = (clock() - t0) / N
  end
  return median(per)
end

local function totp() return auth0.totp(SECRET) end

local rows = {
  { "auth0.totp (reference)", totp },
  { ("auth0.qr, %d-byte URI, level M"):format(#URI), function() return qr.encode(URI) end },
  { ("auth0.qr, %d-byte URI, level H"):format(#URI), function() return qr.encode(URI, { level = "H" }) end },
  { ("auth0.qr, %d-byte URI, level M"):format(#LONG), function() return qr.encode(LONG) end },
  { ("auth0.core.qr alone, %d-byte URI"):format(#URI), function() return core.qr(URI, "M") end },
}
local m = assert(qr.encode(URI))
rows[#rows + 1] = { ("qr:rows(), %dx%d"):format(m.size, m.size), function() return m:rows() end }
rows[#rows + 1] = { ("qr:terminal(), %dx%d"):format(m.size, m.size), function() return m:terminal() end }

print(format("%s, %d calls x %d rounds (median of per-round means, thread CPU time)",
  jit and jit.version or _VERSION, N, ROUNDS))
local ref
for i, row in ipairs(rows) do
  local t = measure(row[2])
  if i == 1 then ref = t end
  local verdict = (i >= 2 and i <= 4) and (t < 0.0002 and "  under 0.2 ms" or "  OVER 0.2 ms") or ""
  print(format("  %-36s %8.1f us  %6.2fx totp%s", row[1], t * 1e6, t / ref, verdict))
end
