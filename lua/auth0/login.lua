--- The passwordless, token and user methods of auth0.Client (docs/protocol.md,
-- "Passwordless", "Tokens", "User info", "ID tokens").
local check = require "auth0.check"
local shape = require "auth0.shape"
local errors = require "auth0.error"
local Client = require("auth0.client").Client

local type = type
local at = check.at

local SEND = { code = true, link = true, link_ios = true, link_android = true }

local START, LOGIN, REFRESH, REVOKE = at("passwordless_start"), at("passwordless_login"), at("refresh"), at("revoke")
local USERINFO, JWKS, OIDC, VERIFY = at("userinfo"), at("jwks"), at("openid_configuration"), at("verify_id_token")

-- The call options naming the public function, for the C core's error messages.
local O_START, O_LOGIN, O_REFRESH = { fn = "passwordless_start" }, { fn = "passwordless_login" }, { fn = "refresh" }
local O_REVOKE, O_JWKS, O_OIDC = { fn = "revoke" }, { fn = "jwks" }, { fn = "openid_configuration" }

--- Sends a one-time code or a magic link (POST /passwordless/start).
-- @tparam table p `connection` ("email", "sms" or a custom name), `email` or
-- `phone_number`, `send` ("code" default, "link", "link_ios", "link_android"),
-- `auth_params` (links only), `language` (x-request-language header)
-- @tparam[opt] function cb callback(result, err): the call returns a request object at once
-- @return the server's answer (e.g. `{_id=, email=, email_verified=}`) or nil, err; raises on misuse
function Client:passwordless_start(p, cb)
  check.table(START, p)
  local connection = check.string(START, p.connection, "connection")
  local email, phone = p.email, p.phone_number
  if email ~= nil and phone ~= nil then START:fail("give either email or phone_number, not both") end
  if email == nil and phone == nil then START:fail("email or phone_number is required") end
  if connection == "email" and email == nil then START:fail("the email connection needs email") end
  if connection == "sms" and phone == nil then START:fail("the sms connection needs phone_number") end
  if email ~= nil then check.email(START, email) else check.phone(START, phone) end
  local send = p.send == nil and "code" or p.send
  if not SEND[send] then START:fail("send must be code, link, link_ios or link_android, got " .. check.show(send)) end
  if p.auth_params ~= nil then
    if type(p.auth_params) ~= "table" then START:fail("auth_params must be a table") end
    if send == "code" then START:fail("auth_params only applies to links (send = \"link\")") end
  end
  local language = check.string(START, p.language, "language", true) or self._cfg.language   -- CR/LF: the C core
  local cfg = self._cfg
  local fields = { client_id = cfg.client_id, client_secret = cfg.client_secret, connection = connection,
    email = email, phone_number = phone, send = send, authParams = p.auth_params }
  return self:_call(START, "passwordless_start", fields, language and { fn = "passwordless_start",
    language = language } or O_START, cb, shape.object)
end

--- Exchanges the one-time code for tokens (passwordless OTP grant).
-- @tparam table p `realm` (connection), `username` (email or phone), `otp`, `audience`, `scope`
-- @tparam[opt] function cb callback(tokens, err)
-- @return tokens `{access_token, id_token, refresh_token, token_type, expires_in, scope, expires_at}`
-- or nil, err (`err.code == "mfa_required"` carries `err.mfa_token`, `err.mfa_requirements`)
function Client:passwordless_login(p, cb)
  check.table(LOGIN, p)
  local cfg = self._cfg
  local fields = { client_id = cfg.client_id, client_secret = cfg.client_secret,
    realm = check.string(LOGIN, p.realm, "realm"),
    username = check.string(LOGIN, p.username, "username"),
    otp = check.string(LOGIN, p.otp, "otp"),
    audience = check.string(LOGIN, p.audience, "audience", true) or cfg.audience,
    scope = check.string(LOGIN, p.scope, "scope", true) or cfg.scope,
  }
  return self:_call(LOGIN, "passwordless_login", fields, O_LOGIN, cb, shape.tokens)
end

--- Uses a refresh token (refresh_token grant). May answer `mfa_required`.
-- @param p the refresh token, or a table `{refresh_token, scope, audience}`
-- @tparam[opt] function cb callback(tokens, err)
-- @return tokens or nil, err
function Client:refresh(p, cb)
  if type(p) == "string" then p = { refresh_token = p } end
  check.table(REFRESH, p, "a refresh token or a table")
  local cfg = self._cfg
  local fields = { client_id = cfg.client_id, client_secret = cfg.client_secret,
    refresh_token = check.string(REFRESH, p.refresh_token, "refresh_token"),
    scope = check.string(REFRESH, p.scope, "scope", true),
    audience = check.string(REFRESH, p.audience, "audience", true),
  }
  return self:_call(REFRESH, "refresh", fields, O_REFRESH, cb, shape.tokens)
end

--- Revokes a refresh token (POST /oauth/revoke).
-- @tparam string refresh_token
-- @tparam[opt] function cb callback(true, err)
-- @return true or nil, err
function Client:revoke(refresh_token, cb)
  -- sent as the body field `token`: checked here so that the message names the parameter
  check.wire(REVOKE, check.string(REVOKE, refresh_token, "refresh_token"), "refresh_token")
  local cfg = self._cfg
  return self:_call(REVOKE, "revoke", { client_id = cfg.client_id, client_secret = cfg.client_secret,
    token = refresh_token }, O_REVOKE, cb, shape.ok)
end

--- The user's profile (GET /userinfo) for an access token.
-- @tparam string access_token
-- @tparam[opt] function cb callback(claims, err)
-- @return the OIDC claims or nil, err
function Client:userinfo(access_token, cb)
  check.header(USERINFO, access_token, "access_token")
  return self:_call(USERINFO, "userinfo", nil, { fn = "userinfo", bearer = access_token }, cb, shape.object)
end

--- The tenant's JWKS, cached after the first success unless `refresh` is true.
-- @tparam[opt] boolean refresh fetch again even when cached
-- @tparam[opt] function cb callback(jwks, err); with a cached JWKS it runs from the next poll
-- @return the JWKS or nil, err (with cb: a request object)
function Client:jwks(refresh, cb)
  if type(refresh) == "function" then cb, refresh = refresh, nil end
  local cached = not refresh and self._jwks
  if cached and cb == nil then return cached end
  if cached then
    if self._sched.closed then JWKS:fail("attempt to use a closed auth0.Client") end
    check.func(JWKS, cb, "callback")
    local req = self._sched:request("jwks", cb)
    self._sched:push(function() req:finish(cached) end, req)
    return req
  end
  local function keep(t)
    local v, msg = shape.jwks(t)
    if v then self._jwks = v end
    return v, msg
  end
  return self:_call(JWKS, "jwks", nil, O_JWKS, cb, keep)
end

--- The OpenID discovery document.
-- @tparam[opt] function cb callback(document, err)
-- @return the document or nil, err
function Client:openid_configuration(cb)
  return self:_call(OIDC, "openid_configuration", nil, O_OIDC, cb, shape.object)
end

local function verify(self, id_token, opts, retried)
  local jwt = require "auth0.jwt"
  local jwks, err = self:jwks()
  if not jwks then return nil, err end
  local claims, verr = jwt.verify_id_token(id_token, {
    jwks = jwks, issuer = self._cfg.issuer, client_id = self._cfg.client_id,
    leeway = opts.leeway, now = opts.now, nonce = opts.nonce, max_age = opts.max_age,
  })
  if claims then return claims end
  if not retried and errors.is(verr) and verr.message:find("kid", 1, true) then
    self._jwks = nil   -- keys rotate: refetch once
    return verify(self, id_token, opts, true)
  end
  if errors.is(verr) then return nil, verr end
  return nil, errors.new("invalid_id_token", tostring(verr))
end

--- Checks an ID token's signature (JWKS, RS256) and claims (iss, aud, exp, iat, sub...).
-- @tparam string id_token
-- @tparam[opt] table opts `leeway` (60 s), `now`, `nonce`, `max_age`; never modified
-- @return the claims, or nil, err (`err.code == "invalid_id_token"`)
function Client:verify_id_token(id_token, opts)
  check.wire(VERIFY, check.string(VERIFY, id_token, "id_token"), "id_token")
  if opts ~= nil then check.table(VERIFY, opts) end
  return verify(self, id_token, opts or {}, false)
end

return Client
