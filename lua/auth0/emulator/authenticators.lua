--- Emulator module: the MFA authenticator store shared by the MFA endpoints (mfa.lua) and the
-- control routes (control.lua): authenticators per user, recovery codes, out-of-band
-- transactions (binding codes and push) and random values in the shapes of the real ones
-- (docs/protocol.md "5. MFA API endpoints", "11. Emulator constants (defaults to implement)").
-- A helper library, not a registered module: mfa.lua's reset creates the tables it uses.
local core = require "auth0.core"
local util = require "auth0.emulator.util"

local type, pairs, ipairs = type, pairs, ipairs
local concat, remove = table.concat, table.remove
local min = math.min
local byte, format = string.byte, string.format

local b64url = core.b64url_encode

local A = {}

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
-- The letters of the real samples [INF] (docs/protocol.md
-- "11. Emulator constants (defaults to implement)").
local RECOVERY_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZ"

-- What each authenticator kind looks like on the wire.
local KINDS = {
  totp = { authenticator_type = "otp", type = "otp" },
  sms = { authenticator_type = "oob", oob_channel = "sms", type = "phone" },
  voice = { authenticator_type = "oob", oob_channel = "voice", type = "phone" },
  email = { authenticator_type = "oob", oob_channel = "email", type = "email" },
  push = { authenticator_type = "oob", oob_channel = "auth0", type = "push-notification" },
  ["recovery-code"] = { authenticator_type = "recovery-code", type = "recovery-code" },
}
local CHANNEL_KIND = { sms = "sms", voice = "voice", email = "email", auth0 = "push" }

---------------------------------------------------------------------------------------------
-- Random values in the shapes of the real ones.

local function random_from(self, alphabet, n)
  local size, out = #alphabet, {}
  local limit = 256 - 256 % size  -- rejection sampling keeps the choice uniform
  while #out < n do
    local bytes = self:random_bytes(n)
    for i = 1, #bytes do
      local b = byte(bytes, i)
      if b < limit and #out < n then
        local j = b % size + 1
        out[#out + 1] = alphabet:sub(j, j)
      end
    end
  end
  return concat(out)
end

-- Iron-sealed strings ("Fe26.2*...") as the real mfa_token and oob_code are [REC]; here they
-- are only opaque keys into the emulator's tables.
local function iron(self, password_id, expires_at)
  return concat({ "Fe26.2", password_id, b64url(self:random_bytes(32)), b64url(self:random_bytes(16)),
                  b64url(self:random_bytes(48)), format("%d", expires_at * 1000), b64url(self:random_bytes(32)),
                  b64url(self:random_bytes(32)) }, "*")
end

-- A fresh recovery code (24 characters, the alphabet of the real samples [INF]).
local function new_recovery_code(self)
  return random_from(self, RECOVERY_ALPHABET, 24)
end

-- A random [A-Za-z0-9] string of length n (Guardian enrollment transaction ids).
local function random_id(self, n)
  return random_from(self, ALNUM, n)
end

local function new_authenticator_id(self, kind)
  return kind .. "|dev_" .. random_from(self, ALNUM, 16)
end

local function mask_phone(s)
  return string.rep("X", #s - 4) .. s:sub(-4)
end

local function mask_email(s)
  local user, domain = s:match("^(.*)@(.*)$")
  if not user then return s end
  return string.rep("*", #user) .. "@" .. domain:sub(1, 4) .. string.rep("*", #domain - min(#domain, 4))
end

---------------------------------------------------------------------------------------------
-- Authenticators.

local function list_of(self, user_id)
  local list = self.authenticators[user_id]
  if not list then
    list = {}
    self.authenticators[user_id] = list
  end
  return list
end

local function find_authenticator(self, user_id, id)
  for i, a in ipairs(self.authenticators[user_id] or {}) do
    if a.id == id then return a, i end
  end
end

local function has_active(self, user_id)
  for _, a in ipairs(self.authenticators[user_id] or {}) do
    if a.active and a.kind ~= "recovery-code" then return true end
  end
  return false
end

local function recovery_of(self, user_id)
  for _, a in ipairs(self.authenticators[user_id] or {}) do
    if a.kind == "recovery-code" then return a end
  end
end

-- Removes authenticator `id` and its push/totp partner; the recovery code goes with the last
-- factor [INF], so that the next enrollment is a first one again.
local function remove_authenticator(self, user_id, id)
  local list = self.authenticators[user_id] or {}
  local a = find_authenticator(self, user_id, id)
  if not a then return false end
  for i = #list, 1, -1 do
    if list[i].id == id or (a.paired and list[i].id == a.paired) then remove(list, i) end
  end
  for code, tx in pairs(self.oob_tx) do
    if tx.user_id == user_id and (tx.authenticator_id == id or tx.authenticator_id == a.paired) then
      self.oob_tx[code] = nil
    end
  end
  local others = false
  for _, x in ipairs(list) do if x.kind ~= "recovery-code" then others = true end end
  if not others then
    for i = #list, 1, -1 do if list[i].kind == "recovery-code" then remove(list, i) end end
  end
  return true
end

local function add_authenticator(self, user_id, kind, fields)
  local a = { id = new_authenticator_id(self, kind), kind = kind, active = false, created_at = self:now() }
  for k, v in pairs(fields or {}) do a[k] = v end
  local list = list_of(self, user_id)
  list[#list + 1] = a
  return a
end

-- Issues the recovery code on the first enrollment (none active yet); nil afterwards.
local function first_recovery_code(self, user_id, active)
  local rc = recovery_of(self, user_id)
  if rc and rc.active then return nil end
  if not rc then rc = add_authenticator(self, user_id, "recovery-code") end
  rc.code = new_recovery_code(self)
  rc.active = active == true
  return rc.code
end

-- Confirms an enrollment: the authenticator, its partner and the recovery code become active.
local function activate(self, user_id, a)
  if a.active then return end
  a.active = true
  if a.paired then
    local p = find_authenticator(self, user_id, a.paired)
    if p then p.active = true end
  end
  local rc = recovery_of(self, user_id)
  if rc then rc.active = true end
end

local function wire_authenticator(a)
  local k = KINDS[a.kind]
  return { id = a.id, authenticator_type = k.authenticator_type, active = a.active, oob_channel = k.oob_channel,
           name = a.name, type = k.type }
end

local function new_totp_secret(self)
  return core.base32_encode(self:random_bytes(20))  -- 160 bits = 32 base32 characters [REC]
end

local function user_label(user)
  return user.email or user.phone_number or user.user_id
end

local function otpauth_label(self, user)
  return util.url_encode(self.mfa_settings.tenant_name) .. ":" .. util.url_encode(user_label(user))
end

---------------------------------------------------------------------------------------------
-- Out-of-band transactions (binding codes and push).
local function new_oob(self, user, a, fields)
  local now = self:now()
  local expires_at = now + self.mfa_settings.oob_code_lifetime
  local code = iron(self, "SERVER_" .. now, expires_at)
  local tx = { oob_code = code, user_id = user.user_id, authenticator_id = a.id, kind = a.kind,
               created_at = now, expires_at = expires_at, state = "pending" }
  for k, v in pairs(fields or {}) do tx[k] = v end
  self.oob_tx[code] = tx
  self.oob_order[#self.oob_order + 1] = code
  return tx
end

-- Sends a 6-digit binding code by SMS, voice or e-mail (outbox kind "mfa").
local function send_binding_code(self, user, a, client_id, enrollment)
  local code = self:random_digits(6)
  local tx = new_oob(self, user, a, { binding_code = code, enrollment = enrollment })
  self.outbox[#self.outbox + 1] = {
    to = a.phone_number or a.email, kind = "mfa", channel = a.kind, binding_code = code, code = code,
    user_id = user.user_id, authenticator_id = a.id, client_id = client_id, sent_at = tx.created_at,
    enrollment = enrollment == true,
  }
  return tx
end

-- Starts a push transaction (outbox kind "push", answered through the guardian control routes).
local function send_push(self, user, a, client_id, enrollment_tx_id)
  local tx = new_oob(self, user, a, { enrollment = enrollment_tx_id ~= nil, enrollment_tx_id = enrollment_tx_id })
  self.outbox[#self.outbox + 1] = {
    to = user_label(user), kind = "push", oob_code = tx.oob_code, user_id = user.user_id,
    authenticator_id = a.id, client_id = client_id, sent_at = tx.created_at, enrollment = tx.enrollment,
  }
  return tx
end

---------------------------------------------------------------------------------------------
-- Parameters of enrollments (POST /mfa/associate and the control route).

-- A list parameter sent as a string or an array.
local function list_param(v)
  if type(v) == "string" then return { v } end
  if type(v) == "table" then return v end
  return nil
end

local function valid_phone(s) return type(s) == "string" and s:match("^%+%d+$") ~= nil and #s <= 16 end
local function valid_email(s) return type(s) == "string" and s:match("^[^%s@]+@[^%s@]+%.[^%s@]+$") ~= nil end

-- Drops unconfirmed authenticators of `kind` (a retried enrollment replaces the last one) [INF].
local function drop_inactive(self, user_id, kind)
  for _, a in ipairs(self.authenticators[user_id] or {}) do
    if a.kind == kind and not a.active then
      remove_authenticator(self, user_id, a.id)
      return drop_inactive(self, user_id, kind)
    end
  end
end

A.KINDS, A.CHANNEL_KIND = KINDS, CHANNEL_KIND
A.iron, A.mask_phone, A.mask_email, A.new_recovery_code, A.random_id = iron, mask_phone, mask_email, new_recovery_code, random_id
A.find_authenticator, A.has_active, A.recovery_of = find_authenticator, has_active, recovery_of
A.add_authenticator, A.remove_authenticator, A.drop_inactive = add_authenticator, remove_authenticator, drop_inactive
A.first_recovery_code, A.activate, A.wire_authenticator = first_recovery_code, activate, wire_authenticator
A.new_totp_secret, A.user_label, A.otpauth_label = new_totp_secret, user_label, otpauth_label
A.send_binding_code, A.send_push = send_binding_code, send_push
A.list_param, A.valid_phone, A.valid_email = list_param, valid_phone, valid_email

return A
