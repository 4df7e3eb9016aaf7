-- The auth0 command without HOME, XDG_STATE_HOME and XDG_CONFIG_HOME (a service, a bare cron
-- environment): it has no folder of the user's for the refresh token, and refuses with an
-- error naming the variables instead of writing under another user's home ("/root"); an
-- explicit store path (--store-path, AUTH0_STORE_PATH) is used as given.
local settings = require "auth0.cli.settings"
local util = require "spec.support.util"
local cli = require "spec.support.cli"

describe("the auth0 command without a home", function()
  local function env(t) return function(k) return t[k] end end

  it("has no default folders without HOME and the XDG variables (a relative HOME counts as none)", function()
    for _, e in ipairs { env {}, env { HOME = "" }, env { HOME = "home" } } do
      assert.is_nil(settings.state_dir(e, "default"))
      assert.is_nil(settings.config_dir(e))
    end
    assert.equal("/s/lua-auth0/default", settings.state_dir(env { XDG_STATE_HOME = "/s" }, "default"))
    assert.equal("/c/lua-auth0", settings.config_dir(env { XDG_CONFIG_HOME = "/c" }))
  end)

  it("refuses to resolve a store path, naming the variables", function()
    local s, err = settings.resolve({}, env { AUTH0_DOMAIN = "t.example.com", AUTH0_CLIENT_ID = "x" })
    assert.is_nil(s)
    assert.matches("HOME", err, 1, true)
    assert.matches("XDG_STATE_HOME", err, 1, true)
    assert.matches("--store-path", err, 1, true)
    assert.is_nil(err:find("/root", 1, true))
  end)

  it("uses an explicit store path (flag first, then AUTH0_STORE_PATH)", function()
    local e = env { AUTH0_STORE_PATH = "/srv/app/creds", AUTH0_CLIENT_ID = "x" }
    assert.equal("/srv/app/creds", assert(settings.resolve({}, e)).store_path)
    assert.equal("/srv/other", assert(settings.resolve({ store_path = "/srv/other" }, e)).store_path)
    -- with a home, the flag still wins over the default
    local h = env { HOME = "/home/u" }
    assert.equal("/home/u/.local/state/lua-auth0/default/credentials", assert(settings.resolve({}, h)).store_path)
    assert.equal("/srv/x", assert(settings.resolve({ store_path = "/srv/x" }, h)).store_path)
  end)

  it("a named profile without a config folder is refused, naming the variables", function()
    local s, err = settings.resolve({ profile = "work" }, env { AUTH0_STORE_PATH = "/srv/c" })
    assert.is_nil(s)
    assert.matches("XDG_CONFIG_HOME", err, 1, true)
  end)

  if util.first_pass() then
    it("auth0 token in such an environment exits 2 with the variables named; with --store-path it looks there", function()
      local work = util.tmpdir("a0-cli-home")
      local e = { HOME = false, XDG_CONFIG_HOME = false, XDG_STATE_HOME = false,
        AUTH0_DOMAIN = "t.example.com", AUTH0_CLIENT_ID = "x" }
      local rc, out, err = cli.run(work, "token", e)
      assert.equal(2, rc, err)
      assert.equal("", out)
      assert.matches("HOME", err, 1, true)
      assert.matches("XDG_STATE_HOME", err, 1, true)
      rc, out, err = cli.run(work, "token --store-path " .. util.q(work .. "/creds"), e)
      assert.equal(3, rc, err)   -- not logged in: it looked at that file
      assert.equal("", out)
      assert.matches("not logged in", err, 1, true)
      util.rm_tmp()
    end)
  end
end)
