-- A0_STORE_FAULT (the store's test-only fault points) is compiled into the test builds only
-- (-DA0_STORE_FAULTS: make test-build and make asan-build): the library `make all` and
-- `make luajit` build ignores the variable, so an attacker controlling the environment (or a
-- user's stray variable) cannot stall or slow a store write. A test build still honours it
-- (the check below can fail).
local util = require "spec.support.util"

if not util.first_pass() then
  describe("A0_STORE_FAULT in a production build", function() pending("runs once, in the Lua 5.4 pass") end)
  return
end

-- Runs a write under A0_STORE_FAULT=stall_before_rename (60 s before the rename in a test
-- build) in a child `lua` loading the module from `build`, killed after 10 s: its output.
local function child(lua, build, path)
  local src = "local core = require 'auth0.core'\n"
    .. "io.write(tostring(core.store_faults), ' ', tostring(core.store_write(arg[1], 'written')), '\\n')\n"
  local dir = util.tmpdir("a0-faultgate")
  util.write(dir .. "/child.lua", src)
  return util.sh(("A0_STORE_FAULT=stall_before_rename LUA_PATH=%s LUA_CPATH=%s timeout 10 %s %s %s; echo rc=$?"):format(
    util.q("lua/?.lua;lua/?/init.lua"), util.q(build .. "/?.so"), lua, util.q(dir .. "/child.lua"), util.q(path)))
end

describe("A0_STORE_FAULT in a production build", function()
  after_each(util.rm_tmp)
  for _, b in ipairs { { "lua5.4", "build/lua5.4" }, { "luajit", "build/luajit" } } do
    it("is ignored by " .. b[2] .. ": the write completes at once", function()
      local path = util.tmpdir("a0-faultgate-out") .. "/creds"
      local t0 = os.time()
      local out = child(b[1], b[2], path)
      assert.matches("^false true\nrc=0", out)
      assert.is_true(os.time() - t0 < 8, out)
      assert.equal("written", util.read(path))
    end)
  end
  it("is honoured by the test build (make test-build): the write stalls until killed", function()
    local path = util.tmpdir("a0-faultgate-out") .. "/creds"
    util.fault_cpath()   -- makes the test build when older than the sources
    local f = io.open("build/test/lua5.4/auth0/core.so", "rb")
    assert.is_truthy(f, "build/test/lua5.4 is missing: run make test-build")
    f:close()
    local out = child("lua5.4", "build/test/lua5.4", path)
    assert.matches("rc=124", out)
    assert.is_nil(util.read(path))
  end)
end)
