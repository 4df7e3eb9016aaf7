-- Hostile review of perf4's merge (the fused decode of client:fetch, core.graphic (since replaced by core.email_shape),
-- client:started) and of the engine's short poll while several transfers run. Each answer a
-- hostile server can give is served through libcurl on loopback to a client nobody logs for
-- (the fused path) and to one with on_log (always the general path: finish, cjson, shapes),
-- and the two outcomes must be the same, field by field.
local auth0 = require "auth0"
local core = require "auth0.core"
local emu = require "spec.support.emulator"
local raw = require "spec.support.rawserver"

local now = core.now

local cmp = require "spec.support.outcome"
local same, outcome = cmp.same, cmp.of

local TOK = '"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"'

-- Raw answers (status line, headers, body) the fused path must decide as finish() would.
local function ans(status, body, headers)
  return raw.http(status, headers or { "Content-Type: application/json" }, body)
end
local function chunked(status, parts)
  local t = { "HTTP/1.1 " .. status .. "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" }
  for _, p in ipairs(parts) do t[#t + 1] = ("%x\r\n%s\r\n"):format(#p, p) end
  t[#t + 1] = "0\r\n\r\n"
  return table.concat(t)
end
-- A token answer of exactly n bytes (the access token pads it).
local function sized(n)
  local pre, post = '{"access_token":"', '","expires_in":60}'
  return pre .. ("a"):rep(n - #pre - #post) .. post
end

local ANSWERS = {
  ans("200 OK", '{"__index":"x","__gc":1,"1":"one","__newindex":true,' .. TOK .. "}"),
  ans("200 OK", "{" .. TOK .. ',"expires_in":-0}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":-0.0e0}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":1E2}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":1.5}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":-1.5}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":1.7976931348623157e308}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":2e308}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":9007199254740993}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":+1}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":.5}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":0x10}'),
  ans("200 OK", "{" .. TOK .. ',"expires_in":Infinity}'),
  ans("200 OK", '{"access_\\u0074oken":"x"}'),
  ans("200 OK", '{"access_token":"x","access_\\u0074oken":5}'),
  ans("200 OK", '{"access_token":5,"access_\\u0074oken":"x"}'),
  ans("200 OK", "{" .. TOK .. ',"err\\u006fr":"x"}'),
  ans("200 OK", "{" .. TOK .. ',"error":null,"error":"x"}'),
  ans("200 OK", "{" .. TOK .. ',"error":"x","error":null}'),
  ans("200 OK", '{"error":"a","error":"b"}'),
  ans("200 OK", '{"error_description":"x",' .. TOK .. "}"),
  ans("200 OK", '{"errors":"x","Error":"y",' .. TOK .. "}"),
  ans("200 OK", "{" .. TOK .. ',"e\0":"b"}'),
  ans("200 OK", "{" .. TOK .. ',"x":"\0"}'),
  ans("200 OK", "{" .. TOK .. "}\0"),
  ans("200 OK", "\239\187\191{" .. TOK .. "}"),
  ans("200 OK", "{" .. TOK .. ',"bad":"\192\128","ctl":"\1\31\127"}'),
  ans("200 OK", "{" .. TOK .. ',"x":"\226\128\168"}'),
  ans("200 OK", (" "):rep(5000) .. "{" .. TOK .. "}" .. ("\n"):rep(5000)),
  ans("200 OK", "{" .. TOK .. "}\f"),
  ans("200 OK", "{" .. TOK .. "} {}"),
  ans("200 OK", "{" .. TOK .. ',"o":{}}'),
  ans("200 OK", "{" .. TOK .. ',"a":[]}'),
  ans("200 OK", "{" .. TOK .. ',"t":True}'),
  ans("200 OK", "{" .. TOK .. ',"t":tru}'),
  ans("200 OK", "{" .. TOK .. ',"t":truex}'),
  ans("200 OK", "{" .. TOK .. ',"n":1.}'),
  ans("200 OK", "{" .. TOK .. ',"n":-}'),
  ans("200 OK", "{" .. TOK .. ',"n":1e}'),
  ans("200 OK", "{" .. TOK .. ',' .. '"id_token":"' .. ("i"):rep(3000) .. '"}'),
  ans("200 OK", "{'access_token':'x'}"),
  ans("200 OK", "{" .. TOK .. ',"scope":"openid",}'),
  ans("200 OK", "{ }"),
  ans("200 OK", "{" .. TOK .. ',"expires_in":3600}', { "Content-Type: text/html" }),
  ans("200 OK", "{" .. TOK .. ',"expires_in":3600}', {}),
  ans("201 Created", "{" .. TOK .. ',"expires_in":3600}'),
  ans("203 Non-Authoritative Information", "{" .. TOK .. "}"),
  ans("206 Partial Content", "{" .. TOK .. "}"),
  ans("299 Whatever", "{" .. TOK .. "}"),
  ans("202 Accepted", '{"error":"authorization_pending","error_description":"x"}'),
  ans("200 OK", '{"error":"authorization_pending","error_description":"x",' .. TOK .. "}"),
  chunked("200 OK", { '{"access_', 'token":"eyJ', 'x","expires_in":', "36", "00}" }),
  chunked("200 OK", { "{" .. TOK, ',"expires_in":5' }),   -- a complete chunked answer of bad JSON
  ans("200 OK", sized(16383)), ans("200 OK", sized(16384)), ans("200 OK", sized(16385)),
  ans("200 OK", sized(65536)), ans("200 OK", sized(1024 * 1024)), ans("200 OK", sized(1024 * 1024 + 1)),
  ans("205 Reset Content", "{" .. TOK .. "}"),
  ans("204 No Content", "{" .. TOK .. "}"),   -- last: a body libcurl may leave on the connection
}

-- The outcome of every answer of `answers` for a login by a client nobody logs for, and by
-- one with on_log.
local function both(answers, opts)
  local doubled = {}
  for i, a in ipairs(answers) do doubled[i], doubled[#answers + i] = a, a end
  local base = raw.serve(doubled, "attack9")
  local p = { realm = "email", username = "a@b.co", otp = "123456" }
  local fast, slow = {}, {}
  local o = { base_url = base, client_id = "emu-native", retries = 0, timeout = 10 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local c = auth0.new(o)
  for i = 1, #answers do fast[i] = outcome(c:passwordless_login(p)) end
  c:close()
  o.on_log = function() end
  c = auth0.new(o)
  for i = 1, #answers do slow[i] = outcome(c:passwordless_login(p)) end
  c:close()
  return fast, slow
end

describe("attack9: the fused decode against the general path", function()
  it("gives a login the same value or error for every hostile answer", function()
    local fast, slow = both(ANSWERS)
    local values = 0
    for i, a in ipairs(ANSWERS) do
      assert(same(fast[i], slow[i]), ("answer %d (%q) differs"):format(i, a:sub(1, 120)))
      if fast[i].value then values = values + 1 end
    end
    -- the fused path really ran on some: the first answer, with its Lua-significant keys
    assert.equal("x", fast[1].value.__index)
    assert.equal("one", fast[1].value["1"])
    assert.is_nil(fast[1].value[1])
    assert(values > 10 and values < #ANSWERS, "values: " .. values)
  end)

  it("never shows a token of a refused or failed answer in the error", function()
    local secret = "SeCrEt-refresh-0123456789"
    local bodies = { '{"refresh_token":"' .. secret .. '","expires_in":1}', '{"refresh_token":"' .. secret .. '","x":5}',
      '{"refresh_token":"' .. secret .. '","expires_in":"soon"}', '{"refresh_token":"' .. secret .. '","access_token":7}',
      '{"access_token":"' .. secret .. '","expires_in":1e400}', '{"access_token":"' .. secret .. '","scope":5}' }
    local answers = {}
    for i, b in ipairs(bodies) do answers[i] = ans("200 OK", b) end
    local fast, slow = both(answers)
    for i = 1, #bodies do
      assert(fast[i].err and slow[i].err, "answer " .. i .. " accepted")
      for _, o in ipairs { fast[i], slow[i] } do
        for k, v in pairs(o.err) do
          assert(not tostring(v):find(secret, 1, true), ("answer %d: err.%s shows the token"):format(i, k))
        end
      end
    end
  end)
end)

describe("attack9: a blocking call's retry deadline (client:started)", function()
  local server
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    assert(emu.control("POST", "/rate_limits", { enabled = false }))
  end)
  after_each(function() emu.control("DELETE", "/faults") end)

  -- The clock of a call long past must not be the deadline of the next: a stale started()
  -- would leave no time for any retry.
  it("counts from the fetch of this call, not of an earlier call or a callback call", function()
    local c = auth0.new { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native",
      timeout = 2.5, retries = 10, max_retry_wait = 2 }
    local _, err = c:userinfo("not-a-token")   -- an earlier blocking call: 401, no retry
    assert.equal("unauthorized", err.code)
    core.sleep(3)   -- longer than the timeout
    local cb_done = false
    assert(emu.control("POST", "/faults", { rules = {
      { kind = "delay", ms = 300, path = "/.well-known/openid-configuration" },
      { kind = "rate_limit", path = "/userinfo", retry_after = 1 } } }))
    c:openid_configuration(function() cb_done = true end)   -- a callback call in flight meanwhile
    local t0 = now()
    local v, e = c:userinfo("not-a-token")
    local took = now() - t0
    assert.is_nil(v)
    assert.equal("too_many_requests", e.code)
    local st = emu.control("GET", "/faults")
    assert(st.requests["/userinfo"] >= 2, "no retry: " .. tostring(st.requests["/userinfo"]))
    assert(took >= 1 and took <= 2.5 + 0.5, "took " .. took)
    while not cb_done do c:poll(100) end
    c:close()
  end)
end)

describe("attack9: a blocking call's retry deadline after a failed or raised call", function()
  -- A refused connection is retried (0.1 s, 0.2 s, ...) until the call's timeout: with the
  -- clock of a call made 1.5 s before (one that raised on a bad argument), none would be.
  for _, iot in ipairs { false, true } do
    it("counts from this call's fetch (io_thread " .. tostring(iot) .. ")", function()
      local sock = require("socket").bind("127.0.0.1", 0)
      local _, port = sock:getsockname()
      sock:close()   -- a port nobody listens on: connections are refused
      local seen = 0
      local c = auth0.new { base_url = "http://127.0.0.1:" .. port, client_id = "x", timeout = 1.2, retries = 10,
        max_retry_wait = 1, io_thread = iot,
        on_log = function(_, msg) if msg == "retrying" then seen = seen + 1 end end }
      assert.has_error(function() c:passwordless_start { connection = "email", email = "not an address" } end)
      -- a fetch that raises in C after reading the clock (a bearer that is not a string)
      assert.has_error(function() c._core:fetch("userinfo", nil, { fn = "userinfo", bearer = 5 }) end)
      core.sleep(1.5)
      local t0 = now()
      local v, err = c:userinfo("x")
      local took = now() - t0
      assert.is_nil(v)
      assert.equal("couldnt_connect", err.code)
      assert(seen >= 2, "retries: " .. seen)
      assert(took >= 0.25 and took <= 1.2 + 0.5, "took " .. took)
      c:close()
    end)
  end
end)

describe("attack9: the engine's short poll", function()
  local server
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    assert(emu.control("POST", "/rate_limits", { enabled = false }))
  end)
  after_each(function() emu.control("DELETE", "/faults") end)

  local function client(iot)
    return auth0.new { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native",
      io_thread = iot, timeout = 20, retries = 0 }
  end

  for _, iot in ipairs { false, true } do
    -- 10 ms polls while three transfers wait 3 s on a slow server are ~300 wakeups: a
    -- wait that spins would burn the whole 3 s of CPU.
    it(("does not spin while transfers wait for a slow server (io_thread %s), and a blocking call "
      .. "made meanwhile is answered at once"):format(tostring(iot)), function()
      assert(emu.control("POST", "/faults", { rules = { { kind = "delay", ms = 3000, path = "/passwordless/start" } } }))
      local c = client(iot)
      local done = 0
      for i = 1, 3 do
        c:passwordless_start({ connection = "email", email = ("u%d@example.com"):format(i), send = "code" },
          function(v, err) assert(v, tostring(err)); done = done + 1 end)
      end
      local cpu0, t0 = os.clock(), now()
      local v, err = c:userinfo("not-a-token")   -- no delay on this path
      assert.is_nil(v)
      assert.equal("unauthorized", err.code)
      assert(now() - t0 < 1, "the blocking call waited " .. (now() - t0))
      while done < 3 do c:poll(1000) end
      local wall, cpu = now() - t0, os.clock() - cpu0
      assert(wall >= 2.9 and wall < 6, "wall " .. wall)
      assert(cpu < 0.6, ("%.3f s of CPU in %.2f s"):format(cpu, wall))
      c:close()
    end)

    it(("answers 50 concurrent calls on one connection without waiting for a timeout (io_thread %s)")
      :format(tostring(iot)), function()
      local rules = {}
      for i = 1, 6 do rules[i] = { kind = "delay", ms = 40 * i, probability = 1 / (8 - i) } end
      assert(emu.control("POST", "/faults", { rules = rules, seed = 9 }))
      local c = client(iot)
      for _ = 1, 3 do
        local done, worst, t0 = 0, 0, now()
        for i = 1, 50 do
          c:passwordless_start({ connection = "email", email = ("u%d@example.com"):format(i), send = "code" },
            function(v, err) assert(v, tostring(err)); done = done + 1; worst = math.max(worst, now() - t0) end)
        end
        while done < 50 do c:poll(5000) end
        assert(worst < 0.24 + 0.75, "an answer took " .. worst)   -- the longest delay, and slack for load
      end
      assert.equal(1, c._core:stats().connects)
      c:close()
    end)
  end
end)

describe("attack9: the fused decode against the general path, through the emulator's faults", function()
  local server
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    assert(emu.control("POST", "/rate_limits", { enabled = false }))
  end)
  after_each(function() emu.control("DELETE", "/faults") end)

  -- A login's outcome with the tokens' values left out (each login mints its own).
  local function login(c, who)
    assert(c:passwordless_start { connection = "email", email = who })
    local out = emu.control("GET", "/__emulator/outbox?to=" .. core.pct_escape(who))
    local code = out.messages[#out.messages].code
    local v, err = c:passwordless_login { realm = "email", username = who, otp = code }
    if v then
      local kinds = {}
      for k, x in pairs(v) do kinds[k] = type(x) end
      return { kinds = kinds, expires_in = v.expires_in }
    end
    return { code = err.code, message = err.message, status = err.status }
  end

  it("gives a login the same outcome under every fault of the token answer", function()
    local faults = { { kind = "wrong_shape", variant = "array" }, { kind = "wrong_shape", variant = "strings" },
      { kind = "wrong_shape", variant = "nulls" }, { kind = "invalid_json" }, { kind = "truncate" },
      { kind = "huge_body" }, { kind = "close_after_headers" }, { kind = "http_503" }, false }
    local base = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 5, retries = 0 }
    local fast = auth0.new(base)
    base.on_log = function() end
    local slow = auth0.new(base)
    for i, f in ipairs(faults) do
      local rules = {}
      if f then f.path = "/oauth/token"; rules[1] = f end
      assert(emu.control("POST", "/faults", { rules = rules }))
      local a = login(fast, ("f%d@example.com"):format(i))
      local b = login(slow, ("s%d@example.com"):format(i))
      assert(same(a, b), ("fault %s %s: %s vs %s"):format(f and f.kind, f and f.variant,
        tostring(a.message or a.expires_in), tostring(b.message or b.expires_in)))
      if not f then assert.equal(86400, a.expires_in) end
      if f and f.variant == "strings" then assert.equal(86400, a.expires_in) end   -- tolerated by the general path
    end
    fast:close()
    slow:close()
  end)
end)

describe("attack9: check.email at its edges", function()
  local check = require "auth0.check"
  local AT = setmetatable({}, { __index = { fail = function(_, msg) error(msg, 0) end } })
  local function ok(v) return (pcall(check.email, AT, v)) end
  it("takes 254 bytes and refuses 255, and follows the rule at every edge", function()
    local dom = "@example.com"
    assert.is_true(ok(("a"):rep(254 - #dom) .. dom))
    assert.is_false(ok(("a"):rep(255 - #dom) .. dom))
    for _, v in ipairs { "", "@", "@a.b", "a.b@", "a@b.", "a@.b", "a@@b.c", "a@b@c.d", "a\0@b.c", "a@b.c\0",
      "a\127@b.c", "a@b.c\127", " a@b.c", "a@b.c ", "a@b", "a@b.c.", "\t@b.c" } do
      assert(not ok(v), ("took %q"):format(v))
    end
    for _, v in ipairs { "a@b.c", "\128@\255.\200", "a@b..c", "a@b.c.d", ".a@b.c", "a.@b.c", "a@-.c", "~!@?.#" } do
      assert(ok(v), ("refused %q"):format(v))
    end
    assert.has_error(function() check.email(AT, 5) end)
    assert.has_error(function() check.email(AT, nil) end)
  end)
end)

describe("attack9: core.kinds with a name listed twice", function()
  -- flat_fit checked such a name by its first kind only and took {"a":"x"}, which the
  -- checker refuses (a is not a number): the fused decode must take only what the checker takes.
  it("raises, naming the argument", function()
    local ok, err = pcall(core.kinds, { "a", "b", "a" }, { "string", "boolean", "number" })
    assert.is_false(ok)
    assert.matches("bad argument #1 to '[^']*' %(a field name is listed twice%)", err)   -- LuaJIT names it '?'
    local ck = core.kinds({ "a", "b" }, { "string", "number" })
    assert.same({ a = "x", b = 1 }, core.flat_fit('{"a":"x","b":1}', ck))
    assert.is_nil(core.flat_fit('{"a":"x","b":"1"}', ck))
    assert.same({ "b", "number" }, { ck { a = "x", b = "1" } })
  end)
end)

describe("attack9: a0_body_json_checked's plain pairs", function()
  -- Pairs written at once into the reserved room, beside pairs that need escapes and values
  -- longer than the first reservation: the body must decode to exactly the fields given.
  it("round-trips 5,000 random field sets through cjson", function()
    local cjson = require "cjson"
    local cc = core.client { base_url = "http://127.0.0.1:9" }
    local alphabet = { "a", "Z", '"', "\\", "\n", "\1", "\31", " ", "\195\169", "\127", "/", "{", "}", ",", ":", "\226\130\172" }
    math.randomseed(5)
    local function rnd(k)
      local t = {}
      for j = 1, math.random(0, k) do t[j] = alphabet[math.random(#alphabet)] end
      return table.concat(t)
    end
    for i = 1, 5000 do
      local f = { client_id = rnd(6), connection = rnd(4), email = rnd(8), send = rnd(3) }
      if i % 7 == 0 then f.client_id = ("x"):rep(math.random(200, 400)) end
      local r = cc:build("passwordless_start", f)
      local d = cjson.decode(r.body)
      for k, v in pairs(f) do assert(d[k] == v, ("%s: %q in %q"):format(k, v, r.body)) end
    end
    cc:close()
  end)
end)
