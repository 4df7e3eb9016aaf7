-- Multi-factor authentication over real HTTPS (libcurl -> nginx -> emulator): every client
-- call and error row of issue #3, on the emulator's virtual clock.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"

local server

local function client(opts)
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return auth0.new(o)
end

local function ctl(method, path, body)
  local r, status = emu.control(method, path, body)
  assert(status == 200, "control " .. path .. " answered " .. tostring(status) .. ": " .. tostring(r and r.error_description))
  return r
end

local function now() return ctl("GET", "/clock").now end
local function advance(s) return ctl("POST", "/clock", { advance = s }).now end

local function user(email, mfa)
  return ctl("POST", "/users", { connection = "email", email = email, mfa = mfa })
end

local function outbox(to)
  return ctl("GET", "/outbox?to=" .. auth0.core.pct_escape(to)).messages
end

-- A passwordless e-mail login: tokens | nil, err (mfa_required with the mfa_token).
local function login(c, email, extra)
  assert(c:passwordless_start { connection = "email", email = email })
  local msgs = outbox(email)
  local p = { realm = "email", username = email, otp = msgs[#msgs].code }
  for k, v in pairs(extra or {}) do p[k] = v end
  return c:passwordless_login(p)
end

local function mfa_token(c, email, extra)
  local t, err = login(c, email, extra)
  assert.is_nil(t)
  assert.equal("mfa_required", err.code)
  return err.mfa_token, err
end

-- Enrolls an active authenticator through the control API.
local function enroll(u, body)
  body.user_id = u.user_id
  return ctl("POST", "/mfa/authenticators", body)
end

local function claims(c, tokens)
  return assert(c:verify_id_token(tokens.id_token))
end

local function fails(code, status, message, ...)
  local v, err = ...
  assert.is_nil(v)
  assert.equal(code, err.code)
  assert.equal(status, err.status)
  if message then assert.equal(message, err.message) end
  return err
end

local function wrong_totp(secret, t)
  local bad = { [auth0.totp(secret, { time = t })] = true, [auth0.totp(secret, { time = t - 30 })] = true }
  for _, c in ipairs { "000000", "111111", "222222" } do
    if not bad[c] then return c end
  end
end

local RC_PATTERN = "^[1-9A-HJ-NP-Z]+$"

describe("MFA over HTTPS", function()
  local c
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    c = client()
  end)
  after_each(function()
    assert.equal(0, c:pending())
    c:close()
  end)

  describe("mfa_required", function()
    it("carries an mfa_token and no mfa_requirements for mfa = \"always\"", function()
      user("a@example.com", "always")
      local err = fails("mfa_required", 403, "Multifactor authentication required", login(c, "a@example.com"))
      assert.matches("^Fe26%.2%*%*[%w_-]+%*[%w_-]+%*[%w_-]+%*%d+%*[%w_-]+%*[%w_-]+$", err.mfa_token)
      assert.is_nil(err.mfa_requirements)
      assert.equal(err.mfa_token, err.body.mfa_token)
    end)

    it("lists the policy's factors under enroll, then under challenge once enrolled", function()
      local u = user("b@example.com", { "otp", "push-notification" })
      local _, err = mfa_token(c, "b@example.com")
      assert.same({ enroll = { { type = "otp" }, { type = "push-notification" } } }, err.mfa_requirements)
      enroll(u, { type = "otp" })
      _, err = mfa_token(c, "b@example.com")
      assert.same({ challenge = { { type = "otp" }, { type = "push-notification" } } }, err.mfa_requirements)
    end)

    it("follows the general policy form and leaves users without a policy alone", function()
      user("d@example.com", { factors = { "email" }, requirements = false })
      local _, err = mfa_token(c, "d@example.com")
      assert.is_nil(err.mfa_requirements)
      user("e@example.com", { factors = { "email" } })
      _, err = mfa_token(c, "e@example.com")
      assert.same({ enroll = { { type = "email" } } }, err.mfa_requirements)
      user("f@example.com", "off")
      assert.is_string(assert(login(c, "f@example.com")).access_token)
    end)
  end)

  describe("TOTP", function()
    it("enrolls, confirms with auth0.totp, and logs in again with MFA", function()
      user("t@example.com", "always")
      local token = mfa_token(c, "t@example.com",
        { audience = "https://api.example.com", scope = "openid email offline_access" })
      assert.same({}, assert(c:mfa_authenticators(token)))
      local a = assert(c:mfa_associate { token = token, authenticator_types = { "otp" } })
      assert.equal("otp", a.authenticator_type)
      assert.matches("^[A-Z2-7]+$", a.secret)
      assert.equal(32, #a.secret)
      assert.equal("otpauth://totp/Auth0%20Emulator:t%40example.com?secret=" .. a.secret
        .. "&issuer=Auth0%20Emulator&algorithm=SHA1&digits=6&period=30", a.barcode_uri)
      assert.equal(1, #a.recovery_codes)
      assert.equal(24, #a.recovery_codes[1])
      assert.matches(RC_PATTERN, a.recovery_codes[1])
      assert.is_nil(a.oob_code)
      local uri = assert(auth0.parse_otpauth(a.barcode_uri))
      assert.equal(a.secret, uri.secret)
      assert.equal("Auth0 Emulator", uri.issuer)
      assert.equal("t@example.com", uri.account)

      local list = assert(c:mfa_authenticators(token))
      assert.equal(2, #list)
      assert.matches("^totp|dev_%w+$", list[1].id)
      assert.equal(25, #list[1].id)
      assert.same({ id = list[1].id, authenticator_type = "otp", active = false, type = "otp" }, list[1])
      assert.same({ id = list[2].id, authenticator_type = "recovery-code", active = false, type = "recovery-code" },
        list[2])

      local code = auth0.totp(uri.secret, { time = now() })
      local tokens = assert(c:mfa_verify { mfa_token = token, otp = code })
      assert.equal("openid email offline_access", tokens.scope)
      assert.is_string(tokens.refresh_token)
      local id = claims(c, tokens)
      assert.same({ "mfa" }, id.amr)
      assert.equal("t@example.com", id.email)
      -- the mfa_token is spent
      fails("invalid_grant", 403, "Malformed mfa_token", c:mfa_verify { mfa_token = token, otp = code })

      -- logging in again: enrolled and active; the used code is refused, the next step's works
      token = mfa_token(c, "t@example.com")
      list = assert(c:mfa_authenticators(token))
      assert.is_true(list[1].active)
      assert.is_true(list[2].active)
      assert.same({ challenge_type = "otp" }, assert(c:mfa_challenge { mfa_token = token, challenge_type = "otp",
        authenticator_id = list[1].id }))
      fails("invalid_grant", 403, "Invalid otp_code.", c:mfa_verify { mfa_token = token, otp = code })
      local t = advance(30)
      tokens = assert(c:mfa_verify { mfa_token = token, otp = auth0.totp(a.secret, { time = t }) })
      assert.equal("openid profile email", tokens.scope)
      assert.same({ "mfa" }, claims(c, tokens).amr)

      -- the previous step is still accepted, the one before is not
      token = mfa_token(c, "t@example.com")
      t = advance(60)
      fails("invalid_grant", 403, "Invalid otp_code.",
        c:mfa_verify { mfa_token = token, otp = auth0.totp(a.secret, { time = t - 60 }) })
      assert(c:mfa_verify { mfa_token = token, otp = auth0.totp(a.secret, { time = t - 30 }) })
    end)

    it("refuses a second enrollment with an mfa_token once enrolled, allows it with an MFA access token", function()
      local u = user("en@example.com", "always")
      local secret = enroll(u, { type = "otp" }).authenticator.secret
      local token = mfa_token(c, "en@example.com")
      fails("access_denied", 403, "User is already enrolled",
        c:mfa_associate { token = token, authenticator_types = { "otp" } })
      -- an access token for the MFA API (aud https://<host>/mfa/), after MFA
      token = mfa_token(c, "en@example.com", { audience = server.base_url .. "/mfa/",
        scope = "enroll read:authenticators remove:authenticators" })
      local at = assert(c:mfa_verify { mfa_token = token, otp = auth0.totp(secret, { time = now() }) })
      assert.equal(600, at.expires_in)
      assert.equal("enroll read:authenticators remove:authenticators", at.scope)
      local a = assert(c:mfa_associate { token = at.access_token, authenticator_types = { "oob" },
        oob_channels = { "sms" }, phone_number = "+15550001111" })
      assert.is_nil(a.recovery_codes)  -- only on the first enrollment
      local list = assert(c:mfa_authenticators(at.access_token))
      assert.equal(3, #list)
      assert.same({ id = list[3].id, authenticator_type = "oob", active = false, oob_channel = "sms",
        name = "XXXXXXXX1111", type = "phone" }, list[3])
      -- an access token for another audience is not accepted
      local plain = assert(login(client(), "plain@example.com"))
      fails("invalid_grant", 401, "Malformed mfa_token", c:mfa_authenticators(plain.access_token))
    end)
  end)

  describe("SMS, voice and e-mail", function()
    it("enrolls SMS with the binding code from the outbox", function()
      user("s@example.com", "always")
      local token = mfa_token(c, "s@example.com")
      local a = assert(c:mfa_associate { token = token, authenticator_types = { "oob" }, oob_channels = { "sms" },
        phone_number = "+15551234567" })
      assert.equal("oob", a.authenticator_type)
      assert.equal("prompt", a.binding_method)
      assert.equal("sms", a.oob_channel)
      assert.matches("^Fe26%.2%*SERVER_%d+%*", a.oob_code)
      assert.matches(RC_PATTERN, a.recovery_codes[1])
      local msgs = outbox("+15551234567")
      assert.equal(1, #msgs)
      local m = msgs[1]
      assert.equal("mfa", m.kind)
      assert.equal("sms", m.channel)
      assert.matches("^%d%d%d%d%d%d$", m.binding_code)
      assert.equal(m.binding_code, m.code)
      local wrong = m.binding_code == "000000" and "111111" or "000000"
      fails("invalid_grant", 403, "Invalid binding_code.",
        c:mfa_verify { mfa_token = token, oob_code = a.oob_code, binding_code = wrong })
      local tokens = assert(c:mfa_verify { mfa_token = token, oob_code = a.oob_code, binding_code = m.binding_code })
      assert.same({ "mfa" }, claims(c, tokens).amr)

      -- the binding code is single use; a new challenge sends a new one, which expires after 300 s
      token = mfa_token(c, "s@example.com")
      fails("invalid_grant", 403, "Invalid oob_code.",
        c:mfa_verify { mfa_token = token, oob_code = a.oob_code, binding_code = m.binding_code })
      local list = assert(c:mfa_authenticators(token))
      assert.same({ id = list[1].id, authenticator_type = "oob", active = true, oob_channel = "sms",
        name = "XXXXXXXX4567", type = "phone" }, list[1])
      local ch = assert(c:mfa_challenge { mfa_token = token, challenge_type = "oob", authenticator_id = list[1].id })
      assert.equal("oob", ch.challenge_type)
      assert.equal("prompt", ch.binding_method)
      local code = assert(ctl("GET", "/outbox?to=%2B15551234567").messages[2].binding_code)
      advance(301)
      fails("expired_token", 401, "oob_code is expired",
        c:mfa_verify { mfa_token = token, oob_code = ch.oob_code, binding_code = code })
      ch = assert(c:mfa_challenge { mfa_token = token, challenge_type = "oob" })
      msgs = outbox("+15551234567")
      assert(c:mfa_verify { mfa_token = token, oob_code = ch.oob_code, binding_code = msgs[#msgs].binding_code })
    end)

    it("enrolls voice and e-mail", function()
      user("v@example.com", "always")
      local token = mfa_token(c, "v@example.com")
      local a = assert(c:mfa_associate { token = token, authenticator_types = { "oob" }, oob_channels = { "voice" },
        phone_number = "+15557654321" })
      assert.equal("voice", a.oob_channel)
      local msgs = outbox("+15557654321")
      assert.equal("voice", msgs[1].channel)
      assert(c:mfa_verify { mfa_token = token, oob_code = a.oob_code, binding_code = msgs[1].binding_code })

      user("m@example.com", "always")
      token = mfa_token(c, "m@example.com")
      a = assert(c:mfa_associate { token = token, authenticator_types = { "oob" }, oob_channels = { "email" },
        email = "second@example.org" })
      assert.equal("email", a.oob_channel)
      assert.equal("prompt", a.binding_method)
      msgs = outbox("second@example.org")
      assert.equal("mfa", msgs[1].kind)
      assert(c:mfa_verify { mfa_token = token, oob_code = a.oob_code, binding_code = msgs[1].binding_code })
      token = mfa_token(c, "m@example.com")
      local list = assert(c:mfa_authenticators(token))
      assert.equal("******@exam*******", list[1].name)
      assert.equal("email", list[1].oob_channel)
    end)

    it("answers unsupported_challenge_type (401) for a factor the user does not have", function()
      local u = user("u@example.com", "always")
      local token = mfa_token(c, "u@example.com")
      fails("unsupported_challenge_type", 401,
        "User does not have any enrolled authenticator with the supported challenge type (otp oob)",
        c:mfa_challenge { mfa_token = token })
      enroll(u, { type = "otp" })
      fails("unsupported_challenge_type", 401,
        "User does not have any enrolled authenticator with the supported challenge type (oob)",
        c:mfa_challenge { mfa_token = token, challenge_type = "oob" })
    end)
  end)

  describe("push", function()
    local function push_user(email)
      local u = user(email, "always")
      local e = enroll(u, { type = "push", name = "Pixel 8" })
      return u, e.authenticator
    end

    local function approve(oob_code, action)
      return ctl("POST", "/guardian/" .. oob_code .. "/" .. (action or "approve"))
    end

    it("is approved after three pending polls", function()
      ctl("POST", "/mfa", { poll_min_interval = 0 })
      local u, push = push_user("p@example.com")
      local token = mfa_token(c, "p@example.com")
      local list = assert(c:mfa_authenticators(token))
      assert.same({ id = push.id, authenticator_type = "oob", active = true, oob_channel = "auth0", name = "Pixel 8",
        type = "push-notification" }, list[1])
      assert.matches("^totp|dev_", list[2].id)
      local ch = assert(c:mfa_challenge { mfa_token = token, challenge_type = "oob", authenticator_id = push.id })
      assert.same({ challenge_type = "oob", oob_code = ch.oob_code }, ch)
      local msgs = outbox("p@example.com")
      assert.equal("push", msgs[#msgs].kind)
      assert.equal(ch.oob_code, msgs[#msgs].oob_code)
      local txs = ctl("GET", "/guardian?user_id=" .. auth0.core.pct_escape(u.user_id)).transactions
      assert.equal(1, #txs)
      assert.equal(ch.oob_code, txs[1].oob_code)
      assert.equal("pending", txs[1].state)
      fails("authorization_pending", 400, "Authorization pending: please repeat the request in a few seconds.",
        c:mfa_verify { mfa_token = token, oob_code = ch.oob_code })
      local pending = 0
      local tokens, err = c:mfa_poll { mfa_token = token, oob_code = ch.oob_code, interval = 0.05,
        on_pending = function()
          pending = pending + 1
          if pending == 3 then approve(ch.oob_code) end
        end }
      assert.is_nil(err)
      assert.equal(3, pending)
      assert.same({ "mfa" }, claims(c, tokens).amr)
      assert.same({}, ctl("GET", "/guardian").transactions)
    end)

    it("answers slow_down when polled too fast, and the client adds 5 s", function()
      push_user("sd@example.com")
      local waits = {}
      local ch, token
      local sc = client { sleep = function(s)
        waits[#waits + 1] = s
        advance(s)
        if #waits == 4 then approve(ch.oob_code) end
      end }
      token = mfa_token(sc, "sd@example.com")
      ch = assert(sc:mfa_challenge { mfa_token = token })
      local seen = {}
      local tokens, err = sc:mfa_poll { mfa_token = token, oob_code = ch.oob_code, interval = 1,
        on_pending = function(waited) seen[#seen + 1] = waited end }
      assert.is_nil(err)
      assert.is_string(tokens.access_token)
      assert.same({ 1, 1, 6, 6 }, waits)
      assert.same({ 1, 2, 8 }, seen)
      -- the wire answer
      token = mfa_token(sc, "sd@example.com")
      ch = assert(sc:mfa_challenge { mfa_token = token })
      fails("authorization_pending", 400, nil, sc:mfa_verify { mfa_token = token, oob_code = ch.oob_code })
      fails("slow_down", 429, "You are polling faster than the specified interval of 5 seconds.",
        sc:mfa_verify { mfa_token = token, oob_code = ch.oob_code })
      sc:close()
    end)

    it("ends with access_denied when rejected", function()
      ctl("POST", "/mfa", { poll_min_interval = 0 })
      push_user("r@example.com")
      local token = mfa_token(c, "r@example.com")
      local ch = assert(c:mfa_challenge { mfa_token = token, challenge_type = "oob" })
      local pending = 0
      fails("access_denied", 400, "MFA Authorization rejected.", c:mfa_poll { mfa_token = token,
        oob_code = ch.oob_code, interval = 0.05, on_pending = function()
          pending = pending + 1
          approve(ch.oob_code, "reject")
        end })
      assert.equal(1, pending)
    end)

    it("ends on an expired oob_code and on the overall timeout", function()
      ctl("POST", "/mfa", { poll_min_interval = 0 })
      push_user("x@example.com")
      local token = mfa_token(c, "x@example.com")
      local ch = assert(c:mfa_challenge { mfa_token = token, challenge_type = "oob" })
      fails("expired_token", 401, "oob_code is expired", c:mfa_poll { mfa_token = token, oob_code = ch.oob_code,
        interval = 0.05, on_pending = function() advance(301) end })
      ch = assert(c:mfa_challenge { mfa_token = token, challenge_type = "oob" })
      local e = fails("timeout", nil, nil, c:mfa_poll { mfa_token = token, oob_code = ch.oob_code, interval = 0.05,
        timeout = 0.2 })
      assert.equal("push approval not received within 0.2 s", e.message)
    end)

    it("polls without blocking, driven by client:poll", function()
      ctl("POST", "/mfa", { poll_min_interval = 0 })
      push_user("nb@example.com")
      local token = mfa_token(c, "nb@example.com")
      local ch = assert(c:mfa_challenge { mfa_token = token, challenge_type = "oob" })
      local pending, calls, result, failure = 0, 0, nil, nil
      local req = c:mfa_poll({ mfa_token = token, oob_code = ch.oob_code, interval = 0.05, on_pending = function()
        pending = pending + 1
        if pending == 2 then approve(ch.oob_code) end
      end }, function(tokens, err)
        calls = calls + 1
        result, failure = tokens, err
      end)
      assert.is_false(req:done())
      assert.equal(0, calls)
      local spins = 0
      while calls == 0 and spins < 200 do
        c:poll(50)
        spins = spins + 1
      end
      collectgarbage()
      assert.equal(1, calls)
      assert.is_nil(failure)
      assert.equal(2, pending)
      assert.same({ "mfa" }, claims(c, result).amr)
      assert.is_true(req:done())
    end)

    it("deletes push with its paired totp, and totp with its push", function()
      local u, push = push_user("del@example.com")
      local token = mfa_token(c, "del@example.com")
      fails("invalid_authenticator", 404, "Authenticator not found",
        c:mfa_delete_authenticator(token, "push|dev_0000000000000000"))
      assert.is_true(c:mfa_delete_authenticator(token, push.id))
      assert.same({}, assert(c:mfa_authenticators(token)))
      local e = enroll(u, { type = "push" })
      assert.equal(3, #assert(c:mfa_authenticators(token)))
      assert.is_true(c:mfa_delete_authenticator(token, e.paired.id))
      assert.same({}, assert(c:mfa_authenticators(token)))
    end)

    it("enrolls push by polling until the device scans the code", function()
      ctl("POST", "/mfa", { poll_min_interval = 0 })
      local u = user("pe@example.com", "always")
      local token = mfa_token(c, "pe@example.com")
      local a = assert(c:mfa_associate { token = token, authenticator_types = { "oob" }, oob_channels = { "auth0" } })
      assert.equal("auth0", a.oob_channel)
      assert.is_nil(a.binding_method)
      local uri = assert(auth0.parse_otpauth(a.barcode_uri))
      assert.matches("^%w+$", uri.params.enrollment_tx_id)
      local tx = ctl("GET", "/guardian?user_id=" .. auth0.core.pct_escape(u.user_id)).transactions[1]
      assert.equal(uri.params.enrollment_tx_id, tx.enrollment_tx_id)
      assert.is_true(tx.enrollment)
      local tokens = assert(c:mfa_poll { mfa_token = token, oob_code = a.oob_code, interval = 0.05,
        on_pending = function() ctl("POST", "/guardian/" .. a.oob_code .. "/approve", { name = "Alice's phone" }) end })
      assert.is_string(tokens.access_token)
      token = mfa_token(c, "pe@example.com")
      local list = assert(c:mfa_authenticators(token))
      assert.equal("Alice's phone", list[1].name)
      assert.is_true(list[1].active)
      assert.equal("otp", list[2].authenticator_type)
      assert.is_true(list[2].active)
    end)
  end)

  describe("recovery code", function()
    it("works once and is rotated on each use", function()
      user("rc@example.com", "always")
      local token = mfa_token(c, "rc@example.com")
      local a = assert(c:mfa_associate { token = token, authenticator_types = { "otp" } })
      assert(c:mfa_verify { mfa_token = token, otp = auth0.totp(a.secret, { time = now() }) })
      local first = a.recovery_codes[1]
      token = mfa_token(c, "rc@example.com")
      local tokens = assert(c:mfa_verify { mfa_token = token, recovery_code = first })
      assert.same({ "mfa" }, claims(c, tokens).amr)
      local second = tokens.recovery_code
      assert.equal(24, #second)
      assert.matches(RC_PATTERN, second)
      assert.not_equal(first, second)
      token = mfa_token(c, "rc@example.com")
      fails("invalid_grant", 403, "Invalid recovery code.", c:mfa_verify { mfa_token = token, recovery_code = first })
      tokens = assert(c:mfa_verify { mfa_token = token, recovery_code = second })
      assert.not_equal(second, tokens.recovery_code)
    end)
  end)

  describe("mfa_token", function()
    it("expires after 600 s", function()
      ctl("POST", "/clock", { freeze = true })   -- 599 s must stay 599 s (reset restarts the clock)
      local u = user("exp@example.com", "always")
      local secret = enroll(u, { type = "otp" }).authenticator.secret
      local token = mfa_token(c, "exp@example.com")
      advance(599)
      assert(c:mfa_authenticators(token))
      local t = advance(1)
      fails("expired_token", 401, "mfa_token is expired", c:mfa_authenticators(token))
      fails("expired_token", 401, "mfa_token is expired", c:mfa_challenge { mfa_token = token })
      fails("expired_token", 401, "mfa_token is expired",
        c:mfa_verify { mfa_token = token, otp = auth0.totp(secret, { time = t }) })
    end)

    it("is malformed when it is not one", function()
      local plain = assert(login(c, "plain@example.com"))
      fails("invalid_grant", 401, "Malformed mfa_token", c:mfa_challenge { mfa_token = "Fe26.2**nope" })
      fails("invalid_grant", 401, "Malformed mfa_token", c:mfa_challenge { mfa_token = plain.access_token })
      fails("invalid_grant", 403, "Malformed mfa_token", c:mfa_verify { mfa_token = "garbage", otp = "123456" })
      fails("invalid_grant", 401, "Malformed mfa_token", c:mfa_authenticators("garbage"))
    end)
  end)

  it("allows 10 failed codes, then 429 too_many_attempts until the bucket refills (6 min)", function()
    -- the bucket refills continuously: a real second ticking by during the test would add to
    -- the 359 s below, so the virtual clock stands still here (reset restarts it)
    ctl("POST", "/clock", { freeze = true })
    local u = user("bf@example.com", "always")
    local secret = enroll(u, { type = "otp" }).authenticator.secret
    local token = mfa_token(c, "bf@example.com")
    local t = now()
    for _ = 1, 10 do
      fails("invalid_grant", 403, "Invalid otp_code.", c:mfa_verify { mfa_token = token, otp = wrong_totp(secret, t) })
    end
    fails("too_many_attempts", 429, "Too many failed codes. Wait for some minutes before retrying.",
      c:mfa_verify { mfa_token = token, otp = auth0.totp(secret, { time = t }) })
    t = advance(359)
    fails("too_many_attempts", 429, nil, c:mfa_verify { mfa_token = token, otp = auth0.totp(secret, { time = t }) })
    t = advance(1)
    assert(c:mfa_verify { mfa_token = token, otp = auth0.totp(secret, { time = t }) })
  end)

  it("asks for MFA on refresh when the policy says so", function()
    local u = user("rf@example.com", { factors = { "otp" }, refresh = true })
    local secret = enroll(u, { type = "otp" }).authenticator.secret
    local token = mfa_token(c, "rf@example.com", { scope = "openid offline_access",
      audience = "https://api.example.com" })
    local tokens = assert(c:mfa_verify { mfa_token = token, otp = auth0.totp(secret, { time = now() }) })
    local err = fails("mfa_required", 403, nil, c:refresh(tokens.refresh_token))
    assert.same({ challenge = { { type = "otp" } } }, err.mfa_requirements)
    local again = assert(c:mfa_verify { mfa_token = err.mfa_token,
      otp = auth0.totp(secret, { time = advance(30) }) })
    assert.is_string(again.refresh_token)
    assert.not_equal(tokens.refresh_token, again.refresh_token)
    assert.equal("openid offline_access", again.scope)
    -- with mfa = "always" the refresh grant does not ask
    user("rf@example.com", "always")
    assert(c:refresh(again.refresh_token))
  end)

  it("keeps polling when authorization_pending comes with HTTP 200 (the old docs' variant)", function()
    local calls = 0
    local tc = auth0.new { base_url = "https://tenant.example", client_id = "x", sleep = function() end,
      transport = function()
        calls = calls + 1
        if calls < 3 then
          return { status = 200, headers = {}, body = '{"error":"authorization_pending","error_description":"pending"}' }
        end
        return { status = 200, headers = {}, body = '{"access_token":"at","token_type":"Bearer","expires_in":60}' }
      end }
    local pending = 0
    local t = assert(tc:mfa_poll { mfa_token = "t", oob_code = "o", interval = 0.01, on_pending = function() pending = pending + 1 end })
    assert.equal("at", t.access_token)
    assert.equal(3, calls)
    assert.equal(2, pending)
  end)

  it("reads a rejection given as invalid_grant + \"MFA Authorization rejected.\" as access_denied", function()
    -- the docs' variant (the emulator answers like the real server): through the transport seam
    local calls = 0
    local tc = auth0.new { base_url = "https://tenant.example", client_id = "x", sleep = function() end,
      transport = function()
        calls = calls + 1
        return { status = 403, headers = {}, body = '{"error":"invalid_grant","error_description":"MFA Authorization rejected."}' }
      end }
    fails("access_denied", 403, "MFA Authorization rejected.", tc:mfa_poll { mfa_token = "t", oob_code = "o" })
    assert.equal(1, calls)
    tc:close()
  end)
end)
