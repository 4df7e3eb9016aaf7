-- Hostile review of the CLI's folders (681b5aa): `auth0 emulator` writes its profile under
-- XDG_CONFIG_HOME (or HOME) through the shell, which took the folder unquoted: a quote in it
-- broke the command, and one an attacker could choose ran their command.
local util = require "spec.support.util"
local settings = require "auth0.cli.settings"

describe("attack8: the profile written under a folder with a quote", function()
  local work
  before_each(function() work = util.tmpdir("a8-cli") end)
  after_each(function() util.rm_tmp() end)

  local function env_of(t) return function(k) return t[k] end end

  it("a quote in XDG_CONFIG_HOME: the profile is written there, private", function()
    local base = work .. "/it's here"
    local path, err = settings.write_profile(env_of { XDG_CONFIG_HOME = base }, "emulator",
      { base_url = "https://127.0.0.1:1", client_id = "x" })
    assert.equal(base .. "/lua-auth0/emulator.conf", path, err)
    assert.truthy(util.read(path):find("client_id = x", 1, true))
    assert.equal("600", util.tool("stat -c %a " .. util.q(path)):match("%d+"))
    assert.equal("700", util.tool("stat -c %a " .. util.q(base .. "/lua-auth0")):match("%d+"))
  end)

  it("a HOME made to close the quote runs no command", function()
    local home = work .. "/x'; touch " .. work .. "/pwned; echo '"
    settings.write_profile(env_of { HOME = home }, "emulator", { client_id = "x" })
    assert.is_nil(util.read(work .. "/pwned"), "the folder's text ran as a command")
    assert.truthy(util.read(home .. "/.config/lua-auth0/emulator.conf"))
  end)
end)
