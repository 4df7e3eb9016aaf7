--- auth0.flow: a whole embedded passwordless login, MFA included, as one state machine.
-- Driven without blocking by `client:poll(0)` (a game loop), or run to the end with
-- blocking prompt functions by `flow.run` (scripts). Pure Lua over the client's callbacks.
--
--   local flow = require "auth0.flow"
--   local f = flow.login(client, { connection = "email", email = "a@example.com",
--                                  on_state = function(f) print(f.state) end })
--   -- every frame: client:poll(0); then act on f.state (f:submit_code(code), ...)
--
-- `flow.mfa(client, { mfa_token = ..., mfa_requirements = ... })` starts at the MFA choice
-- instead (an `mfa_required` answered to a refresh, say): same states, methods, callbacks.
--
-- States (`f.state`) and the methods each allows; any other call raises (misuse).
-- `f.error` is the error that describes the current state, nil once the flow leaves it.
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
-- |                     | (SMS, voice, email) for `f.authenticator`;        | submit_recovery_code, cancel        |
-- |                     | `f.enrollment` after f:enroll                     |                                     |
-- | awaiting_push       | push sent, polling for approval; `f.push_waited`  | choose_authenticator,               |
-- |                     | (seconds so far, exact whenever read),            | submit_recovery_code, cancel        |
-- |                     | `f.push_polls` (pending answers in this flow)     |                                     |
-- | sending_link        | send = "link": POST /passwordless/start in flight | cancel                              |
-- | awaiting_link       | a magic link was sent; `f.error` after a refused  | submit_link (the link itself),      |
-- |                     | link or callback (lua/auth0/flow/link.lua)        | submit_callback (redirect_uri),     |
-- |                     |                                                   | resend_link, cancel                 |
-- | done                | `f.tokens`; `f.recovery_code` if a new one came   | serialize is refused; cancel -> false |
-- | failed              | `f.error` says why                                | cancel -> false                     |
-- | cancelled           | `f.error.code == "cancelled"` (f:cancel() or the  | cancel -> false                     |
-- |                     | client was closed)                                |                                     |
--
-- Rules (each lives once, in lua/auth0/flow/machine.lua). Outcomes are `err.reason`s
-- (lua/auth0/error.lua), never Auth0's wording:
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
-- |                              | wrong_code, attempts left                  | awaiting_code, attempts_left - 1    |
-- |                              | wrong_code on the last attempt,            | awaiting_code, must_resend = true   |
-- |                              | code_exhausted, code_expired, or a code    |                                     |
-- |                              | older than code_lifetime (reason becomes   |                                     |
-- |                              | code_expired: Auth0 answers it as wrong)   |                                     |
-- |                              | rate_limited, too_many_attempts, timeout,  | awaiting_code with f.error          |
-- |                              | network, tls, server_error, bad_response   |                                     |
-- |                              | anything else                              | failed                              |
-- | authenticator list           | list                                       | awaiting_mfa_choice                 |
-- |                              | mfa_token_expired                          | as below                            |
-- |                              | other error                                | failed                              |
-- | challenge / enroll           | otp, or oob with binding_method "prompt"   | awaiting_mfa_code                   |
-- |                              | oob without binding (push)                 | awaiting_push                       |
-- |                              | error                                      | awaiting_mfa_choice with f.error    |
-- | MFA code / recovery code     | tokens                                     | done (recovery: f.recovery_code)    |
-- |                              | oob_expired (the challenge is dead)        | awaiting_mfa_choice with f.error    |
-- |                              | other error (wrong_code, rate_limited ...) | the state it was sent from          |
-- | push (awaiting_push)         | approved                                   | done                                |
-- |                              | push_pending / slow_down                   | stays; f.push_waited grows          |
-- |                              | push_rejected, timeout, network, ...       | awaiting_mfa_choice with f.error    |
-- | any MFA step                 | mfa_token_expired                          | sending_code again (a new code is   |
-- |                              |                                            | sent, f.restarts + 1) while         |
-- |                              |                                            | restarts < max_restarts, else failed|
-- |                              |                                            | (flow.mfa: failed)                  |
-- |                              | misconfigured, mfa_token_invalid,          | failed                              |
-- |                              | user_blocked, access_denied, invalid_token |                                     |
-- | any step                     | cancelled (client closed)                  | cancelled                           |
--
-- Callbacks: `on_state(f)` runs after every state change, from `client:poll` (or from the
-- method call that changed the state); an error in it goes to the client's
-- `on_callback_error`, like any callback's.
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local auth0 = require "auth0"
local check = require "auth0.check"
local machine = require "auth0.flow.machine"

local type, pairs, ipairs, tostring, setmetatable, getmetatable = type, pairs, ipairs, tostring, setmetatable,
  getmetatable
local Flow, at = machine.Flow, machine.at

local _M = { Flow = Flow, ATTEMPTS_PER_CODE = machine.ATTEMPTS_PER_CODE }

local RESUMABLE = { awaiting_code = true, awaiting_mfa_choice = true, awaiting_mfa_code = true, awaiting_push = true }

local OPTS = { connection = true, email = true, phone_number = true, audience = true, scope = true,
  language = true, on_state = true, code_lifetime = true, push_interval = true, push_timeout = true,
  max_restarts = true, max_prompts = true, max_wait = true, totp_period = true,
  send = true, redirect_uri = true, response_type = true, loopback = true }

local function callback(a, v, name)
  if v ~= nil and type(v) ~= "function" then a:fail("field '" .. name .. "': function expected, got " .. type(v)) end
  return v
end

-- An integer option (check.lua has none); NaN and inf fail the range test.
local function count(a, v, name, default, min)
  if v == nil then return default end
  if type(v) ~= "number" or not (v >= min and v <= 1e6) or v % 1 ~= 0 then a:fail(name .. " must be an integer >= " .. min) end
  return v
end

-- `fn` is the public function and `narg` the position of its options table (for misuse).
local function new_flow(client, opts, skip, fn, narg)
  if getmetatable(client) ~= auth0.Client then
    machine.misuse(fn, 1, "auth0.Client expected, got " .. type(client))
  end
  local a = at(fn, narg, true)
  if opts == nil then opts = {} end
  check.table(a, opts)
  for k in pairs(opts) do
    if not OPTS[k] and not (skip and skip[k]) then a:fail("unknown option '" .. tostring(k) .. "'") end
  end
  local function seconds(v, name, default) return check.seconds(a, v, name, default) end
  return setmetatable({
    state = "new", restarts = 0, push_polls = 0,
    audience = check.string(a, opts.audience, "audience", true),
    scope = check.string(a, opts.scope, "scope", true),
    _client = client, _gen = 0, _push_base = 0, _sends = 0,
    _max_restarts = count(a, opts.max_restarts, "max_restarts", 1, 0),
    _max_prompts = count(a, opts.max_prompts, "max_prompts", 5, 1),
    _max_wait = seconds(opts.max_wait, "max_wait", 300),
    _totp_period = seconds(opts.totp_period, "totp_period", 30),
    _on_state = callback(a, opts.on_state, "on_state"),
    _language = check.string(a, opts.language, "language", true),
    _code_lifetime = seconds(opts.code_lifetime, "code_lifetime", 180),
    _push_interval = seconds(opts.push_interval, "push_interval", 5),
    _push_timeout = seconds(opts.push_timeout, "push_timeout", 300),
  }, Flow)
end

-- `a`: where the connection and identifier come from (an options table, a serialized flow).
local function identify(f, opts, a)
  check.string(a, opts.connection, "connection")
  local field = check.one_of(a, opts, { "email", "phone_number" })
  f.connection, f._id_field = opts.connection, field
  f.identifier = field == "email" and check.email(a, opts.email) or check.phone(a, opts.phone_number)
end

-- flow.login, and flow.run's start of a login: `fn` names the public function for misuse.
local function start_login(client, opts, fn)
  local f = new_flow(client, opts, nil, fn, 2)
  local a = at(fn, 2, true)
  check.table(a, opts)
  identify(f, opts, a)
  if opts.send ~= nil and opts.send ~= "code" then
    local link = require "auth0.flow.link"
    link.configure(f, opts, a)
    link.send_link(f)
    return f
  end
  if opts.redirect_uri ~= nil or opts.response_type ~= nil or opts.loopback ~= nil then
    a:fail("redirect_uri, response_type and loopback need send = \"link\"")
  end
  machine.send_code(f)
  return f
end

--- Starts a login: sends the code (state sending_code) or the link (sending_link) at once.
-- @param client an auth0.Client
-- @tparam table opts `connection` ("email", "sms" or a custom name), `email` or
-- `phone_number`, `audience`, `scope`, `language` (template language), `on_state(f)`,
-- `code_lifetime` (seconds a code lives, 180 as Auth0's default), `push_interval` (5 s),
-- `push_timeout` (300 s), `send` ("code" default, or "link": state awaiting_link),
-- `redirect_uri` and `response_type` (links completed by f:submit_callback), `loopback`
-- (an auth0.loopback listener: its redirect completes the link by itself),
-- `max_restarts` (1: how often an expired mfa_token restarts the login with a new code
-- before the flow fails); for `flow.run`: `max_prompts` (5),
-- `max_wait` (300 s), `totp_period` (30 s)
-- @return the flow object `f`; raises on misuse
function _M.login(client, opts)
  return start_login(client, opts, "login")
end

local MFA_FIELDS = { mfa_token = true, mfa_requirements = true }

-- Copies the mfa_required fields into a new flow; `fn`, `tn`, `on` name the public function
-- and the positions of `t` and `opts` for misuse.
local function mfa_start(client, t, opts, fn, tn, on)
  if getmetatable(client) ~= auth0.Client then machine.misuse(fn, 1, "auth0.Client expected, got " .. type(client)) end
  local a = at(fn, tn, true)
  check.table(a, t)
  for k in pairs(t) do
    if not MFA_FIELDS[k] then a:fail("unknown field '" .. tostring(k) .. "'") end
  end
  check.string(a, t.mfa_token, "mfa_token")
  if t.mfa_requirements ~= nil and type(t.mfa_requirements) ~= "table" then
    a:fail("field 'mfa_requirements': table expected, got " .. type(t.mfa_requirements))
  end
  opts = opts or {}
  if type(opts) == "table" then
    for _, k in ipairs { "connection", "email", "phone_number" } do
      if opts[k] ~= nil then at(fn, on, true):fail("takes no " .. k .. " for an MFA flow: there is no login to restart") end
    end
  end
  local f = new_flow(client, opts, nil, fn, on)
  f._mfa_token, f.mfa_requirements = t.mfa_token, t.mfa_requirements
  machine.list_authenticators(f)
  return f
end

--- Starts a flow at the MFA choice from an `mfa_required` error (of a login, a refresh,
-- ...): lists the authenticators (state verifying), then awaiting_mfa_choice and on as a
-- login would. An expired mfa_token fails the flow (`err.reason == "mfa_token_expired"`):
-- there is no login to restart. `f.tokens` at the end are what the original request
-- would have given: save them.
-- @param client an auth0.Client
-- @tparam table t `mfa_token` (required), `mfa_requirements` (optional), e.g. the
-- `mfa_required` error object's fields: `{ mfa_token = err.mfa_token, mfa_requirements = err.mfa_requirements }`
-- @tparam[opt] table opts the `flow.login` options except connection/email/phone_number
-- @return the flow object; raises on misuse
function _M.mfa(client, t, opts)
  local f = mfa_start(client, t, opts, "mfa", 2, 3)
  return f
end

local RESUME = at("resume", 2, true)
local RESUME_TYPES = { connection = "string", identifier = "string", mfa_token = "string", oob_code = "string",
  challenge_type = "string", binding_method = "string", audience = "string", scope = "string",
  mfa_requirements = "table", authenticators = "table", authenticator = "table", enrollment = "table",
  must_resend = "boolean", enroll_required = "boolean", has_recovery_code = "boolean" }

local function check_resume_table(t)
  check.table(RESUME, t, "the table from f:serialize()")
  if t.version ~= 1 then RESUME:fail("unknown serialized flow version " .. tostring(t.version)) end
  if not RESUMABLE[t.state] then RESUME:fail("cannot resume a flow in state '" .. tostring(t.state) .. "'") end
  if t.state ~= "awaiting_code" and type(t.mfa_token) ~= "string" then RESUME:fail("mfa_token is missing") end
  for _, k in ipairs { "attempts_left", "sent_at", "restarts", "push_waited" } do
    local v = t[k]   -- NaN or inf here would stall or skip the flow's limits
    if v ~= nil and (type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge or v < 0) then
      RESUME:fail(k .. " must be a finite number >= 0")
    end
  end
  -- every field of its type, so that a damaged table raises here and not in a later method
  for k, want in pairs(RESUME_TYPES) do
    if t[k] ~= nil and type(t[k]) ~= want then
      RESUME:fail("field '" .. k .. "': " .. want .. " expected, got " .. type(t[k]))
    end
  end
  for i, a in ipairs(type(t.authenticators) == "table" and t.authenticators or {}) do
    if type(a) ~= "table" or type(a.id) ~= "string" then
      RESUME:fail("authenticators[" .. i .. "] must be a table with a string id")
    end
  end
  if t.state == "awaiting_push" and type(t.oob_code) ~= "string" then RESUME:fail("oob_code is missing") end
  if t.state == "awaiting_mfa_code" and type(t.authenticator) ~= "table" then RESUME:fail("authenticator is missing") end
  if t.state == "awaiting_mfa_choice" and type(t.authenticators) ~= "table" then
    RESUME:fail("authenticators is missing")
  end
  -- a flow.mfa flow has no identifier: it never waits for a login code
  if t.identifier_field == nil and t.identifier == nil and t.connection == nil and t.state ~= "awaiting_code" then
    return
  end
  if t.identifier_field ~= "email" and t.identifier_field ~= "phone_number" then
    RESUME:fail("identifier_field must be \"email\" or \"phone_number\"")
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
  if getmetatable(client) ~= auth0.Client then machine.misuse("resume", 1, "auth0.Client expected, got " .. type(client)) end
  check_resume_table(t)
  opts = opts or {}
  check.table(at("resume", 3, true), opts)
  for _, k in ipairs { "connection", "email", "phone_number", "audience", "scope" } do
    if opts[k] ~= nil then at("resume", 3):fail("takes no " .. k .. ": it comes from the serialized flow") end
  end
  local f = new_flow(client, opts, nil, "resume", 3)
  if t.identifier_field ~= nil then
    identify(f, { connection = t.connection, [t.identifier_field] = t.identifier }, RESUME)
  end
  f.audience, f.scope = check.string(RESUME, t.audience, "audience", true), check.string(RESUME, t.scope, "scope", true)
  f.attempts_left = type(t.attempts_left) == "number" and t.attempts_left or machine.ATTEMPTS_PER_CODE
  f.must_resend = t.must_resend == true
  f._sent_at, f.restarts = t.sent_at, type(t.restarts) == "number" and t.restarts or 0
  f._mfa_token, f._oob_code = t.mfa_token, t.oob_code
  f.mfa_requirements, f.authenticators, f.authenticator = t.mfa_requirements, t.authenticators, t.authenticator
  f.enroll_required, f.has_recovery_code, f.enrollment = t.enroll_required, t.has_recovery_code, t.enrollment
  f.challenge_type, f.binding_method = t.challenge_type, t.binding_method
  if t.state == "awaiting_push" then
    machine.start_push(f, type(t.push_waited) == "number" and t.push_waited or 0)
  else
    f.state = t.state
  end
  return f
end

--- Runs a login to the end, blocking, asking the user through prompt functions.
-- Each prompt may return its answer, or act on `f` itself (e.g. `f:resend_code()`,
-- `f:enroll{...}`, `f:submit_recovery_code(c)`) and return nil; returning nil without
-- acting cancels the login. A dead code (`f.must_resend`) is resent without asking.
-- Limits, so that a script answering the same thing forever stops:
-- - each prompt answers at most `max_prompts` (5) times; asked once more, the run stops
--   with `err.code == "too_many_prompts"` (`err.reason == "too_many_attempts"`), and a
--   code that cannot be sent after `max_prompts` tries stops it with the send's error;
-- - after a rate_limited or too_many_attempts answer, and after a failed send, it waits
--   `err.retry_after` seconds (1 s when the server gave none, doubling for sends) before
--   asking or sending again; a wait over `max_wait` (300 s) stops it with that error;
-- - a TOTP code is never sent twice in one `totp_period` (30 s) step: the same code again
--   waits for the next step, then asks again.
-- Before each wait `f.wait = { reason = ..., seconds = ... }` is set (reason: the error's
-- reason, or "totp_step") and `on_wait(f, seconds, reason)` is called; the prompt asked
-- after the wait still sees `f.wait`, cleared once it answered.
-- Must not be called from inside a callback.
-- @param client an auth0.Client
-- @tparam table opts as for `flow.login` (with `max_prompts`, `max_wait`, `totp_period`),
-- or as for `flow.mfa` plus `mfa_token` and `mfa_requirements` to start at the MFA choice
-- @tparam table prompts `ask_code(f)` -> code (required for a code login); `ask_link(f)` -> a
-- pasted magic link (with `send = "link"`; without it the flow's `loopback` listener completes
-- the link); `choose_authenticator(f, list)`
-- -> one of list (default: the first; enrollment needs this prompt, calling f:enroll);
-- `ask_mfa_code(f)` -> code (required once MFA asks for a code); `on_push_wait(f, waited)`
-- (called each time the push is still pending); `on_wait(f, seconds, reason)`
-- @return tokens, nil, f | nil, err, f
function _M.run(client, opts, prompts)
  local run = require "auth0.flow.run"
  if getmetatable(client) ~= auth0.Client then machine.misuse("run", 1, "auth0.Client expected, got " .. type(client)) end
  check.table(at("run", 2, true), opts)
  local link = opts.send ~= nil and opts.send ~= "code"
  run.check_prompts(prompts, opts.mfa_token ~= nil or link)
  local f
  if opts.mfa_token ~= nil then
    local t, o = {}, {}
    for k, v in pairs(opts) do
      if MFA_FIELDS[k] then t[k] = v else o[k] = v end
    end
    f = mfa_start(client, t, o, "run", 2, 2)
  else
    f = start_login(client, opts, "run")
  end
  return run.run(client, f, prompts)
end

return _M
