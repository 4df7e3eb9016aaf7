--- The multi-factor methods of auth0.Client (docs/protocol.md, "MFA").
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local check = require "auth0.check"
local shape = require "auth0.shape"
local errors = require "auth0.error"
local core = require "auth0.core"
local Client = require("auth0.client").Client

local type, pairs, ipairs, max = type, pairs, ipairs, math.max
local now, new_error, at = core.now, errors.new, check.at

local LIST, DELETE, ASSOCIATE = at("mfa_authenticators"), at("mfa_delete_authenticator"), at("mfa_associate")
local CHALLENGE, VERIFY, POLL = at("mfa_challenge"), at("mfa_verify"), at("mfa_poll")
local O_CHALLENGE, O_VERIFY, O_POLL = { fn = "mfa_challenge" }, { fn = "mfa_verify" }, { fn = "mfa_poll" }

local function client_fields(self, t)
  t.client_id = self._cfg.client_id
  t.client_secret = self._cfg.client_secret
  return t
end

--- Lists authenticators (GET /mfa/authenticators) with an mfa_token or MFA access token.
-- @tparam string token
-- @tparam[opt] function cb callback(list, err)
-- @return `{ {id, authenticator_type, active, oob_channel, name, type}, ... }` or nil, err
function Client:mfa_authenticators(token, cb)
  check.header(LIST, token, "token")
  return self:_call(LIST, "mfa_authenticators", nil, { fn = "mfa_authenticators", bearer = token }, cb,
    shape.authenticators)
end

--- Deletes an authenticator.
-- @tparam string token an MFA access token
-- @tparam string authenticator_id
-- @tparam[opt] function cb callback(true, err)
-- @return true or nil, err
function Client:mfa_delete_authenticator(token, authenticator_id, cb)
  check.header(DELETE, token, "token")
  local arg2 = at("mfa_delete_authenticator", 2)
  check.wire(arg2, check.string(arg2, authenticator_id, "authenticator_id"), "authenticator_id")
  -- sent as one path segment, percent-encoded; "." and ".." would leave it (issue 11)
  if authenticator_id == "." or authenticator_id == ".." then arg2:fail("authenticator_id must not be . or ..") end
  return self:_call(DELETE, "mfa_delete_authenticator", nil,
    { fn = "mfa_delete_authenticator", bearer = token, path_arg = authenticator_id }, cb, shape.ok)
end

local OOB_CHANNELS = { sms = true, voice = true, auth0 = true, email = true }
local AUTH_TYPES = { otp = true, oob = true }

--- Enrolls an authenticator (POST /mfa/associate).
-- @tparam table p `token`, `authenticator_types` ({"otp"} or {"oob"}), `oob_channels`,
-- `phone_number`, `email`
-- @tparam[opt] function cb callback(enrollment, err)
-- @return `{authenticator_type, secret, barcode_uri, recovery_codes, oob_code, binding_method,
-- oob_channel}` or nil, err
function Client:mfa_associate(p, cb)
  check.table(ASSOCIATE, p)
  local token = check.header(ASSOCIATE, p.token, "token")
  local types = p.authenticator_types
  if type(types) ~= "table" or #types == 0 then ASSOCIATE:fail("authenticator_types must be a non-empty list") end
  for _, t in ipairs(types) do
    if not AUTH_TYPES[t] then ASSOCIATE:fail("authenticator_types: unknown type " .. check.show(t)) end
  end
  local channels = p.oob_channels
  if channels ~= nil then
    if type(channels) ~= "table" or #channels == 0 then ASSOCIATE:fail("oob_channels must be a non-empty list") end
    for _, c in ipairs(channels) do
      if not OOB_CHANNELS[c] then ASSOCIATE:fail("oob_channels: unknown channel " .. check.show(c)) end
    end
  end
  if types[1] == "oob" and channels == nil then ASSOCIATE:fail("oob enrollment needs oob_channels") end
  local fields = client_fields(self, { authenticator_types = types, oob_channels = channels,
    phone_number = p.phone_number and check.phone(ASSOCIATE, p.phone_number),
    email = p.email and check.email(ASSOCIATE, p.email) })
  return self:_call(ASSOCIATE, "mfa_associate", fields, { fn = "mfa_associate", bearer = token }, cb, shape.associate)
end

local CHALLENGE_TYPES = { otp = true, oob = true, ["otp oob"] = true, ["oob otp"] = true }

--- Starts a challenge (POST /mfa/challenge).
-- @tparam table p `mfa_token`, `challenge_type` ("otp", "oob", "otp oob"), `authenticator_id`
-- @tparam[opt] function cb callback(challenge, err)
-- @return `{challenge_type, oob_code, binding_method}` or nil, err
function Client:mfa_challenge(p, cb)
  check.table(CHALLENGE, p)
  local ct = p.challenge_type
  if ct ~= nil and not CHALLENGE_TYPES[ct] then CHALLENGE:fail("challenge_type must be otp, oob or \"otp oob\"") end
  local fields = client_fields(self, { mfa_token = check.string(CHALLENGE, p.mfa_token, "mfa_token"),
    challenge_type = ct, authenticator_id = check.string(CHALLENGE, p.authenticator_id, "authenticator_id", true) })
  return self:_call(CHALLENGE, "mfa_challenge", fields, O_CHALLENGE, cb, shape.challenge)
end

local VERIFY_FIELDS = { mfa_token = true, otp = true, oob_code = true, binding_code = true, recovery_code = true,
  forwarded_for = true }

--- Completes MFA with exactly one of `otp`, `oob_code` (+ `binding_code`), `recovery_code`.
-- With a recovery code, `tokens.recovery_code` is the new code to show the user.
-- @tparam table p `mfa_token` and one of the above; `forwarded_for` (the end user's IP,
-- confidential clients only: README "Security")
-- @tparam[opt] function cb callback(tokens, err)
-- @return tokens or nil, err
function Client:mfa_verify(p, cb)
  check.table(VERIFY, p)
  local mfa_token = check.string(VERIFY, p.mfa_token, "mfa_token")
  local which = check.one_of(VERIFY, p, { "otp", "oob_code", "recovery_code" })
  if p.binding_code ~= nil and which ~= "oob_code" then VERIFY:fail("binding_code goes with oob_code") end
  for k in pairs(p) do
    if not VERIFY_FIELDS[k] then VERIFY:fail("mfa_verify: unknown field " .. check.show(k)) end
  end
  local value = check.string(VERIFY, p[which], which)
  local o = self:_forwarded(VERIFY, p, O_VERIFY)
  if which == "otp" then
    return self:_call(VERIFY, "mfa_otp", client_fields(self, { mfa_token = mfa_token, otp = value }), o, cb,
      shape.tokens)
  elseif which == "oob_code" then
    return self:_call(VERIFY, "mfa_oob", client_fields(self, { mfa_token = mfa_token, oob_code = value,
      binding_code = check.string(VERIFY, p.binding_code, "binding_code", true) }), o, cb, shape.tokens)
  end
  return self:_call(VERIFY, "mfa_recovery_code", client_fields(self, { mfa_token = mfa_token, recovery_code = value }),
    o, cb, shape.tokens)
end


--- Waits for a push approval by polling the mfa-oob grant.
-- @tparam table p `mfa_token`, `oob_code`, `interval` (5 s), `timeout` (300 s),
-- `on_pending(waited_seconds)`, `forwarded_for` (as mfa_verify's)
-- @tparam[opt] function cb callback(tokens, err)
-- @return tokens, or nil, err: `access_denied` (rejected), `expired_token`, `timeout`, ...
function Client:mfa_poll(p, cb)
  check.table(POLL, p)
  local fields = client_fields(self, { mfa_token = check.string(POLL, p.mfa_token, "mfa_token"),
    oob_code = check.string(POLL, p.oob_code, "oob_code") })
  local interval = check.seconds(POLL, p.interval, "interval", 5, 600)
  local limit = check.seconds(POLL, p.timeout, "timeout", 300)
  local on_pending = check.func(POLL, p.on_pending, "on_pending", true)
  local o_poll = self:_forwarded(POLL, p, O_POLL)
  if self._sched.closed then POLL:fail("attempt to use a closed auth0.Client") end
  local started, slept = now(), 0

  -- one step of the state machine: returns "wait", seconds | "done", tokens, err
  local function step(tokens, err)
    if tokens then return "done", tokens end
    -- err.reason, not Auth0's wording (lua/auth0/error.lua derives it once)
    local reason = err.reason
    if reason == "push_pending" or reason == "slow_down" then
      if reason == "slow_down" then interval = interval + 5 end
      -- the waits asked for count even when a custom `sleep` does not really sleep
      local waited = max(now() - started, slept)
      if on_pending then self._sched:call(on_pending, waited) end
      if waited + interval > limit then
        return "done", nil, new_error("timeout", "push approval not received within " .. limit .. " s",
          { context = "mfa_poll" })
      end
      return "wait", interval
    end
    -- a rejection keeps the documented code whichever way the server spelled it
    if err.reason == "push_rejected" then err.code = "access_denied" end
    return "done", nil, err
  end

  if cb == nil then
    local wait = interval
    while true do
      self._sleep(wait)
      slept = slept + wait
      local state, a, b = step(self:_call(POLL, "mfa_oob", fields, o_poll, nil, shape.tokens))
      if state == "done" then return a, b end
      wait = a
    end
  end

  check.func(POLL, cb, "callback")
  local s = self._sched
  local req = s:request("mfa_poll", cb)
  local schedule
  local function on_result(tokens, err)
    local state, a, b = step(tokens, err)
    if state == "done" then req:finish(a, b) else schedule(a) end
  end
  schedule = function(wait)
    s:wait(req, wait, function()
      slept = slept + wait
      local ok, err = self:_attempts(req, "mfa_oob", fields, o_poll, shape.tokens, on_result)
      if not ok then on_result(nil, err) end
    end)
  end
  schedule(interval)
  return req
end

return Client
