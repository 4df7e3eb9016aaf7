-- auth0.credentials (issue 12) over real HTTPS against the emulator, with its virtual clock:
-- one refresh for any number of concurrent callers (callbacks, coroutines, processes),
-- rotation stored, reuse detection, the outcomes of a refresh, and the file store's modes,
-- encryption and refusals.
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"

local util = require "spec.support.util"

local server
local clock = util.clock(emu)   -- the client's clock follows the emulator's virtual one
local now, advance = clock.now, clock.advance
local function client(opts) return util.client(server, opts) end
local function refreshes() return emu.control("GET", "/refresh_tokens").refreshes end
local function login(c, email) return util.login(emu, c, email) end
local sh, spit = util.sh, util.write
local function slurp(path) return assert(util.read(path)) end
local function mode(path) return sh("stat -c %a " .. path):match("%d+") end
local function tmpdir() return util.tmpdir("a0-creds-spec") end
local function poll_until(c, pred) assert(util.poll_until(c, pred), "timed out") end

describe("auth0.credentials", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("returns the stored token while valid, then exactly one refresh, rotation stored", function()
    local c = client()
    local store = credentials.memory_store()
    local events = {}
    local cm = credentials.new(c, { store = store, now = now, on_change = function(ev) events[#events + 1] = ev end })
    local tokens = login(c, "a@example.com")
    local t0 = now()
    assert.is_true(cm:save(tokens))
    local saved = store.load()
    assert.is_true(saved.expires_at >= t0 + 86400 and saved.expires_at <= now() + 86400)
    assert.equal(tokens.refresh_token, saved.refresh_token)
    assert.equal("a@example.com", cm:user().email)
    local t = assert(cm:credentials())
    assert.equal(tokens.access_token, t.access_token)
    assert.is_nil(t.refresh_token)
    assert.equal(0, refreshes())
    advance(86400 - 59)   -- 59 s left: under min_ttl (60)
    local before = now()
    t = assert(cm:credentials())
    assert.not_equal(tokens.access_token, t.access_token)
    assert.equal(1, refreshes())
    assert.equal(86400, t.expires_in)
    assert.is_true(t.expires_at >= before + 86400 and t.expires_at <= now() + 86400)
    local rotated = store.load().refresh_token
    assert.is_string(rotated)
    assert.not_equal(tokens.refresh_token, rotated)
    assert.same({ "saved", "renewed" }, events)
    assert.equal(t.access_token, assert(cm:credentials()).access_token)
    assert.equal(1, refreshes())
    assert.is_true(cm:has_valid())
    assert.is_true(cm:has_valid(10 ^ 6))   -- a refresh token is stored
    c:close()
  end)

  it("makes one refresh for 100 concurrent callbacks, and for 100 coroutines", function()
    local c = client()
    local cm = credentials.new(c, { now = now })
    cm:save(login(c, "b@example.com"))
    advance(86400)
    local got, tokens = 0, {}
    for i = 1, 100 do
      assert.is_true(cm:credentials(function(t, err)
        assert.is_nil(err)
        got = got + 1
        tokens[i] = t.access_token
      end))
    end
    poll_until(c, function() return got == 100 end)
    assert.equal(1, refreshes())
    for i = 2, 100 do assert.equal(tokens[1], tokens[i]) end

    advance(86400)
    local done, cos = 0, {}
    for i = 1, 100 do
      cos[i] = coroutine.create(function()
        local t, err = auth0.await(cm, "credentials")
        assert.is_nil(err)
        tokens[i] = t.access_token
        done = done + 1
      end)
      assert(coroutine.resume(cos[i]))
    end
    poll_until(c, function()
      for _, co in ipairs(cos) do
        if coroutine.status(co) == "suspended" then assert(coroutine.resume(co)) end
      end
      return done == 100
    end)
    assert.equal(2, refreshes())
    for i = 2, 100 do assert.equal(tokens[1], tokens[i]) end
    -- a blocking call while a callback refresh is in flight joins it
    advance(86400)
    local cb_token
    cm:credentials(function(t) cb_token = t.access_token end)
    local t = assert(cm:credentials())
    assert.equal(cb_token, t.access_token)
    assert.equal(3, refreshes())
    c:close()
  end)

  it("empties the store on invalid_grant: a reused rotated token revokes the family", function()
    local c = client()
    local store = credentials.memory_store()
    local cm = credentials.new(c, { store = store, now = now })
    local tokens = login(c, "c@example.com")
    cm:save(tokens)
    assert(cm:renew())
    assert.equal(1, emu.control("GET", "/refresh_tokens").families)
    -- someone presents the rotated-out token: Auth0 revokes the whole family
    local none, rerr = c:refresh(tokens.refresh_token)
    assert.is_nil(none)
    assert.equal("invalid_grant", rerr.code)
    local state = emu.control("GET", "/refresh_tokens")
    assert.equal(1, state.reuse_detected)
    assert.equal(0, state.active)
    advance(86400)
    local t, err = cm:credentials()
    assert.is_nil(t)
    assert.equal("login_required", err.code)
    assert.equal("login_required", err.reason)
    assert.equal(403, err.status)
    assert.is_nil(store.load())
    assert.is_false(cm:has_valid())
    t, err = cm:credentials()
    assert.is_nil(t)
    assert.equal("login_required", err.code)
    assert.equal("no refresh token is stored: log in", err.message)
    c:close()
  end)

  it("keeps the store on a network failure and on a 5xx", function()
    local c = client()
    local store = credentials.memory_store()
    local tokens = login(c, "d@example.com")
    local dead = client { base_url = "https://127.0.0.1:1", retries = 0, timeout = 2 }
    local cm = credentials.new(dead, { store = store, now = now })
    -- stored with no owner recorded (as by an older version): the manager of `dead` (another base
    -- URL: another tenant) and the emulator's client below may both use it
    assert(store.save { v = 1, access_token = tokens.access_token, refresh_token = tokens.refresh_token,
      expires_at = now() + 10, apis = {} })
    local t, err = cm:credentials()
    assert.is_nil(t)
    assert.equal("couldnt_connect", err.code)
    assert.equal(tokens.refresh_token, store.load().refresh_token)
    emu.control("POST", "/faults", { rules = { { kind = "http_503", path = "/oauth/token", times = 5 } } })
    local cm2 = credentials.new(client { retries = 0 }, { store = store, now = now })
    t, err = cm2:credentials()
    assert.is_nil(t)
    assert.equal(503, err.status)
    assert.equal(tokens.refresh_token, store.load().refresh_token)
    emu.control("DELETE", "/faults")
    assert(cm2:credentials())
    c:close(); dead:close()
  end)

  it("keeps the store on mfa_required and returns its mfa_token; the MFA grant's tokens are saved", function()
    local c = client()
    local u = emu.control("POST", "/users", { connection = "email", email = "m@example.com" })
    local store = credentials.memory_store()
    local cm = credentials.new(c, { store = store, now = now })
    local tokens = login(c, "m@example.com")
    cm:save(tokens)
    emu.control("POST", "/users", { connection = "email", email = "m@example.com", mfa = { factors = { "otp" }, refresh = true } })
    local secret = emu.control("POST", "/mfa/authenticators", { user_id = u.user_id, type = "otp" }).authenticator.secret
    local t, err = cm:renew()
    assert.is_nil(t)
    assert.equal("mfa_required", err.code)
    assert.is_string(err.mfa_token)
    assert.equal(tokens.refresh_token, store.load().refresh_token)
    assert.is_nil(tostring(err):find(err.mfa_token, 1, true))
    -- an app completes it with flow.mfa (the login's MFA screens) and saves the result
    local flow = require "auth0.flow"
    local again, ferr, f = flow.run(c, { mfa_token = err.mfa_token, mfa_requirements = err.mfa_requirements },
      { ask_mfa_code = function() return auth0.totp(secret, { time = now() }) end })
    assert.is_nil(ferr)
    assert.equal("done", f.state)
    assert.is_true(cm:save(again))
    assert.equal(again.access_token, assert(cm:credentials()).access_token)
    assert.not_equal(tokens.refresh_token, store.load().refresh_token)
    c:close()
  end)

  it("gets tokens for another API from the same refresh token (multi-resource)", function()
    local c = client()
    emu.control("POST", "/apis", { identifier = "https://orders.example.com", scopes = { "read:orders", "write:orders" } })
    emu.control("POST", "/refresh_tokens", { client_id = "emu-native",
      policies = { { audience = "https://orders.example.com", scope = { "read:orders", "write:orders" } } } })
    local store = credentials.memory_store()
    local cm = credentials.new(c, { store = store, now = now })
    cm:save(login(c, "e@example.com"))
    local t = assert(cm:api_credentials("https://orders.example.com", { scope = "read:orders" }))
    assert.equal("read:orders", t.scope)
    assert.is_nil(t.id_token)
    assert.equal(1, refreshes())
    assert.equal(t.access_token, assert(cm:api_credentials("https://orders.example.com", { scope = "read:orders" })).access_token)
    assert.equal(1, refreshes())
    local w = assert(cm:api_credentials("https://orders.example.com"))
    assert.equal("read:orders write:orders", w.scope)
    assert.equal(2, refreshes())
    -- the default audience still renews with the twice-rotated token
    assert(cm:renew())
    assert.equal(3, refreshes())
    local none, err = cm:api_credentials("https://other.example.com")
    assert.is_nil(none)
    assert.equal("login_required", err.code)   -- not in the policy: refused, store emptied
    c:close()
  end)

  it("never shows a token in tostring or errors", function()
    local c = client()
    local cm = credentials.new(c, { now = now })
    local tokens = login(c, "s@example.com")
    cm:save(tokens)
    local s = tostring(cm)
    assert.equal("auth0.Credentials (memory store, refresh token stored)", s)
    c:revoke(tokens.refresh_token)
    local _, err = cm:renew()
    for _, secret in ipairs({ tokens.access_token, tokens.refresh_token, tokens.id_token }) do
      assert.is_nil(tostring(err):find(secret, 1, true))
      assert.is_nil(tostring(cm):find(secret, 1, true))
      assert.is_nil(err.message:find(secret, 1, true))
    end
    c:close()
  end)

  it("revokes at Auth0 and empties the store on clear", function()
    local c = client()
    local store = credentials.memory_store()
    local cm = credentials.new(c, { store = store, now = now })
    local tokens = login(c, "x@example.com")
    cm:save(tokens)
    assert.is_true(cm:clear())
    assert.is_nil(store.load())
    local _, err = c:refresh(tokens.refresh_token)
    assert.equal("invalid_grant", err.code)
    cm:save(login(c, "x@example.com"))
    local ok
    assert.is_true(cm:clear({ revoke = true }, function(r) ok = r end))
    poll_until(c, function() return ok ~= nil end)
    assert.is_true(ok)
    assert.is_nil(store.load())
    c:close()
  end)

  it("raises on misuse, naming the argument", function()
    local c = client()
    local cases = {
      { function() credentials.new(nil) end, "client must be an auth0.Client" },
      { function() credentials.new(c, { colour = 1 }) end, "unknown option colour" },
      { function() credentials.new(c, { min_ttl = 0 / 0 }) end, "min_ttl must be seconds >= 0" },
      { function() credentials.new(c, { min_ttl = math.huge }) end, "min_ttl must be seconds >= 0" },
      { function() credentials.new(c, { store = {} }) end, "store must have load, save and clear functions" },
      { function() credentials.new(c, { on_change = 1 }) end, "on_change must be a function" },
      { function() credentials.file_store { path = "/tmp/x", key = "short" } end, "key must be a string of 32 bytes" },
      { function() credentials.file_store { path = "/tmp/x", colour = 1 } end, "unknown option colour" },
      { function() credentials.file_store { path = "/tmp/x", old_keys = {} } end, "old_keys needs key" },
      { function() credentials.file_store { path = "/tmp/x", lock_wait = 0 / 0 } end, "lock_wait must be seconds in 0..3600" },
      { function() credentials.new(c):credentials({ min_ttl = -1 }) end, "min_ttl must be seconds >= 0" },
      { function() credentials.new(c):credentials({ scope = "x" }) end, "unknown option scope" },
      { function() credentials.new(c):credentials({}, 1) end, "callback must be a function" },
      { function() credentials.new(c):api_credentials(nil) end, "audience must be a non-empty string" },
      { function() credentials.new(c):api_credentials("https://a", { scope = 1 }) end, "scope must be a string" },
      { function() credentials.new(c):save({}) end, "tokens must have an access_token" },
      { function() credentials.new(c):clear({ revoke = true, x = 1 }) end, "unknown option x" },
      { function() auth0.core.seal("short", "1", "x") end, "key must be 32 bytes" },
      { function() auth0.core.seal(("k"):rep(32), ("i"):rep(65), "x") end, "key_id must be at most 64 bytes" },
      { function() auth0.core.open({ ["1"] = "short" }, auth0.core.seal(("k"):rep(32), "1", "x")) end, "key must be 32 bytes" },
    }
    for _, case in ipairs(cases) do
      local ok, msg = pcall(case[1])
      assert.is_false(ok)
      assert.is_truthy(tostring(msg):find(case[2], 1, true), tostring(msg) .. " <> " .. case[2])
    end
    c:close()
  end)

  it("saves and renews with callbacks and refuses an ID token that does not verify", function()
    local c = client()
    local store = credentials.memory_store()
    local cm = credentials.new(c, { store = store, now = now })
    local tokens = login(c, "cb@example.com")
    local saved
    assert.is_true(cm:save(tokens, function(ok, err) saved = { ok, err } end))
    poll_until(c, function() return saved ~= nil end)
    assert.same({ true, nil }, saved)
    advance(10)   -- a token issued in the same second with the same claims is the same JWT
    local renewed
    assert.is_true(cm:renew(function(t, err) renewed = { t, err } end))
    poll_until(c, function() return renewed ~= nil end)
    assert.is_nil(renewed[2])
    assert.not_equal(tokens.access_token, renewed[1].access_token)
    assert.equal(renewed[1].access_token, store.load().access_token)
    assert.equal("cb@example.com", cm:user().email)
    -- a tampered ID token: nothing is stored
    local before = store.load().access_token
    local bad = { access_token = "x", refresh_token = "y", expires_in = 60,
                  id_token = tokens.id_token:gsub("%.([^.]+)$", ".AAAA") }
    local ok, err = cm:save(bad)
    assert.is_nil(ok)
    assert.equal("invalid_id_token", err.code)
    assert.equal(before, store.load().access_token)
    c:close()
  end)

  it("never logs a token on any path", function()
    local lines = {}
    local c = client { on_log = function(level, msg, fields)
      local parts = { level, msg }
      for k, v in pairs(fields or {}) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
      lines[#lines + 1] = table.concat(parts, " ")
    end }
    emu.control("POST", "/apis", { identifier = "https://orders.example.com", scopes = { "read:orders" } })
    emu.control("POST", "/refresh_tokens", { client_id = "emu-native",
      policies = { { audience = "https://orders.example.com", scope = { "read:orders" } } } })
    local cm = credentials.new(c, { now = now })
    local secrets = {}
    local function keep(t) for _, k in ipairs({ "access_token", "refresh_token", "id_token" }) do
      if t and t[k] then secrets[#secrets + 1] = t[k] end end end
    local tokens = login(c, "log@example.com")
    keep(tokens)
    cm:save(tokens)
    keep(assert(cm:renew()))
    keep(assert(cm:api_credentials("https://orders.example.com")))
    advance(86400)
    local got
    cm:credentials(function(t) got = t end)
    poll_until(c, function() return got ~= nil end)
    keep(got)
    assert(cm:clear())
    local _, err = cm:credentials()
    assert.equal("login_required", err.code)
    assert.is_true(#lines > 0)
    for _, line in ipairs(lines) do
      for _, s in ipairs(secrets) do assert.is_nil(line:find(s, 1, true), line) end
    end
    c:close()
  end)

  it("expires refresh tokens after the absolute and idle lifetimes", function()
    local c = client()
    emu.control("POST", "/refresh_tokens", { idle_lifetime = 1000, absolute_lifetime = 5000 })
    emu.control("POST", "/clock", { freeze = true })   -- exact lifetimes: no wall-clock second may slip in
    local cm = credentials.new(c, { now = now })
    cm:save(login(c, "l@example.com"))
    advance(999)
    assert(cm:renew())
    advance(999)
    assert(cm:renew())
    advance(1000)
    local _, err = cm:renew()
    assert.equal("login_required", err.code)
    cm:save(login(c, "l@example.com"))
    for _ = 1, 5 do advance(900); assert(cm:renew()) end
    advance(600)
    _, err = cm:renew()
    assert.equal("login_required", err.code)
    emu.control("POST", "/refresh_tokens", { idle_lifetime = 0, absolute_lifetime = 0 })
    c:close()
  end)
end)

describe("auth0.credentials file store", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("creates the directory 0700 and the file 0600 and reads them back in a new manager", function()
    local dir = tmpdir()
    local path = dir .. "/app/state/credentials"
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    local tokens = login(c, "f@example.com")
    assert.is_true(cm:save(tokens))
    assert.equal("700", mode(dir .. "/app"))
    assert.equal("700", mode(dir .. "/app/state"))
    assert.equal("600", mode(path))
    assert.equal("", sh("ls -a " .. dir .. "/app/state | grep tmp"))
    local cm2 = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    assert.equal(tokens.access_token, assert(cm2:credentials()).access_token)
    assert.equal("f@example.com", cm2:user().email)
    c:close()
  end)

  it("refuses group/other-readable and foreign-owned files, and reads corrupt ones as store_corrupt", function()
    local dir = tmpdir()
    local path = dir .. "/credentials"
    local c = client()
    local store = credentials.file_store { path = path }
    assert(credentials.new(c, { store = store, now = now }):save(login(c, "g@example.com")))
    local good = slurp(path)
    for _, m in ipairs({ "640", "604", "660", "606" }) do
      os.execute("chmod " .. m .. " " .. path)
      local t, err = credentials.new(c, { store = store }):credentials()
      assert.is_nil(t)
      assert.equal("insecure_store", err.code)
    end
    os.execute("chmod 600 " .. path)
    os.execute("chown nobody " .. path)
    local _, err = credentials.new(c, { store = store }):credentials()
    assert.equal("insecure_store", err.code)
    assert.matches("owned by another user", err.message)
    os.execute("chown root " .. path)
    spit(path, good:sub(1, math.floor(#good / 2)))
    _, err = credentials.new(c, { store = store }):credentials()
    assert.equal("store_corrupt", err.code)
    c:close()
  end)

  it("encrypts at rest with AES-256-GCM; tampered, truncated and wrong-key files are store_corrupt", function()
    local dir = tmpdir()
    local path = dir .. "/credentials"
    local key = ("k"):rep(32)
    local c = client()
    local store = credentials.file_store { path = path, key = key, key_id = "2026-12" }
    local tokens = login(c, "h@example.com")
    assert(credentials.new(c, { store = store, now = now }):save(tokens))
    local raw = slurp(path)
    assert.equal("A0S\1\7" .. "2026-12", raw:sub(1, 12))
    assert.is_nil(raw:find(tokens.refresh_token, 1, true))
    assert.is_nil(raw:find("h@example.com", 1, true))
    assert.equal(tokens.access_token, assert(credentials.new(c, { store = store, now = now }):credentials()).access_token)
    local function code_of(s, st)
      spit(path, s)
      local t, err = credentials.new(c, { store = st or store, now = now }):credentials()
      assert.is_nil(t)
      return err.code
    end
    for _, i in ipairs({ 1, 4, 5, 9, 13, 20, math.floor(#raw / 2), #raw - 3, #raw }) do
      local b = raw:byte(i)
      assert.equal("store_corrupt", code_of(raw:sub(1, i - 1) .. string.char((b + 1) % 256) .. raw:sub(i + 1)))
    end
    for _, n in ipairs({ 0, 3, 12, 30, #raw - 1 }) do assert.equal("store_corrupt", code_of(raw:sub(1, n))) end
    assert.equal("store_corrupt", code_of(raw, credentials.file_store { path = path, key = ("x"):rep(32) }))
    assert.equal("store_corrupt", code_of(raw, credentials.file_store { path = path }))
    -- key rotation: the old key still reads, and the next save uses the new one
    spit(path, raw)
    local rotated = credentials.file_store { path = path, key = ("n"):rep(32), key_id = "2027-01",
      old_keys = { ["2026-12"] = key } }
    local cm = credentials.new(c, { store = rotated, now = now })
    assert(cm:renew())
    assert.equal("A0S\1\7" .. "2027-01", slurp(path):sub(1, 12))
    c:close()
  end)

  local function interp()
    if rawget(_G, "jit") then return "luajit" end
    return "lua5.4"
  end

  local function child_script(dir)
    local script = dir .. "/child.lua"
    spit(script, [[
      local auth0 = require "auth0"
      local credentials = require "auth0.credentials"
      local offset = tonumber(os.getenv("A0_OFFSET"))
      local c = auth0.new { base_url = os.getenv("A0_BASE"), ca_file = os.getenv("A0_CA"), client_id = "emu-native", timeout = 10 }
      local cm = credentials.new(c, { store = credentials.file_store { path = os.getenv("A0_PATH") },
                                      now = function() return os.time() + offset end })
      local t, err
      if os.getenv("A0_RENEW") then t, err = cm:renew() else t, err = cm:credentials() end
      io.write(t and ("token " .. t.access_token:sub(-16)) or ("error " .. tostring(err)), "\n")
    ]])
    return string.format("A0_OFFSET=%d A0_BASE='%s' A0_CA='%s' A0_PATH='%s' LUA_PATH='%s' LUA_CPATH='%s' %s %s",
      clock.offset(), server.base_url, server.ca_file, dir .. "/credentials", package.path, util.fault_cpath(), interp(), script)
  end

  it("makes one refresh for two processes sharing the file", function()
    local dir = tmpdir()
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = dir .. "/credentials" }, now = now })
    local tokens = login(c, "p@example.com")
    cm:save(tokens)
    advance(86400)
    local cmd = child_script(dir)
    local out = sh("(" .. cmd .. " & " .. cmd .. " & wait)")
    local a, b = out:match("^token (%S+)\ntoken (%S+)\n$")
    assert.is_string(a, out)
    assert.equal(a, b)
    assert.equal(1, refreshes())
    assert.not_equal(tokens.access_token:sub(-16), a)
    c:close()
  end)

  it("loses nothing when a process is killed between write and rename", function()
    local dir = tmpdir()
    local path = dir .. "/credentials"
    emu.control("POST", "/clients", { client_id = "emu-native", refresh_token_rotation = false })
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    cm:save(login(c, "k@example.com"))
    local before = slurp(path)
    -- exec: $! must be the Lua process itself, not a shell around it
    local pid = sh("(exec env A0_STORE_FAULT=stall_before_rename A0_RENEW=1 " .. child_script(dir)
                   .. ") >/dev/null 2>&1 & echo $!"):match("%d+")
    local deadline = os.time() + 20
    while sh("ls -a " .. dir):find("credentials.tmp-", 1, true) == nil do
      assert(os.time() < deadline, "the child never reached the fault point")
      os.execute("sleep 0.05")
    end
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    local gone = os.time() + 10
    while sh("kill -0 " .. pid .. " 2>/dev/null && echo alive"):find("alive", 1, true) do
      assert(os.time() < gone, "the child survived kill -9")
      os.execute("sleep 0.05")
    end
    assert.equal(1, refreshes())
    assert.equal(before, slurp(path))
    local cm2 = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    assert(cm2:renew())
    assert.equal(2, refreshes())
    assert.is_nil(sh("ls -a " .. dir):find("credentials.tmp-", 1, true))   -- the dead writer's temp file is swept
    c:close()
  end)
end)

describe("auth0.credentials under nginx (ngx_store)", function()
  local prefix, port, nginx_pid

  local MODULE = [[
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local cjson = require("cjson.safe").new()
local M, cm = {}
local dict = ngx.shared.auth0
local function get()
  if cm then return cm end
  local base = dict:get("base")
  local transport = require("auth0.transport.ngx").new({ base_url = base, timeout = 10, connect_timeout = 2 },
    { server_name = "localhost" })   -- cosockets check a host name, not an IP
  local c = auth0.new { base_url = base, client_id = "emu-native", transport = transport, sleep = ngx.sleep, timeout = 10 }
  cm = credentials.new(c, { store = credentials.ngx_store { dict = "auth0", key = "user:1", seal_key = ("s"):rep(32) },
                            now = function() return ngx.time() + (dict:get("offset") or 0) end })
  return cm
end
function M.setup()
  local args = ngx.req.get_uri_args()
  dict:set("base", args.base)
  dict:set("offset", tonumber(args.offset))
  ngx.say("ok")
end
function M.save()
  ngx.req.read_body()
  local ok, err = get():save(cjson.decode(ngx.req.get_body_data()))
  ngx.say(ok and "ok" or tostring(err))
end
function M.raw()
  local v = dict:get("user:1")
  ngx.say(v:sub(1, 4) == "A0S\1" and not v:find("refresh_token", 1, true) and "sealed" or "plain")
end
function M.token()
  local t, err = get():credentials()
  ngx.say(t and ("token " .. t.access_token:sub(-16)) or ("error " .. tostring(err)), " ", ngx.worker.pid())
end
return M
]]

  local CONF = [[
%s
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off; master_process on; worker_processes 4;
pid logs/nginx.pid; error_log logs/error.log notice;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  lua_package_path "%s/lua/?.lua;%s/lua/?.lua;%s/lua/?/init.lua;;";
  lua_package_cpath "%s/build/luajit/?.so;;";
  lua_ssl_trusted_certificate %s;
  lua_ssl_verify_depth 5;
  lua_shared_dict auth0 1m;
  init_by_lua_block { require "resty.core" }
  server {
    listen 127.0.0.1:%d reuseport;
    location /setup { content_by_lua_block { require("creds_test").setup() } }
    location /save { content_by_lua_block { require("creds_test").save() } }
    location /token { content_by_lua_block { require("creds_test").token() } }
    location /raw { content_by_lua_block { require("creds_test").raw() } }
  }
}
]]

  setup(function()
    server = emu.start()
    prefix = sh("mktemp -d /tmp/a0-creds-nginx.XXXXXX"):match("%S+")
    os.execute("mkdir -p " .. prefix .. "/conf " .. prefix .. "/logs " .. prefix .. "/tmp " .. prefix .. "/lua")
    spit(prefix .. "/lua/creds_test.lua", MODULE)
    local root = sh("pwd"):match("%S+")
    local s = require("socket").bind("127.0.0.1", 0)
    port = select(2, s:getsockname())
    s:close()
    spit(prefix .. "/conf/nginx.conf", CONF:format(sh("id -u"):match("^0") and "user root;" or "", prefix, root, root, root,
      server.ca_file, port))
    nginx_pid = sh("(exec env -u LD_PRELOAD nginx -p " .. prefix .. " -c conf/nginx.conf -e stderr) >/dev/null 2>&1 & echo $!"):match("%d+")
    local deadline = os.time() + 10
    while not sh("env -u LD_PRELOAD curl -s -m 5 http://127.0.0.1:" .. port .. "/setup?base=x"):find("ok", 1, true) do
      assert(os.time() < deadline, "nginx did not start: " .. sh("cat " .. prefix .. "/logs/error.log"))
      os.execute("sleep 0.05")
    end
  end)
  teardown(function()
    if nginx_pid then os.execute("kill " .. nginx_pid .. " 2>/dev/null; sleep 0.3") end
    if prefix then os.execute("rm -rf '" .. prefix .. "'") end
  end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)

  it("makes one refresh for 4 workers x 50 concurrent requests", function()
    local url = "http://127.0.0.1:" .. port
    local c = client()
    local tokens = login(c, "n@example.com")
    assert.equal("ok\n", sh("env -u LD_PRELOAD curl -s -m 20 '" .. url .. "/setup?base=" .. server.base_url .. "&offset=0'"))
    local body = require("cjson").encode(tokens)
    spit(prefix .. "/tokens.json", body)
    assert.equal("ok\n", sh("env -u LD_PRELOAD curl -s -m 20 --data-binary @" .. prefix .. "/tokens.json " .. url .. "/save"))
    assert.equal(tokens.access_token:sub(-16), sh("env -u LD_PRELOAD curl -s -m 20 " .. url .. "/token"):match("^token (%S+)"))
    advance(86400)
    assert.equal("ok\n", sh("env -u LD_PRELOAD curl -s -m 20 '" .. url .. "/setup?base=" .. server.base_url
      .. "&offset=" .. clock.offset() .. "'"))
    -- a slow refresh, so that every worker's requests arrive while it is in flight
    emu.control("POST", "/faults", { rules = { { kind = "delay", path = "/oauth/token", ms = 500 } } })
    local urls = {}
    for i = 1, 200 do urls[i] = url .. "/token" end
    local out = sh("env -u LD_PRELOAD curl -s --no-progress-meter -m 20 -Z --parallel-immediate --parallel-max 200 "
                   .. table.concat(urls, " "))
    local seen, pids, n = {}, {}, 0
    for tok, pid in out:gmatch("token (%S+) (%d+)\n") do
      n = n + 1
      seen[tok] = true
      pids[pid] = true
    end
    assert.equal(200, n, (out:gsub("token %S+ %d+\n", ""):sub(1, 800)))
    local distinct, workers = 0, 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    for _ in pairs(pids) do workers = workers + 1 end
    assert.equal(1, distinct)
    assert.is_nil(seen[tokens.access_token:sub(-16)])
    assert.is_true(workers > 1, "only one worker answered")
    assert.equal(1, refreshes())
    assert.equal("sealed\n", sh("env -u LD_PRELOAD curl -s -m 20 " .. url .. "/raw"))
    emu.control("DELETE", "/faults")
    c:close()
  end)
end)
