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
