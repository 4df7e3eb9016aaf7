-- Hostile review (attack10) of the credentials' lock waits and holds: numbers a duck-typed
-- client or a custom store hands the manager after new() must never be NaN or inf.
local credentials = require "auth0.credentials"
local stores = require "auth0.credentials.stores"
local errors = require "auth0.error"

describe("attack10: stores.lock_hold", function()
  it("is seconds in (0, 3600] whatever timeout a duck-typed client's _cfg holds", function()
    for _, t in ipairs { 0 / 0, -5, 0, 1 / 0, -1 / 0, "10", false } do
      local h = stores.lock_hold({ _cfg = { timeout = t } })
      assert.is_number(h)
      assert.is_true(h > 0 and h <= 3600, "timeout " .. tostring(t) .. " gave hold " .. tostring(h))
    end
    assert.equal(25, stores.lock_hold({ _cfg = { timeout = 10 } }))
    assert.equal(3600, stores.lock_hold({ _cfg = { timeout = 86400 } }))   -- a valid long timeout: capped, not the default
  end)
end)

describe("attack10: a store's lock_wait changed to NaN after new()", function()
  -- A duck-typed client whose _after queues timers the test runs by hand; the store's lock is
  -- always busy. A NaN deadline is never reached: the retries would go on for ever.
  local function setup(wait)
    local timers = {}
    local client = { refresh = function() error("no refresh expected") end, _sched = {}, _cfg = { timeout = 10 },
      _after = function(_, _, fn) timers[#timers + 1] = fn end }
    local store = { load = function() return { access_token = "a", refresh_token = "r", expires_at = 0 } end,
      save = function() return true end, clear = function() return true end, unlock = function() end,
      lock = function() return nil, errors.new("store_busy", "busy") end, lock_wait = 0 }
    local cm = credentials.new(client, { store = store })
    store.lock_wait = wait
    return cm, timers
  end

  it("a valid wait ends with store_busy (control)", function()
    local cm, timers = setup(0)
    local got
    cm:credentials(function(t, e) got = { t, e } end)
    for _ = 1, 100 do if got or not timers[1] then break end; table.remove(timers, 1)() end
    assert.is_table(got)
    assert.equal("store_busy", got[2].code)
  end)

  for _, w in ipairs { 0 / 0, 1 / 0 } do
    it("lock_wait = " .. tostring(w) .. " is misuse, never an endless retry", function()
      local cm, timers = setup(w)
      local got
      assert.has_error(function() cm:credentials(function(t, e) got = { t, e } end) end,
        "auth0.credentials: store.lock_wait must be seconds >= 0")
      for _ = 1, 100 do if got or not timers[1] then break end; table.remove(timers, 1)() end
      assert.equal(0, #timers)   -- no retry left pending
      -- the manager is not left with a flight: a later call with a valid wait ends
      cm._store.lock_wait = 0
      cm:credentials(function(t, e) got = { t, e } end)
      for _ = 1, 100 do if got or not timers[1] then break end; table.remove(timers, 1)() end
      assert.equal("store_busy", got[2].code)
    end)
  end
  it("clear(cb) with lock_wait = NaN is misuse too, and leaves no clear pending", function()
    local cm, timers = setup(0 / 0)
    assert.has_error(function() cm:clear({ revoke = false }, function() end) end,
      "auth0.credentials: store.lock_wait must be seconds >= 0")
    assert.is_nil(cm._clearing)   -- else every blocking call after it would wait for it for ever
    cm._store.lock_wait = 0
    local got
    cm:clear({ revoke = false }, function(ok, e) got = { ok, e } end)
    for _ = 1, 100 do if got or not timers[1] then break end; table.remove(timers, 1)() end
    assert.equal("store_busy", got[2].code)
  end)
end)
