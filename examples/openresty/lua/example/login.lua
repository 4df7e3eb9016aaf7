--- A JSON login gateway in front of Auth0, for nginx + lua-nginx-module (OpenResty), safe to
-- expose and stateless between requests (any worker, any node).
--
--   POST /login/start  {"email": "..."} | {"phone_number": "+1..."}
--        -> 200 {"code_sent": true}                 (login state in the auth0_session cookie)
--   POST /login/verify {"code": "123456"}
--        -> 200 {"access_token", "id_token", "token_type", "expires_in", "scope", ...}
--        -> 200 {"mfa_required": true, "authenticators": [{id, authenticator_type, oob_channel, name}]}
--   POST /login/mfa    {"authenticator_id"?: "...", "code"?: "..."}
--        with `code` only: completes with an OTP (or the binding code of a previous oob challenge);
--        with `authenticator_id` only: starts a challenge -> 200 {"challenge_type": "otp"|"oob",
--        "binding_method"?}; an oob push challenge without a binding code is polled here until
--        approved (push polling sleeps with ngx.sleep: the worker keeps serving others).
--   Errors: {"error": code, "error_description": message} with 400/405/413/415/429/502/504, or
--   Auth0's own 4xx. Every 429 carries Retry-After.
--
-- The login state (identifier, then the mfa_token: a secret) is sealed into the session
-- cookie with AES-256-GCM (example/session.lua); the browser holds it but cannot read or
-- change it, and it is the only place the session exists. The cookie is always
-- `Secure; HttpOnly; SameSite=Strict; Path=/login` (`insecure_cookie = true` drops Secure for
-- plain-http development on localhost only). Limits on /login/start (per address, per
-- e-mail/phone, and a global ceiling) live in the `auth0_limits` shared dict: per node.
--
-- One auth0 client per worker (init_worker), shared by all requests: each call opens or reuses
-- a pooled cosocket connection, so concurrent logins run in parallel.
local auth0 = require "auth0"
local cjson = require("cjson.safe").new()
local limit = require "example.limit"
local session = require "example.session"

local type, pcall, tostring, ipairs = type, pcall, tostring, ipairs
local core = auth0.core

local _M = {}

local COOKIE = "auth0_session"
local EMPTY_ARRAY = cjson.empty_array or {}  -- plain lua-cjson 2.1.0 has no empty_array: "{}"
local DEFAULTS = {
  session_ttl = 600,     -- seconds: covers the email/SMS code's lifetime (180 s) and the mfa_token's (600 s)
  max_body = 16384,      -- bytes of JSON accepted (nginx's client_max_body_size should match)
  -- sliding windows on /login/start: { hits, seconds }
  limit_ip = { 10, 60 }, limit_identifier = { 5, 600 }, limit_global = { 600, 60 },
  -- on /login/verify and /login/mfa, per address: code guessing costs Auth0 attempts too
  limit_verify = { 30, 60 },
}

local config = {}
local client, sealer

--- Stores the settings (init_by_lua, before the workers fork).
-- @tparam table c `base_url` or `domain`, `client_id`, `client_secret` (from the environment,
--   never from nginx.conf; makes the client confidential, which is what lets Auth0 trust the
--   forwarded end-user address), `audience`, `scope`, `timeout`; `keys` (AUTH0_GATEWAY_KEYS
--   text, "id:base64url,...", newest first; without it a random key per start, so logins
--   survive neither a restart nor a switch of node), `session_ttl` (600 s), `max_body`
--   (16384 bytes), `limit_ip`, `limit_identifier`, `limit_global` (on /login/start) and
--   `limit_verify` (per address on /login/verify and /login/mfa): { hits, seconds } each, or
--   false to disable; `insecure_cookie` (true: no Secure attribute; plain-http localhost
--   development only), `poll_interval`, `poll_timeout` (push MFA, 5 s and 60 s)
function _M.configure(c)
  config = setmetatable(c, { __index = DEFAULTS })
  local keys, err = session.parse_keys(c.keys)
  if not keys then
    if c.keys then error("AUTH0_GATEWAY_KEYS: " .. err, 2) end
    ngx.log(ngx.WARN, "no AUTH0_GATEWAY_KEYS: sealing login state with a random key of this start only")
    keys = { { id = "boot", key = core.random_bytes(32) } }
  end
  config.parsed_keys = keys
end

-- The end user's address for Auth0's per-IP limits (the client sends it as
-- auth0-forwarded-for): ngx.var.remote_addr, which nginx's realip module has already replaced
-- with the client's when a trusted proxy is in front. Auth0 honours it only from confidential
-- clients (the client raises for a public one), and only an IP address is one (not "unix:").
local function forwarded_for()
  local addr = ngx.var.remote_addr
  if not config.client_secret or not addr then return nil end
  if addr:find("^%d+%.%d+%.%d+%.%d+$") or (addr:find(":", 1, true) and not addr:find("^unix:")) then return addr end
  return nil
end

--- Creates this worker's client (init_worker_by_lua). The transport is cosockets ("ngx").
function _M.init_worker()
  local c = config
  sealer = session.new(c.parsed_keys, c.session_ttl, ngx.shared.auth0_limits)
  local base = c.base_url or ("https://" .. c.domain)
  local send = require("auth0.transport.ngx").new({ base_url = base, host = base:match("^https?://([^:/]+)"),
    timeout = c.timeout or 10, connect_timeout = 5 }, {})
  client = auth0.new {
    base_url = c.base_url, domain = c.domain, client_id = c.client_id,
    client_secret = c.client_secret, audience = c.audience, scope = c.scope,
    timeout = c.timeout or 10, transport = send, sleep = ngx.sleep,
    retries = 1, max_retry_wait = 2,   -- a user is waiting: never sit out a long Retry-After here
    on_log = function(level, message, fields)
      -- only these scalar fields are written: nothing else from the client reaches the log
      if level == "warn" or level == "info" then
        fields = type(fields) == "table" and fields or {}
        ngx.log(level == "warn" and ngx.WARN or ngx.INFO, "auth0: ", message, " endpoint=", tostring(fields.endpoint),
          " status=", tostring(fields.status), " code=", tostring(fields.code), " request_id=", tostring(fields.request_id))
      end
    end,
  }
end

--- The worker's client (for tests and extra locations).
function _M.client() return client end

--- The worker's sealer (example/session.lua; for tests, the bench and extra locations).
function _M.sealer() return sealer end

local function reply(status, body, headers)
  ngx.status = status -- luacheck: ignore 122
  local h = ngx.header
  h["content-type"] = "application/json" -- luacheck: ignore 122
  h["cache-control"] = "no-store" -- luacheck: ignore 122
  for k, v in pairs(headers or {}) do h[k] = v end -- luacheck: ignore 122
  local data = cjson.encode(body)
  h["content-length"] = #data -- luacheck: ignore 122
  ngx.print(data)
  return ngx.exit(status)
end

local function bad_request(msg) return reply(400, { error = "invalid_request", error_description = msg }) end

local function too_many(wait, what)
  return reply(429, { error = "too_many_requests", error_description = "too many " .. what .. "; retry later" },
    { ["retry-after"] = tostring(wait) })
end

local function cookie(value, max_age)
  return COOKIE .. "=" .. value .. "; Path=/login; Max-Age=" .. max_age
    .. (config.insecure_cookie and "" or "; Secure") .. "; HttpOnly; SameSite=Strict"
end

local function set_state(state) ngx.header["set-cookie"] = cookie(sealer:seal(state), config.session_ttl) end -- luacheck: ignore 122

-- Tampered, expired, replaced or missing state: 400, the cookie cleared, start again.
local function bad_session(why)
  ngx.log(ngx.INFO, "login state refused: ", why)
  ngx.header["set-cookie"] = cookie("", 0) -- luacheck: ignore 122
  return reply(400, { error = "invalid_session", error_description = "no valid login in progress; start again" })
end

-- Network failures become 502/504; the server's 4xx answers keep their status. Every failure
-- is logged at warn with its code, status and request id (never a secret: no message, no body).
local GATEWAY = { timeout = 504 }
local function fail(err, step)
  local status = err.status
  if not status then status = GATEWAY[err.code] or 502
  elseif status >= 500 then status = 502 end
  local rid = err.request_id or "-"
  -- a transport failure's message names the upstream and the TLS problem: the log has it, the
  -- end user gets a generic description
  local network = not err.status
  ngx.log(ngx.WARN, "auth0 failure: step=", step, " code=", tostring(err.code), " status=", tostring(err.status),
    " request_id=", tostring(rid), network and (" cause=" .. tostring(err.message)) or "")
  if ngx.var.auth0_failure then ngx.var.auth0_failure = tostring(err.code) .. "/" .. tostring(rid) end -- luacheck: ignore 122
  local headers
  if status == 429 then
    local wait = err.retry_after
    if not wait and err.rate_limit and err.rate_limit.reset then wait = err.rate_limit.reset - ngx.time() end
    headers = { ["retry-after"] = tostring(math.max(1, math.floor(tonumber(wait) or 60))) }
  end
  local description = (network or status >= 500) and "the login service is unavailable; retry later" or err.message
  return reply(status, { error = err.code, error_description = description }, headers)
end

local function read_body()
  local n = tonumber(ngx.var.http_content_length)
  if n and n > config.max_body then return nil, 413 end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    -- nginx wrote a body larger than client_body_buffer_size to a file
    local path = ngx.req.get_body_file()
    if not path then return nil end
    local f = io.open(path, "rb")
    if not f then return nil end
    body = f:read(config.max_body + 1)
    f:close()
  end
  if body and #body > config.max_body then return nil, 413 end
  return body
end

local function read_json()
  if ngx.req.get_method() ~= "POST" then
    return nil, reply(405, { error = "invalid_request", error_description = "use POST" }, { allow = "POST" })
  end
  -- JSON only: a cross-site form cannot send it without a CORS preflight (SMS pumping through
  -- visitors' browsers)
  local ctype = ngx.var.http_content_type
  if type(ctype) ~= "string" or not ctype:lower():find("^application/json%s*[;]?") then
    return nil, reply(415, { error = "invalid_request", error_description = "Content-Type must be application/json" })
  end
  local body, status = read_body()
  if status == 413 then
    return nil, reply(413, { error = "too_large", error_description = "the body is larger than "
      .. config.max_body .. " bytes" })
  end
  if not body then return nil, bad_request("a JSON body is required") end
  local t = cjson.decode(body)
  if type(t) ~= "table" or (next(t) ~= nil and t[1] ~= nil) then return nil, bad_request("the body must be a JSON object") end
  return t
end

local function json_type(v)
  if v == cjson.null then return "null" end
  if type(v) == "table" then return v[1] ~= nil and "array" or "object" end
  return type(v)
end

-- The string field `name`: nil when absent (or an error reply if `required`); 400 naming the
-- field for any other JSON type, an empty string or one longer than `max`.
local function string_field(body, name, required, max)
  local v = body[name]
  if v == nil then
    if required then return nil, bad_request(name .. " is required") end
    return nil
  end
  if type(v) ~= "string" then return nil, bad_request(name .. " must be a string, got " .. json_type(v)) end
  if v == "" or #v > (max or 256) then
    return nil, bad_request(name .. " must be 1 to " .. (max or 256) .. " characters")
  end
  return v
end

-- The client raises on misuse (a malformed email, ...): that is the user's input here. Only the
-- reason goes back ("bad argument #1 to 'passwordless_start' (email is malformed)" -> "email
-- is malformed"; older clients: "auth0: email is malformed").
local function call(method, ...)
  local ok, res, err = pcall(client[method], client, ...)
  if not ok then
    local msg = tostring(res)
    return nil, nil, msg:match("bad argument #%d+ to '[^']*' %((.*)%)$") or (msg:gsub("^.-auth0: ", ""))
  end
  return res, err
end

local function check_limit(key, spec)
  if not spec then return true end
  return limit.hit(ngx.shared.auth0_limits, key, spec[1], spec[2])
end

local function load_state()
  local ok, wait = check_limit("verify|" .. limit.addr_key(ngx.var.remote_addr), config.limit_verify)
  if not ok then return nil, too_many(wait, "attempts from this address") end
  local state, why = sealer:open(ngx.var["cookie_" .. COOKIE])
  if not state then return nil, bad_session(why or "no cookie") end
  return state
end

local function token_reply(state, tokens)
  sealer:retire(state)
  return reply(200, { access_token = tokens.access_token, id_token = tokens.id_token,
    refresh_token = tokens.refresh_token, token_type = tokens.token_type, expires_in = tokens.expires_in,
    scope = tokens.scope, recovery_code = tokens.recovery_code }, { ["set-cookie"] = cookie("", 0) })
end

--- POST /login/start
function _M.start()
  local body = read_json()
  if not body then return end
  local email, sent = string_field(body, "email", false, 320)
  if sent then return end
  local phone; phone, sent = string_field(body, "phone_number", false, 32)
  if sent then return end
  if email and phone then return bad_request("give email or phone_number, not both") end
  if not email and not phone then return bad_request("email or phone_number is required") end
  local addr = ngx.var.remote_addr
  local ok, wait = check_limit("ip|" .. limit.addr_key(addr), config.limit_ip)
  if not ok then return too_many(wait, "logins from this address") end
  ok, wait = check_limit("id|" .. (email and limit.email_key(email) or phone), config.limit_identifier)
  if not ok then return too_many(wait, "logins for this " .. (email and "email" or "phone number")) end
  ok, wait = check_limit("all", config.limit_global)
  if not ok then return too_many(wait, "logins on this server") end
  local p = email and { connection = "email", email = email } or { connection = "sms", phone_number = phone }
  p.forwarded_for = forwarded_for()
  local _, err, misuse = call("passwordless_start", p)
  if misuse then return bad_request(misuse) end
  if err then return fail(err, "start") end
  set_state { realm = p.connection, username = email or phone }
  return reply(200, { code_sent = true })
end

--- POST /login/verify
function _M.verify()
  local body = read_json()
  if not body then return end
  local code, sent = string_field(body, "code", true, 64)
  if sent then return end
  local state = load_state()
  if not state then return end
  if state.mfa_token then return bad_request("the code was already verified; continue with /login/mfa") end
  local tokens, err, misuse = call("passwordless_login", { realm = state.realm, username = state.username, otp = code,
    forwarded_for = forwarded_for() })
  if misuse then return bad_request(misuse) end
  if tokens then return token_reply(state, tokens) end
  if err.code ~= "mfa_required" then return fail(err, "verify") end
  local list, lerr = call("mfa_authenticators", err.mfa_token)
  if not list then return fail(lerr, "authenticators") end
  local out, types = {}, {}
  for _, a in ipairs(list) do
    if a.active ~= false and type(a.id) == "string" then -- inactive ones cannot be challenged
      out[#out + 1] = { id = a.id, authenticator_type = a.authenticator_type, oob_channel = a.oob_channel,
        name = a.name }
      types[a.id] = a.authenticator_type or "otp"
    end
  end
  sealer:retire(state)
  set_state { mfa_token = err.mfa_token, types = types, exp = state.exp }
  return reply(200, { mfa_required = true, authenticators = #out > 0 and out or EMPTY_ARRAY })
end

--- POST /login/mfa
function _M.mfa()
  local body = read_json()
  if not body then return end
  local code, sent = string_field(body, "code", false, 64)
  if sent then return end
  local id; id, sent = string_field(body, "authenticator_id", false, 128)
  if sent then return end
  local state = load_state()
  if not state then return end
  if type(state.mfa_token) ~= "string" then return bad_request("no multi-factor step is pending for this login") end
  local types = type(state.types) == "table" and state.types or {}
  if id and not types[id] then return bad_request("unknown authenticator_id") end
  local kind = id and types[id]
  if code then
    local p = { mfa_token = state.mfa_token, forwarded_for = forwarded_for() }
    if kind == "recovery-code" then p.recovery_code = code
    elseif state.oob_code and kind ~= "otp" then p.oob_code, p.binding_code = state.oob_code, code
    else p.otp = code end
    local tokens, err, misuse = call("mfa_verify", p)
    if misuse then return bad_request(misuse) end
    if tokens then return token_reply(state, tokens) end
    return fail(err, "mfa_verify")
  end
  if not id then return bad_request("authenticator_id or code is required") end
  local ch, err, misuse = call("mfa_challenge", { mfa_token = state.mfa_token, authenticator_id = id,
    challenge_type = kind == "otp" and "otp" or "oob" })
  if misuse then return bad_request(misuse) end
  if not ch then return fail(err, "mfa_challenge") end
  if ch.challenge_type ~= "oob" or not ch.oob_code then return reply(200, { challenge_type = "otp" }) end
  if ch.binding_method == "prompt" then
    -- a code went out by SMS, voice or email: the next call brings it as `code`
    sealer:retire(state)
    state.oob_code = ch.oob_code
    set_state(state)
    return reply(200, { challenge_type = "oob", binding_method = "prompt" })
  end
  -- A push notification: wait for the approval here (mfa_poll sleeps with ngx.sleep).
  local tokens, perr = call("mfa_poll", { mfa_token = state.mfa_token, oob_code = ch.oob_code,
    interval = config.poll_interval or 5, timeout = config.poll_timeout or 60, forwarded_for = forwarded_for() })
  if tokens then return token_reply(state, tokens) end
  return fail(perr, "mfa_poll")
end

return _M
