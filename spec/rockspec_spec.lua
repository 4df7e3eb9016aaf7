-- The rockspec builds and installs offline, and the installed module loads.
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("rc=(%d+)%s*$") == "0", out
end

describe("rockspec", function()
  it("builds with luarocks make offline and loads from the tree", function()
    if os.getenv("A0_PASS") ~= "lua54" then
      pending("runs once, in the Lua 5.4 pass")
      return
    end
    local tree = os.tmpname()
    os.remove(tree)
    local ok, out = run("LUAROCKS_CONFIG=rockspec/luarocks-offline.lua luarocks --lua-version 5.4 --tree " .. tree ..
      " make rockspec/lua-auth0-scm-1.rockspec")
    assert(ok, out)
    assert.matches("lua%-auth0 scm%-1 is now installed", out)
    local check = [[local a = require 'auth0'; local c = a.new{domain='t.example.com', client_id='x'};
      io.write(a._VERSION, ' ', tostring(c), ' ', package.searchpath('auth0.core', package.cpath))]]
    ok, out = run(("LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;' " ..
      "lua5.4 -e %q"):format(tree, tree, tree, check))
    assert(ok, out)
    assert.equal("0.1.0 auth0.Client (https://t.example.com) " .. tree .. "/lib/lua/5.4/auth0/core.so", out:gsub("\n?rc=0%s*$", ""))
    os.execute("rm -rf '" .. tree .. "' build/rock")
  end)
end)
