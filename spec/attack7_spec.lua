-- Hostile review (attack7) of the frames3/perf3 merge after attack6: the credentials manager's
-- in-order saves against client:close(), the flow's chained step, the blocking fast path.
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local util = require "spec.support.util"
local core = require "auth0.core"
local auth0 = require "auth0"

local server
local clock = util.clock(emu)

describe("attack7: in-order saves and client:close()", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("close() with a save waiting its turn behind a slow one: each callback once, nothing written after", function()
    local c, cm, path, old, new = util.rotated_logins(emu, server, clock, { tag = "a7-creds",
      old = "old@example.com", new = "new@example.com", delay_ms = 500 })
    local got = {}
    assert.is_true(cm:save(new, function(ok, err) got[#got + 1] = { "new", ok, err and err.reason } end))
    assert.is_true(cm:save(old, function(ok, err) got[#got + 1] = { "old", ok, err and err.reason } end))
    local t0 = core.now()
    while core.now() - t0 < 0.15 do c:poll(10) end   -- old's check is done: it waits its turn
    assert.same({}, got)
    c:close()
    assert.same({ { "new", nil, "cancelled" }, { "old", nil, "cancelled" } }, got)
    assert.is_nil(core.store_read(path))
  end)

  it("a raise in a later save's step run on an earlier one's turn ends the later one (a clear asked after runs)", function()
    local errs = {}
    local c = util.client(server, { on_callback_error = function(m) errs[#errs + 1] = m end })
    local n = 0
    local cm = credentials.new(c, { store = credentials.memory_store(), now = clock.now,
      on_change = function(event) n = n + 1; if n == 2 then error("on_change raised for " .. event) end end })
    local first = util.login(emu, c, "first@example.com")   -- the JWKS not held: its check fetches it
    assert(emu.control("POST", "/faults", { rules = { { kind = "delay", ms = 300, path = "/.well-known/jwks.json" } } }))
    local got = {}
    assert.is_true(cm:save(first, function(ok, err) got[#got + 1] = { "first", ok, err } end))
    -- no ID token: checked at once, it waits for the first's turn and runs on it
    assert.is_true(cm:save({ access_token = "at2", expires_in = 3600 }, function(ok, err) got[#got + 1] = { "second", ok, err } end))
    assert(util.poll_until(c, function() return #errs == 1 end, 10), "no raise")
    assert.matches("on_change raised for saved", errs[1])
    assert.same({ { "first", true } }, got)   -- the second ended by its raise, as a raise on its own turn ends it
    local cleared
    assert.is_true(cm:clear(function(ok, err) cleared = { ok, err } end))
    assert(util.poll_until(c, function() return cleared ~= nil end, 5), "the clear waits for ever for the second save")
    assert.same({ true }, cleared)
    c:close()
  end)

  it("a later save's callback raising on an earlier one's turn: the clear asked after still lands last (held)", function()
    local errs = {}
    local c = util.client(server, { on_callback_error = function(m) errs[#errs + 1] = m end })
    local path = util.tmpdir("a7-creds") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
    local first = util.login(emu, c, "first2@example.com")   -- the JWKS not held: its check fetches it
    assert(emu.control("POST", "/faults", { rules = { { kind = "delay", ms = 300, path = "/.well-known/jwks.json" } } }))
    local got = {}
    assert.is_true(cm:save(first, function(ok, err) got[#got + 1] = { "first", ok, err and err.reason } end))
    assert.is_true(cm:save({ access_token = "at2", expires_in = 3600, id_token = "not.a.token" }, function(ok, err)
      got[#got + 1] = { "second", ok, err and err.reason }
      error("second callback raised")
    end))
    assert.is_true(cm:clear(function(ok, err) got[#got + 1] = { "clear", ok, err and err.reason } end))
    assert(util.poll_until(c, function() return #got == 3 end, 10), "timed out")
    -- the second's error is handed over on the first's turn, before the first's write ends
    assert.same({ "second", nil, "invalid_id_token" }, got[1])
    assert.same({ "first", true }, got[2])
    assert.same({ "clear", true }, got[3])
    assert.equal(1, #errs)
    assert.matches("second callback raised", errs[1])
    assert.is_nil(cm:user())
    assert.is_nil(core.store_read(path))
    c:close()
  end)
end)

-- The raw loopback server (spec/support/rawserver.lua): canned answers in order.
local function serve(answers) return (require("spec.support.rawserver").serve(answers, "a7")) end

describe("attack7: in-order saves across a failed JWKS refetch", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("the earlier save's fetch times out: it fails, the later one is written (held)", function()
    local c, cm, path, old, new = util.rotated_logins(emu, server, clock, { tag = "a7-creds",
      old = "old3@example.com", new = "new3@example.com", delay_ms = 1500, client = { timeout = 1, retries = 0 } })
    local got = {}
    assert.is_true(cm:save(new, function(ok, err) got[#got + 1] = { "new", ok, err and err.code } end))
    assert.is_true(cm:save(old, function(ok, err) got[#got + 1] = { "old", ok, err and err.code } end))
    assert(util.poll_until(c, function() return #got == 2 end, 20), "timed out")
    assert.equal("new", got[1][1])
    assert.is_nil(got[1][2])
    assert.is_string(got[1][3])
    assert.same({ "old", true }, got[2])
    assert.equal("old3@example.com", cm:user().email)
    local again = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
    assert.equal("old3@example.com", again:user().email)
    c:close()
  end)
end)

describe("attack7: the blocking call's 2xx fast path", function()
  after_each(util.rm_tmp)

  -- What a call returned, comparable: a value as JSON-ish text, an error by its fields.
  local function outcome(r, err)
    if err then
      return { err = { code = err.code, reason = err.reason, status = err.status, message = err.message,
        context = err.context, request_id = err.request_id } }
    end
    if type(r) == "table" then
      local t = {}
      for k, v in pairs(r) do t[k] = (k == "expires_at") and "(now)" or type(v) == "table" and "(table)" or tostring(v) end
      return { ok = t }
    end
    return { ok = tostring(r) }
  end

  it("gives what finish() gives, on_log set or not, for every kind of 2xx body (held)", function()
    local bodies = {
      '{"_id":"x","email":"h@example.com","email_verified":false}',
      '{"error":"invalid_request","error_description":"bad"}',
      '{"error":null,"_id":"x"}',
      '{"error":5,"_id":"x"}',
      '{"_id":"x","email":5}',
      '', '   ', '[1,2]', '{"a":{"b":1}}', '{"_id":"a\\u0041b"}', '{"_id":"x"} trailing', '{"_id":"x",}',
      '{"_id":"x","_id":"y"}', '{"email_verified":null,"_id":"z"}', 'null', '"str"', '12',
      '{"access_token":"a","expires_in":"12"}', '{"access_token":"a","expires_in":1e999}',
      '{"access_token":"a","error":"authorization_pending"}', '{"access_token":"a","id_token":null}',
      '{"access_token":5}', '{"access_token":"a","expires_in":-0.0}',
    }
    local calls = {
      function(c) return c:passwordless_start { connection = "email", email = "h@example.com" } end,
      function(c) return c:passwordless_login { realm = "email", username = "h@example.com", otp = "123456" } end,
      function(c) return c:mfa_authenticators("mfa-token") end,
    }
    local answers = {}
    for _ = 1, #calls do
      for _, b in ipairs(bodies) do
        for _ = 1, 2 do
          answers[#answers + 1] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Auth0-RequestId: rq1\r\n" ..
            "Content-Length: " .. #b .. "\r\n\r\n" .. b
        end
      end
    end
    local c = auth0.new { base_url = serve(answers), client_id = "emu-native", timeout = 5, retries = 0 }
    local logged = 0
    local function on_log() logged = logged + 1 end
    for ci, call in ipairs(calls) do
      for bi, b in ipairs(bodies) do
        c._on_log = nil
        local fast = outcome(call(c))
        c._on_log = on_log
        local slow = outcome(call(c))
        c._on_log = nil
        assert.same(slow, fast, ("call %d, body %d: %s"):format(ci, bi, b))
      end
    end
    assert.is_true(logged > 0)
    c:close()
  end)
end)

describe("attack7: the modules' jit.off lines", function()
  -- LuaJIT only: Lua 5.4 has no JIT
  local it_jit = rawget(_G, "jit") and it or pending
  it_jit("a host turning the JIT on globally later leaves the modules' functions interpreted (held)", function()
    local jit = rawget(_G, "jit")
    local sched = require "auth0.sched"
    local Sched = getmetatable(sched.new(nil, {})).__index
    jit.on()
    local started = {}
    local function on_trace(what, _, func) if what == "start" then started[func] = true end end
    jit.attach(on_trace, "trace")
    -- the same loop as Sched.cancel_timer's, of this file's: it is traced
    local function own(self, t) for i, v in ipairs(self.timers) do if v == t then return i end end end
    local big = { timers = {} }
    for i = 1, 2000 do big.timers[i] = {} end
    for _ = 1, 200 do
      Sched.cancel_timer(big, "absent")
      own(big, "absent")
    end
    jit.attach(on_trace)   -- detached
    assert.is_true(started[own] == true)   -- the loop is hot enough for a trace
    assert.is_nil(started[Sched.cancel_timer])
  end)
end)

describe("attack7: the RS256 verification worker under misuse", function()
  local key = core.rsa_key()
  local function wait(job)
    for _ = 1, 200000 do
      local v = job:result()
      if v ~= nil then return v end
      core.sleep(0.0001)
    end
    error("the verification thread never ended")
  end

  it("wrong types raise naming the argument; odd inputs end false (held)", function()
    local j = key:jwk()
    local sig = key:sign_rs256("data")
    local w = assert(core.rs256_worker())
    for i, args in ipairs { { nil, j.e, "d", sig }, { j.n, {}, "d", sig }, { j.n, j.e, true, sig }, { j.n, j.e, "d", nil } } do
      local ok, msg = pcall(core.rs256_verify_start, args[1], args[2], args[3], args[4])
      assert.is_false(ok)
      assert.matches("bad argument #" .. i .. " to", msg)
      ok, msg = pcall(w.verify, w, args[1], args[2], args[3], args[4])
      assert.is_false(ok)
      assert.matches("bad argument #" .. (i + 1) .. " to", msg)
    end
    assert.is_false(pcall(w.verify, nil, j.n, j.e, "d", sig))
    assert.is_false(pcall(w.verify, {}, j.n, j.e, "d", sig))
    assert.is_false(pcall(w.verify, key, j.n, j.e, "d", sig))
    -- numbers are strings to luaL_checklstring: NaN, inf end false like any key that is no key
    local odd = {
      { 0 / 0, j.e, "data", sig }, { j.n, 1 / 0, "data", sig }, { "", "", "data", sig }, { j.n, "", "data", sig },
      { "", j.e, "data", sig }, { j.n, j.e, "data", string.rep("\255", 16384) }, { j.n, j.e, "data", "" },
      { string.rep("A", 65536), j.e, "data", sig }, { j.n, string.rep("_", 4096), "data", sig },
      { j.n, j.e, string.rep("d", 4194304), sig }, { j.n .. "=", j.e, "data", sig }, { "A\0B", j.e, "data", sig },
    }
    for i, a in ipairs(odd) do
      assert.is_false(wait(assert(core.rs256_verify_start(a[1], a[2], a[3], a[4]))), "case " .. i)
      assert.is_false(wait(assert(w:verify(a[1], a[2], a[3], a[4]))), "worker case " .. i)
      assert.is_false(core.rs256_verify(a[1], a[2], a[3], a[4]), "blocking case " .. i)
    end
    assert.is_true(wait(assert(w:verify(j.n, j.e, "data", sig))))
  end)

  it("many workers, each dropped with jobs queued; the jobs read after their worker was collected (held)", function()
    local j = key:jwk()
    local sig = key:sign_rs256("data")
    local jobs = {}
    for i = 1, 60 do
      local w = assert(core.rs256_worker())
      for k = 1, 3 do jobs[#jobs + 1] = { assert(w:verify(j.n, j.e, k == 2 and "datA" or "data", sig)), k ~= 2 } end
      if i % 10 == 0 then collectgarbage() end
    end
    collectgarbage()
    collectgarbage()
    for i, job in ipairs(jobs) do assert.equal(job[2], wait(job[1]), "job " .. i) end
    -- a worker closed by hand (its __gc called early): misuse, and its collection later is harmless
    local w = assert(core.rs256_worker())
    getmetatable(w).__gc(w)
    local ok, msg = pcall(w.verify, w, j.n, j.e, "data", sig)
    assert.is_false(ok)
    assert.matches("closed", msg)
    w = nil   -- luacheck: ignore 311
    collectgarbage()
  end)
end)
