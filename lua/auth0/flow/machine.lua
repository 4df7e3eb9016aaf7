--- auth0.flow's state machine: the flow object, its transitions and methods. The states and
-- rules are documented at the top of lua/auth0/flow.lua; each rule lives once, here.
-- Decisions switch on `err.reason` (lua/auth0/error.lua), never on Auth0's wording.
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local auth0 = require "auth0"

local type, pairs, ipairs, tostring, select, error, rawget, rawset, setmetatable, getmetatable =
  type, pairs, ipairs, tostring, select, error, rawget, rawset, setmetatable, getmetatable
local time, now = os.time, auth0.core.now
local new_error = auth0.error.new

local _M = { ATTEMPTS_PER_CODE = 3 }

local Flow = { __name = "auth0.Flow" }
_M.Flow = Flow

-- The flow's secrets (mfa_token, oob_code, the link's state, nonce and PKCE verifier) live
-- beside it, not in it: a flow raised from a callback, or dumped field by field by a logger,
-- shows none of them (issue 11). Weak keys: they go with their flow.
local HIDDEN = { _mfa_token = true, _oob_code = true, _link = true }
local hidden = setmetatable({}, { __mode = "k" })

-- `f.push_waited` is the time spent in this push wait so far, whenever it is read.
function Flow.__index(f, k)
  if k == "push_waited" then
    local started = rawget(f, "_push_started")
    return rawget(f, "_push_base") + (started and now() - started or 0)
  end
  if HIDDEN[k] then
    local h = hidden[f]
    return h and h[k]
  end
  if k == "_loopback" then
    local get = rawget(f, "_listener")
    return get and get()
  end
  return Flow[k]
end

function Flow.__newindex(f, k, v)
  -- the loopback listener holds the link's state: out of pairs()' reach too, but in a
  -- closure of the flow's own, since its timer refers back to the flow and LuaJIT's weak
  -- keys are no ephemerons (in `hidden` the flow would never be collected)
  if k == "_loopback" then return rawset(f, "_listener", v ~= nil and function() return v end or nil) end
  if not HIDDEN[k] then return rawset(f, k, v) end
  local h = hidden[f]
  if not h then
    h = {}
    hidden[f] = h
  end
  h[k] = v
end

local check = require "auth0.check"
local user_level = check.user_level

-- Misuse raises in luaL_argerror's form at the caller of the public function, as everywhere
-- in the library: `bad argument #narg to 'fn' (msg)`.
local function misuse(fn, narg, msg) check.argerror(fn, narg, msg) end
_M.misuse = misuse

--- Where check.lua's validators report for argument `narg` of `fn`; `fields` when that
-- argument is a table of options, so that type errors name the field (`field 'x': ...`).
function _M.at(fn, narg, fields)
  local a = check.at(fn, narg)
  a.fields = fields
  return a
end

-- A method called on a flow whose state does not allow it: luaL_argerror's words for self.
local function bad_self(fn, msg) error(("calling '%s' on bad self (%s)"):format(fn, msg), user_level()) end
_M.bad_self = bad_self

local TERMINAL = { done = true, failed = true, cancelled = true }

-- ------------------------------------------------------------------------------------
-- Transitions

-- Every transition says which error describes the new state: `f.error` never outlives the
-- state it was about.
local function set_state(f, state, err)
  local started = f._push_started
  if started and state ~= "awaiting_push" then
    f._push_base, f._push_started = f._push_base + (now() - started), nil
  end
  f.state, f.error = state, err
  if f._on_state then f._client:_deliver(f._on_state, f) end
end
_M.set_state = set_state

-- Ends the flow; the mfa_token and oob_code are dropped with it.
local function finish(f, state, err, tokens)
  f._req, f._mfa_token, f._oob_code = nil, nil, nil
  f._gen = f._gen + 1
  f.tokens = tokens
  if tokens and type(tokens.recovery_code) == "string" then f.recovery_code = tokens.recovery_code end
  set_state(f, state, err)
end
_M.finish = finish

-- Stops the request in flight, if any, so that its callback is ignored.
local function abort(f)
  f._gen = f._gen + 1
  local req = f._req
  f._req = nil
  if req and not req:done() then req:cancel() end
end

-- Starts a request through start(cb) and enters `state` (with `err` as f.error);
-- on_result(result, err) runs once, unless the flow moved on before the answer came.
local function launch(f, state, start, on_result, err)
  abort(f)
  local gen, answered = f._gen, false
  local req = start(function(result, e)
    if f._gen ~= gen then return end
    answered = true
    f._req = nil
    if e and e.reason == "cancelled" then return finish(f, "cancelled", e) end
    on_result(result, e)
  end)
  -- a callback run at once (a client closed meanwhile) has moved the flow on already
  if answered or f._gen ~= gen then return end
  f._req = req
  set_state(f, state, err)
end
_M.launch = launch

-- A step that follows an answer (list the authenticators after mfa_required, poll for the push
-- after its challenge): started from the next poll, so that a frame pays for the answer or the
-- next request's start, not both. Until then it is the flow's request: cancel() drops it,
-- client:close() cancels the flow as it would cancel the request in flight.
local function chain(f, step)
  local s = f._client._sched
  if type(s) ~= "table" or type(s.request) ~= "function" or type(s.wait) ~= "function" then return step() end
  abort(f)
  local gen = f._gen
  local req = s:request("flow", function(_, e)
    if e and f._gen == gen then
      f._req = nil
      finish(f, "cancelled", e)
    end
  end)
  f._req = req
  s:wait(req, 0, function()
    if f._gen ~= gen then return end
    f._req = nil
    req:finish()
    step()
  end)
end
_M.chain = chain

-- Errors after which the same step may simply be tried again (later).
local TRANSIENT = { rate_limited = true, too_many_attempts = true, timeout = true, network = true, tls = true,
  server_error = true, bad_response = true }
_M.TRANSIENT = TRANSIENT

-- Errors no MFA step can recover from (a push rejection is handled before).
local FATAL = { misconfigured = true, mfa_token_invalid = true, user_blocked = true, access_denied = true,
  invalid_token = true }

local send_code

-- The mfa_token is dead: log in again from a new code, at most max_restarts times (a flow
-- started by flow.mfa has no login to restart).
local function restart(f, e)
  if f.identifier == nil or f.restarts >= f._max_restarts then return finish(f, "failed", e) end
  f.restarts = f.restarts + 1
  f._mfa_token, f._oob_code = nil, nil
  f.authenticators, f.authenticator, f.enroll_required, f.has_recovery_code = nil, nil, nil, nil
  f.enrollment, f.binding_method, f.challenge_type, f.mfa_requirements = nil, nil, nil, nil
  f._push_base, f._push_started = 0, nil
  f._sent_at = nil
  send_code(f, e)
end

-- An MFA step failed: restart, fail, or go back to `back` with f.error.
local function mfa_error(f, e, back)
  local reason = e.reason
  if reason == "mfa_token_expired" then return restart(f, e) end
  if reason == "push_rejected" or reason == "oob_expired" then return set_state(f, "awaiting_mfa_choice", e) end
  if FATAL[reason] then return finish(f, "failed", e) end
  set_state(f, back, e)
end

local function bad_response(msg)
  return new_error("bad_response", msg, { context = "flow" })
end

-- ------------------------------------------------------------------------------------
-- Steps

-- Sends a code: the first one (a failure fails the flow) or a new one (a failure keeps the
-- old code). `why` is the error that made a restart send it, shown until the code is in.
function send_code(f, why)
  local first = f._sent_at == nil
  local p = { connection = f.connection, send = "code", language = f._language }
  p[f._id_field] = f.identifier
  local client = f._client
  launch(f, "sending_code", function(cb) return client:passwordless_start(p, cb) end, function(_, e)
    if e then
      if first then return finish(f, "failed", e) end
      return set_state(f, "awaiting_code", e)
    end
    f.attempts_left, f.must_resend = _M.ATTEMPTS_PER_CODE, false
    f._sent_at, f._sends = time(), f._sends + 1
    set_state(f, "awaiting_code", why)
  end, why)
end
_M.send_code = send_code

-- The factor type of an authenticator in mfa_requirements' vocabulary.
local function factor_type(a)
  if a.authenticator_type == "otp" then return "otp" end
  local ch = a.oob_channel
  if ch == "sms" or ch == "voice" then return "phone" end
  if ch == "auth0" then return "push-notification" end
  return ch
end

local ALIASES = { sms = "phone", voice = "phone", totp = "otp" }

-- The challenge types mfa_requirements allows, or nil for "any".
local function allowed_types(req)
  local list = type(req) == "table" and req.challenge
  if type(list) ~= "table" or #list == 0 then return nil end
  local set = {}
  for _, c in ipairs(list) do
    if type(c) == "table" and type(c.type) == "string" then set[ALIASES[c.type] or c.type] = true end
  end
  return set
end

-- After mfa_required: lists the authenticators the login may use.
local function list_authenticators(f)
  local client, token = f._client, f._mfa_token
  launch(f, "verifying", function(cb) return client:mfa_authenticators(token, cb) end, function(list, e)
    if e then
      if e.reason == "mfa_token_expired" then return restart(f, e) end
      return finish(f, "failed", e)
    end
    local allowed = allowed_types(f.mfa_requirements)
    local usable, recovery = {}, false
    for _, a in ipairs(list) do
      if a.active ~= false then
        if a.authenticator_type == "recovery-code" then
          recovery = true
        elseif (a.authenticator_type == "otp" or a.authenticator_type == "oob") and type(a.id) == "string"
            and (not allowed or allowed[factor_type(a)] or (a.authenticator_type == "oob" and allowed.oob)) then
          usable[#usable + 1] = a
        end
      end
    end
    f.authenticators, f.has_recovery_code = usable, recovery
    f.enroll_required = #usable == 0
    set_state(f, "awaiting_mfa_choice")
  end)
end
_M.list_authenticators = list_authenticators

local function start_push(f, waited_before)
  f._push_base, f._push_started = waited_before or 0, now()
  local client = f._client
  local p = { mfa_token = f._mfa_token, oob_code = f._oob_code, interval = f._push_interval,
    timeout = f._push_timeout, on_pending = function() f.push_polls = f.push_polls + 1 end }
  launch(f, "awaiting_push", function(cb) return client:mfa_poll(p, cb) end, function(tokens, e)
    if tokens then return finish(f, "done", nil, tokens) end
    mfa_error(f, e, "awaiting_mfa_choice")
  end)
end
_M.start_push = start_push

-- After a challenge or an enrollment: what the user has to do next.
local function after_challenge(f, challenge_type, oob_code, binding_method)
  f.challenge_type, f.binding_method = challenge_type, binding_method
  if challenge_type == "otp" then
    f._oob_code = nil
    return set_state(f, "awaiting_mfa_code")
  end
  if type(oob_code) ~= "string" then
    return finish(f, "failed", bad_response("the server sent no oob_code"))
  end
  f._oob_code = oob_code
  if binding_method == "prompt" then return set_state(f, "awaiting_mfa_code") end
  chain(f, function() start_push(f) end)
end

-- ------------------------------------------------------------------------------------
-- Methods

-- A method called with another self (`f.m(x)` for `f:m(x)`): Lua's words, not 'attempt to index'.
local function flow_self(f, method)
  if getmetatable(f) ~= Flow then bad_self(method, "auth0.Flow expected, got " .. type(f)) end
end
_M.flow_self = flow_self

local function expect(f, method, ...)
  flow_self(f, method)
  for i = 1, select("#", ...) do
    if f.state == select(i, ...) then return end
  end
  bad_self(method, "called in state '" .. tostring(f.state) .. "'")
end
_M.expect = expect

-- The code argument (#1) of method `fn`.
local function check_code(code, name, fn)
  if type(code) ~= "string" then misuse(fn, 1, "string expected, got " .. type(code)) end
  if code == "" then misuse(fn, 1, name .. " must not be empty") end
  if #code > 256 or code:find("[%c%s]") then misuse(fn, 1, name .. " is malformed") end
  return code
end

--- Sends the code the user typed (state awaiting_code, not when `f.must_resend`).
-- Goes to verifying, then done, awaiting_code again (wrong code: `f.error`,
-- `f.attempts_left`, maybe `f.must_resend`), MFA, or failed.
-- @tparam string code the one-time code
function Flow:submit_code(code)
  expect(self, "submit_code", "awaiting_code")
  if self.must_resend then bad_self("submit_code", "this code can no longer be used: call resend_code() first") end
  check_code(code, "code", "submit_code")
  local client = self._client
  local p = { realm = self.connection, username = self.identifier, otp = code,
    audience = self.audience, scope = self.scope }
  launch(self, "verifying", function(cb) return client:passwordless_login(p, cb) end, function(tokens, e)
    if tokens then return finish(self, "done", nil, tokens) end
    local reason = e.reason
    if reason == "mfa_required" then
      if type(e.mfa_token) ~= "string" then
        return finish(self, "failed", bad_response("mfa_required without an mfa_token"))
      end
      self._mfa_token, self.mfa_requirements = e.mfa_token, e.mfa_requirements
      return chain(self, function() list_authenticators(self) end)
    end
    -- Auth0 answers an expired code like a wrong one (docs/protocol.md "3.3 Errors"): the
    -- flow's clock knows better
    if reason == "wrong_code" and self._sent_at and time() - self._sent_at >= self._code_lifetime then
      e.reason, reason = "code_expired", "code_expired"
    end
    if reason == "wrong_code" or reason == "code_exhausted" or reason == "code_expired" then
      self.attempts_left = reason == "wrong_code" and self.attempts_left - 1 or 0
      self.must_resend = self.attempts_left <= 0
      return set_state(self, "awaiting_code", e)
    end
    if TRANSIENT[reason] then return set_state(self, "awaiting_code", e) end
    finish(self, "failed", e)
  end)
end

--- Sends a new code (state awaiting_code); the old one stops working. Goes to
-- sending_code, then awaiting_code with `attempts_left` reset (or with `f.error` if the
-- send failed, the old code still in use).
function Flow:resend_code()
  expect(self, "resend_code", "awaiting_code")
  send_code(self)
end

--- Picks the authenticator to challenge (states awaiting_mfa_choice, awaiting_mfa_code,
-- awaiting_push: switching factors cancels a push wait).
-- @tparam table authenticator one of `f.authenticators`
function Flow:choose_authenticator(authenticator)
  expect(self, "choose_authenticator", "awaiting_mfa_choice", "awaiting_mfa_code", "awaiting_push")
  local found
  for _, a in ipairs(self.authenticators or {}) do
    if a == authenticator or (type(authenticator) == "table" and a.id == authenticator.id) then found = a end
  end
  if not found then misuse("choose_authenticator", 1, "one of f.authenticators expected, got " .. type(authenticator)) end
  self.authenticator, self.enrollment = found, nil
  local ct = found.authenticator_type == "otp" and "otp" or "oob"
  local client = self._client
  local p = { mfa_token = self._mfa_token, challenge_type = ct, authenticator_id = found.id }
  launch(self, "mfa_challenging", function(cb) return client:mfa_challenge(p, cb) end, function(ch, e)
    if e then return mfa_error(self, e, "awaiting_mfa_choice") end
    after_challenge(self, ch.challenge_type or ct, ch.oob_code, ch.binding_method)
  end)
end

-- client:mfa_associate for enroll: its misuse names 'enroll', the method the user called.
local function associate(client, q, cb)
  local ok, r = pcall(client.mfa_associate, client, q, cb)
  if ok then return r end
  local msg = type(r) == "string" and r:match("^bad argument #1 to 'mfa_associate' (%(.*)$")
  if msg then error("bad argument #1 to 'enroll' " .. msg, user_level()) end
  error(r, 0)
end

--- Enrolls a new authenticator (state awaiting_mfa_choice; needed when
-- `f.enroll_required`). Goes to mfa_challenging, then awaiting_mfa_code (OTP: show
-- `f.enrollment.barcode_uri` / `secret`; SMS/voice/email: a binding code was sent) or
-- awaiting_push (`f.enrollment.barcode_uri` for the Guardian app). On a first enrollment
-- `f.recovery_code` holds the recovery code to show the user once.
-- @tparam table p as `client:mfa_associate` without `token`: `authenticator_types`
-- ({"otp"} or {"oob"}), `oob_channels` ({"sms"}, {"voice"}, {"email"}, {"auth0"}),
-- `phone_number`, `email`
function Flow:enroll(p)
  expect(self, "enroll", "awaiting_mfa_choice")
  local at = _M.at("enroll", 1, true)
  check.table(at, p)
  if p.token ~= nil then at:fail("field 'token': not allowed, the flow supplies the token") end
  local q = { token = self._mfa_token }
  for k, v in pairs(p) do q[k] = v end
  local client = self._client
  launch(self, "mfa_challenging", function(cb) return associate(client, q, cb) end, function(r, e)
    if e then return mfa_error(self, e, "awaiting_mfa_choice") end
    if type(r.recovery_codes) == "table" and type(r.recovery_codes[1]) == "string" then
      self.recovery_code = r.recovery_codes[1]
    end
    self.enrollment = { authenticator_type = r.authenticator_type, oob_channel = r.oob_channel,
      secret = r.secret, barcode_uri = r.barcode_uri }
    self.authenticator = { authenticator_type = r.authenticator_type, oob_channel = r.oob_channel }
    local ct = r.authenticator_type == "otp" and "otp" or "oob"
    after_challenge(self, ct, r.oob_code, r.binding_method)
  end)
end

--- Sends the OTP (authenticator app) or the binding code (SMS, voice, email) the user
-- typed (state awaiting_mfa_code). Goes to verifying, then done or back to
-- awaiting_mfa_code with `f.error`.
-- @tparam string code
function Flow:submit_mfa_code(code)
  expect(self, "submit_mfa_code", "awaiting_mfa_code")
  check_code(code, "code", "submit_mfa_code")
  local p = { mfa_token = self._mfa_token }
  if self._oob_code then p.oob_code, p.binding_code = self._oob_code, code else p.otp = code end
  local client = self._client
  launch(self, "verifying", function(cb) return client:mfa_verify(p, cb) end, function(tokens, e)
    if tokens then return finish(self, "done", nil, tokens) end
    mfa_error(self, e, "awaiting_mfa_code")
  end)
end

--- Logs in with a recovery code instead of a factor (states awaiting_mfa_choice,
-- awaiting_mfa_code, awaiting_push). On success `f.recovery_code` holds the new code
-- (the old one is dead): show it to the user.
-- @tparam string code
function Flow:submit_recovery_code(code)
  expect(self, "submit_recovery_code", "awaiting_mfa_choice", "awaiting_mfa_code", "awaiting_push")
  check_code(code, "recovery code", "submit_recovery_code")
  local back = self.state == "awaiting_push" and "awaiting_mfa_choice" or self.state
  local client = self._client
  local p = { mfa_token = self._mfa_token, recovery_code = code }
  launch(self, "verifying", function(cb) return client:mfa_verify(p, cb) end, function(tokens, e)
    if tokens then return finish(self, "done", nil, tokens) end
    mfa_error(self, e, back)
  end)
end

--- Stops the flow (any state): the request in flight is cancelled, state cancelled.
-- @return true, or false when the flow had already ended
function Flow:cancel()
  flow_self(self, "cancel")
  if TERMINAL[self.state] then return false end
  abort(self)
  finish(self, "cancelled", new_error("cancelled", "login cancelled", { context = "flow" }))
  return true
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

--- The flow's resumable state as a plain table (states awaiting_code,
-- awaiting_mfa_choice, awaiting_mfa_code, awaiting_push; raises in others).
-- It contains secrets (`mfa_token`, `oob_code`, an enrollment `secret`): store it sealed
-- (encrypted and authenticated, e.g. a server-side session), never in a plain cookie.
-- Format (version 1): `{ version = 1, state, connection, identifier, identifier_field
-- ("email" or "phone_number"; all three absent for a flow.mfa flow), audience, scope,
-- attempts_left, must_resend, sent_at (epoch), restarts, mfa_token, oob_code,
-- mfa_requirements, authenticators, authenticator, enroll_required, has_recovery_code,
-- enrollment, challenge_type, binding_method, push_waited }`; values are strings,
-- numbers, booleans and tables of those (JSON-safe).
function Flow:serialize()
  expect(self, "serialize", "awaiting_code", "awaiting_mfa_choice", "awaiting_mfa_code", "awaiting_push")
  return {
    version = 1, state = self.state, connection = self.connection, identifier = self.identifier,
    identifier_field = self._id_field,
    audience = self.audience, scope = self.scope, attempts_left = self.attempts_left,
    must_resend = self.must_resend, sent_at = self._sent_at, restarts = self.restarts,
    mfa_token = self._mfa_token, oob_code = self._oob_code, mfa_requirements = copy(self.mfa_requirements),
    authenticators = copy(self.authenticators), authenticator = copy(self.authenticator),
    enroll_required = self.enroll_required, has_recovery_code = self.has_recovery_code,
    enrollment = copy(self.enrollment), challenge_type = self.challenge_type,
    binding_method = self.binding_method, push_waited = self.push_waited,
  }
end

function Flow:__tostring()
  return "auth0.Flow (" .. tostring(self.state) .. ")"
end

return _M
