--- Emulator module: multi-factor authentication (docs/protocol.md sections "4. The `mfa_required`
-- error" to "7. Guardian push flow (what the emulator must fake)", answers as recorded from the
-- real server per "13. Known discrepancies"): the `mfa_required` gate of the login and refresh
-- grants, /mfa/authenticators, /mfa/associate, /mfa/challenge and the mfa-otp, mfa-oob and
-- mfa-recovery-code grants. The authenticator store is authenticators.lua; the MFA control
-- routes (settings, direct enrollment, the fake Guardian) are in control.lua.
--
-- User policy: the free-form `mfa` field of `POST /__emulator/users` (stored on the user):
--   absent, false, "off"        no MFA (default)
--   true, "always"              every login answers mfa_required, without mfa_requirements
--   { "otp", "phone", ... }     every login answers mfa_required with mfa_requirements listing
--                               these factor types: {"challenge":[{"type":..}]} when the user has
--                               an active authenticator, else {"enroll":[...]}
--   { factors = {...}, requirements = bool, refresh = bool }
--                               the general form: factors (default: the five below), whether
--                               mfa_requirements is sent (default: true when factors is given),
--                               and whether the refresh grant asks for MFA too (default false)
-- Factor types: otp, phone, email, push-notification, recovery-code. They only shape
-- mfa_requirements; the emulator does not restrict challenges or enrollments to them.
-- Push challenges are also written to the outbox as `kind = "push"` messages (with `oob_code`);
-- SMS, voice and e-mail binding codes as `kind = "mfa"` messages with `binding_code` and `code`.
-- luacheck: ignore 212/self
local core = require "auth0.core"
local util = require "auth0.emulator.util"
local A = require "auth0.emulator.authenticators"

local type, pairs, ipairs, next, tostring = type, pairs, ipairs, next, tostring
local floor, min = math.floor, math.min
local format, gsub, lower = string.format, string.gsub, string.lower

local json, err, array = util.json, util.error, util.array
local GRANT_OTP, GRANT_OOB, GRANT_RC = util.GRANT_MFA_OTP, util.GRANT_MFA_OOB, util.GRANT_MFA_RECOVERY_CODE
local iron, mask_phone, mask_email = A.iron, A.mask_phone, A.mask_email
local find_authenticator, has_active, recovery_of = A.find_authenticator, A.has_active, A.recovery_of
local add_authenticator, remove_authenticator, drop_inactive = A.add_authenticator, A.remove_authenticator, A.drop_inactive
local first_recovery_code, activate, wire_authenticator = A.first_recovery_code, A.activate, A.wire_authenticator
local new_totp_secret, otpauth_label = A.new_totp_secret, A.otpauth_label
local send_binding_code, send_push = A.send_binding_code, A.send_push
local list_param, valid_phone, valid_email = A.list_param, A.valid_phone, A.valid_email
local CHANNEL_KIND = A.CHANNEL_KIND

local M = { methods = {} }
local methods = M.methods

M.routes = {
  { "GET", "/mfa/authenticators", "mfa_list" },
  { "DELETE", "/mfa/authenticators/([^/]+)", "mfa_delete", pattern = true },
  { "POST", "/mfa/associate", "mfa_associate" },
  { "POST", "/mfa/challenge", "mfa_challenge" },
}
M.grants = { [GRANT_OTP] = "grant_mfa_otp", [GRANT_OOB] = "grant_mfa_oob", [GRANT_RC] = "grant_mfa_recovery_code" }

local DEFAULTS = {
  poll_min_interval = 5,      -- [DOC] 12/min per session; [INF] faster -> slow_down
  mfa_token_lifetime = 600,   -- [INF] ~10 minutes
  oob_code_lifetime = 300,    -- [DOC] binding codes live 5 min; push the same [INF]
  attempts = 10,              -- [DOC] failed-verification bucket size
  refill_seconds = 360,       -- [DOC] +1 attempt per 6 minutes
  tenant_name = "Auth0 Emulator",
}
local ALL_FACTORS = { "otp", "phone", "email", "push-notification", "recovery-code" }
local MFA_SCOPES = { "enroll", "read:authenticators", "remove:authenticators" }
local TOTP_PERIOD = 30

M.reset = function(self)
  self.mfa_settings = {}
  for k, v in pairs(DEFAULTS) do self.mfa_settings[k] = v end
  self.mfa_tokens = {}       -- mfa_token -> { user_id, client_id, login, expires_at }
  self.oob_tx = {}           -- oob_code -> { user_id, authenticator_id, kind, binding_code?, ... }
  self.oob_order = {}        -- oob codes, oldest first (for the guardian listing)
  self.authenticators = {}   -- user_id -> list, enrollment order
  self.mfa_buckets = {}      -- user_id -> { tokens, updated }
  -- The MFA API audience, with and without the trailing slash [DOC]; its tokens live 600 s.
  for _, id in ipairs{ self.base_url .. "/mfa/", self.base_url .. "/mfa" } do
    self:put_api{ identifier = id, allow_offline_access = false, token_lifetime = 600, scopes = MFA_SCOPES }
  end
end

-- The gate of the login and refresh grants (Emulator:mfa_gate, called before issuing tokens).

-- The user's policy as { factors, requirements, refresh }, false when MFA is off, or nil, err.
local function policy_of(user)
  local p = user.mfa
  if p == nil or p == false or p == "off" or p == util.null then return false end
  if p == true or p == "always" then return { factors = ALL_FACTORS, requirements = false, refresh = false } end
  if type(p) == "table" then
    if p[1] ~= nil then return { factors = p, requirements = true, refresh = false } end
    local factors = p.factors
    if factors ~= nil and (type(factors) ~= "table" or (factors[1] == nil and next(factors) ~= nil)) then
      return nil, "mfa.factors must be a list of factor types"
    end
    local requirements = p.requirements
    if requirements == nil then requirements = factors ~= nil end
    return { factors = factors or ALL_FACTORS, requirements = requirements == true, refresh = p.refresh == true }
  end
  return nil, "mfa must be off, \"always\", a list of factor types or {factors, requirements, refresh}"
end

function methods:mfa_gate(user, client, login)
  local policy, perr = policy_of(user)
  if policy == nil then return err(500, "server_error", "emulator: user " .. user.user_id .. ": " .. perr) end
  if not policy then return nil end
  if login.grant_type == util.GRANT_REFRESH_TOKEN and not policy.refresh then return nil end
  local now = self:now()
  local expires_at = now + self.mfa_settings.mfa_token_lifetime
  local token = iron(self, "", expires_at)
  local saved = {}
  for k, v in pairs(login) do saved[k] = v end
  self.mfa_tokens[token] = { user_id = user.user_id, client_id = client.client_id, login = saved,
                             created_at = now, expires_at = expires_at }
  local extra = { mfa_token = token }
  if policy.requirements then
    local list = array()
    for _, t in ipairs(policy.factors) do list[#list + 1] = { type = t } end
    extra.mfa_requirements = { [has_active(self, user.user_id) and "challenge" or "enroll"] = list }
  end
  return err(403, "mfa_required", "Multifactor authentication required", extra)
end

---------------------------------------------------------------------------------------------
-- Token checks. Bodies per docs/protocol.md "4.4 mfa_token lifetime and usage"; statuses:
-- invalid_grant 403 on /oauth/token [DOC, "11. Emulator constants (defaults to implement)"] and
-- 401 on the MFA API [FIX SDK fixtures]; expired_token 401 [FIX].

local function malformed(status) return err(status or 403, "invalid_grant", "Malformed mfa_token") end
local function expired() return err(401, "expired_token", "mfa_token is expired") end

-- @return tx, user | nil, error response
local function check_mfa_token(self, token, status)
  if type(token) ~= "string" or token == "" then
    return nil, err(400, "invalid_request", "Missing required parameter: mfa_token")
  end
  local tx = self.mfa_tokens[token]
  -- [INF] unknown, consumed and foreign tokens all read as malformed.
  if not tx then return nil, malformed(status) end
  if tx.expires_at <= self:now() then return nil, expired() end
  local user = self.users[tx.user_id]
  if not user then
    return nil, err(status or 403, "invalid_grant", "The mfa_token was generated for a user who doesn't exist anymore.")
  end
  if user.blocked then return nil, err(401, "unauthorized", "user is blocked") end
  return tx, user
end

local function audience_ok(self, aud)
  local a = type(aud) == "table" and aud or { aud }
  for _, v in ipairs(a) do
    if v == self.base_url .. "/mfa/" or v == self.base_url .. "/mfa" then return true end
  end
  return false
end

-- The Bearer of the MFA API: an mfa_token or an access token for the MFA audience with `scope`.
-- @return user, kind ("mfa_token" | "access_token") | nil, error response
local function check_bearer(self, req, scope)
  local auth = req.headers["authorization"]
  local token = type(auth) == "string" and auth:match("^[Bb]earer%s+(%S+)%s*$")
  if not token then
    -- [INF] body for a missing bearer.
    return nil, err(401, "unauthorized", "Missing authentication")
  end
  if self.mfa_tokens[token] then
    local tx, user = check_mfa_token(self, token, 401)
    if not tx then return nil, user end
    return user, "mfa_token"
  end
  local claims = self:verify_jwt(token)
  if not claims or claims.iss ~= self.issuer or not audience_ok(self, claims.aud) then return nil, malformed(401) end
  -- [INF] bodies for an expired MFA access token and a missing scope.
  if type(claims.exp) ~= "number" or claims.exp <= self:now() then
    return nil, err(401, "expired_token", "The access token is expired")
  end
  local has = false
  for s in tostring(claims.scope or ""):gmatch("%S+") do if s == scope then has = true end end
  if not has then return nil, err(403, "insufficient_scope", "Insufficient scope, expected: " .. scope) end
  local user = self.users[claims.sub]
  if not user then return nil, malformed(401) end
  return user, "access_token"
end

---------------------------------------------------------------------------------------------
-- The failed-verification bucket (docs/protocol.md "6.4 MFA verification limits"): `attempts`
-- tokens, +1 per `refill_seconds`.

local function bucket(self, user_id)
  local s, now = self.mfa_settings, self:now()
  local b = self.mfa_buckets[user_id]
  if not b then
    b = { tokens = s.attempts, updated = now }
    self.mfa_buckets[user_id] = b
  end
  if s.refill_seconds > 0 then
    b.tokens = min(s.attempts, b.tokens + (now - b.updated) / s.refill_seconds)
  end
  b.updated = now
  return b
end

local function too_many(self, user_id)
  if bucket(self, user_id).tokens >= 1 then return nil end
  -- [INF] code per the brute-force protection; text from the documented UI message.
  return err(429, "too_many_attempts", "Too many failed codes. Wait for some minutes before retrying.")
end

local function failed(self, user_id, description)
  local b = bucket(self, user_id)
  b.tokens = b.tokens - 1
  return err(403, "invalid_grant", description)
end

---------------------------------------------------------------------------------------------
-- GET /mfa/authenticators, DELETE /mfa/authenticators/{id} (docs/protocol.md
-- "5.1 `GET /mfa/authenticators`", "5.2 `DELETE /mfa/authenticators/{authenticator_id}`")

function methods:mfa_list(req)
  local user, berr = check_bearer(self, req, "read:authenticators")
  if not user then return berr end
  local out = array()
  for _, a in ipairs(self.authenticators[user.user_id] or {}) do out[#out + 1] = wire_authenticator(a) end
  return json(200, out)
end

function methods:mfa_delete(req, id)
  local user, berr = check_bearer(self, req, "remove:authenticators")
  if not user then return berr end
  local a = find_authenticator(self, user.user_id, id)
  -- [FIX] 404 invalid_authenticator for an unknown id.
  if not a then return err(404, "invalid_authenticator", "Authenticator not found") end
  if a.kind == "recovery-code" then
    -- [DOC] recovery codes are regenerated through the Management API, not deleted here; [INF] body.
    return err(400, "invalid_request", "Recovery codes cannot be deleted")
  end
  remove_authenticator(self, user.user_id, id)
  return { status = 204, headers = {}, body = "" }
end

---------------------------------------------------------------------------------------------
-- POST /mfa/associate (docs/protocol.md "5.3 `POST /mfa/associate` (enroll)")

function methods:mfa_associate(req)
  local params, perr = self:params(req)
  if not params then return perr end
  local user, kind = check_bearer(self, req, "enroll")
  if not user then return kind end
  if kind == "mfa_token" and has_active(self, user.user_id) then
    -- [DOC] text; [INF] code and status.
    return err(403, "access_denied", "User is already enrolled")
  end
  local types, channels = list_param(params.authenticator_types), list_param(params.oob_channels)
  if not types or #types == 0 then
    return err(400, "invalid_request", "Missing required parameter: authenticator_types")
  end
  -- [INF] one factor per call, like every SDK sends.
  if #types ~= 1 or (types[1] ~= "otp" and types[1] ~= "oob") then
    return err(400, "invalid_request", "authenticator_types must be [\"otp\"] or [\"oob\"]")
  end
  local client_id = type(params.client_id) == "string" and params.client_id or nil
  local uid = user.user_id
  local body
  if types[1] == "otp" then
    drop_inactive(self, uid, "totp")
    local secret = new_totp_secret(self)
    add_authenticator(self, uid, "totp", { secret = secret })
    local s = self.mfa_settings
    body = { authenticator_type = "otp", secret = secret,
             barcode_uri = "otpauth://totp/" .. otpauth_label(self, user) .. "?secret=" .. secret .. "&issuer="
                           .. util.url_encode(s.tenant_name) .. "&algorithm=SHA1&digits=6&period=30" }
  else
    if not channels or #channels ~= 1 or not CHANNEL_KIND[channels[1]] then
      return err(400, "invalid_request", "oob_channels must be one of [\"sms\"], [\"voice\"], [\"auth0\"], [\"email\"]")
    end
    local k = CHANNEL_KIND[channels[1]]
    drop_inactive(self, uid, k)
    if k == "sms" or k == "voice" then
      if not valid_phone(params.phone_number) then
        return err(400, "invalid_request", "phone_number must match ^\\+[0-9]{1,15}$")
      end
      local a = add_authenticator(self, uid, k, { phone_number = params.phone_number,
                                                  name = mask_phone(params.phone_number) })
      local tx = send_binding_code(self, user, a, client_id, true)
      body = { authenticator_type = "oob", binding_method = "prompt", oob_channel = channels[1], oob_code = tx.oob_code }
    elseif k == "email" then
      local email = params.email or user.email
      if not valid_email(email) then return err(400, "invalid_request", "email is missing or malformed") end
      local a = add_authenticator(self, uid, "email", { email = lower(email), name = mask_email(lower(email)) })
      local tx = send_binding_code(self, user, a, client_id, true)
      body = { authenticator_type = "oob", binding_method = "prompt", oob_channel = "email", oob_code = tx.oob_code }
    else
      drop_inactive(self, uid, "push")
      local push = add_authenticator(self, uid, "push")
      local totp = add_authenticator(self, uid, "totp", { secret = new_totp_secret(self), paired = push.id })
      push.paired = totp.id
      local tx_id = A.random_id(self, 32)
      local tx = send_push(self, user, push, client_id, tx_id)
      local guardian = "https://" .. (gsub(self.host, ":%d+$", "")) .. ".guardian.emulator.auth0.com"
      body = { authenticator_type = "oob", oob_channel = "auth0", oob_code = tx.oob_code,
               barcode_uri = "otpauth://totp/" .. otpauth_label(self, user) .. "?enrollment_tx_id=" .. tx_id
                             .. "&base_url=" .. util.url_encode(guardian) }
    end
  end
  local rc = first_recovery_code(self, uid)
  if rc then body.recovery_codes = array{ rc } end
  return json(200, body)
end

---------------------------------------------------------------------------------------------
-- POST /mfa/challenge (docs/protocol.md "5.4 `POST /mfa/challenge`")

local CHALLENGE_OF = { totp = "otp", sms = "oob", voice = "oob", email = "oob", push = "oob" }

-- The client checks of the MFA endpoints: like the token endpoint's, without the grant check.
local function mfa_client(self, req, params)
  local client, authenticated = self:authenticate_client(req, params)
  if not client then return nil, err(403, "unauthorized_client", "invalid client") end
  if client.confidential and not authenticated then return nil, err(401, "access_denied", "Unauthorized") end
  return client
end

function methods:mfa_challenge(req)
  local params, perr = self:params(req)
  if not params then return perr end
  local client, cerr = mfa_client(self, req, params)
  if not client then return cerr end
  local tx, user = check_mfa_token(self, params.mfa_token, 401)
  if not tx then return user end
  if tx.client_id ~= client.client_id then return malformed(401) end
  local wanted, label = { otp = true, oob = true }, "otp oob"
  if params.challenge_type ~= nil then
    wanted, label = {}, tostring(params.challenge_type)
    for t in label:gmatch("%S+") do
      if t ~= "otp" and t ~= "oob" then
        return err(400, "invalid_request", "Unsupported challenge_type: " .. t)  -- [INF]
      end
      wanted[t] = true
    end
  end
  local unsupported = err(401, "unsupported_challenge_type",
    "User does not have any enrolled authenticator with the supported challenge type (" .. label .. ")")
  local chosen
  if params.authenticator_id ~= nil then
    chosen = find_authenticator(self, user.user_id, tostring(params.authenticator_id))
    if not chosen then return err(404, "invalid_authenticator", "Authenticator not found") end  -- [FIX]
    if not chosen.active or not wanted[CHALLENGE_OF[chosen.kind]] then return unsupported end
  else
    for _, a in ipairs(self.authenticators[user.user_id] or {}) do
      if a.active and wanted[CHALLENGE_OF[a.kind]] then chosen = a; break end
    end
    if not chosen then return unsupported end
  end
  if chosen.kind == "totp" then return json(200, { challenge_type = "otp" }) end
  if chosen.kind == "push" then
    local otx = send_push(self, user, chosen, client.client_id)
    otx.mfa_token = params.mfa_token
    return json(200, { challenge_type = "oob", oob_code = otx.oob_code })
  end
  local otx = send_binding_code(self, user, chosen, client.client_id, false)
  otx.mfa_token = params.mfa_token
  return json(200, { challenge_type = "oob", oob_code = otx.oob_code, binding_method = "prompt" })
end

---------------------------------------------------------------------------------------------
-- The MFA grants (docs/protocol.md "6. `POST /oauth/token` — MFA grants").

-- Common checks. @return client, tx, user | nil, error response
local function grant_begin(self, req, params, grant_type)
  local client, cerr = self:token_client(req, params, grant_type)
  if not client then return nil, cerr end
  local tx, user = check_mfa_token(self, params.mfa_token)
  if not tx then return nil, user end
  if tx.client_id ~= client.client_id then return nil, malformed() end
  return client, tx, user
end

-- A successful MFA grant: the mfa_token is spent, tokens follow the original login [INF].
local function complete(self, client, token, tx, user, extra)
  self.mfa_tokens[token] = nil
  local login = {}
  for k, v in pairs(tx.login) do login[k] = v end
  login.amr = { "mfa" }
  local resp = self:issue_tokens(user, client, login)
  if extra then
    local body = util.decode(resp.body)
    for k, v in pairs(extra) do body[k] = v end
    resp = json(resp.status, body)
  end
  return resp
end

local function required(name, v)
  if type(v) == "number" then v = format("%d", v) end
  if type(v) ~= "string" or v == "" then
    return nil, err(400, "invalid_request", "Missing required parameter: " .. name)
  end
  return v
end

-- The step of a TOTP code accepted for `a` now (current or previous step, never reused), or nil.
local function totp_step(self, a, code)
  local key = core.base32_decode(a.secret)
  local step = floor(self:now() / TOTP_PERIOD)
  for s = step, step - 1, -1 do
    if s > (a.last_step or -1) and core.totp(key, s * TOTP_PERIOD, TOTP_PERIOD, 6, "SHA1") == code then return s end
  end
end

function methods:grant_mfa_otp(req, params)
  local client, tx, user = grant_begin(self, req, params, GRANT_OTP)
  if not client then return tx end
  local otp, oerr = required("otp", params.otp)
  if not otp then return oerr end
  local uid = user.user_id
  local limited = too_many(self, uid)
  if limited then return limited end
  -- Active TOTP authenticators, and unconfirmed ones of an OTP enrollment (not Guardian's).
  for _, a in ipairs(self.authenticators[uid] or {}) do
    if a.kind == "totp" and (a.active or not a.paired) then
      local s = totp_step(self, a, otp)
      if s then
        a.last_step = s
        activate(self, uid, a)
        return complete(self, client, params.mfa_token, tx, user)
      end
    end
  end
  return failed(self, uid, "Invalid otp_code.")  -- [SDK] text
end

function methods:grant_mfa_oob(req, params)
  local client, tx, user = grant_begin(self, req, params, GRANT_OOB)
  if not client then return tx end
  local code, cerr = required("oob_code", params.oob_code)
  if not code then return cerr end
  local uid = user.user_id
  local otx = self.oob_tx[code]
  -- [INF] text for an unknown, spent or foreign oob_code; another login's challenge is foreign.
  if not otx or otx.user_id ~= uid or (otx.mfa_token and otx.mfa_token ~= params.mfa_token) then
    return err(403, "invalid_grant", "Invalid oob_code.")
  end
  local now = self:now()
  if otx.expires_at <= now then
    return err(401, "expired_token", "oob_code is expired")  -- [community text; INF code]
  end
  local a = find_authenticator(self, uid, otx.authenticator_id)
  if not a then return err(403, "invalid_grant", "Invalid oob_code.") end
  if otx.binding_code then
    local binding = params.binding_code
    if type(binding) == "number" then binding = format("%d", binding) end
    if type(binding) ~= "string" or binding == "" then
      return err(400, "invalid_request", "Missing required parameter: binding_code")
    end
    local limited = too_many(self, uid)
    if limited then return limited end
    if binding ~= otx.binding_code then return failed(self, uid, "Invalid binding_code.") end  -- [SDK] text
    self.oob_tx[code] = nil  -- single use
    activate(self, uid, a)
    return complete(self, client, params.mfa_token, tx, user)
  end
  -- Push: pending until answered through the control API.
  local last = otx.last_poll_at
  otx.last_poll_at = now
  if otx.state == "rejected" then
    self.oob_tx[code] = nil
    return err(400, "access_denied", "MFA Authorization rejected.")  -- [REC] code, status and text
  end
  if otx.state == "approved" then
    self.oob_tx[code] = nil
    activate(self, uid, a)
    return complete(self, client, params.mfa_token, tx, user)
  end
  local interval = self.mfa_settings.poll_min_interval
  if last and now - last < interval then
    -- [INF] status 429 (a rate limit; docs/protocol.md
    -- "6.2 http://auth0.com/oauth/grant-type/mfa-oob"), the device flow's wording.
    return err(429, "slow_down", format("You are polling faster than the specified interval of %d seconds.", interval))
  end
  return err(400, "authorization_pending", "Authorization pending: please repeat the request in a few seconds.")  -- [REC]
end

function methods:grant_mfa_recovery_code(req, params)
  local client, tx, user = grant_begin(self, req, params, GRANT_RC)
  if not client then return tx end
  local code, cerr = required("recovery_code", params.recovery_code)
  if not code then return cerr end
  local uid = user.user_id
  local limited = too_many(self, uid)
  if limited then return limited end
  local rc = recovery_of(self, uid)
  if not rc or not rc.active or rc.code ~= (gsub(code, "%s", ""):upper()) then
    return failed(self, uid, "Invalid recovery code.")  -- [DOC] code; [INF] text
  end
  rc.code = A.new_recovery_code(self)  -- rotated: the old one is now invalid
  return complete(self, client, params.mfa_token, tx, user, { recovery_code = rc.code })
end

return M
