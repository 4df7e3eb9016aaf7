-- attack7: callback-form saves and clears asked in a row land in the order asked.
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local util = require "spec.support.util"

local server
local clock = util.clock(emu)

-- A client and a manager on a fresh file store holding a login of `email`, /oauth/revoke
-- answering after `revoke_ms` (a clear then stays in progress).
-- @return client, manager, path
local function logged_in(email, revoke_ms, store_opts)
  local c = util.client(server)
  local path = util.tmpdir("a7-order") .. "/credentials"
  local so = { path = path }
  for k, v in pairs(store_opts or {}) do so[k] = v end
  local cm = credentials.new(c, { store = credentials.file_store(so), now = clock.now })
  assert(cm:save(util.login(emu, c, email)))
  assert(emu.control("POST", "/faults", { rules = { { kind = "delay", ms = revoke_ms, path = "/oauth/revoke" } } }))
  return c, cm, path
end

-- The email of the user whose session a new manager reads from the file at path.
local function stored_email(c, path)
  return credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now }):user().email
end

describe("attack7: saves and clears in the order asked", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("save (slow check), clear, save: the last save stays stored", function()
    local c, cm, path, old, new = util.rotated_logins(emu, server, clock, { tag = "a7-order",
      old = "o4@example.com", new = "n4@example.com", delay_ms = 300 })
    local got = {}
    assert.is_true(cm:save(new, function(ok, err) got[#got + 1] = { "new", ok, err } end))
    assert.is_true(cm:clear({ revoke = false }, function(ok, err) got[#got + 1] = { "clear", ok, err } end))
    assert.is_true(cm:save(old, function(ok, err) got[#got + 1] = { "old", ok, err } end))
    assert(util.poll_until(c, function() return #got == 3 end, 20), "timed out")
    assert.same({ { "new", true }, { "clear", true }, { "old", true } }, got)
    assert.equal("o4@example.com", cm:user().email)
    assert.equal("o4@example.com", stored_email(c, path))
    c:close()
  end)

  it("clear (revoking), then save: the save stays stored", function()
    local c, cm, path = logged_in("c5@example.com", 300)
    local second = util.login(emu, c, "s5@example.com")
    local got = {}
    assert.is_true(cm:clear(function(ok, err) got[#got + 1] = { "clear", ok, err } end))
    assert.is_true(cm:save(second, function(ok, err) got[#got + 1] = { "save", ok, err } end))
    assert(util.poll_until(c, function() return #got == 2 end, 20), "timed out")
    assert.same({ { "clear", true }, { "save", true } }, got)
    assert.equal("s5@example.com", cm:user().email)
    assert.equal("s5@example.com", stored_email(c, path))
    c:close()
  end)

  it("clear (revoking), then a blocking save: the save waits for the clear and stays stored", function()
    local c, cm, path = logged_in("c6@example.com", 300)
    local second = util.login(emu, c, "s6@example.com")
    local cleared
    assert.is_true(cm:clear(function(ok, err) cleared = { ok, err } end))
    assert.is_true(cm:save(second))
    assert.same({ true }, cleared)
    assert.equal("s6@example.com", cm:user().email)
    assert.equal("s6@example.com", stored_email(c, path))
    c:close()
  end)

  it("client:close() during a clear with a save queued behind it: each callback once, cancelled", function()
    local c, cm, path = logged_in("c7@example.com", 500)
    local second = util.login(emu, c, "s7@example.com")
    local got = {}
    assert.is_true(cm:clear(function(ok, err) got[#got + 1] = { "clear", ok, err and err.code } end))
    assert.is_true(cm:save(second, function(ok, err) got[#got + 1] = { "save", ok, err and err.code } end))
    local t0 = require("auth0.core").now()
    while require("auth0.core").now() - t0 < 0.1 do c:poll(10) end
    c:close()
    table.sort(got, function(a, b) return a[1] < b[1] end)   -- the queued save hears first, as behind a save
    assert.same({ { "clear", nil, "cancelled" }, { "save", nil, "cancelled" } }, got)
    -- the clear did not get to remove: the first login is what is stored, never the second
    assert.equal("c7@example.com", stored_email(util.client(server), path))
  end)

  it("clear (revoking), then a blocking renew or clear: they wait for it, not for its lock", function()
    for _, second in ipairs { "renew", "clear" } do
      local c, cm = logged_in("c8" .. second .. "@example.com", 300, { lock_wait = 2 })
      local cleared
      assert.is_true(cm:clear(function(ok, err) cleared = { ok, err } end))
      local t0 = require("auth0.core").now()
      local r, err
      if second == "renew" then r, err = cm:renew() else r, err = cm:clear() end
      assert.is_true(require("auth0.core").now() - t0 < 1.5, second .. " stalled on the clear's lock")
      assert.same({ true }, cleared)
      if second == "renew" then
        assert.is_nil(r)
        assert.equal("login_required", err.code)
      else
        assert.is_true(r)
      end
      c:close()
    end
  end)

  it("clear (revoking), then renew(cb): the renewal starts from the cleared store (held by the lock before; now queued)", function()
    local c, cm, path = logged_in("c9@example.com", 300)
    local got = {}
    assert.is_true(cm:clear(function(ok, err) got[#got + 1] = { "clear", ok, err and err.code } end))
    assert.is_true(cm:renew(function(r, err) got[#got + 1] = { "renew", r ~= nil, err and err.code } end))
    assert(util.poll_until(c, function() return #got == 2 end, 20), "timed out")
    assert.same({ { "clear", true }, { "renew", false, "login_required" } }, got)
    assert.is_nil(require("auth0.core").store_read(path))
    c:close()
  end)

  it("a save whose callback raises, then a save and a blocking clear: both end, nothing stays (held)", function()
    local errs = {}
    local c = util.client(server, { on_callback_error = function(m) errs[#errs + 1] = m end })
    local path = util.tmpdir("a7-order") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
    local t1 = util.login(emu, c, "r1@example.com")
    local got = {}
    assert.is_true(cm:save(t1, function(ok) got[#got + 1] = { "first", ok }; error("first callback raised") end))
    assert.is_true(cm:save({ access_token = "at2", expires_in = 60 }, function(ok) got[#got + 1] = { "second", ok } end))
    assert.is_true(cm:clear({ revoke = false }))
    assert.same({ { "first", true }, { "second", true } }, got)
    assert.equal(1, #errs)
    assert.matches("first callback raised", errs[1])
    assert.is_nil(require("auth0.core").store_read(path))
    c:close()
  end)
end)
