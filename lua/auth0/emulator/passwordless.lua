--- Emulator module: `POST /passwordless/start` and the passwordless OTP grant on /oauth/token
-- (docs/protocol.md sections "2. `POST /passwordless/start` — send code or magic link",
-- "3. `POST /oauth/token` — passwordless OTP grant" and "10. Rate limits & attack protection").
-- luacheck: ignore 212/self
local util = require "auth0.emulator.util"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local sort, concat = table.sort, table.concat
local ceil, floor, min = math.ceil, math.floor, math.min
local format, lower = string.format, string.lower

local json, err = util.json, util.error
local GRANT = util.GRANT_PASSWORDLESS_OTP

local M = { methods = {} }
local methods = M.methods

M.routes = {
  { "POST", "/passwordless/start", "passwordless_start" },
}
M.grants = { [GRANT] = "grant_passwordless_otp" }

-- Top-level properties the /passwordless/start schema allows.
local ALLOWED = {
  client_id = true, client_secret = true, client_assertion = true, client_assertion_type = true,
  connection = true, email = true, phone_number = true, send = true, authParams = true,
}
local SENDS = { code = true, link = true, link_ios = true, link_android = true }

local PASSWORDLESS_STRATEGIES = { email = true, sms = true }

-- [INF] A practical e-mail check: one "@", no spaces, a dot in the domain.
local function valid_email(s)
  return s:match("^[^%s@]+@[^%s@]+%.[^%s@]+$") ~= nil
end

local function valid_phone(s)
  return s:match("^%+%d+$") ~= nil and #s <= 16
end

local function json_type(v)
  if v == nil or v == util.null then return "null" end
  local t = type(v)
  if t == "table" then return util.is_object(v) and "object" or "array" end
  if t == "number" then return floor(v) == v and "integer" or "number" end
  return t
end

M.reset = function(self)
  self.passwordless_tx = {}
end

---------------------------------------------------------------------------------------------
-- Rate limit (token bucket, docs/protocol.md "10. Rate limits & attack protection"): `limit`
-- tokens, refilled at limit/window per second. x-ratelimit-reset is the epoch second at which
-- the bucket is full again.

--- Takes one token from bucket `key` (or only peeks when `consume` is false).
-- @return allowed (bool), headers table
function methods:rate_limit(name, key, consume)
  local cfg = self.rate_limits[name]
  local headers = {}
  if not cfg then return true, headers end
  local limit, window = cfg.limit, cfg.window
  local now = self:now()
  local bkey = name .. "\0" .. key
  local b = self.rate_buckets[bkey]
  if not b then
    b = { tokens = limit, updated = now }
    self.rate_buckets[bkey] = b
  end
  b.tokens = min(limit, b.tokens + (now - b.updated) * limit / window)
  b.updated = now
  local allowed = true
  if consume and self.rate_limits.enabled ~= false then
    if b.tokens >= 1 then b.tokens = b.tokens - 1 else allowed = false end
  end
  headers["x-ratelimit-limit"] = format("%d", limit)
  headers["x-ratelimit-remaining"] = format("%d", floor(b.tokens))
  headers["x-ratelimit-reset"] = format("%d", now + ceil((limit - b.tokens) * window / limit))
  return allowed, headers
end

---------------------------------------------------------------------------------------------
-- /passwordless/start

local function transaction_key(client_id, conn, identifier)
  return client_id .. "\0" .. conn.name .. "\0" .. (conn.strategy == "email" and lower(identifier) or identifier)
end

--- Builds the magic link: flattened authParams, then verification_code, connection, client_id
-- and email|phone_number (docs/protocol.md "2.5 Magic link format (for `send=link`)").
function methods:magic_link(auth_params, code, conn, client_id, field, identifier)
  local keys = {}
  local q = {}
  for k, v in pairs(auth_params or {}) do
    if type(v) == "string" or type(v) == "number" or type(v) == "boolean" then
      if k ~= "verification_code" and k ~= "connection" and k ~= "client_id" and k ~= field then
        keys[#keys + 1] = k
        q[k] = tostring(v)
      end
    end
  end
  sort(keys)
  for _, k in ipairs{ "verification_code", "connection", "client_id", field } do keys[#keys + 1] = k end
  q.verification_code, q.connection, q.client_id, q[field] = code, conn.name, client_id, identifier
  return self.base_url .. "/passwordless/verify_redirect?" .. util.build_query(q, keys)
end

local function bad(code, description)
  return err(400, code, description)
end

local function with_headers(resp, headers)
  for k, v in pairs(headers) do resp.headers[k] = v end
  return resp
end

local function validate_start(self, params, client, authenticated)
  local names = {}
  for k in pairs(params) do
    if not ALLOWED[k] then names[#names + 1] = tostring(k) end
  end
  if #names > 0 then
    sort(names)
    return bad("bad.request", "the following properties are not allowed: " .. concat(names, ","))
  end
  if type(params.client_id) ~= "string" or params.client_id == "" then
    return bad("bad.client_id", "Missing required property: client_id")
  end
  if type(params.connection) ~= "string" or params.connection == "" then
    return bad("bad.connection", "Missing required property: connection")
  end
  if params.send ~= nil and not SENDS[params.send] then
    return bad("bad.send", "error in send - No enum match for: " .. tostring(params.send))
  end
  if params.authParams ~= nil and json_type(params.authParams) ~= "object" then
    return bad("bad.authParams", "error in authParams - invalid type: " .. json_type(params.authParams)
               .. " (expected object)")
  end
  if not client then
    -- [INF] not in the documented table; Auth0 reports unknown clients under bad.client_id.
    return bad("bad.client_id", "Unknown client: " .. params.client_id)
  end
  if client.confidential and not authenticated then
    return err(403, "unauthorized_client", "Client authentication is required")
  end
  local conn = self.connections[params.connection]
  if not conn then return bad("bad.connection", "Connection does not exist") end
  if not PASSWORDLESS_STRATEGIES[conn.strategy] then
    return bad("bad.connection", "Invalid connection strategy. It must either be a passwordless connection")
  end
  if not self:connection_enabled(conn, client.client_id) then
    return bad("bad.connection", "Connection is disabled")
  end
  if conn.strategy == "email" then
    local email = params.email
    if email == nil or email == "" then return bad("bad.email", "Missing required property: email") end
    if type(email) ~= "string" then
      return bad("bad.email", "error in email - invalid type: " .. json_type(email) .. " (expected string)")
    end
    if not valid_email(email) then
      return bad("bad.email", "error in email - email format validation failed: " .. email)
    end
  else
    local phone = params.phone_number
    if phone == nil or phone == "" then
      return bad("bad.phone_number", "Missing required property: phone_number")
    end
    if type(phone) ~= "string" or not valid_phone(phone) then
      return bad("bad.phone_number", "String does not match pattern: ^\\+[0-9]{1,15}$")
    end
  end
  return nil, conn
end

--- POST /passwordless/start: validates, rate-limits public callers per IP, stores the code
-- (replacing any older one for the same client+connection+identifier) and queues a message.
function methods:passwordless_start(req)
  local params, perr = self:params(req, "bad.request")
  local client, authenticated
  if params then
    -- A client authenticating with HTTP Basic need not repeat client_id in the body.
    local id = self:client_credentials(req, params)
    if params.client_id == nil and id then params.client_id = id end
    client, authenticated = self:authenticate_client(req, params)
  end
  -- The per-IP limit counts the end user's address: auth0-forwarded-for from a confidential
  -- (authenticated) client, the peer's address for a public one (whose header is ignored);
  -- an authenticated caller without the header is not limited per IP (docs/protocol.md,
  -- "Rate limits & attack protection").
  local fwd = req.headers and req.headers["auth0-forwarded-for"]
  fwd = authenticated and type(fwd) == "string" and fwd ~= "" and fwd or nil
  local allowed, headers = self:rate_limit("passwordless_start", fwd or req.remote_addr,
    fwd ~= nil or not authenticated)
  if not allowed then
    return err(429, "too_many_requests",
               "Too many requests. Check the X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset headers.",
               nil, headers)
  end
  if not params then return with_headers(perr, headers) end
  local eresp, conn = validate_start(self, params, client, authenticated)
  if eresp then return with_headers(eresp, headers) end

  local field = conn.strategy == "sms" and "phone_number" or "email"
  local identifier = params[field]
  local send = params.send or "link"  -- [DOC] default when omitted is "link"
  local now = self:now()
  local code = self:random_digits(conn.otp_length)
  self.passwordless_tx[transaction_key(client.client_id, conn, identifier)] = {
    code = code, expires_at = now + conn.otp_lifetime, failures = 0,
    client_id = client.client_id, connection = conn.name, identifier = identifier, send = send,
    auth_params = params.authParams,
  }
  local msg = {
    to = identifier, connection = conn.name, client_id = client.client_id,
    kind = send == "code" and "code" or "link", send = send, code = code, sent_at = now,
    language = req.headers["x-request-language"] or req.headers["accept-language"],
  }
  if msg.kind == "link" then
    msg.link = self:magic_link(params.authParams, code, conn, client.client_id, field, identifier)
  end
  self.outbox[#self.outbox + 1] = msg

  local user = self:find_user(conn, identifier)
  local body = { _id = self:identity_id(conn, identifier) }
  if conn.strategy == "sms" then
    body.phone_number = identifier
    body.phone_verified = user ~= nil and user.phone_verified ~= false
  else
    body.email = identifier
    body.email_verified = user ~= nil and user.email_verified ~= false
  end
  return json(200, body, headers)
end

---------------------------------------------------------------------------------------------
-- Client checks shared by the grants on /oauth/token.

--- Runs the client checks every /oauth/token grant shares (docs/protocol.md "3.3 Errors" rows).
-- @return client | nil, error response
function methods:token_client(req, params, grant_type)
  local client, authenticated = self:authenticate_client(req, params)
  if not client then
    -- [INF] a missing client_id is answered like an unknown one.
    return nil, err(403, "unauthorized_client", "invalid client")
  end
  if client.confidential and not authenticated then
    return nil, err(401, "access_denied", "Unauthorized")
  end
  if not self:grant_allowed(client, grant_type) then
    return nil, err(403, "unauthorized_client", "Grant type '" .. grant_type .. "' not allowed for the client.",
                    { error_uri = "https://auth0.com/docs/clients/client-grant-types" })
  end
  return client
end

local function missing(name)
  -- [INF] OAuth-style wording for a missing parameter.
  return err(400, "invalid_request", "Missing required parameter: " .. name)
end

--- The passwordless OTP grant (docs/protocol.md
-- "3. `POST /oauth/token` — passwordless OTP grant").
function methods:grant_passwordless_otp(req, params)
  local client, cerr = self:token_client(req, params, GRANT)
  if not client then return cerr end
  for _, name in ipairs{ "username", "otp", "realm" } do
    local v = params[name]
    if type(v) == "number" then v = tostring(v); params[name] = v end
    if type(v) ~= "string" or v == "" then return missing(name) end
  end
  local conn = self.connections[params.realm]
  if not conn or not PASSWORDLESS_STRATEGIES[conn.strategy] then
    return err(400, "invalid_request", "the connection was not found")
  end
  if not self:connection_enabled(conn, client.client_id) then
    return err(400, "invalid_request", "the connection was disabled")
  end
  local audience = params.audience
  if audience ~= nil and audience ~= "" and not self.apis[audience] then
    -- [INF] Auth0's wording for an unknown API identifier.
    return err(403, "access_denied", "Service not found: " .. tostring(audience))
  end

  local wrong = conn.strategy == "sms" and "Wrong phone number or verification code."
                or "Wrong email or verification code."
  local key = transaction_key(client.client_id, conn, params.username)
  local tx = self.passwordless_tx[key]
  if not tx or tx.expires_at <= self:now() then
    -- Expired is answered like wrong [INF].
    return err(403, "invalid_grant", wrong)
  end
  if tx.failures >= 3 then
    -- [INF] wire code for the documented UI text.
    return err(403, "invalid_grant", "You've reached the maximum number of attempts. Please try to login again.")
  end
  if params.otp ~= tx.code then
    tx.failures = tx.failures + 1
    return err(403, "invalid_grant", wrong)
  end
  self.passwordless_tx[key] = nil  -- a used code is gone

  local user = self:find_user(conn, params.username)
  if not user then
    if conn.disable_signup then
      -- [INF] wording; Auth0 refuses the sign-up when "Disable Sign Ups" is on.
      return err(403, "access_denied", "Public signup is disabled")
    end
    local u = { connection = conn.name }
    u[conn.strategy == "sms" and "phone_number" or "email"] = params.username
    user = assert(self:put_user(u))
  end
  if user.blocked then return err(401, "unauthorized", "user is blocked") end
  user.last_login = self:now()

  local login = { grant_type = GRANT, audience = audience ~= "" and audience or nil,
                  scope = params.scope, connection = conn.name }
  local gate = self:mfa_gate(user, client, login)
  if gate then return gate end
  return self:issue_tokens(user, client, login)
end

return M
