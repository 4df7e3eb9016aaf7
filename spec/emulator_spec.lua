-- The local Auth0 emulator: handler contract, passwordless start, OTP grant, tokens, refresh,
-- userinfo, revoke, discovery, control API (in-process), plus one login over HTTPS via nginx.
local cjson = require("cjson.safe").new()

local core = require "auth0.core"
local emulator = require "auth0.emulator"

local OTP = "http://auth0.com/oauth/grant-type/passwordless/otp"
local BASE = "https://127.0.0.1:8443"
local ISS = BASE .. "/"
local KEY_PEM = core.rsa_key(nil):pem()   -- one key for every instance: key generation is slow
local T0 = 1700000000

local function new_emu()
  local emu = emulator.new{ base_url = BASE, key_pem = KEY_PEM }
  emu:set_time(T0)
  emu:freeze(true)
  return emu
end

local function decode(s)
  local v = cjson.decode(s)
  assert(v ~= nil, "not JSON: " .. tostring(s))
  return v
end

local function call(emu, method, path, body, headers)
  headers = headers or {}
  if body ~= nil and type(body) ~= "string" then
    body = assert(cjson.encode(body))
    headers["content-type"] = headers["content-type"] or "application/json"
  end
  local resp = emu:handle{ method = method, path = path, headers = headers, body = body, remote_addr = "10.0.0.1" }
  local decoded = resp.body ~= "" and cjson.decode(resp.body) or nil
  return resp, decoded
end

local function start(emu, body, headers)
  return call(emu, "POST", "/passwordless/start", body, headers)
end

local function token(emu, body, headers)
  return call(emu, "POST", "/oauth/token", body, headers)
end

local function outbox(emu, to)
  local _, body = call(emu, "GET", "/__emulator/outbox" .. (to and ("?to=" .. emulator.url_encode(to)) or ""))
  return body.messages
end

local function last_code(emu, to)
  local m = outbox(emu, to)
  return m[#m].code
end

local function jwt(s)
  local h, p = s:match("^([^.]+)%.([^.]+)%.[^.]+$")
  return decode(core.b64url_decode(h)), decode(core.b64url_decode(p))
end

local function err_body(code, description, extra)
  local t = { error = code, error_description = description }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function basic(id, secret)
  return "Basic " .. core.b64_encode(id .. ":" .. secret)
end

local function login(emu, email, extra)
  start(emu, { client_id = "emu-native", connection = "email", email = email, send = "code" })
  local body = { grant_type = OTP, client_id = "emu-native", username = email, realm = "email",
                 otp = last_code(emu, email) }
  for k, v in pairs(extra or {}) do body[k] = v end
  return token(emu, body)
end

describe("emulator handler", function()
  local emu
  before_each(function() emu = new_emu() end)

  describe("common", function()
    it("answers JSON with a request id, and 404/405 for unknown routes", function()
      local r, b = call(emu, "GET", "/nope")
      assert.same(404, r.status)
      assert.same(err_body("not_found", "Not found"), b)
      assert.same("application/json; charset=utf-8", r.headers["content-type"])
      assert.truthy(r.headers["x-auth0-requestid"]:match("^%x+$"))
      assert.same(20, #r.headers["x-auth0-requestid"])
      r = call(emu, "GET", "/passwordless/start")
      assert.same(405, r.status)
    end)

    it("works as an in-process transport", function()
      local fn = emu:transport()
      local resp = fn{ method = "GET", url = BASE .. "/.well-known/openid-configuration?x=1", headers = {} }
      assert.same(200, resp.status)
      assert.same(ISS, decode(resp.body).issuer)
      resp = fn{ method = "POST", url = BASE .. "/passwordless/start",
                 headers = { ["content-type"] = "application/json" },
                 body = '{"client_id":"emu-native","connection":"email","email":"t@example.com","send":"code"}' }
      assert.same(200, resp.status)
    end)

    it("answers 400 for a body that is not JSON", function()
      local r, b = token(emu, "{nope", { ["content-type"] = "application/json" })
      assert.same(400, r.status)
      assert.same("invalid_request", b.error)
      r, b = start(emu, "[1,2]", { ["content-type"] = "application/json" })
      assert.same(400, r.status)
      assert.same("bad.request", b.error)
    end)
  end)

  describe("POST /passwordless/start", function()
    it("sends a code by e-mail and answers like the recording", function()
      local r, b = start(emu, { client_id = "emu-native", connection = "email", email = "Ann@Example.com",
                                send = "code" }, { ["x-request-language"] = "de-DE" })
      assert.same(200, r.status)
      assert.same("application/json; charset=utf-8", r.headers["content-type"])
      assert.truthy(b._id:match("^" .. ("%x"):rep(24) .. "$"))
      assert.same({ _id = b._id, email = "Ann@Example.com", email_verified = false }, b)
      assert.same("50", r.headers["x-ratelimit-limit"])
      assert.same("49", r.headers["x-ratelimit-remaining"])
      assert.same(tostring(T0 + 72), r.headers["x-ratelimit-reset"])
      local m = outbox(emu)
      assert.same(1, #m)
      assert.truthy(m[1].code:match("^%d%d%d%d%d%d$"))
      assert.same({ to = "Ann@Example.com", connection = "email", client_id = "emu-native", kind = "code",
                    send = "code", code = m[1].code, language = "de-DE", sent_at = T0 }, m[1])
    end)

    it("sends a magic link by SMS when send is omitted (default link)", function()
      local r, b = start(emu, { client_id = "emu-native", connection = "sms", phone_number = "+123456789" })
      assert.same(200, r.status)
      assert.same({ _id = b._id, phone_number = "+123456789", phone_verified = false }, b)
      local m = outbox(emu, "+123456789")[1]
      assert.same("link", m.kind)
      assert.same("link", m.send)
      assert.same(BASE .. "/passwordless/verify_redirect?verification_code=" .. m.code
                  .. "&connection=sms&client_id=emu-native&phone_number=%2B123456789", m.link)
    end)

    it("flattens authParams into the magic link", function()
      start(emu, { client_id = "emu-native", connection = "email", email = "ewa+888@example.com", send = "link_ios",
                   authParams = { scope = "openid profile", state = "xyz", redirect_uri = "https://a.example/cb" } })
      local m = outbox(emu)[1]
      assert.same("link_ios", m.send)
      assert.same(BASE .. "/passwordless/verify_redirect?redirect_uri=https%3A%2F%2Fa.example%2Fcb"
                  .. "&scope=openid%20profile&state=xyz&verification_code=" .. m.code
                  .. "&connection=email&client_id=emu-native&email=ewa%2B888%40example.com", m.link)
    end)

    it("accepts a form-encoded body", function()
      local r, b = start(emu, "client_id=emu-native&connection=email&email=f%40example.com&send=code",
                         { ["content-type"] = "application/x-www-form-urlencoded" })
      assert.same(200, r.status)
      assert.same("f@example.com", b.email)
    end)

    it("reports email_verified true for an existing user and reuses its id", function()
      local _, u = call(emu, "POST", "/__emulator/users", { connection = "email", email = "old@example.com" })
      local _, b = start(emu, { client_id = "emu-native", connection = "email", email = "old@example.com" })
      assert.same({ _id = u.id, email = "old@example.com", email_verified = true }, b)
      assert.same("email|" .. u.id, u.user_id)
    end)

    describe("errors", function()
      before_each(function()
        call(emu, "POST", "/__emulator/connections", { name = "db", strategy = "auth0" })
        call(emu, "POST", "/__emulator/connections", { name = "only-other", strategy = "email",
                                                       enabled_clients = { "someone-else" } })
      end)
      local ok = { client_id = "emu-native", connection = "email", email = "a@example.com" }
      local function with(changes)
        local t = {}
        for k, v in pairs(ok) do t[k] = v end
        for k, v in pairs(changes) do t[k] = v end
        for k, v in pairs(t) do if v == false then t[k] = nil end end
        return t
      end
      local rows = {
        { with{ foo = 1 }, "bad.request", "the following properties are not allowed: foo" },
        { with{ client_id = false }, "bad.client_id", "Missing required property: client_id" },
        { with{ client_id = "nobody" }, "bad.client_id", "Unknown client: nobody" },
        { with{ connection = false }, "bad.connection", "Missing required property: connection" },
        { with{ connection = "nope" }, "bad.connection", "Connection does not exist" },
        { with{ connection = "only-other" }, "bad.connection", "Connection is disabled" },
        { with{ connection = "db" }, "bad.connection",
          "Invalid connection strategy. It must either be a passwordless connection" },
        { with{ send = "pigeon" }, "bad.send", "error in send - No enum match for: pigeon" },
        { with{ authParams = "scope=openid" }, "bad.authParams",
          "error in authParams - invalid type: string (expected object)" },
        { with{ email = false }, "bad.email", "Missing required property: email" },
        { with{ email = "not-an-email" }, "bad.email",
          "error in email - email format validation failed: not-an-email" },
        { with{ connection = "sms", email = false }, "bad.phone_number", "Missing required property: phone_number" },
        { with{ connection = "sms", email = false, phone_number = "0123" }, "bad.phone_number",
          "String does not match pattern: ^\\+[0-9]{1,15}$" },
        { with{ connection = "sms", email = false, phone_number = "+1234567890123456" }, "bad.phone_number",
          "String does not match pattern: ^\\+[0-9]{1,15}$" },
      }
      for i, row in ipairs(rows) do
        it("row " .. i .. ": " .. row[2] .. " " .. row[3], function()
          local r, b = start(emu, row[1])
          assert.same(400, r.status)
          assert.same(err_body(row[2], row[3]), b)
          assert.same("50", r.headers["x-ratelimit-limit"])
          assert.same(0, #outbox(emu))
        end)
      end

      it("requires client authentication from a confidential client", function()
        local r, b = start(emu, with{ client_id = "emu-confidential" })
        assert.same(403, r.status)
        assert.same(err_body("unauthorized_client", "Client authentication is required"), b)
        r, b = start(emu, with{ client_id = "emu-confidential", client_secret = "wrong" })
        assert.same(403, r.status)
        assert.same("unauthorized_client", b.error)
        r = start(emu, with{ client_id = "emu-confidential", client_secret = "emu-confidential-secret" })
        assert.same(200, r.status)
        r = start(emu, with{ client_id = false },
                  { authorization = basic("emu-confidential", "emu-confidential-secret") })
        assert.same(200, r.status)
      end)
    end)

    describe("rate limit", function()
      it("allows 50 per hour per IP for public callers, then 429 with headers", function()
        for i = 1, 50 do
          local r = start(emu, { client_id = "emu-native", connection = "email", email = "r@example.com" })
          assert.same(200, r.status)
          assert.same(tostring(50 - i), r.headers["x-ratelimit-remaining"])
        end
        local r, b = start(emu, { client_id = "emu-native", connection = "email", email = "r@example.com" })
        assert.same(429, r.status)
        assert.same(err_body("too_many_requests", "Too many requests. Check the X-RateLimit-Limit, "
                             .. "X-RateLimit-Remaining and X-RateLimit-Reset headers."), b)
        assert.same("50", r.headers["x-ratelimit-limit"])
        assert.same("0", r.headers["x-ratelimit-remaining"])
        assert.same(tostring(T0 + 3600), r.headers["x-ratelimit-reset"])
        -- another IP has its own bucket
        local r2 = emu:handle{ method = "POST", path = "/passwordless/start", remote_addr = "10.0.0.2",
                               headers = { ["content-type"] = "application/json" },
                               body = '{"client_id":"emu-native","connection":"email","email":"r@example.com"}' }
        assert.same(200, r2.status)
        -- one token comes back every 72 s
        emu:advance(72)
        r = start(emu, { client_id = "emu-native", connection = "email", email = "r@example.com" })
        assert.same(200, r.status)
        assert.same("0", r.headers["x-ratelimit-remaining"])
      end)

      it("does not limit authenticated callers, and follows the control API settings", function()
        call(emu, "POST", "/__emulator/rate_limits", { passwordless_start = { limit = 2, window = 60 } })
        local conf = { client_id = "emu-confidential", client_secret = "emu-confidential-secret",
                       connection = "email", email = "c@example.com" }
        for _ = 1, 5 do
          local r = start(emu, conf)
          assert.same(200, r.status)
          assert.same("2", r.headers["x-ratelimit-limit"])
          assert.same("2", r.headers["x-ratelimit-remaining"])
        end
        local pub = { client_id = "emu-native", connection = "email", email = "c@example.com" }
        assert.same(200, start(emu, pub).status)
        assert.same(200, start(emu, pub).status)
        local r = start(emu, pub)
        assert.same(429, r.status)
        assert.same(tostring(T0 + 60), r.headers["x-ratelimit-reset"])
        call(emu, "POST", "/__emulator/rate_limits", { enabled = false })
        assert.same(200, start(emu, pub).status)
      end)
    end)
  end)

  describe("passwordless OTP grant", function()
    it("logs in with the code and issues RS256 tokens with the documented claims", function()
      local _, s = start(emu, { client_id = "emu-native", connection = "email", email = "ann@example.com",
                                send = "code" })
      local r, b = token(emu, { grant_type = OTP, client_id = "emu-native", username = "ann@example.com",
                                realm = "email", otp = last_code(emu), audience = "https://api.example.com",
                                scope = "openid profile email offline_access" })
      assert.same(200, r.status)
      assert.same("application/json; charset=utf-8", r.headers["content-type"])
      assert.same("Bearer", b.token_type)
      assert.same(86400, b.expires_in)
      assert.same("openid profile email offline_access", b.scope)
      assert.same("string", type(b.refresh_token))
      local _, jwks = call(emu, "GET", "/.well-known/jwks.json")
      local kid = jwks.keys[1].kid
      local ah, ap = jwt(b.access_token)
      assert.same({ alg = "RS256", typ = "JWT", kid = kid }, ah)
      local sub = "email|" .. s._id
      assert.same({ iss = ISS, sub = sub, aud = { "https://api.example.com", ISS .. "userinfo" }, iat = T0,
                    exp = T0 + 86400, scope = "openid profile email offline_access", azp = "emu-native" }, ap)
      local ih, ip = jwt(b.id_token)
      assert.same(kid, ih.kid)
      assert.same({ iss = ISS, sub = sub, aud = "emu-native", iat = T0, exp = T0 + 36000,
                    email = "ann@example.com", email_verified = true, name = "ann@example.com", nickname = "ann",
                    picture = ip.picture, updated_at = "2023-11-14T22:13:20.000Z" }, ip)
      assert.truthy(ip.picture:match("^https://s%.gravatar%.com/avatar/%x+%?"))
      local _, users = call(emu, "GET", "/__emulator/users")
      assert.same(1, #users.users)
      assert.same(sub, users.users[1].user_id)
    end)

    it("defaults the scope, omits refresh and audience when not asked (form body)", function()
      start(emu, { client_id = "emu-native", connection = "sms", phone_number = "+15550001", send = "code" })
      local r, b = token(emu, "grant_type=" .. emulator.url_encode(OTP) .. "&client_id=emu-native"
                         .. "&username=%2B15550001&realm=sms&otp=" .. last_code(emu),
                         { ["content-type"] = "application/x-www-form-urlencoded" })
      assert.same(200, r.status)
      assert.same("openid profile email", b.scope)
      assert.is_nil(b.refresh_token)
      local _, ap = jwt(b.access_token)
      assert.same(ISS .. "userinfo", ap.aud)
      local _, ip = jwt(b.id_token)
      assert.truthy(ip.sub:match("^sms|%x+$"))
      assert.same("+15550001", ip.name)
      assert.is_nil(ip.email)
      assert.is_nil(ip.phone_number)
    end)

    it("adds phone claims for the phone scope and no id_token without openid", function()
      start(emu, { client_id = "emu-native", connection = "sms", phone_number = "+15550002", send = "code" })
      local _, b = token(emu, { grant_type = OTP, client_id = "emu-native", username = "+15550002", realm = "sms",
                                otp = last_code(emu), scope = "openid phone" })
      local _, ip = jwt(b.id_token)
      assert.same("+15550002", ip.phone_number)
      assert.same(true, ip.phone_verified)
      assert.is_nil(ip.name)
      local r
      start(emu, { client_id = "emu-native", connection = "sms", phone_number = "+15550002", send = "code" })
      r, b = token(emu, { grant_type = OTP, client_id = "emu-native", username = "+15550002", realm = "sms",
                          otp = last_code(emu), scope = "profile", audience = "https://api.example.com" })
      assert.same(200, r.status)
      assert.is_nil(b.id_token)
      local _, ap = jwt(b.access_token)
      assert.same("https://api.example.com", ap.aud)
    end)

    it("accepts the code from a magic link", function()
      start(emu, { client_id = "emu-native", connection = "email", email = "l@example.com" })
      local link = outbox(emu)[1].link
      local code = link:match("verification_code=(%d+)")
      local r = token(emu, { grant_type = OTP, client_id = "emu-native", username = "l@example.com",
                             realm = "email", otp = code })
      assert.same(200, r.status)
    end)

    it("rejects wrong, superseded, reused and expired codes", function()
      local wrong = err_body("invalid_grant", "Wrong email or verification code.")
      local function try(otp)
        return token(emu, { grant_type = OTP, client_id = "emu-native", username = "w@example.com",
                            realm = "email", otp = otp })
      end
      start(emu, { client_id = "emu-native", connection = "email", email = "w@example.com", send = "code" })
      local first = last_code(emu)
      start(emu, { client_id = "emu-native", connection = "email", email = "w@example.com", send = "code" })
      local second = last_code(emu)
      if first ~= second then
        local r, b = try(first)
        assert.same(403, r.status)
        assert.same(wrong, b)
      end
      local r = try(second)
      assert.same(200, r.status)
      local b
      r, b = try(second)
      assert.same(403, r.status)
      assert.same(wrong, b)
      start(emu, { client_id = "emu-native", connection = "email", email = "w@example.com", send = "code" })
      emu:advance(180)
      r, b = try(last_code(emu))
      assert.same(403, r.status)
      assert.same(wrong, b)
    end)

    it("kills the code after 3 failed attempts", function()
      start(emu, { client_id = "emu-native", connection = "sms", phone_number = "+4912345", send = "code" })
      local code = last_code(emu)
      local bad = code == "000000" and "111111" or "000000"
      local function try(otp)
        return token(emu, { grant_type = OTP, client_id = "emu-native", username = "+4912345", realm = "sms",
                            otp = otp })
      end
      for _ = 1, 3 do
        local r, b = try(bad)
        assert.same(403, r.status)
        assert.same(err_body("invalid_grant", "Wrong phone number or verification code."), b)
      end
      local r, b = try(code)
      assert.same(403, r.status)
      assert.same(err_body("invalid_grant",
                           "You've reached the maximum number of attempts. Please try to login again."), b)
      start(emu, { client_id = "emu-native", connection = "sms", phone_number = "+4912345", send = "code" })
      assert.same(200, try(last_code(emu)).status)
    end)

    it("honours otp_length and otp_lifetime per connection", function()
      call(emu, "POST", "/__emulator/connections", { name = "short", strategy = "email", otp_length = 4,
                                                     otp_lifetime = 60 })
      start(emu, { client_id = "emu-native", connection = "short", email = "s@example.com", send = "code" })
      local code = last_code(emu)
      assert.truthy(code:match("^%d%d%d%d$"))
      emu:advance(59)
      local r = token(emu, { grant_type = OTP, client_id = "emu-native", username = "s@example.com",
                             realm = "short", otp = code })
      assert.same(200, r.status)
      start(emu, { client_id = "emu-native", connection = "short", email = "s@example.com", send = "code" })
      emu:advance(60)
      r = token(emu, { grant_type = OTP, client_id = "emu-native", username = "s@example.com",
                       realm = "short", otp = last_code(emu) })
      assert.same(403, r.status)
    end)

    describe("client and request errors", function()
      local function grant(extra, headers)
        local body = { grant_type = OTP, client_id = "emu-native", username = "e@example.com", realm = "email",
                       otp = "123456" }
        for k, v in pairs(extra) do body[k] = v ~= false and v or nil end
        return token(emu, body, headers)
      end

      it("unknown client", function()
        local r, b = grant{ client_id = "nobody" }
        assert.same(403, r.status)
        assert.same(err_body("unauthorized_client", "invalid client"), b)
      end)

      it("confidential client without a valid secret", function()
        local r, b = grant{ client_id = "emu-confidential" }
        assert.same(401, r.status)
        assert.same(err_body("access_denied", "Unauthorized"), b)
        r = grant{ client_id = "emu-confidential", client_secret = "nope" }
        assert.same(401, r.status)
      end)

      it("confidential client with the secret in the body or a Basic header", function()
        start(emu, { client_id = "emu-confidential", client_secret = "emu-confidential-secret",
                     connection = "email", email = "e@example.com", send = "code" })
        local r = grant{ client_id = "emu-confidential", client_secret = "emu-confidential-secret",
                         otp = last_code(emu) }
        assert.same(200, r.status)
        start(emu, { client_id = "emu-confidential", client_secret = "emu-confidential-secret",
                     connection = "email", email = "e@example.com", send = "code" })
        r = grant({ client_id = false, otp = last_code(emu) },
                  { authorization = basic("emu-confidential", "emu-confidential-secret") })
        assert.same(200, r.status)
      end)

      it("grant type not enabled for the client", function()
        call(emu, "POST", "/__emulator/clients", { client_id = "no-otp", grant_types = { "refresh_token" } })
        local r, b = grant{ client_id = "no-otp" }
        assert.same(403, r.status)
        assert.same(err_body("unauthorized_client",
                             "Grant type '" .. OTP .. "' not allowed for the client.",
                             { error_uri = "https://auth0.com/docs/clients/client-grant-types" }), b)
      end)

      it("unknown or disabled realm", function()
        local r, b = grant{ realm = "nope" }
        assert.same(400, r.status)
        assert.same(err_body("invalid_request", "the connection was not found"), b)
        call(emu, "POST", "/__emulator/connections", { name = "other", strategy = "email", enabled_clients = {} })
        r, b = grant{ realm = "other" }
        assert.same(400, r.status)
        assert.same(err_body("invalid_request", "the connection was disabled"), b)
      end)

      it("missing parameters and unsupported grant types", function()
        local r, b = grant{ otp = false }
        assert.same(400, r.status)
        assert.same(err_body("invalid_request", "Missing required parameter: otp"), b)
        r, b = token(emu, { grant_type = "password", client_id = "emu-native" })
        assert.same(400, r.status)
        assert.same(err_body("unsupported_grant_type", "Unsupported grant type: password"), b)
        r, b = token(emu, { client_id = "emu-native" })
        assert.same(400, r.status)
        assert.same(err_body("invalid_request", "Missing required parameter: grant_type"), b)
      end)

      it("blocked user", function()
        call(emu, "POST", "/__emulator/users", { connection = "email", email = "e@example.com", blocked = true })
        start(emu, { client_id = "emu-native", connection = "email", email = "e@example.com", send = "code" })
        local r, b = grant{ otp = last_code(emu) }
        assert.same(401, r.status)
        assert.same(err_body("unauthorized", "user is blocked"), b)
      end)

      it("sign-up disabled", function()
        call(emu, "POST", "/__emulator/connections", { name = "closed", strategy = "email", disable_signup = true })
        start(emu, { client_id = "emu-native", connection = "closed", email = "e@example.com", send = "code" })
        local r, b = grant{ realm = "closed", otp = last_code(emu) }
        assert.same(403, r.status)
        assert.same(err_body("access_denied", "Public signup is disabled"), b)
        call(emu, "POST", "/__emulator/users", { connection = "closed", email = "e@example.com" })
        start(emu, { client_id = "emu-native", connection = "closed", email = "e@example.com", send = "code" })
        assert.same(200, grant{ realm = "closed", otp = last_code(emu) }.status)
      end)

      it("unknown audience", function()
        local r, b = grant{ audience = "https://nope.example.com" }
        assert.same(403, r.status)
        assert.same(err_body("access_denied", "Service not found: https://nope.example.com"), b)
      end)
    end)

    it("consults the mfa_gate hook before issuing tokens", function()
      local seen
      emu.mfa_gate = function(_, user, client, tx)
        seen = { user.user_id, client.client_id, tx.grant_type, tx.audience }
        return emulator.error(403, "mfa_required", "Multifactor authentication required", { mfa_token = "Fe26.2*x" })
      end
      local r, b = login(emu, "m@example.com", { audience = "https://api.example.com" })
      assert.same(403, r.status)
      assert.same(err_body("mfa_required", "Multifactor authentication required", { mfa_token = "Fe26.2*x" }), b)
      assert.truthy(seen[1]:match("^email|%x+$"))
      assert.same({ "emu-native", OTP, "https://api.example.com" }, { seen[2], seen[3], seen[4] })
    end)
  end)

  describe("refresh, userinfo, revoke", function()
    local tokens
    before_each(function()
      local r
      r, tokens = login(emu, "u@example.com", { audience = "https://api.example.com",
                                                scope = "openid profile email offline_access" })
      assert.same(200, r.status)
    end)

    local function refresh(rt, extra)
      local body = { grant_type = "refresh_token", client_id = "emu-native", refresh_token = rt }
      for k, v in pairs(extra or {}) do body[k] = v end
      return token(emu, body)
    end

    it("refreshes with rotation and may narrow the scope", function()
      emu:advance(100)
      local r, b = refresh(tokens.refresh_token)
      assert.same(200, r.status)
      assert.same("openid profile email offline_access", b.scope)
      assert.same(86400, b.expires_in)
      assert.same("Bearer", b.token_type)
      assert.is_string(b.id_token)
      assert.is_string(b.refresh_token)
      assert.are_not.equal(tokens.refresh_token, b.refresh_token)
      local _, ap = jwt(b.access_token)
      assert.same(T0 + 100, ap.iat)
      local b2
      r, b2 = refresh(b.refresh_token, { scope = "openid" })
      assert.same(200, r.status)
      assert.same("openid", b2.scope)
      assert.is_nil(b2.refresh_token)
      r, b2 = refresh(b.refresh_token, { scope = "openid admin" })
      assert.same(403, r.status)
      assert.same("invalid_scope", b2.error)
      -- presenting the rotated-out token again is reuse: Auth0 revokes the whole family
      r, b2 = refresh(tokens.refresh_token)
      assert.same(403, r.status)
      assert.same(err_body("invalid_grant", "Unknown or invalid refresh token."), b2)
      assert.same(403, (refresh(b.refresh_token)).status)
    end)

    it("rejects refresh tokens of deleted or blocked users", function()
      local _, ap = jwt(tokens.access_token)
      call(emu, "POST", "/__emulator/users", { connection = "email", email = "u@example.com", blocked = true })
      local r, b = refresh(tokens.refresh_token)
      assert.same(403, r.status)
      assert.same(err_body("invalid_grant", "user is blocked"), b)
      call(emu, "DELETE", "/__emulator/users?user_id=" .. emulator.url_encode(ap.sub))
      r, b = refresh(tokens.refresh_token)
      assert.same(403, r.status)
      assert.same(err_body("invalid_grant",
                           "The refresh_token was generated for a user who doesn't exist anymore."), b)
    end)

    it("revokes refresh tokens with 200 and an empty body", function()
      local r = call(emu, "POST", "/oauth/revoke", { client_id = "emu-native", token = tokens.refresh_token })
      assert.same(200, r.status)
      assert.same("", r.body)
      r = call(emu, "POST", "/oauth/revoke", { client_id = "emu-native", token = tokens.refresh_token })
      assert.same(200, r.status)
      local b
      r, b = refresh(tokens.refresh_token)
      assert.same(403, r.status)
      assert.same("invalid_grant", b.error)
      r, b = call(emu, "POST", "/oauth/revoke", { client_id = "emu-native" })
      assert.same(400, r.status)
      assert.same(err_body("invalid_request", "Missing required parameter: token"), b)
      r, b = call(emu, "POST", "/oauth/revoke", { client_id = "emu-confidential", token = "x" })
      assert.same(401, r.status)
      assert.same("invalid_client", b.error)
    end)

    it("serves /userinfo for a valid access token, 401 text otherwise", function()
      local r, b = call(emu, "GET", "/userinfo", nil, { authorization = "Bearer " .. tokens.access_token })
      assert.same(200, r.status)
      local _, ap = jwt(tokens.access_token)
      assert.same({ sub = ap.sub, email = "u@example.com", email_verified = true, name = "u@example.com",
                    nickname = "u", picture = b.picture, updated_at = "2023-11-14T22:13:20.000Z" }, b)
      r = call(emu, "GET", "/userinfo")
      assert.same(401, r.status)
      assert.same("Unauthorized", r.body)
      assert.same("text/plain; charset=utf-8", r.headers["content-type"])
      r = call(emu, "GET", "/userinfo", nil, { authorization = "Bearer " .. tokens.access_token .. "x" })
      assert.same(401, r.status)
      emu:advance(86400)
      r = call(emu, "GET", "/userinfo", nil, { authorization = "Bearer " .. tokens.access_token })
      assert.same(401, r.status)
    end)
  end)

  describe("discovery", function()
    it("publishes the OpenID configuration with a trailing-slash issuer", function()
      local r, b = call(emu, "GET", "/.well-known/openid-configuration")
      assert.same(200, r.status)
      assert.same(ISS, b.issuer)
      assert.same(ISS .. "oauth/token", b.token_endpoint)
      assert.same(ISS .. "userinfo", b.userinfo_endpoint)
      assert.same(ISS .. "oauth/revoke", b.revocation_endpoint)
      assert.same(ISS .. "mfa/challenge", b.mfa_challenge_endpoint)
      assert.same(ISS .. ".well-known/jwks.json", b.jwks_uri)
      assert.same({ "client_secret_basic", "client_secret_post", "private_key_jwt" },
                  b.token_endpoint_auth_methods_supported)
      assert.is_nil(b.grant_types_supported)
      assert.truthy(r.body:find('"issuer":"https://127.0.0.1:8443/"', 1, true))
    end)

    it("publishes the signing key as JWKS", function()
      local r, b = call(emu, "GET", "/.well-known/jwks.json")
      assert.same(200, r.status)
      assert.same(1, #b.keys)
      local k = b.keys[1]
      assert.same({ "AQAB", "RSA", "RS256", "sig" }, { k.e, k.kty, k.alg, k.use })
      assert.same(256, #core.b64url_decode(k.n))
      assert.same(43, #k.kid)
    end)
  end)

  describe("control API", function()
    it("filters and clears the outbox", function()
      start(emu, { client_id = "emu-native", connection = "email", email = "a@example.com", send = "code" })
      start(emu, { client_id = "emu-native", connection = "sms", phone_number = "+111", send = "code" })
      start(emu, { client_id = "emu-native", connection = "email", email = "a@example.com", send = "code" })
      assert.same(3, #outbox(emu))
      local m = outbox(emu, "A@example.com")
      assert.same(2, #m)
      assert.same("+111", outbox(emu, "+111")[1].to)
      local r, b = call(emu, "DELETE", "/__emulator/outbox")
      assert.same(200, r.status)
      assert.same({ deleted = 3 }, b)
      r = call(emu, "GET", "/__emulator/outbox")
      assert.same('{"messages":[]}', r.body)
    end)

    it("moves the clock", function()
      local _, b = call(emu, "POST", "/__emulator/clock", { advance = 10 })
      assert.same({ now = T0 + 10, frozen = true }, b)
      _, b = call(emu, "POST", "/__emulator/clock", { set = 1800000000 })
      assert.same({ now = 1800000000, frozen = true }, b)
      local r
      r, b = call(emu, "POST", "/__emulator/clock", { bogus = 1 })
      assert.same(400, r.status)
      assert.same("bad_request", b.error)
    end)

    it("creates clients and users, and resets to the defaults", function()
      local r, b = call(emu, "POST", "/__emulator/clients", { client_id = "web", client_secret = "s3" })
      assert.same(200, r.status)
      assert.same(true, b.confidential)
      assert.same(5, #b.grant_types)
      r, b = call(emu, "POST", "/__emulator/users", { connection = "sms", phone_number = "+222", mfa = { x = 1 } })
      assert.same(200, r.status)
      assert.truthy(b.user_id:match("^sms|%x+$"))
      assert.same({ x = 1 }, b.mfa)
      r, b = call(emu, "POST", "/__emulator/users", { connection = "nope", email = "x@example.com" })
      assert.same(400, r.status)
      assert.same(err_body("bad_request", "unknown connection: nope"), b)
      assert.same(200, call(emu, "POST", "/__emulator/reset").status)
      assert.is_nil(emu.clients.web)
      assert.same(0, #select(2, call(emu, "GET", "/__emulator/users")).users)
      assert.is_table(emu.clients["emu-native"])
    end)
  end)
end)

describe("emulator over HTTPS (nginx)", function()
  local support = require "spec.support.emulator"
  local https = require "ssl.https"
  local ltn12 = require "ltn12"

  local function request(srv, method, path, body, headers)
    local chunks = {}
    headers = headers or {}
    if body then
      headers["content-type"] = headers["content-type"] or "application/json"
      headers["content-length"] = tostring(#body)
    end
    local ok, status, h = https.request{
      url = srv.base_url .. path, method = method, headers = headers, cafile = srv.ca_file, verify = "peer",
      source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(chunks) }
    assert(ok, status)
    return status, table.concat(chunks), h
  end

  it("starts, logs in with a passwordless code and serves userinfo", function()
    local srv = support.start()
    assert.truthy(srv.base_url:match("^https://127%.0%.0%.1:%d+$"))
    support.reset()
    local status, body, h = request(srv, "POST", "/passwordless/start",
      '{"client_id":"emu-native","connection":"email","email":"net@example.com","send":"code"}')
    assert.same(200, status)
    assert.same("net@example.com", decode(body).email)
    assert.same("50", h["x-ratelimit-limit"])
    assert.truthy(h["x-auth0-requestid"])
    local messages = support.control("GET", "/outbox?to=net%40example.com").messages
    assert.same(1, #messages)
    status, body = request(srv, "POST", "/oauth/token",
      "grant_type=" .. emulator.url_encode(OTP) .. "&client_id=emu-native&username=net%40example.com"
      .. "&realm=email&otp=" .. messages[1].code, { ["content-type"] = "application/x-www-form-urlencoded" })
    assert.same(200, status)
    local t = decode(body)
    local _, ip = jwt(t.id_token)
    assert.same(srv.base_url .. "/", ip.iss)
    status, body = request(srv, "GET", "/userinfo", nil, { authorization = "Bearer " .. t.access_token })
    assert.same(200, status)
    assert.same("net@example.com", decode(body).email)
    local clock = support.control("POST", "/clock", { advance = 5 })
    assert.is_number(clock.now)
  end)
end)
