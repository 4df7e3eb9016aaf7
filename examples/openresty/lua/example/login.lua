--- A small JSON login API in front of Auth0, for nginx + lua-nginx-module (OpenResty).
--
--   POST /login/start  {"email": "..."} | {"phone_number": "+1..."}
--        -> 200 {"session": "<id>"}                  (also set as the auth0_session cookie)
--   POST /login/verify {"session": "<id>", "code": "123456"}
--        -> 200 {"access_token", "id_token", "token_type", "expires_in", "scope", ...}
--        -> 200 {"mfa_required": true, "session": "<id>", "authenticators": [{id, authenticator_type,
--                oob_channel, name}]}
--   POST /login/mfa    {"session": "<id>", "authenticator_id"?: "...", "code"?: "..."}
--        with `code` only: completes with an OTP (or the binding code of a previous oob challenge);
--        with `authenticator_id` only: starts a challenge -> 200 {"challenge_type": "otp"|"oob",
--        "binding_method"?}; an oob push challenge without a binding code is polled here until
--        approved (push polling sleeps with ngx.sleep: the worker keeps serving others).
--   Errors: {"error": code, "error_description": message} with 400/401/403/429/502/504.
--
-- The auth0 client is created once per worker (init_worker) and shared by all requests: each
-- call opens or reuses a pooled cosocket connection, so concurrent logins run in parallel.
-- Login state lives server side in the `auth0_sessions` shared dict keyed by a random session
-- id; only the id goes to the browser, because the state holds secrets (the mfa_token).
--
-- With auth0.flow (lua/auth0/flow.lua) the per-step state below becomes the flow's own. Its
-- serialization holds secrets (mfa_token, oob_code), so it stays server side too, keyed by
-- a random id that is all the browser gets (an HttpOnly cookie):
--   local f = flow.login(client, { connection = "email", email = email })
--   client:poll(0)             -- delivers the callbacks; follow-up calls (cosockets) run inside
--   local sid = core.b64url_encode(core.random_bytes(24))
--   sessions:set(sid, cjson.encode(f:serialize()), SESSION_TTL)
--   ngx.header["set-cookie"] = "auth0_session=" .. sid .. "; Path=/login; HttpOnly; Secure; SameSite=Strict"
--   ... a later request (any worker):
--   local f = flow.resume(client, cjson.decode(sessions:get(sid)))
--   f:submit_code(code); client:poll(0)
--   if f.state == "done" then sessions:delete(sid) ... else sessions:set(sid, cjson.encode(f:serialize()), ...)
-- Flows run their steps from client:poll(), which is not reentrant: give each request its
-- own client for flows (or serialize use of a shared one); the direct calls below block
-- only their own request and can share one client per worker.
local auth0 = require "auth0"
local cjson = require("cjson.safe").new()

local type, pcall, tostring = type, pcall, tostring
local core = auth0.core

local _M = {}

local SESSION_TTL = 600      -- seconds: covers the OTP lifetime (300 s) and the mfa_token's (600 s)
local COOKIE = "auth0_session"
local EMPTY_ARRAY = cjson.empty_array or {}  -- plain lua-cjson 2.1.0 has no empty_array: "{}"

local config = {}
local client

--- Stores the settings (init_by_lua). @tparam table c `base_url` or `domain`, `client_id`,
-- `client_secret` (read it from the environment, never from nginx.conf), `audience`, `scope`
function _M.configure(c) config = c end

--- Creates this worker's client (init_worker_by_lua). The transport is cosockets ("ngx").
function _M.init_worker()
  client = auth0.new {
    base_url = config.base_url, domain = config.domain, client_id = config.client_id,
    client_secret = config.client_secret, audience = config.audience, scope = config.scope,
    timeout = config.timeout or 10, transport = "ngx",
    on_log = function(level, message, fields)
      -- fields carry endpoint, status, code and request_id only: no secret reaches the log
      if level ~= "debug" then
        ngx.log(level == "warn" and ngx.WARN or ngx.INFO, "auth0: ", message, " ", cjson.encode(fields) or "")
      end
    end,
  }
end

--- The worker's client (for tests and extra locations).
function _M.client() return client end

local function reply(status, body)
  ngx.status = status -- luacheck: ignore 122
  ngx.header["content-type"] = "application/json" -- luacheck: ignore 122
  ngx.header["cache-control"] = "no-store" -- luacheck: ignore 122
  local data = cjson.encode(body)
  ngx.header["content-length"] = #data -- luacheck: ignore 122
  ngx.print(data)
  return ngx.exit(status)
end

local function bad_request(msg) return reply(400, { error = "invalid_request", error_description = msg }) end

-- Network failures become 502/504; the server's 4xx answers keep their status.
local GATEWAY = { timeout = 504 }
local function fail(err)
  local status = err.status
  if not status then status = GATEWAY[err.code] or 502
  elseif status >= 500 then status = 502 end
  ngx.log(ngx.INFO, "login failed: ", tostring(err.code), " status ", tostring(err.status))
  return reply(status, { error = err.code, error_description = err.message })
end

local function read_json()
  if ngx.req.get_method() ~= "POST" then return nil, "use POST" end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then return nil, "a JSON body is required" end
  local t = cjson.decode(body)
  if type(t) ~= "table" then return nil, "the body must be a JSON object" end
  return t
end

-- The client raises on misuse (a malformed email, ...): that is the user's input here.
local function call(method, ...)
  local ok, res, err = pcall(client[method], client, ...)
  -- "bad argument #1 to 'passwordless_start' (email is malformed)": the part in parentheses
  if not ok then return nil, nil, tostring(res):match("^.-bad argument #%d+ to '[^']*' %((.*)%)$") or tostring(res) end
  return res, err
end

local sessions = ngx.shared.auth0_sessions

local function load_session(body)
  local sid = body.session
  if sid == nil then sid = ngx.var["cookie_" .. COOKIE] end
  if type(sid) ~= "string" or not sid:find("^[%w_-]+$") then return nil end
  local state = cjson.decode(sessions:get(sid) or "")
  if type(state) ~= "table" then return nil end
  return sid, state
end

local function save_session(sid, state)
  local ok, err = sessions:set(sid, cjson.encode(state), SESSION_TTL)
  if not ok then ngx.log(ngx.ERR, "cannot store the login session: ", err) end
  return ok
end

local function token_reply(sid, tokens)
  sessions:delete(sid)
  return reply(200, { access_token = tokens.access_token, id_token = tokens.id_token,
    refresh_token = tokens.refresh_token, token_type = tokens.token_type, expires_in = tokens.expires_in,
    scope = tokens.scope, recovery_code = tokens.recovery_code })
end

--- POST /login/start
function _M.start()
  local body, msg = read_json()
  if not body then return bad_request(msg) end
  local p
  if body.email ~= nil then
    p = { connection = "email", email = body.email }
  elseif body.phone_number ~= nil then
    p = { connection = "sms", phone_number = body.phone_number }
  else
    return bad_request("email or phone_number is required")
  end
  local _, err, misuse = call("passwordless_start", p)
  if misuse then return bad_request(misuse) end
  if err then return fail(err) end
  local sid = core.b64url_encode(core.random_bytes(24))
  if not save_session(sid, { realm = p.connection, username = p.email or p.phone_number }) then
    return reply(503, { error = "unavailable", error_description = "too many logins in progress" })
  end
  ngx.header["set-cookie"] = COOKIE .. "=" .. sid .. "; Path=/login; HttpOnly; SameSite=Strict" -- luacheck: ignore 122
    .. (ngx.var.scheme == "https" and "; Secure" or "")
  return reply(200, { session = sid })
end

--- POST /login/verify
function _M.verify()
  local body, msg = read_json()
  if not body then return bad_request(msg) end
  local sid, state = load_session(body)
  if not sid then return reply(401, { error = "invalid_session", error_description = "unknown or expired session" }) end
  if type(body.code) ~= "string" then return bad_request("code is required") end
  local tokens, err, misuse = call("passwordless_login", { realm = state.realm, username = state.username,
    otp = body.code })
  if misuse then return bad_request(misuse) end
  if tokens then return token_reply(sid, tokens) end
  if err.code ~= "mfa_required" then return fail(err) end
  state.mfa_token = err.mfa_token
  local list, lerr = call("mfa_authenticators", err.mfa_token)
  if not list then return fail(lerr) end
  local out, types = {}, {}
  for _, a in ipairs(list) do
    if a.active ~= false and type(a.id) == "string" then -- inactive ones cannot be challenged
      out[#out + 1] = { id = a.id, authenticator_type = a.authenticator_type, oob_channel = a.oob_channel,
        name = a.name }
      types[a.id] = a.authenticator_type or "otp"
    end
  end
  state.types = types
  save_session(sid, state)
  return reply(200, { mfa_required = true, session = sid, authenticators = #out > 0 and out or EMPTY_ARRAY })
end

--- POST /login/mfa
function _M.mfa()
  local body, msg = read_json()
  if not body then return bad_request(msg) end
  local sid, state = load_session(body)
  if not sid then return reply(401, { error = "invalid_session", error_description = "unknown or expired session" }) end
  if not state.mfa_token then return bad_request("no multi-factor step is pending for this session") end
  local code, id = body.code, body.authenticator_id
  if code ~= nil and type(code) ~= "string" then return bad_request("code must be a string") end
  if id ~= nil and (type(id) ~= "string" or not (state.types or {})[id]) then
    return bad_request("unknown authenticator_id")
  end
  local kind = id and state.types[id]
  if code ~= nil then
    local p = { mfa_token = state.mfa_token }
    if kind == "recovery-code" then p.recovery_code = code
    elseif state.oob_code and kind ~= "otp" then p.oob_code, p.binding_code = state.oob_code, code
    else p.otp = code end
    local tokens, err, misuse = call("mfa_verify", p)
    if misuse then return bad_request(misuse) end
    if tokens then return token_reply(sid, tokens) end
    return fail(err)
  end
  if not id then return bad_request("authenticator_id or code is required") end
  local ch, err, misuse = call("mfa_challenge", { mfa_token = state.mfa_token, authenticator_id = id,
    challenge_type = kind == "otp" and "otp" or "oob" })
  if misuse then return bad_request(misuse) end
  if not ch then return fail(err) end
  state.oob_code = ch.oob_code
  save_session(sid, state)
  if ch.challenge_type ~= "oob" or not ch.oob_code then return reply(200, { challenge_type = "otp" }) end
  if ch.binding_method == "prompt" then
    -- a code went out by SMS, voice or email: the next call brings it as `code`
    return reply(200, { challenge_type = "oob", binding_method = "prompt" })
  end
  -- A push notification: wait for the approval here (mfa_poll sleeps with ngx.sleep).
  local tokens, perr = call("mfa_poll", { mfa_token = state.mfa_token, oob_code = ch.oob_code,
    interval = config.poll_interval or 5, timeout = config.poll_timeout or 60 })
  if tokens then return token_reply(sid, tokens) end
  return fail(perr)
end

return _M
