-- The XDG base directory spec: a relative XDG_CONFIG_HOME or XDG_STATE_HOME is invalid and
-- ignored. Taken as is, the refresh token would be stored relative to whatever directory the
-- command happens to run in (cron: the home directory; a service: /).
local settings = require "auth0.cli.settings"

describe("the auth0 command's folders", function()
  local function env(t) return function(k) return t[k] end end

  it("ignores a relative XDG_STATE_HOME and XDG_CONFIG_HOME", function()
    local e = env { HOME = "/home/u", XDG_STATE_HOME = "state", XDG_CONFIG_HOME = "./cfg" }
    assert.equal("/home/u/.local/state/lua-auth0/default", settings.state_dir(e, "default"))
    assert.equal("/home/u/.config/lua-auth0", settings.config_dir(e))
  end)

  it("uses absolute ones", function()
    local e = env { HOME = "/home/u", XDG_STATE_HOME = "/s", XDG_CONFIG_HOME = "/c" }
    assert.equal("/s/lua-auth0/default", settings.state_dir(e, "default"))
    assert.equal("/c/lua-auth0", settings.config_dir(e))
  end)
end)
