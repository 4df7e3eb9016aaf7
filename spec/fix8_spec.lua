-- fix8: two bugs of the credentials manager's callback forms found by attack7. A raise during
-- a renewal's ID token check (after the server rotated the refresh token) must not lose the
-- rotated token; a queued callback that raises must not stop the calls queued after it.
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local util = require "spec.support.util"

local server
local clock = util.clock(emu)

-- A clock that raises once, when armed, if called from the renewal's ID token check (verify_cb
-- reads it for the claims' times): a user's clock failing at that moment.
local function failing_clock()
  local st = { armed = false, fired = false }
  st.now = function()
    if st.armed and debug.traceback():find("verify_cb", 1, true) then
      st.armed, st.fired = false, true
      error("the game clock is not ready")
    end
    return clock.now()
  end
  return st
end

describe("fix8: a raise in a renewal's ID token check keeps the rotated refresh token", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  local function renew_with_raise(store, reopen)
    local errs = {}
    local c = util.client(server, { on_callback_error = function(m) errs[#errs + 1] = m end })
    local ck = failing_clock()
    local cm = credentials.new(c, { store = store, now = ck.now })
    local tokens = util.login(emu, c, "fix8@example.com")
    assert.is_true(cm:save(tokens))
    assert(c:jwks())   -- held: the renewal's check starts at once
    ck.armed = true
    local got
    assert.is_true(cm:renew(function(t, err) got = { t, err } end))
    assert(util.poll_until(c, function() return got ~= nil end, 10), "timed out")
    assert.is_true(ck.fired, "the clock raised in the ID token check")
    assert.is_nil(got[1])
    assert.equal("callback_error", got[2].code)   -- as before: the caller hears of the raise
    assert.equal(1, #errs)
    assert.matches("the game clock is not ready", errs[1])
    assert.equal(1, emu.control("GET", "/refresh_tokens").refreshes)
    -- the store holds the rotated refresh token, and the server takes it
    local stored = store.load()
    assert.is_string(stored.refresh_token)
    assert.not_equal(tokens.refresh_token, stored.refresh_token)
    assert.equal("fix8@example.com", cm:user().email)
    local again = credentials.new(c, { store = reopen(), now = clock.now })
    local t, err = again:renew()
    assert.is_nil(err)
    assert.is_string(t.access_token)
    assert.equal(2, emu.control("GET", "/refresh_tokens").refreshes)
    c:close()
  end

  it("a file store (the check in steps)", function()
    local path = util.tmpdir("fix8") .. "/credentials"
    renew_with_raise(credentials.file_store { path = path }, function() return credentials.file_store { path = path } end)
  end)

  it("a memory store (the check at once)", function()
    local store = credentials.memory_store()
    renew_with_raise(store, function() return store end)
  end)
end)

-- A manager on a file store holding a login of `email`, `slow_path` answering after 2 s, its
-- client's callback errors in `errs`; note(name, raises) makes a callback that records
-- { name, err.code } in `got` (and raises after, when asked).
local function queued_setup(email, slow_path)
  local errs, got = {}, {}
  local c = util.client(server, { on_callback_error = function(m) errs[#errs + 1] = m end })
  local path = util.tmpdir("fix8") .. "/credentials"
  local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
  assert.is_true(cm:save(util.login(emu, c, email)))
  assert(emu.control("POST", "/faults", { rules = { { kind = "delay", ms = 2000, path = slow_path } } }))
  local function note(name, raises)
    return function(_, err)
      got[#got + 1] = { name, err and err.code }
      if raises then error(name .. " raised") end
    end
  end
  return c, cm, errs, got, note
end

describe("fix8: queued callbacks each heard once when one raises", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("calls queued behind a refresh cancelled by close(): the one that raises does not stop the others", function()
    local c, cm, errs, got, note = queued_setup("queue@example.com", "/oauth/token")
    assert.is_true(cm:renew(note("renew")))
    assert.is_true(cm:api_credentials("https://api-one.example.com", note("api1", true)))   -- queued: another key
    assert.is_true(cm:api_credentials("https://api-two.example.com", note("api2")))
    assert.is_true(cm:clear(note("clear")))
    assert.is_true(cm:save({ access_token = "at", expires_in = 60 }, note("save")))
    assert(util.poll_until(c, function() return emu.control("GET", "/faults").requests["/oauth/token"] end, 5),
      "the refresh was not sent")
    c:close()
    assert.same({ { "renew", "cancelled" }, { "api1", "cancelled" }, { "api2", "cancelled" },
      { "clear", "cancelled" }, { "save", "cancelled" } }, got)
    assert.equal(1, #errs)
    assert.matches("api1 raised", errs[1])
    assert.equal(0, c:pending())
  end)

  it("calls queued behind a clear cancelled by close(): the clear's own callback and each queued one once", function()
    local c, cm, errs, got, note = queued_setup("queue2@example.com", "/oauth/revoke")
    assert.is_true(cm:clear(note("clear")))
    assert.is_true(cm:renew(note("renew", true)))   -- queued behind the clear
    assert.is_true(cm:clear(note("clear2")))
    assert.is_true(cm:save({ access_token = "at", expires_in = 60 }, note("save")))
    assert(util.poll_until(c, function() return emu.control("GET", "/faults").requests["/oauth/revoke"] end, 5),
      "the revocation was not sent")
    c:close()
    assert.same({ { "renew", "cancelled" }, { "clear2", "cancelled" }, { "save", "cancelled" },
      { "clear", "cancelled" } }, got)
    assert.equal(1, #errs)
    assert.matches("renew raised", errs[1])
    assert.equal(0, c:pending())
  end)
end)
