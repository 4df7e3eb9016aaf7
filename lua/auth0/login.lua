--- The passwordless, token and user methods of auth0.Client (docs/protocol.md,
-- "Passwordless", "Tokens", "User info", "ID tokens").
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local core = require "auth0.core"
local check = require "auth0.check"
local shape = require "auth0.shape"
local keyset = require "auth0.keyset"
local Client = require("auth0.client").Client

local type, pairs = type, pairs
local at = check.at
local email_shape, strings = core.email_shape, core.strings

local SEND = { code = true, link = true, link_ios = true, link_android = true }

local START, LOGIN, REFRESH, REVOKE = at("passwordless_start"), at("passwordless_login"), at("refresh"), at("revoke")
START.fields, LOGIN.fields = true, true   -- table arguments: check.string names fields (as check.table sets)
local USERINFO, JWKS, OIDC, VERIFY = at("userinfo"), at("jwks"), at("openid_configuration"), at("verify_id_token")

-- The call options naming the public function, for the C core's error messages.
local O_START, O_LOGIN, O_REFRESH = { fn = "passwordless_start" }, { fn = "passwordless_login" }, { fn = "refresh" }
local O_REVOKE, O_OIDC = { fn = "revoke" }, { fn = "openid_configuration" }

--- Sends a one-time code or a magic link (POST /passwordless/start).
-- @tparam table p `connection` ("email", "sms" or a custom name), `email` or
-- `phone_number`, `send` ("code" default, "link", "link_ios", "link_android"),
-- `auth_params` (links only), `language` (x-request-language header), `forwarded_for` (the
-- end user's IP address, confidential clients only: README "Security"). For a link back to
-- this app also `redirect_uri` (links only) and `response_type` ("code" default, or
-- "token id_token"): then `scope` and fresh `state`, `nonce` (and a PKCE challenge for
-- "code") are set in `auth_params`, and a second result, `link`, is returned
-- @tparam[opt] function cb callback(result, err): the call returns a request object at once
-- (with `redirect_uri`: callback(result, err, link))
-- @return the server's answer (e.g. `{_id=, email=, email_verified=}`) or nil, err; raises on
-- misuse. With `redirect_uri`: result, link, where link is `{ state, nonce, code_verifier,
-- redirect_uri }`, the secrets `passwordless_complete_link` needs (keep them; they are never logged)
function Client:passwordless_start(p, cb)
  if type(p) ~= "table" then check.table(START, p) end
  if p.redirect_uri ~= nil or p.response_type ~= nil then return self:_start_link(p, cb) end
  local connection, email, phone = p.connection, p.email, p.phone_number
  if type(connection) ~= "string" or connection == "" then check.string(START, connection, "connection") end
  if email ~= nil and phone ~= nil then START:fail("give either email or phone_number, not both") end
  if email == nil and phone == nil then START:fail("email or phone_number is required") end
  if connection == "email" and email == nil then START:fail("the email connection needs email") end
  if connection == "sms" and phone == nil then START:fail("the sms connection needs phone_number") end
  if email == nil then check.phone(START, phone) elseif not email_shape(email) then check.email(START, email) end
  local send = p.send == nil and "code" or p.send
  if not SEND[send] then START:fail("send must be code, link, link_ios or link_android, got " .. check.show(send)) end
  if p.auth_params ~= nil then
    if type(p.auth_params) ~= "table" then START:fail("auth_params must be a table") end
    if send == "code" then START:fail("auth_params only applies to links (send = \"link\")") end
  end
  local cfg = self._cfg
  local language = p.language   -- CR/LF: the C core
  if language ~= nil then language = check.string(START, language, "language") end
  language = language or cfg.language
  local o = language and { fn = "passwordless_start", language = language } or O_START
  if p.forwarded_for ~= nil then o = self:_forwarded(START, p, o) end
  local fields = p.auth_params ~= nil and { authParams = p.auth_params } or nil   -- a table: not a pair
  -- the string fields as key, value pairs (nil: absent): no table to make
  return self:_call(START, "passwordless_start", fields, o, cb, shape.start, "client_id", cfg.client_id,
    "connection", connection, "send", send, "email", email, "phone_number", phone, "client_secret", cfg.client_secret)
end

--- Exchanges the one-time code for tokens (passwordless OTP grant).
-- @tparam table p `realm` (connection), `username` (email or phone), `otp`, `audience`, `scope`,
-- `forwarded_for` (as passwordless_start's)
-- @tparam[opt] function cb callback(tokens, err)
-- @return tokens `{access_token, id_token, refresh_token, token_type, expires_in, scope, expires_at}`
-- or nil, err (`err.code == "mfa_required"` carries `err.mfa_token`, `err.mfa_requirements`)
function Client:passwordless_login(p, cb)
  if type(p) ~= "table" then check.table(LOGIN, p) end
  local cfg = self._cfg
  local realm, username, otp, audience, scope = p.realm, p.username, p.otp, p.audience, p.scope
  -- the common case in one C call; check.string raises with the documented words otherwise
  if not strings(realm, username, otp) then
    check.string(LOGIN, realm, "realm")
    check.string(LOGIN, username, "username")
    check.string(LOGIN, otp, "otp")
  end
  if audience == nil then audience = cfg.audience else check.string(LOGIN, audience, "audience") end
  if scope == nil then scope = cfg.scope else check.string(LOGIN, scope, "scope") end
  local o = O_LOGIN
  if p.forwarded_for ~= nil then o = self:_forwarded(LOGIN, p, o) end
  return self:_call(LOGIN, "passwordless_login", nil, o, cb, shape.tokens, "client_id", cfg.client_id,
    "realm", realm, "username", username, "otp", otp, "scope", scope, "audience", audience,
    "client_secret", cfg.client_secret)
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
  return self:_call(USERINFO, "userinfo", nil, { fn = "userinfo", bearer = access_token }, cb, shape.userinfo)
end

--- The tenant's JWKS: the key set the client holds (README "Security"), fetched when it
-- is older than `jwks_ttl` or `refresh` is true.
-- @tparam[opt] boolean refresh fetch again even when held
-- @tparam[opt] function cb callback(jwks, err); with held keys it runs from the next poll
-- @return the JWKS or nil, err (with cb: a request object); a failed fetch keeps the held keys
function Client:jwks(refresh, cb)
  if type(refresh) == "function" then cb, refresh = refresh, nil end
  if self._sched.closed then JWKS:fail("attempt to use a closed auth0.Client") end
  local held = not refresh and keyset.fresh(self)
  if cb == nil then
    if held then return held end
    return keyset.fetch_blocking(self, JWKS)
  end
  check.func(JWKS, cb, "callback")
  local req = self._sched:request("jwks", cb)
  if held then
    self._sched:push(function() req:finish(held) end, req)
  else
    keyset.fetch_async(self, function(v, err) req:finish(v, err) end)
    self._sched:hold(req)   -- pending until the shared fetch answers
  end
  return req
end

--- The OpenID discovery document.
-- @tparam[opt] function cb callback(document, err)
-- @return the document or nil, err
function Client:openid_configuration(cb)
  return self:_call(OIDC, "openid_configuration", nil, O_OIDC, cb, shape.discovery)
end

local VERIFY_OPTS = { leeway = true, now = true, nonce = true, max_age = true }

--- Checks an ID token's signature and claims (iss, aud, exp, nbf, iat, sub...): RS256
-- against the tenant's JWKS (README "Security": the key set), or HS256 with the client
-- secret when the client was made with `id_token_alg = "HS256"`.
-- @tparam string id_token
-- @tparam[opt] table opts `leeway` (60 s), `now` (epoch seconds), `nonce`, `max_age`; never modified
-- @tparam[opt] function cb callback(claims, err): the call returns a request object at once
-- and never blocks (the JWKS, when it must be fetched, is fetched without blocking)
-- @return the claims, or nil, err (`err.code == "invalid_id_token"`, `err.reason`
-- "invalid_id_token" or "unknown_kid"; or the JWKS fetch's error); raises on misuse
function Client:verify_id_token(id_token, opts, cb)
  if type(opts) == "function" and cb == nil then opts, cb = nil, opts end
  check.wire(VERIFY, check.string(VERIFY, id_token, "id_token"), "id_token")
  if opts ~= nil then
    local o2 = at("verify_id_token", 2)
    check.table(o2, opts)
    for k in pairs(opts) do
      if not VERIFY_OPTS[k] then o2:fail("unknown option " .. check.show(k)) end
    end
    check.finite(o2, opts.leeway, "leeway", 0)
    check.finite(o2, opts.now, "now", 0)
    check.finite(o2, opts.max_age, "max_age", 0)
    check.string(o2, opts.nonce, "nonce", true)
  end
  opts = opts or {}
  if self._sched.closed then VERIFY:fail("attempt to use a closed auth0.Client") end
  if cb == nil then
    local claims, err
    keyset.verify(self, id_token, opts, function(on_done) on_done(keyset.fetch_blocking(self, VERIFY)) end,
      function(c, e) claims, err = c, e end)
    return claims, err
  end
  check.func(VERIFY, cb, "callback")
  local s = self._sched
  local req = s:request("verify_id_token", cb)
  s:push(function()
    keyset.verify(self, id_token, opts, function(on_done)
      keyset.fetch_async(self, on_done)
      s:hold(req)
    end, function(c, e) req:finish(c, e) end)
  end, req)
  return req
end

return Client
