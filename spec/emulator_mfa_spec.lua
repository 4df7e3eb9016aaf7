-- The emulator's MFA module in-process (handler contract, frozen virtual clock): exact wire
-- bodies, ids, the TOTP window, the bucket, slow_down spacing and the MFA control routes.
local cjson = require("cjson.safe").new()
local core = require "auth0.core"
local emulator = require "auth0.emulator"

local BASE = "https://127.0.0.1:8443"
local KEY_PEM = core.rsa_key(nil):pem()
local T0 = 1700000000
local G = "http://auth0.com/oauth/grant-type/"

local function call(emu, method, path, body, headers)
  headers = headers or {}
  if body ~= nil and type(body) ~= "string" then
    body = assert(cjson.encode(body))
    headers["content-type"] = headers["content-type"] or "application/json"
  end
  local resp = emu:handle { method = method, path = path, headers = headers, body = body }
  return resp, resp.body ~= "" and cjson.decode(resp.body) or nil
end

local function bearer(t) return { authorization = "Bearer " .. t } end
local function token(emu, body, headers) return call(emu, "POST", "/oauth/token", body, headers) end

local function err_body(code, description)
  return { error = code, error_description = description }
end

local function new_emu()
  local emu = emulator.new { base_url = BASE, key_pem = KEY_PEM }
  emu:set_time(T0)
  emu:freeze(true)
  return emu
end

local function user(emu, email, mfa)
  local _, u = call(emu, "POST", "/__emulator/users", { connection = "email", email = email, mfa = mfa })
  return u
end

-- Logs in by e-mail code; returns the decoded token endpoint answer and the response.
local function login(emu, email, extra)
  call(emu, "POST", "/passwordless/start", { client_id = "emu-native", connection = "email", email = email,
    send = "code" })
  local body = { grant_type = G .. "passwordless/otp", client_id = "emu-native", username = email, realm = "email",
    otp = emu.outbox[#emu.outbox].code }
  for k, v in pairs(extra or {}) do body[k] = v end
  local resp, b = token(emu, body)
  return b, resp
end

local function mfa_token(emu, email, extra)
  local b, resp = login(emu, email, extra)
  assert.equal(403, resp.status)
  return b.mfa_token, b
end

local function enroll(emu, u, body)
  body.user_id = u.user_id
  local resp, b = call(emu, "POST", "/__emulator/mfa/authenticators", body)
  assert.equal(200, resp.status)
  return b
end

local function totp(secret, t)
  return core.totp(assert(core.base32_decode(secret)), t, 30, 6, "SHA1")
end

local function otp_grant(emu, mfa, otp, client)
  return token(emu, { grant_type = G .. "mfa-otp", client_id = client or "emu-native", mfa_token = mfa, otp = otp })
end

describe("emulator MFA", function()
  local emu
  before_each(function() emu = new_emu() end)

  it("answers mfa_required with the documented body", function()
    user(emu, "a@example.com", { "otp" })
    local b, resp = login(emu, "a@example.com")
    assert.equal(403, resp.status)
    assert.matches("^application/json", resp.headers["content-type"])
    assert.equal(string.format("%d", (T0 + 600) * 1000), b.mfa_token:match("^Fe26%.2%*%*[^*]+%*[^*]+%*[^*]+%*(%d+)%*"))
    assert.same({ error = "mfa_required", error_description = "Multifactor authentication required",
      mfa_token = b.mfa_token, mfa_requirements = { enroll = { { type = "otp" } } } }, b)
  end)

  it("reports an invalid policy as an emulator error", function()
    user(emu, "bad@example.com", 42)
    local b, resp = login(emu, "bad@example.com")
    assert.equal(500, resp.status)
    assert.equal("server_error", b.error)
    assert.matches("mfa must be off", b.error_description)
  end)

  it("shapes associate answers like the recordings", function()
    local u = user(emu, "s@example.com", "always")
    local t = mfa_token(emu, "s@example.com")
    local _, sms = call(emu, "POST", "/mfa/associate", { authenticator_types = { "oob" }, oob_channels = { "sms" },
      phone_number = "+15551234567" }, bearer(t))
    assert.same({ "authenticator_type", "binding_method", "oob_channel", "oob_code", "recovery_codes" },
      (function() local k = {} for n in pairs(sms) do k[#k + 1] = n end table.sort(k) return k end)())
    assert.matches("^Fe26%.2%*SERVER_" .. T0 .. "%*", sms.oob_code)
    local _, push = call(emu, "POST", "/mfa/associate", { authenticator_types = { "oob" }, oob_channels = { "auth0" } },
      bearer(t))
    -- nothing is confirmed yet, so this is still the first enrollment: a new code replaces the old
    assert.equal(1, #push.recovery_codes)
    assert.not_equal(sms.recovery_codes[1], push.recovery_codes[1])
    assert.matches("^otpauth://totp/Auth0%%20Emulator:s%%40example%.com%?enrollment_tx_id=%w+&base_url="
      .. "https%%3A%%2F%%2F127%.0%.0%.1%.guardian%.emulator%.auth0%.com$", push.barcode_uri)
    local _, ctl = call(emu, "GET", "/__emulator/mfa/authenticators?user_id=" .. emulator.url_encode(u.user_id))
    local kinds = {}
    for _, a in ipairs(ctl.authenticators) do
      kinds[#kinds + 1] = a.id:match("^([%a-]+)|dev_%w+$")
      assert.equal(16, #a.id:match("dev_(%w+)$"))
      assert.is_false(a.active)
    end
    assert.same({ "sms", "recovery-code", "push", "totp" }, kinds)
  end)

  it("validates associate input", function()
    user(emu, "v@example.com", "always")
    local t = mfa_token(emu, "v@example.com")
    local function assoc(body)
      local resp, b = call(emu, "POST", "/mfa/associate", body, bearer(t))
      return resp.status, b
    end
    assert.same({ 400, err_body("invalid_request", "Missing required parameter: authenticator_types") }, { assoc {} })
    assert.same({ 400, err_body("invalid_request", "authenticator_types must be [\"otp\"] or [\"oob\"]") },
      { assoc { authenticator_types = { "otp", "oob" } } })
    assert.equal(400, (assoc { authenticator_types = { "oob" }, oob_channels = { "fax" } }))
    assert.same({ 400, err_body("invalid_request", "phone_number must match ^\\+[0-9]{1,15}$") },
      { assoc { authenticator_types = { "oob" }, oob_channels = "sms", phone_number = "555" } })
    local resp, b = call(emu, "POST", "/mfa/associate", { authenticator_types = { "otp" } })
    assert.same({ 401, err_body("unauthorized", "Missing authentication") }, { resp.status, b })
  end)

  it("accepts TOTP codes of the current and previous step only, each once", function()
    local u = user(emu, "t@example.com", "always")
    local secret = enroll(emu, u, { type = "otp", secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" }).authenticator.secret
    assert.equal("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", secret)
    local t = mfa_token(emu, "t@example.com")
    local resp, b = otp_grant(emu, t, totp(secret, T0 + 30))
    assert.same({ 403, err_body("invalid_grant", "Invalid otp_code.") }, { resp.status, b })
    resp = otp_grant(emu, t, totp(secret, T0 - 60))
    assert.equal(403, resp.status)
    resp = otp_grant(emu, t, totp(secret, T0 - 30))
    assert.equal(200, resp.status)
    t = mfa_token(emu, "t@example.com")
    resp = otp_grant(emu, t, totp(secret, T0 - 30))  -- used
    assert.equal(403, resp.status)
    resp, b = otp_grant(emu, t, totp(secret, T0))
    assert.equal(200, resp.status)
    local payload = cjson.decode(core.b64url_decode(b.access_token:match("^[^.]+%.([^.]+)")))
    assert.same({ "mfa" }, payload.amr)
  end)

  it("refills the failure bucket one attempt per 6 minutes", function()
    local u = user(emu, "bf@example.com", "always")
    local secret = enroll(emu, u, { type = "otp" }).authenticator.secret
    local t = mfa_token(emu, "bf@example.com")
    local wrong = totp(secret, T0 + 300)
    for _ = 1, 10 do assert.equal(403, otp_grant(emu, t, wrong).status) end
    assert.equal(429, (otp_grant(emu, t, wrong).status))
    emu:advance(720)
    t = mfa_token(emu, "bf@example.com")  -- the first one has expired meanwhile
    assert.equal(403, otp_grant(emu, t, wrong).status)
    assert.equal(403, otp_grant(emu, t, wrong).status)
    local resp, b = otp_grant(emu, t, wrong)
    assert.same({ 429, err_body("too_many_attempts", "Too many failed codes. Wait for some minutes before retrying.") },
      { resp.status, b })
  end)

  it("spaces push polls by poll_min_interval on the virtual clock", function()
    local u = user(emu, "p@example.com", "always")
    enroll(emu, u, { type = "push" })
    local t = mfa_token(emu, "p@example.com")
    local _, ch = call(emu, "POST", "/mfa/challenge", { client_id = "emu-native", mfa_token = t, challenge_type = "oob" })
    local function poll()
      local resp, b = token(emu, "grant_type=" .. emulator.url_encode(G .. "mfa-oob") .. "&client_id=emu-native&mfa_token="
        .. emulator.url_encode(t) .. "&oob_code=" .. emulator.url_encode(ch.oob_code),
        { ["content-type"] = "application/x-www-form-urlencoded" })
      return resp.status, b and b.error
    end
    assert.same({ 400, "authorization_pending" }, { poll() })
    emu:advance(4)
    assert.same({ 429, "slow_down" }, { poll() })
    emu:advance(5)
    assert.same({ 400, "authorization_pending" }, { poll() })
    local resp, b = call(emu, "POST", "/__emulator/guardian/" .. ch.oob_code .. "/approve")
    assert.same({ 200, { oob_code = ch.oob_code, state = "approved" } }, { resp.status, b })
    resp = call(emu, "POST", "/__emulator/guardian/" .. ch.oob_code .. "/reject")
    assert.equal(400, resp.status)
    assert.same({ 200 }, { (poll()) })
    resp = call(emu, "POST", "/__emulator/guardian/" .. ch.oob_code .. "/approve")
    assert.equal(404, resp.status)
  end)

  it("binds challenges to their mfa_token and tokens to their client", function()
    local u = user(emu, "b@example.com", "always")
    local secret = enroll(emu, u, { type = "otp" }).authenticator.secret
    enroll(emu, u, { type = "sms", phone_number = "+15550000000" })
    local t1 = mfa_token(emu, "b@example.com")
    local t2 = mfa_token(emu, "b@example.com")
    local _, ch = call(emu, "POST", "/mfa/challenge", { client_id = "emu-native", mfa_token = t1, challenge_type = "oob" })
    local code = emu.outbox[#emu.outbox].binding_code
    local resp, b = token(emu, { grant_type = G .. "mfa-oob", client_id = "emu-native", mfa_token = t2,
      oob_code = ch.oob_code, binding_code = code })
    assert.same({ 403, err_body("invalid_grant", "Invalid oob_code.") }, { resp.status, b })
    resp, b = token(emu, { grant_type = G .. "mfa-oob", client_id = "emu-native", mfa_token = t1, oob_code = ch.oob_code })
    assert.same({ 400, err_body("invalid_request", "Missing required parameter: binding_code") }, { resp.status, b })
    resp, b = otp_grant(emu, t1, totp(secret, T0), "emu-confidential")
    assert.same({ 401, err_body("access_denied", "Unauthorized") }, { resp.status, b })
    resp, b = token(emu, { grant_type = G .. "mfa-otp", client_id = "emu-confidential",
      client_secret = "emu-confidential-secret", mfa_token = t1, otp = totp(secret, T0) })
    assert.same({ 403, err_body("invalid_grant", "Malformed mfa_token") }, { resp.status, b })
    resp, b = token(emu, { grant_type = G .. "mfa-otp", client_id = "emu-native", mfa_token = t1 })
    assert.same({ 400, err_body("invalid_request", "Missing required parameter: otp") }, { resp.status, b })
  end)

  it("decodes authenticator ids in paths and refuses to delete the recovery code", function()
    local u = user(emu, "d@example.com", "always")
    local e = enroll(emu, u, { type = "otp" })
    assert.matches("^[1-9A-HJ-NP-Z]+$", e.recovery_code)
    local t = mfa_token(emu, "d@example.com")
    local _, list = call(emu, "GET", "/mfa/authenticators", nil, bearer(t))
    local resp, b = call(emu, "DELETE", "/mfa/authenticators/" .. emulator.url_encode(list[2].id), nil, bearer(t))
    assert.same({ 400, err_body("invalid_request", "Recovery codes cannot be deleted") }, { resp.status, b })
    resp = call(emu, "DELETE", "/mfa/authenticators/" .. emulator.url_encode(list[1].id), nil, bearer(t))
    assert.equal(204, resp.status)
    assert.equal("", resp.body)
    _, list = call(emu, "GET", "/mfa/authenticators", nil, bearer(t))
    assert.same({}, list)
  end)

  it("checks the scope of MFA access tokens", function()
    local u = user(emu, "sc@example.com", "always")
    local secret = enroll(emu, u, { type = "otp" }).authenticator.secret
    local t = mfa_token(emu, "sc@example.com", { audience = BASE .. "/mfa", scope = "read:authenticators" })
    local _, b = otp_grant(emu, t, totp(secret, T0))
    assert.equal(600, b.expires_in)
    local resp, body = call(emu, "GET", "/mfa/authenticators", nil, bearer(b.access_token))
    assert.equal(200, resp.status)
    assert.equal(2, #body)
    resp, body = call(emu, "DELETE", "/mfa/authenticators/x", nil, bearer(b.access_token))
    assert.same({ 403, err_body("insufficient_scope", "Insufficient scope, expected: remove:authenticators") },
      { resp.status, body })
    emu:advance(600)
    resp, body = call(emu, "GET", "/mfa/authenticators", nil, bearer(b.access_token))
    assert.same({ 401, err_body("expired_token", "The access token is expired") }, { resp.status, body })
  end)

  it("draws recovery codes from 123456789ABCDEFGHJKLMNPQRSTUVWXYZ", function()
    local seen = {}
    for i = 1, 40 do
      local u = user(emu, "r" .. i .. "@example.com", "always")
      local code = enroll(emu, u, { type = "otp" }).recovery_code
      assert.equal(24, #code)
      for ch in code:gmatch(".") do seen[ch] = true end
    end
    assert.is_nil(seen["0"] or seen.I or seen.O)
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(33, n)
  end)

  describe("control routes", function()
    it("live in the control module; the mfa module serves only the MFA API", function()
      local routes = {}
      for _, r in ipairs(require("auth0.emulator.mfa").routes) do routes[#routes + 1] = r[1] .. " " .. r[2] end
      assert.same({ "GET /mfa/authenticators", "DELETE /mfa/authenticators/([^/]+)", "POST /mfa/associate",
                    "POST /mfa/challenge" }, routes)
      local control = {}
      for _, r in ipairs(require("auth0.emulator.control").routes) do control[r[1] .. " " .. r[2]] = r[3] end
      for route, handler in pairs {
        ["GET /__emulator/mfa"] = "ctl_mfa", ["POST /__emulator/mfa"] = "ctl_mfa",
        ["GET /__emulator/mfa/authenticators"] = "ctl_mfa_authenticators",
        ["POST /__emulator/mfa/authenticators"] = "ctl_mfa_enroll",
        ["DELETE /__emulator/mfa/authenticators"] = "ctl_mfa_unenroll",
        ["GET /__emulator/guardian"] = "ctl_guardian",
        ["POST /__emulator/guardian/([^/]+)/(%a+)"] = "ctl_guardian_answer",
      } do
        assert.equal(handler, control[route], route)
      end
    end)

    it("reads, changes, validates and resets the settings", function()
      local _, s = call(emu, "GET", "/__emulator/mfa")
      assert.same({ poll_min_interval = 5, mfa_token_lifetime = 600, oob_code_lifetime = 300, attempts = 10,
        refill_seconds = 360, tenant_name = "Auth0 Emulator" }, s)
      local resp, b = call(emu, "POST", "/__emulator/mfa", { poll_min_interval = -1 })
      assert.same({ 400, err_body("bad_request", "poll_min_interval must be a number >= 0") }, { resp.status, b })
      resp, b = call(emu, "POST", "/__emulator/mfa", { bogus = 1 })
      assert.same({ 400, err_body("bad_request", "unknown setting: bogus") }, { resp.status, b })
      _, b = call(emu, "POST", "/__emulator/mfa", { mfa_token_lifetime = 60, tenant_name = "Acme" })
      assert.equal(60, b.mfa_token_lifetime)
      assert.equal("Acme", b.tenant_name)
      call(emu, "POST", "/__emulator/reset")
      _, b = call(emu, "GET", "/__emulator/mfa")
      assert.equal(600, b.mfa_token_lifetime)
    end)

    it("enrolls directly, lists with secrets, unenrolls, and lists pending pushes", function()
      local u = user(emu, "c@example.com", "always")
      local resp, b = call(emu, "POST", "/__emulator/mfa/authenticators", { user_id = u.user_id, type = "fax" })
      assert.same({ 400, err_body("bad_request", "type must be otp, sms, voice, email or push") }, { resp.status, b })
      local e = enroll(emu, u, { type = "push" })
      assert.equal("Emulated Device", e.authenticator.name)
      assert.equal(e.paired.id, e.authenticator.paired)
      assert.equal(32, #e.paired.secret)
      local t = mfa_token(emu, "c@example.com")
      call(emu, "POST", "/mfa/challenge", { client_id = "emu-native", mfa_token = t })
      local _, g = call(emu, "GET", "/__emulator/guardian?user_id=" .. emulator.url_encode(u.user_id))
      assert.equal(1, #g.transactions)
      assert.equal(e.authenticator.id, g.transactions[1].authenticator_id)
      assert.is_false(g.transactions[1].enrollment)
      assert.equal("push", emu.outbox[#emu.outbox].kind)
      _, g = call(emu, "GET", "/__emulator/guardian?user_id=nobody")
      assert.same({}, g.transactions)
      resp = call(emu, "POST", "/__emulator/guardian/nope/approve")
      assert.equal(404, resp.status)
      _, b = call(emu, "DELETE", "/__emulator/mfa/authenticators?user_id=" .. emulator.url_encode(u.user_id))
      assert.same({ deleted = 3 }, b)
      _, g = call(emu, "GET", "/__emulator/guardian")
      assert.same({}, g.transactions)
    end)
  end)
end)
