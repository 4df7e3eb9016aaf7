--- auth0.flow: a whole embedded passwordless login, MFA included, as one state machine.
-- Driven without blocking by `client:poll(0)` (a game loop), or run to the end with
-- blocking prompt functions by `flow.run` (scripts). Pure Lua over the client's callbacks.
--
--   local flow = require "auth0.flow"
--   local f = flow.login(client, { connection = "email", email = "a@example.com",
--                                  on_state = function(f) print(f.state) end })
--   -- every frame: client:poll(0); then act on f.state (f:submit_code(code), ...)
--
-- States (`f.state`) and the methods each allows; any other call raises (misuse):
--
-- | state               | what is going on                                  | allowed methods                     |
-- |---------------------|---------------------------------------------------|-------------------------------------|
-- | sending_code        | POST /passwordless/start in flight                | cancel                              |
-- | awaiting_code       | a code was sent; `f.attempts_left`, `f.error`,    | submit_code (not if must_resend),   |
-- |                     | `f.must_resend` (the code is dead: resend first)  | resend_code, cancel                 |
-- | verifying           | a token request (code, MFA code, recovery code)   | cancel                              |
-- |                     | or the authenticator list in flight               |                                     |
-- | awaiting_mfa_choice | MFA required: `f.authenticators` (active ones the | choose_authenticator, enroll,       |
-- |                     | login may use), `f.enroll_required`, `f.error`    | submit_recovery_code, cancel        |
-- | mfa_challenging     | POST /mfa/challenge or /mfa/associate in flight   | cancel                              |
-- | awaiting_mfa_code   | an OTP (authenticator app) or a binding code      | submit_mfa_code, choose_authenticator,|
-- |                     | (SMS, voice, email) for `f.authenticator`         | submit_recovery_code, cancel        |
-- | awaiting_push       | push sent, polling for approval; `f.push_waited`  | choose_authenticator,               |
-- |                     |                                                   | submit_recovery_code, cancel        |
-- | done                | `f.tokens`; `f.recovery_code` if a new one came   | serialize is refused; cancel -> false |
-- | failed              | `f.error` says why                                | cancel -> false                     |
-- | cancelled           | `f.error.code == "cancelled"` (f:cancel() or the  | cancel -> false                     |
-- |                     | client was closed)                                |                                     |
--
-- Rules (each lives once, below):
--
-- | step (state)                 | outcome                                    | next state                          |
-- |------------------------------|--------------------------------------------|-------------------------------------|
-- | first send (sending_code)    | sent                                       | awaiting_code, attempts_left = 3    |
-- |                              | any error                                  | failed                              |
-- | resend (sending_code)        | sent                                       | awaiting_code, attempts_left = 3,   |
-- |                              |                                            | must_resend = false                 |
-- |                              | any error                                  | awaiting_code with f.error          |
-- | code (verifying)             | tokens                                     | done                                |
-- |                              | mfa_required                               | verifying (lists authenticators)    |
-- |                              | invalid_grant, attempts left               | awaiting_code, attempts_left - 1    |
-- |                              | invalid_grant: last attempt, "maximum      | awaiting_code, must_resend = true   |
-- |                              | number of attempts", or code older than    |                                     |
-- |                              | code_lifetime (Auth0 answers an expired    |                                     |
-- |                              | code like a wrong one)                     |                                     |
-- |                              | network, 429, 5xx                          | awaiting_code with f.error          |
-- |                              | anything else                              | failed                              |
-- | authenticator list           | list                                       | awaiting_mfa_choice                 |
-- |                              | error                                      | failed                              |
-- | challenge / enroll           | otp, or oob with binding_method "prompt"   | awaiting_mfa_code                   |
-- |                              | oob without binding (push)                 | awaiting_push                       |
-- |                              | error                                      | awaiting_mfa_choice with f.error    |
-- | MFA code / recovery code     | tokens                                     | done (recovery: f.recovery_code)    |
-- |                              | error (wrong code, too_many_attempts, ...) | the state it was sent from          |
-- | push (awaiting_push)         | approved                                   | done                                |
-- |                              | pending / slow_down                        | stays; f.push_waited grows          |
-- |                              | rejected (access_denied), timeout, network | awaiting_mfa_choice with f.error    |
-- | any MFA step                 | mfa_token expired (expired_token)          | sending_code again (a new code is   |
-- |                              |                                            | sent, f.restarts + 1) while         |
-- |                              |                                            | restarts < max_restarts, else failed|
-- |                              | unauthorized_client, invalid_client,       | failed                              |
-- |                              | unauthorized, Malformed mfa_token,         |                                     |
-- |                              | access_denied (not a rate limit, not push) |                                     |
-- | any step                     | cancelled (client closed)                  | cancelled                           |
--
-- Callbacks: `on_state(f)` runs after every state change, from `client:poll` (or from the
-- method call that changed the state); an error in it goes to the client's
-- `on_callback_error`, like any callback's.
local auth0 = require "auth0"

local type, pairs, ipairs, tostring, setmetatable, error, getmetatable =
  type, pairs, ipairs, tostring, setmetatable, error, getmetatable
local time = os.time
local new_error = auth0.error.new

local _M = { ATTEMPTS_PER_CODE = 3 }

local Flow = { __name = "auth0.Flow" }
Flow.__index = Flow
_M.Flow = Flow

local function misuse(msg, level) error("auth0.flow: " .. msg, (level or 2) + 1) end

local TERMINAL = { done = true, failed = true, cancelled = true }
local RESUMABLE = { awaiting_code = true, awaiting_mfa_choice = true, awaiting_mfa_code = true, awaiting_push = true }

---------------------------------------------------------------------------------------
-- Transitions

local function set_state(f, state)
  f.state = state
  if f._on_state then f._client:_deliver(f._on_state, f) end
end

-- Ends the flow; the mfa_token and oob_code are dropped with it.
local function finish(f, state, err, tokens)
  f._req, f._mfa_token, f._oob_code = nil, nil, nil
  f._gen = f._gen + 1
  f.error, f.tokens = err, tokens
  if tokens and type(tokens.recovery_code) == "string" then f.recovery_code = tokens.recovery_code end
  set_state(f, state)
end

-- Stops the request in flight, if any, so that its callback is ignored.
local function abort(f)
  f._gen = f._gen + 1
  local req = f._req
  f._req = nil
  if req and not req:done() then req:cancel() end
end

-- Starts a request through start(cb) and enters `state`; on_result(result, err) runs once,
-- unless the flow moved on (cancel, another request) before the answer came.
local function launch(f, state, start, on_result)
  abort(f)
  local gen, answered = f._gen, false
  local req = start(function(result, err)
    if f._gen ~= gen then return end
    answered = true
    f._req = nil
    if err and err.code == "cancelled" then return finish(f, "cancelled", err) end
    on_result(result, err)
  end)
  -- a callback run at once (a client closed meanwhile) has moved the flow on already
  if answered or f._gen ~= gen then return end
  f._req = req
  set_state(f, state)
end

local function transient(e)
  return e.status == nil or e.status == 429 or e.status >= 500
end

local FATAL = { unauthorized_client = true, invalid_client = true, unauthorized = true }

local function fatal(e)
  local msg = e.message or ""
  if FATAL[e.code] then return true end
  if e.code == "invalid_grant" and msg:find("Malformed mfa_token", 1, true) then return true end
  return e.code == "access_denied" and e.status ~= 429
end

-- expired_token about the mfa_token (not about an oob_code, which a new challenge replaces)
local function mfa_token_expired(e)
  local msg = e.message or ""
  if msg:find("oob_code", 1, true) then return false end
  return e.code == "expired_token" or msg:find("mfa_token is expired", 1, true) ~= nil
end

local send_code

-- The mfa_token is dead: log in again from a new code, at most max_restarts times.
local function restart(f, e)
  if f.restarts >= f._max_restarts then return finish(f, "failed", e) end
  f.restarts = f.restarts + 1
  f._mfa_token, f._oob_code = nil, nil
  f.authenticators, f.authenticator, f.enroll_required, f.has_recovery_code = nil, nil, nil, nil
  f.enrollment, f.binding_method, f.challenge_type, f.mfa_requirements = nil, nil, nil, nil
  f.push_waited = 0
  f._sent_at = nil
  f._restart_error = e
  f.error = e
  send_code(f)
end

-- An MFA step failed: restart, fail, or go back to `back` with f.error.
local function mfa_error(f, e, back, push)
  if mfa_token_expired(e) then return restart(f, e) end
  if fatal(e) and not (push and e.code == "access_denied") then return finish(f, "failed", e) end
  -- a dead oob_code needs a new challenge
  if (e.message or ""):find("oob_code", 1, true) then back = "awaiting_mfa_choice" end
  f.error = e
  set_state(f, back)
end

local function bad_response(msg)
  return new_error("bad_response", msg, { context = "flow" })
end

---------------------------------------------------------------------------------------
-- Steps

function send_code(f)
  local first = f._sent_at == nil
  local p = { connection = f.connection, send = "code", language = f._language }
  p[f._id_field] = f.identifier
  local client = f._client
  launch(f, "sending_code", function(cb) return client:passwordless_start(p, cb) end, function(_, e)
    if e then
      f.error = e
      if first then return finish(f, "failed", e) end
      return set_state(f, "awaiting_code")
    end
    f.error, f._restart_error = f._restart_error, nil
    f.attempts_left, f.must_resend = _M.ATTEMPTS_PER_CODE, false
    f._sent_at = time()
    set_state(f, "awaiting_code")
  end)
end

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

local function list_authenticators(f)
  local client, token = f._client, f._mfa_token
  launch(f, "verifying", function(cb) return client:mfa_authenticators(token, cb) end, function(list, e)
    if e then
      if mfa_token_expired(e) then return restart(f, e) end
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
    f.error = nil
    set_state(f, "awaiting_mfa_choice")
  end)
end

local function start_push(f, waited_before)
  waited_before = waited_before or 0
  f.push_waited = waited_before
  local client = f._client
  local p = { mfa_token = f._mfa_token, oob_code = f._oob_code, interval = f._push_interval,
    timeout = f._push_timeout, on_pending = function(waited) f.push_waited = waited_before + waited end }
  launch(f, "awaiting_push", function(cb) return client:mfa_poll(p, cb) end, function(tokens, e)
    if tokens then return finish(f, "done", nil, tokens) end
    mfa_error(f, e, "awaiting_mfa_choice", true)
  end)
end

-- After a challenge or an enrollment: what the user has to do next.
local function after_challenge(f, challenge_type, oob_code, binding_method)
  f.error = nil
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
  start_push(f)
end

---------------------------------------------------------------------------------------
-- Methods

local function expect(f, method, ...)
  for i = 1, select("#", ...) do
    if f.state == select(i, ...) then return end
  end
  misuse(method .. " called in state '" .. tostring(f.state) .. "'", 3)
end

local function check_code(code, name)
  if type(code) ~= "string" or code == "" then misuse(name .. " must be a non-empty string, got " .. type(code), 3) end
  if #code > 256 or code:find("[%c%s]") then misuse(name .. " is malformed", 3) end
  return code
end

--- Sends the code the user typed (state awaiting_code, not when `f.must_resend`).
-- Goes to verifying, then done, awaiting_code again (wrong code: `f.error`,
-- `f.attempts_left`, maybe `f.must_resend`), MFA, or failed.
-- @tparam string code the one-time code
function Flow:submit_code(code)
  expect(self, "submit_code", "awaiting_code")
  if self.must_resend then misuse("this code can no longer be used: call resend_code() first", 2) end
  check_code(code, "code")
  local client = self._client
  local p = { realm = self.connection, username = self.identifier, otp = code,
    audience = self.audience, scope = self.scope }
  launch(self, "verifying", function(cb) return client:passwordless_login(p, cb) end, function(tokens, e)
    if tokens then return finish(self, "done", nil, tokens) end
    if e.code == "mfa_required" then
      if type(e.mfa_token) ~= "string" then
        return finish(self, "failed", bad_response("mfa_required without an mfa_token"))
      end
      self._mfa_token, self.mfa_requirements = e.mfa_token, e.mfa_requirements
      return list_authenticators(self)
    end
    self.error = e
    if e.code == "invalid_grant" then
      local exhausted = (e.message or ""):find("maximum number of attempts", 1, true)
      local expired = self._sent_at and time() - self._sent_at >= self._code_lifetime
      if exhausted or expired then
        self.attempts_left = 0
      else
        self.attempts_left = self.attempts_left - 1
      end
      self.must_resend = self.attempts_left <= 0
      return set_state(self, "awaiting_code")
    end
    if transient(e) then return set_state(self, "awaiting_code") end
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
  if not found then misuse("choose_authenticator expects one of f.authenticators", 2) end
  self.authenticator, self.enrollment = found, nil
  local ct = found.authenticator_type == "otp" and "otp" or "oob"
  local client = self._client
  local p = { mfa_token = self._mfa_token, challenge_type = ct, authenticator_id = found.id }
  launch(self, "mfa_challenging", function(cb) return client:mfa_challenge(p, cb) end, function(ch, e)
    if e then return mfa_error(self, e, "awaiting_mfa_choice") end
    after_challenge(self, ch.challenge_type or ct, ch.oob_code, ch.binding_method)
  end)
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
  if type(p) ~= "table" then misuse("enroll expects a table", 2) end
  if p.token ~= nil then misuse("enroll: the flow supplies the token", 2) end
  local q = { token = self._mfa_token }
  for k, v in pairs(p) do q[k] = v end
  local client = self._client
  launch(self, "mfa_challenging", function(cb) return client:mfa_associate(q, cb) end, function(r, e)
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
  check_code(code, "code")
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
  check_code(code, "recovery code")
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
  if TERMINAL[self.state] then return false end
  abort(self)
  finish(self, "cancelled", new_error("cancelled", "login cancelled", { context = "flow" }))
  return true
end

--- The flow's resumable state as a plain table (states awaiting_code,
-- awaiting_mfa_choice, awaiting_mfa_code, awaiting_push; raises in others).
-- It contains secrets (`mfa_token`, `oob_code`, an enrollment `secret`): store it sealed
-- (encrypted and authenticated, e.g. a server-side session), never in a plain cookie.
-- Format (version 1): `{ version = 1, state, connection, identifier, identifier_field
-- ("email" or "phone_number"), audience, scope,
-- attempts_left, must_resend, sent_at (epoch), restarts, mfa_token, oob_code,
-- mfa_requirements, authenticators, authenticator, enroll_required, has_recovery_code,
-- enrollment, challenge_type, binding_method, push_waited }`; values are strings,
-- numbers, booleans and tables of those (JSON-safe).
function Flow:serialize()
  expect(self, "serialize", "awaiting_code", "awaiting_mfa_choice", "awaiting_mfa_code", "awaiting_push")
  local function copy(v)
    if type(v) ~= "table" then return v end
    local t = {}
    for k, x in pairs(v) do t[k] = copy(x) end
    return t
  end
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

---------------------------------------------------------------------------------------
-- Constructors

local OPTS = { connection = true, email = true, phone_number = true, audience = true, scope = true,
  language = true, on_state = true, code_lifetime = true, push_interval = true, push_timeout = true,
  max_restarts = true }

local function optional(v, kind, name)
  if v ~= nil and type(v) ~= kind then misuse(name .. " must be a " .. kind .. ", got " .. type(v), 4) end
  return v
end

local function seconds(v, name, default)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v <= 0 or v > 86400 then misuse(name .. " must be seconds in (0, 86400]", 4) end
  return v
end

local function new_flow(client, opts)
  if getmetatable(client) ~= auth0.Client then misuse("an auth0.Client is required, got " .. type(client), 3) end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then misuse("options must be a table, got " .. type(opts), 3) end
  for k in pairs(opts) do
    if not OPTS[k] then misuse("unknown option '" .. tostring(k) .. "'", 3) end
  end
  local max_restarts = opts.max_restarts == nil and 1 or opts.max_restarts
  if type(max_restarts) ~= "number" or max_restarts < 0 or max_restarts % 1 ~= 0 then
    misuse("max_restarts must be an integer >= 0", 3)
  end
  return setmetatable({
    state = "new", restarts = 0, push_waited = 0,
    audience = optional(opts.audience, "string", "audience"),
    scope = optional(opts.scope, "string", "scope"),
    _client = client, _gen = 0, _max_restarts = max_restarts,
    _on_state = optional(opts.on_state, "function", "on_state"),
    _language = optional(opts.language, "string", "language"),
    _code_lifetime = seconds(opts.code_lifetime, "code_lifetime", 180),
    _push_interval = seconds(opts.push_interval, "push_interval", 5),
    _push_timeout = seconds(opts.push_timeout, "push_timeout", 300),
  }, Flow)
end

local function identify(f, opts, level)
  if type(opts.connection) ~= "string" or opts.connection == "" then misuse("connection is required", level) end
  if (opts.email == nil) == (opts.phone_number == nil) then misuse("give exactly one of email, phone_number", level) end
  f.connection = opts.connection
  f._id_field = opts.email ~= nil and "email" or "phone_number"
  f.identifier = opts.email or opts.phone_number
  if type(f.identifier) ~= "string" then misuse(f._id_field .. " must be a string", level) end
end

--- Starts a login: sends the code at once (state sending_code).
-- @param client an auth0.Client
-- @tparam table opts `connection` ("email", "sms" or a custom name), `email` or
-- `phone_number`, `audience`, `scope`, `language` (template language), `on_state(f)`,
-- `code_lifetime` (seconds a code lives, 180 as Auth0's default), `push_interval` (5 s),
-- `push_timeout` (300 s), `max_restarts` (1: how often an expired mfa_token restarts the
-- login with a new code before the flow fails)
-- @return the flow object `f`; raises on misuse
function _M.login(client, opts)
  local f = new_flow(client, opts)
  identify(f, opts, 2)
  send_code(f)
  return f
end

local function check_resume_table(t)
  if type(t) ~= "table" then misuse("resume expects the table from f:serialize(), got " .. type(t), 3) end
  if t.version ~= 1 then misuse("unknown serialized flow version " .. tostring(t.version), 3) end
  if not RESUMABLE[t.state] then misuse("cannot resume a flow in state '" .. tostring(t.state) .. "'", 3) end
  if t.state ~= "awaiting_code" and type(t.mfa_token) ~= "string" then misuse("mfa_token is missing", 3) end
  if t.state == "awaiting_push" and type(t.oob_code) ~= "string" then misuse("oob_code is missing", 3) end
  if t.state == "awaiting_mfa_code" and type(t.authenticator) ~= "table" then misuse("authenticator is missing", 3) end
  if t.state == "awaiting_mfa_choice" and type(t.authenticators) ~= "table" then
    misuse("authenticators is missing", 3)
  end
end

--- Rebuilds a flow from `f:serialize()` (e.g. in the next HTTP request of a web login).
-- A flow resumed in awaiting_push polls again at once. `on_state` is not called for the
-- resumed state itself.
-- @param client an auth0.Client
-- @tparam table t the serialized flow
-- @tparam[opt] table opts the `flow.login` options except connection/email/phone_number
-- (audience and scope come from `t`)
-- @return the flow object; raises on a malformed table
function _M.resume(client, t, opts)
  check_resume_table(t)
  opts = opts or {}
  if type(opts) ~= "table" then misuse("options must be a table, got " .. type(opts), 2) end
  for _, k in ipairs { "connection", "email", "phone_number", "audience", "scope" } do
    if opts[k] ~= nil then misuse("resume takes " .. k .. " from the serialized flow", 2) end
  end
  local f = new_flow(client, opts)
  if t.identifier_field ~= "email" and t.identifier_field ~= "phone_number" then
    misuse("identifier_field must be \"email\" or \"phone_number\"", 2)
  end
  identify(f, { connection = t.connection, [t.identifier_field] = t.identifier }, 2)
  f.audience, f.scope = optional(t.audience, "string", "audience"), optional(t.scope, "string", "scope")
  f.attempts_left = type(t.attempts_left) == "number" and t.attempts_left or _M.ATTEMPTS_PER_CODE
  f.must_resend = t.must_resend == true
  f._sent_at, f.restarts = t.sent_at, type(t.restarts) == "number" and t.restarts or 0
  f._mfa_token, f._oob_code = t.mfa_token, t.oob_code
  f.mfa_requirements, f.authenticators, f.authenticator = t.mfa_requirements, t.authenticators, t.authenticator
  f.enroll_required, f.has_recovery_code, f.enrollment = t.enroll_required, t.has_recovery_code, t.enrollment
  f.challenge_type, f.binding_method = t.challenge_type, t.binding_method
  if t.state == "awaiting_push" then
    start_push(f, type(t.push_waited) == "number" and t.push_waited or 0)
  else
    f.state = t.state
  end
  return f
end

local POLL_MS = 100

--- Runs a login to the end, blocking, asking the user through prompt functions.
-- Each prompt may return its answer, or act on `f` itself (e.g. `f:resend_code()`,
-- `f:enroll{...}`, `f:submit_recovery_code(c)`) and return nil; returning nil without
-- acting cancels the login. A dead code (`f.must_resend`) is resent without asking.
-- Must not be called from inside a callback.
-- @param client an auth0.Client
-- @tparam table opts as for `flow.login`
-- @tparam table prompts `ask_code(f)` -> code (required); `choose_authenticator(f, list)`
-- -> one of list (default: the first; enrollment needs this prompt, calling f:enroll);
-- `ask_mfa_code(f)` -> code (required once MFA asks for a code); `on_push_wait(f, waited)`
-- (called each time the push is still pending)
-- @return tokens, nil, f | nil, err, f
function _M.run(client, opts, prompts)
  if type(prompts) ~= "table" then misuse("prompts must be a table, got " .. type(prompts), 2) end
  if type(prompts.ask_code) ~= "function" then misuse("prompts.ask_code is required", 2) end
  for _, k in ipairs { "choose_authenticator", "ask_mfa_code", "on_push_wait" } do
    if prompts[k] ~= nil and type(prompts[k]) ~= "function" then misuse("prompts." .. k .. " must be a function", 2) end
  end
  local f = new_flow(client, opts)
  identify(f, opts, 2)
  send_code(f)
  local last_waited
  while true do
    local s = f.state
    if s == "done" then return f.tokens, nil, f end
    if s == "failed" or s == "cancelled" then return nil, f.error, f end
    if s == "awaiting_code" then
      if f.must_resend then
        f:resend_code()
      else
        local code = prompts.ask_code(f)
        if f.state == s then
          if code ~= nil then f:submit_code(code) else f:cancel() end
        end
      end
    elseif s == "awaiting_mfa_choice" then
      local choose = prompts.choose_authenticator
      local a
      if choose then a = choose(f, f.authenticators) else a = f.authenticators[1] end
      if f.state == s then
        if a ~= nil then f:choose_authenticator(a) else f:cancel() end
      end
    elseif s == "awaiting_mfa_code" then
      if not prompts.ask_mfa_code then
        f:cancel()
        misuse("prompts.ask_mfa_code is required: the login asks for an MFA code", 2)
      end
      local code = prompts.ask_mfa_code(f)
      if f.state == s then
        if code ~= nil then f:submit_mfa_code(code) else f:cancel() end
      end
    else
      local n, err = client:poll(POLL_MS)
      if not n then
        f:cancel()
        misuse("flow.run cannot run inside a callback (" .. tostring(err) .. ")", 2)
      end
      if f.state == "awaiting_push" and f.push_waited ~= last_waited and f.push_waited > 0 then
        last_waited = f.push_waited
        if prompts.on_push_wait then prompts.on_push_wait(f, f.push_waited) end
      end
    end
  end
end

return _M
