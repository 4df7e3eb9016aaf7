-- Attacks on the callback forms' store jobs (issue 14): ordering of a store's jobs when a lock
-- try is dropped, and what client:close() leaves behind while a rotated token is being written.
-- Each runs in a child process with every store job slowed (A0_STORE_FAULT=slow_job: 300 ms).
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local cjson = require "cjson"
local core = require("auth0").core
local util = require "spec.support.util"

local server
local function tmpdir() return util.tmpdir("a0-creds-attack") end
local function stored(path)
  local text = core.store_read(path)
  return text and cjson.decode(text)
end

-- Runs `src` in a child Lua of this pass with store jobs slowed; args after the script.
local function child(dir, src, ...)
  local script = dir .. "/child.lua"
  util.write(script, "io.stdout:setvbuf('no')\n"
    .. "local function print(...) io.write(table.concat({ ... }, ' '), '\\n') end\n" .. src)
  local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = util.q(a) end
  return util.sh(("A0_STORE_FAULT=slow_job LUA_PATH=%s LUA_CPATH=%s timeout 30 %s %s %s"):format(
    util.q(package.path), util.q(util.fault_cpath()), lua, script, table.concat(args, " ")))
end

describe("auth0.credentials store jobs under attack", function()
  setup(function() server = emu.start() end)
  before_each(function() emu.reset() end)
  after_each(util.rm_tmp)

  it("a dropped lock try does not let a later blocking save be overtaken by an earlier async one", function()
    local dir = tmpdir()
    local out = child(dir, [[
      local credentials, core, cjson = require "auth0.credentials", require "auth0.core", require "cjson"
      local path = arg[1]
      local s = credentials.file_store { path = path }
      assert(s.prepare())
      local poll = s.save_async({ v = 1, refresh_token = "older" })   -- 300 ms on the thread
      local _, drop = s.lock_async()   -- a lock try queued behind it, dropped (client:close())
      drop()
      print("busy after drop", tostring(s.busy()))
      assert(s.save({ v = 1, refresh_token = "newer" }))   -- asked last: must be what stays
      local t0 = core.now()
      while not poll() and core.now() - t0 < 5 do end
      print("on disk", cjson.decode(core.store_read(path)).refresh_token)
    ]], dir .. "/creds")
    assert.matches("busy after drop true", out, 1, true)
    assert.matches("on disk newer", out, 1, true)
    assert.equal("newer", stored(dir .. "/creds").refresh_token)
  end)

  it("client:close() while a rotated refresh token is being written keeps the lock until it is on disk", function()
    local dir = tmpdir()
    local path = dir .. "/creds"
    local c = util.client(server)
    local cm = credentials.new(c, { store = credentials.file_store { path = path } })
    local tokens = util.login(emu, c, "close-rotate@example.com")
    assert(cm:save(tokens))
    c:close()
    local out = child(dir, [[
      local auth0, credentials, core, cjson = require "auth0", require "auth0.credentials", require "auth0.core",
        require "cjson"
      local path, url, ca = arg[1], arg[2], arg[3]
      local c = auth0.new { base_url = url, ca_file = ca, client_id = "emu-native" }
      local store = credentials.file_store { path = path }
      local writing
      local save_async = store.save_async
      store.save_async = function(d) writing = true; return save_async(d) end
      local cm = credentials.new(c, { store = store })
      local got
      assert(cm:renew(function(t, e) got = { t, e } end))
      local t0 = core.now()
      while not writing and core.now() - t0 < 10 do c:poll(10) end
      print("writing", tostring(writing))
      c:close()
      print("callback", tostring(got and got[2] and got[2].code))
      -- another process takes the lock now and rereads: it must find the rotated token
      local l = core.store_lock(path .. ".lock", 0)
      print("lock free after close", tostring(l ~= nil))
      if l then print("refresh token on disk then", cjson.decode(core.store_read(path)).refresh_token) end
    ]], path, server.base_url, server.ca_file)
    assert.matches("writing true", out, 1, true)
    assert.matches("callback cancelled", out, 1, true)
    assert.matches("lock free after close true", out, 1, true)
    local rt = out:match("refresh token on disk then (%S+)")
    assert.is_string(rt, out)
    assert.not_equal(tokens.refresh_token, rt)   -- the rotated-out one would be refused (or worse)
    assert.equal(rt, stored(path).refresh_token)
  end)
  it("client:close() while clear's removal runs keeps the lock until the file is gone", function()
    local dir = tmpdir()
    local path = dir .. "/creds"
    assert(core.store_write(path, cjson.encode { v = 1, access_token = "at", refresh_token = "rt", expires_at = 1 }))
    local out = child(dir, [[
      local auth0, credentials, core = require "auth0", require "auth0.credentials", require "auth0.core"
      local path, url, ca = arg[1], arg[2], arg[3]
      local c = auth0.new { base_url = url, ca_file = ca, client_id = "emu-native" }
      local store = credentials.file_store { path = path }
      local removing
      local clear_async = store.clear_async
      store.clear_async = function() removing = true; return clear_async() end
      local cm = credentials.new(c, { store = store })
      local got
      assert(cm:clear({ revoke = false }, function(ok, e) got = { ok, e } end))
      local t0 = core.now()
      while not removing and core.now() - t0 < 10 do c:poll(10) end
      print("removing", tostring(removing))
      c:close()
      print("callback", tostring(got and got[2] and got[2].code))
      local l = core.store_lock(path .. ".lock", 0)
      print("lock free after close", tostring(l ~= nil))
      if l then print("file there then", tostring(core.store_read(path) ~= nil)) end
    ]], path, server.base_url, server.ca_file)
    assert.matches("removing true", out, 1, true)
    assert.matches("callback cancelled", out, 1, true)
    assert.matches("lock free after close true", out, 1, true)
    assert.matches("file there then false", out, 1, true)
  end)

  it("data over 1 MiB is too_big in a job as in the blocking write", function()
    local dir = tmpdir()
    local big = ("x"):rep(1024 * 1024 + 1)
    assert.same({ nil, "too_big", "data is over 1 MiB" }, { core.store_write(dir .. "/creds", big) })
    assert.same({ nil, "too_big", "data is over 1 MiB" }, { core.store_write_async(dir .. "/creds", big) })
    assert.same({ nil, "too_big", "data is over 1 MiB" }, { core.store_worker():write(dir .. "/creds", big) })
  end)

  -- fork() through LuaJIT's FFI (Lua 5.4 has no fork to call)
  local it_jit = rawget(_G, "jit") and it or pending
  it_jit("a child forked while the parent's store job runs does not wait for a thread it lacks", function()
    local dir = tmpdir()
    local out = child(dir, [[
      local ffi = require "ffi"
      ffi.cdef "int fork(void); int waitpid(int pid, int *status, int options); void _exit(int);"
      local credentials, core = require "auth0.credentials", require "auth0.core"
      local s = credentials.file_store { path = arg[1] }
      assert(s.prepare())
      local poll = s.save_async({ v = 1, refresh_token = "parent" })   -- 300 ms on the parent's thread
      local job = core.store_read_async(arg[1])                         -- a thread of its own
      local pid = ffi.C.fork()
      if pid == 0 then
        print("child busy", tostring(s.busy()))
        local d, err = s.load()   -- waited for the parent's job for ever
        print("child load", tostring(d and d.refresh_token), tostring(err))
        print("child job", tostring(job:wait()), tostring(job), select(3, job:result()))
        local ok = s.save({ v = 1, refresh_token = "child" })
        local poll2 = s.save_async({ v = 1, refresh_token = "child2" })   -- a thread of the child's
        local t0 = core.now()
        while not poll2() and core.now() - t0 < 5 do end
        print("child async", tostring(ok), tostring(select(2, poll2())))
        ffi.C._exit(0)
      end
      local st = ffi.new("int[1]")
      ffi.C.waitpid(pid, st, 0)
      local t0 = core.now()
      while not poll() and core.now() - t0 < 5 do end
      print("parent", tostring(select(2, poll())), st[0])
    ]], dir .. "/creds")
    assert.matches("child busy false", out, 1, true)
    assert.matches("child load nil nil", out, 1, true)
    assert.matches("child job auth0.StoreJob (done) auth0.StoreJob (done) the store job was started before a fork", out, 1, true)
    assert.matches("child async true true", out, 1, true)
    assert.matches("parent true 0", out, 1, true)
  end)
  it_jit("a forked child ending does not release the parent's store lock", function()
    local dir = tmpdir()
    local out = child(dir, [[
      local ffi = require "ffi"
      ffi.cdef "int fork(void); int waitpid(int pid, int *status, int options);"
      local core = require "auth0.core"
      local held = assert(core.store_lock(arg[1], 0))   -- the parent's refresh lock
      local pid = ffi.C.fork()
      if pid == 0 then os.exit(0, true) end   -- a child ending normally: its Lua state closed
      ffi.C.waitpid(pid, ffi.new("int[1]"), 0)
      print("taken elsewhere", tostring(core.store_lock(arg[1], 0) ~= nil))
      print("released", tostring(held:unlock()), tostring(core.store_lock(arg[1], 0) ~= nil))
    ]], dir .. "/creds.lock")
    assert.matches("taken elsewhere false", out, 1, true)
    assert.matches("released true true", out, 1, true)
  end)
end)
