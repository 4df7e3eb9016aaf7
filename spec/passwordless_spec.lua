-- Passwordless login over real HTTPS (libcurl -> nginx -> emulator), every field,
-- default, error row and misuse of issue #2.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"

local server

local function client(opts)
  opts = opts or {}
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 5 }
  for k, v in pairs(opts) do o[k] = v end
  return auth0.new(o)
end

local function last_code(to)
  local out = emu.control("GET", "/__emulator/outbox?to=" .. auth0.core.pct_escape(to))
  local m = out.messages[#out.messages]
  return m and m.code, m
end

describe("passwordless over HTTPS", function()
  setup(function() server = emu.start() end)
  before_each(function() emu.reset() end)

  it("logs in with an email code", function()
    local c = client()
    local sent, err = c:passwordless_start { connection = "email", email = "alice@example.com" }
    assert.is_nil(err)
    assert.equal("alice@example.com", sent.email)
    assert.matches("^%x+$", sent._id)
    assert.equal(24, #sent._id)
    local code, msg = last_code("alice@example.com")
    assert.equal("code", msg.kind)
    assert.matches("^%d%d%d%d%d%d$", code)
    local t0 = os.time()
    local tokens, lerr = c:passwordless_login { realm = "email", username = "alice@example.com", otp = code }
    assert.is_nil(lerr)
    assert.equal("Bearer", tokens.token_type)
    assert.equal(86400, tokens.expires_in)
    assert.is_true(tokens.expires_at >= t0 + 86400 and tokens.expires_at <= os.time() + 86400)
    assert.equal("openid profile email", tokens.scope)
    assert.is_string(tokens.access_token)
    assert.is_nil(tokens.refresh_token)
    local claims, verr = c:verify_id_token(tokens.id_token)
    assert.is_nil(verr)
    assert.equal(server.base_url .. "/", claims.iss)
    assert.equal("emu-native", claims.aud)
    assert.equal("alice@example.com", claims.email)
    assert.matches("^email|%x+$", claims.sub)
    assert.equal(claims.iat + 36000, claims.exp)
    c:close()
  end)

  it("verify_id_token leaves the caller's options alone and refetches the JWKS on every unknown kid", function()
    local c = client()
    assert(c:passwordless_start { connection = "email", email = "kid@example.com" })
    local tokens = assert(c:passwordless_login { realm = "email", username = "kid@example.com",
      otp = last_code("kid@example.com") })
    local h, rest = tokens.id_token:match("^([^.]+)(%..*)$")
    local header = require("cjson").decode(auth0.core.b64url_decode(h))
    header.kid = "rotated-away"
    local forged = auth0.core.b64url_encode(require("cjson").encode(header)) .. rest
    local opts = { leeway = 30 }
    assert(c:jwks())   -- cached: each round below fetches it once more, for the unknown kid
    for round = 1, 2 do   -- a reused options table refetches again
      local before = c:stats().requests
      local claims, err = c:verify_id_token(forged, opts)
      assert.is_nil(claims)
      assert.equal("invalid_id_token", err.code)
      assert.equal("id token signing key not found in jwks: kid rotated-away", err.message)
      assert.equal(1, c:stats().requests - before, "JWKS fetches in round " .. round)
      assert.same({ leeway = 30 }, opts)
    end
    c:close()
  end)

  it("logs in with an SMS code and the phone claims", function()
    local c = client()
    assert(c:passwordless_start { connection = "sms", phone_number = "+15551234567" })
    local tokens = assert(c:passwordless_login { realm = "sms", username = "+15551234567",
      otp = last_code("+15551234567"), scope = "openid phone" })
    local claims = assert(c:verify_id_token(tokens.id_token))
    assert.equal("+15551234567", claims.phone_number)
    assert.matches("^sms|%x+$", claims.sub)
    assert.equal("openid phone", tokens.scope)
  end)

  it("reuses one TLS connection for many requests", function()
    local c = client()
    for _ = 1, 5 do assert(c:passwordless_start { connection = "email", email = "k@example.com" }) end
    assert.equal(1, c:stats().connects)
    assert.equal(5, c:stats().requests)
  end)

  it("sends the language as a header and always sends send=code", function()
    local c = client { language = "fr-CA" }
    assert(c:passwordless_start { connection = "email", email = "l@example.com" })
    local _, m = last_code("l@example.com")
    assert.equal("fr-CA", m.language)
    assert.equal("code", m.send)
    assert(c:passwordless_start { connection = "email", email = "l@example.com", language = "de" })
    _, m = last_code("l@example.com")
    assert.equal("de", m.language)
  end)

  it("sends a magic link whose code logs in", function()
    local c = client()
    assert(c:passwordless_start { connection = "email", email = "m@example.com", send = "link",
      auth_params = { scope = "openid", state = "xyz" } })
    local _, m = last_code("m@example.com")
    assert.equal("link", m.kind)
    assert.matches("/passwordless/verify_redirect%?", m.link)
    assert.matches("state=xyz", m.link)
    local code = m.link:match("verification_code=(%d+)")
    assert(c:passwordless_login { realm = "email", username = "m@example.com", otp = code })
  end)

  it("gives a refresh token with offline_access, refreshes and revokes", function()
    local c = client()
    assert(c:passwordless_start { connection = "email", email = "r@example.com" })
    local tokens = assert(c:passwordless_login { realm = "email", username = "r@example.com",
      otp = last_code("r@example.com"), scope = "openid offline_access", audience = "https://api.example.com" })
    assert.is_string(tokens.refresh_token)
    local again, err = c:refresh(tokens.refresh_token)
    assert.is_nil(err)
    assert.is_string(again.access_token)
    local info = assert(c:userinfo(tokens.access_token))
    assert.equal(info.sub, assert(c:verify_id_token(tokens.id_token)).sub)
    assert.is_true(c:revoke(tokens.refresh_token))
    local none, rerr = c:refresh(tokens.refresh_token)
    assert.is_nil(none)
    assert.equal("invalid_grant", rerr.code)
    assert.equal(403, rerr.status)
  end)

  it("kills a code after three wrong attempts", function()
    local c = client()
    assert(c:passwordless_start { connection = "email", email = "w@example.com" })
    local code = last_code("w@example.com")
    local wrong = code == "000000" and "111111" or "000000"
    for _ = 1, 3 do
      local t, err = c:passwordless_login { realm = "email", username = "w@example.com", otp = wrong }
      assert.is_nil(t)
      assert.equal("invalid_grant", err.code)
      assert.equal("Wrong email or verification code.", err.message)
      assert.equal(403, err.status)
    end
    local t, err = c:passwordless_login { realm = "email", username = "w@example.com", otp = code }
    assert.is_nil(t)
    assert.equal("invalid_grant", err.code)
  end)

  it("lets only the newest code work", function()
    local c = client()
    assert(c:passwordless_start { connection = "email", email = "n@example.com" })
    local first = last_code("n@example.com")
    assert(c:passwordless_start { connection = "email", email = "n@example.com" })
    local second = last_code("n@example.com")
    if first ~= second then
      local t, err = c:passwordless_login { realm = "email", username = "n@example.com", otp = first }
      assert.is_nil(t)
      assert.equal("invalid_grant", err.code)
    end
    assert(c:passwordless_login { realm = "email", username = "n@example.com", otp = second })
  end)

  it("expires a code after 180 s of virtual time", function()
    local c = client()
    assert(c:passwordless_start { connection = "sms", phone_number = "+15550000001" })
    local code = last_code("+15550000001")
    emu.control("POST", "/__emulator/clock", { advance = 181 })
    local t, err = c:passwordless_login { realm = "sms", username = "+15550000001", otp = code }
    assert.is_nil(t)
    assert.equal("invalid_grant", err.code)
    assert.equal("Wrong phone number or verification code.", err.message)
  end)

  it("surfaces a 429 and its rate-limit headers", function()
    emu.control("POST", "/__emulator/rate_limits", { passwordless_start = { limit = 2, window = 3600 } })
    local c = client { retries = 0 }
    assert(c:passwordless_start { connection = "email", email = "q@example.com" })
    assert(c:passwordless_start { connection = "email", email = "q@example.com" })
    local r, err = c:passwordless_start { connection = "email", email = "q@example.com" }
    assert.is_nil(r)
    assert.equal("too_many_requests", err.code)
    assert.equal(429, err.status)
    assert.equal(2, err.rate_limit.limit)
    assert.equal(0, err.rate_limit.remaining)
    assert.is_true(err.rate_limit.reset > os.time())
    assert.is_true(err.retry_after > 0 and err.retry_after <= 3600)
    assert.is_string(err.request_id)
  end)

  it("never retries /passwordless/start on 429, even with retries on", function()
    emu.control("POST", "/__emulator/rate_limits", { passwordless_start = { limit = 1, window = 1 } })
    local c = client { retries = 3 }
    assert(c:passwordless_start { connection = "email", email = "q2@example.com" })
    local _, err = c:passwordless_start { connection = "email", email = "q2@example.com" }
    assert.equal("too_many_requests", err.code)
    assert.equal(2, c:stats().requests)
  end)

  it("requires the secret of a confidential client", function()
    local c = client { client_id = "emu-confidential" }
    local r, err = c:passwordless_start { connection = "email", email = "s@example.com" }
    assert.is_nil(r)
    assert.equal("unauthorized_client", err.code)
    assert.equal("Client authentication is required", err.message)
    assert.equal(403, err.status)
    local ok = client { client_id = "emu-confidential", client_secret = "emu-confidential-secret" }
    assert(ok:passwordless_start { connection = "email", email = "s@example.com" })
    assert(ok:passwordless_login { realm = "email", username = "s@example.com", otp = last_code("s@example.com") })
    assert.is_nil(tostring(ok):find("emu-confidential-secret", 1, true))
  end)

  it("reports the server's validation errors", function()
    local c = client()
    local _, err = c:passwordless_start { connection = "nope", email = "x@example.com" }
    assert.equal("bad.connection", err.code)
    assert.equal("Connection does not exist", err.message)
    assert.equal(400, err.status)
    _, err = c:passwordless_login { realm = "email", username = "x@example.com", otp = "123456",
      audience = "https://api.example.com" }
    assert.equal("invalid_grant", err.code)
  end)

  it("reports a grant that is not enabled for the client", function()
    emu.control("POST", "/__emulator/clients", { client_id = "no-otp", grant_types = { "refresh_token" } })
    local c = client { client_id = "no-otp" }
    assert(c:passwordless_start { connection = "email", email = "g@example.com" })
    local _, err = c:passwordless_login { realm = "email", username = "g@example.com", otp = last_code("g@example.com") }
    assert.equal("unauthorized_client", err.code)
    assert.equal("Grant type 'http://auth0.com/oauth/grant-type/passwordless/otp' not allowed for the client.",
      err.message)
  end)

  it("fails with tls when the certificate is not trusted", function()
    local c = auth0.new { base_url = server.base_url, client_id = "emu-native", timeout = 5 }
    local r, err = c:passwordless_start { connection = "email", email = "t@example.com" }
    assert.is_nil(r)
    assert.equal("tls", err.code)
    assert.is_nil(err.status)
    assert.matches("^could not reach 127.0.0.1: tls: ", tostring(err))
  end)

  it("fails with timeout when the server never answers", function()
    local socket = require "socket"
    local silent = assert(socket.bind("127.0.0.1", 0))
    local _, port = silent:getsockname()
    local c = auth0.new { base_url = "https://127.0.0.1:" .. port, client_id = "emu-native", timeout = 0.5 }
    local t0 = socket.gettime()
    local r, err = c:passwordless_start { connection = "email", email = "t@example.com" }
    assert.is_nil(r)
    assert.equal("timeout", err.code)
    assert.is_true(socket.gettime() - t0 < 3)
    silent:close()
  end)

  it("fails with couldnt_connect on a closed port", function()
    local socket = require "socket"
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local c = auth0.new { base_url = "https://127.0.0.1:" .. port, client_id = "emu-native", retries = 0 }
    local _, err = c:passwordless_start { connection = "email", email = "t@example.com" }
    assert.equal("couldnt_connect", err.code)
  end)

  it("runs non-blocking with a callback", function()
    local c = client()
    local got = {}
    local req = c:passwordless_start({ connection = "email", email = "cb@example.com" }, function(r, e)
      got[#got + 1] = { r, e }
    end)
    assert.matches("^auth0.Request %(passwordless_start, in flight%)$", tostring(req))
    assert.is_false(req:done())
    local deadline = os.time() + 5
    while c:poll(50) > 0 and os.time() < deadline do end
    assert.equal(1, #got)
    assert.equal("cb@example.com", got[1][1].email)
    assert.is_true(req:done())
  end)
end)

describe("passwordless misuse raises", function()
  local c = auth0.new { base_url = "https://127.0.0.1:9", client_id = "x" }
  local cases = {
    { "no client_id", function() auth0.new { domain = "t.auth0.com" } end, "client_id must be a string, got nil" },
    { "no domain", function() auth0.new { client_id = "x" } end, "domain or base_url is required" },
    { "http to a remote host", function() auth0.new { base_url = "http://example.com", client_id = "x" } end,
      "http:// is only allowed for loopback hosts" },
    { "user info in base_url", function() auth0.new { base_url = "https://u:p@h.com", client_id = "x" } end,
      "base_url must not carry user:password@" },
    { "path in base_url", function() auth0.new { base_url = "https://h.com/x", client_id = "x" } end,
      "no path, query or user info" },
    { "unknown option", function() auth0.new { client_id = "x", domain = "a.b", colour = 1 } end,
      'unknown option "colour"' },
    { "both email and phone", function()
      c:passwordless_start { connection = "email", email = "a@b.co", phone_number = "+1555" } end,
      "give either email or phone_number, not both" },
    { "bad phone", function() c:passwordless_start { connection = "sms", phone_number = "555-1234" } end,
      "phone_number must match" },
    { "phone too long", function()
      c:passwordless_start { connection = "sms", phone_number = "+1234567890123456" } end, "phone_number must match" },
    { "bad email", function() c:passwordless_start { connection = "email", email = "not-an-email" } end,
      "email is malformed" },
    { "email with CRLF", function() c:passwordless_start { connection = "email", email = "a@b.co\r\nX: y" } end,
      "email is malformed" },
    { "unknown send", function() c:passwordless_start { connection = "email", email = "a@b.co", send = "carrier" } end,
      "send must be code, link, link_ios or link_android" },
    { "auth_params with code", function()
      c:passwordless_start { connection = "email", email = "a@b.co", auth_params = { scope = "openid" } } end,
      "auth_params only applies to links" },
    { "language with CRLF", function()
      c:passwordless_start { connection = "email", email = "a@b.co", language = "en\r\nX: y" } end,
      "bad argument #1 to 'passwordless_start' (field 'language': contains CR or LF)" },
    { "numeric otp", function() c:passwordless_login { realm = "email", username = "a@b.co", otp = 123456 } end,
      "otp must be a string, got number" },
    { "bad callback", function() c:passwordless_start({ connection = "email", email = "a@b.co" }, 42) end,
      "callback must be a function" },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      local ok, msg = pcall(case[2])
      assert.is_false(ok)
      assert.is_truthy(msg:find(case[3], 1, true), msg)
    end)
  end
end)

describe("error bodies in every shape", function()
  local function via(status, body, headers)
    return auth0.new { base_url = "https://tenant.example", client_id = "x", transport = function()
      return { status = status, body = body, headers = headers or {} }
    end }
  end
  it("reads OAuth, legacy and plain-text errors", function()
    local shapes = {
      { 403, '{"error":"invalid_grant","error_description":"Wrong email or verification code."}',
        "invalid_grant", "Wrong email or verification code." },
      { 400, '{"code":"bad.email","description":"invalid"}', "bad.email", "invalid" },
      { 400, '{"name":"ValidationError","message":"nope"}', "ValidationError", "nope" },
      { 429, '{"message":"Too many requests."}', "too_many_requests", "Too many requests." },
      { 401, "Unauthorized", "unauthorized", "Unauthorized" },
      { 502, "<html>bad gateway</html>", "server_error", "<html>bad gateway</html>" },
    }
    for _, s in ipairs(shapes) do
      local r, err = via(s[1], s[2]):passwordless_start { connection = "email", email = "a@b.co" }
      assert.is_nil(r)
      assert.equal(s[3], err.code)
      assert.equal(s[4], err.message)
      assert.equal(s[1], err.status)
    end
  end)
  it("keeps mfa_token out of tostring", function()
    local _, err = via(403, '{"error":"mfa_required","error_description":"Multifactor authentication required",' ..
      '"mfa_token":"Fe26.2*SECRET","mfa_requirements":{"challenge":[{"type":"otp"}]}}')
      :passwordless_login { realm = "email", username = "a@b.co", otp = "123456" }
    assert.equal("mfa_required", err.code)
    assert.equal("Fe26.2*SECRET", err.mfa_token)
    assert.same({ challenge = { { type = "otp" } } }, err.mfa_requirements)
    assert.is_nil(tostring(err):find("SECRET", 1, true))
    assert.equal("passwordless_login: mfa_required: Multifactor authentication required (HTTP 403)", tostring(err))
  end)
  it("treats an empty 204 and {} as success", function()
    assert.same({}, via(204, ""):passwordless_start { connection = "email", email = "a@b.co" })
    assert.same({}, via(200, "{}"):passwordless_start { connection = "email", email = "a@b.co" })
  end)
  it("rejects invalid JSON and a token answer without access_token", function()
    local _, err = via(200, "{not json"):passwordless_start { connection = "email", email = "a@b.co" }
    assert.equal("bad_response", err.code)
    _, err = via(200, '{"id_token":"x"}'):passwordless_login { realm = "email", username = "a@b.co", otp = "1" }
    assert.equal("bad_response", err.code)
    assert.equal("token response without an access_token", err.message)
  end)
  it("parses Retry-After and X-RateLimit headers", function()
    local _, err = via(429, '{"error":"too_many_requests"}', { ["Retry-After"] = "7", ["X-RateLimit-Limit"] = "50",
      ["X-RateLimit-Remaining"] = "0", ["X-RateLimit-Reset"] = tostring(os.time() + 30) })
      :passwordless_start { connection = "email", email = "a@b.co" }
    assert.equal(7, err.retry_after)
    assert.same({ limit = 50, remaining = 0, reset = os.time() + 30 }, err.rate_limit)
  end)
end)
