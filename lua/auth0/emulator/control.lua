--- Emulator module: the control API for tests, under /__emulator/. JSON in, JSON out.
--
-- Routes (errors are 400 `{"error":"bad_request","error_description":"..."}`):
--
--   GET    /__emulator/outbox[?to=<email or phone>]
--          -> {"messages":[{to, connection, client_id, kind:"code"|"link", send, code, link?,
--                           language?, sent_at}]}  oldest first, newest last.
--   DELETE /__emulator/outbox                      -> {"deleted": <count>}
--   GET    /__emulator/clock                       -> {"now": <epoch>}
--   POST   /__emulator/clock   {"advance": seconds} | {"set": epoch} and/or {"freeze": true|false}
--          -> {"now": <epoch>, "frozen": bool}  (a frozen clock only moves by advance/set)
--   POST   /__emulator/clients {client_id, client_secret?, app_type?, name?, grant_types?,
--                               refresh_token_rotation?}
--          create/replace; a secret makes the client confidential; grant_types defaults to
--          passwordless otp, refresh_token, mfa-otp, mfa-oob, mfa-recovery-code.  -> the client
--   POST   /__emulator/connections {name, strategy:"email"|"sms", otp_length?, otp_lifetime?,
--                                   disable_signup?, enabled_clients?}  -> the connection
--          (enabled_clients omitted = enabled for every client; another strategy value makes a
--          non-passwordless connection, for the "Invalid connection strategy" error.)
--   POST   /__emulator/apis    {identifier, allow_offline_access?, token_lifetime?, scopes?}
--   POST   /__emulator/users   {connection, email | phone_number, blocked?, name?, nickname?,
--                               picture?, email_verified?, phone_verified?, mfa?, ...}
--          create/update (free-form fields are stored on the user) -> the user (with user_id)
--   GET    /__emulator/users[?user_id=...]         -> {"users":[...]}
--   DELETE /__emulator/users?user_id=...           -> {"deleted": true|false}
--   POST   /__emulator/rate_limits {"passwordless_start": {"limit": 50, "window": 3600}}
--          and/or {"enabled": false|true}          -> the rate-limit settings
--   POST   /__emulator/reset                       -> {"ok": true}; defaults back, key kept
--   GET    /__emulator/state                       -> {"now", "clients", "connections", "apis"}
--
-- Defaults after start/reset: public client "emu-native" (no secret), confidential client
-- "emu-confidential" / "emu-confidential-secret", connections "email" and "sms" enabled for
-- both, API "https://api.example.com" with offline access, rate limits on (50/h per IP).
--
-- MFA routes (errors 400 `bad_request`, 404 `not_found`):
--   GET    /__emulator/mfa                  -> settings
--   POST   /__emulator/mfa {poll_min_interval?, mfa_token_lifetime?, oob_code_lifetime?,
--                           attempts?, refill_seconds?, tenant_name?}   -> settings
--          defaults 5, 600, 300, 10, 360, "Auth0 Emulator"; reset restores them.
--   GET    /__emulator/mfa/authenticators?user_id=   -> {"authenticators":[...]}
--          every field, including the TOTP `secret` and the recovery `code`
--   POST   /__emulator/mfa/authenticators {user_id, type:"otp"|"sms"|"voice"|"email"|"push",
--                           phone_number?, email?, name?, secret?, active? (default true)}
--          enrolls directly (push also adds its totp; the first one adds a recovery code)
--          -> {"authenticator":{...}, "paired":{...}?, "recovery_code":"..."?}
--   DELETE /__emulator/mfa/authenticators?user_id=   -> {"deleted": n}
--   GET    /__emulator/guardian[?user_id=]  -> {"transactions":[{oob_code, user_id,
--          authenticator_id, enrollment, enrollment_tx_id?, state, created_at, expires_at,
--          last_poll_at?}]}  pending push challenges and enrollments, oldest first
--   POST   /__emulator/guardian/<oob_code>/approve {name?} | /reject   -> {oob_code, state}
--          (the fake Guardian app: answers a push challenge or completes a push enrollment)
--   GET    /__emulator/keys  -> {"signing_kid": kid, "kids": [published kids, signing first]}
--   POST   /__emulator/keys {"rotate": true, "keep_old": bool} | {"drop_old": true}
--          a new signing key (the old one stays published with keep_old); drop_old
--          unpublishes the old ones. /reset restores the first key.
-- luacheck: ignore 212/self
local core = require "auth0.core"
local util = require "auth0.emulator.util"
local A = require "auth0.emulator.authenticators"

local type, pairs, ipairs, tonumber, tostring = type, pairs, ipairs, tonumber, tostring
local sort = table.sort
local lower = string.lower

local json, err, array = util.json, util.error, util.array

local M = { methods = {} }
local methods = M.methods
local P = "/__emulator"

M.routes = {
  { "GET", P .. "/outbox", "ctl_outbox" },
  { "DELETE", P .. "/outbox", "ctl_outbox_clear" },
  { "GET", P .. "/clock", "ctl_clock" },
  { "POST", P .. "/clock", "ctl_clock" },
  { "POST", P .. "/clients", "ctl_clients" },
  { "POST", P .. "/connections", "ctl_connections" },
  { "POST", P .. "/apis", "ctl_apis" },
  { "POST", P .. "/users", "ctl_users" },
  { "GET", P .. "/users", "ctl_users_list" },
  { "DELETE", P .. "/users", "ctl_users_delete" },
  { "POST", P .. "/rate_limits", "ctl_rate_limits" },
  { "POST", P .. "/reset", "ctl_reset" },
  { "GET", P .. "/state", "ctl_state" },
  { "GET", P .. "/mfa", "ctl_mfa" },
  { "POST", P .. "/mfa", "ctl_mfa" },
  { "GET", P .. "/mfa/authenticators", "ctl_mfa_authenticators" },
  { "POST", P .. "/mfa/authenticators", "ctl_mfa_enroll" },
  { "DELETE", P .. "/mfa/authenticators", "ctl_mfa_unenroll" },
  { "GET", P .. "/guardian", "ctl_guardian" },
  { "GET", P .. "/keys", "ctl_keys" },
  { "POST", P .. "/keys", "ctl_keys" },
  { "POST", P .. "/guardian/([^/]+)/(%a+)", "ctl_guardian_answer", pattern = true },
}

local function bad(msg)
  return util.error(400, "bad_request", msg)
end

local function body(self, req)
  local params, perr = self:params(req, "bad_request")
  return params, perr
end

local function public_client(c)
  return { client_id = c.client_id, client_secret = c.client_secret, confidential = c.confidential,
           app_type = c.app_type, name = c.name, grant_types = util.array(c.grant_types),
           refresh_token_rotation = c.refresh_token_rotation }
end

local function public_user(u)
  local out = {}
  for k, v in pairs(u) do out[k] = v end
  return out
end

function methods:ctl_outbox(req)
  local to = req.query.to
  local list = util.array()
  for _, m in ipairs(self.outbox) do
    if not to or m.to == to or (m.to:lower() == to:lower() and m.to:find("@", 1, true)) then
      list[#list + 1] = m
    end
  end
  return json(200, { messages = list })
end

function methods:ctl_outbox_clear()
  local n = #self.outbox
  self.outbox = {}
  return json(200, { deleted = n })
end

function methods:ctl_clock(req)
  if req.method == "POST" then
    local p, perr = body(self, req)
    if not p then return perr end
    if p.freeze ~= nil then self:freeze(p.freeze == true) end
    if tonumber(p.set) then
      self:set_time(util.int(p.set))
    elseif tonumber(p.advance) then
      self:advance(util.int(p.advance))
    elseif p.freeze == nil then
      return bad("expected {\"advance\": seconds}, {\"set\": epoch} or {\"freeze\": bool}")
    end
  end
  return json(200, { now = self:now(), frozen = self.frozen_at ~= nil })
end

function methods:ctl_clients(req)
  local p, perr = body(self, req)
  if not p then return perr end
  if type(p.client_id) ~= "string" or p.client_id == "" then return bad("client_id is required") end
  if p.client_secret ~= nil and type(p.client_secret) ~= "string" then return bad("client_secret must be a string") end
  if p.grant_types ~= nil and type(p.grant_types) ~= "table" then return bad("grant_types must be a list") end
  return json(200, public_client(self:put_client(p)))
end

function methods:ctl_connections(req)
  local p, perr = body(self, req)
  if not p then return perr end
  if type(p.name) ~= "string" or p.name == "" then return bad("name is required") end
  if p.strategy ~= nil and type(p.strategy) ~= "string" then return bad("strategy must be a string") end
  local c = self:put_connection(p)
  return json(200, { name = c.name, strategy = c.strategy, otp_length = c.otp_length,
                     otp_lifetime = c.otp_lifetime, disable_signup = c.disable_signup,
                     enabled_clients = c.enabled_clients and util.array(c.enabled_clients) or util.null })
end

function methods:ctl_apis(req)
  local p, perr = body(self, req)
  if not p then return perr end
  if type(p.identifier) ~= "string" or p.identifier == "" then return bad("identifier is required") end
  local a = self:put_api(p)
  return json(200, { identifier = a.identifier, allow_offline_access = a.allow_offline_access,
                     token_lifetime = a.token_lifetime })
end

function methods:ctl_users(req)
  local p, perr = body(self, req)
  if not p then return perr end
  local user, uerr = self:put_user(p)
  if not user then return bad(uerr) end
  return json(200, public_user(user))
end

function methods:ctl_users_list(req)
  local list = util.array()
  for id, u in pairs(self.users) do
    if not req.query.user_id or req.query.user_id == id then list[#list + 1] = public_user(u) end
  end
  sort(list, function(a, b) return a.user_id < b.user_id end)
  return json(200, { users = list })
end

function methods:ctl_users_delete(req)
  local id = req.query.user_id
  if not id then return bad("user_id is required") end
  return json(200, { deleted = self:delete_user(id) == true })
end

function methods:ctl_rate_limits(req)
  local p, perr = body(self, req)
  if not p then return perr end
  if p.enabled ~= nil then self.rate_limits.enabled = p.enabled == true end
  for name, cfg in pairs(p) do
    if name ~= "enabled" then
      if type(cfg) ~= "table" or not tonumber(cfg.limit) or not tonumber(cfg.window)
         or tonumber(cfg.limit) < 1 or tonumber(cfg.window) <= 0 then
        return bad("expected {\"" .. tostring(name) .. "\": {\"limit\": n, \"window\": seconds}}")
      end
      self.rate_limits[name] = { limit = util.int(cfg.limit), window = util.int(cfg.window) }
      -- New settings start from full buckets.
      for key in pairs(self.rate_buckets) do
        if key:sub(1, #name + 1) == name .. "\0" then self.rate_buckets[key] = nil end
      end
    end
  end
  return json(200, self.rate_limits)
end

function methods:ctl_reset()
  self:reset()
  if self.key0 then   -- /keys rotated the signing key: back to the first one
    self.key, self.kid, self.jwk, self.key0 = self.key0, self.kid0, self.jwk0, nil
  end
  self.jwks_extra = nil
  return json(200, { ok = true })
end

-- The signing keys: POST {"rotate": true, "keep_old": bool} makes a new signing key (the old
-- one stays published when keep_old), {"drop_old": true} unpublishes every non-signing key.
function methods:ctl_keys(req)
  if req.method == "POST" then
    local p, perr = body(self, req)
    if not p then return perr end
    if p.rotate then
      if not self.key0 then self.key0, self.kid0, self.jwk0 = self.key, self.kid, self.jwk end
      local old = self.jwk
      self.key = core.rsa_key()
      local jwk = self.key:jwk()
      self.kid = core.b64url_encode(core.sha256(('{"e":"%s","kty":"RSA","n":"%s"}'):format(jwk.e, jwk.n)))
      self.jwk = { kty = "RSA", n = jwk.n, e = jwk.e, alg = "RS256", use = "sig", kid = self.kid }
      self.jwks_extra = self.jwks_extra or {}
      if p.keep_old then table.insert(self.jwks_extra, 1, old) end
    elseif p.drop_old then
      self.jwks_extra = nil
    else
      return bad("expected {\"rotate\": true, \"keep_old\": bool} or {\"drop_old\": true}")
    end
  end
  local kids = array{ self.kid }
  for _, k in ipairs(self.jwks_extra or {}) do kids[#kids + 1] = k.kid end
  return json(200, { signing_kid = self.kid, kids = kids })
end

function methods:ctl_state()
  local clients, conns, apis = util.array(), util.array(), util.array()
  for _, c in pairs(self.clients) do clients[#clients + 1] = public_client(c) end
  for _, c in pairs(self.connections) do conns[#conns + 1] = { name = c.name, strategy = c.strategy } end
  for _, a in pairs(self.apis) do apis[#apis + 1] = { identifier = a.identifier } end
  return json(200, { now = self:now(), issuer = self.issuer, clients = clients, connections = conns, apis = apis })
end

---------------------------------------------------------------------------------------------
-- MFA settings, direct enrollment and the fake Guardian (the MFA state is mfa.lua's).

local CONTROL_KIND = { otp = "totp", totp = "totp", sms = "sms", voice = "voice", email = "email", push = "push" }
local SETTINGS_MIN = { poll_min_interval = 0, mfa_token_lifetime = 1, oob_code_lifetime = 1, attempts = 1,
                       refill_seconds = 0 }

function methods:ctl_mfa(req)
  if req.method == "POST" then
    local p, perr = self:params(req, "bad_request")
    if not p then return perr end
    for k, v in pairs(p) do
      if k == "tenant_name" then
        if type(v) ~= "string" or v == "" then return bad("tenant_name must be a non-empty string") end
      elseif SETTINGS_MIN[k] == nil then
        return bad("unknown setting: " .. tostring(k))
      elseif type(v) ~= "number" or v < SETTINGS_MIN[k] then
        return bad(k .. " must be a number >= " .. SETTINGS_MIN[k])
      end
    end
    for k, v in pairs(p) do self.mfa_settings[k] = v end
  end
  return json(200, self.mfa_settings)
end

local function control_view(a)
  local out = A.wire_authenticator(a)
  out.secret, out.code, out.paired = a.secret, a.code, a.paired
  out.phone_number, out.email, out.created_at, out.last_step = a.phone_number, a.email, a.created_at, a.last_step
  return out
end

function methods:ctl_mfa_authenticators(req)
  local uid = req.query.user_id
  if not uid or not self.users[uid] then return bad("user_id must name a user") end
  local out = array()
  for _, a in ipairs(self.authenticators[uid] or {}) do out[#out + 1] = control_view(a) end
  return json(200, { authenticators = out })
end

function methods:ctl_mfa_enroll(req)
  local p, perr = self:params(req, "bad_request")
  if not p then return perr end
  local user = type(p.user_id) == "string" and self.users[p.user_id]
  if not user then return bad("user_id must name a user") end
  local kind = CONTROL_KIND[p.type or ""]
  if not kind then return bad("type must be otp, sms, voice, email or push") end
  local active = p.active ~= false
  local fields = { name = p.name }
  if kind == "sms" or kind == "voice" then
    if not A.valid_phone(p.phone_number) then return bad("phone_number must match ^\\+[0-9]{1,15}$") end
    fields.phone_number, fields.name = p.phone_number, p.name or A.mask_phone(p.phone_number)
  elseif kind == "email" then
    local email = p.email or user.email
    if not A.valid_email(email) then return bad("email is missing or malformed") end
    fields.email, fields.name = lower(email), p.name or A.mask_email(lower(email))
  elseif kind == "totp" then
    fields.secret = p.secret or A.new_totp_secret(self)
    if type(fields.secret) ~= "string" or not core.base32_decode(fields.secret) then return bad("secret must be base32") end
    fields.name = nil
  else
    fields.name = p.name or "Emulated Device"
  end
  local a = A.add_authenticator(self, user.user_id, kind, fields)
  a.active = active
  local paired
  if kind == "push" then
    paired = A.add_authenticator(self, user.user_id, "totp", { secret = A.new_totp_secret(self), paired = a.id })
    paired.active, a.paired = active, paired.id
  end
  local rc = A.first_recovery_code(self, user.user_id, active)
  return json(200, { authenticator = control_view(a), paired = paired and control_view(paired) or nil,
                     recovery_code = rc })
end

function methods:ctl_mfa_unenroll(req)
  local uid = req.query.user_id
  if not uid then return bad("user_id is required") end
  local n = #(self.authenticators[uid] or {})
  self.authenticators[uid] = nil
  for code, tx in pairs(self.oob_tx) do if tx.user_id == uid then self.oob_tx[code] = nil end end
  return json(200, { deleted = n })
end

local function tx_view(tx)
  return { oob_code = tx.oob_code, user_id = tx.user_id, authenticator_id = tx.authenticator_id,
           enrollment = tx.enrollment == true, enrollment_tx_id = tx.enrollment_tx_id, state = tx.state,
           created_at = tx.created_at, expires_at = tx.expires_at, last_poll_at = tx.last_poll_at }
end

function methods:ctl_guardian(req)
  local uid, now = req.query.user_id, self:now()
  local out, keep = array(), {}
  for _, code in ipairs(self.oob_order) do
    local tx = self.oob_tx[code]
    if tx then
      keep[#keep + 1] = code
      if tx.kind == "push" and tx.state == "pending" and tx.expires_at > now and (not uid or tx.user_id == uid) then
        out[#out + 1] = tx_view(tx)
      end
    end
  end
  self.oob_order = keep
  return json(200, { transactions = out })
end

function methods:ctl_guardian_answer(req, code, action)
  if action ~= "approve" and action ~= "reject" then return err(404, "not_found", "Not found") end
  local tx = self.oob_tx[code]
  if not tx or tx.kind ~= "push" then return err(404, "not_found", "No push transaction " .. code) end
  if tx.state ~= "pending" then return bad("the transaction is already " .. tx.state) end
  if tx.expires_at <= self:now() then return bad("the transaction has expired") end
  local p = self:params(req, "bad_request") or {}
  tx.state = action == "approve" and "approved" or "rejected"
  if action == "approve" and tx.enrollment then
    -- The device that scanned the enrollment QR code names the authenticator.
    local a = A.find_authenticator(self, tx.user_id, tx.authenticator_id)
    if a then a.name = type(p.name) == "string" and p.name or "Emulated Device" end
  end
  return json(200, { oob_code = code, state = tx.state })
end


return M
