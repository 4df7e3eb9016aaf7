-- A login saved while the manager's own refresh is in flight (callback forms, issue 14's store
-- jobs): the refresh, started from the previous session, must not land over the new login.
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local cjson = require "cjson"
local core = require("auth0").core
local util = require "spec.support.util"

local server
local clock = util.clock(emu)

describe("auth0.credentials: a save during the manager's refresh", function()
  setup(function() server = emu.start() end)
  before_each(function() emu.reset(); clock.reset() end)
  after_each(util.rm_tmp)

  for _, blocking in ipairs({ false, true }) do
    it("the login saved last stays (" .. (blocking and "blocking" or "callback") .. " save)", function()
      local path = util.tmpdir("a0-creds-attack2") .. "/creds"
      local c = util.client(server)
      local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
      local a = util.login(emu, c, "first@example.com")
      assert(cm:save(a))
      local b = util.login(emu, c, "second@example.com")
      local renewed, saved
      assert.is_true(cm:renew(function(t, e) renewed = { t, e } end))
      if blocking then saved = { cm:save(b) }
      else assert.is_true(cm:save(b, function(ok, e) saved = { ok, e } end)) end
      assert(util.poll_until(c, function() return renewed and saved end), "timed out")
      assert.is_true(saved[1], tostring(saved[2]))
      local disk = cjson.decode(core.store_read(path))
      assert.equal(b.refresh_token, disk.refresh_token)   -- not the first session's rotated token
      assert.equal("second@example.com", cm:user().email)
      local t = assert(cm:credentials())
      assert.equal(b.access_token, t.access_token)
      c:close()
    end)
  end
  it("two managers on one file renewing at once (callback forms, two store threads) make one refresh", function()
    local path = util.tmpdir("a0-creds-attack2") .. "/creds"
    local c1, c2 = util.client(server), util.client(server)
    local cm1 = credentials.new(c1, { store = credentials.file_store { path = path }, now = clock.now })
    local cm2 = credentials.new(c2, { store = credentials.file_store { path = path }, now = clock.now })
    local a = util.login(emu, c1, "twins@example.com")
    assert(cm1:save(a))
    assert.is_true(cm2:has_valid())
    clock.advance(86400 + 10)   -- both cached access tokens expired
    local r1, r2
    assert.is_true(cm1:credentials(function(t, e) r1 = { t, e } end))
    assert.is_true(cm2:credentials(function(t, e) r2 = { t, e } end))
    assert(util.poll_until(c1, function()
      c2:poll(0)
      return r1 and r2
    end), "timed out")
    assert.is_table(r1[1], tostring(r1[2]))
    assert.is_table(r2[1], tostring(r2[2]))
    assert.equal(r1[1].access_token, r2[1].access_token)   -- the second reread the first one's tokens
    local disk = cjson.decode(core.store_read(path))
    assert.not_equal(a.refresh_token, disk.refresh_token)
    assert.equal(r1[1].access_token, disk.access_token)
    c1:close()
    c2:close()
  end)
  for _, at in ipairs({ "answer", "write" }) do
    it("client:close() after the refresh answered (" .. at .. " not yet queued) keeps the rotated refresh token", function()
      local path = util.tmpdir("a0-creds-attack2") .. "/creds"
      local c = util.client(server)
      local store = credentials.file_store { path = path }
      local cm = credentials.new(c, { store = store, now = clock.now })
      local a = util.login(emu, c, "quit-" .. at .. "@example.com")
      assert(cm:save(a))
      local answered, rotated
      local refresh = c.refresh
      c.refresh = function(cl, fields, cb)   -- sees the answer, then lets the manager have it
        return refresh(cl, fields, function(t, e)
          answered, rotated = true, t and t.refresh_token
          cb(t, e)
        end)
      end
      local got
      assert.is_true(cm:renew(function(t, e) got = { t, e } end))
      if at == "answer" then
        assert(util.poll_until(c, function() return answered end), "timed out")
      else   -- the ID token checked, its write waiting for the next poll
        local save_async = store.save_async
        local asked
        store.save_async = function(d) asked = true; return save_async(d) end
        c:jwks()   -- the key set cached: the check runs in the refresh's callback
        assert(util.poll_until(c, function() return answered end), "timed out")
        assert.is_nil(asked)
      end
      c:close()   -- the game quits
      assert.equal("cancelled", got[2].code)
      assert.is_string(rotated)
      local disk = cjson.decode(core.store_read(path))
      assert.equal(rotated, disk.refresh_token)   -- the old one was rotated out at the server
      local c2 = util.client(server)
      local cm2 = credentials.new(c2, { store = credentials.file_store { path = path }, now = clock.now })
      assert(cm2:renew())
      c2:close()
    end)
  end
  for _, what in ipairs({ "save", "clear", "api_credentials" }) do
    it("client:close() cancels a " .. what .. " queued behind the refresh in flight (it never ended)", function()
      local path = util.tmpdir("a0-creds-attack2") .. "/creds"
      local c = util.client(server)
      local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
      local a = util.login(emu, c, "queued-" .. what .. "@example.com")
      assert(cm:save(a))
      local r1, r2
      assert.is_true(cm:renew(function(t, e) r1 = { t, e } end))
      local function cb(x, e) r2 = { x, e } end
      if what == "save" then assert.is_true(cm:save(a, cb))
      elseif what == "clear" then assert.is_true(cm:clear(cb))
      else assert.is_true(cm:api_credentials("https://other.example.com", cb)) end
      c:close()
      assert.equal("cancelled", r1[2].code)
      assert.is_table(r2, "the queued call's callback never ran")
      assert.is_nil(r2[1])
      assert.equal("cancelled", r2[2].code)
      assert.equal(0, c:pending())
    end)
  end
  it("the callback forms on a closed client raise, as the blocking ones do (their callbacks never ran)", function()
    local path = util.tmpdir("a0-creds-attack2") .. "/creds"
    local c = util.client(server)
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
    assert(cm:save(util.login(emu, c, "after-close@example.com")))
    c:close()
    local function cb() error("never called") end
    assert.has_error(function() cm:renew() end, "bad argument #1 to 'refresh' (attempt to use a closed auth0.Client)")
    for name, call in pairs({
      renew = function() return cm:renew(cb) end,
      api_credentials = function() return cm:api_credentials("https://other.example.com", cb) end,
      clear = function() return cm:clear(cb) end,
      save = function() return cm:save({ access_token = "at", expires_in = 60 }, cb) end,
    }) do
      local ok, err = pcall(call)
      assert.is_false(ok, name)
      assert.matches("attempt to use a closed auth0.Client", err, 1, true)
    end
    assert.truthy(cm:credentials())   -- a cached token still valid needs no client
  end)
  for _, then_what in ipairs({ "renew", "clear" }) do
    it("a " .. then_what .. " asked while a login's save waits for the JWKS comes after that save", function()
      local path = util.tmpdir("a0-creds-attack2") .. "/creds"
      local c0 = util.client(server)
      assert(credentials.new(c0, { store = credentials.file_store { path = path } }):save(util.login(emu, c0, "old@example.com")))
      local b = util.login(emu, c0, "new@example.com")
      c0:close()
      emu.control("POST", "/faults", { rules = { { kind = "delay", path = "/.well-known/jwks.json", ms = 300 } } })
      local c = util.client(server)   -- no key set yet: the save fetches it (300 ms)
      local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
      local saved, after
      assert.is_true(cm:save(b, function(ok, e) saved = { ok, e } end))
      if then_what == "renew" then assert.is_true(cm:renew(function(t, e) after = { t, e } end))
      else assert.is_true(cm:clear({ revoke = false }, function(ok, e) after = { ok, e } end)) end
      assert(util.poll_until(c, function() return saved and after end), "timed out")
      assert.is_true(saved[1], tostring(saved[2]))
      assert.truthy(after[1], tostring(after[2]))
      local text = core.store_read(path)
      if then_what == "clear" then
        assert.is_nil(text and "a credentials file")   -- the logout stays: the login's write did not land after it
        assert.is_false(cm:has_valid())
      else
        assert.equal("new@example.com", cjson.decode(text).user.email)   -- renewed from the new login
        assert.equal("new@example.com", cm:user().email)
      end
      c:close()
    end)
  end
  it("a blocking call from a client callback while the manager's work is in flight raises (it looped for ever)", function()
    local path = util.tmpdir("a0-creds-attack2") .. "/creds"
    local c = util.client(server)
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
    local a = util.login(emu, c, "reentrant@example.com")
    local got = {}
    assert.is_true(cm:save(a, function() end))   -- a save unfinished
    c:_after(0, function() got.save = { pcall(cm.renew, cm) } end)
    assert(util.poll_until(c, function() return got.save and cm:has_valid() end), "timed out")
    assert.is_true(cm:renew(function() end))     -- a refresh in flight
    c:_after(0, function() got.flight = { pcall(cm.renew, cm) } end)
    assert(util.poll_until(c, function() return got.flight and not cm._flight end), "timed out")
    for _, k in ipairs({ "save", "flight" }) do
      assert.is_false(got[k][1], k)
      assert.matches("poll called from inside a callback): use the callback form", got[k][2], 1, true)
    end
    c:close()
  end)
end)
