-- Hostile review of ngx_store's lock (681b5aa): `holds` read the owner mark, then set it again
-- with the longer life: a lock expiring between the two (another worker taking it meanwhile, on
-- another core) was overwritten with the old holder's mark, and both workers then believed
-- they held it (both presenting the same refresh token: reuse detection logs the user out).
-- The same for `unlock` (get, then delete: the other worker's lock deleted). Here a model of
-- ngx.shared on a clock the spec drives, the other worker's `add` landing between the calls;
-- the real nginx runs in spec/ngx_store_lock_spec.lua.
local credentials = require "auth0.credentials"

-- A shared dict of lua-nginx-module's semantics (get, set, add, delete, ttl with expiry) on
-- clock.t; `between(op)` runs after each call (the other worker's moment).
local function model(clock)
  local e = {}
  local d = {}
  local function live(k)
    local x = e[k]
    if x and x.exp and x.exp <= clock.t then e[k] = nil; x = nil end
    return x
  end
  local function after(op) if d.between then d.between(op) end end
  function d.get(_, k) local x = live(k); after("get"); return x and x.v end
  function d.set(_, k, v, exp) e[k] = { v = v, exp = exp and exp > 0 and clock.t + exp or nil }; after("set"); return true end
  function d.add(_, k, v, exp)
    if live(k) then return false, "exists" end
    e[k] = { v = v, exp = exp and exp > 0 and clock.t + exp or nil }
    return true
  end
  function d.delete(_, k) e[k] = nil; after("delete"); return true end
  function d.ttl(_, k)
    local x = live(k)
    after("ttl")
    if not x then return nil, "not found" end
    return x.exp and x.exp - clock.t or 0
  end
  d.raw = function(k) local x = live(k); return x and x.v end
  return d
end

describe("attack8: ngx_store's lock against another worker", function()
  local clock, dict, store
  before_each(function()
    clock = { t = 1000 }
    dict = model(clock)
    rawset(_G, "ngx", { shared = { creds = dict }, now = function() return clock.t end,
      sleep = function(s) clock.t = clock.t + s end })
    store = credentials.ngx_store { dict = "creds", key = "u", lock_ttl = 5 }
  end)
  after_each(function() rawset(_G, "ngx", nil) end)

  -- the lock expires during the holder's first call on the dict, and the other worker takes it then
  local function stolen_during_first_call()
    local taken = false
    dict.between = function()
      if not taken then
        taken = true
        clock.t = clock.t + 0.001   -- past the expiry
        assert(dict:add("u:lock", "other-worker", 5))
      end
    end
  end

  it("holds: a lock expiring between the reads and the extension is not taken over", function()
    local mark = assert(store.lock(0, 5))
    clock.t = clock.t + 5 - 0.0005   -- half a millisecond left
    stolen_during_first_call()
    local held = store.holds(mark, 5)
    assert.is_false(held, "both workers hold the lock")
    assert.equal("other-worker", dict.raw("u:lock"))
  end)

  it("holds: extends a lock that has time left", function()
    local mark = assert(store.lock(0, 5))
    clock.t = clock.t + 3
    assert.is_true(store.holds(mark, 20))
    clock.t = clock.t + 15
    assert.equal(mark, dict.raw("u:lock"))
    assert.is_false(store.holds("someone-else", 20))
  end)

  it("unlock: a lock expiring between the read and the delete leaves the other worker's", function()
    local mark = assert(store.lock(0, 5))
    clock.t = clock.t + 5 - 0.0005
    stolen_during_first_call()
    store.unlock(mark)
    assert.equal("other-worker", dict.raw("u:lock"), "the other worker's lock was deleted")
  end)

  it("a lock_ttl under a second: holds and unlock still work on a lock with time left", function()
    store = credentials.ngx_store { dict = "creds", key = "s", lock_ttl = 0.5 }
    local mark = assert(store.lock(0))
    clock.t = clock.t + 0.1
    assert.is_true(store.holds(mark))
    store.unlock(mark)
    assert.is_nil(dict.raw("s:lock"))
  end)

  it("NaN, infinite, negative, zero or huge wait and hold are misuse (never a lock for ever)", function()
    for _, bad in ipairs { 0 / 0, math.huge, -math.huge, -1, 3601, "5" } do
      assert.has_error(function() store.lock(bad) end)
      assert.has_error(function() store.lock(0, bad) end)
      assert.has_error(function() store.holds("m", bad) end)
    end
    assert.has_error(function() store.lock(0, 0) end)   -- a hold is over (0, 3600]
    assert.is_nil(dict.raw("u:lock"))                  -- none of them took it
    local mark = assert(store.lock(0, 3600))
    assert.is_true(store.holds(mark, 3600))
    clock.t = clock.t + 3599
    assert.equal(mark, dict.raw("u:lock"))
  end)

  it("owner marks are distinct random strings of 16 characters (96 bits)", function()
    local seen = {}
    for _ = 1, 200 do
      local mark = assert(store.lock(0))
      assert.equal(16, #mark)
      assert.is_nil(seen[mark])
      seen[mark] = true
      store.unlock(mark)
    end
  end)

  it("unlock: releases a lock with time left, and only its own", function()
    local mark = assert(store.lock(0, 5))
    store.unlock("not-mine")
    assert.equal(mark, dict.raw("u:lock"))
    store.unlock(mark)
    assert.is_nil(dict.raw("u:lock"))
  end)
end)
