-- The OpenResty login gateway (examples/openresty) as deployed: two nginx instances with
-- `worker_processes 4` behind a third nginx balancing round-robin, all on loopback, in front of
-- the emulator (through a recording TLS proxy that counts the auth0-forwarded-for addresses it
-- sees). This Lua 5.4 process drives them with LuaSocket.
local socket = require "socket"
local http = require "socket.http"
local cjson = require("cjson.safe").new()
local auth0 = require "auth0"
local emu = require "spec.support.emulator"
local server = require "auth0.emulator.server"
local launch = dofile("examples/openresty/launch.lua")
local gw = require "spec.support.gateway"
local limit = dofile("examples/openresty/lua/example/limit.lua")

local core = auth0.core
local LOGINS = tonumber(os.getenv("A0_GATEWAY_LOGINS")) or 200
local SECRET = "emu-confidential-secret"

local srv, gw1, gw2, edge, work
local keys = {}   -- id -> 32 raw bytes

local exchange, post, jar = gw.exchange, gw.post, gw.jar

local function last_code(to)
  local out = emu.control("GET", "/outbox?to=" .. core.pct_escape(to))
  local m = out.messages[#out.messages]
  return m and m.code
end

local function seen(ip)
  local text = http.request(("http://127.0.0.1:%d/seen?ip=%s"):format(edge.rec_ctl, ip))
  return tonumber(text)
end

-- A cookie value sealed by the test itself (it holds the keys), as the gateway would.
local function sealed(kid, state)
  state.jti = state.jti or core.b64url_encode(core.random_bytes(12))
  return "auth0_session=" .. core.b64url_encode(core.seal(keys[kid], kid, assert(cjson.encode(state))))
end

describe("the OpenResty login gateway", function()
  setup(function()
    srv = emu.start()
    local me = server.self_pid()
    work = (io.popen("mktemp -d /tmp/auth0-gateway-spec.XXXXXX"):read("*l"))
    for _, id in ipairs { "k0", "k1", "k2" } do keys[id] = core.random_bytes(32) end
    -- k2 seals, k1 still opens (rotation), k0 is retired
    local key_env = "k2:" .. core.b64url_encode(keys.k2) .. ",k1:" .. core.b64url_encode(keys.k1)
    local rec_port = launch.free_port()
    local base = { base_url = "https://localhost:" .. rec_port, ca_file = srv.ca_file, owner_pid = me,
      client_id = "emu-confidential", workers = 4, log_level = "info",
      env = { AUTH0_CLIENT_SECRET = SECRET, AUTH0_GATEWAY_KEYS = key_env },
      options = "limit_ip = { 5, 60 }, limit_identifier = { 3, 600 }, poll_interval = 0.2,",
      server = "    add_header X-Gateway-Pid $pid always;\n" }
    local err
    gw1, err = launch.start(base)
    assert(gw1, err)
    gw2, err = launch.start(base)
    assert(gw2, err)
    edge = gw.start_edge(work .. "/edge", srv, gw1, gw2, rec_port)
  end)

  teardown(function()
    if edge and edge.pid then os.execute("kill " .. edge.pid .. " 2>/dev/null") end
    if gw1 then gw1:stop() end
    if gw2 then gw2:stop() end
    if work then os.execute("rm -rf '" .. work .. "'") end
  end)

  before_each(function()
    emu.reset()
    emu.control("POST", "/rate_limits", { enabled = false })
  end)

  it("logs in with an email code: state only in a Secure, HttpOnly, SameSite=Strict cookie", function()
    local r = post(gw1.port, "/login/start", { email = "alice@example.com" }, { ["X-Forwarded-For"] = "198.51.100.1" })
    assert.equal(200, r.status)
    assert.same({ code_sent = true }, r.body)
    local value = r.headers["set-cookie"]:match("^auth0_session=([%w_-]+); ")
    assert.is_string(value)
    assert.equal("auth0_session=" .. value .. "; Path=/login; Max-Age=600; Secure; HttpOnly; SameSite=Strict",
      r.headers["set-cookie"])
    -- sealed: neither the address nor the identifier can be read from it
    assert.is_nil(core.b64url_decode(value):find("alice", 1, true))
    assert.equal("k2", core.seal_key_id(core.b64url_decode(value)))
    assert.equal("no-store", r.headers["cache-control"])
    local v = post(gw2.port, "/login/verify", { code = last_code("alice@example.com") },
      { Cookie = jar(r), ["X-Forwarded-For"] = "198.51.100.1" })
    assert.equal(200, v.status)
    assert.equal("Bearer", v.body.token_type)
    assert.is_string(v.body.access_token)
    assert.equal("auth0_session=; Path=/login; Max-Age=0; Secure; HttpOnly; SameSite=Strict", v.headers["set-cookie"])
    -- the end user's address reached Auth0 as auth0-forwarded-for: the start and the token grant
    assert.equal(2, seen("198.51.100.1"))
  end)

  it("completes concurrent MFA logins (TOTP, and push for every 4th) whose steps land on different workers and nodes",
      function()
    emu.control("POST", "/mfa", { poll_min_interval = 0 })
    local users = {}
    for i = 1, LOGINS do
      local email = ("c%d@example.com"):format(i)
      local user = emu.control("POST", "/users", { connection = "email", email = email, mfa = true })
      local push = i % 4 == 0
      local a, st = emu.control("POST", "/mfa/authenticators", { user_id = user.user_id, type = push and "push" or "otp" })
      assert.equal(200, st)
      users[i] = { email = email, secret = a.authenticator.secret, push = push,
        ip = ("10.0.%d.%d"):format(math.floor(i / 250), i % 250 + 1), pids = {}, upstreams = {} }
    end
    -- the fake Guardian app: approves every pending push challenge while a step is in flight
    local approved, last = 0, 0
    local function guardian()
      if socket.gettime() - last < 0.2 then return end
      last = socket.gettime()
      for _, tx in ipairs(emu.control("GET", "/guardian").transactions or {}) do
        if tx.state == "pending" then
          emu.control("POST", "/guardian/" .. tx.oob_code .. "/approve")
          approved = approved + 1
        end
      end
    end
    -- Every step of every login goes to the other node than the step before (the edge's
    -- X-Node header; the order in which nginx reads 200 concurrent connections is not the order
    -- they were sent in, so round-robin alone only made most logins cross nodes, most of the
    -- time). One request without it (a GET, answered 405) still goes through the round-robin.
    local n_step = 0
    local function step(build, tick)
      n_step = n_step + 1
      local out, who = { { port = edge.port, path = "/login/start", method = "GET" } }, {}
      for _, u in ipairs(users) do
        local body = build(u)
        if body then
          out[#out + 1] = { port = edge.port, path = body.path, body = body.body,
            headers = { Cookie = u.cookie, ["X-Forwarded-For"] = u.ip, ["X-Node"] = tostring(n_step % 2 + 1) } }
          who[#who + 1] = u
        end
      end
      local t0 = socket.gettime()
      local res = exchange(out, tick)
      assert.equal(405, res[1].status)
      for i, u in ipairs(who) do
        local r = res[i + 1]
        assert.equal(200, r.status, u.email .. " " .. tostring(r.raw))
        u.cookie = jar(r) or u.cookie
        u.pids[#u.pids + 1] = r.headers["x-gateway-pid"]
        u.upstreams[r.headers["x-upstream"] or "?"] = true
        u.last = r.body
      end
      return socket.gettime() - t0
    end
    local elapsed = step(function(u) return { path = "/login/start", body = { email = u.email } } end)
    local codes = {}
    for _, m in ipairs(emu.control("GET", "/outbox").messages) do codes[m.to] = m.code end
    elapsed = elapsed + step(function(u) return { path = "/login/verify", body = { code = codes[u.email] } } end)
    for _, u in ipairs(users) do
      assert.is_true(u.last.mfa_required)
      for _, a in ipairs(u.last.authenticators) do
        if u.push and a.oob_channel == "auth0" or not u.push and a.authenticator_type == "otp" then u.mfa_id = a.id end
      end
      assert.is_string(u.mfa_id)
    end
    -- TOTP: a challenge, then the code; push: one request that polls until the app approves
    elapsed = elapsed + step(function(u) return { path = "/login/mfa", body = { authenticator_id = u.mfa_id } } end,
      guardian)
    elapsed = elapsed + step(function(u)
      if u.push then return nil end
      return { path = "/login/mfa", body = { code = auth0.totp(u.secret) } }
    end)
    assert.equal(math.floor(LOGINS / 4), approved)
    local cross_worker, cross_node = 0, 0
    for _, u in ipairs(users) do
      assert.is_string(u.last.access_token)
      local distinct = {}
      for _, pid in ipairs(u.pids) do distinct[pid] = true end
      if next(distinct, next(distinct)) then cross_worker = cross_worker + 1 end
      if next(u.upstreams, next(u.upstreams)) then cross_node = cross_node + 1 end
      -- the start, the code grant and the MFA grant (push: one grant per poll until approved)
      if u.push then assert.is_true(seen(u.ip) >= 3, u.ip) else assert.equal(3, seen(u.ip), u.ip) end
    end
    if os.getenv("A0_VERBOSE") then
      print(("\n%d MFA logins (TOTP 4 steps, push 3) through the edge: %.2f s; %d crossed workers, %d crossed nodes")
        :format(LOGINS, elapsed, cross_worker, cross_node))
    end
    -- every login went on, at each step, on the other node, hence in another worker
    assert.equal(LOGINS, cross_node)
    assert.equal(LOGINS, cross_worker)
  end)

  it("limits a burst from one address while another address still logs in", function()
    local hot = { ["X-Forwarded-For"] = "192.0.2.7" }
    for i = 1, 5 do
      assert.equal(200, post(gw1.port, "/login/start", { email = ("b%d@example.com"):format(i) }, hot).status)
    end
    local r = post(gw1.port, "/login/start", { email = "b6@example.com" }, hot)
    assert.equal(429, r.status)
    assert.same({ error = "too_many_requests", error_description = "too many logins from this address; retry later" }, r.body)
    -- the approximated sliding window may ask for up to window * (1 + 1/limit) = 72 s
    local wait = tonumber(r.headers["retry-after"])
    assert.is_true(wait >= 1 and wait <= 72, tostring(r.headers["retry-after"]))
    assert.equal(5, seen("192.0.2.7"))   -- the refused start never reached Auth0
    -- another address on the same node (another worker, probably) still logs in
    local other = { ["X-Forwarded-For"] = "192.0.2.8" }
    r = post(gw1.port, "/login/start", { email = "b6@example.com" }, other)
    assert.equal(200, r.status)
    local v = post(gw1.port, "/login/verify", { code = last_code("b6@example.com") },
      { Cookie = jar(r), ["X-Forwarded-For"] = "192.0.2.8" })
    assert.equal(200, v.status)
    assert.is_string(v.body.id_token)
  end)

  it("limits verification attempts per address", function()
    local hot = { ["X-Forwarded-For"] = "192.0.2.90" }
    for _ = 1, 30 do assert.equal(400, post(gw2.port, "/login/verify", { code = "123456" }, hot).status) end
    local r = post(gw2.port, "/login/mfa", { code = "123456" }, hot)
    assert.equal(429, r.status)
    assert.equal("too many attempts from this address; retry later", r.body.error_description)
    assert.is_true(tonumber(r.headers["retry-after"]) >= 1)
    assert.equal(400, post(gw2.port, "/login/verify", { code = "123456" }, { ["X-Forwarded-For"] = "192.0.2.91" }).status)
  end)

  it("limits the codes sent to one identifier whatever the address (SMS pumping)", function()
    for i = 1, 3 do
      local r = post(gw2.port, "/login/start", { phone_number = "+15550009999" }, { ["X-Forwarded-For"] = "203.0.113." .. i })
      assert.equal(200, r.status)
    end
    local r = post(gw2.port, "/login/start", { phone_number = "+15550009999" }, { ["X-Forwarded-For"] = "203.0.113.4" })
    assert.equal(429, r.status)
    assert.equal("too many logins for this phone number; retry later", r.body.error_description)
    assert.is_true(tonumber(r.headers["retry-after"]) >= 1)
    assert.equal(3, #emu.control("GET", "/outbox?to=" .. core.pct_escape("+15550009999")).messages)
  end)

  it("passes Auth0's 429 on with Retry-After, and logs each Auth0 failure at warn without secrets", function()
    emu.control("POST", "/faults", { rules = { { kind = "rate_limit", path = "/passwordless/start", variant = "none" } } })
    local r = post(gw1.port, "/login/start", { email = "rl@example.com" }, { ["X-Forwarded-For"] = "192.0.2.50" })
    emu.control("DELETE", "/faults")
    assert.equal(429, r.status)
    assert.equal("too_many_requests", r.body.error)
    assert.equal("60", r.headers["retry-after"])
    r = post(gw1.port, "/login/start", { email = "wrong@example.com" }, { ["X-Forwarded-For"] = "192.0.2.51" })
    local v = post(gw1.port, "/login/verify", { code = "000000" }, { Cookie = jar(r), ["X-Forwarded-For"] = "192.0.2.51" })
    assert.equal(403, v.status)
    assert.equal("invalid_grant", v.body.error)
    socket.sleep(0.1)
    local log = gw1:log()
    assert.matches("%[warn%][^\n]*auth0 failure: step=start code=too_many_requests status=429 request_id=", log)
    assert.matches("%[warn%][^\n]*auth0 failure: step=verify code=invalid_grant status=403 request_id=[%w-]+", log)
    local all = log .. gw2:log()
    assert.is_nil(all:find("mfa_token", 1, true))
    assert.is_nil(all:find("eyJ", 1, true))
    assert.is_nil(all:find(SECRET, 1, true))
    assert.is_nil(all:find("auth0_session=", 1, true))
  end)

  describe("hostile requests", function()
    local function expect400(r, msg)
      assert.equal(400, r.status, r.raw)
      assert.same({ error = "invalid_request", error_description = msg }, r.body)
    end

    it("answers malformed and wrongly typed bodies with 400 naming the field", function()
      local p = gw1.port
      expect400(post(p, "/login/start", "{"), "the body must be a JSON object")
      expect400(post(p, "/login/start", "[1,2]"), "the body must be a JSON object")
      expect400(post(p, "/login/start", ""), "a JSON body is required")
      expect400(post(p, "/login/start", { email = cjson.null }), "email must be a string, got null")
      expect400(post(p, "/login/start", '{"email": 5}'), "email must be a string, got number")
      expect400(post(p, "/login/start", '{"phone_number": {"a": 1}}'), "phone_number must be a string, got object")
      expect400(post(p, "/login/start", '{"email": true}'), "email must be a string, got boolean")
      expect400(post(p, "/login/start", { email = "" }), "email must be 1 to 320 characters")
      expect400(post(p, "/login/start", { email = "a@b.co", phone_number = "+15550001" }), "give email or phone_number, not both")
      expect400(post(p, "/login/start", {}), "email or phone_number is required")
      expect400(post(p, "/login/start", { email = "not an email" }), "email is malformed")
      expect400(post(p, "/login/verify", '{"code": 123456}'), "code must be a string, got number")
      expect400(post(p, "/login/verify", {}), "code is required")
      expect400(post(p, "/login/mfa", '{"authenticator_id": [1]}'), "authenticator_id must be a string, got array")
      local r = post(p, "/login/start", nil, nil, { method = "GET" })
      assert.equal(405, r.status)
      assert.equal("POST", r.headers.allow)
      -- nginx's own refusal of an oversized cookie header is JSON too
      r = post(p, "/login/verify", { code = "1" }, { Cookie = "auth0_session=" .. ("A"):rep(9000) })
      assert.equal(400, r.status)
      assert.same({ error = "invalid_request", error_description = "malformed HTTP request or headers too large" }, r.body)
      r = post(p, "/login/start", { email = "form@example.com" }, { ["Content-Type"] = "text/plain" })
      assert.equal(415, r.status)
      assert.same({ error = "invalid_request", error_description = "Content-Type must be application/json" }, r.body)
    end)

    it("answers a flood from one address with JSON 429 and Retry-After before any Lua runs", function()
      local reqs = {}
      for i = 1, 160 do
        reqs[i] = { port = gw2.port, path = "/login/start", body = "{", headers = { ["X-Forwarded-For"] = "192.0.2.99" } }
      end
      local limited = 0
      for _, r in ipairs(exchange(reqs)) do
        if r.status == 429 then
          limited = limited + 1
          assert.equal("1", r.headers["retry-after"])
          assert.equal("too_many_requests", r.body.error)
        else
          assert.equal(400, r.status)
        end
      end
      assert.is_true(limited > 0, "no request was limited")
    end)

    it("reads bodies nginx buffered to a file, and answers JSON 413 over the limit", function()
      local pad = ("x"):rep(12000)   -- over client_body_buffer_size (8k): nginx writes a temp file
      local r = post(gw2.port, "/login/start", '{"email": "big@example.com", "pad": "' .. pad .. '"}',
        { ["X-Forwarded-For"] = "192.0.2.60" })
      assert.equal(200, r.status, r.raw)
      assert.same({ code_sent = true }, r.body)
      r = post(gw2.port, "/login/start", '{"email": "big2@example.com", "pad": "' .. pad .. '"}',
        { ["X-Forwarded-For"] = "192.0.2.61" }, { chunked = true })
      assert.equal(200, r.status, r.raw)
      for _, chunked in ipairs { false, true } do
        r = post(gw2.port, "/login/start", '{"email": "huge@example.com", "pad": "' .. ("x"):rep(20000) .. '"}',
          nil, { chunked = chunked })
        assert.equal(413, r.status, r.raw)
        assert.same({ error = "too_large", error_description = "the body is larger than 16384 bytes" }, r.body)
        assert.equal("application/json", r.headers["content-type"])
      end
    end)

    it("refuses tampered, expired, retired-key, replayed and missing state with 400 and a fresh start", function()
      local function refused(r)
        assert.equal(400, r.status, r.raw)
        assert.same({ error = "invalid_session", error_description = "no valid login in progress; start again" }, r.body)
        assert.equal("auth0_session=; Path=/login; Max-Age=0; Secure; HttpOnly; SameSite=Strict", r.headers["set-cookie"])
      end
      local ip = { ["X-Forwarded-For"] = "192.0.2.70" }
      local r = post(gw1.port, "/login/start", { email = "eve@example.com" }, ip)
      local c = jar(r)
      local code = last_code("eve@example.com")
      -- one flipped character anywhere in the envelope
      local value = c:match("=(.*)$")
      local mid = math.floor(#value / 2)
      local flipped = value:sub(1, mid - 1) .. (value:sub(mid, mid) == "A" and "B" or "A") .. value:sub(mid + 1)
      refused(post(gw1.port, "/login/verify", { code = code }, { Cookie = "auth0_session=" .. flipped }))
      refused(post(gw1.port, "/login/verify", { code = code }, { Cookie = "auth0_session=" .. value:sub(1, -3) }))
      refused(post(gw1.port, "/login/verify", { code = code }, { Cookie = "auth0_session=%%%" }))
      refused(post(gw1.port, "/login/verify", { code = code }, {}))
      -- sealed with a retired key, and expired under a current one
      local state = { realm = "email", username = "eve@example.com", exp = os.time() + 600 }
      refused(post(gw1.port, "/login/verify", { code = code }, { Cookie = sealed("k0", state) }))
      refused(post(gw1.port, "/login/verify", { code = code }, { Cookie = sealed("k2", { realm = "email",
        username = "eve@example.com", exp = os.time() - 1 }) }))
      -- the untouched cookie still works (none of the above consumed the code) ...
      local v = post(gw1.port, "/login/verify", { code = code }, { Cookie = c })
      assert.equal(200, v.status)
      -- ... once: a replay on the same node is refused, on the other Auth0 refuses the used code
      refused(post(gw1.port, "/login/verify", { code = code }, { Cookie = c }))
      r = post(gw2.port, "/login/verify", { code = code }, { Cookie = c })
      assert.equal(403, r.status)
      assert.is_nil(r.body.access_token)
    end)

    it("opens state sealed with an older key still in the list (rotation)", function()
      local r = post(gw2.port, "/login/start", { email = "rot@example.com" }, { ["X-Forwarded-For"] = "192.0.2.80" })
      assert.equal(200, r.status)
      local cookie = sealed("k1", { realm = "email", username = "rot@example.com", exp = os.time() + 600 })
      local v = post(gw1.port, "/login/verify", { code = last_code("rot@example.com") }, { Cookie = cookie })
      assert.equal(200, v.status)
      assert.is_string(v.body.access_token)
    end)
  end)
end)

describe("the gateway's sliding-window limiter", function()
  -- an in-memory stand-in for ngx.shared.DICT's incr/get (the real one runs in the tests above)
  local function dict()
    local t = {}
    return {
      incr = function(_, k, by, init) t[k] = (t[k] or init) + by; return t[k] end,
      get = function(_, k) return t[k] end,
    }
  end

  it("allows `limit` hits per window and tells how long to wait", function()
    local d = dict()
    for i = 1, 3 do assert.is_true((limit.hit(d, "k", 3, 60, 600 + i))) end
    local ok, wait = limit.hit(d, "k", 3, 60, 610)
    assert.is_false(ok)
    -- all three hits fall in window [600, 660): one fits again once that window has faded
    -- enough inside the next one: 50 s to its end, then 60 * (1 - 2/3) = 20 s
    assert.equal(70, wait)
    assert.is_false((limit.hit(d, "k", 3, 60, 679)))
    assert.is_true((limit.hit(d, "k", 3, 60, 681)))
    -- a refused hit is not counted
    assert.is_false((limit.hit(d, "k", 3, 60, 682)))
    assert.is_true((limit.hit(d, "k", 3, 60, 705)))
  end)
end)
