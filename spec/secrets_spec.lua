-- No secret (OTP, binding or recovery code, mfa_token, access/refresh/ID token, client
-- secret, TOTP secret) reaches a log line, an error message, a tostring or a traceback.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"
local scenario = require "spec.support.secrets_scenario"

-- Everything a user or an operator could see, flattened to text.
local seen = {}
local function record(v, depth)
  depth = depth or 0
  if depth > 4 then return end
  if type(v) == "table" then
    local mt = getmetatable(v)
    if mt and mt.__tostring and not auth0.error.is(v) then -- objects show themselves via tostring
      seen[#seen + 1] = tostring(v)
      return
    end
    for k, x in pairs(v) do
      -- an error object's payload fields are for the program (err.mfa_token is the point);
      -- its message, code and tostring are what gets printed
      if not (auth0.error.is(v) and (k == "body" or k == "mfa_token" or k == "mfa_requirements")) then
        record(k, depth + 1)
        record(x, depth + 1)
      end
    end
  elseif v ~= nil then
    seen[#seen + 1] = tostring(v)
  end
end

local secrets = {}
-- Where a secret appears in a text. A one-time code (six to eight digits) counts only as a word
-- of its own: a hex request id holds some six-digit run by chance now and then, and a code
-- leaked by the library is always delimited (a JSON string, a form field, a message).
local function leak_at(text, s)
  if s:find("^%d%d%d%d%d%d%d?%d?$") then return text:find("%f[%w]" .. s .. "%f[%W]") end
  return text:find(s, 1, true)
end
local function secret(s)
  if type(s) == "string" and #s >= 6 then
    secrets[#secrets + 1] = s
    -- a JWT's header is shared by every token; its signature is what identifies it
    local sig = s:match("%.([%w_%-]+)$")
    if sig and #sig >= 16 then secrets[#secrets + 1] = sig end
  end
  return s
end

local function new_client(server, opts)
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native",
    on_log = function(level, message, fields) record(level); record(message); record(fields) end,
    on_callback_error = function(msg) record(msg) end }
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.ca_file == false then o.ca_file = nil end   -- pairs never sees a nil, so false removes it
  local c = auth0.new(o)
  record(c)
  return c
end

local function code_for(to)
  local out = emu.control("GET", "/__emulator/outbox?to=" .. auth0.core.pct_escape(to))
  return secret(out.messages[#out.messages].code)
end

local function check(r, err)
  record(r and "result" or "nil")
  if err then record(err); record(tostring(err)); record(err.message) end
  return r, err
end

describe("secrets", function()
  local server
  setup(function() server = emu.start() end)
  before_each(function() emu.reset(); seen, secrets = {}, {} end)

  after_each(function()
    local text = table.concat(seen, "\n")
    assert.is_true(#secrets > 0)
    for _, s in ipairs(secrets) do
      local at = leak_at(text, s)
      assert.is_nil(at, "secret leaked: ..." .. (at and text:sub(math.max(1, at - 60), at + 10) or ""))
    end
  end)

  it("passwordless success and error paths, refresh, revoke, userinfo", function()
    local c = new_client(server, { client_id = "emu-confidential", client_secret = secret("emu-confidential-secret") })
    check(c:passwordless_start { connection = "email", email = "s1@example.com" })
    local code = code_for("s1@example.com")
    local wrong = code == "000000" and "999999" or "000000"
    secret(wrong)
    check(c:passwordless_login { realm = "email", username = "s1@example.com", otp = wrong })
    local t = check(c:passwordless_login { realm = "email", username = "s1@example.com", otp = code,
      scope = "openid offline_access", audience = "https://api.example.com" })
    assert.is_table(t)
    secret(t.access_token); secret(t.id_token); secret(t.refresh_token)
    check(c:passwordless_login { realm = "email", username = "s1@example.com", otp = code }) -- used code
    check(c:refresh(t.refresh_token))
    check(c:userinfo(t.access_token))
    check(c:verify_id_token(t.id_token))
    check(c:verify_id_token(t.id_token:sub(1, -3) .. "xx")) -- bad signature
    check(c:revoke(t.refresh_token))
    check(c:refresh(t.refresh_token))
    check(c:userinfo(t.access_token .. "x"))
    record(c)
    c:close()
    record(c)
  end)

  it("callbacks, requests, tracebacks and an untrusted server", function()
    local c = new_client(server)
    check(c:passwordless_start { connection = "sms", phone_number = "+15550001111" })
    local code = code_for("+15550001111")
    local done = 0
    local req = c:passwordless_login({ realm = "sms", username = "+15550001111", otp = code }, function(t, err)
      check(t, err)
      secret(t.access_token); secret(t.id_token)
      done = done + 1
      error("callback failed holding " .. #t.access_token .. " bytes of token") -- traceback path
    end)
    record(req)
    while c:poll(50) > 0 do end
    record(req)
    assert.equal(1, done)
    -- a server we do not trust: the TLS error carries no secret either
    local untrusted = new_client(server, { ca_file = false })   -- false: no CA file (see new_client)
    local _, terr = check(untrusted:passwordless_login { realm = "sms", username = "+15550001111", otp = secret("424242") })
    assert.equal("tls", terr.code)
    -- a raised misuse error must not echo the value
    local ok, msg = pcall(c.passwordless_login, c, { realm = "sms", username = "+15550001111",
      otp = secret("1234567\0secretcode") })
    assert.is_false(ok)
    record(msg)
  end)

  it("MFA: mfa_token, TOTP secret, binding codes, recovery codes, push", function()
    local c = new_client(server, { sleep = function() end })
    local function login(email)
      check(c:passwordless_start { connection = "email", email = email })
      local _, err = check(c:passwordless_login { realm = "email", username = email, otp = code_for(email),
        scope = "openid offline_access" })
      assert.equal("mfa_required", err.code)
      return secret(err.mfa_token)
    end
    emu.control("POST", "/__emulator/users", { connection = "email", email = "m1@example.com", mfa = "always" })
    emu.control("POST", "/__emulator/mfa", { poll_min_interval = 0 })
    -- enroll TOTP: the secret, the URI and the recovery code are secrets
    local mt = login("m1@example.com")
    check(c:mfa_authenticators(mt))
    local enr = check(c:mfa_associate { token = mt, authenticator_types = { "otp" } })
    secret(enr.secret); secret(enr.barcode_uri); secret(enr.recovery_codes[1])
    check(c:mfa_verify { mfa_token = mt, otp = secret("000000") })             -- wrong code
    local t = check(c:mfa_verify { mfa_token = mt, otp = secret(auth0.totp(enr.secret)) })
    secret(t.access_token); secret(t.id_token); secret(t.refresh_token)
    -- recovery code: used, then reused (error path), rotated code secret
    mt = login("m1@example.com")
    t = check(c:mfa_verify { mfa_token = mt, recovery_code = enr.recovery_codes[1] })
    secret(t.recovery_code); secret(t.access_token)
    mt = login("m1@example.com")
    check(c:mfa_verify { mfa_token = mt, recovery_code = enr.recovery_codes[1] })
    -- SMS binding code
    emu.control("POST", "/__emulator/mfa/authenticators", { user_id = assert(c:userinfo(t.access_token)).sub,
      type = "sms", phone_number = "+15550002222" })
    mt = login("m1@example.com")
    local list = check(c:mfa_authenticators(mt))
    local sms
    for _, a in ipairs(list) do if a.oob_channel == "sms" then sms = a end end
    local ch = check(c:mfa_challenge { mfa_token = mt, challenge_type = "oob", authenticator_id = sms.id })
    secret(ch.oob_code)
    local out = emu.control("GET", "/__emulator/outbox?to=" .. auth0.core.pct_escape("+15550002222"))
    local binding = secret(out.messages[#out.messages].binding_code)
    check(c:mfa_verify { mfa_token = mt, oob_code = ch.oob_code, binding_code = "999999" ~= binding and "999999" or "888888" })
    t = check(c:mfa_verify { mfa_token = mt, oob_code = ch.oob_code, binding_code = binding })
    -- expired and malformed tokens
    check(c:mfa_challenge { mfa_token = mt, challenge_type = "oob" })
    check(c:mfa_authenticators("Fe26.2**" .. ("x"):rep(40)))
    -- push, rejected, through the blocking poller with logging on
    emu.control("POST", "/__emulator/mfa/authenticators", { user_id = assert(c:userinfo(t.access_token)).sub,
      type = "push", name = "phone" })
    mt = login("m1@example.com")
    local push
    for _, a in ipairs(check(c:mfa_authenticators(mt))) do if a.oob_channel == "auth0" then push = a end end
    ch = check(c:mfa_challenge { mfa_token = mt, challenge_type = "oob", authenticator_id = push.id })
    secret(ch.oob_code)
    emu.control("POST", "/__emulator/guardian/" .. ch.oob_code .. "/reject", {})
    local r, err = check(c:mfa_poll { mfa_token = mt, oob_code = ch.oob_code, interval = 0.01, timeout = 5,
      on_pending = function(w) record(w) end })
    assert.is_nil(r)
    assert.equal("access_denied", err.code)
  end)

  it("error objects raised from callbacks reach on_log and on_callback_error as text", function()
    -- every value handed to a sink, dumped whole (error objects included, no field skipped)
    local dump = {}
    local function deep(v, d)
      d = d or 0
      if type(v) == "table" then
        if d > 5 then return end
        for k, x in pairs(v) do deep(k, d + 1); deep(x, d + 1) end
      elseif v ~= nil then dump[#dump + 1] = tostring(v) end
    end
    local bad_fields, bad_msgs = {}, {}
    local function sink(_, message, fields)
      if type(message) ~= "string" then bad_fields[#bad_fields + 1] = "message " .. type(message) end
      for k, v in pairs(fields) do
        local t = type(v)
        if t ~= "string" and t ~= "number" and t ~= "boolean" then bad_fields[#bad_fields + 1] = k .. " " .. t end
      end
      deep(message); deep(fields)
    end
    -- default on_callback_error (through on_log), and a custom one
    local c = auth0.new { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native",
      on_log = sink, sleep = function() end }
    local c2 = auth0.new { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native",
      on_callback_error = function(msg)
        if type(msg) ~= "string" then bad_msgs[#bad_msgs + 1] = type(msg) end
        deep(msg)
      end }
    -- every kind of callback raises error objects, tables holding them and the flow itself
    local runs = scenario { clients = { c, c2 }, secret = secret, dump = deep,
      control = function(m, p, b) return emu.control(m, "/__emulator" .. p, b) end }
    assert.equal(12, runs)
    c:close(); c2:close()
    assert.same({}, bad_fields)
    assert.same({}, bad_msgs)
    local text = table.concat(dump, "\n")
    assert.truthy(text:find("mfa_required", 1, true))   -- the redacted tostring got through
    for _, s in ipairs(secrets) do
      local at = leak_at(text, s)
      assert.is_nil(at, "secret leaked through a callback error: ..." .. (at and text:sub(math.max(1, at - 300), at + 40) or ""))
    end
  end)

  it("the insecure option warns on every request", function()
    local warnings = 0
    local c = auth0.new { base_url = server.base_url, client_id = "emu-native", insecure_skip_verify = true,
      on_log = function(level, message) if level == "warn" and message:find("verification is OFF") then warnings = warnings + 1 end end }
    assert(c:passwordless_start { connection = "email", email = "i@example.com" })
    assert(c:passwordless_start { connection = "email", email = "i@example.com" })
    assert.equal(2, warnings)
    secret("unused-marker")
  end)
end)

-- The same callbacks inside a real nginx worker, on the cosocket transport (issue 11: the
-- OpenResty example's on_log JSON-encoded its fields, and a live mfa_token reached nginx's
-- error log). The worker's on_log writes every field encoded into the error log, as that
-- example did; its on_callback_error writes what it gets. Neither may see a table, and no
-- secret may reach the log.
local WORKER = [[
local cjson = require("cjson.safe").new()
local auth0 = require "auth0"
ngx.req.read_body()
local args = cjson.decode(ngx.req.get_body_data() or "") or {}
local base, token = args.base, args.token
local send = require("auth0.transport.ngx").new({ base_url = base, host = base:match("^https?://([^:/]+)"),
  timeout = 10, connect_timeout = 2 }, { server_name = "localhost" })   -- the emulator's issuer is an IP
local secrets, bad, dump = {}, {}, {}
local function secret(s)
  if type(s) == "string" and #s >= 6 then
    secrets[#secrets + 1] = s
    local sig = s:match("%.([%w_%-]+)$")
    if sig and #sig >= 16 then secrets[#secrets + 1] = sig end
  end
  return s
end
local function deep(v, d)
  d = d or 0
  if type(v) == "table" then
    if d > 5 then return end
    for k, x in pairs(v) do deep(k, d + 1); deep(x, d + 1) end
  elseif v ~= nil then dump[#dump + 1] = tostring(v) end
end
local function control(method, path, body)
  local resp, code, msg = send { method = method, url = base .. "/__emulator" .. path, timeout = 10,
    headers = { authorization = "Bearer " .. token, accept = "application/json",
      ["content-type"] = body and "application/json" or nil }, body = body and cjson.encode(body) or nil }
  if not resp then error("control API " .. path .. ": " .. tostring(code) .. " " .. tostring(msg)) end
  return cjson.decode(resp.body)
end
local function on_log(level, message, fields)
  if type(message) ~= "string" then bad[#bad + 1] = "on_log message " .. type(message) end
  for k, v in pairs(type(fields) == "table" and fields or {}) do
    local t = type(v)
    if t ~= "string" and t ~= "number" and t ~= "boolean" then bad[#bad + 1] = "on_log field " .. k .. " " .. t end
  end
  deep(message); deep(fields)
  ngx.log(ngx.WARN, "auth0 ", level, ": ", tostring(message), " ", cjson.encode(fields) or "(unencodable)")
end
local function on_callback_error(msg)
  if type(msg) ~= "string" then bad[#bad + 1] = "on_callback_error " .. type(msg) end
  deep(msg)
  ngx.log(ngx.ERR, "callback error: ", type(msg) == "string" and msg or cjson.encode(msg) or "(unencodable)")
end
local function client(extra)
  local o = { base_url = base, client_id = "emu-native", transport = send, sleep = ngx.sleep, retries = 0, timeout = 10 }
  for k, v in pairs(extra) do o[k] = v end
  return auth0.new(o)
end
local c, c2 = client { on_log = on_log }, client { on_callback_error = on_callback_error }
local ok, runs = pcall(dofile(args.scenario), { clients = { c, c2 }, control = control, secret = secret, dump = deep,
  email = "ngx" })
c:close(); c2:close()
ngx.header["content-type"] = "application/json"
ngx.print(cjson.encode { ok = ok, runs = ok and runs or nil, err = not ok and tostring(runs) or nil,
  secrets = secrets, bad = bad, dump = table.concat(dump, "\n") })
]]

describe("secrets on the ngx transport, inside nginx", function()
  local socket_http = require "socket.http"
  local ltn12 = require "ltn12"
  local cjson = require("cjson.safe").new()
  local launch = dofile("examples/openresty/launch.lua")
  local emu_server = require "auth0.emulator.server"
  local server, api, work

  setup(function()
    server = emu.start()
    work = (io.popen("mktemp -d /tmp/auth0-secrets-spec.XXXXXX"):read("*l"))
    local f = assert(io.open(work .. "/secrets.lua", "wb"))
    f:write(WORKER)
    f:close()
    local err
    api, err = launch.start { base_url = "https://localhost:" .. server.port, ca_file = server.ca_file,
      owner_pid = emu_server.self_pid(),
      server = ("    location = /__test/secrets { content_by_lua_file %s/secrets.lua; }\n"):format(work),
      options = "limit_ip = false, limit_identifier = false, limit_global = false, limit_verify = false," }
    assert(api, err)
  end)
  teardown(function()
    if api then api:stop() end
    if work then os.execute("rm -rf '" .. work .. "'") end
  end)

  it("error objects raised from every kind of callback reach neither the error log nor a sink as a table", function()
    emu.reset()
    local here = (os.getenv("PWD") or io.popen("pwd"):read("*l")) .. "/spec/support/secrets_scenario.lua"
    local body = assert(cjson.encode { base = server.base_url, token = server.control_token,
      scenario = here })
    local chunks = {}
    socket_http.TIMEOUT = 300
    local ok, status = socket_http.request { url = api.url .. "/__test/secrets", method = "POST",
      headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) },
      source = ltn12.source.string(body), sink = ltn12.sink.table(chunks) }
    assert(ok, status)
    local log = api:log()
    assert.equal(200, status, log:sub(-2000))
    local r = assert(cjson.decode(table.concat(chunks)))
    assert.is_true(r.ok, r.err)
    assert.equal(12, r.runs)
    assert.same({}, r.bad)
    assert.is_true(#r.secrets > 50)
    -- the sinks ran, and the redacted texts reached the log
    assert.truthy(log:find("auth0 warn: error in a callback", 1, true))
    assert.truthy(log:find("callback error: ", 1, true))
    assert.truthy(log:find("mfa_required", 1, true))
    for _, s in ipairs(r.secrets) do
      local at = leak_at(log, s)
      assert.is_nil(at, "secret in nginx's error log: ..." .. (at and log:sub(math.max(1, at - 200), at + 20) or ""))
      at = leak_at(r.dump, s)
      assert.is_nil(at, "secret handed to a sink: ..." .. (at and r.dump:sub(math.max(1, at - 200), at + 20) or ""))
    end
  end)
end)
