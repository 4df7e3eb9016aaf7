-- A store's `lock_wait` (seconds the callback forms keep trying a busy lock) is a numeric
-- parameter like any other: NaN or infinity would make them retry a busy lock forever.
local auth0 = require "auth0"
local credentials = require "auth0.credentials"

describe("a store's lock_wait", function()
  local function store(wait)
    return { load = function() end, save = function() return true end, clear = function() return true end,
             lock = function() return nil, auth0.error.new("store_busy", "busy") end, unlock = function() end,
             lock_wait = wait }
  end
  local c = auth0.new { domain = "example.auth0.com", client_id = "x" }

  for _, bad in ipairs { 0 / 0, math.huge, -1, "5" } do
    it("is misuse when " .. tostring(bad), function()
      assert.error_matches(function() credentials.new(c, { store = store(bad) }) end, "lock_wait")
    end)
  end

  it("is accepted as finite seconds, or absent", function()
    assert.is_table(credentials.new(c, { store = store(0) }))
    assert.is_table(credentials.new(c, { store = store(2.5) }))
    assert.is_table(credentials.new(c, { store = store(nil) }))
  end)
end)

describe("ngx_store's lock(wait)", function()
  it("refuses NaN, infinity and a negative wait as file_store's does (NaN spun for ever)", function()
    local sleeps, clock = 0, 1000
    local dict = { get = function() end, set = function() return true end, delete = function() end,
                   add = function() return nil, "exists" end }
    _G.ngx = { shared = { auth0 = dict }, now = function() return clock end,
               sleep = function(s)
                 clock, sleeps = clock + s, sleeps + 1
                 if sleeps > 100000 then error("lock wait never ends") end
               end }
    finally(function() _G.ngx = nil end)
    local store = credentials.ngx_store { dict = "auth0", key = "u" }
    for _, bad in ipairs { 0 / 0, math.huge, -1, "5" } do
      assert.error_matches(function() store.lock(bad) end, "wait")
    end
    local l, err = store.lock(0.01)
    assert.is_nil(l)
    assert.equal("store_busy", err.code)
  end)
end)
