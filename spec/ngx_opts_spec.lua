-- The ngx transport's numeric options given to auth0.new outside nginx (a configuration shared
-- by a CLI and a gateway): NaN and infinity are misuse in every host, not only inside nginx.
local auth0 = require "auth0"

describe("auth0.new's ngx transport numbers without transport = \"ngx\"", function()
  local function new(k, v) return pcall(auth0.new, { domain = "x.auth0.com", client_id = "c", [k] = v }) end
  for _, bad in ipairs { 0 / 0, math.huge, -math.huge, -1, 1e300, "5" } do
    it("refuses pool_size = " .. tostring(bad), function()
      local ok, err = new("pool_size", bad)
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'new' (pool_size must be an integer in 1..100000)", err)
    end)
    it("refuses keepalive_timeout = " .. tostring(bad), function()
      local ok, err = new("keepalive_timeout", bad)
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'new' (keepalive_timeout must be a number of seconds in (0, 86400])", err)
    end)
  end
  it("accepts good ones", function()
    assert.is_true((new("pool_size", 10)))
    assert.is_true((new("keepalive_timeout", 30)))
  end)
end)
