-- `make install` puts the Lua 5.4 build in the 5.4 module directories and
-- `make install LUA=luajit` / `make install-luajit` the LuaJIT build in the 5.1 ones (where
-- LuaJIT, LÖVE and OpenResty look); each installed tree loads with its own interpreter.
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("rc=(%d+)%s*$") == "0", (out:gsub("\n?rc=%d+%s*$", ""))
end

-- Every file under dir, relative to it, sorted.
local function files(dir)
  local _, out = run("cd '" .. dir .. "' && find . -type f | sort")
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- Loads auth0 and auth0.qr with `lua` from the installed tree only (and the system's cjson).
local function load_from(lua, dest, v)
  local prefix = dest .. "/usr/local"
  local check = [[local a = require 'auth0'; local qr = require 'auth0.qr';
    io.write(a._VERSION, ' ', qr.encode('otpauth://totp/x?secret=JBSWY3DP').size, ' ',
      package.searchpath('auth0.core', package.cpath), ' ', package.searchpath('auth0.qr', package.path))]]
  return run(("cd / && LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;' LUA_CPATH='%s/lib/lua/%s/?.so;;' " ..
    "%s -e %q"):format(prefix, v, prefix, v, prefix, v, lua, check))
end

describe("make install", function()
  local dests = {}
  local function tmpdir()
    local d = os.tmpname()
    os.remove(d)
    dests[#dests + 1] = d
    return d
  end

  teardown(function()
    for _, d in ipairs(dests) do os.execute("rm -rf '" .. d .. "'") end
  end)

  -- the same files in both trees, under the version's own directories
  local function expect_tree(dest, v)
    local got = files(dest)
    assert.is_true(#got > 10)
    local so, cmd = 0, {}
    for _, f in ipairs(got) do
      -- the auth0 command and its bash completion come with the Lua 5.4 install only
      local is_cmd = v == "5.4" and (f == "./usr/local/bin/auth0" or f == "./usr/local/share/bash-completion/completions/auth0")
      assert.truthy(f:match("^%./usr/local/share/lua/" .. v:gsub("%.", "%%.") .. "/auth0/.+%.lua$") or
        f == "./usr/local/lib/lua/" .. v .. "/auth0/core.so" or is_cmd, f)
      if f:match("core%.so$") then so = so + 1 end
      if is_cmd then cmd[#cmd + 1] = f end
    end
    assert.equal(1, so)
    assert.equal(v == "5.4" and 2 or 0, #cmd)
    local lua_files = {}
    for _, f in ipairs(got) do lua_files[#lua_files + 1] = f:match("/auth0/.+%.lua$") end
    return lua_files
  end

  it("installs the Lua 5.4 build into lib/lua/5.4 and share/lua/5.4 by default", function()
    if os.getenv("A0_PASS") ~= "lua54" then pending("runs once, in the Lua 5.4 pass"); return end
    local dest = tmpdir()
    local ok, out = run("make -s install DESTDIR=" .. dest)
    assert(ok, out)
    expect_tree(dest, "5.4")
    ok, out = load_from("lua5.4", dest, "5.4")
    assert(ok, out)
    local p = dest .. "/usr/local"
    assert.equal("0.1.0 29 " .. p .. "/lib/lua/5.4/auth0/core.so " .. p .. "/share/lua/5.4/auth0/qr.lua", out)
    -- the installed command runs from the installed tree
    ok, out = run(("env LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;' "
      .. "%s/bin/auth0 --version"):format(p, p, p, p))
    assert(ok, out)
    assert.equal("auth0 (lua-auth0) 0.1.0", out)
  end)

  it("installs the LuaJIT build into lib/lua/5.1 and share/lua/5.1 with LUA=luajit and install-luajit", function()
    if os.getenv("A0_PASS") ~= "lua54" then pending("runs once, in the Lua 5.4 pass"); return end
    local lists = {}
    for i, cmd in ipairs { "make -s install LUA=luajit DESTDIR=", "make -s install-luajit DESTDIR=" } do
      local dest = tmpdir()
      local ok, out = run(cmd .. dest)
      assert(ok, out)
      lists[i] = expect_tree(dest, "5.1")
      ok, out = load_from("luajit", dest, "5.1")
      assert(ok, out)
      local p = dest .. "/usr/local"
      assert.equal("0.1.0 29 " .. p .. "/lib/lua/5.1/auth0/core.so " .. p .. "/share/lua/5.1/auth0/qr.lua", out)
      -- the 5.4 build would not load here: the installed one is LuaJIT's
      local cmp_ok = run("cmp -s build/luajit/auth0/core.so " .. p .. "/lib/lua/5.1/auth0/core.so")
      assert.is_true(cmp_ok)
    end
    assert.same(lists[1], lists[2])
  end)
end)
