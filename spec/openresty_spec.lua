-- The cosocket transport (auth0.transport.ngx) and the OpenResty example API, end to end:
-- this Lua 5.4 process starts the emulator and two example nginx servers and talks HTTP to
-- them with LuaSocket. Server "api" is the example plus test-only locations, a fake upstream
-- (plain HTTP, misbehaving on demand) and a slow TLS proxy; server "slow" is the unmodified
-- example whose Auth0 is that slow proxy.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require("cjson.safe").new()
local auth0 = require "auth0"
local emu = require "spec.support.emulator"
local server = require "auth0.emulator.server"
local launch = dofile("examples/openresty/launch.lua")

local DELAY = 0.2     -- seconds the slow proxy waits before forwarding each call
local LOGINS = 50

local srv, api, slow, work
local fake_port, slow_port

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- A helper file both test locations run: one client call described by the query string,
-- answered as JSON { ok, result, code, message, status }.
local CALL = [[
local auth0 = require "auth0"
local cjson = require("cjson.safe").new()
local args = ngx.req.get_uri_args()
local base = args.base
local opts = { server_name = args.server_name, insecure_skip_verify = args.insecure == "1", pool = args.pool }
local host = base:match("^https?://([^:/]+)")
local transport = require("auth0.transport.ngx").new({ base_url = base, host = host,
  timeout = tonumber(args.timeout) or 5, connect_timeout = 2 }, opts)
local c = auth0.new { base_url = base, client_id = "emu-native", transport = transport, sleep = ngx.sleep,
  retries = 0, timeout = tonumber(args.timeout) or 5, insecure_skip_verify = opts.insecure_skip_verify }
local out = {}
for i = 1, tonumber(args.n) or 1 do
  local r, err = c:passwordless_start { connection = "email", email = (args.mode or "ok") .. "@example.com" }
  out[i] = { ok = r ~= nil, result = r, code = err and err.code, message = err and err.message,
             status = err and err.status }
end
ngx.header["content-type"] = "application/json"
ngx.print(cjson.encode(#out == 1 and out[1] or out))
]]

-- Runs a client call with cosockets unavailable; the answer is "code|message".
local PHASE = [[
local auth0 = require "auth0"
local c = auth0.new { base_url = "%s", client_id = "emu-native", retries = 0 }
local r, err = c:passwordless_start { connection = "email", email = "phase@example.com" }
return r and "ok|" or (tostring(err.code) .. "|" .. tostring(err.message))
]]

-- The fake upstream: the email's local part picks the behaviour.
local FAKE = [[
ngx.req.read_body()
local body = ngx.req.get_body_data() or ""
local mode = body:match('"email":"([^@"]+)@') or "ok"
local ok_json = '{"_id":"0123456789abcdef01234567","email":"' .. mode .. '@example.com","email_verified":false}'
local function raw(bytes)
  local sock = assert(ngx.req.socket(true))
  if bytes ~= "" then sock:send(bytes) end
  return ngx.exit(ngx.OK)
end
if mode == "chunked" then
  ngx.header["content-type"] = "application/json"
  for i = 1, #ok_json, 7 do ngx.print(ok_json:sub(i, i + 6)); ngx.flush(true) end
elseif mode == "big" then
  ngx.header["content-type"] = "application/json"
  ngx.header["content-length"] = 2 * 1024 * 1024
  ngx.print(string.rep(" ", 2 * 1024 * 1024))
elseif mode == "bigchunked" then
  ngx.header["content-type"] = "application/json"
  for _ = 1, 32 do ngx.print(string.rep(" ", 65536)); ngx.flush(true) end
elseif mode == "garbage" then
  return raw("this is not HTTP\r\n\r\n")
elseif mode == "nothing" then
  return raw("")
elseif mode == "truncated" then
  return raw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"_id\"")
elseif mode == "badchunk" then
  return raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
elseif mode == "close" then
  return raw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" .. ok_json)
elseif mode == "continue" then
  return raw("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    .. "X-Auth0-RequestId: req-1\r\nCONTENT-LENGTH: " .. #ok_json .. "\r\n\r\n" .. ok_json)
elseif mode == "slow" then
  ngx.sleep(3)
  ngx.print(ok_json)
elseif mode == "conn" then
  -- which request on this connection: 1, 2, 3 when the client keeps it alive
  ngx.header["content-type"] = "application/json"
  ngx.print('{"_id":"' .. ngx.var.connection_requests .. '","email":"conn@example.com"}')
else
  ngx.header["content-type"] = "application/json"
  ngx.print(ok_json)
end
]]

-- Misuse of the cosocket transport's options, directly and through auth0.new: each pcall's
-- message, as JSON { name = message }.
local MISUSE = [==[
local cjson = require("cjson.safe").new()
local auth0 = require "auth0"
local ngxt = require "auth0.transport.ngx"
local base, out = "https://localhost:1", {}
local function try(name, fn) local ok, err = pcall(fn); out[name] = ok and "ok" or tostring(err) end
local cfg = { base_url = base, host = "localhost" }
try("pool_nan", function() ngxt.new(cfg, { pool_size = 0 / 0 }) end)
try("opts", function() ngxt.new(cfg, "x") end)
try("keepalive_nan", function() ngxt.new(cfg, { keepalive_timeout = 0 / 0 }) end)
try("new_keepalive_inf", function() auth0.new { base_url = base, client_id = "c", transport = "ngx", keepalive_timeout = math.huge } end)
try("new_pool_ninf", function() auth0.new { base_url = base, client_id = "c", transport = "ngx", pool_size = -math.huge } end)
try("new_server_name", function() auth0.new { base_url = base, client_id = "c", transport = "ngx", server_name = "a b" } end)
ngx.print(cjson.encode(out))
]==]

local function http_post(base, path, body, headers)
  local data = type(body) == "string" and body or assert(cjson.encode(body))
  local chunks = {}
  local h = { ["content-type"] = "application/json", ["content-length"] = tostring(#data) }
  for k, v in pairs(headers or {}) do h[k] = v end
  local ok, status, rh = http.request {
    url = base .. path, method = "POST", headers = h,
    source = ltn12.source.string(data), sink = ltn12.sink.table(chunks),
  }
  assert(ok, "request to " .. path .. " failed: " .. tostring(status))
  local text = table.concat(chunks)
  return status, cjson.decode(text) or text, rh
end

-- The login state travels in the sealed auth0_session cookie only.
local COOKIE_ATTRS = "; Path=/login; Max-Age=600; Secure; HttpOnly; SameSite=Strict"
local CLEARED = "auth0_session=; Path=/login; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
local function session_of(headers)
  local v = (headers or {})["set-cookie"]
  return v and v:match("^auth0_session=([^;]+)" .. COOKIE_ATTRS:gsub("%p", "%%%0") .. "$")
end
local function with(sid) return { cookie = "auth0_session=" .. sid } end
local INVALID = { error = "invalid_session", error_description = "no valid login in progress; start again" }

local function http_get(url)
  local text, status = http.request(url)
  assert(text, "request to " .. url .. " failed: " .. tostring(status))
  return cjson.decode(text) or text, status
end

local function last_code(to)
  local out = emu.control("GET", "/outbox?to=" .. auth0.core.pct_escape(to))
  local m = out.messages[#out.messages]
  return m and m.code
end

local function call(query)
  local parts = {}
  for k, v in pairs(query) do parts[#parts + 1] = k .. "=" .. auth0.core.pct_escape(tostring(v)) end
  table.sort(parts)
  local r, status = http_get(api.url .. "/__test/call?" .. table.concat(parts, "&"))
  assert.equal(200, status)
  return r
end

-- Sends every request on its own connection at once, then collects the answers with select:
-- the client side of the concurrency test. Returns { {status, body}, ... } in request order.
local function post_many(port, reqs)
  local conns, by_sock = {}, {}
  for i, r in ipairs(reqs) do
    local data = assert(cjson.encode(r.body))
    local s = assert(socket.tcp())
    s:settimeout(5)
    assert(s:connect("127.0.0.1", port))
    assert(s:send(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s"
      .. "Content-Length: %d\r\nConnection: close\r\n\r\n%s"):format(r.path,
        r.sid and ("Cookie: auth0_session=" .. r.sid .. "\r\n") or "", #data, data)))
    s:settimeout(0)
    conns[i] = { sock = s, parts = {} }
    by_sock[s] = conns[i]
  end
  local open, deadline = #conns, socket.gettime() + 30
  while open > 0 and socket.gettime() < deadline do
    local waiting = {}
    for _, c in ipairs(conns) do if not c.done then waiting[#waiting + 1] = c.sock end end
    local ready = socket.select(waiting, nil, 1)
    for _, s in ipairs(ready) do
      local c = by_sock[s]
      local data, err, partial = s:receive(65536)
      c.parts[#c.parts + 1] = data or partial or ""
      if err == "closed" then
        c.done, open = true, open - 1
        s:close()
      end
    end
  end
  local out = {}
  for i, c in ipairs(conns) do
    if not c.done then c.sock:close() end
    local text = table.concat(c.parts)
    local status = tonumber(text:match("^HTTP/1%.%d (%d+)"))
    local head = text:match("^(.-)\r\n\r\n") or ""
    out[i] = { status = status, body = cjson.decode(text:match("\r\n\r\n(.*)$") or ""),
      sid = head:match("\r\n[Ss]et%-[Cc]ookie: auth0_session=([^;\r]+)") }
  end
  return out
end

describe("OpenResty transport and example", function()
  setup(function()
    srv = emu.start()
    local me = server.self_pid()
    work = (io.popen("mktemp -d /tmp/auth0-openresty-spec.XXXXXX"):read("*l"))
    write(work .. "/call.lua", CALL)
    write(work .. "/phase.lua", PHASE:format("https://localhost:" .. srv.port))
    write(work .. "/fake.lua", FAKE)
    write(work .. "/misuse.lua", MISUSE)
    -- a trust store without the emulator's CA: one unrelated self-signed certificate
    assert(os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      .. " -keyout %s/other.key -out %s/other.pem -days 2 -subj /CN=other >/dev/null 2>&1"):format(work, work)))
    fake_port, slow_port = launch.free_port(), launch.free_port()
    local conf = srv.prefix .. "/conf"
    -- The slow upstream for the concurrency test lives in the test's nginx, not in the
    -- emulator (which has no delay knob) nor in the example (which must stay as shipped): a TLS
    -- server with the emulator's own certificate that sleeps DELAY s (ngx.sleep, so it never
    -- serializes requests itself) and then proxy_passes to the emulator.
    local http_extra = ([[
  lua_shared_dict auth0_sessions 1m;   # the test locations' results (the example keeps no state)
  server {
    listen 127.0.0.1:%d;
    location / { content_by_lua_file %s/fake.lua; }
  }
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s/server.pem;
    ssl_certificate_key %s/server.key;
    keepalive_requests 100000;
    location / {
      access_by_lua_block { ngx.sleep(%s) }
      proxy_pass https://127.0.0.1:%d;
      proxy_http_version 1.1;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_trusted_certificate %s;
    }
  }
]]):format(fake_port, work, slow_port, conf, conf, DELAY, srv.port, srv.ca_file)
    local server_extra = ([[
    location = /__test/call { content_by_lua_file %s/call.lua; }
    location = /__test/misuse { content_by_lua_file %s/misuse.lua; }
    location = /__test/untrusted {
      lua_ssl_trusted_certificate %s/other.pem;
      content_by_lua_file %s/call.lua;
    }
    location = /__test/set_phase {
      set_by_lua_file $auth0_result %s/phase.lua;
      content_by_lua_block { ngx.print(ngx.var.auth0_result) }
    }
    location = /__test/log_phase {
      content_by_lua_block { ngx.print("ok") }
      log_by_lua_block { ngx.shared.auth0_sessions:set("test:log", dofile("%s/phase.lua")) }
    }
    location = /__test/result {
      content_by_lua_block { ngx.print(ngx.shared.auth0_sessions:get("test:" .. ngx.var.arg_phase) or "none") }
    }
]]):format(work, work, work, work, work, work)
    local init_worker = ([[
    ngx.shared.auth0_sessions:set("test:init_worker", dofile("%s/phase.lua"))
]]):format(work)
    local err
    -- every login here comes from 127.0.0.1: the gateway's limits (spec/gateway_spec.lua) are off
    local no_limits = "limit_ip = false, limit_identifier = false, limit_global = false, limit_verify = false,"
    api, err = launch.start { base_url = "https://localhost:" .. srv.port, ca_file = srv.ca_file,
      owner_pid = me, http = http_extra, server = server_extra, init_worker = init_worker, options = no_limits }
    assert(api, err)
    slow, err = launch.start { base_url = "https://localhost:" .. slow_port, ca_file = srv.ca_file, owner_pid = me,
      options = no_limits }
    assert(slow, err)
  end)

  teardown(function()
    if slow then slow:stop() end
    if api then api:stop() end
    if work then os.execute("rm -rf '" .. work .. "'") end
  end)

  before_each(function()
    emu.reset()
    emu.control("POST", "/rate_limits", { enabled = false })
  end)

  -- issue 11: the transport raised "auth0: pool_size ..." where the library raises luaL_argerror's form
  it("raises on misuse of its options in luaL_argerror's form, NaN and inf included", function()
    local r = http_get(api.url .. "/__test/misuse")
    local function msg(k) return (r[k]:gsub("^[^:]+:%d+: ", "")) end
    for k in pairs(r) do assert.matches("misuse%.lua:%d+: ", r[k], k) end   -- at the caller's line
    assert.equal("bad argument #2 to 'new' (pool_size must be an integer in 1..100000)", msg("pool_nan"))
    assert.equal("bad argument #2 to 'new' (table expected, got string)", msg("opts"))
    assert.equal("bad argument #2 to 'new' (keepalive_timeout must be a number of seconds in (0, 86400])",
      msg("keepalive_nan"))
    assert.equal("bad argument #1 to 'new' (keepalive_timeout must be a number of seconds in (0, 86400])",
      msg("new_keepalive_inf"))
    assert.equal("bad argument #1 to 'new' (pool_size must be an integer in 1..100000)", msg("new_pool_ninf"))
    assert.equal("bad argument #1 to 'new' (server_name must be a non-empty string without spaces)",
      msg("new_server_name"))
  end)

  describe("the example API", function()
    it("logs in with an email code", function()
      local status, r, headers = http_post(api.url, "/login/start", { email = "alice@example.com" })
      assert.equal(200, status)
      assert.same({ code_sent = true }, r)   -- the session is in the cookie only
      local sid = session_of(headers)
      assert.matches("^[%w_-]+$", sid)
      local code = last_code("alice@example.com")
      assert.matches("^%d%d%d%d%d%d$", code)
      local vstatus, tokens, vh = http_post(api.url, "/login/verify", { code = code }, with(sid))
      assert.equal(200, vstatus)
      assert.equal(CLEARED, vh["set-cookie"])
      assert.equal("Bearer", tokens.token_type)
      assert.equal(86400, tokens.expires_in)
      assert.equal("openid profile email", tokens.scope)
      assert.is_string(tokens.access_token)
      -- the id token is genuine: check it with the libcurl client
      local c = auth0.new { base_url = srv.base_url, ca_file = srv.ca_file, client_id = "emu-native" }
      local claims = assert(c:verify_id_token(tokens.id_token))
      assert.equal("alice@example.com", claims.email)
      c:close()
      -- the session is gone once used (this node remembers it was replaced)
      local again, e = http_post(api.url, "/login/verify", { code = code }, with(sid))
      assert.equal(400, again)
      assert.same(INVALID, e)
    end)

    it("logs in with an SMS code, the session taken from the cookie", function()
      local status, _, h = http_post(api.url, "/login/start", { phone_number = "+15551234567" })
      assert.equal(200, status)
      local vstatus, tokens = http_post(api.url, "/login/verify", { code = last_code("+15551234567") },
        with(session_of(h)))
      assert.equal(200, vstatus)
      assert.is_string(tokens.id_token)
    end)

    it("passes Auth0's errors and rejects bad input", function()
      local _, _, h = http_post(api.url, "/login/start", { email = "bob@example.com" })
      local sid = session_of(h)
      local status, e = http_post(api.url, "/login/verify", { code = "000000" }, with(sid))
      assert.equal(403, status)
      assert.equal("invalid_grant", e.error)
      assert.equal("Wrong email or verification code.", e.error_description)
      status, e = http_post(api.url, "/login/start", { email = "not an email" })
      assert.equal(400, status)
      assert.same({ error = "invalid_request", error_description = "email is malformed" }, e)
      status, e = http_post(api.url, "/login/start", "{")
      assert.equal(400, status)
      assert.equal("the body must be a JSON object", e.error_description)
      status, e = http_post(api.url, "/login/verify", { code = "1" }, with("nope"))
      assert.equal(400, status)
      assert.same(INVALID, e)
      status, e = http_post(api.url, "/login/mfa", { code = "123456" }, with(sid))
      assert.equal(400, status)
      assert.equal("no multi-factor step is pending for this login", e.error_description)
    end)

    -- the user has MFA on; returns the session after /login/verify and its answer
    local function mfa_login(email, enroll)
      local user = emu.control("POST", "/users", { connection = "email", email = email, mfa = true })
      local enrolled = {}
      for _, e in ipairs(enroll) do
        e.user_id = user.user_id
        local r, st = emu.control("POST", "/mfa/authenticators", e)
        assert.equal(200, st)
        enrolled[#enrolled + 1] = r
      end
      local _, _, h = http_post(api.url, "/login/start", { email = email })
      local status, v, vh = http_post(api.url, "/login/verify", { code = last_code(email) }, with(session_of(h)))
      assert.equal(200, status)
      assert.is_true(v.mfa_required)
      assert.is_nil(v.session)
      assert.is_nil(v.mfa_token)   -- the secret is only inside the sealed cookie
      local sid = session_of(vh)   -- the state moved on: a new cookie replaces the old one
      assert.is_string(sid)
      return sid, v, enrolled
    end

    local function find_type(list, t)
      for _, a in ipairs(list) do if a.authenticator_type == t then return a end end
    end

    it("completes an MFA login with a one-time password", function()
      local sid, v, enrolled = mfa_login("totp@example.com", { { type = "otp" } })
      local otp = find_type(v.authenticators, "otp")
      assert.equal(enrolled[1].authenticator.id, otp.id)
      local status, ch, ch_h = http_post(api.url, "/login/mfa", { authenticator_id = otp.id }, with(sid))
      assert.equal(200, status)
      assert.same({ challenge_type = "otp" }, ch)
      sid = session_of(ch_h) or sid
      status = http_post(api.url, "/login/mfa", { code = "000000" }, with(sid))
      assert.equal(403, status)
      local tokens
      status, tokens = http_post(api.url, "/login/mfa", { code = auth0.totp(enrolled[1].authenticator.secret) },
        with(sid))
      assert.equal(200, status)
      assert.is_string(tokens.access_token)
      local again, e = http_post(api.url, "/login/mfa", { code = "1" }, with(sid))
      assert.same({ 400, INVALID }, { again, e })
    end)

    it("completes an MFA login with an SMS code and with a recovery code", function()
      local sid, v = mfa_login("sms@example.com", { { type = "sms", phone_number = "+15550001111" } })
      local sms = find_type(v.authenticators, "oob")
      assert.equal("sms", sms.oob_channel)
      local status, ch, ch_h = http_post(api.url, "/login/mfa", { authenticator_id = sms.id }, with(sid))
      assert.equal(200, status)
      assert.same({ challenge_type = "oob", binding_method = "prompt" }, ch)
      sid = session_of(ch_h) or sid
      local out = emu.control("GET", "/outbox?to=" .. auth0.core.pct_escape("+15550001111"))
      local msg = out.messages[#out.messages]
      local tokens
      status, tokens = http_post(api.url, "/login/mfa", { code = msg.binding_code or msg.code }, with(sid))
      assert.equal(200, status)
      assert.is_string(tokens.access_token)

      local sid2, v2, enrolled = mfa_login("rc@example.com", { { type = "otp" } })
      local rc = find_type(v2.authenticators, "recovery-code")
      assert.is_table(rc, "no recovery-code authenticator listed")
      status, tokens = http_post(api.url, "/login/mfa", { authenticator_id = rc.id,
        code = enrolled[1].recovery_code }, with(sid2))
      assert.equal(200, status)
      assert.is_string(tokens.recovery_code)
    end)

    it("runs concurrent logins on one worker in parallel", function()
      -- every Auth0 call of the "slow" example waits DELAY s in the slow proxy: done one at
      -- a time, LOGINS logins (start + verify) would take LOGINS * 2 * DELAY = 20 s.
      local reqs = {}
      for i = 1, LOGINS do reqs[i] = { path = "/login/start", body = { email = "u" .. i .. "@example.com" } } end
      local t0 = socket.gettime()
      local started = post_many(slow.port, reqs)
      local t1 = socket.gettime()
      local out = emu.control("GET", "/outbox")
      local codes = {}
      for _, m in ipairs(out.messages) do codes[m.to] = m.code end
      for i = 1, LOGINS do
        assert.equal(200, started[i].status)
        reqs[i] = { path = "/login/verify", sid = started[i].sid, body = { code = codes["u" .. i .. "@example.com"] } }
      end
      local t2 = socket.gettime()
      local verified = post_many(slow.port, reqs)
      local t3 = socket.gettime()
      for i = 1, LOGINS do
        assert.equal(200, verified[i].status)
        assert.is_string(verified[i].body.access_token)
      end
      local elapsed = (t1 - t0) + (t3 - t2)
      if os.getenv("A0_VERBOSE") then print(("\n%d concurrent logins: %.2f s"):format(LOGINS, elapsed)) end
      assert.is_true(elapsed >= 2 * DELAY, "the slow proxy did not delay: " .. elapsed)
      assert.is_true(elapsed < LOGINS * 2 * DELAY / 5,
        ("%d logins took %.2f s; one at a time would take %.1f s"):format(LOGINS, elapsed, LOGINS * 2 * DELAY))
    end)
  end)

  describe("the cosocket transport", function()
    local emu_url
    before_each(function() emu_url = "https://localhost:" .. srv.port end)

    it("verifies the certificate and reuses the connection", function()
      local r = call { base = emu_url, mode = "x" }
      assert.is_true(r.ok)
      assert.equal("x@example.com", r.result.email)
      local list = call { base = "http://localhost:" .. fake_port, mode = "conn", n = 3 }
      assert.same({ "1", "2", "3" }, { list[1].result._id, list[2].result._id, list[3].result._id })
    end)

    it("fails with tls when the trust store lacks the CA", function()
      -- its own pool: a pooled connection (verified elsewhere) would skip the handshake
      local r, status = http_get(api.url .. "/__test/untrusted?pool=untrusted&base=" .. auth0.core.pct_escape(emu_url))
      assert.equal(200, status)
      assert.is_false(r.ok)
      assert.equal("tls", r.code)
      -- the reason is in the message, or only in nginx's log when resty.core raised (see ngx.lua)
      assert.matches("^TLS handshake with localhost:%d+ failed: .*verif", r.message)
      assert.matches("unable to .*certificate", api:log())
    end)

    it("fails with tls when the name does not match the certificate", function()
      local r = call { base = "https://127.0.0.1:" .. srv.port, server_name = "wrong.example" }
      assert.equal("tls", r.code)
      assert.matches("^TLS handshake with 127%.0%.0%.1:%d+ failed: ", r.message)
      assert.matches('certificate does not match host "wrong.example"', api:log(), 1, true)
      -- an address cannot be checked by nginx: refused rather than half verified
      r = call { base = "https://127.0.0.1:" .. srv.port }
      assert.equal("tls", r.code)
      assert.equal("cannot verify a certificate for the IP address 127.0.0.1 with cosockets;"
        .. " use a host name (e.g. localhost)", r.message)
      -- connecting by address while checking the right name works
      r = call { base = "https://127.0.0.1:" .. srv.port, server_name = "localhost" }
      assert.is_true(r.ok)
    end)

    it("maps connection failures and timeouts", function()
      local r = call { base = "http://localhost:" .. launch.free_port() }
      assert.equal("couldnt_connect", r.code)
      assert.matches("connection refused", r.message)
      local t0 = socket.gettime()
      r = call { base = "http://localhost:" .. fake_port, mode = "slow", timeout = 0.5 }
      assert.equal("timeout", r.code)
      assert.is_true(socket.gettime() - t0 < 2)
    end)

    it("reads chunked, close-delimited and 1xx-prefixed responses", function()
      for _, mode in ipairs { "chunked", "close", "continue" } do
        local r = call { base = "http://localhost:" .. fake_port, mode = mode }
        assert.is_true(r.ok, mode)
        assert.equal(mode .. "@example.com", r.result.email)
      end
    end)

    it("caps the body at 1 MiB and rejects garbage", function()
      local base = "http://localhost:" .. fake_port
      for mode, code in pairs { big = "too_large", bigchunked = "too_large", garbage = "bad_response",
                                nothing = "bad_response", truncated = "bad_response", badchunk = "bad_response" } do
        local r = call { base = base, mode = mode }
        assert.equal(code, r.code, mode)
      end
      assert.equal("response larger than 1048576 bytes", call { base = base, mode = "big" }.message)
      assert.equal("no HTTP status line", call { base = base, mode = "garbage" }.message)
    end)

    it("answers unavailable_phase where cosockets are not allowed", function()
      local r = http_get(api.url .. "/__test/set_phase")
      assert.equal("unavailable_phase|cosockets are not available in the set phase", r)
      assert.equal("unavailable_phase|cosockets are not available in the init_worker phase",
        http_get(api.url .. "/__test/result?phase=init_worker"))
      http_get(api.url .. "/__test/log_phase")
      socket.sleep(0.05)
      assert.equal("unavailable_phase|cosockets are not available in the log phase",
        http_get(api.url .. "/__test/result?phase=log"))
    end)

    it("never logs a secret", function()
      local log = api:log() .. slow:log()
      assert.is_nil(log:find("mfa_token", 1, true))
      assert.is_nil(log:find("access_token", 1, true))
      assert.is_nil(log:find("eyJ", 1, true))
    end)
  end)
end)
