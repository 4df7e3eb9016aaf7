-- auth0.error (issue #10, item 4): every `err.reason`, from the error bodies the protocol
-- records (docs/protocol.md) and the wording variants it lists; then the same reasons on
-- real answers of the emulator over HTTPS.
local auth0 = require "auth0"
local errors = require "auth0.error"
local emu = require "spec.support.emulator"
local cjson = require("cjson.safe").new()

local function body(code, text, extra)
  local t = { error = code, error_description = text }
  for k, v in pairs(extra or {}) do t[k] = v end
  return cjson.encode(t)
end

-- { reason, endpoint, status, raw body } ; the endpoint is the client's name for the call
local CASES = {
  -- 3.3 Errors (passwordless OTP grant)
  { "wrong_code", "passwordless_login", 403, body("invalid_grant", "Wrong email or verification code.") },
  { "wrong_code", "passwordless_login", 403, body("invalid_grant", "Wrong phone number or verification code.") },
  { "code_exhausted", "passwordless_login", 403,
    body("invalid_grant", "You've reached the maximum number of attempts. Please try to login again.") },
  { "code_expired", "passwordless_login", 403, body("invalid_grant", "The verification code has expired.") },
  { "user_blocked", "passwordless_login", 401, body("unauthorized", "user is blocked") },
  { "too_many_attempts", "passwordless_login", 429, body("too_many_attempts", "Your account has been blocked.") },
  { "too_many_attempts", "passwordless_login", 429, body("too_many_logins", "Too many logins.") },
  { "access_denied", "passwordless_login", 403, body("access_denied", "Access denied by an action") },
  { "access_denied", "passwordless_login", 401, body("unauthorized", "denied by a rule") },
  { "misconfigured", "passwordless_login", 403, body("unauthorized_client",
    "Grant type 'http://auth0.com/oauth/grant-type/passwordless/otp' not allowed for the client.",
    { error_uri = "https://auth0.com/docs/clients/client-grant-types" }) },
  { "misconfigured", "passwordless_login", 401, body("access_denied", "Unauthorized") },
  { "misconfigured", "passwordless_login", 403, body("unauthorized_client", "invalid client") },
  { "misconfigured", "passwordless_login", 401, body("invalid_client", "Client authentication failed") },
  { "misconfigured", "passwordless_login", 400, body("invalid_request", "the connection was disabled") },
  { "misconfigured", "passwordless_login", 400, body("invalid_request", "the connection was not found") },
  { "bad_request", "passwordless_login", 400, body("invalid_request", "Missing required parameter: otp") },
  -- 4.1 Shape: both wordings
  { "mfa_required", "passwordless_login", 403, body("mfa_required", "Multifactor authentication required",
    { mfa_token = "Fe26.2*x", mfa_requirements = { challenge = { { type = "otp" } } } }) },
  { "mfa_required", "refresh", 403, body("mfa_required", "MFA Required", { mfa_token = "Fe26.2*y" }) },
  -- 2.3 Errors (/passwordless/start)
  { "misconfigured", "passwordless_start", 400, body("bad.tenant", "error in tenant - tenant validation failed: invalid_tenant") },
  { "misconfigured", "passwordless_start", 400, body("bad.client_id", "Missing required property: client_id") },
  { "misconfigured", "passwordless_start", 400, body("bad.connection", "Connection does not exist") },
  { "misconfigured", "passwordless_start", 400, body("bad.connection", "Connection is disabled") },
  { "misconfigured", "passwordless_start", 403, body("unauthorized_client", "Client authentication is required") },
  { "bad_request", "passwordless_start", 400, body("bad.send", "error in send - No enum match for: sms") },
  { "bad_request", "passwordless_start", 400, body("bad.authParams", "error in authParams - invalid type: string (expected object)") },
  { "bad_request", "passwordless_start", 400, body("bad.request", "the following properties are not allowed: foo") },
  { "invalid_identifier", "passwordless_start", 400, body("bad.email", "error in email - email format validation failed: x") },
  { "invalid_identifier", "passwordless_start", 400, body("bad.phone_number", "String does not match pattern: ^\\+[0-9]{1,15}$") },
  { "delivery_failed", "passwordless_start", 400, body("sms_provider_error", "Authenticate (Code: 20003)") },
  { "rate_limited", "passwordless_start", 429, body("too_many_requests", "Too many requests") },
  -- 4.4 mfa_token lifetime and usage, 5.4 POST /mfa/challenge
  { "mfa_token_expired", "mfa_challenge", 401, body("expired_token", "mfa_token is expired") },
  { "mfa_token_expired", "mfa_otp", 403, body("expired_token", "mfa_token is expired") },
  { "mfa_token_expired", "mfa_oob", 403, body("invalid_grant", "mfa_token is expired") },
  { "mfa_token_invalid", "mfa_challenge", 401, body("invalid_grant", "Malformed mfa_token") },
  { "mfa_token_invalid", "mfa_otp", 403, body("invalid_grant", "Malformed mfa_token") },
  { "mfa_token_invalid", "mfa_otp", 403,
    body("invalid_grant", "The mfa_token was generated for a user who doesn't exist anymore.") },
  { "enroll_required", "mfa_challenge", 401, body("unsupported_challenge_type",
    "User does not have any enrolled authenticator with the supported challenge type (oob)") },
  { "enroll_required", "mfa_challenge", 403, body("association_required", "User is not enrolled") },
  { "unknown_authenticator", "mfa_challenge", 404, body("invalid_authenticator", "Authenticator not found") },
  { "unknown_authenticator", "mfa_delete_authenticator", 404, "Not Found" },
  { "rate_limited", "mfa_challenge", 429, body("too_many_requests", "Too many SMS") },
  -- 5.1 GET /mfa/authenticators, 5.3 POST /mfa/associate
  { "invalid_token", "mfa_authenticators", 401, body("expired_token", "The access token is expired") },
  { "invalid_token", "mfa_authenticators", 401, body("invalid_token", "invalid token") },
  { "invalid_token", "mfa_authenticators", 401, body("unauthorized", "Missing authentication") },
  { "invalid_token", "mfa_authenticators", 403, body("insufficient_scope", "Insufficient scope, expected: read:authenticators") },
  { "already_enrolled", "mfa_associate", 403, body("access_denied", "User is already enrolled") },
  { "invalid_identifier", "mfa_associate", 400, body("invalid_request", "phone_number must match ^\\+[0-9]{1,15}$") },
  -- 6.1 mfa-otp, 6.2 mfa-oob, 6.3 mfa-recovery-code, 6.4 limits
  { "wrong_code", "mfa_otp", 403, body("invalid_grant", "Invalid otp_code.") },
  { "wrong_code", "mfa_otp", 403, body("a0.mfa_invalid_code", "Wrong or expired code.") },
  { "wrong_code", "mfa_oob", 403, body("invalid_grant", "Invalid binding_code.") },
  { "wrong_code", "mfa_recovery_code", 403, body("invalid_grant", "Invalid recovery code") },
  { "too_many_attempts", "mfa_otp", 429,
    body("too_many_attempts", "Too many failed codes. Wait for some minutes before retrying.") },
  { "push_pending", "mfa_oob", 400,
    body("authorization_pending", "Authorization pending: please repeat the request in a few seconds.") },
  { "push_pending", "mfa_oob", 200, body("authorization_pending", "Authorization pending") },
  { "slow_down", "mfa_oob", 429,
    body("slow_down", "You are polling faster than the specified interval of 5 seconds.") },
  { "slow_down", "mfa_oob", 400, body("slow_down", "slow down") },
  { "push_rejected", "mfa_oob", 400, body("access_denied", "MFA Authorization rejected.") },
  { "push_rejected", "mfa_oob", 403, body("invalid_grant", "MFA Authorization rejected.") },
  { "oob_expired", "mfa_oob", 401, body("expired_token", "oob_code is expired") },
  { "oob_expired", "mfa_oob", 403, body("invalid_grant", "oob_code is expired") },
  { "oob_expired", "mfa_oob", 403, body("invalid_grant", "Invalid oob_code.") },
  { "oob_expired", "mfa_oob", 401, body("expired_token", "Reworded: the challenge is too old") },
  { "mfa_token_expired", "mfa_oob", 401, body("expired_token", "mfa_token is expired") },
  { "mfa_token_expired", "mfa_challenge", 401, body("expired_token", "Reworded: too old") },
  { "access_denied", "mfa_oob", 403, body("access_denied", "Denied by an action after the challenge") },
  -- 8.1 refresh, 8.2 userinfo, 8.3 revoke
  { "login_required", "refresh", 403, body("invalid_grant", "Unknown or invalid refresh token.") },
  { "login_required", "refresh", 403,
    body("invalid_grant", "The refresh_token was generated for a user who doesn't exist anymore.") },
  { "user_blocked", "refresh", 403, body("invalid_grant", "user is blocked") },
  { "bad_request", "refresh", 403, body("invalid_scope", "Scope must be a subset of the original scope") },
  { "invalid_token", "userinfo", 401, "Unauthorized" },
  { "invalid_token", "userinfo", 401, body("expired_token", "The access token is expired") },
  { "rate_limited", "userinfo", 429, "Rate limit exceed" },
  { "misconfigured", "revoke", 401, body("invalid_client", "Client authentication failed") },
  { "bad_request", "revoke", 400, body("invalid_request", "Missing required parameter: token") },
  -- 10. Rate limits & attack protection: the global limit, the generic body
  { "rate_limited", "passwordless_login", 429, body("access_denied", "Global rate limit exceeded") },
  { "rate_limited", "mfa_oob", 429, body("access_denied", "Global rate limit exceeded") },
  { "rate_limited", "jwks", 429, cjson.encode { message = "Too many requests. Check the X-RateLimit-Limit, " ..
    "X-RateLimit-Remaining and X-RateLimit-Reset headers." } },
  -- 1.5 Error envelope: legacy and plain shapes, 5xx, 404
  { "wrong_code", "mfa_otp", 403, cjson.encode { code = "invalid_grant", description = "Invalid otp_code." } },
  { "server_error", "passwordless_login", 503, "<html>Service Unavailable</html>" },
  { "server_error", "refresh", 500, body("server_error", "oops") },
  { "misconfigured", "passwordless_start", 404, body("endpoint_disabled", "the endpoint is disabled") },
  { "misconfigured", "openid_configuration", 404, "Not Found" },
  { "unknown", "passwordless_login", 418, body("brand_new_code", "something new") },
}

describe("err.reason from recorded and documented answers", function()
  for _, case in ipairs(CASES) do
    local reason, ep, status, raw = case[1], case[2], case[3], case[4]
    it(reason .. " <- " .. ep .. " " .. status .. " " .. raw:sub(1, 90), function()
      local e = errors.from_response(status, raw, nil, ep)
      assert.equal(reason, e.reason)
      assert.is_true(errors.REASONS[reason] == true)
    end)
  end

  it("every reason the module can give has a case above", function()
    local seen = {}
    for _, case in ipairs(CASES) do seen[case[1]] = true end
    -- ours: made by the client without a server answer (below)
    for _, r in ipairs { "timeout", "network", "tls", "bad_response", "cancelled", "invalid_id_token",
      "unknown_kid", "malformed", "store", "invalid_link", "invalid_state" } do seen[r] = true end
    local missing = {}
    for r in pairs(errors.REASONS) do
      if not seen[r] then missing[#missing + 1] = r end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("the reason never depends on the wording where the code and endpoint say it", function()
    for _, text in ipairs { "Wrong email or verification code.", "Código incorrecto", "", "expired?" } do
      local e = errors.from_response(403, body("invalid_grant", text), nil, "mfa_otp")
      assert.equal("wrong_code", e.reason)
      e = errors.from_response(403, body("mfa_required", text, { mfa_token = "t" }), nil, "passwordless_login")
      assert.equal("mfa_required", e.reason)
      e = errors.from_response(400, body("authorization_pending", text), nil, "mfa_oob")
      assert.equal("push_pending", e.reason)
      e = errors.from_response(400, body("access_denied", text), nil, "mfa_oob")
      assert.equal("push_rejected", e.reason)
      e = errors.from_response(403, body("invalid_grant", text), nil, "refresh")
      assert.equal("login_required", e.reason)
    end
    -- a reworded wrong passwordless code stays a wrong code
    assert.equal("wrong_code", errors.from_response(403, body("invalid_grant", "Nope."), nil, "passwordless_login").reason)
  end)

  it("errors made by the client carry a reason from their code, or the one given", function()
    local cases = { timeout = "timeout", couldnt_connect = "network", couldnt_resolve = "network",
      network = "network", transport = "network", tls = "tls", bad_response = "bad_response",
      too_large = "bad_response", cancelled = "cancelled", invalid_id_token = "invalid_id_token",
      invalid_jwt = "malformed", invalid_otpauth = "malformed",
      insecure_store = "store", store_corrupt = "store", store_busy = "store", store_error = "store", store_mismatch = "store",
      invalid_link = "invalid_link", invalid_state = "invalid_state",
      something_else = "unknown" }
    for code, reason in pairs(cases) do
      assert.equal(reason, errors.new(code, "m").reason, code)
    end
    assert.equal("unknown_kid", errors.new("invalid_id_token", "no key", { reason = "unknown_kid" }).reason)
    assert.equal("rate_limited", errors.reason("anything", 429, nil, nil))
  end)

  it("the helpers' and the transport's errors carry theirs", function()
    local _, e = require("auth0.jwt").decode("not a token")
    assert.equal("malformed", e.reason)
    _, e = auth0.parse_otpauth("http://example.com")
    assert.equal("malformed", e.reason)
    local c = auth0.new { base_url = "https://127.0.0.1:1", client_id = "x", retries = 0 }
    _, e = c:openid_configuration()
    c:close()
    assert.equal("couldnt_connect", e.code)
    assert.equal("network", e.reason)
  end)
end)

describe("err.reason on real answers (emulator over HTTPS)", function()
  local server, c
  setup(function()
    server = emu.start()
    c = auth0.new { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 10 }
  end)
  teardown(function() if c then c:close() end end)
  before_each(function() emu.reset() end)

  local function ctl(method, path, b)
    local out, status = emu.control(method, path, b)
    assert(status == 200, "control " .. path .. " answered " .. tostring(status))
    return out
  end

  it("wrong_code, then code_exhausted after 3 failures; mfa_required; push_pending; push_rejected", function()
    assert(c:passwordless_start { connection = "email", email = "r@example.com", send = "code" })
    local m = ctl("GET", "/outbox?to=" .. auth0.core.pct_escape("r@example.com")).messages
    local code = m[#m].code
    local bad = code == "000000" and "111111" or "000000"
    for _ = 1, 3 do
      local t, e = c:passwordless_login { realm = "email", username = "r@example.com", otp = bad }
      assert.is_nil(t)
      assert.equal("wrong_code", e.reason)
    end
    local _, e = c:passwordless_login { realm = "email", username = "r@example.com", otp = code }
    assert.equal("code_exhausted", e.reason)

    local user = ctl("POST", "/users", { connection = "email", email = "m@example.com", mfa = "always" })
    ctl("POST", "/mfa/authenticators", { user_id = user.user_id, type = "push" })
    assert(c:passwordless_start { connection = "email", email = "m@example.com", send = "code" })
    m = ctl("GET", "/outbox?to=" .. auth0.core.pct_escape("m@example.com")).messages
    _, e = c:passwordless_login { realm = "email", username = "m@example.com", otp = m[#m].code }
    assert.equal("mfa_required", e.reason)
    local token = e.mfa_token
    local list = assert(c:mfa_authenticators(token))
    local push
    for _, a in ipairs(list) do if a.oob_channel == "auth0" then push = a end end
    local ch = assert(c:mfa_challenge { mfa_token = token, challenge_type = "oob", authenticator_id = push.id })
    _, e = c:mfa_verify { mfa_token = token, oob_code = ch.oob_code }
    assert.equal("push_pending", e.reason)
    ctl("POST", "/guardian/" .. auth0.core.pct_escape(ch.oob_code) .. "/reject")
    _, e = c:mfa_verify { mfa_token = token, oob_code = ch.oob_code }
    assert.equal("push_rejected", e.reason)
    _, e = c:mfa_challenge { mfa_token = "not-a-token", challenge_type = "otp" }
    assert.equal("mfa_token_invalid", e.reason)
  end)
end)

-- Issue 11 (third review): text from outside (a transport's failure, a server's code and
-- description, a response header) is one line in an error object and in what on_log gets:
-- no CR/LF, no other control character, no line separator or bidi override, valid UTF-8.
describe("error text from outside is one line", function()
  local HOSTILE = "a\r\nINFO forged line\27[2J\226\128\168b\226\128\174c\194\133d"
  local function clean_text(s)
    return s ~= nil and not s:find("[%c]") and not s:find("\226\128[\168\169\170-\174]")
      and not s:find("\194[\128-\159]") and auth0.core.utf8_valid(s)
  end
  local answers = {
    { nil, "network", HOSTILE },
    { nil, "net\r\nwork", "x" },
    { { status = 400, headers = { ["x-auth0-requestid"] = "id\27[31m\1" },
        body = '{"error":"bad\\u0085code\\r\\n","error_description":"d\\u2028e\\r\\nf\\u202eg"}' } },
    { { status = 500, body = HOSTILE } },
    { { status = 400, body = '{"error":"x","error_description":"' .. "\255\254" .. '"}' } },
  }
  for i, a in ipairs(answers) do
    it("answer " .. i, function()
      local logged = {}
      local c = auth0.new { base_url = "https://tenant.example", client_id = "c", retries = 0,
        transport = function() return a[1], a[2], a[3] end,
        on_log = function(_, msg, fields)
          logged[#logged + 1] = msg
          for _, v in pairs(fields) do logged[#logged + 1] = tostring(v) end
        end }
      local r, err = c:passwordless_start { connection = "email", email = "a@example.com" }
      assert.is_nil(r)
      assert.is_true(clean_text(err.code), err.code)
      assert.is_true(clean_text(err.message), err.message)
      assert.is_true(clean_text(tostring(err)))
      if err.request_id then assert.is_true(clean_text(err.request_id), err.request_id) end
      -- the request id of answer 3 reaches on_log also through the debug "response" line
      for _, l in ipairs(logged) do assert.is_true(clean_text(l), l) end
      c:close()
    end)
  end

  -- fuzz_lua found a code of invisible characters only (a BOM) ending as an empty err.code
  for _, code in ipairs { "\239\187\191", "\226\128\139\226\128\141", "\226\129\160" } do
    it("a code with nothing visible is the status's code, never empty (" .. #code .. " bytes)", function()
      local answer = cjson.encode { error = code, error_description = "d" }
      assert.equal("server_error", errors.from_response(514, answer, nil, nil).code)
      -- as if the body had no code: the status's own (403 forbidden)
      local none = errors.from_response(403, cjson.encode { error_description = "d" }, nil, nil).code
      assert.equal("forbidden", none)
      assert.equal(none, errors.from_response(403, answer, nil, nil).code)
    end)
  end
end)
