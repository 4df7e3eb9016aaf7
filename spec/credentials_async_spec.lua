-- auth0.credentials' callback forms keep the file store's disk work off the caller's thread
-- (issue 14, the frame budget): the write, the removal and a busy lock are waited for from
-- poll, never in the call; the rotation rule still holds; failures come back as nil, err.
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local cjson = require "cjson"

local util = require "spec.support.util"

local core = auth0.core
local server
local clock = util.clock(emu)
local now, advance = clock.now, clock.advance
local function client(opts) return util.client(server, opts) end
local function login(c, email) return util.login(emu, c, email) end
local function tmpdir() return util.tmpdir("a0-creds-async") end
local function poll_until(c, pred, secs) assert(util.poll_until(c, pred, secs), "timed out") end
local function stored(path)
  local text = core.store_read(path)
  return text and cjson.decode(text)
end

-- Milliseconds that fn() took (wall), and what it returned.
local function timed(fn)
  local t0 = core.now()
  local a, b = fn()
  return (core.now() - t0) * 1000, a, b
end

describe("auth0.credentials callback forms (store work off the caller's thread)", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("save returns before the file is written; the callback runs from a poll once it is on disk", function()
    -- a child process with the store's jobs slowed down (300 ms before each write): the call
    -- must return at once and the file must appear only after the job's end, seen from poll
    local dir = tmpdir()
    local script = dir .. "/child.lua"
    util.write(script, [[
      local auth0, credentials = require "auth0", require "auth0.credentials"
      local path, url, ca = arg[1], arg[2], arg[3]
      local c = auth0.new { base_url = url, ca_file = ca, client_id = "emu-native" }
      local cm = credentials.new(c, { store = credentials.file_store { path = path } })
      io.stdout:setvbuf("no")   -- every line out even if the process ends abruptly
      local function print(...) io.write(table.concat({ ... }, " "), "\n") end
      local t0, done = auth0.core.now(), nil
      local ok = cm:save({ access_token = "at-child", refresh_token = "rt-child-secret", expires_in = 3600 },
        function(r, err) done = { r, err, auth0.core.store_read(path) ~= nil } end)
      print("returned", tostring(ok), ("%.1f"):format((auth0.core.now() - t0) * 1000))
      print("on disk after the call", tostring(auth0.core.store_read(path) ~= nil), tostring(done ~= nil))
      while auth0.core.now() - t0 < 0.15 do c:poll(10) end
      print("on disk at 150 ms", tostring(auth0.core.store_read(path) ~= nil), tostring(done ~= nil))
      while not done and auth0.core.now() - t0 < 10 do c:poll(10) end
      print("callback", tostring(done and done[1]), tostring(done and done[2]), tostring(done and done[3]),
        ("%.0f"):format((auth0.core.now() - t0) * 1000))
    ]])
    local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
    local out = util.sh(("A0_STORE_FAULT=slow_job LUA_PATH=%s LUA_CPATH=%s %s %s %s %s %s"):format(
      util.q(package.path), util.q(util.fault_cpath()), lua, script, dir .. "/creds", server.base_url, server.ca_file))
    local ms = tonumber(out:match("returned true (%S+)"))
    assert.is_number(ms, out)
    assert.is_true(ms < 100, out)   -- the 300 ms job was not waited for
    assert.matches("on disk after the call false false", out, 1, true)
    assert.matches("on disk at 150 ms false false", out, 1, true)
    local total = tonumber(out:match("callback true nil true (%d+)"))
    assert.is_number(total, out)   -- the callback saw the file written
    assert.is_true(total >= 300, out)
    assert.equal("rt-child-secret", stored(dir .. "/creds").refresh_token)
  end)

  it("renew (callback): the rotated refresh token is on disk before the callback sees the new access token", function()
    local path = tmpdir() .. "/creds"
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    local tokens = login(c, "rotate@example.com")
    local saved
    assert.is_true(cm:save(tokens, function(ok, err) saved = { ok, err } end))
    assert.is_nil(saved)   -- not in the call: the write is on its thread
    poll_until(c, function() return saved end)
    assert.is_true(saved[1], tostring(saved[2]))
    assert.equal(tokens.refresh_token, stored(path).refresh_token)
    local got, on_disk, err
    assert.is_true(cm:renew(function(t, e)
      got, err = t, e
      on_disk = stored(path)   -- what a crash right now would leave
    end))
    poll_until(c, function() return got or err end)
    assert.is_nil(err)
    assert.is_string(on_disk.refresh_token)
    assert.not_equal(tokens.refresh_token, on_disk.refresh_token)
    assert.equal(got.access_token, on_disk.access_token)
    -- the rotated-out token is dead: only the stored one can renew
    local r, rerr = c:refresh { refresh_token = tokens.refresh_token }
    assert.is_nil(r and "tokens")
    assert.equal("invalid_grant", rerr.code)
    c:close()
  end)

  it("a lock held elsewhere does not block the callback form; it succeeds once released", function()
    local path = tmpdir() .. "/creds"
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path, lock_wait = 5 }, now = now })
    assert(cm:save(login(c, "busy@example.com")))
    advance(86400 + 10)
    local held = assert(core.store_lock(path .. ".lock", 0))   -- another process refreshing
    local got, err
    local ms, ok = timed(function() return cm:credentials(function(t, e) got, err = t, e end) end)
    assert.is_true(ok)
    assert.is_true(ms < 50, ("the call took %.1f ms"):format(ms))
    local worst, t0 = 0, core.now()
    while core.now() - t0 < 0.4 do   -- a game's frames meanwhile: each poll(0) stays short
      local d = timed(function() return c:poll(0) end)
      if d > worst then worst = d end
      core.sleep(0.005)
    end
    assert.is_true(worst < 50, ("a poll took %.1f ms"):format(worst))
    assert.is_nil(got)
    assert.is_nil(err)   -- still trying: lock_wait is 5 s
    held:unlock()
    poll_until(c, function() return got or err end)
    assert.is_nil(err)
    assert.is_string(got.access_token)
    assert.equal(got.access_token, stored(path).access_token)
    c:close()
  end)

  it("a lock held past lock_wait gives store_busy in the callback form, without blocking", function()
    local path = tmpdir() .. "/creds"
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path, lock_wait = 0.3 }, now = now })
    assert(cm:save(login(c, "stuck@example.com")))
    local held = assert(core.store_lock(path .. ".lock", 0))
    local res
    local ms = timed(function() return cm:clear(function(ok, e) res = { ok, e } end) end)
    assert.is_true(ms < 50, ("the call took %.1f ms"):format(ms))
    local t0, worst = core.now(), 0
    while not res and core.now() - t0 < 10 do
      local d = timed(function() return c:poll(0) end)
      if d > worst then worst = d end
      core.sleep(0.005)
    end
    assert.is_true(worst < 50, ("a poll took %.1f ms"):format(worst))
    assert.is_true(core.now() - t0 >= 0.25)
    assert.is_nil(res[1])
    assert.equal("store_busy", res[2].code)
    assert.is_true(cm:has_valid())   -- nothing revoked nor removed
    held:unlock()
    res = nil
    assert.is_true(cm:clear(function(ok, e) res = { ok, e } end))
    poll_until(c, function() return res end)
    assert.is_true(res[1], tostring(res[2]))
    assert.is_nil(core.store_read(path))
    assert.is_false(cm:has_valid())
    c:close()
  end)

  it("a failed write comes back as nil, err from the callback, naming the file and no token", function()
    local dir = tmpdir()
    util.write(dir .. "/file", "not a directory")
    local path = dir .. "/file/sub/creds"   -- even root cannot create a directory under a file
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    local tokens = login(c, "fail@example.com")
    local res
    assert.is_true(cm:save(tokens, function(ok, e) res = { ok, e } end))
    poll_until(c, function() return res end)
    assert.is_nil(res[1])
    assert.equal("store_error", res[2].code)
    assert.matches("cannot create directory", res[2].message, 1, true)
    for _, secret in ipairs({ tokens.refresh_token, tokens.access_token, tokens.id_token }) do
      assert.is_nil(tostring(res[2]):find(secret, 1, true))
      assert.is_nil(res[2].message:find(secret, 1, true))
    end
    assert.is_true(cm:has_valid())   -- kept in memory for this run: a rotated token must not be lost
    c:close()
  end)

  it("jobs of one store run in the order asked; a blocking save waits for them", function()
    local path = tmpdir() .. "/creds"
    local store = credentials.file_store { path = path }
    local polls = {}
    for i = 1, 6 do polls[i] = store.save_async({ v = 1, access_token = "at-" .. i }) end
    polls[7] = store.clear_async()
    polls[8] = store.save_async({ v = 1, access_token = "at-last" })
    local deadline = core.now() + 10
    local results = {}
    while #results < 8 and core.now() < deadline do
      for i, p in ipairs(polls) do
        if not results[i] then
          local done, ok, err = p()
          if done then results[i] = { ok, err } end
        end
      end
      core.sleep(0.002)
    end
    for i = 1, 8 do assert.is_true(results[i] and results[i][1], "job " .. i) end
    assert.equal("at-last", stored(path).access_token)
    assert.is_false(store.busy())
    -- a blocking save after an async one: the async one can never land on top of it
    store.save_async({ v = 1, access_token = "at-async" })
    assert.is_true(store.save({ v = 1, access_token = "at-sync" }))
    assert.equal("at-sync", stored(path).access_token)
    core.sleep(0.05)
    assert.equal("at-sync", stored(path).access_token)
    assert.equal("", util.sh("ls -a " .. util.q(path:match("^(.*)/")) .. " | grep tmp || true"))
  end)

  it("store jobs in core: nothing while pending, then what the blocking function returns; taken once", function()
    local dir = tmpdir()
    local job = core.store_write_async(dir .. "/x/creds", "secret-bytes")
    assert.matches("^auth0.StoreJob %((%a+)%)$", tostring(job))
    assert.is_nil(tostring(job):find("secret", 1, true))
    job:wait()
    assert.equal("auth0.StoreJob (done)", tostring(job))
    assert.same({ true }, { job:result() })
    assert.has_error(function() job:result() end, "auth0.StoreJob: the result was taken already")
    local r = core.store_read_async(dir .. "/x/creds"):wait()
    assert.same({ "secret-bytes" }, { r:result() })
    local rm = core.store_remove_async(dir .. "/x/creds"):wait()
    assert.same({ true }, { rm:result() })
    local gone = core.store_read_async(dir .. "/x/creds"):wait()
    local a, code = gone:result()
    assert.is_nil(a)
    assert.equal("not_found", code)
    -- a pending job gives nothing at all (not nil): select("#") is 0
    local slow = core.store_write_async(dir .. "/y/creds", "z")
    local n = select("#", slow:result())
    assert.is_true(n == 0 or n == 1)   -- 1 only when the thread already finished
    slow:wait()
    -- a store's worker: its jobs in order; a lock taken on a thread, handed over as a lock
    local w = core.store_worker()
    w:write(dir .. "/w/creds", "one")
    w:write(dir .. "/w/creds", "two")
    assert.same({ "two" }, { w:read(dir .. "/w/creds"):wait():result() })
    local lk = core.store_lock_async(dir .. "/w/creds.lock", 0):wait():result()
    assert.equal("auth0.StoreLock (held)", tostring(lk))
    local busy, bcode = core.store_lock_async(dir .. "/w/creds.lock", 0.05):wait():result()
    assert.is_nil(busy)
    assert.equal("busy", bcode)
    assert.is_true(lk:unlock())
    assert.has_error(function() core.store_lock_async(dir .. "/w/creds.lock", 0 / 0) end)
    assert.has_error(function() core.store_write_async(dir .. "/z", {}) end)
    assert.has_error(function() core.store_remove_async(nil) end)
  end)

  it("client:close() ends a callback-form call waiting on the store: cancelled, lock released", function()
    local path = tmpdir() .. "/creds"
    local c = client()
    local cm = credentials.new(c, { store = credentials.file_store { path = path, lock_wait = 5 }, now = now })
    assert(cm:save(login(c, "closing@example.com")))
    local held = assert(core.store_lock(path .. ".lock", 0))
    local renewed, cleared
    assert.is_true(cm:renew(function(t, e) renewed = { t, e } end))
    assert.is_true(c:pending() > 0)   -- the manager's work counts as pending
    c:poll(20)
    c:close()
    held:unlock()
    assert.is_nil(renewed[1])
    assert.equal("cancelled", renewed[2].code)
    -- closed while the refresh holds the lock: released
    local c1 = client()
    local cm1 = credentials.new(c1, { store = credentials.file_store { path = path, lock_wait = 5 }, now = now })
    renewed = nil
    assert.is_true(cm1:renew(function(t, e) renewed = { t, e } end))
    poll_until(c1, function() return cm1._flight and cm1._flight.lock end)
    c1:close()
    assert.equal("cancelled", renewed[2].code)
    assert.truthy(assert(core.store_lock(path .. ".lock", 0)):unlock())
    -- a save whose write is waited for: cancelled too, never a callback after the close
    local c2 = client()
    local cm2 = credentials.new(c2, { store = credentials.file_store { path = path }, now = now })
    assert.is_true(cm2:save({ access_token = "at", refresh_token = "rt", expires_in = 60 }, function(ok, e)
      cleared = { ok, e }
    end))
    c2:close()
    assert.equal("cancelled", cleared[2].code)
  end)

  it("a custom store without async methods keeps working in the callback form", function()
    local c = client()
    local cm = credentials.new(c, { store = credentials.memory_store(), now = now })
    local tokens = login(c, "custom@example.com")
    local saved
    assert.is_true(cm:save(tokens, function(ok) saved = ok end))
    poll_until(c, function() return saved end)
    advance(86400 + 10)
    local got
    assert.is_true(cm:credentials(function(t) got = t end))
    poll_until(c, function() return got end)
    assert.not_equal(tokens.access_token, got.access_token)
    local cleared
    assert.is_true(cm:clear(function(ok) cleared = ok end))
    poll_until(c, function() return cleared end)
    assert.is_false(cm:has_valid())
    c:close()
  end)
end)
