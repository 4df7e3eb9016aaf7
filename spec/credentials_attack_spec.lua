-- auth0.credentials under attack (the hostile review of issue 12): errors raised from the
-- user's own callbacks while a refresh is in flight, hostile refresh answers, stores whose
-- directory belongs to someone else, and store contents of the wrong types.
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"

local util = require "spec.support.util"

local server
local vclock = util.clock(emu)
local now, advance = vclock.now, vclock.advance
local function client(opts)
  local o = { on_callback_error = function() end }
  for k, v in pairs(opts or {}) do o[k] = v end
  return util.client(server, o)
end
local function refreshes() return emu.control("GET", "/refresh_tokens").refreshes end
local function login(c, email) return util.login(emu, c, email) end
local sh, poll_until = util.sh, util.poll_until
local function tmpdir() return util.tmpdir("a0-creds-attack") end

describe("auth0.credentials attacked", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    vclock.reset()
  end)
  after_each(util.rm_tmp)

  it("an error raised by on_change during a callback refresh neither wedges the manager nor keeps the lock", function()
    local path = tmpdir() .. "/creds"
    local boom = true
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path, lock_wait = 1 }, now = now,
      on_change = function(ev) if ev == "renewed" and boom then error("on_change failed") end end })
    assert(cm:save(login(c, "wedge@example.com")))
    advance(86400 + 10)
    local got, gerr, called
    assert.is_true(cm:credentials(function(t, err) got, gerr, called = t, err, true end))
    -- the first caller hears of the refresh (with an error or the tokens), never silence
    assert.is_true(poll_until(c, function() return called end, 15), "the first callback never ran")
    assert.is_true(got ~= nil or gerr ~= nil)
    boom = false
    -- a second manager on the same file must get the lock (the first one's is released)
    local cm2 = credentials.new(client(), { store = credentials.file_store { path = path, lock_wait = 1 }, now = now })
    advance(86400 + 10)
    local t2, err2 = cm2:credentials()
    assert.is_nil(err2)
    assert.is_string(t2.access_token)
    -- and the first manager still works, in both forms
    local t3, called3
    assert.is_true(cm:credentials(function(t) t3, called3 = t, true end))
    assert.is_true(poll_until(c, function() return called3 end, 15), "the manager is wedged")
    assert.is_string(t3.access_token)
    assert.is_string(cm:credentials().access_token)
  end)

  it("a custom store raising in load or save during a callback refresh does not wedge the manager", function()
    local inner = credentials.memory_store()
    local fail_load = false
    local store = { kind = "flaky",
      load = function() if fail_load then error("load exploded") end return inner.load() end,
      save = inner.save, clear = inner.clear,
      lock = function() return "held" end, unlock = function() end }
    local c = client()
    local cm = credentials.new(c, { store = store, now = now })
    assert(cm:save(login(c, "flaky@example.com")))
    advance(86400 + 10)
    fail_load = true
    assert.has_error(function() cm:credentials(function() end) end, "load exploded")
    assert.equal(0, c:pending())   -- nothing left counted as in flight
    fail_load = false
    local got, called
    assert.is_true(cm:credentials(function(t) got, called = t, true end))
    assert.is_true(poll_until(c, function() return called end, 15), "the manager is wedged")
    assert.is_string(got.access_token)
    assert.equal(1, refreshes())
  end)

  it("refuses a store directory owned by another user (who could swap or roll back the file)", function()
    local dir = tmpdir() .. "/theirs"
    os.execute("mkdir -m 0755 " .. dir)
    local path = dir .. "/credentials"
    local c = client()
    local tokens = login(c, "theirs@example.com")
    -- our own file, written while the directory was still ours
    assert(credentials.new(c, { store = credentials.file_store { path = path }, now = now }):save(tokens))
    os.execute("chown nobody " .. dir)
    local store = credentials.file_store { path = path, lock_wait = 0 }
    local cm = credentials.new(c, { store = store, now = now })
    local t, err = cm:credentials()
    assert.is_nil(t and "tokens")   -- never print them on failure
    assert.equal("insecure_store", err.code)
    assert.matches("owned by another user", err.message)
    local ok, werr = store.save({ v = 1 })
    assert.is_nil(ok)
    assert.equal("insecure_store", werr.code)
    local l, lerr = store.lock(0)
    assert.is_nil(l)
    assert.equal("insecure_store", lerr.code)
    -- a directory of root's (not writable by others) stays fine: that is where /tmp-like parents live
    os.execute("chown root " .. dir)
    assert.is_string(credentials.new(c, { store = store, now = now }):credentials().access_token)
    c:close()
  end)

  it("bounds a refresh answer's expires_in: huge is capped, so the token is renewed again", function()
    emu.control("POST", "/apis", { identifier = "https://api.example.com", token_lifetime = 1e300 })
    local c = client()
    local store = credentials.file_store { path = tmpdir() .. "/creds" }
    local cm = credentials.new(c, { store = store, now = now })
    assert(cm:save(login(c, "forever@example.com")))
    advance(40 * 86400)
    local t, err = cm:credentials()
    assert.is_nil(err)
    assert.is_true(t.expires_in <= 30 * 86400)
    assert.equal(1, refreshes())
    c:close()
  end)

  it("never raises nor stores a non-finite expiry when a client hands back NaN or inf", function()
    -- a client object of the app's own (any table with refresh works): the values a JSON
    -- decoder that accepts 1e999 or NaN would produce
    for _, bad in ipairs({ 0 / 0, math.huge, -math.huge, -5, "soon" }) do
      local n = 0
      local stub = { refresh = function(_, p)
        n = n + 1
        assert.equal("rt-" .. n, p.refresh_token)
        return { access_token = "at-" .. n, refresh_token = "rt-" .. (n + 1), expires_in = bad }
      end }
      local path = tmpdir() .. "/creds"
      local cm = credentials.new(stub, { store = credentials.file_store { path = path }, now = os.time })
      assert(cm:save({ access_token = "at-0", refresh_token = "rt-1", expires_in = 0 }))
      local t, err = cm:credentials()
      assert.is_nil(err)
      assert.equal("at-1", t.access_token)
      assert.is_true(t.expires_at == t.expires_at and t.expires_at < math.huge)
      -- the rotated refresh token reached the file
      local again = credentials.new(stub, { store = credentials.file_store { path = path }, now = os.time })
      assert.equal("at-2", again:renew().access_token)   -- the stub checks it sends rt-2
      util.rm_tmp()
    end
  end)

  it("raises when the now option returns NaN or inf (misuse), instead of trusting every token", function()
    for _, bad in ipairs({ 0 / 0, math.huge, -math.huge, "12" }) do
      local cm = credentials.new({ refresh = function() error("no refresh expected") end },
        { now = function() return bad end })
      assert.has_error(function()
        cm:save({ access_token = "at", refresh_token = "rt", expires_in = 100 })
        cm:credentials()
      end)
    end
  end)

  it("reads a store whose fields have the wrong types as store_corrupt, never a raise", function()
    local c = client()
    local bad = {
      '{"v":1,"refresh_token":{"x":1},"access_token":"a","expires_at":1}',
      '{"v":1,"refresh_token":"r","access_token":5,"expires_at":1}',
      '{"v":1,"refresh_token":"r","access_token":"a","expires_at":"tomorrow"}',
      '{"v":1,"refresh_token":"r","access_token":"a","expires_at":1,"apis":[1,2]}',
      '{"v":1,"refresh_token":"r","access_token":"a","expires_at":1,"apis":{"x":{"access_token":{}}}}',
      '{"v":1,"refresh_token":"r","access_token":"a","expires_at":1,"user":"me"}',
    }
    for _, text in ipairs(bad) do
      local path = tmpdir() .. "/creds"
      assert(auth0.core.store_write(path, text))
      local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
      local ok, t, err = pcall(cm.credentials, cm)
      assert.is_true(ok, tostring(t))
      assert.is_nil(t)
      assert.equal("store_corrupt", err.code, text)
      ok, t, err = pcall(cm.api_credentials, cm, "https://api.example.com")
      assert.is_true(ok, tostring(t))
      assert.equal("store_corrupt", err.code, text)
      util.rm_tmp()
    end
    c:close()
  end)

  it("ngx_store refuses NaN, inf, negative lock_ttl, a bad key_id and unknown options (NaN looped for ever)", function()
    local dict = { get = function() end, set = function() return true end, delete = function() end,
                   add = function() return nil, "exists" end }
    local sleeps, clock = 0, 1000
    _G.ngx = { shared = { auth0 = dict }, now = function() return clock end,
               sleep = function(s)
                 clock, sleeps = clock + s, sleeps + 1
                 if sleeps > 1000 then error("lock wait never ends") end
               end }
    finally(function() _G.ngx = nil end)
    local key = string.rep("k", 32)
    for _, bad in ipairs({ 0 / 0, math.huge, -math.huge, -1, 0, "30" }) do
      assert.has_error(function() credentials.ngx_store { dict = "auth0", key = "u", lock_ttl = bad } end)
    end
    assert.has_error(function() credentials.ngx_store { dict = "auth0", key = "u", seal_key = key, key_id = 7 } end)
    assert.has_error(function()
      credentials.ngx_store { dict = "auth0", key = "u", seal_key = key, key_id = string.rep("i", 65) }
    end)
    assert.has_error(function() credentials.ngx_store { dict = "auth0", key = "u", lock_wait = 5 } end)
    -- a good one still waits a bounded time for a held lock
    local store = credentials.ngx_store { dict = "auth0", key = "u", lock_ttl = 0.05 }
    local l, err = store.lock()
    assert.is_nil(l)
    assert.equal("store_busy", err.code)
  end)

  it("logout revokes the refresh token the store holds now, not a rotated-out one cached earlier", function()
    local path = tmpdir() .. "/creds"
    local c = client()
    local a = credentials.new(c, { store = credentials.file_store { path = path, lock_wait = 2 }, now = now })
    assert(a:save(login(c, "logout@example.com")))
    assert.is_true(a:has_valid())   -- a now caches the first refresh token
    -- another process (a cron job) renews: rotation, the file now holds the second token
    local b = credentials.new(client(), { store = credentials.file_store { path = path }, now = now })
    assert(b:renew())
    local text = auth0.core.store_read(path)
    local current = require("cjson").decode(text).refresh_token
    assert(a:clear())
    -- the token the store held must be dead at Auth0, or the logout left a live session behind
    local t, err = c:refresh { refresh_token = current }
    assert.is_nil(t and "tokens")
    assert.equal("invalid_grant", err.code)
    assert.is_false(a:has_valid())
    c:close()
  end)

  it("logout waits for a refresh in another process (the lock) instead of racing it", function()
    local path = tmpdir() .. "/creds"
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path, lock_wait = 0.3 }, now = now })
    assert(cm:save(login(c, "race@example.com")))
    local held = assert(auth0.core.store_lock(path .. ".lock", 0))   -- another process refreshing
    local ok, err = cm:clear()
    assert.is_nil(ok)
    assert.equal("store_busy", err.code)
    assert.is_true(cm:has_valid())   -- nothing was revoked nor cleared
    held:unlock()
    assert.is_true(cm:clear())
    assert.is_false(cm:has_valid())
    c:close()
  end)

  it("logout during our own callback refresh waits for it, then revokes the rotated token", function()
    local path = tmpdir() .. "/creds"
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path, lock_wait = 1 }, now = now })
    assert(cm:save(login(c, "inflight@example.com")))
    local renewed, cleared
    assert.is_true(cm:renew(function(t) renewed = t end))
    assert.is_true(cm:clear(function(ok, err) cleared = { ok, err } end))
    assert.is_true(poll_until(c, function() return cleared ~= nil end, 15))
    assert.is_string(renewed.access_token)
    assert.is_true(cleared[1], tostring(cleared[2]))
    assert.is_false(cm:has_valid())
    assert.equal(0, emu.control("GET", "/refresh_tokens").active)   -- the rotated token was revoked
    c:close()
  end)

  it("works under a restrictive umask (0377): the modes are set, not left to the umask", function()
    local dir = tmpdir()
    os.execute("chown nobody " .. dir)
    local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
    local script = dir .. "/umask.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local core = require "auth0.core"
      local p = arg[1] .. "/state/app/creds"
      local ok, code, msg = core.store_write(p, "{}")
      if not ok then print("write", code, msg) return end
      if not core.store_read(p) then print("read", select(2, core.store_read(p))) return end
      local l, lcode, lmsg = core.store_lock(p .. ".lock", 0)
      if not l then print("lock", lcode, lmsg) return end
      l:unlock()
      local again = core.store_lock(p .. ".lock", 0)   -- a lock file we created opens again
      if not again then print("relock", select(2, core.store_lock(p .. ".lock", 0))) return end
      print("ok")
    ]])
    f:close()
    local out = sh(("runuser -u nobody -- sh -c %q"):format(("umask 0377; LUA_PATH='%s' LUA_CPATH='%s' %s %s %s")
      :format(package.path, package.cpath, lua, script, dir)))
    assert.equal("ok\n", out)
    assert.equal("700", sh("stat -c %a " .. dir .. "/state/app"):match("%d+"))
    assert.equal("600", sh("stat -c %a " .. dir .. "/state/app/creds"):match("%d+"))
    assert.equal("600", sh("stat -c %a " .. dir .. "/state/app/creds.lock"):match("%d+"))
  end)

  it("ngx_store: a worker whose lock expired does not release the lock another worker took since", function()
    local clock, data = 1000, {}
    local dict = {
      get = function(_, k) local e = data[k]; if e and (not e.exp or e.exp > clock) then return e.v end end,
      add = function(self, k, v, ttl)
        if self:get(k) ~= nil then return nil, "exists" end
        data[k] = { v = v, exp = ttl and ttl > 0 and clock + ttl or nil }
        return true
      end,
      set = function(_, k, v) data[k] = { v = v }; return true end,
      delete = function(_, k) data[k] = nil end,
    }
    _G.ngx = { shared = { auth0 = dict }, now = function() return clock end,
               sleep = function(s) clock = clock + s end }
    finally(function() _G.ngx = nil end)
    local a = credentials.ngx_store { dict = "auth0", key = "u", lock_ttl = 1 }
    local b = credentials.ngx_store { dict = "auth0", key = "u", lock_ttl = 1 }
    local la = assert(a.lock())
    clock = clock + 2                 -- worker A's refresh outlived its lock
    local lb = assert(b.lock())       -- worker B takes it
    a.unlock(la)                      -- A finishes late: B's lock must stay
    local c = credentials.ngx_store { dict = "auth0", key = "u", lock_ttl = 1 }
    local lc, err = c.lock(0.1)
    assert.is_nil(lc)
    assert.equal("store_busy", err.code)
    b.unlock(lb)
    assert.truthy(c.lock(0.1))
  end)
end)
