-- The job queues of a store worker (core.store_worker) and of an RS256 verification worker
-- (core.rs256_worker) are capped (1024 jobs waiting, A0_WORKER_QUEUE_MAX in csrc/a0_worker.h):
-- past it a new job answers nil, err (load, not misuse: never a raise), and the jobs already
-- queued still run; the file store's async saves answer store_busy then.
local core = require("auth0").core
local util = require "spec.support.util"

local CAP = 1024

describe("worker queues", function()
  it("a store worker stuck on a lock refuses the job past its cap with nil, busy", function()
    local dir = util.tmpdir("queue")
    local path = dir .. "/lockfile"
    local held = assert(core.store_lock(path, 0))   -- this process holds it: the worker's try waits
    local w = assert(core.store_worker())
    local first = assert(w:lock(path, 30))
    core.sleep(0.05)   -- the thread took the lock job: it waits, the queue fills behind it
    local jobs = {}
    for i = 1, CAP do
      local j, code, msg = w:read(dir .. "/none")
      assert.is_userdata(j, "job " .. i .. ": " .. tostring(code) .. " " .. tostring(msg))
      jobs[i] = j
    end
    local ok, j, code, msg = pcall(w.read, w, dir .. "/none")
    assert.is_true(ok, j)   -- not a raise
    assert.is_nil(j)
    assert.equal("busy", code)
    assert.matches("queue is full", msg)
    held:unlock()
    first:wait()
    local l = assert(first:result())
    l:unlock()
    for i, job in ipairs(jobs) do
      job:wait()
      local r, c = job:result()
      assert.is_nil(r, "job " .. i)
      assert.equal("not_found", c)
    end
    assert.is_userdata(w:read(dir .. "/none"))   -- room again
  end)

  it("a file store's async save past the cap answers store_busy (a child with every job slowed)", function()
    local dir = util.tmpdir("queue-store")
    util.write(dir .. "/child.lua", [[
      local credentials = require "auth0.credentials"
      local s = credentials.file_store { path = arg[1] }
      for i = 1, 1100 do
        local poll = s.save_async({ v = 1, access_token = "x" .. i })
        local done, res, err = poll()
        if done and not res then
          io.write(i, " ", tostring(err.code), "\n")
          os.exit(0)   -- the slowed jobs still queued are not waited for
        end
      end
      io.write("never refused\n")
      os.exit(0)
    ]])
    local out = util.sh(("A0_STORE_FAULT=slow_job LUA_PATH=%s LUA_CPATH=%s timeout 60 %s %s %s"):format(
      util.q(package.path), util.q(util.fault_cpath()), rawget(_G, "jit") and "luajit" or "lua5.4",
      util.q(dir .. "/child.lua"), util.q(dir .. "/creds")))
    local n, code = out:match("^(%d+) (%S+)\n$")
    assert.equal("store_busy", code, out)
    -- one running (300 ms) and 1024 waiting; the next one is refused (the 1025th when the
    -- thread had not taken the first one yet)
    assert.is_true(tonumber(n) == CAP + 1 or tonumber(n) == CAP + 2, out)
  end)

  it("an RS256 worker refuses verifications past its cap with nil, err; the queued ones end valid", function()
    local key = core.rsa_key()
    local j = key:jwk()
    -- the first job hashes 64 MiB (~0.2 s here, seconds under valgrind) while the next ones,
    -- over 16 bytes, are queued behind it in a few milliseconds: the queue fills whatever the
    -- scheduling (valgrind runs one thread at a time; a loop of equal jobs then kept up)
    local big, small = string.rep("d", 64 * 1024 * 1024), string.rep("s", 16)
    local w = assert(core.rs256_worker())
    local jobs = { assert(w:verify(j.n, j.e, big, key:sign_rs256(big))) }
    local sig = key:sign_rs256(small)
    local refused
    for _ = 1, 2 * CAP do
      local ok, job, msg = pcall(w.verify, w, j.n, j.e, small, sig)
      assert.is_true(ok, job)   -- never a raise
      if not job then refused = msg; break end
      jobs[#jobs + 1] = job
    end
    assert.equal("the verification queue is full", refused)
    -- CAP waiting when refused, behind the running job (a slow machine or valgrind may have
    -- finished some meanwhile: CAP + 53 under valgrind)
    assert.is_true(#jobs >= CAP, #jobs .. " accepted")
    for _, job in ipairs(jobs) do
      local valid
      for _ = 1, 60000 do valid = job:result(); if valid ~= nil then break end; core.sleep(0.001) end
      assert.is_true(valid)
    end
  end)
end)
