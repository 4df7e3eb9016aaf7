--- Emulator module: token issuance (RS256 access and ID tokens, refresh tokens), the refresh
-- grant, /userinfo, /oauth/revoke, discovery and JWKS (docs/protocol.md sections 8, 9).
--
-- Refresh tokens as Auth0 runs them with rotation on: each exchange returns a new token of
-- the same family and retires the old one; presenting a retired token again (reuse) revokes
-- the whole family [DOC auth0.com "Refresh Token Rotation", reuse interval 0]. Optional
-- absolute and idle (inactivity) lifetimes, and multi-resource refresh: a client's policies
-- name other APIs (and their scopes) that its refresh tokens may get access tokens for.
-- Control routes of this module (JSON):
--   POST /__emulator/refresh_tokens {absolute_lifetime?, idle_lifetime? (seconds, 0 = none),
--        client_id?, policies? ([{audience, scope = [...]}], for client_id)}  -> the settings
--   GET  /__emulator/refresh_tokens  -> {refreshes (refresh grants handled), active (live
--        tokens), families, reuse_detected, absolute_lifetime, idle_lifetime}
-- luacheck: ignore 212/self
local core = require "auth0.core"
local util = require "auth0.emulator.util"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local concat = table.concat
local byte, format, gsub, lower = string.byte, string.format, string.gsub, string.lower

local json, err = util.json, util.error
local b64url = core.b64url_encode

local M = { methods = {} }
local methods = M.methods

M.routes = {
  { "GET", "/userinfo", "userinfo" },
  { "POST", "/userinfo", "userinfo" },
  { "POST", "/oauth/revoke", "oauth_revoke" },
  { "GET", "/.well-known/jwks.json", "jwks" },
  { "GET", "/.well-known/openid-configuration", "openid_configuration" },
  { "GET", "/__emulator/refresh_tokens", "ctl_refresh_tokens" },
  { "POST", "/__emulator/refresh_tokens", "ctl_refresh_tokens" },
}
M.grants = { [util.GRANT_REFRESH_TOKEN] = "grant_refresh_token" }

local ID_TOKEN_TTL = 36000      -- [DOC] section 9
local DEFAULT_SCOPE = "openid profile email"  -- [INF] when the client sends none

-- Scopes that need no API permission.
local OIDC_SCOPES = { openid = true, profile = true, email = true, phone = true, address = true,
                      offline_access = true }

local function split_scope(s)
  local list, set = {}, {}
  for w in tostring(s or ""):gmatch("%S+") do
    if not set[w] then list[#list + 1] = w; set[w] = true end
  end
  return list, set
end
M.split_scope = split_scope

local function hex(s)
  return (gsub(s, ".", function(c) return format("%02x", byte(c)) end))
end

--- Signs a JWT (RS256, header `kid`). @return compact JWT string
function methods:sign_jwt(claims)
  local header = b64url(util.encode{ alg = "RS256", typ = "JWT", kid = self.kid })
  local input = header .. "." .. b64url(util.encode(claims))
  return input .. "." .. b64url(self.key:sign_rs256(input))
end

--- Verifies a JWT issued by this emulator (RS256 PKCS#1 v1.5 is deterministic, so re-signing
-- the input must reproduce the signature). @return claims | nil
function methods:verify_jwt(token)
  if type(token) ~= "string" then return nil end
  local h, p, s = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
  if not h then return nil end
  local input = h .. "." .. p
  if b64url(self.key:sign_rs256(input)) ~= s then return nil end
  local raw = core.b64url_decode(p)
  local claims = raw and util.decode(raw)
  if type(claims) ~= "table" then return nil end
  return claims
end

--- A user's profile claims for the granted scopes (section 9).
function methods:profile_claims(user, scope_set, claims)
  claims = claims or {}
  if scope_set.profile then
    local ident = user.email or user.phone_number or user.user_id
    claims.name = user.name or ident
    claims.nickname = user.nickname or (user.email and user.email:match("^[^@]*")) or ident
    claims.picture = user.picture or ("https://s.gravatar.com/avatar/" .. hex(core.sha256(lower(ident))):sub(1, 32)
                                      .. "?s=480&r=pg&d=https%3A%2F%2Fcdn.auth0.com%2Favatars%2Fdefault.png")
    claims.updated_at = os.date("!%Y-%m-%dT%H:%M:%S.000Z", user.updated_at or self:now())
  end
  if scope_set.email and user.email then
    claims.email = user.email
    claims.email_verified = user.email_verified ~= false
  end
  if scope_set.phone and user.phone_number then
    claims.phone_number = user.phone_number
    claims.phone_verified = user.phone_verified ~= false
  end
  return claims
end

--- Granted scope list for a login: drops offline_access when the API does not allow it and
-- non-OIDC scopes the API does not define (when it defines a list).
local function granted_scope(api, requested)
  local list = split_scope(requested)
  local out = {}
  for _, s in ipairs(list) do
    local keep = true
    if s == "offline_access" and api and not api.allow_offline_access then keep = false end
    if not OIDC_SCOPES[s] and api and api.scopes then
      keep = false
      for _, a in ipairs(api.scopes) do if a == s then keep = true end end
    end
    if keep then out[#out + 1] = s end
  end
  return out
end

--- Issues the token response for a completed login or refresh.
-- @tparam table login `{ audience, scope, amr (list), refresh_token (existing, for refresh) }`
-- @return response table
function methods:issue_tokens(user, client, login)
  local now = self:now()
  local audience = login.audience
  local api = audience and self.apis[audience] or nil
  local scope_list
  if login.granted_scope then
    scope_list = login.granted_scope
  else
    local requested = login.scope
    if type(requested) ~= "string" or requested:match("^%s*$") then requested = DEFAULT_SCOPE end
    scope_list = granted_scope(api, requested)
  end
  local _, scope_set = split_scope(concat(scope_list, " "))
  local scope = concat(scope_list, " ")
  local lifetime = api and api.token_lifetime or 86400
  local userinfo_aud = self.issuer .. "userinfo"

  local at = { iss = self.issuer, sub = user.user_id, iat = now, exp = now + lifetime,
               scope = scope, azp = client.client_id }
  if audience then
    at.aud = scope_set.openid and util.array{ audience, userinfo_aud } or audience
  else
    at.aud = userinfo_aud
  end
  if login.amr then at.amr = util.array(login.amr) end
  local body = { access_token = self:sign_jwt(at), token_type = "Bearer", expires_in = lifetime, scope = scope }

  if scope_set.openid then
    local id = { iss = self.issuer, sub = user.user_id, aud = client.client_id, iat = now, exp = now + ID_TOKEN_TTL }
    if login.amr then id.amr = util.array(login.amr) end
    self:profile_claims(user, scope_set, id)
    body.id_token = self:sign_jwt(id)
  end

  if scope_set.offline_access or login.other_resource then
    local old = login.refresh_token
    local prev = old and self.refresh_tokens[old]
    if old and not client.refresh_token_rotation then
      body.refresh_token = old
      if prev then prev.last_used_at = now end
    else
      if prev then   -- (nil when it was revoked while an MFA step of its refresh went on)
        self.refresh_tokens[old] = nil
        self.retired_tokens[old] = prev.family   -- presenting it again is reuse
      end
      local rt = b64url(self:random_bytes(48))
      self.refresh_tokens[rt] = { client_id = client.client_id, user_id = user.user_id,
                                  audience = prev and prev.audience or audience,
                                  scope = login.refresh_scope or scope_list, created_at = now,
                                  family = prev and prev.family or rt,
                                  family_created_at = prev and prev.family_created_at or now }
      body.refresh_token = rt
    end
  end
  return json(200, body)
end

---------------------------------------------------------------------------------------------
-- Refresh grant (section 8.1).

function methods:grant_refresh_token(req, params)
  local client, cerr = self:token_client(req, params, util.GRANT_REFRESH_TOKEN)
  if not client then return cerr end
  local token = params.refresh_token
  if type(token) ~= "string" or token == "" then
    return err(400, "invalid_request", "Missing required parameter: refresh_token")
  end
  self.refresh_count = self.refresh_count + 1
  local family = self.retired_tokens[token]
  if family then
    self:revoke_family(family)
    self.reuse_detected = self.reuse_detected + 1
    return err(403, "invalid_grant", "Unknown or invalid refresh token.")
  end
  local rt = self.refresh_tokens[token]
  if not rt or rt.client_id ~= client.client_id then
    return err(403, "invalid_grant", "Unknown or invalid refresh token.")
  end
  local now, life = self:now(), self.rt_lifetimes
  if (life.absolute and now >= rt.family_created_at + life.absolute)
     or (life.idle and now >= (rt.last_used_at or rt.created_at) + life.idle) then
    -- [INF] an expired refresh token reads like an unknown one.
    self:revoke_family(rt.family)
    return err(403, "invalid_grant", "Unknown or invalid refresh token.")
  end
  local other
  if params.audience ~= nil and params.audience ~= "" and params.audience ~= rt.audience then
    -- [INF] a refresh token is bound to its audience, unless the client's multi-resource
    -- policy names the other API.
    other = (self.rt_policies[client.client_id] or {})[params.audience]
    if not other then return err(403, "invalid_grant", "Unknown or invalid refresh token.") end
  end
  local user = self.users[rt.user_id]
  if not user then
    return err(403, "invalid_grant", "The refresh_token was generated for a user who doesn't exist anymore.")
  end
  if user.blocked then return err(403, "invalid_grant", "user is blocked") end
  if other then return self:refresh_other_resource(user, client, rt, token, params, other) end
  local scope_list = rt.scope
  if type(params.scope) == "string" and not params.scope:match("^%s*$") then
    local _, original = split_scope(concat(rt.scope, " "))
    local narrowed = {}
    for _, s in ipairs((split_scope(params.scope))) do
      if not original[s] then
        -- [INF] wording; the scope may only narrow.
        return err(403, "invalid_scope", "Scope must be a subset of the original scope: " .. s)
      end
      narrowed[#narrowed + 1] = s
    end
    scope_list = narrowed
  end
  -- A narrowed scope without offline_access returns no refresh token; the old one stays valid.
  local login = { grant_type = util.GRANT_REFRESH_TOKEN, audience = rt.audience, granted_scope = scope_list,
                  refresh_token = token, refresh_scope = rt.scope }
  local gate = self:mfa_gate(user, client, login)
  if gate then return gate end
  return self:issue_tokens(user, client, login)
end

--- Removes every live token of a refresh-token family.
function methods:revoke_family(family)
  for t, r in pairs(self.refresh_tokens) do
    if r.family == family then self.refresh_tokens[t] = nil end
  end
end

--- A refresh for another API of the client's multi-resource policy: the scopes asked for
-- must be among the policy's (all of them when none are asked for).
function methods:refresh_other_resource(user, client, rt, token, params, policy)
  local allowed = {}
  for _, s in ipairs(policy.scope) do allowed[s] = true end
  local scope_list = policy.scope
  if type(params.scope) == "string" and not params.scope:match("^%s*$") then
    scope_list = {}
    for _, s in ipairs((split_scope(params.scope))) do
      if not allowed[s] then return err(403, "invalid_scope", "Scope must be a subset of the policy's scope: " .. s) end
      scope_list[#scope_list + 1] = s
    end
  end
  local login = { grant_type = util.GRANT_REFRESH_TOKEN, audience = params.audience, granted_scope = scope_list,
                  refresh_token = token, refresh_scope = rt.scope, other_resource = true }
  local gate = self:mfa_gate(user, client, login)
  if gate then return gate end
  return self:issue_tokens(user, client, login)
end

local function seconds(v)
  if v == nil then return false end
  if v == util.null or v == 0 then return nil end
  if type(v) ~= "number" or v < 0 or v ~= v then return false end
  return math.floor(v)
end

function methods:ctl_refresh_tokens(req)
  if req.method == "POST" then
    local p, perr = self:params(req, "bad_request")
    if not p then return perr end
    for _, name in ipairs({ "absolute_lifetime", "idle_lifetime" }) do
      if p[name] ~= nil then
        local v = seconds(p[name])
        if v == false then return err(400, "bad_request", name .. " must be seconds >= 0") end
        self.rt_lifetimes[name == "absolute_lifetime" and "absolute" or "idle"] = v
      end
    end
    if p.policies ~= nil then
      if type(p.client_id) ~= "string" or type(p.policies) ~= "table" then
        return err(400, "bad_request", "policies need client_id and a list of {audience, scope}")
      end
      local set = {}
      for _, pol in ipairs(p.policies) do
        if type(pol) ~= "table" or type(pol.audience) ~= "string" or type(pol.scope) ~= "table" then
          return err(400, "bad_request", "each policy is {audience, scope = [...]}")
        end
        set[pol.audience] = { scope = pol.scope }
      end
      self.rt_policies[p.client_id] = set
    end
  end
  local active, families = 0, {}
  for _, r in pairs(self.refresh_tokens) do
    active = active + 1
    families[r.family or ""] = true
  end
  local nf = 0
  for _ in pairs(families) do nf = nf + 1 end
  return json(200, { refreshes = self.refresh_count, active = active, families = nf,
                     reuse_detected = self.reuse_detected,
                     absolute_lifetime = self.rt_lifetimes.absolute or util.null,
                     idle_lifetime = self.rt_lifetimes.idle or util.null })
end

function M.reset(self)
  self.retired_tokens, self.rt_policies, self.rt_lifetimes = {}, {}, {}
  self.refresh_count, self.reuse_detected = 0, 0
end

---------------------------------------------------------------------------------------------
-- /userinfo (section 8.2)

local function unauthorized(description)
  return util.text(401, "Unauthorized", {
    ["www-authenticate"] = format('Bearer realm="emulator", error="invalid_token", error_description="%s"',
                                  description),
  })
end

function methods:userinfo(req)
  local auth = req.headers["authorization"]
  local token = type(auth) == "string" and auth:match("^[Bb]earer%s+(%S+)%s*$")
  if not token then return unauthorized("missing bearer token") end
  local claims = self:verify_jwt(token)
  if not claims or claims.iss ~= self.issuer then return unauthorized("invalid token") end
  if type(claims.exp) ~= "number" or claims.exp <= self:now() then return unauthorized("token expired") end
  local aud_ok = false
  local want = self.issuer .. "userinfo"
  local aud = type(claims.aud) == "table" and claims.aud or { claims.aud }
  for _, a in ipairs(aud) do if a == want then aud_ok = true end end
  local _, scope_set = split_scope(claims.scope)
  if not aud_ok or not scope_set.openid then return unauthorized("invalid audience or scope") end
  local user = self.users[claims.sub]
  if not user then return unauthorized("user not found") end
  local body = self:profile_claims(user, scope_set, { sub = user.user_id })
  return json(200, body)
end

---------------------------------------------------------------------------------------------
-- /oauth/revoke (section 8.3)

function methods:oauth_revoke(req)
  local params, perr = self:params(req)
  if not params then return perr end
  if type(params.client_id) ~= "string" and not req.headers["authorization"] then
    return err(400, "invalid_request", "Missing required parameter: client_id")
  end
  if type(params.token) ~= "string" or params.token == "" then
    return err(400, "invalid_request", "Missing required parameter: token")
  end
  local client, authenticated = self:authenticate_client(req, params)
  -- [INF] descriptions of the two 401 rows.
  if not client then return err(401, "invalid_client", "Unknown client") end
  if client.confidential and not authenticated then
    return err(401, "invalid_client", "Client authentication failed")
  end
  local rt = self.refresh_tokens[params.token]
  if rt and rt.client_id == client.client_id then self.refresh_tokens[params.token] = nil end
  return { status = 200, headers = { ["content-type"] = util.JSON_CONTENT_TYPE }, body = "" }
end

---------------------------------------------------------------------------------------------
-- Discovery and JWKS (sections 8.4, 8.5)

function methods:jwks()
  local k = {}
  for name, v in pairs(self.jwk) do k[name] = v end
  local keys = util.array{ k }
  for _, extra in ipairs(self.jwks_extra or {}) do keys[#keys + 1] = extra end   -- control.lua's /keys
  return json(200, { keys = keys })
end

function methods:openid_configuration()
  local i = self.issuer
  local a = util.array
  return json(200, {
    issuer = i,
    authorization_endpoint = i .. "authorize",
    token_endpoint = i .. "oauth/token",
    device_authorization_endpoint = i .. "oauth/device/code",
    userinfo_endpoint = i .. "userinfo",
    mfa_challenge_endpoint = i .. "mfa/challenge",
    jwks_uri = i .. ".well-known/jwks.json",
    registration_endpoint = i .. "oidc/register",
    revocation_endpoint = i .. "oauth/revoke",
    scopes_supported = a{ "openid", "profile", "offline_access", "name", "given_name", "family_name", "nickname",
                          "email", "email_verified", "picture", "created_at", "identities", "phone", "address" },
    response_types_supported = a{ "code", "token", "id_token", "code token", "code id_token", "token id_token",
                                  "code token id_token" },
    code_challenge_methods_supported = a{ "S256", "plain" },
    response_modes_supported = a{ "query", "fragment", "form_post" },
    subject_types_supported = a{ "public" },
    id_token_signing_alg_values_supported = a{ "HS256", "RS256", "PS256" },
    token_endpoint_auth_methods_supported = a{ "client_secret_basic", "client_secret_post", "private_key_jwt" },
    claims_supported = a{ "aud", "auth_time", "created_at", "email", "email_verified", "exp", "family_name",
                          "given_name", "iat", "identities", "iss", "name", "nickname", "phone_number", "picture",
                          "sub" },
    request_uri_parameter_supported = false,
    request_parameter_supported = false,
    token_endpoint_auth_signing_alg_values_supported = a{ "RS256", "RS384", "PS256" },
  })
end

return M
