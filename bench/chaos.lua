--- Chaos run of issue #5: login flows (passwordless start + login, MFA OTP for a third of the
-- users when the emulator has MFA, then /userinfo) against the emulator under nginx over TLS,
-- with faults drawn from a seed. Flows run in rounds; each round draws one fault rule (kind,
-- path, probability, variant) and a mode (blocking calls, or the callback API with every flow
-- of the round in flight at once on one client), so every error has one possible cause.
--   lua5.4 bench/chaos.lua [flows] [seed]     (flows = 3000; seed = os.time())
--   luajit bench/chaos.lua [flows] [seed]
-- Needs `make`, `make luajit` and nginx. Prints the flows run, the faults injected per kind
-- (the emulator's count), the outcomes per error code, crashes (a raised error, a callback not
-- run exactly once, an error that is not an error object), unexpected codes (not allowed for
-- the round's fault), hangs (calls that ran past their deadline), and the growth of this
-- process's RSS over the second half of the run (after the first half warmed it up).
--
-- `loadfile("bench/chaos.lua")("--lib")` returns the engine instead (spec/chaos_spec.lua).
local LIB = ... == "--lib"

local M = {}

M.KINDS = { "delay", "close_before_headers", "close_after_headers", "truncate", "invalid_json",
  "wrong_shape", "huge_body", "http_500", "http_502", "http_503", "rate_limit", "slow_headers",
  "redirect_http" }

-- The codes a flow may end with when its round injects `kind` (success is always allowed: a
-- probability may spare the flow, some faults are tolerated, reads are retried).
M.ALLOWED = {
  delay = { timeout = true },
  close_before_headers = { bad_response = true },
  close_after_headers = { bad_response = true },
  truncate = { bad_response = true },
  invalid_json = { bad_response = true },
  -- a reshaped 403 mfa_required loses its `error` field and reads as its status
  wrong_shape = { bad_response = true, forbidden = true },
  huge_body = { too_large = true },
  http_500 = { server_error = true },
  http_502 = { server_error = true },
  http_503 = { server_error = true },
  rate_limit = { too_many_requests = true },
  slow_headers = { timeout = true },
  redirect_http = { http_error = true },
}

local PATHS = { "/passwordless/start", "/oauth/token", "/userinfo" }   -- or every path
local VARIANTS = {
  rate_limit = { "retry_after_seconds", "retry_after_date", "reset_only", "none" },
  wrong_shape = { "array", "strings", "nulls" },
}
local SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"   -- every MFA user's TOTP secret

--- The seeded generator (Park-Miller, exact in doubles and integers alike): `r()` in [0, 1),
-- `r(n)` an integer in [1, n]. Lua 5.4's and LuaJIT's math.random differ; this does not.
function M.rng(seed)
  local s = math.floor(seed) % 2147483647
  if s <= 0 then s = s + 2147483646 end
  return function(n)
    s = (s * 48271) % 2147483647
    local x = (s - 1) / 2147483646
    if n then return math.floor(x * n) + 1 end
    return x
  end
end

-- The "some" line of Linux's CPU pressure (nil when the kernel does not say).
local function psi_some()
  local f = io.open("/proc/pressure/cpu")
  if not f then return nil end
  local line = f:read("*l")
  f:close()
  return line
end

-- Linux's CPU pressure: the share of the last 10 s in which some runnable task waited for a
-- CPU (0 when the kernel does not say).
function M.cpu_pressure()
  local line = psi_some()
  return tonumber(line and line:match("avg10=([%d.]+)")) or 0
end

--- A meter of CPU pressure since its last reading: each call returns the share (%) of the
-- time since the previous reading (or since the meter was made) in which some runnable task
-- waited for a CPU, from the kernel's stall counter; nil when the kernel does not say or less
-- than 0.1 s has passed (too short to mean anything). Unlike avg10, a 10 s average, it sees
-- load that started a moment ago.
function M.pressure_meter(now)
  local function total()
    local line = psi_some()
    return tonumber(line and line:match("total=(%d+)"))
  end
  local t0, w0 = now(), total()
  return function()
    local t1 = now()
    if not w0 or t1 - t0 < 0.1 then return nil end
    local w1 = total()
    local p = math.min(100, (w1 - w0) / 1e4 / (t1 - t0))   -- the counter is in microseconds
    t0, w0 = t1, w1
    return p
  end
end

--- The factor for the calls' timeouts: slower under valgrind (8) or ASan (2), and on a machine
-- whose CPUs are contended (2 from 20 % CPU pressure, 4 from 50 %): there a request can wait
-- longer than 0.5 s for a CPU (nginx's, or the I/O thread's at nice 10) with no fault at all,
-- and end in a genuine `timeout` that no fault explains.
function M.slowdown()
  local f = io.open("/proc/self/maps")
  local factor = 1
  if f then
    local maps = f:read("*a")
    f:close()
    if maps:find("vgpreload", 1, true) then factor = 8 elseif maps:find("libasan", 1, true) then factor = 2 end
  end
  local p = M.cpu_pressure()
  return factor * (p >= 50 and 4 or p >= 20 and 2 or 1)
end

--- Resident set size of this process, KB.
function M.rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- Draws round `r`'s fault rule and mode.
local function draw_round(rand, timeout)
  local kind = M.KINDS[rand(#M.KINDS)]
  local rule = { kind = kind, probability = 0.15 + 0.5 * rand() }
  local p = rand(#PATHS + 1)
  rule.path = PATHS[p]   -- nil: every path
  local mode = rand() < 0.5 and "blocking" or "callback"
  -- each hit of a slow kind costs a whole timeout in blocking mode: keep those rounds short
  if (kind == "delay" or kind == "slow_headers") and mode == "blocking" then rule.probability = rule.probability / 3 end
  if kind == "delay" then rule.ms = math.floor(timeout * 1500 * rand()) + 20 end
  if kind == "slow_headers" then rule.interval = 100 end
  if VARIANTS[kind] then rule.variant = VARIANTS[kind][rand(#VARIANTS[kind])] end
  if kind == "rate_limit" then rule.retry_after = rand(2) - 1 end
  return rule, mode
end

local function is_error(auth0, err)
  return auth0.error.is(err) and type(err.code) == "string" and type(tostring(err)) == "string"
end

--- Runs `n` flows. opts: `auth0` (the module), `server` ({base_url, ca_file}), `ctl` (an
-- auth0.emulator.client), `seed`, `round` (flows per round, 12), `timeout` (seconds per call,
-- 0.5), `mfa` (true when the emulator has MFA), `slowdown` (timeouts factor), `on_round(i, stats,
-- rule, mode, failed, injected)`; for tests of the checker itself: `draw(rand, timeout) -> rule,
-- mode` and `allowed` (kind -> {code = true}).
-- @return stats: { flows, rounds, calls, modes = {mode = flows}, injected = {kind = n},
--   outcomes = {code = n}, crashes = {msg}, unexpected = {msg}, hangs = {msg}, max_over = s (the
--   closest a call came to its deadline), errors_without_fault (failed flows beyond the faults),
--   unfaulted = {msg} (the rounds that had them: each failed flow's code, the call that ended
--   it and how long that call took, and the CPU pressure measured over the round) }
function M.run(n, opts)
  local auth0, ctl = opts.auth0, opts.ctl
  local now = auth0.core.now
  local rand = M.rng(opts.seed)
  local per_round = opts.round or 12
  local slow = opts.slowdown or 1
  local timeout = (opts.timeout or 0.5) * slow
  local retries, max_wait = 2, 1
  local slack = 0.25 * slow
  local st = { flows = 0, rounds = 0, injected = {}, outcomes = {}, crashes = {}, unexpected = {}, hangs = {},
    max_over = -math.huge, calls = 0, errors_without_fault = 0, modes = {}, unfaulted = {} }
  assert(ctl:post("rate_limits", { enabled = false }))
  local fi = 0
  while st.flows < n do
    st.rounds = st.rounds + 1
    local pressure = M.pressure_meter(now)
    local rule, mode = (opts.draw or draw_round)(rand, timeout)
    local k = math.min(per_round, n - st.flows)
    assert(ctl:post("faults", { rules = { rule }, seed = rand(2147483646) }))
    local allowed = (opts.allowed or M.ALLOWED)[rule.kind] or {}
    local c = auth0.new { base_url = opts.server.base_url, ca_file = opts.server.ca_file, client_id = "emu-native",
      timeout = timeout, retries = retries, max_retry_wait = max_wait }
    -- a blocking call ends within its timeout; so does a callback call now, but a late poll of
    -- this loop (poll(20) under load) may deliver its callback later: the old bound stays
    local bound = mode == "blocking" and timeout + slack or (retries + 1) * timeout + retries * (max_wait + 0.1) + slack

    local flows, closed = {}, false
    for i = 1, k do
      fi = fi + 1
      local f = { email = ("chaos-%d-%d@example.com"):format(opts.seed % 100000, fi), step = "start" }
      f.mfa = opts.mfa and rand(3) == 1
      if f.mfa then
        local u = assert(ctl:post("users", { connection = "email", email = f.email, mfa = { "otp" } }))
        assert(ctl:post("mfa/authenticators", { user_id = u.user_id, type = "otp", secret = SECRET }))
      end
      flows[i] = f
    end

    -- Ends flow `f` with a result (true) or an error object; checks what came back.
    local function settle(f, what, dt, v, err)
      st.calls = st.calls + 1
      if dt > bound then
        st.hangs[#st.hangs + 1] = ("%s %s took %.2f s (bound %.2f s, %s)"):format(f.email, what, dt, bound, rule.kind)
      end
      if dt - bound > st.max_over then st.max_over = dt - bound end
      if v == nil then
        if not is_error(auth0, err) then
          st.crashes[#st.crashes + 1] = f.email .. " " .. what .. ": not an error object: " .. tostring(err)
          f.done, f.code = true, "crash"
        elseif what == "login" and err.code == "mfa_required" and f.mfa then
          f.mfa_token = err.mfa_token
          return "mfa"
        else
          f.done, f.code, f.failed_at = true, err.code, ("%s %.2f s"):format(what, dt)
        end
        return
      end
      if (what == "login" or what == "mfa") and (type(v) ~= "table" or type(v.access_token) ~= "string") then
        st.crashes[#st.crashes + 1] = f.email .. " " .. what .. ": tokens without an access_token"
      end
      if what == "login" and f.mfa then
        st.crashes[#st.crashes + 1] = f.email .. ": an MFA user got tokens without MFA"
        f.done, f.code = true, "crash"
        return
      end
      if what == "login" or what == "mfa" then f.tokens = v end
      if what == "userinfo" then f.done, f.code = true, "ok" end
    end

    local function args(f, what)
      if what == "start" then return { connection = "email", email = f.email } end
      if what == "login" then return { realm = "email", username = f.email, otp = f.code_sent } end
      if what == "mfa" then return { mfa_token = f.mfa_token, otp = auth0.totp(SECRET, { time = os.time() }) } end
      return f.tokens.access_token
    end
    local METHOD = { start = "passwordless_start", login = "passwordless_login", mfa = "mfa_verify",
      userinfo = "userinfo" }
    local NEXT = { start = "login", login = "userinfo", mfa = "userinfo" }

    -- Advances every flow still going by one step, blocking or with callbacks.
    local function step(what)
      local todo = {}
      for _, f in ipairs(flows) do if not f.done and f.step == what then todo[#todo + 1] = f end end
      if #todo == 0 then return end
      local function after(f, dt, ok, v, err)
        if not ok then
          st.crashes[#st.crashes + 1] = f.email .. " " .. what .. " raised: " .. tostring(v)
          f.done, f.code = true, "crash"
          return
        end
        local nxt = settle(f, what, dt, v, err)
        if not f.done then f.step = nxt or NEXT[what] end
      end
      if mode == "blocking" then
        for _, f in ipairs(todo) do
          local t0 = now()
          local ok, v, err = pcall(c[METHOD[what]], c, args(f, what))
          after(f, now() - t0, ok, v, err)
        end
        return
      end
      local pending = 0
      for _, f in ipairs(todo) do
        local calls, t0 = 0, now()
        local ok, perr = pcall(c[METHOD[what]], c, args(f, what), function(v, err)
          calls = calls + 1
          if calls > 1 then
            st.crashes[#st.crashes + 1] = f.email .. " " .. what .. ": callback ran " .. calls .. " times"
            return
          end
          pending = pending - 1
          after(f, now() - t0, true, v, err)
        end)
        if ok then pending = pending + 1 else after(f, 0, false, perr) end
      end
      local give_up = now() + bound + 5 * slow
      while pending > 0 and now() < give_up do c:poll(20) end
      if pending > 0 then
        st.hangs[#st.hangs + 1] = ("%d %s callbacks never ran (%s)"):format(pending, what, rule.kind)
        c:close()   -- runs them with "cancelled"
        closed = true
      end
      collectgarbage()
    end

    step("start")
    if not closed then
      local codes = {}
      for _, m in ipairs(assert(ctl:outbox())) do codes[m.to] = m.code end
      assert(ctl:delete("outbox"))
      for _, f in ipairs(flows) do f.code_sent = codes[f.email] end
      for _, f in ipairs(flows) do
        -- the start failed on the way back but the code went out: the flow still ended there
        if not f.done and not f.code_sent then
          st.crashes[#st.crashes + 1] = f.email .. ": start succeeded but no code was sent"
          f.done, f.code = true, "crash"
        end
      end
      step("login")
      step("mfa")
      step("userinfo")
    end
    if not closed then
      if c:pending() ~= 0 then st.crashes[#st.crashes + 1] = "round " .. st.rounds .. ": requests left pending" end
      c:close()
    end

    local report = assert(ctl:get("faults"))
    local injected = 0
    for kind, m in pairs(report.injected) do
      st.injected[kind] = (st.injected[kind] or 0) + m
      injected = injected + m
    end
    local failed = 0
    for _, f in ipairs(flows) do
      local code = f.code or "unfinished"
      st.outcomes[code] = (st.outcomes[code] or 0) + 1
      if code ~= "ok" then
        failed = failed + 1
        if not allowed[code] then
          st.unexpected[#st.unexpected + 1] = ("%s ended with %s under %s %s (%s)"):format(f.email, code, rule.kind,
            tostring(rule.path or "*"), mode)
        end
      end
    end
    -- every failed flow needs a fault of its own
    if failed > injected then
      st.errors_without_fault = st.errors_without_fault + failed - injected
      local codes = {}
      for _, f in ipairs(flows) do
        if f.code ~= "ok" then codes[#codes + 1] = tostring(f.code) .. (f.failed_at and " (" .. f.failed_at .. ")" or "") end
      end
      local p = pressure()
      st.unfaulted[#st.unfaulted + 1] = ("round %d: %d failed, %d faults injected under %s %s (%s, timeout %.2f s, "
        .. "CPU pressure %s over the round): %s"):format(st.rounds, failed, injected, rule.kind,
        tostring(rule.path or "*"), mode, timeout, p and ("%.0f %%"):format(p) or "unknown", table.concat(codes, ", "))
    end
    st.flows = st.flows + k
    st.modes[mode] = (st.modes[mode] or 0) + k
    assert(ctl:delete("faults"))
    if opts.on_round then opts.on_round(st.rounds, st, rule, mode, failed, injected) end
  end
  return st
end

if LIB then return M end

---------------------------------------------------------------------------------------------
-- Command line.

local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
local vm = rawget(_G, "jit") and "luajit" or "lua5.4"
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/" .. vm .. "/?.so;" .. package.cpath

local auth0 = require "auth0"
local server = require "auth0.emulator.server"
local control = require "auth0.emulator.client"

local USAGE = "usage: " .. vm .. " bench/chaos.lua [flows] [seed]"
local N = tonumber(arg[1] or 3000)
local SEED = tonumber(arg[2] or os.time())
assert(N and N >= 2 and N <= 1000000 and N % 1 == 0, USAGE)
assert(SEED and SEED >= 1 and SEED % 1 == 0, USAGE)
N, SEED = math.floor(N), math.floor(SEED)

local srv = assert(server.start {})
local ctl = control.new { base_url = srv.base_url, ca_file = srv.ca_file }
local has_mfa = ctl:get("mfa") ~= nil
print(("chaos: %d flows, seed %d, %s, MFA %s"):format(N, SEED, vm, has_mfa and "on" or "off"))

local total = { flows = 0, injected = {}, outcomes = {}, crashes = {}, unexpected = {}, hangs = {}, calls = 0,
  errors_without_fault = 0, max_over = -math.huge }
local function add(st)
  total.flows, total.calls = total.flows + st.flows, total.calls + st.calls
  total.errors_without_fault = total.errors_without_fault + st.errors_without_fault
  total.max_over = math.max(total.max_over, st.max_over)
  for _, f in ipairs { "injected", "outcomes" } do
    for k, v in pairs(st[f]) do total[f][k] = (total[f][k] or 0) + v end
  end
  for _, f in ipairs { "crashes", "unexpected", "hangs" } do
    for _, v in ipairs(st[f]) do total[f][#total[f] + 1] = v end
  end
end

local t0 = auth0.core.now()
local first = math.floor(N / 2)
-- the second half runs on another seed derived from the first: both are printed
local halves = { { first, SEED }, { N - first, SEED + 1 } }
local rss = {}
for h, half in ipairs(halves) do
  ctl:post("reset")
  collectgarbage(); collectgarbage()
  rss[h] = M.rss_kb()
  add(M.run(half[1], { auth0 = auth0, server = srv, ctl = ctl, seed = half[2], mfa = has_mfa,
    slowdown = M.slowdown() }))
end
collectgarbage(); collectgarbage()
rss[3] = M.rss_kb()
local elapsed = auth0.core.now() - t0
srv:stop()

local function sorted(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end
print(("flows run: %d (%d calls) in %.1f s; seeds %d (first half), %d (second half)"):format(total.flows,
  total.calls, elapsed, SEED, SEED + 1))
local n_inj = 0
for _, v in pairs(total.injected) do n_inj = n_inj + v end
print(("faults injected: %d"):format(n_inj))
for _, k in ipairs(sorted(total.injected)) do print(("  %-22s %6d"):format(k, total.injected[k])) end
print("outcomes (flows):")
for _, k in ipairs(sorted(total.outcomes)) do print(("  %-22s %6d"):format(k, total.outcomes[k])) end
print(("crashes: %d"):format(#total.crashes))
for i = 1, math.min(10, #total.crashes) do print("  " .. total.crashes[i]) end
print(("unexpected codes: %d; failed flows beyond the faults injected: %d"):format(#total.unexpected,
  total.errors_without_fault))
for i = 1, math.min(10, #total.unexpected) do print("  " .. total.unexpected[i]) end
print(("hangs (past the deadline): %d; closest call to its deadline: %+.3f s"):format(#total.hangs, total.max_over))
for i = 1, math.min(10, #total.hangs) do print("  " .. total.hangs[i]) end
print(("RSS: %d KB at start, %d KB after the warm-up half, %d KB at the end: %+d KB over the second half"):format(
  rss[1], rss[2], rss[3], rss[3] - rss[2]))
os.exit((#total.crashes + #total.unexpected + #total.hangs + total.errors_without_fault) == 0 and 0 or 1)
