-- Non-blocking calls (issue #4), with luv's discipline: every expected callback counted
-- exactly, collectgarbage() after callbacks, no pending request left at the end of a test,
-- references dropped mid-transfer, errors raised inside every kind of callback.
-- Real HTTPS against the emulator under nginx; for "a server that has not answered yet" a
-- plain-HTTP loopback server in a child process (LuaSocket) holds chosen requests.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"
local socket = require "socket"

local now = auth0.core.now
local server

-- The held-request server: answers every request at once with a JSON body, except those
-- whose body mentions "slow@", which it holds until a request mentioning "release@" comes
-- (then the held ones are answered first, oldest first, then the release request).
local HELD_SERVER = [=[
local socket = require "socket"
local owner, portfile = tonumber(arg[1]), arg[2]
local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(0)
local _, port = srv:getsockname()
local f = assert(io.open(portfile .. ".tmp", "w")); f:write(port, "\n"); f:close()
os.rename(portfile .. ".tmp", portfile)
local conns, held, started = {}, {}, os.time()
local function alive(pid)
  local s = io.open("/proc/" .. pid .. "/stat"); if not s then return false end
  local st = s:read("*a"); s:close(); return not st:match("^%d+ %b() Z")
end
local function answer(c, body)
  c.sock:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
    .. "\r\n\r\n" .. body)
end
local last_check = 0
while true do
  if os.time() - last_check >= 1 then
    last_check = os.time()
    if not alive(owner) or os.time() - started > 600 then os.exit(0) end
  end
  local s = srv:accept()
  while s do s:settimeout(0); conns[#conns + 1] = { sock = s, buf = "" }; s = srv:accept() end
  local socks = { srv }
  for _, c in ipairs(conns) do socks[#socks + 1] = c.sock end
  socket.select(socks, nil, 0.05)
  for i = #conns, 1, -1 do
    local c = conns[i]
    local data, err, partial = c.sock:receive(65536)
    data = data or partial
    if data and #data > 0 then c.buf = c.buf .. data end
    if err == "closed" then table.remove(conns, i) end
    local head, rest = c.buf:match("^(.-\r\n\r\n)(.*)$")
    local len = head and tonumber(head:lower():match("content%-length:%s*(%d+)")) or 0
    if head and #rest >= len then
      local body = rest:sub(1, len)
      c.buf = rest:sub(len + 1)
      local who = body:match('"email":"([^"]*)"') or "nobody@example.com"
      local reply = '{"_id":"0123456789abcdef01234567","email":"' .. who .. '"}'
      if who:find("^slow@") then
        held[#held + 1] = { c = c, reply = reply }
      else
        if who:find("^release@") then
          for _, h in ipairs(held) do answer(h.c, h.reply) end
          held = {}
        end
        answer(c, reply)
      end
    end
  end
end
]=]

local held_url, held_pid, held_files

local function start_held_server()
  local script = os.tmpname()
  local portfile = os.tmpname()
  os.remove(portfile)
  local f = assert(io.open(script, "w"))
  f:write(HELD_SERVER)
  f:close()
  local me = require("auth0.emulator.server").self_pid()
  local p = assert(io.popen(string.format("lua5.4 %s %d %s >/dev/null 2>&1 & echo $!", script, me, portfile)))
  held_pid = tonumber(p:read("*l"))
  p:close()
  held_files = { script, portfile }
  local deadline = now() + 10
  while now() < deadline do
    local pf = io.open(portfile)
    if pf then
      local port = tonumber(pf:read("*l"))
      pf:close()
      if port then
        held_url = "http://127.0.0.1:" .. port
        return
      end
    end
    socket.sleep(0.02)
  end
  error("the held-request server did not start")
end

local function stop_held_server()
  if held_pid then os.execute("kill " .. held_pid .. " 2>/dev/null") end
  for _, name in ipairs(held_files or {}) do os.remove(name) end
  held_pid = nil
end

local clients = {}

-- A client of the emulator (HTTPS) or, with base_url, of another server.
local function client(opts)
  opts = opts or {}
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 10 }
  for k, v in pairs(opts) do o[k] = v end
  local c = auth0.new(o)
  clients[#clients + 1] = c
  return c
end

-- A client of the held-request server. One request is answered first: until curl has seen
-- a response on a connection it does not know whether HTTP/1.1 or HTTP/2 is spoken there
-- (CURLOPT_PIPEWAIT), and would queue later requests behind a held one.
local function held_client(opts)
  opts = opts or {}
  opts.base_url = held_url
  opts.ca_file = nil
  local c = client(opts)
  assert(c:passwordless_start { connection = "email", email = "warmup@example.com" })
  return c
end

-- Polls until nothing is pending; fails after `limit` seconds.
local function drain(c, limit)
  local deadline = now() + (limit or 10)
  while true do
    local n, err = c:poll(20)
    assert(n, err)
    if n == 0 then return end
    assert(now() < deadline, "requests still pending after " .. (limit or 10) .. " s")
  end
end

-- Polls until pred() is true; fails after `limit` seconds.
local function poll_until(c, pred, limit)
  local deadline = now() + (limit or 10)
  while not pred() do
    assert(c:poll(10))
    assert(now() < deadline, "condition not reached in time")
  end
end

-- A callback that records (name, result, err) into log.
local function recorder(log, name)
  return function(r, e) log[#log + 1] = { name = name, r = r, e = e } end
end

local function count(log, name)
  local n = 0
  for _, v in ipairs(log) do if v.name == name then n = n + 1 end end
  return n
end

local function names(log)
  local t = {}
  for i, v in ipairs(log) do t[i] = v.name end
  return t
end

local function start_email(c, email, cb)
  return c:passwordless_start({ connection = "email", email = email }, cb)
end

-- Releases the held "slow@" request, drains, and checks that `total` callbacks ran, the
-- held one and the release once each, every result the answer to its own request.
-- c:poll(ms), timed: its result and the seconds it took.
local function timed_poll(c, ms)
  local t0 = now()
  local n = c:poll(ms)
  return n, now() - t0
end

local function release_held(c, log, total)
  start_email(c, "release@example.com", recorder(log, "release"))
  drain(c)
  assert.equal(total, #log)
  assert.equal(1, count(log, "slow"))
  assert.equal(1, count(log, "release"))
  for _, v in ipairs(log) do assert.equal(v.name .. "@example.com", v.r.email) end
end

local function last_code(to)
  local out = emu.control("GET", "/__emulator/outbox?to=" .. auth0.core.pct_escape(to))
  local m = out.messages[#out.messages]
  return m and m.code
end

-- A loopback port with nothing listening.
local function closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

describe("async requests", function()
  setup(function()
    server = emu.start()
    start_held_server()
  end)
  teardown(stop_held_server)
  before_each(function() emu.reset() end)
  after_each(function()
    -- no request may be left pending by a test
    for _, c in ipairs(clients) do
      local pending = c:pending()
      c:close()
      assert.equal(0, pending)
    end
    clients = {}
    collectgarbage()
    collectgarbage()
  end)

  describe("callbacks", function()
    it("run exactly once each, and only from poll", function()
      local c = client()
      local log, reqs = {}, {}
      for i = 1, 5 do reqs[i] = start_email(c, "u" .. i .. "@example.com", recorder(log, i)) end
      assert.equal(0, #log)
      assert.equal(5, c:pending())
      assert.equal(5, c:stats().inflight)
      drain(c)
      assert.equal(5, #log)
      for i = 1, 5 do
        assert.equal(1, count(log, i))
        assert.is_true(reqs[i]:done())
        assert.is_false(reqs[i]:cancel())
        assert.equal("auth0.Request (passwordless_start, done)", tostring(reqs[i]))
      end
      for _, v in ipairs(log) do
        assert.is_nil(v.e)
        assert.equal("u" .. v.name .. "@example.com", v.r.email)
      end
      assert.equal(0, c:poll(0))
      assert.equal(5, #log)
      assert.same({ connects = 1, requests = 5, inflight = 0 }, c:stats())
    end)

    it("run in completion order, not start order", function()
      local c = held_client()
      local log = {}
      start_email(c, "slow@example.com", recorder(log, "slow"))
      start_email(c, "fast@example.com", recorder(log, "fast"))
      poll_until(c, function() return #log == 1 end)
      assert.same({ "fast" }, names(log))
      assert.equal(1, c:poll(0))
      release_held(c, log, 3)
    end)

    it("can start requests from inside a callback, which then run in order", function()
      local c = client()
      local log = {}
      start_email(c, "one@example.com", function(r, e)
        recorder(log, 1)(r, e)
        start_email(c, "two@example.com", function(r2, e2)
          recorder(log, 2)(r2, e2)
          start_email(c, "three@example.com", recorder(log, 3))
        end)
      end)
      drain(c)
      assert.same({ 1, 2, 3 }, names(log))
      assert.equal("three@example.com", log[3].r.email)
      assert.equal(3, c:stats().requests)
    end)

    it("send an error raised in a callback to on_callback_error with a traceback", function()
      local errs = {}
      local c = client { on_callback_error = function(msg) errs[#errs + 1] = msg end }
      local log = {}
      start_email(c, "boom@example.com", function() error("boom in a callback") end)
      start_email(c, "fine@example.com", recorder(log, "fine"))
      drain(c)
      assert.equal(1, #errs)
      assert.is_truthy(errs[1]:find("boom in a callback", 1, true))
      assert.is_truthy(errs[1]:find("stack traceback:", 1, true))
      assert.is_truthy(errs[1]:find("async_spec.lua", 1, true))
      assert.equal(1, count(log, "fine"))
      -- the client keeps working, blocking and not
      assert.equal("again@example.com", assert(c:passwordless_start { connection = "email",
        email = "again@example.com" }).email)
      start_email(c, "later@example.com", recorder(log, "later"))
      drain(c)
      assert.equal(1, count(log, "later"))
      assert.equal("later@example.com", log[2].r.email)
      assert.equal(1, #errs)
    end)

    it("log a callback error as a warning by default", function()
      local warns = {}
      local c = client { on_log = function(level, msg, fields)
        if level == "warn" then warns[#warns + 1] = { msg = msg, fields = fields } end
      end }
      start_email(c, "boom@example.com", function() error("default handler boom") end)
      drain(c)
      assert.equal(1, #warns)
      assert.equal("error in a callback", warns[1].msg)
      assert.is_truthy(warns[1].fields.error:find("default handler boom", 1, true))
      assert.is_truthy(warns[1].fields.error:find("stack traceback:", 1, true))
    end)

    it("survive an on_callback_error that raises too", function()
      local calls = 0
      local c = client { on_callback_error = function() calls = calls + 1; error("handler broken") end }
      local log = {}
      start_email(c, "a@example.com", function() error("first") end)
      drain(c)
      assert.equal(1, calls)
      start_email(c, "b@example.com", recorder(log, "b"))
      drain(c)
      assert.equal(1, count(log, "b"))
      assert.equal(1, calls)
    end)

    it("route errors raised in cancel and close callbacks to on_callback_error", function()
      local errs = {}
      local c = held_client { on_callback_error = function(msg) errs[#errs + 1] = msg end }
      local req = start_email(c, "slow@example.com", function(_, e) error("cancel cb: " .. e.code) end)
      start_email(c, "slow@example.com", function(_, e) error("close cb: " .. e.code) end)
      assert.is_true(req:cancel())
      assert.equal(1, #errs)
      assert.is_truthy(errs[1]:find("cancel cb: cancelled", 1, true))
      c:close()
      assert.equal(2, #errs)
      assert.is_truthy(errs[2]:find("close cb: cancelled", 1, true))
      assert.is_truthy(errs[2]:find("stack traceback:", 1, true))
    end)
  end)

  describe("cancel", function()
    it("before the transfer ran calls back once, at once, with cancelled", function()
      local c = client()
      local log = {}
      local req = start_email(c, "c@example.com", recorder(log, "c"))
      assert.is_true(req:cancel())
      assert.equal(1, #log)
      assert.is_nil(log[1].r)
      assert.equal("cancelled", log[1].e.code)
      assert.equal("request cancelled", log[1].e.message)
      assert.equal("passwordless_start: cancelled: request cancelled", tostring(log[1].e))
      assert.is_true(req:done())
      assert.is_false(req:cancel())
      assert.equal(0, c:pending())
      assert.equal(0, c:poll(50))
      assert.equal(1, #log)
    end)

    it("during a transfer calls back once with cancelled", function()
      local c = held_client()
      local log = {}
      local req = start_email(c, "slow@example.com", recorder(log, "slow"))
      for _ = 1, 10 do assert.equal(1, c:poll(10)) end   -- connected, request sent, no answer
      assert.equal(0, #log)
      assert.is_true(req:cancel())
      assert.equal(1, #log)
      assert.equal("cancelled", log[1].e.code)
      assert.equal(0, c:stats().inflight)
      assert.equal(0, c:poll(50))
      assert.equal(1, #log)
      -- the connection stays usable for the next request
      start_email(c, "fast@example.com", recorder(log, "fast"))
      drain(c)
      assert.same({ "slow", "fast" }, names(log))
    end)

    it("of a finished, not yet delivered request wins: one callback, cancelled", function()
      local c = held_client()
      local log = {}
      local req = start_email(c, "fast@example.com", recorder(log, "fast"))
      -- a blocking call drives every transfer: the async one finishes meanwhile
      assert(c:passwordless_start { connection = "email", email = "block@example.com" })
      assert.equal(0, #log)
      assert.is_true(req:cancel())
      assert.equal(0, c:poll(0))
      assert.equal(1, #log)
      assert.equal("cancelled", log[1].e.code)
    end)
  end)

  describe("lifetimes", function()
    it("completes and calls back requests whose objects were dropped mid-transfer", function()
      local c = client()
      local log = {}
      local weak = setmetatable({}, { __mode = "k" })
      for i = 1, 3 do weak[start_email(c, "d" .. i .. "@example.com", recorder(log, i))] = true end
      assert.equal(3, c:poll(0))
      collectgarbage()
      collectgarbage()
      drain(c)
      assert.equal(3, #log)
      for i = 1, 3 do assert.equal(1, count(log, i)) end
      for _, v in ipairs(log) do assert.equal("d" .. v.name .. "@example.com", v.r.email) end
      -- once delivered, nothing anchors the request objects any more
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
    end)

    it("close() cancels requests in flight: each callback once, with cancelled", function()
      local c = held_client()
      local log, reqs = {}, {}
      for i = 1, 3 do reqs[i] = start_email(c, "slow@example.com", recorder(log, i)) end
      assert.equal(3, c:poll(20))
      c:close()
      assert.equal(3, #log)
      for i = 1, 3 do
        assert.equal(1, count(log, i))
        assert.is_true(reqs[i]:done())
        assert.is_false(reqs[i]:cancel())
      end
      for _, v in ipairs(log) do
        assert.is_nil(v.r)
        assert.equal("cancelled", v.e.code)
        assert.equal("client closed", v.e.message)
        assert.equal("passwordless_start", v.e.context)
      end
      c:close()
      assert.equal(3, #log)
      assert.equal("auth0.Client (closed)", tostring(c))
      assert.equal(0, c:pending())
      local ok, msg = pcall(c.poll, c, 0)
      assert.is_false(ok)
      assert.is_truthy(msg:find("attempt to use a closed auth0.Client", 1, true))
      ok, msg = pcall(start_email, c, "x@example.com", function() end)
      assert.is_false(ok)
      assert.is_truthy(msg:find("attempt to use a closed auth0.Client", 1, true))
    end)

    it("close() from inside a callback cancels the others once", function()
      local c = held_client()
      local log = {}
      start_email(c, "slow@example.com", recorder(log, "slow1"))
      start_email(c, "slow@example.com", recorder(log, "slow2"))
      start_email(c, "fast@example.com", function(r, e)
        recorder(log, "fast")(r, e)
        c:close()
      end)
      local deadline = now() + 10
      while #log < 3 and now() < deadline do
        local n = c:poll(20)
        if #log > 0 then assert.equal(0, n) end
      end
      assert.equal(3, #log)
      assert.equal("fast", log[1].name)
      assert.equal("fast@example.com", log[1].r.email)
      assert.equal(1, count(log, "slow1"))
      assert.equal(1, count(log, "slow2"))
      assert.equal("cancelled", log[2].e.code)
      assert.equal("cancelled", log[3].e.code)
      assert.equal("auth0.Client (closed)", tostring(c))
    end)

    it("a request waiting to retry is cancelled once by close() and by cancel()", function()
      local c = client { base_url = "https://127.0.0.1:" .. closed_port(), retries = 3 }
      local log = {}
      local req = c:openid_configuration(recorder(log, "retry1"))
      -- the first attempt fails to connect; a retry timer is then pending
      poll_until(c, function() return c:stats().requests == 1 and c:stats().inflight == 0 end)
      assert.equal(1, c:pending())
      assert.is_false(req:done())
      assert.is_true(req:cancel())
      assert.equal(1, #log)
      assert.equal("cancelled", log[1].e.code)
      assert.equal(0, c:pending())
      c:openid_configuration(recorder(log, "retry2"))
      poll_until(c, function() return c:stats().requests == 2 and c:stats().inflight == 0 end)
      assert.equal(1, c:pending())
      c:close()
      assert.equal(2, #log)
      assert.equal("retry2", log[2].name)
      assert.equal("cancelled", log[2].e.code)
      assert.equal("client closed", log[2].e.message)
    end)

    it("work handed to the scheduler after close() ends at once, cancelled (never hangs)", function()
      local c = client()
      local s = c._sched
      c:close()
      local got = {}
      for _, hand in ipairs {
        function(req) s:push(function() got[#got + 1] = "ran" end, req) end,
        function(req) s:wait(req, 0.01, function() got[#got + 1] = "ran" end) end,
        function(req) s:hold(req) end,
      } do
        local req = s:request("late", function(v, e) got[#got + 1] = e and e.message or v end)
        hand(req)
        assert.is_true(req:done())
      end
      assert.same({ "client closed", "client closed", "client closed" }, got)
      s:push(function() got[#got + 1] = "nobody's task ran" end)   -- dropped: nobody waits for it
      assert.equal(0, c:pending())
      assert.equal(3, #got)
    end)

    it("a coroutine resumed by a 'client closed' callback still runs during close()", function()
      local c = client()
      local resumed = false
      c:openid_configuration(function()
        c._sched:push(function() resumed = true end)   -- what auth0.await queues
      end)
      c:close()
      assert.is_true(resumed)
    end)

    it("retries a refused connection, then reports it once", function()
      local c = client { base_url = "https://127.0.0.1:" .. closed_port(), retries = 2 }
      local log = {}
      c:openid_configuration(recorder(log, "r"))
      drain(c)
      assert.equal(1, #log)
      assert.equal("couldnt_connect", log[1].e.code)
      assert.equal(3, c:stats().requests)
    end)

    it("an mfa_poll waiting for its first poll is cancelled once by cancel() and by close()", function()
      local c = client()
      local log = {}
      local p = c:mfa_poll({ mfa_token = "t", oob_code = "o", interval = 30 }, recorder(log, "p1"))
      assert.equal(1, c:pending())
      assert.equal("auth0.Request (mfa_poll, in flight)", tostring(p))
      assert.is_true(p:cancel())
      assert.is_false(p:cancel())
      assert.equal(1, #log)
      assert.equal("cancelled", log[1].e.code)
      assert.equal(0, c:pending())
      c:mfa_poll({ mfa_token = "t", oob_code = "o", interval = 30 }, recorder(log, "p2"))
      assert.equal(0, c:stats().requests)
      c:close()
      assert.equal(2, #log)
      assert.equal("cancelled", log[2].e.code)
      assert.equal("mfa_poll", log[2].e.context)
    end)

    it("a client closed by a <close> variable cancels its requests (Lua 5.4)", function()
      if _VERSION ~= "Lua 5.4" or rawget(_G, "jit") then
        pending("to-be-closed variables need Lua 5.4")
        return
      end
      local log = {}
      local chunk = assert(load([[
        local client, start_email, cb = ...
        local c <close> = client()
        start_email(c, "slow@example.com", cb)
        assert(c:poll(20) == 1)
        return c
      ]]))
      local c = chunk(held_client, start_email, recorder(log, "scoped"))
      assert.equal(1, #log)
      assert.equal("cancelled", log[1].e.code)
      assert.equal("auth0.Client (closed)", tostring(c))
    end)

    it("a dropped client with a timer pending cancels it when collected (Lua 5.4)", function()
      if _VERSION ~= "Lua 5.4" or rawget(_G, "jit") then
        pending("tables have no __gc in LuaJIT: drop a client only after close()")
        return
      end
      local log = {}
      do
        local c = auth0.new { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native" }
        c:mfa_poll({ mfa_token = "t", oob_code = "o", interval = 30 }, recorder(log, "gc"))
      end
      collectgarbage()
      collectgarbage()
      assert.equal(1, #log)
      assert.equal("cancelled", log[1].e.code)
    end)
  end)

  describe("poll", function()
    it("returns nil, err (reentrant) when called from inside a callback", function()
      local c = client()
      local got
      start_email(c, "re@example.com", function()
        local n, err = c:poll(0)
        local n2, err2 = c:poll(100)
        got = { n, err, n2, err2 }
      end)
      drain(c)
      assert.is_nil(got[1])
      assert.equal("reentrant", got[2].code)
      assert.equal("poll called from inside a callback", got[2].message)
      assert.is_nil(got[3])
      assert.equal("reentrant", got[4].code)
      assert.equal(0, c:poll(0))
    end)

    it("poll(0) returns at once with a request in flight to a silent server", function()
      local c = held_client()
      local log = {}
      start_email(c, "slow@example.com", recorder(log, "slow"))
      local worst = 0
      for _ = 1, 50 do
        local t0 = now()
        assert.equal(1, c:poll(0))
        worst = math.max(worst, now() - t0)
      end
      assert.is_true(worst < 0.05, "poll(0) took " .. worst .. " s")
      -- poll(ms) waits up to ms
      local n, waited = timed_poll(c, 200)
      assert.equal(1, n)
      assert.is_true(waited >= 0.18 and waited < 1, "poll(200) took " .. waited .. " s")
      -- wakeup() makes the next wait return early
      c:wakeup()
      n, waited = timed_poll(c, 3000)
      assert.equal(1, n)
      assert.is_true(waited < 0.5, "poll after wakeup took " .. waited .. " s")
      assert.equal(0, #log)
      release_held(c, log, 2)
    end)

    it("a wakeup() made before a blocking call still ends the next poll(ms)", function()
      -- the blocking call's own wait drained libcurl's wakeup; the engine remembers it
      local c = held_client()
      local log = {}
      start_email(c, "slow@example.com", recorder(log, "slow"))
      c:wakeup()
      assert(c:passwordless_start { connection = "email", email = "between@example.com" })
      local n, waited = timed_poll(c, 3000)
      assert.equal(1, n)
      assert.is_true(waited < 0.5, "poll after wakeup took " .. waited .. " s")
      -- answered once: the next poll(ms) waits again
      n, waited = timed_poll(c, 200)
      assert.equal(1, n)
      assert.is_true(waited >= 0.18, "the second poll(200) took " .. waited .. " s")
      assert.equal(0, #log)
      release_held(c, log, 2)
    end)

    it("poll(ms) with several transfers in flight waits the whole ms (in slices) and no longer", function()
      local c = held_client()
      local log = {}
      start_email(c, "slow@example.com", recorder(log, "slow"))
      start_email(c, "slow@example.com", recorder(log, "slow"))
      -- until both are sent and the wire is quiet (a second connection's set-up is activity)
      for _ = 1, 10 do assert.equal(2, c:poll(50)) end
      local n, waited = timed_poll(c, 300)
      assert.equal(2, n)
      assert.is_true(waited >= 0.28 and waited < 1.5, "poll(300) took " .. waited .. " s")
      start_email(c, "release@example.com", recorder(log, "release"))
      drain(c)
      assert.equal(2, count(log, "slow"))
      assert.equal(1, count(log, "release"))
    end)

    it("returns nil, err (network) when the engine fails, and goes on", function()
      local c = client()
      local log = {}
      start_email(c, "multi@example.com", recorder(log, "m"))
      c._core:_fail_next("poll")   -- test hook: this poll's engine run reports a multi failure
      local n, err = c:poll(0)
      assert.is_nil(n)
      assert.is_true(auth0.error.is(err))
      assert.equal("network", err.code)
      assert.equal("poll: network: curl_multi_perform failed (test hook)", tostring(err))
      drain(c)
      assert.equal(1, count(log, "m"))
    end)

    it("a start that fails for a network reason returns nil, err; misuse still raises", function()
      local c = client()
      local log = {}
      c._core:_fail_next("start")   -- test hook: the transfer cannot be handed to libcurl
      local r, err = start_email(c, "nostart@example.com", recorder(log, "never"))
      assert.is_nil(r)
      assert.is_true(auth0.error.is(err))
      assert.equal("network", err.code)
      assert.equal("could not start the transfer", err.message)
      assert.equal(0, c:pending())
      c._core:_fail_next("start")
      local co = coroutine.create(function()
        return auth0.await(c, "passwordless_start", { connection = "email", email = "nostart@example.com" })
      end)
      local ok, v, aerr = coroutine.resume(co)
      assert.is_true(ok)
      assert.is_nil(v)
      assert.equal("network", aerr.code)
      assert.equal("dead", coroutine.status(co))
      assert.has_error(function() start_email(c, "not an email", recorder(log, "never")) end,
        "bad argument #1 to 'passwordless_start' (email is malformed)")
      drain(c)
      assert.equal(0, #log)
      assert.equal(0, c:poll(0))
    end)

    it("jwks(cb) with a cached JWKS returns a request and calls back from the next poll", function()
      local c = client()
      local jwks = assert(c:jwks())
      local log = {}
      local req = c:jwks(recorder(log, "cached"))
      assert.equal("auth0.Request (jwks, in flight)", tostring(req))
      assert.equal(0, #log)
      assert.equal(1, c:pending())
      assert.equal(0, c:poll(0))
      assert.equal(1, #log)
      assert.equal(jwks, log[1].r)
      assert.is_true(req:done())
      assert.is_false(req:cancel())
      assert.equal(1, c:stats().requests)
    end)

    it("poll(ms) with nothing pending returns 0 at once", function()
      local c = client()
      local t0 = now()
      assert.equal(0, c:poll(2000))
      assert.is_true(now() - t0 < 0.1)
    end)

    it("a poll that waits for a timer alone waits for it, and wakeup() ends the wait", function()
      local c = client()
      local fired = 0
      c:_after(0.3, function() fired = fired + 1 end)
      local t0 = now()
      assert.equal(0, c:poll(2000))
      local waited = now() - t0
      assert.equal(1, fired)
      assert.is_true(waited >= 0.28 and waited < 1.5, "waited " .. waited .. " s for a 0.3 s timer")
      local t = c:_after(3, function() fired = fired + 1 end)
      c:wakeup()
      t0 = now()
      assert.equal(1, c:poll(3000))   -- the timer is still pending
      assert.is_true(now() - t0 < 0.5, "poll after wakeup took " .. (now() - t0) .. " s")
      assert.equal(1, fired)
      c:_cancel_timer(t)
    end)
  end)

  describe("blocking calls on the same engine", function()
    it("work while async requests are in flight and share the connection", function()
      local c = client()
      local log = {}
      for i = 1, 3 do start_email(c, "a" .. i .. "@example.com", recorder(log, i)) end
      local sent = assert(c:passwordless_start { connection = "email", email = "blocking@example.com" })
      assert.equal("blocking@example.com", sent.email)
      assert.equal(0, #log)   -- callbacks run only from poll
      drain(c)
      assert.equal(3, #log)
      for i = 1, 3 do assert.equal(1, count(log, i)) end
      assert.same({ connects = 1, requests = 4, inflight = 0 }, c:stats())
    end)

    it("a request finished during a blocking call is delivered without waiting", function()
      local c = held_client()
      local log = {}
      start_email(c, "slow@example.com", recorder(log, "slow"))
      start_email(c, "fast@example.com", recorder(log, "fast"))
      assert(c:passwordless_start { connection = "email", email = "block@example.com" })
      assert.equal(0, #log)
      local t0 = now()
      assert.equal(1, c:poll(3000))
      assert.is_true(now() - t0 < 0.5, "poll waited " .. (now() - t0) .. " s for a finished request")
      assert.same({ "fast" }, names(log))
      release_held(c, log, 3)
    end)

    it("work from inside a callback", function()
      local c = client()
      local inner
      start_email(c, "outer@example.com", function()
        inner = { c:passwordless_start { connection = "email", email = "inner@example.com" } }
      end)
      drain(c)
      assert.equal("inner@example.com", inner[1].email)
      assert.is_nil(inner[2])
    end)
  end)

  describe("request objects", function()
    it("never show a secret in tostring", function()
      local c = client { client_id = "emu-confidential", client_secret = "emu-confidential-secret" }
      local log = {}
      local reqs = {
        c:passwordless_login({ realm = "email", username = "s@example.com", otp = "987654" }, recorder(log, 1)),
        c:mfa_verify({ mfa_token = "Fe26.2*SECRET-TOKEN", otp = "123456" }, recorder(log, 2)),
        c:userinfo("SECRET-ACCESS-TOKEN", recorder(log, 3)),
      }
      assert.equal("auth0.Request (passwordless_login, in flight)", tostring(reqs[1]))
      assert.equal("auth0.Request (mfa_otp, in flight)", tostring(reqs[2]))
      assert.equal("auth0.Request (userinfo, in flight)", tostring(reqs[3]))
      assert.is_nil(tostring(c):find("secret", 1, true))
      drain(c)
      assert.equal(3, #log)
      assert.equal("auth0.Request (passwordless_login, done)", tostring(reqs[1]))
      for _, v in ipairs(log) do
        local s = tostring(v.e)
        assert.is_nil(s:find("SECRET", 1, true))
        assert.is_nil(s:find("987654", 1, true))
      end
    end)
  end)

  describe("auth0.await", function()
    it("raises outside a coroutine", function()
      local c = client()
      local ok, msg = pcall(auth0.await, c, "passwordless_start", { connection = "email", email = "x@example.com" })
      assert.is_false(ok)
      assert.is_truthy(msg:find("auth0.await must be called inside a coroutine", 1, true))
    end)

    it("runs a whole login in a coroutine resumed by poll", function()
      local c = client()
      local trace = {}
      local co = coroutine.create(function()
        local sent, err = auth0.await(c, "passwordless_start", { connection = "email", email = "co@example.com" })
        trace[#trace + 1] = { "sent", sent, err }
        local n, perr = c:poll(0)   -- resumed from a callback: poll is reentrant here
        trace[#trace + 1] = { "poll", n, perr }
        local tokens, lerr = auth0.await(c, "passwordless_login", { realm = "email", username = "co@example.com",
          otp = last_code("co@example.com") })
        trace[#trace + 1] = { "tokens", tokens, lerr }
        local _, bad = auth0.await(c, "passwordless_login", { realm = "email", username = "co@example.com",
          otp = "000000" })
        trace[#trace + 1] = { "bad", bad }
        return "finished"
      end)
      assert(coroutine.resume(co))
      assert.equal("suspended", coroutine.status(co))
      assert.equal(0, #trace)
      drain(c)
      assert.equal("dead", coroutine.status(co))
      assert.equal(4, #trace)
      assert.equal("co@example.com", trace[1][2].email)
      assert.is_nil(trace[1][3])
      assert.is_nil(trace[2][2])
      assert.equal("reentrant", trace[2][3].code)
      assert.equal("Bearer", trace[3][2].token_type)
      assert.is_nil(trace[3][3])
      assert.equal("invalid_grant", trace[4][2].code)
    end)

    it("sends an error raised in the resumed coroutine to on_callback_error", function()
      local errs = {}
      local c = client { on_callback_error = function(msg) errs[#errs + 1] = msg end }
      local co = coroutine.create(function()
        auth0.await(c, "passwordless_start", { connection = "email", email = "coerr@example.com" })
        error("coroutine boom")
      end)
      assert(coroutine.resume(co))
      drain(c)
      assert.equal("dead", coroutine.status(co))
      assert.equal(1, #errs)
      assert.is_truthy(errs[1]:find("coroutine boom", 1, true))
      assert.equal(0, c:poll(0))
    end)

    it("resumes with cancelled when the client closes", function()
      local c = held_client()
      local result
      local co = coroutine.create(function()
        local _, err = auth0.await(c, "passwordless_start", { connection = "email", email = "slow@example.com" })
        result = err
      end)
      assert(coroutine.resume(co))
      c:close()
      assert.equal("dead", coroutine.status(co))
      assert.equal("cancelled", result.code)
    end)
  end)
  describe("poll budget", function()
    it("starts deferred requests a few per poll, each callback once", function()
      local c = client { poll_budget_ms = 0.2 }
      local log = {}
      for i = 1, 6 do start_email(c, "budget" .. i .. "@example.com", recorder(log, "r" .. i)) end
      assert.equal(0, c:stats().requests)
      assert.equal(6, c:pending())
      assert(c:poll(0))
      local sent = c:stats().requests
      if c._cfg.io_thread then   -- as many as fit in the budget, at least one
        assert.is_true(sent >= 1, "sent " .. sent .. " in the first poll")
      else                       -- libcurl sends them in the next poll: 0.1 ms each is counted
        assert.is_true(sent >= 1 and sent <= 2, "sent " .. sent .. " in the first poll")
      end
      local deadline = now() + 10
      while #log < 6 do
        assert(c:poll(0))
        assert(now() < deadline, "budgeted requests did not finish")
      end
      for i = 1, 6 do assert.equal(1, count(log, "r" .. i)) end
      assert.equal(6, c:stats().requests)
      assert.equal(0, c:pending())
    end)

    it("never sends a deferred request that was cancelled", function()
      local c = client { poll_budget_ms = 0.2 }
      local log = {}
      start_email(c, "keep1@example.com", recorder(log, "a"))
      start_email(c, "keep2@example.com", recorder(log, "b"))
      local r = start_email(c, "drop@example.com", recorder(log, "c"))
      assert.is_true(r:cancel())
      assert.equal(1, count(log, "c"))
      assert.equal("cancelled", log[1].e.code)
      local deadline = now() + 10
      while c:pending() > 0 do assert(c:poll(0)); assert(now() < deadline) end
      assert.equal("c", log[1].name)   -- a and b may finish in either order over HTTP/2
      assert.equal(1, count(log, "a"))
      assert.equal(1, count(log, "b"))
      assert.equal(3, #log)
      assert.equal(2, c:stats().requests)
    end)

    it("stops running callbacks when the budget is spent", function()
      local c = client()
      local log = {}
      for i = 1, 3 do start_email(c, "cb" .. i .. "@example.com", recorder(log, "r" .. i)) end
      -- a blocking call drives the engine: the three finish meanwhile (or, with io_thread,
      -- soon after), their callbacks wait for a poll
      assert(c:passwordless_start { connection = "email", email = "blocking@example.com" })
      assert.equal(0, #log)
      -- from now on a budget smaller than one callback (set after the starts, which it would defer)
      c._sched.budget = 1e-6
      local deadline = now() + 10
      while #log < 3 do
        local before = #log
        assert(c:poll(0))   -- one runs, never two
        assert.is_true(#log - before <= 1, (#log - before) .. " callbacks in one poll")
        assert(now() < deadline, "callbacks did not run")
      end
      assert.equal(0, c:poll(0))
    end)

    it("does not start a callback that the budget cannot fit, judged by the previous ones", function()
      local c = client { poll_budget_ms = 0.5 }
      local log = {}
      local function slow(name)   -- 0.3 ms each: a second one in the same poll would overrun
        return function()
          local t = now() + 0.0003
          repeat until now() >= t
          log[#log + 1] = { name = name }
        end
      end
      for i = 1, 4 do start_email(c, "fit" .. i .. "@example.com", slow("r" .. i)) end
      local deadline, polls_with_one = now() + 10, 0
      while #log < 4 do
        local before = #log
        assert(c:poll(0))
        assert.is_true(#log - before <= 1, (#log - before) .. " callbacks in one poll")
        if #log > before then polls_with_one = polls_with_one + 1 end
        assert(now() < deadline, "callbacks did not run")
      end
      assert.equal(4, polls_with_one)
      for i = 1, 4 do assert.equal(1, count(log, "r" .. i)) end
    end)
  end)

  describe("io_thread", function()
    local pid = require("auth0.emulator.server").self_pid()

    -- This process's threads: { [tid] = nice }.
    local function threads()
      local out, p = {}, assert(io.popen("ls /proc/" .. pid .. "/task"))
      for tid in p:lines() do
        local f = io.open("/proc/" .. pid .. "/task/" .. tid .. "/stat")
        if f then
          local fields = {}
          for w in f:read("*a"):match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
          f:close()
          out[tonumber(tid)] = tonumber(fields[17])   -- field 19 of stat, counted after "comm"
        end
      end
      p:close()
      return out
    end
    local function new_threads(before)
      local list = {}
      for tid, nice in pairs(threads()) do if not before[tid] then list[#list + 1] = nice end end
      return list
    end

    it("raises when io_thread is not a boolean", function()
      local ok, err = pcall(auth0.new, { base_url = server.base_url, client_id = "x", io_thread = "yes" })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("io_thread must be a boolean", 1, true))
    end)

    it("moves transfers without poll, on one thread at nice 10 that close() joins", function()
      local before = threads()
      local c = client { io_thread = true }
      assert.same({ 10 }, new_threads(before))
      local log = {}
      start_email(c, "bg@example.com", recorder(log, "bg"))
      socket.sleep(1)   -- no poll: the I/O thread sends it and reads the answer meanwhile
      assert.equal(0, #log)
      assert.equal(0, c:poll(0))   -- the first poll(0) only runs the callback
      assert.equal(1, count(log, "bg"))
      assert.is_nil(log[1].e)
      c:close()
      assert.same({}, new_threads(before))
    end)

    it("joins the thread of a client that is collected without close", function()
      local before = threads()
      do
        local c = auth0.new { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native",
          io_thread = true }
        assert(c:passwordless_start { connection = "email", email = "gc@example.com" })
      end
      collectgarbage()
      collectgarbage()
      assert.same({}, new_threads(before))
    end)

    it("poll(ms) returns when the answer arrives and runs its callback", function()
      local c = client { io_thread = true }
      local log = {}
      start_email(c, "wait@example.com", recorder(log, "w"))
      local t0 = now()
      assert.equal(0, c:poll(5000))
      assert.is_true(now() - t0 < 4, "poll(5000) waited " .. (now() - t0) .. " s")
      assert.equal(1, count(log, "w"))
    end)

    it("cancels a transfer the I/O thread holds: one callback, and the client goes on", function()
      local c = held_client { io_thread = true }
      local log = {}
      local r = start_email(c, "slow@example.com", recorder(log, "held"))
      socket.sleep(0.3)   -- sent, and held by the server: libcurl is working on it
      assert.is_true(r:cancel())
      assert.equal(1, #log)
      assert.equal("cancelled", log[1].e.code)
      assert.is_false(r:cancel())
      for i = 1, 5 do start_email(c, "after" .. i .. "@example.com", recorder(log, "a" .. i)) end
      drain(c)
      for i = 1, 5 do
        assert.equal(1, count(log, "a" .. i))
        assert.is_nil(log[i + 1].e)
      end
      assert.equal(6, #log)
      assert(c:passwordless_start { connection = "email", email = "release@example.com" })
    end)
  end)
end)
